"""Re-authentication: a logged-in user proves again, with their password and second
factor, that they are the one at the keyboard before a secret is shown."""

from flask_babel import lazy_gettext as _l

from faka.accounts import twofactor
from faka.accounts.lockout import is_locked, record_failed_login
from faka.accounts.models import User
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.passwords import verify_login_password
from faka.extensions import db
from faka.risk import security_events
from faka.risk.models import SecurityEvent


class WrongPassword(DomainError):
    message = _l("That password is not right.")


def reauthenticate(
    user_id: int, password: str, code: str | None, ip: str | None = None, device_hash: str | None = None
) -> None:
    """Confirm that a logged-in user is still the one at the keyboard before a secret is
    shown: their password, and their second-factor code when it is on. A wrong answer
    counts toward the account's lockout, as a wrong second-factor code at login does (and
    is a failed-login security event); raises WrongPassword, twofactor.WrongCode,
    twofactor.CodeAlreadyUsed or twofactor.AccountLocked."""
    now = clock.now()
    # A refusal keeps its security event and the failure's count: committed, then raised.
    with write_transaction(commit_on=(twofactor.AccountLocked, WrongPassword)):
        user = db.session.get(User, user_id, with_for_update=True)
        if user is None or is_locked(user, now):
            security_events.add(
                SecurityEvent.LOGIN_FAILED,
                ip,
                device_hash,
                subject=f"user:{user_id}",
                detail="re-authentication, locked",
                now=now,
            )
            raise twofactor.AccountLocked()
        if not verify_login_password(user.password_hash, password or ""):
            record_failed_login(user, now)
            security_events.add(
                SecurityEvent.LOGIN_FAILED,
                ip,
                device_hash,
                subject=f"user:{user_id}",
                detail="re-authentication",
                now=now,
            )
            raise twofactor.AccountLocked() if is_locked(user, now) else WrongPassword()
        if not user.two_factor_enabled:  # (with a passkey: a recovery code here, or the passkey alone at /reauth)
            user.failed_logins = 0
            user.locked_until = None
            return
    twofactor.verify_login(user_id, code or "")
