from datetime import datetime

from sqlalchemy import ForeignKey, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class LedgerEntry(db.Model):
    """Append-only money movement for a merchant; a balance is a sum of these."""

    __tablename__ = "ledger_entries"
    __table_args__ = (UniqueConstraint("order_id", "kind"),)

    SALE = "sale"  # order total credited to the merchant
    FEE = "fee"  # platform fee debited from the merchant

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    kind: Mapped[str] = mapped_column(String(20))
    amount: Mapped[int]  # signed minor units
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)  # end of the settlement hold
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
