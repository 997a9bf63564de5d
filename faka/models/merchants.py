import secrets
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class Merchant(db.Model):
    """A seller on the platform; only an approved merchant's goods are on sale."""

    __tablename__ = "merchants"

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    FROZEN = "frozen"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    # The shop page's address (/shop/<public_id>): random, so merchants cannot be counted.
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=lambda: secrets.token_hex(6))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    fee_rate_bp: Mapped[int] = mapped_column(default=300)  # platform fee in basis points
    hold_days: Mapped[int] = mapped_column(default=3, server_default="3")  # settlement hold of each sale
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Qualification, submitted by the merchant and reviewed by an operator.
    legal_name: Mapped[str | None] = mapped_column(String(120))
    entity_type: Mapped[str | None] = mapped_column(String(12))  # individual | company
    id_number_ciphertext: Mapped[str | None] = mapped_column(Text)  # ID or licence number, encrypted
    licence_image: Mapped[str | None] = mapped_column(String(80))  # file name under instance/uploads/private
    contact: Mapped[str | None] = mapped_column(String(120))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    notify_email: Mapped[str | None] = mapped_column(String(254))

    user = relationship("User")

    @property
    def can_sell(self) -> bool:
        return self.status == self.APPROVED
