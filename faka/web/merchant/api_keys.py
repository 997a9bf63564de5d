"""The merchant's API keys (for the REST API at /api/v1) and the API's reference.

The keys page lists the keys (name, the token's first characters, scopes, last use,
expiry, state) with a revoke button each, the form that makes one (its token is shown on
the answer to that form, once, and never again), and the calls made with them. The
reference page renders the OpenAPI document the API generates from its code
(faka/web/api/v1/): the same document programs read at /api/v1/openapi.json.
"""

from datetime import datetime, time, timedelta
from http import HTTPStatus
from zoneinfo import ZoneInfo

from flask import current_app, g, redirect, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import DateField, SelectField, StringField
from wtforms.validators import DataRequired, Length, Optional

from faka.accounts import api_keys
from faka.core.errors import DomainError
from faka.core.text import markdown
from faka.platform import retention
from faka.web.access import fresh_login_required
from faka.web.api import v1 as api_v1
from faka.web.i18n import current_language
from faka.web.merchant import bp, render, scoped
from faka.web.pagination import page_number

ACCESS_CHOICES = [
    ("", _p("api access", "No access")),
    (api_keys.READ, _p("api access", "Read")),
    (api_keys.WRITE, _p("api access", "Read and write")),
]
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
STATE_LABELS = {
    api_keys.ACTIVE: _p("api key", "Active"),
    api_keys.EXPIRED: _p("api key", "Expired"),
    api_keys.REVOKED: _p("api key", "Revoked"),
}


class ApiKeyForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Name the key (1 to 60 characters), after the program that uses it.")),
            Length(
                max=api_keys.NAME_MAX, message=_l("Name the key (1 to 60 characters), after the program that uses it.")
            ),
        ],
        description=_l("The program that uses it, e.g. “ERP sync”."),
    )
    allowed_ips = StringField(
        _l("Allowed addresses (optional)"),
        validators=[Length(max=1000)],
        description=_l(
            "IP addresses or networks the key may be used from, separated by spaces or commas, "
            "e.g. 203.0.113.7, 198.51.100.0/24. Empty: any address."
        ),
    )
    expires_on = DateField(
        _l("Expires after (optional)"),
        validators=[Optional()],
        description=_l("The key stops working at the end of that day. Empty: it never expires."),
    )
    language = SelectField(_l("Language of its error messages"), choices=list(LANGUAGE_NAMES.items()))


# One choice per area: no access, read, or read and write.
for _area in api_keys.AREAS:
    setattr(ApiKeyForm, f"scope_{_area}", SelectField(api_keys.AREA_LABELS[_area], choices=ACCESS_CHOICES, default=""))


def scope_fields(form: ApiKeyForm) -> list:
    return [form[f"scope_{area}"] for area in api_keys.AREAS]


def _chosen_scopes(form: ApiKeyForm) -> list[str]:
    return [f"{area}:{form[f'scope_{area}'].data}" for area in api_keys.AREAS if form[f"scope_{area}"].data]


def _end_of(day) -> datetime | None:
    """The first moment after `day` in the site's time zone: a key "expires after" that day."""
    if day is None:
        return None
    zone = ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])
    return datetime.combine(day + timedelta(days=1), time.min, zone)


def scope_summary(key) -> list[str]:
    """Each area the key reaches and how, as in "Products and checkout fields: Read and write"."""
    held = api_keys.key_scopes(key)
    access = dict(ACCESS_CHOICES)
    summary = []
    for area in api_keys.AREAS:
        level = next((level for level in (api_keys.WRITE, api_keys.READ) if f"{area}:{level}" in held), None)
        if level is not None:
            summary.append(_("%(area)s: %(access)s", area=api_keys.AREA_LABELS[area], access=access[level]))
    return summary


# The service's names of what is wrong (InvalidApiKey.field) -> this form's inputs.
FORM_FIELDS = {"name": "name", "scopes": "scopes", "allowed_ips": "allowed_ips", "expires_at": "expires_on"}


def _keys_page(form: ApiKeyForm, status: int = 200, token: str | None = None, error=None, scope_error=None):
    keys = api_keys.merchant_keys(g.merchant.id)
    return render(
        "merchant/api_keys.html",
        status,
        form=form,
        token=token,
        error=error,
        scope_error=scope_error,
        keys=keys,
        states={key.id: api_keys.key_state(key) for key in keys},
        state_labels=STATE_LABELS,
        scopes={key.id: scope_summary(key) for key in keys},
        calls=api_keys.calls(g.merchant.id, page_number()),
        call_days=retention.API_CALL_DAYS,
        scope_fields=scope_fields(form),
        language_names=LANGUAGE_NAMES,
    )


@bp.get("/api-keys")
def api_key_list():
    form = ApiKeyForm(formdata=None)
    form.language.data = current_language()
    return _keys_page(form)


@bp.post("/api-keys")
@fresh_login_required(back_to=lambda: url_for("merchant.api_key_list"))
def api_key_create():
    """A key is a password for programs: making one asks for the merchant's password (and
    second factor) again if it was not entered in the last five minutes."""
    form = ApiKeyForm()
    if form.validate_on_submit():
        draft = api_keys.ApiKeyDraft(
            name=form.name.data,
            scopes=_chosen_scopes(form),
            language=form.language.data,
            allowed_ips=form.allowed_ips.data or "",
            expires_at=_end_of(form.expires_on.data),
        )
        try:
            _key, token = api_keys.create_key(g.merchant.id, current_user.id, draft)
        except DomainError as exc:
            field = FORM_FIELDS.get(getattr(exc, "field", ""))
            if field == "scopes":
                return _keys_page(form, 400, scope_error=exc.message)
            if field is not None:
                form[field].errors = [*form[field].errors, exc.message]
                return _keys_page(form, 400)
            return _keys_page(form, 400, error=exc.message)
        # The token's only appearance: on this answer (not on a page it redirects to), which
        # no cache keeps.
        fresh = ApiKeyForm(formdata=None)
        fresh.language.data = current_language()
        page, status = _keys_page(fresh, 200, token=token)
        return page, status, {"Cache-Control": "no-store"}
    return _keys_page(form, 400)


@bp.post("/api-keys/<int:key_id>/revoke")
@scoped
def api_key_revoke(key_id: int):
    api_keys.revoke_key(g.merchant.id, key_id, current_user.id)
    return redirect(url_for("merchant.api_key_list"), 303)


# -- the reference --------------------------------------------------------------------


@bp.get("/api-reference")
def api_reference():
    return render("merchant/api_reference.html", reference=reference(api_v1.spec(current_app)))


def reference(document: dict) -> dict:
    """The OpenAPI document arranged for reading: operations by tag, each with its scope,
    parameters, body and answers; the schemas they name; the shared error answers."""
    components = document.get("components", {})
    tags = [
        {"name": t["name"], "description": markdown(t.get("description", "")), "operations": []}
        for t in document.get("tags", [])
    ]
    by_tag = {t["name"]: t for t in tags}
    for path, item in document.get("paths", {}).items():
        shared = item.get("parameters", [])
        for method, operation in item.items():
            if method == "parameters":
                continue
            entry = {
                "anchor": f"{method}-{path}".replace("/", "-").replace("{", "").replace("}", "").strip("-"),
                "method": method.upper(),
                "path": path,
                "summary": operation.get("summary", ""),
                "description": markdown(operation.get("description", "")),
                "scope": operation.get("x-scope"),
                "public": operation.get("security") == [],
                "parameters": [_parameter(p) for p in shared + operation.get("parameters", [])],
                "body": _schema_ref(
                    operation.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema")
                ),
                "responses": [
                    _response(status, r, components) for status, r in sorted(operation.get("responses", {}).items())
                ],
            }
            for tag in operation.get("tags", []):
                by_tag.setdefault(tag, {"name": tag, "description": "", "operations": []})["operations"].append(entry)
    return {
        "title": document.get("info", {}).get("title", ""),
        "version": document.get("info", {}).get("version", ""),
        "openapi": document.get("openapi", ""),
        "introduction": markdown(document.get("info", {}).get("description", "")),
        "tags": list(by_tag.values()),
        "schemas": [
            {"name": name, "properties": _properties(schema), "description": schema.get("description", "")}
            for name, schema in sorted(components.get("schemas", {}).items())
            if name != "PaginationMetadata"  # flask-smorest's own, unused here
        ],
        "errors": [
            {"status": _status_of(name), "description": markdown(response.get("description", ""))}
            for name, response in components.get("responses", {}).items()
        ],
    }


def _status_of(response_name: str) -> str:
    return str(HTTPStatus[response_name].value) if response_name in HTTPStatus.__members__ else response_name


def _parameter(parameter: dict) -> dict:
    return {
        "name": parameter.get("name"),
        "where": parameter.get("in"),
        "required": parameter.get("required", False),
        "type": _type(parameter.get("schema", {})),
        "description": markdown(parameter.get("description", "")),
    }


def _response(status: str, response: dict, components: dict) -> dict:
    ref = response.get("$ref")
    if ref:
        response = components.get("responses", {}).get(ref.rsplit("/", 1)[-1], {})
    schema = response.get("content", {}).get("application/json", {}).get("schema")
    return {
        "status": status,
        "description": markdown(response.get("description", "")),
        "schema": _schema_ref(schema),
        "headers": sorted(response.get("headers", {})),
    }


def _schema_ref(schema: dict | None) -> str | None:
    if not schema:
        return None
    return schema.get("$ref", "").rsplit("/", 1)[-1] or _type(schema)


def _properties(schema: dict) -> list[dict]:
    required = set(schema.get("required", []))
    return [
        {
            "name": name,
            "type": _type(prop),
            "required": name in required,
            "read_only": prop.get("readOnly", False),
            "description": markdown(prop.get("description", "")),
            "limits": _limits(prop),
        }
        for name, prop in schema.get("properties", {}).items()
    ]


def _type(schema: dict) -> dict:
    """A property's type for reading: its name, the schema it refers to, nullable, a list of."""
    if "$ref" in schema:
        return {"name": schema["$ref"].rsplit("/", 1)[-1], "ref": True, "nullable": False, "list": False}
    if "allOf" in schema or "anyOf" in schema:
        inner = (schema.get("allOf") or schema.get("anyOf"))[0]
        nullable = any(option.get("type") == "null" for option in schema.get("anyOf", []))
        return {**_type(inner), "nullable": nullable}
    kind = schema.get("type", "object")
    nullable = isinstance(kind, list) and "null" in kind
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "array":
        return {**_type(schema.get("items", {})), "list": True, "nullable": nullable}
    return {"name": kind, "ref": False, "nullable": nullable, "list": False}


def _limits(prop: dict) -> str:
    """The constraints of a property, as the document writes them."""
    shown = []
    if "enum" in prop:
        shown.append(" | ".join(str(v) for v in prop["enum"] if v is not None))
    for key, sign in (("minimum", "≥"), ("maximum", "≤")):
        if key in prop:
            shown.append(f"{sign} {prop[key]}")
    if "maxLength" in prop:
        shown.append(f"≤ {prop['maxLength']} chars")
    if "maxItems" in prop:
        shown.append(f"≤ {prop['maxItems']} items")
    if "default" in prop and prop["default"] is not None:
        shown.append(f"default {prop['default']}")
    return ", ".join(shown)
