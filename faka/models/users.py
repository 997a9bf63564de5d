from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

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
    recovery_codes: Mapped[str | None] = mapped_column(Text)  # JSON list of argon2 hashes
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None

    @property
    def is_operator(self) -> bool:
        return self.role == ROLE_OPERATOR

    @property
    def is_merchant(self) -> bool:
        return self.role == ROLE_MERCHANT
