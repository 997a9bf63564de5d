"""Back-office accounts: creation, sign-up with email verification, login with lockout,
and password reset by email.

Links sent by email are itsdangerous tokens signed with the app's SECRET_KEY, one salt
per purpose, so a verification link can never be replayed as a reset link. A reset token
also carries a digest of the password hash it was issued against: the first reset changes
the hash, which makes the link (and every other reset link issued before) worthless.
"""
import hashlib
import hmac
from datetime import timedelta
from functools import cache

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from faka import jobs
from faka.database import begin_write
from faka.extensions import db
from faka.models import AuditEvent, Merchant, SecurityEvent, SignIn, User
from faka.models.users import ROLE_MERCHANT, ROLE_OPERATOR, ROLES
from faka.services import clock, reviews, risk, security_events
from faka.services.errors import DomainError
from faka.services.mail import queue_email
from faka.services.passwords import hash_login_password, verify_login_password
from faka.services.settings import site_settings

MAX_FAILED_LOGINS = 5
# The first lock lasts LOCKOUT; each further lock within LOCKOUT_MEMORY doubles it, up
# to MAX_LOCKOUT: a guesser who waits out the lock gets fewer tries per hour each time.
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
    begin_write()
    try:
        user = _add_user(email, password_hash, role)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return user


def create_operator(email: str, password: str, shop_name: str | None = None) -> User:
    """An operator account. With `shop_name` (a one-person shop) the operator also owns
    that shop, approved from the start: there is nobody else to review it."""
    user = create_user(email, password, ROLE_OPERATOR)
    db.session.add(AuditEvent(actor_id=None, action="operator.created", target=f"user:{user.id}"))
    if shop_name:
        _add_merchant(user, shop_name, approved=True)
    db.session.commit()
    return user


def create_merchant(email: str, password: str, name: str, approved: bool = False) -> Merchant:
    password_hash = hash_login_password(password)
    begin_write()
    try:
        merchant = _add_merchant(_add_user(email, password_hash, ROLE_MERCHANT), name, approved)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
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
    begin_write()
    try:
        existing = _find_user(email)
        if existing is not None:
            user, queued = None, _queue_account_exists(existing, locale)
        else:
            user = _add_user(email, password_hash, ROLE_MERCHANT)
            merchant = _add_merchant(user, shop_name.strip(), approved=False)
            db.session.add(AuditEvent(actor_id=user.id, action="merchant.signed_up", target=f"merchant:{merchant.id}"))
            queued = _queue_verification(user, locale)
        db.session.commit()
    except IntegrityError:
        # The same email signed up at the same moment in another request.
        db.session.rollback()
        return None
    except Exception:
        db.session.rollback()
        raise
    jobs.enqueue(jobs.send_email, queued.id, job_id=f"email-{queued.id}")
    return user


def resend_verification(user_id: int, locale: str) -> bool:
    """Email a fresh verification link; False when the address is already verified."""
    begin_write()
    try:
        user = db.session.get(User, user_id)
        if user is None or user.email_verified_at is not None:
            db.session.rollback()
            return False
        queued = _queue_verification(user, locale)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    jobs.enqueue(jobs.send_email, queued.id, job_id=f"email-{queued.id}")
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
        EMAIL_VERIFY, user.email, _("Confirm your email address for %(site)s", site=site),
        {"verify_url": f"{_base_url()}/verify/{token}", "hours": int(VERIFY_MAX_AGE.total_seconds() // 3600)},
        locale=locale, user_id=user.id,
    )


def _queue_account_exists(user: User, locale: str):
    site = site_settings()["site_name"]
    return queue_email(
        EMAIL_ACCOUNT_EXISTS, user.email, _("You already have an account at %(site)s", site=site),
        {"login_url": f"{_base_url()}/login", "reset_url": f"{_base_url()}/reset"},
        locale=locale, user_id=user.id,
    )


def verify_email(token: str) -> User:
    """Mark the address in a verification link as verified. Opening it again is fine."""
    try:
        data = _serializer(VERIFY_SALT).loads(token, max_age=int(VERIFY_MAX_AGE.total_seconds()))
    except BadSignature as exc:  # also SignatureExpired
        raise InvalidLink() from exc
    if not isinstance(data, dict):
        raise InvalidLink()
    begin_write()
    user = db.session.get(User, data.get("uid")) if isinstance(data.get("uid"), int) else None
    if user is None or user.email != data.get("email"):
        db.session.rollback()
        raise InvalidLink()
    if user.email_verified_at is None:
        user.email_verified_at = clock.now()
    db.session.commit()
    return user


# -- login ------------------------------------------------------------------------------

def is_locked(user: User, now=None) -> bool:
    return bool(user.locked_until and user.locked_until > (now or clock.now()))


def lockout_for(user: User, now) -> timedelta:
    """How long the account's next lock lasts: doubled for each lock in the last day."""
    earlier = db.session.scalar(select(func.count()).select_from(AuditEvent).where(
        AuditEvent.action == "login.locked", AuditEvent.target == f"user:{user.id}",
        AuditEvent.created_at > now - LOCKOUT_MEMORY)) or 0
    return min(LOCKOUT * 2 ** min(earlier, 10), MAX_LOCKOUT)


def record_failed_login(user: User, now=None) -> None:
    """Count a wrong password or second-factor code inside the caller's transaction;
    the fifth in a row locks the account for a while, longer each time."""
    now = now or clock.now()
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + lockout_for(user, now)
        user.failed_logins = 0
        db.session.add(AuditEvent(action="login.locked", target=f"user:{user.id}", created_at=now))


def authenticate(email: str, password: str, ip: str | None = None, device_hash: str | None = None,
                 captcha_solved: bool = False) -> User | None:
    """The user for these credentials, or None. Repeated failures lock the account for a
    while; a locked account refuses even the right password. Many failures from one IP
    address or browser, whatever the accounts, make the risk engine ask for the captcha,
    then refuse (risk.Refused); each failure is a security event.

    With two-factor authentication on, a right password is only half a login: the
    failure count is cleared by the second step, so guessing codes cannot be reset by
    entering the password again.
    """
    now = clock.now()
    signals = risk.Signals(risk.LOGIN, ip, device_hash, now=now)
    verdict = risk.check(signals, captcha_solved)
    begin_write()
    risk.add_event(signals, verdict, captcha_solved=captcha_solved)
    user = _find_user(email)
    if user is None:
        verify_login_password(_dummy_hash(), password)
        security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=email[:200], now=now)
        db.session.commit()
        return None
    if is_locked(user, now):
        security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=email[:200], detail="locked", now=now)
        db.session.commit()
        return None
    if not verify_login_password(user.password_hash, password):
        record_failed_login(user, now)
        security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=email[:200], now=now)
        db.session.commit()
        return None
    if not user.totp_enabled:
        user.failed_logins = 0
        user.locked_until = None
    db.session.commit()
    return user


def record_sign_in(user_id: int, ip: str | None, device_hash: str | None) -> None:
    """Remember where a completed login came from. A shop owner's sign-in places reveal
    self-purchases, so reviews of the shop's orders from there stop counting."""
    begin_write()
    db.session.add(SignIn(user_id=user_id, ip=(ip or "")[:45] or None, device_hash=device_hash, created_at=clock.now()))
    reviews.mark_self_purchases(user_id, ip, device_hash)
    db.session.commit()


class WrongPassword(DomainError):
    message = _l("That password is not right.")


def reauthenticate(user_id: int, password: str, code: str | None, ip: str | None = None,
                   device_hash: str | None = None) -> None:
    """Confirm that a logged-in user is still the one at the keyboard before a secret is
    shown: their password, and their second-factor code when it is on. A wrong answer
    counts toward the same lockout as a wrong login (and is a failed-login security
    event); raises WrongPassword, twofactor.WrongCode or twofactor.AccountLocked."""
    from faka.services import twofactor

    now = clock.now()
    begin_write()
    user = db.session.get(User, user_id, with_for_update=True)
    if user is None or is_locked(user, now):
        security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=f"user:{user_id}",
                            detail="re-authentication, locked", now=now)
        db.session.commit()
        raise twofactor.AccountLocked()
    if not verify_login_password(user.password_hash, password or ""):
        record_failed_login(user, now)
        security_events.add(SecurityEvent.LOGIN_FAILED, ip, device_hash, subject=f"user:{user_id}",
                            detail="re-authentication", now=now)
        locked = is_locked(user, now)
        db.session.commit()
        raise twofactor.AccountLocked() if locked else WrongPassword()
    if not user.totp_enabled:
        user.failed_logins = 0
        user.locked_until = None
        db.session.commit()
        return
    db.session.commit()
    twofactor.verify_login(user_id, code or "")


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
    begin_write()
    try:
        user = _find_user(email)
        if user is None:
            db.session.rollback()
            return
        queued = queue_password_reset(user, locale)
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    jobs.enqueue(jobs.send_email, queued.id, job_id=f"email-{queued.id}")


def queue_password_reset(user: User, locale: str):
    """Add an email with a reset link for `user` to the outbox, inside the caller's
    transaction (the caller enqueues jobs.send_email after committing)."""
    site = site_settings()["site_name"]
    with force_locale(locale):
        subject = _("Reset your password for %(site)s", site=site)
    return queue_email(
        EMAIL_PASSWORD_RESET, user.email, subject,
        {"reset_url": f"{_base_url()}/reset/{password_reset_token(user)}",
         "minutes": int(RESET_MAX_AGE.total_seconds() // 60)},
        locale=locale, user_id=user.id,
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
    db.session.rollback()
    return user


def reset_password(token: str, new_password: str) -> User:
    """Set a new password from a reset link; the link is spent by the change."""
    check_new_password(check_reset_token(token).email, new_password)
    password_hash = hash_login_password(new_password)  # before the write lock: it takes a while
    begin_write()
    try:
        user = _user_for_reset(token, lock=True)  # again under the lock: a reset that got in first spent the link
        user.password_hash = password_hash
        user.failed_logins = 0
        user.locked_until = None
        if user.email_verified_at is None:
            user.email_verified_at = clock.now()  # the link reached the inbox
        db.session.add(AuditEvent(actor_id=user.id, action="password.reset", target=f"user:{user.id}"))
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return user


__all__ = [
    "ROLE_MERCHANT", "ROLE_OPERATOR", "authenticate", "check_reset_token", "create_merchant", "create_operator",
    "create_user", "registration_open", "request_password_reset", "reset_password", "sign_up", "verify_email",
]
