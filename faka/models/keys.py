from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class CardKey(db.Model):
    """One unit of stock. The key itself is only ever stored encrypted."""

    __tablename__ = "card_keys"
    __table_args__ = (
        UniqueConstraint("product_id", "fingerprint"),
        # With id last, reserving "the oldest available keys" reads them in index order
        # instead of walking every sold key of the product.
        Index("ix_card_keys_product_status_id", "product_id", "status", "id"),
    )

    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"
    VOID = "void"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    ciphertext: Mapped[str] = mapped_column(Text)
    # Keyed HMAC of the plaintext: finds duplicate imports without decrypting.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=AVAILABLE)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    reserved_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
