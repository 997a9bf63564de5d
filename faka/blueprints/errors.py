"""Friendly error pages in both languages; never a stack trace."""
import logging

from flask import jsonify, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from werkzeug.exceptions import HTTPException, InternalServerError

log = logging.getLogger(__name__)

MESSAGES = {
    400: (_l("Bad request"), _l("Something in the request was not right. Please go back and try again.")),
    403: (_l("Not allowed"), _l("You do not have access to this page.")),
    404: (_l("Not found"), _l("This page does not exist, or the link has expired.")),
    405: (_l("Not allowed"), _l("That action is not available here.")),
    413: (_l("Too large"), _l("The upload is too large.")),
    429: (_l("Too many requests"), _l("You are going too fast. Please wait a minute and try again.")),
    500: (_l("Something went wrong"), _l("Our fault, not yours. Please try again in a moment.")),
}


def _render(code: int, detail=None):
    title, message = MESSAGES.get(code, MESSAGES[500 if code >= 500 else 400])
    if request.path.startswith("/pay/") and request.path.endswith("/notify") or request.accept_mimetypes.best == "application/json":
        return jsonify(error=str(title)), code
    return render_template("errors/error.html", code=code, title=title, message=detail or message), code


def init_app(app) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        return _render(400, _l("The form expired or was sent from elsewhere. Please reload the page and try again."))

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        return _render(exc.code or 500)

    @app.errorhandler(Exception)
    def unhandled(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        return _render(InternalServerError.code)
