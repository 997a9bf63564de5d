"""Login: the password step with its throttling, the browsers an account knows, and the
record of a completed sign-in.

Wrong login passwords slow down the one address they come from, for that one account,
with growing delays and then the captcha, while the owner elsewhere, or on a browser that
has logged in to the account before, is not slowed down. They never lock the account
(lockout.py).
"""

import hashlib
import hmac
import math
from datetime import datetime
from functools import cache

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from faka.accounts.lockout import FREE_LOGIN_FAILURES, LOGIN_FAILURE_MEMORY, is_locked, login_delay
from faka.accounts.models import User
from faka.accounts.sessions import start_session
from faka.accounts.users import find_user, normalised_email
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.passwords import hash_login_password, verify_login_password
from faka.extensions import db
from faka.reviews import reviews
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent, SignIn


class LoginThrottled(DomainError):
    """Too many wrong passwords for this account from this address: wait `seconds`."""

    def __init__(self, seconds: int):
        super().__init__(
            _l(
                "Too many failed logins for this account from here. Please try again in %(seconds)s seconds.",
                seconds=seconds,
            )
        )
        self.seconds = seconds


class LoginCaptchaRequired(DomainError):
    message = engine.CaptchaRequired.message


@cache
def _dummy_hash() -> str:
    # Verified against for unknown emails, so they cost as much as a wrong password.
    return hash_login_password("faka-timing-equaliser")


def _known_device_key() -> bytes:
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, b"faka.known-device", hashlib.sha256).digest()


def known_device_tag(user_id: int, device_hash: str) -> str:
    """The mark a browser keeps after logging in to this account: unforgeable without
    the secret key, and good only with that browser's device cookie."""
    return hmac.new(_known_device_key(), f"{user_id}:{device_hash}".encode(), hashlib.sha256).hexdigest()[:32]


def _recent_failures(
    subject: str, user: User | None, ip: str | None, device_hash: str | None, known: bool, now: datetime
) -> tuple[int, datetime | None]:
    """Wrong passwords for `subject` from this place (the known browser, else the IP
    address) since this browser last logged in to the account from there, within the
    memory: how many, and when the last was. (Another browser's login at the address,
    the owner's, does not wipe an attacker's count.) Refusals (waiting, captcha) are
    recorded with a detail and not counted."""
    signed_in_here = [SignIn.device_hash == device_hash]
    if known:
        place = SecurityEvent.device_hash == device_hash
    else:
        place = SecurityEvent.ip == ip
        signed_in_here.append(SignIn.ip == ip)
    since = now - LOGIN_FAILURE_MEMORY
    if user is not None:
        last_login = db.session.scalar(
            select(func.max(SignIn.created_at)).where(SignIn.user_id == user.id, *signed_in_here)
        )
        if last_login is not None:
            since = max(since, last_login)
    failures, last = db.session.execute(
        select(func.count(), func.max(SecurityEvent.created_at)).where(
            SecurityEvent.kind == SecurityEvent.LOGIN_FAILED,
            SecurityEvent.subject == subject,
            place,
            SecurityEvent.detail.is_(None),
            SecurityEvent.created_at > since,
        )
    ).one()
    return failures, last


def authenticate(
    email: str,
    password: str,
    ip: str | None = None,
    device_hash: str | None = None,
    captcha_solved: bool = False,
    known_devices: frozenset[str] = frozenset(),
) -> User | None:
    """The user for these credentials, or None.

    Wrong passwords for one account from one address make that address wait longer
    before each further try and solve the captcha (LoginThrottled, LoginCaptchaRequired),
    for unknown emails alike, so the answers tell nothing about which emails have
    accounts. A browser holding one of `known_devices` (known_device_tag) for the account
    is counted on its own instead of with its address. Many failures from one address or
    browser, whatever the accounts, make the risk engine ask for the captcha, then refuse
    (risk.Refused). Every failure and refusal is a security event.

    A locked account (wrong second-factor codes) refuses even the right password. With
    two-factor authentication on, a right password is only half a login: the code
    failure count is cleared by the second step, so guessing codes cannot be reset by
    entering the password again.
    """
    now = clock.now()
    signals = engine.Signals(engine.LOGIN, ip, device_hash, now=now)
    verdict = engine.check(signals, captcha_solved)
    # A refusal keeps its failed-login event (and the risk event): committed, then raised.
    with write_transaction(commit_on=(LoginThrottled, LoginCaptchaRequired)):
        engine.add_event(signals, verdict, captcha_solved=captcha_solved)
        subject = normalised_email(email)[: security_events.MAX_SUBJECT]
        user = find_user(email)
        known = bool(user is not None and device_hash and known_device_tag(user.id, device_hash) in known_devices)

        def failed(detail: str | None = None) -> None:
            security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=subject, detail=detail, now=now)

        failures, last = _recent_failures(subject, user, ip, device_hash, known, now)
        wait = (last + login_delay(failures) - now).total_seconds() if last is not None else 0
        if wait > 0:
            failed("throttled")
            raise LoginThrottled(math.ceil(wait))
        if failures >= FREE_LOGIN_FAILURES and not captcha_solved:
            failed("captcha required")
            raise LoginCaptchaRequired()
        if user is None:
            verify_login_password(_dummy_hash(), password)
            failed()
            return None
        if is_locked(user, now):
            failed("locked")
            return None
        if not verify_login_password(user.password_hash, password):
            failed()
            return None
        if not user.two_factor_enabled:
            user.failed_logins = 0
            user.locked_until = None
    return user


def record_sign_in(user_id: int, ip: str | None, device_hash: str | None, user_agent: str | None = None) -> str:
    """Start the session of a completed login and remember where it came from; returns
    the new session's id, for the session cookie. A shop owner's sign-in places reveal
    self-purchases, so reviews of the shop's orders from there stop counting."""
    ip = (ip or "")[:45] or None
    with write_transaction():
        session_id = start_session(user_id, ip, user_agent)
        db.session.add(SignIn(user_id=user_id, ip=ip, device_hash=device_hash, created_at=clock.now()))
        reviews.mark_self_purchases(user_id, ip, device_hash)
    return session_id
