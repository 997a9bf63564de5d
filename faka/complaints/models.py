"""Complaints: the case, its messages and evidence images."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class IllegalComplaintTransition(Exception):
    """A complaint was asked to move to a state it cannot reach from where it is."""


_ACTIVE_SQL = "status IN ('open', 'merchant_replied', 'escalated')"


class Complaint(db.Model):
    __tablename__ = "complaints"
    __table_args__ = (
        # One complaint in progress per order; closed ones may be followed by another.
        Index(
            "uq_complaints_active_order",
            "order_id",
            unique=True,
            sqlite_where=text(_ACTIVE_SQL),
            postgresql_where=text(_ACTIVE_SQL),
        ),
        Index("ix_complaints_status_deadline", "status", "deadline_at"),
    )

    OPEN = "open"
    MERCHANT_REPLIED = "merchant_replied"
    ESCALATED = "escalated"
    RESOLVED_REFUND = "resolved_refund"
    RESOLVED_REPLACED = "resolved_replaced"
    RESOLVED_REJECTED = "resolved_rejected"
    WITHDRAWN = "withdrawn"
    ACTIVE = (OPEN, MERCHANT_REPLIED, ESCALATED)
    STATUSES = ACTIVE + (RESOLVED_REFUND, RESOLVED_REPLACED, RESOLVED_REJECTED, WITHDRAWN)

    KEY_INVALID = "key_invalid"
    NOT_AS_DESCRIBED = "not_as_described"
    NOT_DELIVERED = "not_delivered"
    OTHER = "other"
    REASONS = (KEY_INVALID, NOT_AS_DESCRIBED, NOT_DELIVERED, OTHER)

    OFFER_REFUND = "refund"
    OFFER_REPLACEMENT = "replacement"

    id: Mapped[int] = mapped_column(primary_key=True)
    ref: Mapped[str] = mapped_column(String(24), unique=True)  # random, the complaint's id in URLs
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    status: Mapped[str] = mapped_column(String(20), default=OPEN)
    reason: Mapped[str] = mapped_column(String(20))
    description: Mapped[str] = mapped_column(Text)
    # The deadline of whoever must act next: the merchant while open, the buyer while
    # an answer waits for them; None once escalated or closed.
    deadline_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    offer_kind: Mapped[str | None] = mapped_column(String(12))
    offer_amount: Mapped[int | None]  # refund offered, minor units
    offer_quantity: Mapped[int | None]  # replacement keys offered
    refund_amount: Mapped[int | None]  # what the resolution refunded
    resolution_note: Mapped[str | None] = mapped_column(Text)  # the operator's written reason
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    escalated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    order = relationship("Order")
    merchant = relationship("Merchant")
    messages = relationship("ComplaintMessage", order_by="ComplaintMessage.id", viewonly=True)

    @property
    def is_active(self) -> bool:
        return self.status in self.ACTIVE

    @property
    def has_offer(self) -> bool:
        return self.offer_kind is not None

    def _move(self, allowed_from: tuple[str, ...], to: str, when: datetime) -> None:
        if self.status not in allowed_from:
            raise IllegalComplaintTransition(f"complaint {self.ref}: {self.status} -> {to}")
        self.status = to
        self.updated_at = when

    def merchant_answered(self, when: datetime, buyer_deadline: datetime) -> None:
        """The merchant's first answer (a message or an offer) stops their clock and
        starts the buyer's; later answers change nothing but the timestamp."""
        if self.status == self.OPEN:
            self._move((self.OPEN,), self.MERCHANT_REPLIED, when)
            self.deadline_at = buyer_deadline
        else:
            self._move((self.MERCHANT_REPLIED, self.ESCALATED), self.status, when)

    def offer(
        self, kind: str, amount: int | None, quantity: int | None, when: datetime, buyer_deadline: datetime
    ) -> None:
        if kind not in (self.OFFER_REFUND, self.OFFER_REPLACEMENT):
            raise IllegalComplaintTransition(f"complaint {self.ref}: unknown offer {kind}")
        self.merchant_answered(when, buyer_deadline)
        if self.status == self.MERCHANT_REPLIED:
            self.deadline_at = buyer_deadline  # a new offer gives the buyer time to read it
        self.offer_kind, self.offer_amount, self.offer_quantity = kind, amount, quantity

    def accept_offer(self, when: datetime) -> str:
        """The buyer takes the merchant's offer; returns the offer's kind."""
        if not self.has_offer:
            raise IllegalComplaintTransition(f"complaint {self.ref}: nothing offered")
        to = self.RESOLVED_REFUND if self.offer_kind == self.OFFER_REFUND else self.RESOLVED_REPLACED
        self._move((self.MERCHANT_REPLIED, self.ESCALATED), to, when)
        self._close(when)
        if to == self.RESOLVED_REFUND:
            self.refund_amount = self.offer_amount
        return self.offer_kind

    def escalate(self, when: datetime) -> None:
        """The buyer is not satisfied with the answer (from merchant_replied), or the
        merchant stayed silent past the deadline (from open, by the periodic job)."""
        self._move((self.OPEN, self.MERCHANT_REPLIED), self.ESCALATED, when)
        self.escalated_at = when
        self.deadline_at = None

    def decide(self, refund_amount: int | None, note: str, operator_id: int, when: datetime) -> None:
        """The operator's decision on an escalated case: a refund (full or partial) or a
        rejection (`refund_amount` None), with the written reason."""
        to = self.RESOLVED_REFUND if refund_amount else self.RESOLVED_REJECTED
        self._move((self.ESCALATED,), to, when)
        self._close(when)
        self.refund_amount = refund_amount or None
        self.resolution_note = note
        self.decided_by = operator_id

    def withdraw(self, when: datetime) -> None:
        self._move(self.ACTIVE, self.WITHDRAWN, when)
        self._close(when)

    def _close(self, when: datetime) -> None:
        self.resolved_at = when
        self.deadline_at = None


class ComplaintMessage(db.Model):
    """One entry of a complaint's thread: a party's message, or a step of the case
    (`event`: opened, offer, accepted, escalated, decided, withdrawn...) told in words."""

    __tablename__ = "complaint_messages"

    BUYER = "buyer"
    MERCHANT = "merchant"
    OPERATOR = "operator"
    SYSTEM = "system"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    author: Mapped[str] = mapped_column(String(12))
    user_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    event: Mapped[str | None] = mapped_column(String(24))
    body: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    images = relationship("ComplaintImage", order_by="ComplaintImage.id", viewonly=True)


class ComplaintImage(db.Model):
    """An evidence image: a re-encoded file in the private upload folder."""

    __tablename__ = "complaint_images"

    id: Mapped[int] = mapped_column(primary_key=True)
    complaint_id: Mapped[int] = mapped_column(ForeignKey("complaints.id"), index=True)
    message_id: Mapped[int] = mapped_column(ForeignKey("complaint_messages.id"), index=True)
    name: Mapped[str] = mapped_column(String(80), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
