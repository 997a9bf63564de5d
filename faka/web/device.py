"""The device cookie: a random 128-bit id that each browser keeps for a long time.

Risk rules compare devices (the merchant's own browser buying from its shop, one browser
placing many orders), so orders and sign-ins record `device_hash()`, a keyed HMAC of the
cookie: the raw value, which is what a visitor presents, is never stored. The cookie is a
response header set on the way out, so cached page bodies never contain it.
"""

import hashlib
import hmac
import re
import secrets

from flask import current_app, g, request

from faka.web.security import passive_request

COOKIE = "faka_device"
MAX_AGE = 2 * 365 * 24 * 3600  # long enough to recognise a returning browser
_VALID = re.compile(r"[0-9a-f]{32}")


def _device_id() -> str:
    """This request's device id: the browser's cookie, or a new id that the response
    sets (a first visit may post straight away, e.g. a login)."""
    if "device_id" not in g:
        value = request.cookies.get(COOKIE, "")
        if _VALID.fullmatch(value):
            g.device_id, g.device_new = value, False
        else:
            g.device_id, g.device_new = secrets.token_hex(16), True
    return g.device_id


def _key() -> bytes:
    # Derived, so the HMAC key is never the session-signing key itself.
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, b"faka.web.device-cookie", hashlib.sha256).digest()


def device_hash() -> str:
    """The keyed hash of this request's device cookie (64 hex characters)."""
    return hmac.new(_key(), _device_id().encode(), hashlib.sha256).hexdigest()


def _set_cookie(response):
    if passive_request():  # files and polls are loaded by a page, which set the cookie
        return response
    _device_id()
    if g.device_new:
        response.set_cookie(
            COOKIE,
            g.device_id,
            max_age=MAX_AGE,
            httponly=True,
            samesite="Lax",
            secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),
        )
    return response


def init_app(app) -> None:
    app.after_request(_set_cookie)
