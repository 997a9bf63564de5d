"""Back-office accounts: creation, sign-up with email verification, and password reset
by email. Logging in is login.py, the sessions it opens sessions.py, and the locks after
wrong answers lockout.py.

Links sent by email are itsdangerous tokens signed with the app's SECRET_KEY, one salt
per purpose, so a verification link can never be replayed as a reset link. A reset token
also carries a digest of the password hash it was issued against: the first reset changes
the hash, which makes the link (and every other reset link issued before) worthless.
"""

import hashlib
import hmac
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from itsdangerous import BadSignature, URLSafeTimedSerializer
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError

from faka.accounts.models import ROLE_MERCHANT, ROLE_OPERATOR, ROLES, Merchant, User
from faka.accounts.sessions import end_all_sessions
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.passwords import hash_login_password
from faka.extensions import db
from faka.messaging.mail import queue_email
from faka.platform.models import AuditEvent
from faka.platform.settings import site_settings

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


def normalised_email(email: str) -> str:
    return email.strip().lower()


def find_user(email: str) -> User | None:
    return db.session.execute(
        select(User).where(func.lower(User.email) == normalised_email(email))
    ).scalar_one_or_none()


def check_new_password(email: str, password: str) -> None:
    if len(password) < MIN_PASSWORD_LENGTH or password.strip().lower() == normalised_email(email):
        raise WeakPassword()


# -- creation ---------------------------------------------------------------------------


def _add_user(email: str, password_hash: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    email = normalised_email(email)
    if find_user(email) is not None:
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
    email = normalised_email(email)
    password_hash = hash_login_password(password)  # also when the email is taken: same cost either way
    try:
        with write_transaction():
            existing = find_user(email)
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
        user = find_user(email)
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
