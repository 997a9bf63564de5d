from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow

ROLE_OPERATOR = "operator"
ROLE_MERCHANT = "merchant"
ROLES = (ROLE_OPERATOR, ROLE_MERCHANT)


class User(UserMixin, db.Model):
    """A back-office login. Buyers have no account; they hold an order token instead."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_secret: Mapped[str | None] = mapped_column(String(255))  # encrypted; set once confirmed
    # The 30-second time step of the last TOTP code accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column()
    recovery_codes: Mapped[str | None] = mapped_column(Text)  # JSON list of argon2 hashes
    # Wrong second-factor codes and wrong re-authentication passwords (both need more than
    # the email address) lock the account for a while; wrong login passwords only slow
    # down the address they come from (services/accounts.py).
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # WebAuthn credentials (faka/services/passkeys.py), oldest first; written there only.
    passkeys: Mapped[list["Passkey"]] = relationship(order_by="Passkey.id", viewonly=True)  # noqa: F821

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None

    @property
    def two_factor_enabled(self) -> bool:
        """A second factor is on: an authenticator app, a passkey, or both."""
        return self.totp_enabled or bool(self.passkeys)

    @property
    def is_operator(self) -> bool:
        return self.role == ROLE_OPERATOR

    @property
    def is_merchant(self) -> bool:
        return self.role == ROLE_MERCHANT


class UserSession(db.Model):
    """One logged-in browser. The session cookie carries a random id whose SHA-256 is
    stored here, so a session ends for good when its row says so (logout, revoked from
    the sessions page, a password reset, two-factor set-up) however many copies of the
    cookie exist; and at `expires_at` however active it is."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(120))  # a summary: browser, system, device
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
