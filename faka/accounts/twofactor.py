"""Two-factor authentication: TOTP (RFC 6238, any authenticator app) and recovery codes.

The TOTP secret is stored encrypted with the vault, and only once the user has proved,
with a code from their app, that they scanned it. Ten single-use recovery codes are
made at the same time, shown once, and stored as argon2 hashes; they are random 40-bit
strings, so the light argon2 cost of query passwords is plenty. Wrong codes count toward
the account's lockout. A passkey (faka/accounts/passkeys.py) is a second factor too: an account
whose first second factor is a passkey gets recovery codes the same way.

A TOTP code is accepted once: the account remembers the time step of the last code it
accepted and refuses any code of that step or an earlier one (CodeAlreadyUsed), so a
code seen over a shoulder or caught by a phishing page is worthless once the owner used it.
"""

import hmac
import json
import secrets
import time

import pyotp
import segno
from flask_babel import lazy_gettext as _l
from markupsafe import Markup

from faka.accounts import lockout, sessions
from faka.accounts.models import User
from faka.core import clock
from faka.core.crypto import InvalidToken, vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.passwords import hash_query_password, verify_query_password
from faka.extensions import db
from faka.platform.models import AuditEvent
from faka.platform.settings import site_settings

RECOVERY_CODE_COUNT = 10
VALID_WINDOW = 1  # accept the previous and next 30-second code too: phone clocks drift


class WrongCode(DomainError):
    message = _l("That code is not right. Check that your phone's clock is correct and try again.")


class CodeAlreadyUsed(DomainError):
    message = _l("That code was already used. Wait for the next code from your authenticator app and enter that one.")


class AccountLocked(DomainError):
    message = _l("Too many wrong attempts: the account is locked for a while. Please log in again later.")


class AlreadyEnabled(DomainError):
    message = _l("Two-factor authentication is already on.")


class NotEnabled(DomainError):
    message = _l("Two-factor authentication is not on.")


def needs_setup(user) -> bool:
    """Operators must use two-factor authentication (an authenticator app or a passkey);
    send one without it to the setup page before any operator page."""
    return bool(user.is_authenticated and user.is_operator and not user.two_factor_enabled)


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


def enable(
    user_id: int,
    secret: str,
    code: str,
    current_session: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> tuple[list[str], str]:
    """Turn two-factor authentication on once `code` proves the app holds `secret`, and
    end the account's other sessions (whoever was logged in with the password alone);
    the one asking (`current_session`, its id) goes on under a new id
    (sessions.renew_session). Returns the recovery codes, which are never shown again,
    and the new session id."""
    step = _totp_step(secret, code)
    if step is None:
        raise WrongCode()
    codes, hashes = new_recovery_codes()  # before the write lock
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if user.totp_enabled:
            raise AlreadyEnabled()
        user.totp_secret = vault().encrypt(secret)
        user.totp_last_step = step
        user.recovery_codes = hashes
        _ended, session_id = sessions.renew_session(user.id, current_session, ip, user_agent)
        db.session.add(AuditEvent(actor_id=user.id, action="2fa.enabled", target=f"user:{user.id}"))
    return codes, session_id


def disable(user_id: int, code: str) -> None:
    """Turn two-factor authentication off; needs a current code (or a recovery code)."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        if not user.totp_enabled:
            raise NotEnabled()
        if not _check_code(user, code):
            raise WrongCode()
        user.totp_secret = None
        user.totp_last_step = None
        if not user.passkeys:  # with a passkey left, the codes stay its way back
            user.recovery_codes = None
        db.session.add(AuditEvent(actor_id=user.id, action="2fa.disabled", target=f"user:{user.id}"))


def recovery_codes_left(user: User) -> int:
    return len(json.loads(user.recovery_codes or "[]"))


def new_recovery_codes() -> tuple[list[str], str]:
    """Fresh recovery codes, to show once, and their hashes, to store (users.recovery_codes)."""
    codes = [_new_recovery_code() for _ in range(RECOVERY_CODE_COUNT)]
    return codes, json.dumps([hash_query_password(_normalised(c)) for c in codes])


# -- logging in -------------------------------------------------------------------------


def verify_login(user_id: int, code: str) -> User:
    """The second step of a login: the user when `code` is a current TOTP code not used
    before or an unused recovery code (which is then spent). A wrong code counts toward
    the lockout: WrongCode, or AccountLocked once locked; a code already used is refused
    (CodeAlreadyUsed) without counting, as it is most likely the owner's own, sent twice."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        now = clock.now()
        if user is None or not user.two_factor_enabled:
            raise WrongCode()
        if lockout.is_locked(user, now):
            raise AccountLocked()
        accepted = _check_code(user, code)  # CodeAlreadyUsed: rolled back, not counted
        if accepted:
            user.failed_logins = 0
            user.locked_until = None
            return user
        lockout.record_failed_login(user, now)
        locked = lockout.is_locked(user, now)
    # The wrong code's count is committed; then refused.
    raise AccountLocked() if locked else WrongCode()


# -- codes ------------------------------------------------------------------------------


def _normalised(code: str) -> str:
    return "".join(code.split()).replace("-", "").lower()


def _totp_step(secret: str, code: str) -> int | None:
    """The time step whose code `code` is, within VALID_WINDOW steps of now; else None."""
    code = _normalised(code or "")
    if len(code) != 6 or not code.isdigit():
        return None
    totp = pyotp.TOTP(secret)
    now = totp.timecode(time.time())
    for step in range(now - VALID_WINDOW, now + VALID_WINDOW + 1):
        if hmac.compare_digest(totp.generate_otp(step), code):
            return step
    return None


def _new_recovery_code() -> str:
    raw = secrets.token_hex(5)
    return f"{raw[:5]}-{raw[5:]}"


def _check_code(user: User, code: str) -> bool:
    """Whether `code` is the user's current TOTP code or one of their unused recovery
    codes, inside the caller's transaction: a TOTP code's step is remembered, a recovery
    code that matches is removed. A TOTP code whose step is not newer than the last one
    accepted raises CodeAlreadyUsed."""
    code = _normalised(code or "")
    if len(code) == 6 and code.isdigit():
        if not user.totp_enabled:  # a passkey is the second factor: only recovery codes are typed
            return False
        step = _totp_step(vault().decrypt(user.totp_secret), code)
        if step is None:
            return False
        if user.totp_last_step is not None and step <= user.totp_last_step:
            raise CodeAlreadyUsed()
        user.totp_last_step = step
        return True
    if not code or len(code) > 32:
        return False
    hashes = json.loads(user.recovery_codes or "[]")
    for i, stored in enumerate(hashes):
        if verify_query_password(stored, code):
            del hashes[i]
            user.recovery_codes = json.dumps(hashes)
            db.session.add(
                AuditEvent(
                    actor_id=user.id,
                    action="2fa.recovery_code_used",
                    target=f"user:{user.id}",
                    detail=f"{len(hashes)} left",
                )
            )
            return True
    return False
