"""Friendly error pages in both languages; never a stack trace.

Three errors are also what probing looks like: a form without a valid CSRF token, a rate
limit hit, and a request for another product's admin path (PROBE_PATHS). Each is logged
as a security event, which the risk rule `security_noise` counts per address. A flood
must not become a flood of writes, so each address gets a small budget of such events a
minute (per process) and the rest are only answered.
"""

import logging
import math
import time

from flask import current_app, jsonify, make_response, render_template, request
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_wtf.csrf import CSRFError
from sqlalchemy.exc import SQLAlchemyError
from werkzeug.exceptions import HTTPException, InternalServerError

from faka.extensions import db, limiter
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent
from faka.web import device
from faka.web.htmx import wants_partial

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
CSRF_TITLE = _l("The form expired")
CSRF_MESSAGE = _l("The form expired or was sent from elsewhere. Please reload the page and try again.")

# What scanners look for on every site they find: other software's admin pages and files
# left where they should not be. faka has none of them (its back office is /operator), so
# a request for one is a probe. Matched as a prefix of the lower-cased path, on 404s only.
PROBE_PATHS = (
    "/wp-admin",
    "/wp-login.php",
    "/xmlrpc.php",  # WordPress
    "/admin",  # generic back offices, also /administrator and /adminer.php
    "/phpmyadmin",
    "/pma/",  # database consoles
    "/.env",
    "/.git/",
    "/config.php",  # configuration and source left on the server
    "/vendor/phpunit",
    "/cgi-bin/",  # old remote-code-execution holes
)

NOISE_MINUTE = 60
# Security events recorded per address and kind each minute. One rate limit or CSRF
# failure a minute says enough; probes get as many as the risk rule needs to notice a
# scan, so one burst of them is enough.
NOISE_BUDGETS = {
    SecurityEvent.RATE_LIMITED: 1,
    SecurityEvent.CSRF_FAILED: 1,
    SecurityEvent.ADMIN_PROBE: engine.NOISE_EVENTS,
}


def is_probe(path: str) -> bool:
    return path.lower().startswith(PROBE_PATHS)


def record_noise(kind: str) -> None:
    """Log this request as a security event of `kind`, within the address's budget."""
    ip = request.remote_addr
    cache = current_app.extensions["faka_pagecache"]
    key = ("security-noise", kind, ip, int(time.time() // NOISE_MINUTE))
    recorded = cache.get(key) or 0
    if recorded >= NOISE_BUDGETS[kind]:
        return
    cache.set(key, recorded + 1, NOISE_MINUTE)
    try:
        db.session.rollback()  # the failed request's own work is not kept
        security_events.record(kind, ip, device.device_hash(), subject=request.path)
    except SQLAlchemyError:
        # The answer matters more than the log line: the visitor still gets the page.
        db.session.rollback()
        log.exception("could not record a %s security event for %s", kind, ip)


def _render(code: int, title=None, message=None):
    default_title, default_message = MESSAGES.get(code, MESSAGES[500 if code >= 500 else 400])
    title, message = title or default_title, message or default_message
    if (
        request.path.startswith("/pay/")
        and request.path.endswith("/notify")
        or request.accept_mimetypes.best == "application/json"
    ):
        return make_response(jsonify(error=str(title)), code)
    template = "errors/_error.html" if wants_partial() else "errors/error.html"
    return make_response(render_template(template, code=code, title=title, message=message), code)


def _retry_after() -> int:
    """Seconds until the limit that was hit lets this client in again."""
    hit = limiter.current_limit
    return max(1, int(hit.reset_at - time.time())) if hit is not None else NOISE_MINUTE


def init_app(app) -> None:
    @app.errorhandler(CSRFError)
    def csrf_error(exc):
        record_noise(SecurityEvent.CSRF_FAILED)
        return _render(400, CSRF_TITLE, CSRF_MESSAGE)

    @app.errorhandler(429)
    def too_many_requests(exc):
        record_noise(SecurityEvent.RATE_LIMITED)
        wait = _retry_after()
        slow_down = (
            _("You are going too fast. Please try again in about %(minutes)s minutes.", minutes=math.ceil(wait / 60))
            if wait > 90
            else None
        )
        response = _render(429, message=slow_down)
        response.headers["Retry-After"] = str(wait)
        return response

    @app.errorhandler(HTTPException)
    def http_error(exc: HTTPException):
        if exc.code == 404 and request.url_rule is None and is_probe(request.path):
            record_noise(SecurityEvent.ADMIN_PROBE)
        # An error of ours may say more than its code (an upload route names its limit).
        return _render(exc.code or 500, message=getattr(exc, "message", None))

    @app.errorhandler(Exception)
    def unhandled(exc: Exception):
        if isinstance(exc, HTTPException):
            return http_error(exc)
        log.exception("unhandled error on %s %s", request.method, request.path)
        # After a failed statement the session refuses every query until rolled back, and
        # the error page reads the site settings (PostgreSQL).
        db.session.rollback()
        return _render(InternalServerError.code)
