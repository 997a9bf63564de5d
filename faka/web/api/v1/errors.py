"""The API's errors: every answer that is not a success is JSON of one shape,

    {"error": {"code": "not_found", "message": "Not found.", "fields": {"title": ["..."]}}}

`code` is stable (programs branch on it), `message` is in the key owner's language, and
`fields` (only for invalid input) names each input at fault. The handlers are registered
on the API's blueprint only, so the HTML site's error pages stay as they are.

A view raises ApiError for an answer of its own, or lets a service's DomainError through:
NotFound (another merchant's object or none) is 404 `not_found`, any other is 422 with
the error's class name as its code (InvalidProduct: `invalid_product`).
"""

import logging
import re
import time

from flask import jsonify, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import HTTPException, InternalServerError, MethodNotAllowed

from faka.core.errors import DomainError, NotFound
from faka.extensions import db, limiter

log = logging.getLogger(__name__)

CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    406: "not_acceptable",
    409: "conflict",
    413: "too_large",
    415: "unsupported_media_type",
    422: "invalid",
    429: "rate_limited",
    500: "internal_error",
}
MESSAGES = {
    400: _l("The request could not be read."),
    401: _l("Send a valid API key: Authorization: Bearer fk_live_..."),
    403: _l("This key may not do that."),
    404: _l("Not found."),
    405: _l("That method is not allowed here."),
    409: _l("The request conflicts with another one."),
    413: _l("The request is too large."),
    415: _l("Send JSON: Content-Type: application/json."),
    422: _l("Check the fields marked in `fields`."),
    429: _l("Too many requests with this key. Wait and try again."),
    500: _l("Our fault, not yours. Please try again in a moment."),
}
# Marshmallow's own messages for the usual mistakes, translated when the catalogue has them
# (the rest stay in English).
FIELD_MESSAGES = {
    "Missing data for required field.": _l("Missing data for required field."),
    "Unknown field.": _l("Unknown field."),
    "Field may not be null.": _l("Field may not be null."),
    "Not a valid string.": _l("Not a valid string."),
    "Not a valid integer.": _l("Not a valid integer."),
    "Not a valid boolean.": _l("Not a valid boolean."),
    "Not a valid list.": _l("Not a valid list."),
    "Not a valid datetime.": _l("Not a valid datetime."),
    "Invalid input type.": _l("Invalid input type."),
    "Invalid JSON body.": _l("Invalid JSON body."),
    "Must be one of: {choices}.": _l("Must be one of: {choices}."),
}


class ApiError(HTTPException):
    """An error answer of the API: `status`, a stable `code`, a message for the key's owner,
    optionally the inputs at fault and extra headers."""

    def __init__(self, status: int, code: str, message=None, fields: dict | None = None, headers: dict | None = None):
        super().__init__()
        self.code = status
        self.api_code = code
        self.message = message
        self.fields = fields
        self.extra_headers = headers or {}


def error_response(status: int, code: str, message, fields: dict | None = None, headers: dict | None = None):
    error = {"code": code, "message": str(message)}
    if fields:
        error["fields"] = fields
    response = jsonify(error=error)
    response.status_code = status
    response.headers.update(headers or {})
    return response


def _field_messages(messages) -> dict[str, list[str]]:
    """webargs' messages ({"json": {"title": ["..."]}, "query": {...}}) as one mapping of
    input names to messages; a nested input is named by its path ("tiers.0.unit_price")."""
    found: dict[str, list[str]] = {}

    def walk(value, path):
        if isinstance(value, dict):
            for name, inner in value.items():
                walk(inner, [*path, str(name)])
        elif isinstance(value, (list, tuple)):
            if all(isinstance(m, str) for m in value):
                found.setdefault(".".join(path) or "_body", []).extend(_translated(m) for m in value)
            else:
                for inner in value:
                    walk(inner, path)
        else:
            found.setdefault(".".join(path) or "_body", []).append(_translated(str(value)))

    for location, inner in (messages or {}).items():
        walk(inner, [] if location in ("json", "query", "querystring", "headers", "view_args", "form") else [location])
    return found


def _translated(message: str) -> str:
    known = FIELD_MESSAGES.get(message)
    if known is not None:
        return str(known)
    choices = re.fullmatch(r"Must be one of: (.*)\.", message)
    if choices:
        return _("Must be one of: {choices}.").format(choices=choices.group(1))
    return message


def handle_http_error(exc: HTTPException):
    status = exc.code or 500
    data = getattr(exc, "data", None) or {}
    fields = getattr(exc, "fields", None)
    if fields is None and "messages" in data:
        fields = _field_messages(data["messages"])
    headers = dict(getattr(exc, "extra_headers", {}) or {})
    headers.update(data.get("headers") or {})
    if isinstance(exc, MethodNotAllowed) and exc.valid_methods:
        headers["Allow"] = ", ".join(exc.valid_methods)
    if status == 429 and "Retry-After" not in headers:
        headers["Retry-After"] = str(_seconds_to_wait())
    code = getattr(exc, "api_code", None) or CODES.get(status, "error")
    message = getattr(exc, "message", None) or MESSAGES.get(status) or exc.name
    return error_response(status, code, message, fields, headers)


def _seconds_to_wait() -> int:
    """Until the Flask-Limiter limit this request hit lets it in again."""
    hit = limiter.current_limit
    return max(1, int(hit.reset_at - time.time())) if hit is not None else 60


def handle_domain_error(exc: DomainError):
    if isinstance(exc, NotFound):
        return error_response(404, "not_found", MESSAGES[404])
    field = getattr(exc, "field", None)
    fields = {field: [str(exc.message)]} if isinstance(field, str) else None
    return error_response(422, snake_case(type(exc).__name__), exc.message, fields)


def handle_unexpected(exc: Exception):
    if isinstance(exc, HTTPException):
        return handle_http_error(exc)
    log.exception("unhandled error on %s %s", request.method, request.path)
    db.session.rollback()
    return error_response(500, CODES[500], MESSAGES[InternalServerError.code])


def snake_case(name: str) -> str:
    return re.sub(r"(?<!^)(?=[A-Z])", "_", name).lower()


def register(blueprint) -> None:
    """JSON errors for everything under `blueprint`. Flask looks for a handler by status
    code before it looks by class, app-wide ones included (faka/web/errors.py has code
    handlers for 400 and 429), so each code gets its own here."""
    for status in (400, 401, 403, 404, 405, 406, 409, 413, 415, 422, 429, 500):
        blueprint.register_error_handler(status, handle_http_error)
    blueprint.register_error_handler(HTTPException, handle_http_error)
    blueprint.register_error_handler(DomainError, handle_domain_error)
    blueprint.register_error_handler(Exception, handle_unexpected)
