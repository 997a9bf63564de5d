"""Two-factor authentication: TOTP (RFC 6238, any authenticator app) and recovery codes.

The TOTP secret is stored encrypted with the vault, and only once the user has proved,
with a code from their app, that they scanned it. Ten single-use recovery codes are
made at the same time, shown once, and stored as argon2 hashes; they are random 40-bit
strings, so the light argon2 cost of query passwords is plenty. Wrong codes at login
count toward the same lockout as wrong passwords.
"""
import json
import secrets

import pyotp
import segno
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from faka.database import begin_write
from faka.extensions import db
from faka.models import AuditEvent, User
from faka.services import accounts, clock
from faka.services.crypto import InvalidToken, vault
from faka.services.errors import DomainError
from faka.services.passwords import hash_query_password, verify_query_password
from faka.services.settings import site_settings

RECOVERY_CODE_COUNT = 10
VALID_WINDOW = 1  # accept the previous and next 30-second code too: phone clocks drift


class WrongCode(DomainError):
    message = _l("That code is not right. Check that your phone's clock is correct and try again.")


class AccountLocked(DomainError):
    message = _l("Too many wrong attempts: the account is locked for a while. Please log in again later.")


class AlreadyEnabled(DomainError):
    message = _l("Two-factor authentication is already on.")


class NotEnabled(DomainError):
    message = _l("Two-factor authentication is not on.")


def needs_setup(user) -> bool:
    """Operators must use two-factor authentication; send one without it to the setup
    page before any operator page."""
    return bool(user.is_authenticated and user.is_operator and not user.totp_enabled)


# -- setting up -------------------------------------------------------------------------

def new_secret() -> str:
    return pyotp.random_base32()


def seal(secret: str) -> str:
    """A secret waiting for confirmation, safe to keep in the session cookie."""
    return vault().encrypt(secret)


def unseal(sealed: str | None) -> str | None:
    if not sealed:
        return None
    try:
        return vault().decrypt(sealed)
    except (InvalidToken, ValueError):
        return None


def provisioning_uri(secret: str, email: str) -> str:
    return pyotp.TOTP(secret).provisioning_uri(name=email, issuer_name=site_settings()["site_name"])


def qr_svg(uri: str, title: str = "") -> Markup:
    """The URI as an inline SVG QR code: no image request, no data: URI, no script."""
    svg = segno.make(uri, error="m", micro=False).svg_inline(scale=5, light="#fff", title=title or None)
    return Markup(svg)


def enable(user_id: int, secret: str, code: str) -> list[str]:
    """Turn two-factor authentication on once `code` proves the app holds `secret`.
    Returns the recovery codes, which are never shown again."""
    if not _totp_ok(secret, code):
        raise WrongCode()
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    hashes = [hash_query_password(_normalised(c)) for c in codes]  # before the write lock
    begin_write()
    try:
        user = db.session.get(User, user_id, with_for_update=True)
        if user.totp_enabled:
            raise AlreadyEnabled()
        user.totp_secret = vault().encrypt(secret)
        user.recovery_codes = json.dumps(hashes)
        db.session.add(AuditEvent(actor_id=user.id, action="2fa.enabled", target=f"user:{user.id}"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return codes


def disable(user_id: int, code: str) -> None:
    """Turn two-factor authentication off; needs a current code (or a recovery code)."""
    begin_write()
    try:
        user = db.session.get(User, user_id, with_for_update=True)
        if not user.totp_enabled:
            raise NotEnabled()
        if not _check_code(user, code):
            raise WrongCode()
        user.totp_secret = None
        user.recovery_codes = None
        db.session.add(AuditEvent(actor_id=user.id, action="2fa.disabled", target=f"user:{user.id}"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise


def recovery_codes_left(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


# -- logging in -------------------------------------------------------------------------

def verify_login(user_id: int, code: str) -> User:
    """The second step of a login: the user when `code` is a current TOTP code or an
    unused recovery code (which is then spent). A wrong code counts toward the lockout:
    WrongCode, or AccountLocked once locked."""
    begin_write()
    user = db.session.get(User, user_id, with_for_update=True)
    now = clock.now()
    if user is None or not user.totp_enabled:
        db.session.rollback()
        raise WrongCode()
    if accounts.is_locked(user, now):
        db.session.rollback()
        raise AccountLocked()
    if _check_code(user, code):
        user.failed_logins = 0
        user.locked_until = None
        db.session.commit()
        return user
    accounts.record_failed_login(user, now)
    locked = accounts.is_locked(user, now)
    db.session.commit()
    raise AccountLocked() if locked else WrongCode()


# -- codes ------------------------------------------------------------------------------

def _normalised(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _totp_ok(secret: str, code: str) -> bool:
    code = _normalised(code or "")
    return len(code) == 6 and code.isdigit() and pyotp.TOTP(secret).verify(code, valid_window=VALID_WINDOW)


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


def _check_code(user: User, code: str) -> bool:
    """Whether `code` is the user's current TOTP code or one of their unused recovery
    codes; a recovery code that matches is removed (inside the caller's transaction)."""
    code = _normalised(code or "")
    if len(code) == 6 and code.isdigit():
        return _totp_ok(vault().decrypt(user.totp_secret), code)
    if not code or len(code) > 32:
        return False
    hashes = json.loads(user.recovery_codes or "[]")
    for i, stored in enumerate(hashes):
        if verify_query_password(stored, code):
            del hashes[i]
            user.recovery_codes = json.dumps(hashes)
            db.session.add(AuditEvent(actor_id=user.id, action="2fa.recovery_code_used", target=f"user:{user.id}",
                                      detail=f"{len(hashes)} left"))
            return True
    return False
