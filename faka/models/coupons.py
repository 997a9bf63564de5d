from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class Coupon(db.Model):
    """A merchant's discount code, applied to a whole order total."""

    __tablename__ = "coupons"
    __table_args__ = (UniqueConstraint("merchant_id", "code"),)

    FIXED = "fixed"  # value in minor units off the total
    PERCENT = "percent"  # value in basis points off the total (1000 = 10 %)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    code: Mapped[str] = mapped_column(String(32))
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[int]
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))  # None: every product
    min_amount: Mapped[int] = mapped_column(default=0)
    usage_limit: Mapped[int | None]
    used_count: Mapped[int] = mapped_column(default=0)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    active: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
