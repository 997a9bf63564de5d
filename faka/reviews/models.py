"""Reviews of orders."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class Review(db.Model):
    """A buyer's rating of a delivered order (one per order) and the merchant's reply.

    A review counts towards the merchant's reputation unless the risk signals marked it
    suspicious (`suspicious_reason`, e.g. the merchant buying from itself) or an
    operator hid it (`hidden_at`, with a reason)."""

    __tablename__ = "reviews"
    __table_args__ = (
        Index("ix_reviews_merchant_created", "merchant_id", "created_at"),
        Index("ix_reviews_product_created", "product_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    rating: Mapped[int]  # 1..5
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    edited_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reply: Mapped[str | None] = mapped_column(Text)
    replied_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    suspicious_reason: Mapped[str | None] = mapped_column(String(64))
    hidden_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    hidden_reason: Mapped[str | None] = mapped_column(Text)
    hidden_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))

    order = relationship("Order")
    product = relationship("Product")

    @property
    def counts(self) -> bool:
        return self.suspicious_reason is None and self.hidden_at is None
