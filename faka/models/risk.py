from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class SignIn(db.Model):
    """A successful back-office login: where from (IP) and which browser (the keyed hash
    of its device cookie). Orders placed from a merchant's own sign-in places are
    self-purchases, whose reviews do not count."""

    __tablename__ = "sign_ins"
    __table_args__ = (Index("ix_sign_ins_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ip: Mapped[str | None] = mapped_column(String(45), index=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
