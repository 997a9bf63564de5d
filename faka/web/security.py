"""Security headers on every response (pages, partials, errors, static files, uploads),
cookies marked Secure over HTTPS, and how uploaded images are served (a storage that cannot
be reached answers 503 with Retry-After).

Behind a reverse proxy that terminates TLS, FAKA_PROXY_COUNT makes the proxy's
X-Forwarded-Proto count (faka/core/instance.py): HTTPS requests then get HSTS and Secure
cookies. HSTS=True (FAKA_HSTS) sends HSTS on every response, for a proxy that does not say
which scheme it served.
"""

import logging
import re

from flask import Response, has_request_context, request
from flask.sessions import SecureCookieSession, SecureCookieSessionInterface
from flask_babel import lazy_gettext as _l
from werkzeug.exceptions import ServiceUnavailable

from faka.core.storage import StorageError, StoredFile
from faka.core.uploads import content_type
from faka.extensions import csrf, db

log = logging.getLogger(__name__)

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# Powerful browser features no faka page uses: a page that is ever injected into still cannot ask for them.
PERMISSIONS_POLICY = (
    "accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), payment=(), usb=()"
)
HSTS = "max-age=31536000; includeSubDomains"
# An uploaded image opened on its own is a document of its own: no scripts, no plugins,
# no same-origin access even if a browser mistook it for HTML. (The browser's own image
# viewer styles itself inline; styles cannot run anything.)
UPLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


# Requests that never need the visitor's session: static files, product images and the site's
# theme, logo, icons and manifest (public and cached: they must never carry a cookie) and the polled
# order status (its language comes in its URL). Checking the signed cookie is the largest
# single cost of a poll, which every waiting buyer sends every 2 seconds.
SESSIONLESS_PATH = re.compile(
    r"/static/|/images/|/site/(?:theme\.css|icons/|logo/|manifest\.webmanifest)|/order/[^/]+/status\Z"
)


class UnreadSession(SecureCookieSession):
    """The session of a sessionless request: empty, never decoded, never saved, so the
    visitor's cookie stays as it was whatever the request writes."""


class SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie, marked Secure on every HTTPS request (as the device
    cookie is), not only when SESSION_COOKIE_SECURE says so, and left unread by the
    requests that do not need it."""

    def open_session(self, app, request):
        if passive_request():
            return UnreadSession()
        return super().open_session(app, request)

    def is_null_session(self, obj) -> bool:
        return isinstance(obj, UnreadSession) or super().is_null_session(obj)

    def get_cookie_secure(self, app) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


IMMUTABLE = "public, max-age=31536000, immutable"
PUBLIC_MAX_AGE = 86400
STORAGE_RETRY_AFTER = 30  # seconds: a database failover or restart


class StorageUnreachable(ServiceUnavailable):
    """The storage cannot be reached; the error page shows `message`."""

    message = _l("Uploaded files cannot be read right now. Please try again in a moment.")


def image_response(stored: StoredFile, private: bool = True, max_age: int = PUBLIC_MAX_AGE, immutable: bool = False):
    """An uploaded image (re-encoded by faka/core/uploads.py) with its exact type,
    shown inline under its own random name, sandboxed, streamed chunk by chunk from the
    storage (faka/core/storage.py). A private image (evidence, licences) is never stored
    by a cache and never embedded by another site. A public one is revalidated by its
    name, which never names other bytes (`not_modified`, before the storage is asked),
    and by when it was stored; an immutable one (named by the hash of its content) is kept
    by every cache for a year."""
    response = Response(stored.chunks, mimetype=content_type(stored.name), direct_passthrough=True)
    response.content_length = stored.size
    response.headers["Content-Disposition"] = f"inline; filename={stored.name}"
    response.headers["Content-Security-Policy"] = UPLOAD_CSP
    if private:
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
        return response
    _cached_publicly(response, stored.name, max_age, immutable)
    if stored.modified is not None:
        response.last_modified = stored.modified
    return response.make_conditional(request)


def not_modified(name: str, max_age: int = PUBLIC_MAX_AGE, immutable: bool = False) -> Response | None:
    """304 when the browser holds the public image of this name already (If-None-Match),
    answered from the name alone: a stored name never names other bytes, so neither the
    database nor the storage is asked. None otherwise."""
    if not request.if_none_match.contains_weak(name):  # weak comparison, as RFC 9110 has for GET
        return None
    response = Response(status=304)
    _cached_publicly(response, name, max_age, immutable)
    return response


def _cached_publicly(response: Response, name: str, max_age: int, immutable: bool) -> None:
    response.set_etag(name)
    if immutable:
        response.headers["Cache-Control"] = IMMUTABLE
    else:
        response.cache_control.public = True
        response.cache_control.max_age = max_age


# Every response's security headers, unless the response set its own value (uploads set
# their own CSP).
HEADERS = (
    ("Content-Security-Policy", CSP),
    ("X-Content-Type-Options", "nosniff"),
    ("X-Frame-Options", "DENY"),
    ("Referrer-Policy", "same-origin"),
    ("Permissions-Policy", PERMISSIONS_POLICY),
    ("Cross-Origin-Opener-Policy", "same-origin"),
)
HSTS_HEADER = ("Strict-Transport-Security", HSTS)


def passive_request() -> bool:
    """Whether this request is one that neither reads nor sets any cookie: a static file
    or a status poll (see SESSIONLESS_PATH)."""
    return SESSIONLESS_PATH.match(request.path) is not None


def _add_missing(headers, wanted) -> None:
    # One pass over the response's few headers instead of a search per security header:
    # this runs on every response, polls included.
    present = {name.lower() for name in headers.keys()}
    for name, value in wanted:
        if name.lower() not in present:
            headers.add(name, value)


def init_app(app) -> None:
    force_hsts = app.config.get("HSTS")
    app.session_interface = SessionInterface()

    @app.before_request
    def check_csrf():
        # Flask-WTF's own hook (off: WTF_CSRF_CHECK_DEFAULT) works out whether the view is
        # exempt before it looks at the method; most requests are GETs, which need neither.
        if app.config["WTF_CSRF_ENABLED"] and request.method in app.config["WTF_CSRF_METHODS"]:
            csrf.protect(apply_exemptions=True)

    @app.errorhandler(StorageError)
    def storage_unavailable(exc: StorageError):
        # The database storage cannot be reached (a restart, a failover): logged for the
        # operator, and the visitor is asked to try again in a moment, in their language.
        log.error("the upload storage failed on %s %s: %s", request.method, request.path, exc)
        db.session.rollback()
        response = app.make_response(app.handle_http_exception(StorageUnreachable()))
        response.headers["Retry-After"] = str(STORAGE_RETRY_AFTER)
        return response

    @app.after_request
    def set_headers(response):
        _add_missing(response.headers, HEADERS + (HSTS_HEADER,) if force_hsts or request.is_secure else HEADERS)
        return response
