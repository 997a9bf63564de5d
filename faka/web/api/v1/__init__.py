"""The merchant REST API at /api/v1 (docs/api.md).

flask-smorest builds the OpenAPI 3.1 document from the code (the schemas in schemas.py,
the decorators on each operation) and serves it at /api/v1/openapi.json; the back office
renders it as the reference page (faka/web/merchant/api_keys.py).

The pieces:
- resource.py: `Resource`, one flask-smorest Blueprint per resource, nested here under
  the `api_v1` blueprint (RESOURCES below: adding a resource is one module and one name).
- auth.py: `@requires("products:read")`, the API key, its scopes, allow-list and rate
  limit; `@public` for operations without a key; the call log.
- errors.py: JSON errors `{"error": {"code", "message", "fields"}}`, registered on this
  blueprint only (flask-smorest's app-wide handlers are not installed, so the HTML site's
  error pages are unchanged); `ApiError` and DomainError → 404/422.
- idempotency.py: `@idempotent` for POSTs that create (the Idempotency-Key header).
- pagination.py: cursor pages, `{"items", "next_cursor"}`.

The API is CSRF-exempt: it authenticates by its header only, never by the session cookie,
so a browser's cookies give a page on another site nothing to borrow.
"""

import threading

import flask_smorest
from flask import Blueprint, current_app, g, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.exceptions import NotFound as NoRoute

from faka.extensions import csrf, limiter
from faka.web.api.v1 import (
    auth,
    complaints,
    coupons,
    errors,
    fields,
    keys,
    licenses,
    money,
    orders,
    products,
    push,
    variants,
    webhooks,
)
from faka.web.api.v1.resource import RESPONSE_NAMES
from faka.web.api.v1.schemas import ErrorSchema

PREFIX = "/api/v1"
# The resources, each a module of this package with a `bp` (a Resource); their order is
# the reference's.
RESOURCES = (products, variants, fields, keys, licenses, orders, coupons, complaints, money, webhooks, push)

DESCRIPTION = """\
The merchant API of faka: your shop, from your own programs.

**Keys.** Make a key in the back office (API keys). Send it in every request as
`Authorization: Bearer fk_live_...`. A key has scopes (read or write per area; write includes read), may be
limited to some addresses, and may expire. The session cookie of the back office is never accepted.

**Errors** are JSON: `{"error": {"code": "not_found", "message": "...", "fields": {...}}}`. `code` is stable;
`message` is in the language the key was made in; `fields` names each invalid input. Another merchant's object
answers 404 exactly as one that does not exist.

**Rate limit.** Each key has one budget for every call (by default 120 a minute). Past it: 429 with
`Retry-After` (seconds). `X-RateLimit-Limit`, `-Remaining` and `-Reset` come with every answer to a key.

**Idempotency.** A POST that creates something accepts an `Idempotency-Key` header (a UUID, say): the same
request sent again with it within 24 hours answers what the first did, with `Idempotent-Replayed: true`,
and creates nothing twice.

**Lists** take `?cursor=&limit=` (1 to 100, default 20) and answer `{"items": [...], "next_cursor": "..."}`;
pass `next_cursor` as `cursor` for the next page, until it is null. Lists run oldest first.

**Money** is in minor units (fen): 1000 is ¥10.00.

**Frozen or rejected shops** can read but not write: writes answer 403 `merchant_frozen` or `merchant_rejected`.
"""

ERROR_RESPONSES = {
    400: "The request could not be read: a query string or JSON body that does not parse or is not UTF-8, "
    "an invalid cursor (`invalid_cursor`) or Idempotency-Key (`invalid_idempotency_key`).",
    401: "No key, or a key that does not exist (`invalid_key`), has expired (`key_expired`) or was revoked "
    "(`key_revoked`).",
    403: "The key may not do this: a missing scope (`insufficient_scope`), an address not on its allow-list "
    "(`address_not_allowed`), or a write while the shop is frozen or rejected (`merchant_frozen`, "
    "`merchant_rejected`).",
    404: "No such object among yours (another merchant's answers the same).",
    409: "A request with the same Idempotency-Key is still running (`idempotency_key_in_use`).",
    422: "Invalid input (`invalid`, with `fields`), an Idempotency-Key used for a different request "
    "(`idempotency_key_reused`), or a rule of the shop (the code names it, e.g. `invalid_product`).",
    429: "Too many requests with this key (or with invalid keys from this address): wait `Retry-After` seconds.",
}


class FakaApi(flask_smorest.Api):
    """flask-smorest, with faka's error shape and no app-wide error handlers."""

    ERROR_SCHEMA = ErrorSchema
    DEFAULT_ERROR_RESPONSE_NAME = None  # each operation lists exactly the errors it can answer

    def _register_error_handlers(self):
        # Left to errors.register(bp): flask-smorest would answer every HTTP error of the
        # whole site (its HTML pages included) in JSON.
        pass

    def _register_responses(self):
        for status, description in ERROR_RESPONSES.items():
            response = {"description": description, "content": {"application/json": {"schema": self.ERROR_SCHEMA}}}
            if status == 429:
                response["headers"] = {
                    "Retry-After": {"description": "Seconds to wait.", "schema": {"type": "integer", "minimum": 1}}
                }
            self.spec.components.response(RESPONSE_NAMES[status], response, lazy=True)


bp = flask_smorest.Blueprint("api_v1", __name__, url_prefix=PREFIX)
for resource in RESOURCES:
    bp.register_blueprint(resource.bp)
    csrf.exempt(resource.bp)
csrf.exempt(bp)
errors.register(bp)


@bp.before_request
def start_call():
    auth.choose_language()
    # Programs, not browsers: no device cookie (faka/web/device.py).
    g.device_id, g.device_new = "", False
    if request.method == "OPTIONS":
        # Flask's own answer would list the catch-all's methods too (below).
        allowed = _allowed_methods()
        if not allowed:
            raise NoRoute()
        return current_app.response_class(status=204, headers={"Allow": ", ".join(sorted(allowed))})
    return None


@bp.after_request
def finish_call(response):
    auth.rate_headers(response)
    response.headers.setdefault("Cache-Control", "no-store")
    auth.log_call(response)
    return response


def openapi_json():
    """The OpenAPI document: public, like this API's documentation."""
    response = jsonify(spec(current_app))
    response.headers["Cache-Control"] = "public, max-age=300"
    return response


def no_such_operation(rest: str = ""):
    """Whatever else is asked under /api/v1: 405 where the path exists with other
    methods, else 404, in JSON like every other answer here."""
    allowed = _allowed_methods()
    if allowed:
        raise MethodNotAllowed(valid_methods=sorted(allowed))
    raise NoRoute()


def _allowed_methods() -> set[str]:
    """The methods this request's path answers, leaving out the catch-all's."""
    adapter = current_app.url_map.bind_to_environ(request.environ)
    allowed = set()
    for method in ("GET", "POST", "PUT", "PATCH", "DELETE"):
        try:
            endpoint, _args = adapter.match(method=method)
        except HTTPException:
            continue
        if endpoint != f"{bp.name}.no_such_operation":
            allowed.add(method)
    if "GET" in allowed:
        allowed.add("HEAD")
    return allowed | {"OPTIONS"} if allowed else set()


def _unknown_operation_limit() -> str:
    return current_app.config["API_AUTH_FAILURE_LIMIT"]


# Per address, like requests without a valid key: both look around rather than work.
no_such_operation = limiter.limit(_unknown_operation_limit)(no_such_operation)

# Plain Flask rules: they are not operations of the document.
Blueprint.add_url_rule(bp, "/openapi.json", "openapi_json", openapi_json)
_ALL_METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "TRACE", "CONNECT"]
Blueprint.add_url_rule(bp, "/", "no_such_operation", no_such_operation, methods=_ALL_METHODS)
Blueprint.add_url_rule(bp, "/<path:rest>", "no_such_operation", no_such_operation, methods=_ALL_METHODS)


_documenting = threading.Lock()


def init_app(app) -> None:
    api = FakaApi(
        spec_kwargs={
            "title": "faka merchant API",
            "version": "1",
            "openapi_version": "3.1.0",
            "info": {"description": DESCRIPTION},
        }
    )
    api.init_app(app)
    api.spec.components.security_scheme(
        "bearerAuth", {"type": "http", "scheme": "bearer", "description": "An API key: fk_live_..."}
    )
    app.register_blueprint(bp)
    app.extensions["flask-smorest"]["blp_name_to_api"][bp.name] = api
    app.extensions["faka_api"] = api


def spec(app) -> dict:
    """The OpenAPI document of this app, as a dict. It is built at the first request for
    it, not with the app: describing every operation's schemas takes a quarter of the
    time create_app() takes otherwise, and most processes never serve the document."""
    api = app.extensions["faka_api"]
    if not hasattr(api, "document"):
        with _documenting:
            if not hasattr(api, "document"):
                bp.register_views_in_doc(api, app, api.spec, name=bp.name, parameters=None)
                for resource in RESOURCES:
                    api.spec.tag({"name": resource.bp.name, "description": resource.bp.description})
                api.document = api.spec.to_dict()
    return api.document


__all__ = ["RESOURCES", "bp", "init_app", "spec"]
