"""Back-office accounts: creation, sign-up with email verification, login with throttling,
sessions that can be listed and ended, and password reset by email.

Links sent by email are itsdangerous tokens signed with the app's SECRET_KEY, one salt
per purpose, so a verification link can never be replayed as a reset link. A reset token
also carries a digest of the password hash it was issued against: the first reset changes
the hash, which makes the link (and every other reset link issued before) worthless.

Wrong login passwords never lock an account (anyone who knows the email could lock its
owner out): they slow down the one address they come from, for that one account, with
growing delays and then the captcha, while the owner elsewhere, or on a browser that has
logged in to the account before, is not slowed down. A lock is left for wrong second-factor
codes and wrong re-authentication passwords, which need the password or an open session.

Each login is a row in user_sessions; the session cookie holds its random id, so a
session can be ended from the server (logout, the sessions page, a password reset, two-
factor set-up), and ends at an absolute limit however active it is.
"""

import hashlib
import hmac
import math
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import delete, func, or_, select, update
from sqlalchemy.exc import IntegrityError

from faka.accounts.models import ROLE_MERCHANT, ROLE_OPERATOR, ROLES, Merchant, User, UserSession
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.passwords import hash_login_password, verify_login_password
from faka.extensions import db
from faka.messaging.mail import queue_email
from faka.platform.models import AuditEvent
from faka.platform.settings import site_settings
from faka.reviews import reviews
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent, SignIn

# Wrong login passwords for one account from one address (or, from a browser that has
# logged in to the account before, from that browser): the first FREE_LOGIN_FAILURES
# cost nothing; then each try needs the captcha and waits LOGIN_DELAY, doubled for each
# further failure, up to MAX_LOGIN_DELAY. Failures older than LOGIN_FAILURE_MEMORY, or
# made before that browser's last login there, are forgotten.
FREE_LOGIN_FAILURES = 3
LOGIN_DELAY = timedelta(seconds=5)
MAX_LOGIN_DELAY = timedelta(hours=1)
LOGIN_FAILURE_MEMORY = timedelta(hours=24)
# Wrong second-factor codes or re-authentication passwords: the fifth in a row locks the
# account. The first lock lasts LOCKOUT; each further lock within LOCKOUT_MEMORY doubles
# it, up to MAX_LOCKOUT: a guesser who waits out the lock gets fewer tries per hour each time.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MAX_LOCKOUT = timedelta(hours=24)
LOCKOUT_MEMORY = timedelta(hours=24)
MIN_PASSWORD_LENGTH = 10

VERIFY_SALT = "faka.verify-email"
VERIFY_MAX_AGE = timedelta(hours=48)
RESET_SALT = "faka.password-reset"
RESET_MAX_AGE = timedelta(hours=1)

EMAIL_VERIFY = "verify_email"
EMAIL_PASSWORD_RESET = "password_reset"
EMAIL_ACCOUNT_EXISTS = "account_exists"


class AccountExists(DomainError):
    pass


class RegistrationClosed(DomainError):
    message = _l("New shops cannot sign up here at the moment. Please contact the site operator.")


class WeakPassword(DomainError):
    message = _l("Use at least 10 characters, and not your email address.")


class InvalidLink(DomainError):
    message = _l("This link is invalid or has expired. Please ask for a new one.")


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


def _normalised_email(email: str) -> str:
    return email.strip().lower()


def _find_user(email: str) -> User | None:
    return db.session.execute(
        select(User).where(func.lower(User.email) == _normalised_email(email))
    ).scalar_one_or_none()


def check_new_password(email: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or password.strip().lower() == _normalised_email(email):
        raise WeakPassword()


# -- creation ---------------------------------------------------------------------------


def _add_user(email: str, password_hash: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    email = _normalised_email(email)
    if _find_user(email) is not None:
        raise AccountExists(f"{email} already exists")
    user = User(email=email, password_hash=password_hash, role=role)
    db.session.add(user)
    db.session.flush()
    return user


def _add_merchant(user: User, name: str, approved: bool) -> Merchant:
    merchant = Merchant(user_id=user.id, name=name, status=Merchant.APPROVED if approved else Merchant.PENDING)
    db.session.add(merchant)
    db.session.flush()
    return merchant


def create_user(email: str, password: str, role: str) -> User:
    password_hash = hash_login_password(password)  # before the write lock: it takes a while
    with write_transaction():
        user = _add_user(email, password_hash, role)
    return user


def create_operator(email: str, password: str, shop_name: str | None = None) -> User:
    """An operator account. With `shop_name` (a one-person shop) the operator also owns
    that shop, approved from the start: there is nobody else to review it."""
    user = create_user(email, password, ROLE_OPERATOR)
    with write_transaction():
        db.session.add(AuditEvent(actor_id=None, action="operator.created", target=f"user:{user.id}"))
        if shop_name:
            _add_merchant(user, shop_name, approved=True)
    return user


def create_merchant(email: str, password: str, name: str, approved: bool = False) -> Merchant:
    password_hash = hash_login_password(password)
    with write_transaction():
        merchant = _add_merchant(_add_user(email, password_hash, ROLE_MERCHANT), name, approved)
    return merchant


# -- sign-up and email verification -----------------------------------------------------


def registration_open() -> bool:
    return site_settings()["open_registration"] == "1"


def sign_up(email: str, password: str, shop_name: str, locale: str) -> User | None:
    """Open a pending shop for a new merchant and email them a verification link.

    Returns the new user, or None when the email already has an account: then nothing is
    created and the owner is emailed instead (someone, maybe they, tried to sign up), so
    the page answers "check your inbox" either way and reveals nothing.
    """
    if not registration_open():
        raise RegistrationClosed()
    check_new_password(email, password)
    email = _normalised_email(email)
    password_hash = hash_login_password(password)  # also when the email is taken: same cost either way
    try:
        with write_transaction():
            existing = _find_user(email)
            if existing is not None:
                user, queued = None, _queue_account_exists(existing, locale)
            else:
                user = _add_user(email, password_hash, ROLE_MERCHANT)
                merchant = _add_merchant(user, shop_name.strip(), approved=False)
                db.session.add(
                    AuditEvent(actor_id=user.id, action="merchant.signed_up", target=f"merchant:{merchant.id}")
                )
                queued = _queue_verification(user, locale)
            tasks.enqueue("messaging.tasks.send_email", queued.id, job_id=f"email-{queued.id}")
    except IntegrityError:
        # The same email signed up at the same moment in another request.
        return None
    return user


def resend_verification(user_id: int, locale: str) -> bool:
    """Email a fresh verification link; False when the address is already verified."""
    with write_transaction():
        user = db.session.get(User, user_id)
        if user is None or user.email_verified_at is not None:
            return False  # nothing written
        queued = _queue_verification(user, locale)
        tasks.enqueue("messaging.tasks.send_email", queued.id, job_id=f"email-{queued.id}")
    return True


def _serializer(salt: str) -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.config["SECRET_KEY"], salt=salt)


def _base_url() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def email_verification_token(user: User) -> str:
    return _serializer(VERIFY_SALT).dumps({"uid": user.id, "email": user.email})


def _queue_verification(user: User, locale: str):
    token = email_verification_token(user)
    site = site_settings()["site_name"]
    return queue_email(
        EMAIL_VERIFY,
        user.email,
        _("Confirm your email address for %(site)s", site=site),
        {"verify_url": f"{_base_url()}/verify/{token}", "hours": int(VERIFY_MAX_AGE.total_seconds() // 3600)},
        locale=locale,
        user_id=user.id,
    )


def _queue_account_exists(user: User, locale: str):
    site = site_settings()["site_name"]
    return queue_email(
        EMAIL_ACCOUNT_EXISTS,
        user.email,
        _("You already have an account at %(site)s", site=site),
        {"login_url": f"{_base_url()}/login", "reset_url": f"{_base_url()}/reset"},
        locale=locale,
        user_id=user.id,
    )


def verify_email(token: str) -> User:
    """Mark the address in a verification link as verified. Opening it again is fine."""
    try:
        data = _serializer(VERIFY_SALT).loads(token, max_age=int(VERIFY_MAX_AGE.total_seconds()))
    except BadSignature as exc:  # also SignatureExpired
        raise InvalidLink() from exc
    if not isinstance(data, dict):
        raise InvalidLink()
    with write_transaction():
        user = db.session.get(User, data.get("uid")) if isinstance(data.get("uid"), int) else None
        if user is None or user.email != data.get("email"):
            raise InvalidLink()
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()
    return user


# -- login ------------------------------------------------------------------------------


def is_locked(user: User, now=None) -> bool:
    return bool(user.locked_until and user.locked_until > (now or clock.now()))


def lockout_for(user: User, now) -> timedelta:
    """How long the account's next lock lasts: doubled for each lock in the last day."""
    earlier = (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "login.locked",
                AuditEvent.target == f"user:{user.id}",
                AuditEvent.created_at > now - LOCKOUT_MEMORY,
            )
        )
        or 0
    )
    return min(LOCKOUT * 2 ** min(earlier, 10), MAX_LOCKOUT)


def record_failed_login(user: User, now=None) -> None:
    """Count a wrong second-factor code or re-authentication password inside the
    caller's transaction; the fifth in a row locks the account for a while, longer each
    time."""
    now = now or clock.now()
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + lockout_for(user, now)
        user.failed_logins = 0
        db.session.add(AuditEvent(action="login.locked", target=f"user:{user.id}", created_at=now))


def login_delay(failures: int) -> timedelta:
    """How long the next try waits after this many recent wrong passwords."""
    if failures < FREE_LOGIN_FAILURES:
        return timedelta(0)
    return min(LOGIN_DELAY * 2 ** min(failures - FREE_LOGIN_FAILURES, 20), MAX_LOGIN_DELAY)


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
        subject = _normalised_email(email)[: security_events.MAX_SUBJECT]
        user = _find_user(email)
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


# -- sessions ---------------------------------------------------------------------------

# A session's last_seen_at is written at most this often: a request does not cost a write.
SESSION_SEEN_EVERY = timedelta(minutes=1)


class SessionGone(NotFound):
    message = _l("That session has already ended.")


@dataclass(frozen=True)
class ActiveSession:
    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    device: str | None
    current: bool  # the browser asking


def _session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _idle_limit() -> timedelta:
    return current_app.permanent_session_lifetime


def session_lifetime(user: User) -> timedelta:
    """How long a session may last however active it is: shorter for operators."""
    hours = current_app.config["SESSION_MAX_HOURS_OPERATOR" if user.is_operator else "SESSION_MAX_HOURS_MERCHANT"]
    return timedelta(hours=hours)


def _live(now: datetime):
    return (
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
        UserSession.last_seen_at > now - _idle_limit(),
    )


def start_session(
    user_id: int,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
    logged_in_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Add a new session of the user to the caller's transaction; returns its random id,
    for the session cookie (only its hash is stored). It ends `session_lifetime` after
    now, or at `expires_at` (a renewed session keeps its login's limit). Ended sessions
    of every account are deleted meanwhile: nothing of them is left to show or check,
    and their addresses are not kept."""
    now = now or clock.now()
    session_id = secrets.token_urlsafe(32)
    db.session.execute(
        delete(UserSession).where(
            or_(
                UserSession.revoked_at.is_not(None),
                UserSession.expires_at <= now,
                UserSession.last_seen_at <= now - _idle_limit(),
            )
        )
    )
    db.session.add(
        UserSession(
            user_id=user_id,
            token_hash=_session_digest(session_id),
            created_at=logged_in_at or now,
            last_seen_at=now,
            expires_at=expires_at or now + session_lifetime(db.session.get(User, user_id)),
            ip=(ip or "")[:45] or None,
            user_agent=(user_agent or "")[:120] or None,
        )
    )
    return session_id


def renew_session(
    user_id: int, current: str | None, ip: str | None, user_agent: str | None, now: datetime | None = None
) -> tuple[int, str]:
    """End every session of the user, the one asking (`current`, its id) included, and
    start the asking browser's again under a new id, inside the caller's transaction: a
    copy of its cookie taken before is worthless too. The renewed session keeps its
    login time and absolute limit. Returns how many other sessions ended, and the new id."""
    now = now or clock.now()
    asking = (
        db.session.execute(
            select(UserSession.created_at, UserSession.expires_at).where(
                UserSession.token_hash == _session_digest(current), UserSession.user_id == user_id, *_live(now)
            )
        ).first()
        if isinstance(current, str) and current
        else None
    )
    ended = end_all_sessions(user_id, now=now)
    session_id = start_session(user_id, ip, user_agent, now, *(asking or ()))
    return ended - (asking is not None), session_id


def session_user(user_id: int, session_id: str | None, now: datetime | None = None) -> User | None:
    """The user of a live session (not ended, not past its absolute limit, not idle too
    long) whose cookie names this user and this session id; else None. Notes the
    session as seen, at most once a minute."""
    if not isinstance(session_id, str) or not session_id:
        return None
    now = now or clock.now()
    row = db.session.execute(
        select(UserSession.id, UserSession.last_seen_at).where(
            UserSession.token_hash == _session_digest(session_id), UserSession.user_id == user_id, *_live(now)
        )
    ).first()
    if row is None:
        return None
    if now - row.last_seen_at >= SESSION_SEEN_EVERY:
        with write_transaction():
            db.session.execute(
                update(UserSession)
                .where(UserSession.id == row.id, UserSession.last_seen_at <= now - SESSION_SEEN_EVERY)
                .values(last_seen_at=now)
            )
    return db.session.get(User, user_id)


def end_session(session_id: str | None) -> None:
    """Log out: the session with this id ends, whichever copies of its cookie exist."""
    if not isinstance(session_id, str) or not session_id:
        return
    with write_transaction():
        db.session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _session_digest(session_id), UserSession.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )


def end_all_sessions(user_id: int, except_current: str | None = None, now: datetime | None = None) -> int:
    """End every session of the user, but the one with id `except_current`, inside the
    caller's transaction (a password reset, two-factor set-up or reset). Returns how
    many ended."""
    where = [UserSession.user_id == user_id, UserSession.revoked_at.is_(None)]
    if except_current:
        where.append(UserSession.token_hash != _session_digest(except_current))
    return db.session.execute(update(UserSession).where(*where).values(revoked_at=now or clock.now())).rowcount


def active_sessions(user_id: int, current: str | None, now: datetime | None = None) -> list[ActiveSession]:
    """The user's live sessions, the one asking (`current`, its id) first, then the most
    recently seen."""
    now = now or clock.now()
    current_digest = _session_digest(current) if isinstance(current, str) and current else None
    rows = db.session.execute(
        select(UserSession)
        .where(UserSession.user_id == user_id, *_live(now))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ).scalars()
    found = [
        ActiveSession(
            row.id,
            row.created_at,
            row.last_seen_at,
            row.expires_at,
            row.ip,
            row.user_agent,
            row.token_hash == current_digest,
        )
        for row in rows
    ]
    return sorted(found, key=lambda s: not s.current)


def revoke_session(user_id: int, session_row_id: int) -> None:
    """End one of the user's own sessions from the sessions page; SessionGone for a
    session that is not theirs or has already ended."""
    now = clock.now()
    with write_transaction():
        ended = db.session.execute(
            update(UserSession)
            .where(UserSession.id == session_row_id, UserSession.user_id == user_id, *_live(now))
            .values(revoked_at=now)
        )
        if ended.rowcount != 1:
            raise SessionGone()
        db.session.add(
            AuditEvent(
                actor_id=user_id, action="session.revoked", target=f"user:{user_id}", detail=f"session:{session_row_id}"
            )
        )


def sign_out_other_sessions(
    user_id: int, current: str | None, ip: str | None, user_agent: str | None
) -> tuple[int, str]:
    """End every session of the user but the one asking, which goes on under a new id
    (renew_session); returns how many ended, and that id."""
    with write_transaction():
        ended, session_id = renew_session(user_id, current, ip, user_agent)
        db.session.add(
            AuditEvent(
                actor_id=user_id, action="session.revoked_others", target=f"user:{user_id}", detail=f"{ended} ended"
            )
        )
    return ended, session_id


@cache
def _dummy_hash() -> str:
    # Verified against for unknown emails, so they cost as much as a wrong password.
    return hash_login_password("faka-timing-equaliser")


# -- password reset ---------------------------------------------------------------------


def _password_digest(user: User) -> str:
    # Binds a reset token to the password it resets without putting the hash in the
    # (readable) token; any change of password changes the digest.
    return hashlib.sha256(user.password_hash.encode()).hexdigest()[:24]


def password_reset_token(user: User) -> str:
    return _serializer(RESET_SALT).dumps({"uid": user.id, "pw": _password_digest(user)})


def request_password_reset(email: str, locale: str) -> None:
    """Email a reset link if the address has an account; the caller answers the same
    either way."""
    with write_transaction():
        user = _find_user(email)
        if user is None:
            return  # nothing written
        queued = queue_password_reset(user, locale)
        tasks.enqueue("messaging.tasks.send_email", queued.id, job_id=f"email-{queued.id}")


def queue_password_reset(user: User, locale: str):
    """Add an email with a reset link for `user` to the outbox, inside the caller's
    transaction (the caller enqueues "messaging.tasks.send_email" inside its write_transaction())."""
    site = site_settings()["site_name"]
    with force_locale(locale):
        subject = _("Reset your password for %(site)s", site=site)
    return queue_email(
        EMAIL_PASSWORD_RESET,
        user.email,
        subject,
        {
            "reset_url": f"{_base_url()}/reset/{password_reset_token(user)}",
            "minutes": int(RESET_MAX_AGE.total_seconds() // 60),
        },
        locale=locale,
        user_id=user.id,
    )


def _user_for_reset(token: str, lock: bool = False) -> User:
    try:
        data = _serializer(RESET_SALT).loads(token, max_age=int(RESET_MAX_AGE.total_seconds()))
    except BadSignature as exc:
        raise InvalidLink() from exc
    if not isinstance(data, dict) or not isinstance(data.get("uid"), int) or not isinstance(data.get("pw"), str):
        raise InvalidLink()
    user = db.session.get(User, data["uid"], with_for_update=lock or None)
    if user is None or not hmac.compare_digest(data["pw"], _password_digest(user)):
        raise InvalidLink()
    return user


def check_reset_token(token: str) -> User:
    """The user a reset link is for, or InvalidLink (expired, forged or already used)."""
    user = _user_for_reset(token)
    db.session.rollback()  # kept: ends this read-only transaction, not held over reset_password's slow hash
    return user


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link is spent by the change."""
    check_new_password(check_reset_token(token).email, new_password)
    password_hash = hash_login_password(new_password)  # before the write lock: it takes a while
    with write_transaction():
        user = _user_for_reset(token, lock=True)  # again under the lock: a reset that got in first spent the link
        user.password_hash = password_hash
        user.failed_logins = 0
        user.locked_until = None
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()  # the link reached the inbox
        # Whoever knew the old password may be logged in somewhere: every session ends.
        end_all_sessions(user.id)
        db.session.add(AuditEvent(actor_id=user.id, action="password.reset", target=f"user:{user.id}"))
    return user


__all__ = [
    "ROLE_MERCHANT",
    "ROLE_OPERATOR",
    "authenticate",
    "check_reset_token",
    "create_merchant",
    "create_operator",
    "create_user",
    "registration_open",
    "request_password_reset",
    "reset_password",
    "sign_up",
    "verify_email",
]
