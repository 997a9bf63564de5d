"""Back-office accounts: creation and login with lockout."""
from datetime import timedelta
from functools import cache

from sqlalchemy import func, select

from faka.database import begin_write
from faka.extensions import db
from faka.models import AuditEvent, Merchant, User
from faka.models.users import ROLE_MERCHANT, ROLE_OPERATOR, ROLES
from faka.services import clock
from faka.services.errors import DomainError
from faka.services.passwords import hash_login_password, verify_login_password

MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)


class AccountExists(DomainError):
    pass


def create_user(email: str, password: str, role: str) -> User:
    if role not in ROLES:
        raise ValueError(f"unknown role {role}")
    email = email.strip().lower()
    if db.session.execute(select(User).where(User.email == email)).scalar_one_or_none():
        raise AccountExists(f"{email} already exists")
    user = User(email=email, password_hash=hash_login_password(password), role=role)
    db.session.add(user)
    db.session.commit()
    return user


def create_operator(email: str, password: str) -> User:
    user = create_user(email, password, ROLE_OPERATOR)
    db.session.add(AuditEvent(actor_id=None, action="operator.created", target=f"user:{user.id}"))
    db.session.commit()
    return user


def create_merchant(email: str, password: str, name: str, approved: bool = False) -> Merchant:
    user = create_user(email, password, ROLE_MERCHANT)
    merchant = Merchant(user_id=user.id, name=name, status=Merchant.APPROVED if approved else Merchant.PENDING)
    db.session.add(merchant)
    db.session.commit()
    return merchant


def authenticate(email: str, password: str) -> User | None:
    """The user for these credentials, or None. Repeated failures lock the account for a
    while; a locked account refuses even the right password."""
    begin_write()
    user = db.session.execute(
        select(User).where(func.lower(User.email) == email.strip().lower())
    ).scalar_one_or_none()
    now = clock.now()
    if user is None:
        verify_login_password(_dummy_hash(), password)
        db.session.commit()
        return None
    if user.locked_until and user.locked_until > now:
        db.session.commit()
        return None
    if not verify_login_password(user.password_hash, password):
        user.failed_logins += 1
        if user.failed_logins >= MAX_FAILED_LOGINS:
            user.locked_until = now + LOCKOUT
            user.failed_logins = 0
            db.session.add(AuditEvent(action="login.locked", target=f"user:{user.id}"))
        db.session.commit()
        return None
    user.failed_logins = 0
    user.locked_until = None
    db.session.commit()
    return user


@cache
def _dummy_hash() -> str:
    # Verified against for unknown emails, so they cost as much as a wrong password.
    return hash_login_password("faka-timing-equaliser")

__all__ = ["ROLE_MERCHANT", "ROLE_OPERATOR", "authenticate", "create_merchant", "create_operator", "create_user"]
