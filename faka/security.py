"""Security headers on every response (pages, partials, errors, static files, uploads),
cookies marked Secure over HTTPS, and how uploaded images are served.

Behind a reverse proxy that terminates TLS, FAKA_PROXY_COUNT makes the proxy's
X-Forwarded-Proto count (faka/instance.py): HTTPS requests then get HSTS and Secure
cookies. HSTS=True (FAKA_HSTS) sends HSTS on every response, for a proxy that does not say
which scheme it served.
"""
from pathlib import Path

from flask import has_request_context, request, send_file
from flask.sessions import SecureCookieSessionInterface

from faka.services.uploads import content_type

CSP = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"
)

# Powerful browser features no faka page uses: a page that is ever injected into still cannot ask for them.
PERMISSIONS_POLICY = ("accelerometer=(), camera=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), "
                      "payment=(), usb=()")
HSTS = "max-age=31536000; includeSubDomains"
# An uploaded image opened on its own is a document of its own: no scripts, no plugins,
# no same-origin access even if a browser mistook it for HTML. (The browser's own image
# viewer styles itself inline; styles cannot run anything.)
UPLOAD_CSP = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'none'; sandbox"


class SessionInterface(SecureCookieSessionInterface):
    """The signed session cookie, marked Secure on every HTTPS request (as the device
    cookie is), not only when SESSION_COOKIE_SECURE says so."""

    def get_cookie_secure(self, app) -> bool:
        return super().get_cookie_secure(app) or (has_request_context() and request.is_secure)


def image_response(path: Path, private: bool = True, max_age: int = 86400):
    """An uploaded image (re-encoded by faka/services/uploads.py) with its exact type,
    shown inline under its own random name, sandboxed. A private image (evidence,
    licences) is never stored by a cache and never embedded by another site."""
    response = send_file(path, mimetype=content_type(path), download_name=path.name, as_attachment=False,
                         conditional=not private, etag=not private, max_age=None if private else max_age)
    response.headers["Content-Security-Policy"] = UPLOAD_CSP
    if private:
        response.headers["Cache-Control"] = "private, no-store"
        response.headers["Cross-Origin-Resource-Policy"] = "same-origin"
    return response


def init_app(app) -> None:
    force_hsts = app.config.get("HSTS")
    app.session_interface = SessionInterface()

    @app.after_request
    def set_headers(response):
        headers = response.headers
        headers.setdefault("Content-Security-Policy", CSP)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Permissions-Policy", PERMISSIONS_POLICY)
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if force_hsts or request.is_secure:
            headers.setdefault("Strict-Transport-Security", HSTS)
        return response
