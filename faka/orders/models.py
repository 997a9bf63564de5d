"""Orders and coupons."""

from datetime import datetime

from sqlalchemy import DDL, ForeignKey, Index, String, Text, UniqueConstraint, event, text
from sqlalchemy.orm import Mapped, mapped_column, relationship, validates

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


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


def email_domain(email: str | None) -> str | None:
    """What follows an email address's last "@", lower-cased."""
    return (email or "").strip().lower().rpartition("@")[2] or None


class IllegalTransition(Exception):
    """An order was asked to move to a state it cannot reach from where it is."""


class Order(db.Model):
    __tablename__ = "orders"
    __table_args__ = (
        Index("ix_orders_status_expires", "status", "expires_at"),
        # Orders cancelled within a day, whose late payment the reconciler still asks about.
        Index("ix_orders_status_cancelled", "status", "cancelled_at"),
        Index("ix_orders_email_created", "email", "created_at"),
        Index("ix_orders_ip_created", "client_ip", "created_at"),
        Index("ix_orders_created", "created_at"),
        Index("ix_orders_domain_created", "email_domain", "created_at"),
        # A merchant's order list (newest first, by status, only the flagged), its CSV and
        # its dashboard's figures (orders paid per day): each reads its rows in index order.
        Index("ix_orders_merchant_created", "merchant_id", "created_at", "id"),
        Index("ix_orders_merchant_status_created", "merchant_id", "status", "created_at", "id"),
        Index(
            "ix_orders_merchant_flagged_created",
            "merchant_id",
            "created_at",
            "id",
            postgresql_where=text("risk_flags IS NOT NULL"),
            sqlite_where=text("risk_flags IS NOT NULL"),
        ),
        Index("ix_orders_merchant_paid", "merchant_id", "paid_at"),
        Index("ix_orders_merchant_product_created", "merchant_id", "product_id", "created_at", "id"),
        # The operator dashboard's 30 days: orders paid per day (and their totals and refunds)
        # and the merchants with a delivery, read from these indexes alone on PostgreSQL.
        Index("ix_orders_paid_figures", "paid_at", "status", "total", "refunded_amount"),
        Index("ix_orders_delivered_merchant", "delivered_at", "merchant_id"),
    )

    PENDING = "pending"
    PAID = "paid"
    DELIVERED = "delivered"
    EXPIRED = "expired"
    CANCELLED = "cancelled"  # the buyer cancelled it before paying
    PAID_UNFULFILLED = "paid_unfulfilled"  # money received but no stock left: refund due
    REFUNDED = "refunded"
    PARTIALLY_REFUNDED = "partially_refunded"  # part of the total went back after a complaint

    FINAL = frozenset({DELIVERED, EXPIRED, CANCELLED, PAID_UNFULFILLED, REFUNDED, PARTIALLY_REFUNDED})
    UNPAID_CLOSED = (EXPIRED, CANCELLED)  # never paid and closed: a late payment is still honoured
    # The buyer can see the goods: a refund after a complaint does not take back what they have.
    SHOWS_GOODS = (DELIVERED, PARTIALLY_REFUNDED, REFUNDED)

    id: Mapped[int] = mapped_column(primary_key=True)
    number: Mapped[str] = mapped_column(String(24), unique=True)  # shown to the buyer
    token: Mapped[str] = mapped_column(String(32), unique=True)  # 128-bit, in the order URL
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"), index=True)
    # The variant's name when the buyer chose between several, as it read then (None: the
    # product offered no choice).
    variant_name: Mapped[str | None] = mapped_column(String(40))
    # Indexed first in ix_orders_merchant_created (the merchant's lists).
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    quantity: Mapped[int]
    unit_price: Mapped[int]
    discount: Mapped[int] = mapped_column(default=0)
    total: Mapped[int]  # unit_price * quantity - discount
    coupon_id: Mapped[int | None] = mapped_column(ForeignKey("coupons.id"))
    currency: Mapped[str] = mapped_column(String(8))
    email: Mapped[str | None] = mapped_column(String(254))
    # Kept with the email (see _keep_domain), for the risk rule that counts orders per domain.
    email_domain: Mapped[str | None] = mapped_column(String(254))
    query_password_hash: Mapped[str | None] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(20), default=PENDING)
    gateway: Mapped[str] = mapped_column(String(20))
    client_ip: Mapped[str | None] = mapped_column(String(45))
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)  # keyed hash of the device cookie
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")  # for the buyer's emails
    # What a `fixed` or `manual` product delivered, encrypted like a key.
    delivery_ciphertext: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    paid_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    refunded_amount: Mapped[int] = mapped_column(default=0, server_default="0")
    # Set when the buyer is sent to the gateway: from then on a payment may be in flight,
    # and the reconciler asks gateways with a query API about the order.
    payment_started_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    payment_ref: Mapped[str | None] = mapped_column(String(128))  # the provider's id for it (e.g. a session id)
    # The risk engine's view of the order: the rules that fired at checkout or payment
    # (space-separated names, shown to the merchant), and a hold on delivery until an
    # operator releases or refuses the order.
    risk_flags: Mapped[str | None] = mapped_column(String(200))
    held_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # A "from my server" order whose server failed every attempt: since then it waits in the
    # merchant's manual queue like a manual product's order (faka/orders/remote_delivery.py).
    manual_fallback_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Growth (faka/growth/): the sub-store the order was placed on, and what the merchant
    # asked for its goods there (the floor price times the quantity); the rest of the
    # total is the reseller's margin (faka/ledger/shares.py).
    substore_id: Mapped[int | None] = mapped_column(ForeignKey("substores.id"), index=True)
    resale_base: Mapped[int | None] = mapped_column()
    # The promoter whose link brought the buyer, the product's commission rate then, and
    # the commission, fixed at payment (0 when the payment showed a self-referral).
    promoter_id: Mapped[int | None] = mapped_column(ForeignKey("promoters.id"), index=True)
    commission_bp: Mapped[int | None] = mapped_column()
    commission: Mapped[int] = mapped_column(default=0, server_default="0")

    product = relationship("Product")
    variant = relationship("ProductVariant")
    merchant = relationship("Merchant")
    substore = relationship("SubStore")  # the reseller's store the buyer bought in, if any
    keys = relationship("CardKey", order_by="CardKey.id", viewonly=True)

    @property
    def is_final(self) -> bool:
        return self.status in self.FINAL

    @property
    def title(self) -> str:
        """What the buyer bought, as their pages and emails name it: the product's title,
        and the variant's name when they chose between several ("Google Play · ¥100")."""
        return f"{self.product.title} · {self.variant_name}" if self.variant_name else self.product.title

    @validates("email")
    def _keep_domain(self, _key, email: str | None) -> str | None:
        self.email_domain = email_domain(email)
        return email

    @property
    def is_held(self) -> bool:
        """Paid, and waiting for an operator to release it before delivery."""
        return self.held_at is not None and self.status == self.PAID

    @property
    def delivery_type(self) -> str:
        return self.product.delivery_type

    @property
    def manual_promise_hours(self) -> int:
        return self.product.manual_promise_hours

    def _move(self, allowed_from: tuple[str, ...], to: str) -> None:
        if self.status not in allowed_from:
            raise IllegalTransition(f"order {self.number}: {self.status} -> {to}")
        self.status = to

    def mark_paid(self, when: datetime) -> None:
        self._move((self.PENDING, *self.UNPAID_CLOSED), self.PAID)
        self.paid_at = when

    def mark_unfulfilled(self, when: datetime) -> None:
        self._move((self.PENDING, *self.UNPAID_CLOSED, self.PAID), self.PAID_UNFULFILLED)
        self.paid_at = self.paid_at or when

    def mark_delivered(self, when: datetime) -> None:
        self._move((self.PAID,), self.DELIVERED)
        self.delivered_at = when

    def mark_expired(self) -> None:
        self._move((self.PENDING,), self.EXPIRED)

    def mark_cancelled(self, when: datetime) -> None:
        self._move((self.PENDING,), self.CANCELLED)
        self.cancelled_at = when

    def mark_refunded(self, when: datetime, amount: int | None = None) -> None:
        """The whole total (default) or a part of it went back to the buyer."""
        amount = self.total if amount is None else amount
        if not 0 < amount <= self.total:
            raise IllegalTransition(f"order {self.number}: refund of {amount} out of {self.total}")
        to = self.REFUNDED if amount == self.total else self.PARTIALLY_REFUNDED
        self._move((self.PAID_UNFULFILLED, self.DELIVERED, self.PAID), to)
        self.refunded_at = when
        self.refunded_amount = amount


# On PostgreSQL every change to an order is announced to the web processes (NOTIFY
# faka_orders with its token, delivered at commit; faka/orders/status_signal.py). Migration 0011
# adds the same trigger to databases made before it.
for _statement in (
    """CREATE OR REPLACE FUNCTION faka_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
    BEGIN
        PERFORM pg_notify('faka_orders', NEW.token);
        RETURN NULL;
    END $$""",
    "CREATE TRIGGER orders_changed AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION faka_order_changed()",
):
    event.listen(Order.__table__, "after_create", DDL(_statement).execute_if(dialect="postgresql"))


class RemoteDeliveryAttempt(db.Model):
    """One request to the merchant's server for a "from my server" order's keys
    (faka/orders/remote_delivery.py): shown on the merchant's order page, so they see why
    an order fell back to them. An attempt without finished_at is still waiting for its
    answer; (order, number) is unique, so two jobs cannot make the same attempt."""

    __tablename__ = "remote_delivery_attempts"
    __table_args__ = (UniqueConstraint("order_id", "number"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"))
    number: Mapped[int]  # 1, 2, 3 ...
    started_at: Mapped[datetime] = mapped_column(UTCDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    status_code: Mapped[int | None]  # the HTTP status, None when there was no answer
    error: Mapped[str | None] = mapped_column(String(300))  # None: its keys were delivered
    keys_received: Mapped[int | None]  # how many keys a usable answer held
