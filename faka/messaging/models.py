"""Outgoing messages: the email outbox, webhooks and push channels."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class OutboxEmail(db.Model):
    """An email the platform owes someone. Its body is rendered at send time from the
    database, so delivered keys are never stored in plain text here."""

    __tablename__ = "outbox_emails"
    __table_args__ = (
        UniqueConstraint("kind", "order_id"),
        Index("ix_outbox_emails_status", "status"),
    )

    QUEUED = "queued"
    SENT = "sent"
    FAILED = "failed"  # gave up after MAIL_MAX_ATTEMPTS; an operator can requeue

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    to_addr: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    # Emails other than order deliveries carry their subject and their template context
    # (encrypted: it may hold a sign-in link) and name who they concern.
    SUBJECT_MAX = 200
    subject: Mapped[str | None] = mapped_column(String(SUBJECT_MAX))
    payload_ciphertext: Mapped[str | None] = mapped_column(Text)
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    status: Mapped[str] = mapped_column(String(12), default=QUEUED)
    attempts: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    # Set by the job that is talking to SMTP about this email: a second copy of the job
    # (queued again by the reconciler) leaves it alone until then, so it is sent once.
    claimed_until: Mapped[datetime | None] = mapped_column(UTCDateTime)


EVENTS = ("order.paid", "order.delivered", "order.refunded", "stock.low", "complaint.opened")


class WebhookEndpoint(db.Model):
    """A merchant's URL that receives signed JSON events."""

    __tablename__ = "webhook_endpoints"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    url: Mapped[str] = mapped_column(String(500))
    secret_ciphertext: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text, default=",".join(EVENTS))
    enabled: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class WebhookDelivery(db.Model):
    """One event owed to one endpoint, with what happened when we sent it."""

    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        Index("ix_webhook_deliveries_endpoint_created", "endpoint_id", "created_at"),
        # The reconciler's look for deliveries due again reads only the few pending ones.
        Index(
            "ix_webhook_deliveries_pending",
            "id",
            sqlite_where=text("status = 'pending'"),
            postgresql_where=text("status = 'pending'"),
        ),
    )

    PENDING = "pending"
    DELIVERED = "delivered"
    FAILED = "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    endpoint_id: Mapped[int] = mapped_column(ForeignKey("webhook_endpoints.id"))
    event: Mapped[str] = mapped_column(String(32))
    payload: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    response_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    delivered_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class PushChannel(db.Model):
    """Where a merchant, or the platform's operators (merchant_id None), get short pushes:
    a Telegram bot, Bark, a WeCom, DingTalk or Feishu robot, Server酱 or PushPlus
    (faka/messaging/push.py)."""

    __tablename__ = "push_channels"

    PAUSED_BY_OWNER = "owner"
    PAUSED_AFTER_FAILURES = "failures"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(60))
    # The kind's settings as JSON (tokens, keys, signing secrets), encrypted.
    settings_ciphertext: Mapped[str] = mapped_column(Text)
    events: Mapped[str] = mapped_column(Text)
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    paused_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    paused_reason: Mapped[str | None] = mapped_column(String(12))
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def paused(self) -> bool:
        return self.paused_at is not None


class PushMessage(db.Model):
    """One push owed to one channel: its short text (never a key, a secret or a buyer's
    full email) and what the provider answered."""

    __tablename__ = "push_messages"
    __table_args__ = (
        Index("ix_push_messages_channel_created", "channel_id", "created_at"),
        Index("ix_push_messages_status", "status"),
    )

    PENDING = "pending"
    SENT = "sent"
    FAILED = "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    channel_id: Mapped[int] = mapped_column(ForeignKey("push_channels.id"))
    event: Mapped[str] = mapped_column(String(32))
    # What the message is about ("product:12", "gateway:epay"), for alerts sent at most
    # once in a while.
    subject: Mapped[str | None] = mapped_column(String(64))
    title: Mapped[str] = mapped_column(String(200))
    text: Mapped[str] = mapped_column(Text)
    link: Mapped[str | None] = mapped_column(String(500))
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    attempts: Mapped[int] = mapped_column(default=0)
    http_status: Mapped[int | None]
    provider_code: Mapped[str | None] = mapped_column(String(40))
    last_error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    sent_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


# Waiting: neither told nor cancelled. At most one such request per variant and address.
_RESTOCK_LIVE_SQL = "notified_at IS NULL AND cancelled_at IS NULL"


class RestockRequest(db.Model):
    """A buyer's wish to be told when a sold-out variant is back in stock
    (faka/messaging/restock.py): asked for on the product page, confirmed from an email
    (double opt-in), told once when keys are imported, or cancelled."""

    __tablename__ = "restock_requests"
    __table_args__ = (
        Index(
            "uq_restock_requests_live_variant_email",
            "variant_id",
            "email",
            unique=True,
            sqlite_where=text(_RESTOCK_LIVE_SQL),
            postgresql_where=text(_RESTOCK_LIVE_SQL),
        ),
        Index("ix_restock_requests_email", "email"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    # Hex SHA-256 of the random token in the links of the latest email sent about it
    # (confirm, cancel); the token itself is only in that email.
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    email: Mapped[str] = mapped_column(String(254))  # lower-case
    locale: Mapped[str] = mapped_column(String(8), default="zh_CN")
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # When the latest confirmation email was queued: another is sent only after a while.
    emailed_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    confirmed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    notified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    cancelled_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    variant = relationship("ProductVariant")
    product = relationship("Product")

    @property
    def live(self) -> bool:
        return self.notified_at is None and self.cancelled_at is None
