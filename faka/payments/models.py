"""Payments: notices, attempts, the notify log, refunds and gateway settings."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faka.core.db import Model
from faka.core.types import UTCDateTime, utcnow


class GatewayConfig(Model):
    """A payment gateway's settings; secrets inside are encrypted as one JSON document."""

    __tablename__ = "gateway_configs"

    name: Mapped[str] = mapped_column(String(20), primary_key=True)
    enabled: Mapped[bool] = mapped_column(default=False)
    settings_ciphertext: Mapped[str] = mapped_column(Text, default="")


class Refund(Model):
    """Money going back to a buyer. The ledger records what the merchant is debited; this
    records how the buyer gets it: through the gateway that took the payment (`done` once
    the gateway accepted it), or, where the gateway cannot refund, by the operator by hand
    (`manual` until they mark it `paid`).

    An order has at most one refund of its sale (a complaint's or the merchant's: the
    order's status allows one), and one for each extra payment a buyer made for an order
    already paid (`payment_notice_id`: that payment). The merchant never had the extra
    money, so such a refund has no ledger entry."""

    __tablename__ = "refunds"

    PENDING = "pending"  # the gateway call is queued
    DONE = "done"  # the gateway refunded it
    MANUAL = "manual"  # the operator must pay it out by hand
    PAID = "paid"  # the operator paid it out
    RETURNED = (DONE, PAID)  # the buyer has the money back
    STATUS_LABELS = {
        PENDING: _l("Sending to the payment gateway"),
        DONE: _l("Refunded through the gateway"),
        MANUAL: _l("To be paid back by hand"),
        PAID: _l("Paid back by hand"),
    }

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    # Set for the refund of a second payment of an order already paid: that payment.
    payment_notice_id: Mapped[int | None] = mapped_column(ForeignKey("payment_notices.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    complaint_id: Mapped[int | None] = mapped_column(ForeignKey("complaints.id"))
    amount: Mapped[int]
    gateway: Mapped[str] = mapped_column(String(20))
    status: Mapped[str] = mapped_column(String(12), default=PENDING, index=True)
    reference: Mapped[str | None] = mapped_column(String(64))  # gateway refund id or payment reference
    note: Mapped[str | None] = mapped_column(Text)  # what it is for, why the gateway could not do it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    completed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paid_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class PaymentNotice(Model):
    """One accepted gateway notification. The unique key makes replays harmless."""

    __tablename__ = "payment_notices"
    __table_args__ = (UniqueConstraint("gateway", "trade_no"),)

    DUPLICATE = "duplicate"  # the outcome of a second payment for an order already paid

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(20))
    trade_no: Mapped[str] = mapped_column(String(64))
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    amount: Mapped[int]
    currency: Mapped[str] = mapped_column(String(8))
    outcome: Mapped[str] = mapped_column(String(20))
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PaymentAttempt(Model):
    """One time the buyer was sent to pay: with which gateway, how, and the provider's id
    for it. A buyer who switches the order to another way of paying may still pay with
    an earlier one, so a payment from any gateway the order was sent to pay with is
    accepted, and the reconciler asks each of them."""

    __tablename__ = "payment_attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    gateway: Mapped[str] = mapped_column(String(20))
    method: Mapped[str] = mapped_column(String(20), default="")  # PaymentStart.method, e.g. "wap"
    reference: Mapped[str | None] = mapped_column(String(128))  # the provider's id for it
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class NotifyLog(Model):
    """Every notification a gateway sent us, and every answer to our own payment queries,
    accepted or not: what arrived (secrets redacted), whether it verified and why not.
    The operator reads it per order; /healthz reads it to notice a gateway whose
    notifications stopped arriving."""

    __tablename__ = "notify_log"
    __table_args__ = (Index("ix_notify_log_gateway_received", "gateway", "received_at"),)

    NOTIFY = "notify"  # the provider called us
    QUERY = "query"  # we asked the provider

    id: Mapped[int] = mapped_column(primary_key=True)
    gateway: Mapped[str] = mapped_column(String(20))
    via: Mapped[str] = mapped_column(String(8), default=NOTIFY)
    order_number: Mapped[str | None] = mapped_column(String(32), index=True)
    verified: Mapped[bool] = mapped_column(default=False)
    outcome: Mapped[str] = mapped_column(String(20))  # paid, replay, waiting, rejected, ...
    reason: Mapped[str | None] = mapped_column(Text)  # why it was rejected
    source_ip: Mapped[str | None] = mapped_column(String(45))
    headers: Mapped[str | None] = mapped_column(Text)  # JSON of the provider's headers we read
    body: Mapped[str | None] = mapped_column(Text)  # as received, secrets redacted, cut at MAX_LOGGED_BODY
    received_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
