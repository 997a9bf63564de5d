"""The complaint center: a buyer's complaint about an order, argued in one thread by the
buyer, the merchant and (once escalated) the operator, and settled with money.

Each step is one write transaction: it moves the complaint (the model refuses illegal
moves), adds the step to the thread, audits it, and queues an email to every other party;
the emails (and the refund's gateway call) are enqueued after the commit.

- The buyer opens a complaint within the complaint window after delivery (for a manual
  order also once the promised delivery time has passed without delivery). While it is
  in progress the order's ledger entries are frozen (`ledger.balances.frozen_order_ids`).
- The merchant has `merchant_reply_hours` to answer; an answer may carry an offer: a
  refund (full or partial) or replacement keys. The buyer accepts the offer, escalates,
  or withdraws; a buyer who stays silent for `buyer_reply_days` after an answer has
  their complaint closed (withdrawn).
- A merchant who stays silent past the deadline is escalated by `run_deadlines()`, run
  by the reconciler. The operator decides an escalated case: a refund or a rejection,
  always with a written reason.
- A refund debits the merchant even into a negative balance (which blocks withdrawals
  until sales cover it) and goes back to the buyer through the gateway where it can
  refund, or is recorded for the operator to pay by hand.
"""

import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from faka.accounts.models import ROLE_OPERATOR, Merchant, User
from faka.catalog.models import DELIVERY_AUTO, DELIVERY_MANUAL
from faka.complaints.models import Complaint, ComplaintImage, ComplaintMessage, IllegalComplaintTransition
from faka.core import clock, tasks
from faka.core.clock import local_time
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound, OutOfStock
from faka.core.money import format_money
from faka.core.pagination import Page, paginate
from faka.core.storage import StoredFile
from faka.core.text import clean_text
from faka.core.uploads import (
    EVIDENCE_PIXELS,
    EvidenceFull,
    check_pixels,
    delete_images,
    evidence_quota,
    store_image,
    stored_image,
    stored_size,
)
from faka.extensions import db
from faka.inventory import stock
from faka.inventory.models import CardKey
from faka.messaging import notifications, push, webhooks
from faka.messaging.mail import EMAIL_ORDER_REPLACEMENT, queue_email
from faka.messaging.models import OutboxEmail
from faka.messaging.notifications import merchant_email, order_data
from faka.orders.models import Order
from faka.payments import refunds
from faka.payments.models import PaymentNotice, Refund
from faka.platform import audit
from faka.platform.settings import site_settings
from faka.risk import engine

log = logging.getLogger(__name__)

MAX_IMAGES = 5
MAX_TEXT = 4000
PER_PAGE = 50
EMAIL_COMPLAINT_UPDATE = "complaint_update"
KEYS_REVEALED = "complaint.keys_revealed"

REASON_LABELS = {
    Complaint.KEY_INVALID: _l("The key does not work"),
    Complaint.NOT_AS_DESCRIBED: _l("Not as described"),
    Complaint.NOT_DELIVERED: _l("Not delivered"),
    Complaint.OTHER: _l("Something else"),
}
STATUS_LABELS = {
    Complaint.OPEN: _l("Waiting for the seller"),
    Complaint.MERCHANT_REPLIED: _l("The seller answered"),
    Complaint.ESCALATED: _l("With the platform for a decision"),
    Complaint.RESOLVED_REFUND: _l("Resolved: refunded"),
    Complaint.RESOLVED_REPLACED: _l("Resolved: replacement delivered"),
    Complaint.RESOLVED_REJECTED: _l("Resolved: rejected"),
    Complaint.WITHDRAWN: _l("Closed"),
}
# Statuses after which the order cannot be complained about again: the matter was decided.
DECIDED = (Complaint.RESOLVED_REFUND, Complaint.RESOLVED_REJECTED)


# -- errors -----------------------------------------------------------------------------


class ComplaintNotAllowed(DomainError):
    message = _l("This order cannot get a complaint.")


class ComplaintAlreadyOpen(DomainError):
    message = _l("This order already has a complaint in progress.")


class InvalidComplaint(DomainError):
    message = _l("Choose a reason and describe the problem in at most 4,000 characters.")


class EmptyMessage(DomainError):
    message = _l("Write a message (at most 4,000 characters) or attach an image.")


class TooManyImages(DomainError):
    message = _l("Attach at most 5 images.")


class IllegalStep(DomainError):
    message = _l("This complaint cannot take that step in its current state.")


class InvalidRefundAmount(DomainError):
    message = _l("The refund must be more than zero and at most the order total.")


class ReplacementNotPossible(DomainError):
    message = _l(
        "Replacement keys can be offered once per order, only for automatically delivered keys, and at most "
        "as many as were bought."
    )


class ReplacementOutOfStock(OutOfStock):
    message = _l("There are not enough keys in stock for the replacement.")


class DecisionReasonRequired(DomainError):
    message = _l("Write the reason for the decision (at most 4,000 characters).")


# -- who may complain, and when -----------------------------------------------------------


@dataclass(frozen=True)
class OrderPanel:
    """What the buyer's order page shows about complaints."""

    active: Complaint | None
    past: list[Complaint]
    can_open: bool
    why_not: str | None  # why a complaint cannot be opened now (None when it can, or never applies)
    window_ends: datetime | None


def _window(order: Order, now: datetime) -> tuple[bool, str | None, datetime | None]:
    """Whether the order may get a new complaint at `now`, why not, and until when."""
    settings = site_settings()
    days = int(settings["complaint_window_days"])
    if order.status == Order.DELIVERED and order.delivered_at is not None:
        ends = order.delivered_at + timedelta(days=days)
        if now > ends:
            return False, _("Complaints can be opened up to %(days)s days after delivery.", days=days), ends
        return True, None, ends
    if order.status == Order.PAID and (order.product.delivery_type == DELIVERY_MANUAL or order.manual_fallback_at):
        promised = order.paid_at + timedelta(hours=order.product.manual_promise_hours)
        if now < promised:
            return (
                False,
                _("If the order is not delivered by %(time)s, you can complain here.", time=_format_time(promised)),
                None,
            )
        return True, None, None
    if order.status == Order.PAID_UNFULFILLED:
        return True, None, None
    return False, None, None


def _format_time(when: datetime) -> str:

    return local_time(when)


def order_panel(order: Order, now: datetime | None = None) -> OrderPanel:
    now = now or clock.now()
    complaints = list(
        db.session.execute(
            select(Complaint).where(Complaint.order_id == order.id).order_by(Complaint.id.desc())
        ).scalars()
    )
    active = next((c for c in complaints if c.is_active), None)
    allowed, why_not, ends = _window(order, now)
    if active is not None or any(c.status in DECIDED for c in complaints):
        allowed, why_not = False, None
    return OrderPanel(
        active=active,
        past=[c for c in complaints if not c.is_active],
        can_open=allowed,
        why_not=why_not,
        window_ends=ends,
    )


def check_can_open(order: Order, now: datetime | None = None) -> None:
    """ComplaintAlreadyOpen or ComplaintNotAllowed unless the order may get a complaint now:
    asked before the complaint's images are read, and again inside its transaction."""
    panel = order_panel(order, now)
    if panel.active is not None:
        raise ComplaintAlreadyOpen()
    if not panel.can_open:
        raise ComplaintNotAllowed(panel.why_not)


# -- loaders: access is checked here, once ------------------------------------------------


def complaint_for_buyer(order_token: str, ref: str) -> Complaint:
    """The complaint `ref` of the order whose token is `order_token`, or NotFound."""
    complaint = db.session.execute(
        select(Complaint)
        .join(Order, Order.id == Complaint.order_id)
        .where(Complaint.ref == ref, Order.token == order_token)
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound()
    return complaint


def complaint_for_merchant(merchant_id: int, ref: str) -> Complaint:
    complaint = db.session.execute(
        select(Complaint).where(Complaint.ref == ref, Complaint.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound()
    return complaint


def complaint_for_operator(ref: str) -> Complaint:
    complaint = db.session.execute(select(Complaint).where(Complaint.ref == ref)).scalar_one_or_none()
    if complaint is None:
        raise NotFound()
    return complaint


def evidence_file(complaint: Complaint, name: str) -> StoredFile:
    """The stored evidence image `name` of this complaint (never another complaint's)."""
    owned = db.session.scalar(
        select(ComplaintImage.id).where(ComplaintImage.complaint_id == complaint.id, ComplaintImage.name == name)
    )
    stored = stored_image(name) if owned is not None else None
    if stored is None:
        raise NotFound()
    return stored


# -- the buyer ----------------------------------------------------------------------------


@dataclass
class _Outcome:
    """What a step did, told by the step: who acted and what the thread says, plus the
    work to start after the commit (refund gateway calls, the replacement's email)."""

    author: str
    user_id: int | None
    text: str
    event: str
    refund_ids: list[int] = field(default_factory=list)
    email_ids: list[int] = field(default_factory=list)


def open_complaint(
    order_token: str,
    reason: str,
    description: str,
    images: list[bytes] = (),
    now: datetime | None = None,
    ip: str | None = None,
    device_hash: str | None = None,
) -> Complaint:
    """The buyer complains about their order. Returns the new complaint. A blacklisted
    buyer is refused (risk.Blocked); many complaints from one browser are flagged."""
    description = clean_text(description)
    if reason not in Complaint.REASONS or not description or len(description) > MAX_TEXT:
        raise InvalidComplaint()
    now = now or clock.now()
    order = db.session.execute(select(Order).where(Order.token == order_token)).scalar_one_or_none()
    if order is None:
        raise NotFound()
    check_can_open(order, now)
    with _stored_images(images, order.id) as stored:
        try:
            with write_transaction():
                order = db.session.execute(
                    select(Order)
                    .where(Order.token == order_token)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).scalar_one()
                check_can_open(order, now)
                stored.check_room()
                signals = engine.Signals(
                    engine.COMPLAINT, ip, device_hash, order.email, order.merchant_id, order=order, now=now
                )
                verdict = engine.check(signals)
                engine.add_event(signals, verdict)
                complaint = Complaint(
                    ref=secrets.token_hex(10),
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    status=Complaint.OPEN,
                    reason=reason,
                    description=description,
                    created_at=now,
                    updated_at=now,
                    deadline_at=now + timedelta(hours=int(site_settings()["merchant_reply_hours"])),
                )
                db.session.add(complaint)
                db.session.flush()
                message = _add_message(
                    complaint, ComplaintMessage.BUYER, None, description, now, "opened", stored.names
                )
                audit.record(
                    None,
                    "complaint.opened",
                    f"complaint:{complaint.ref}",
                    detail=f"order:{order.number} reason={reason} by=buyer",
                )
                delivery_ids = webhooks.emit(order.merchant_id, "complaint.opened", _webhook_data(complaint, order))
                email_ids = _queue_emails(complaint, message, len(stored.names))
                push.complaint_event(push.COMPLAINT_OPENED, complaint, order, reason=REASON_LABELS[reason])
                webhooks.enqueue_deliveries(delivery_ids)
                _enqueue_emails(email_ids)
        except IntegrityError as exc:  # another tab opened one at the same moment
            raise ComplaintAlreadyOpen() from exc
    return complaint


def accept_offer(complaint_id: int, now: datetime | None = None) -> Complaint:
    """The buyer takes the merchant's offer: the refund is made, or the replacement keys
    are delivered like any delivery (they appear on the order page and by email)."""

    def step(complaint, order, now):
        if not complaint.has_offer:
            raise IllegalStep()
        if complaint.offer_kind == Complaint.OFFER_REPLACEMENT:
            complaint.accept_offer(now)
            return _Outcome(
                ComplaintMessage.BUYER,
                None,
                _("accepted the replacement of %(count)s key(s).", count=complaint.offer_quantity),
                "accepted",
                email_ids=_deliver_replacement(complaint, order, now),
            )
        complaint.accept_offer(now)
        return _Outcome(
            ComplaintMessage.BUYER,
            None,
            _("accepted the refund of %(amount)s.", amount=_money(complaint.offer_amount, order)),
            "accepted",
            refund_ids=[_refund(complaint, order, complaint.offer_amount, None, now)],
        )

    return _step(complaint_id, step, now, "complaint.accepted", locale_of="buyer")


def can_escalate(complaint: Complaint, now: datetime | None = None) -> bool:
    """Whether the buyer may ask the platform now: after the merchant answered, or once
    the merchant's deadline passed without an answer."""
    if complaint.status == Complaint.MERCHANT_REPLIED:
        return True
    return (
        complaint.status == Complaint.OPEN
        and complaint.deadline_at is not None
        and complaint.deadline_at <= (now or clock.now())
    )


def escalate(complaint_id: int, now: datetime | None = None) -> Complaint:
    """The buyer asks the platform to decide (see can_escalate)."""

    def step(complaint, order, now):
        if complaint.status == Complaint.OPEN and not can_escalate(complaint, now):
            raise IllegalStep(
                _l(
                    "The seller has until %(time)s to answer; you can ask the platform after that.",
                    time=_format_time(complaint.deadline_at),
                )
            )
        complaint.escalate(now)
        return _Outcome(ComplaintMessage.BUYER, None, _("asked the platform to decide."), "escalated")

    return _step(complaint_id, step, now, "complaint.escalated", locale_of="buyer")


def withdraw(complaint_id: int, now: datetime | None = None) -> Complaint:
    def step(complaint, order, now):
        complaint.withdraw(now)
        return _Outcome(ComplaintMessage.BUYER, None, _("withdrew the complaint."), "withdrawn")

    return _step(complaint_id, step, now, "complaint.withdrawn", locale_of="buyer")


# -- messages from anyone ------------------------------------------------------------------


def check_can_post(complaint: Complaint) -> None:
    """IllegalStep unless the complaint takes messages: asked before a post's images are read."""
    if not complaint.is_active:
        raise IllegalStep()


def post_message(
    complaint_id: int,
    author: str,
    user_id: int | None,
    body: str,
    images: list[bytes] = (),
    now: datetime | None = None,
) -> ComplaintMessage:
    """A party adds to the thread (text and/or up to MAX_IMAGES images). The merchant's
    first message is their answer: it stops their deadline and starts the buyer's."""
    body = clean_text(body)
    if (not body and not images) or len(body) > MAX_TEXT:
        raise EmptyMessage()
    if author not in (ComplaintMessage.BUYER, ComplaintMessage.MERCHANT, ComplaintMessage.OPERATOR):
        raise IllegalStep()
    now = now or clock.now()
    complaint = db.session.get(Complaint, complaint_id)
    if complaint is None:
        raise NotFound()
    check_can_post(complaint)
    with _stored_images(images, complaint.order_id) as stored, write_transaction():
        complaint, order = _locked(complaint_id)
        check_can_post(complaint)
        stored.check_room()
        was = complaint.status
        if author == ComplaintMessage.MERCHANT:
            complaint.merchant_answered(now, _buyer_deadline(now))
        else:
            complaint.updated_at = now
        message = _add_message(complaint, author, user_id, body, now, None, stored.names)
        if complaint.status != was:
            audit.record(
                user_id, "complaint.merchant_replied", f"complaint:{complaint.ref}", detail=f"order:{order.number}"
            )
        _enqueue_emails(_queue_emails(complaint, message, len(stored.names)))
    return message


# -- the merchant ---------------------------------------------------------------------------


def offer_refund(
    complaint_id: int, user_id: int, amount: int, note: str = "", now: datetime | None = None
) -> Complaint:
    """The merchant offers to refund `amount` (all or part of the order total)."""

    def step(complaint, order, now):
        if isinstance(amount, bool) or not isinstance(amount, int) or not 0 < amount <= order.total:
            raise InvalidRefundAmount()
        if order.delivered_at is None and amount != order.total:
            raise refunds.UndeliveredRefundInFull()
        complaint.offer(Complaint.OFFER_REFUND, amount, None, now, _buyer_deadline(now))
        text = _("offers a refund of %(amount)s.", amount=_money(amount, order))
        return _Outcome(ComplaintMessage.MERCHANT, user_id, _with_note(text, note), "offer")

    return _step(complaint_id, step, now, "complaint.offered", locale_of="merchant", note=note)


def offer_replacement(
    complaint_id: int, user_id: int, quantity: int, note: str = "", now: datetime | None = None
) -> Complaint:
    """The merchant offers `quantity` new keys from stock (taken when the buyer accepts)."""

    def step(complaint, order, now):
        product = order.product
        if (
            product.delivery_type != DELIVERY_AUTO
            or product.reusable_key
            or order.delivered_at is None
            or isinstance(quantity, bool)
            or not isinstance(quantity, int)
            or not 0 < quantity <= order.quantity
            or _was_replaced(order.id)
        ):
            raise ReplacementNotPossible()
        if _available_keys(order.variant_id) < quantity:
            raise ReplacementOutOfStock()
        complaint.offer(Complaint.OFFER_REPLACEMENT, None, quantity, now, _buyer_deadline(now))
        text = _("offers %(count)s replacement key(s).", count=quantity)
        return _Outcome(ComplaintMessage.MERCHANT, user_id, _with_note(text, note), "offer")

    return _step(complaint_id, step, now, "complaint.offered", locale_of="merchant", note=note)


def _with_note(text: str, note: str) -> str:
    note = clean_text(note)
    return f"{text}\n\n{note}" if note else text


# -- the operator ----------------------------------------------------------------------------


def decide(
    complaint_id: int, operator_id: int, refund_amount: int | None, reason: str, now: datetime | None = None
) -> Complaint:
    """The operator decides an escalated case: refund `refund_amount` (full or partial)
    or, with None, reject it; `reason` is required and shown to both parties."""
    reason = clean_text(reason)
    if not reason or len(reason) > MAX_TEXT:
        raise DecisionReasonRequired()

    def step(complaint, order, now):
        if refund_amount is not None and (
            isinstance(refund_amount, bool)
            or not isinstance(refund_amount, int)
            or not 0 < refund_amount <= order.total
        ):
            raise InvalidRefundAmount()
        if refund_amount and order.delivered_at is None and refund_amount != order.total:
            raise refunds.UndeliveredRefundInFull()
        operator = db.session.get(User, operator_id)
        if operator is None or not operator.is_operator:
            raise NotFound()
        complaint.decide(refund_amount, reason, operator_id, now)
        if not refund_amount:
            return _Outcome(
                ComplaintMessage.OPERATOR,
                operator_id,
                _with_note(_("decided: the complaint is rejected."), reason),
                "decided",
            )
        return _Outcome(
            ComplaintMessage.OPERATOR,
            operator_id,
            _with_note(_("decided: refund %(amount)s.", amount=_money(refund_amount, order)), reason),
            "decided",
            refund_ids=[_refund(complaint, order, refund_amount, operator_id, now)],
        )

    return _step(
        complaint_id,
        step,
        now,
        "complaint.decided",
        actor_id=operator_id,
        locale_of="operator",
        note=f"refund={refund_amount or 0}",
    )


def reveal_keys(complaint_id: int, operator_id: int) -> list[str]:
    """The delivered goods of the complaint's order in plain text, for the operator
    checking a "key does not work" claim. Every reveal is audited."""
    with write_transaction():
        complaint = db.session.get(Complaint, complaint_id)
        if complaint is None:
            raise NotFound()
        items = _delivered_goods(complaint.order)
        audit.record(
            operator_id,
            KEYS_REVEALED,
            f"complaint:{complaint.ref}",
            detail=f"order:{complaint.order.number} count={len(items)}",
        )
    return items


def _delivered_goods(order: Order) -> list[str]:
    if order.delivery_ciphertext:
        return [vault().decrypt(order.delivery_ciphertext)]
    ciphertexts = db.session.execute(
        select(CardKey.ciphertext)
        .where(CardKey.order_id == order.id, CardKey.status == CardKey.SOLD)
        .order_by(CardKey.id)
    ).scalars()
    return [vault().decrypt(c) for c in ciphertexts]


def masked_goods(order: Order) -> list[str]:
    """The delivered goods with all but their last four characters hidden."""
    return ["••••" + item[-4:] if len(item) > 8 else "••••" for item in _delivered_goods(order)]


# -- deadlines (periodic) -------------------------------------------------------------------


@dataclass(frozen=True)
class DeadlineReport:
    escalated: int
    closed: int


def run_deadlines(now: datetime | None = None) -> DeadlineReport:
    """Escalate complaints whose merchant stayed silent past the deadline, and close
    those whose buyer did not answer the merchant in time. Idempotent: each complaint
    is re-checked under its lock, so two runs at once move it once."""
    now = now or clock.now()
    due = db.session.execute(
        select(Complaint.id, Complaint.status)
        .where(Complaint.status.in_((Complaint.OPEN, Complaint.MERCHANT_REPLIED)), Complaint.deadline_at <= now)
        .order_by(Complaint.deadline_at)
    ).all()
    db.session.rollback()  # ends the read snapshot: not held by the reconciler (each step below writes on its own)
    escalated = closed = 0
    for complaint_id, status in due:
        if status == Complaint.OPEN:
            escalated += _deadline_step(complaint_id, now, Complaint.OPEN, "auto_escalated")
        else:
            closed += _deadline_step(complaint_id, now, Complaint.MERCHANT_REPLIED, "auto_closed")
    return DeadlineReport(escalated=escalated, closed=closed)


def _deadline_step(complaint_id: int, now: datetime, expected: str, event: str) -> int:
    def step(complaint, order, now):
        if complaint.status != expected or complaint.deadline_at is None or complaint.deadline_at > now:
            raise _NothingToDo()
        if event == "auto_escalated":
            complaint.escalate(now)
            text = _("The seller did not answer in time, so the platform will decide.")
        else:
            complaint.withdraw(now)
            text = _("The buyer did not answer the seller in time, so the complaint is closed.")
        return _Outcome(ComplaintMessage.SYSTEM, None, text, event)

    try:
        _step(complaint_id, step, now, f"complaint.{event}", locale_of=None)
    except (_NothingToDo, IllegalStep):  # someone else moved it first
        return 0
    return 1


class _NothingToDo(Exception):
    pass


# -- lists ----------------------------------------------------------------------------------

MERCHANT_FILTERS = ("active", "all") + Complaint.STATUSES
QUEUE_FILTERS = ("escalated", "active", "all") + Complaint.STATUSES


def _status_condition(status: str):
    if status == "active":
        return Complaint.status.in_(Complaint.ACTIVE)
    if status in Complaint.STATUSES:
        return Complaint.status == status
    return None


def _by_deadline():
    # Soonest deadline first; cases without one (escalated, closed) after, oldest first.
    return (
        case((Complaint.deadline_at.is_(None), 1), else_=0),
        Complaint.deadline_at,
        Complaint.created_at,
        Complaint.id,
    )


def merchant_complaints(merchant_id: int, status: str = "active", page: int = 1) -> Page:
    """One page of the merchant's complaints, soonest deadline first, counted."""
    conditions = [Complaint.merchant_id == merchant_id]
    condition = _status_condition(status)
    if condition is not None:
        conditions.append(condition)
    return _page(conditions, page)


def merchant_complaints_query(merchant_id: int, status: str = "all"):
    """The merchant's complaints with this status filter (one of MERCHANT_FILTERS), one
    entity for the API's cursor pages."""
    query = select(Complaint).where(Complaint.merchant_id == merchant_id)
    condition = _status_condition(status)
    if condition is not None:
        query = query.where(condition)
    return query.options(joinedload(Complaint.order))


def complaint_queue(
    status: str = "escalated",
    reason: str | None = None,
    merchant_id: int | None = None,
    order_number: str | None = None,
    page: int = 1,
) -> Page:
    """The operator's desk: one page of complaints, soonest deadline first, counted."""
    conditions = []
    condition = _status_condition(status)
    if condition is not None:
        conditions.append(condition)
    if reason in Complaint.REASONS:
        conditions.append(Complaint.reason == reason)
    if merchant_id:
        conditions.append(Complaint.merchant_id == merchant_id)
    if order_number:
        conditions.append(Complaint.order_id.in_(select(Order.id).where(Order.number == order_number.strip())))
    return _page(conditions, page)


def _page(conditions, page: int) -> Page:
    query = (
        select(Complaint)
        .where(*conditions)
        .order_by(*_by_deadline())
        .options(joinedload(Complaint.order).joinedload(Order.product), joinedload(Complaint.merchant))
    )
    return paginate(query, page, PER_PAGE)


def count_needing_answer(merchant_id: int) -> int:
    """Complaints waiting for this merchant's first answer (for the back-office badge)."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(Complaint)
            .where(Complaint.merchant_id == merchant_id, Complaint.status == Complaint.OPEN)
        )
    )


# -- the operator's case file -----------------------------------------------------------------


@dataclass(frozen=True)
class PartyHistory:
    orders: int
    complaints: int
    refunded: int
    recent: list = field(default_factory=list)  # a few (order, complaint status or None) pairs


@dataclass(frozen=True)
class CaseFile:
    complaint: Complaint
    order: Order
    notices: list[PaymentNotice]
    refund: Refund | None
    masked_goods: list[str]
    buyer: PartyHistory
    merchant: PartyHistory


def case_file(complaint: Complaint) -> CaseFile:
    """Everything the operator needs to decide: the order and its payment, the delivered
    goods (masked), and both parties' history."""
    order = complaint.order
    notices = list(
        db.session.execute(
            select(PaymentNotice).where(PaymentNotice.order_id == order.id).order_by(PaymentNotice.id)
        ).scalars()
    )
    refund = db.session.execute(  # the sale's refund, not one of an extra payment (paid twice)
        select(Refund).where(Refund.order_id == order.id, Refund.payment_notice_id.is_(None))
    ).scalar_one_or_none()
    same_buyer = [Order.id == -1]
    if order.email:
        same_buyer.append(Order.email == order.email)
    if order.device_hash:
        same_buyer.append(Order.device_hash == order.device_hash)
    buyer = _history(or_(*same_buyer), exclude=order.id)
    merchant = _history(Order.merchant_id == order.merchant_id, exclude=order.id)
    return CaseFile(
        complaint=complaint,
        order=order,
        notices=notices,
        refund=refund,
        masked_goods=masked_goods(order),
        buyer=buyer,
        merchant=merchant,
    )


def _history(condition, exclude: int) -> PartyHistory:
    paid = Order.paid_at.is_not(None)
    orders, refunded = db.session.execute(
        select(func.count(), func.coalesce(func.sum(case((Order.refunded_amount > 0, 1), else_=0)), 0)).where(
            condition, paid
        )
    ).one()
    complaints = db.session.scalar(
        select(func.count()).select_from(Complaint).join(Order, Order.id == Complaint.order_id).where(condition)
    )
    recent = db.session.execute(
        select(Order, Complaint.status)
        .outerjoin(Complaint, Complaint.order_id == Order.id)
        .where(condition, paid, Order.id != exclude)
        .order_by(Order.created_at.desc())
        .limit(10)
    ).all()
    return PartyHistory(
        orders=int(orders),
        complaints=int(complaints),
        refunded=int(refunded),
        recent=[(o, status) for o, status in recent],
    )


# -- money --------------------------------------------------------------------------------------


def _refund(complaint: Complaint, order: Order, amount: int, actor_id: int | None, now: datetime) -> int:
    """Refund inside the step's transaction; returns the refund's id, whose gateway call
    is enqueued after the commit."""
    refund = refunds.apply_refund(order, amount, actor_id, now, complaint_id=complaint.id, allow_negative=True)
    return refund.id


def _deliver_replacement(complaint: Complaint, order: Order, now: datetime) -> list[int]:
    """Sell `offer_quantity` fresh keys to the order, and email the buyer the order's
    goods again (all its keys, the new ones last); returns the email's id."""
    if not stock.reserve_keys(order, complaint.offer_quantity, until=now, now=now):
        raise ReplacementOutOfStock()
    stock.sell_keys(stock.reserved_key_ids(order.id), now)
    if not order.email:
        return []
    email = OutboxEmail(kind=EMAIL_ORDER_REPLACEMENT, order_id=order.id, to_addr=order.email, locale=order.locale)
    db.session.add(email)
    db.session.flush()
    return [email.id]


def _was_replaced(order_id: int) -> bool:
    return (
        db.session.scalar(
            select(Complaint.id).where(Complaint.order_id == order_id, Complaint.status == Complaint.RESOLVED_REPLACED)
        )
        is not None
    )


def _available_keys(variant_id: int) -> int:
    """Keys on sale of the order's own variant: the only ones a replacement may take."""
    return int(
        db.session.scalar(
            select(func.count())
            .select_from(CardKey)
            .where(CardKey.variant_id == variant_id, CardKey.status == CardKey.AVAILABLE)
        )
    )


def _money(amount: int, order: Order) -> str:

    return format_money(amount, order.currency)


# -- the shared shape of a step -------------------------------------------------------------------


def _step(
    complaint_id: int,
    step,
    now: datetime | None,
    action: str,
    actor_id: int | None = None,
    locale_of: str | None = None,
    note: str = "",
) -> Complaint:
    """Run one step of a complaint in a write transaction: lock it, let `step` move it
    and say what happened (an _Outcome), add that to the thread, audit it, queue the
    emails, commit; then enqueue the emails and the refunds' gateway calls.

    The thread's text is written in the language of whoever acted (`locale_of`: the
    buyer's order language, or the site's default for the merchant, operator and
    system), since it is their words."""
    now = now or clock.now()
    with write_transaction():
        complaint, order = _locked(complaint_id)
        if not complaint.is_active:  # a closed case takes no step, whatever its details
            raise IllegalStep()
        locale = order.locale if locale_of == "buyer" else _default_locale()
        try:
            with force_locale(locale):
                outcome = step(complaint, order, now)
        except IllegalComplaintTransition as exc:
            raise IllegalStep() from exc
        message = _add_message(complaint, outcome.author, outcome.user_id, outcome.text, now, outcome.event, [])
        details = (f"order:{order.number}", f"by={outcome.author}", f"status={complaint.status}", note[:200])
        audit.record(
            actor_id if actor_id is not None else outcome.user_id,
            action,
            f"complaint:{complaint.ref}",
            detail=" ".join(part for part in details if part),
        )
        email_ids = outcome.email_ids + _queue_emails(complaint, message)
        if outcome.event in ("escalated", "auto_escalated"):
            push.complaint_event(push.COMPLAINT_ESCALATED, complaint, order)
        elif outcome.event == "decided":
            push.complaint_event(push.COMPLAINT_DECIDED, complaint, order)
        for refund_id in outcome.refund_ids:
            tasks.enqueue("payments.tasks.refund_payment", refund_id, job_id=f"refund-{refund_id}")
        _enqueue_emails(email_ids)
    if outcome.refund_ids:
        _notify_refunded(order.id)
    return complaint


def _notify_refunded(order_id: int) -> None:
    # The refund stands whatever happens here; a failed webhook must not fail the step.

    try:
        notifications.order_refunded(order_id)
    except Exception:
        db.session.rollback()  # whatever the failed notifications left open or broken must not outlive them
        log.exception("order %s: refund notifications failed", order_id)


def _locked(complaint_id: int) -> tuple[Complaint, Order]:
    complaint = db.session.execute(
        select(Complaint)
        .where(Complaint.id == complaint_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound()
    order = db.session.execute(
        select(Order).where(Order.id == complaint.order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    return complaint, order


def _add_message(
    complaint: Complaint,
    author: str,
    user_id: int | None,
    body: str,
    now: datetime,
    event: str | None,
    image_names: list[str],
) -> ComplaintMessage:
    message = ComplaintMessage(
        complaint_id=complaint.id, author=author, user_id=user_id, body=body, event=event, created_at=now
    )
    db.session.add(message)
    db.session.flush()
    for name in image_names:
        db.session.add(ComplaintImage(complaint_id=complaint.id, message_id=message.id, name=name, created_at=now))
    return message


def evidence_used(order_id: int) -> int:
    """Bytes the complaint images of the order take, whoever posted them."""
    return stored_size(
        db.session.execute(
            select(ComplaintImage.name)
            .join(Complaint, Complaint.id == ComplaintImage.complaint_id)
            .where(Complaint.order_id == order_id)
        ).scalars(),
    )


class _stored_images:
    """Validate and store a post's images before the transaction, within the order's
    evidence quota; delete them again if anything fails, so a refused step leaves no files
    behind. All the images are measured from their headers (kind, bytes, pixels) before
    any is decoded; `check_room` repeats the quota check inside the transaction, where
    posts of the same order are serialised."""

    def __init__(self, images, order_id: int):
        self.images = [data for data in (images or []) if data]
        self.order_id = order_id
        self.names: list[str] = []

    def __enter__(self) -> "_stored_images":
        if len(self.images) > MAX_IMAGES:
            raise TooManyImages()
        if not self.images:
            return self
        check_pixels(self.images, EVIDENCE_PIXELS)
        used, quota = evidence_used(self.order_id), evidence_quota()
        if used >= quota:
            raise EvidenceFull(used, quota)
        try:
            for data in self.images:
                self.names.append(store_image(data))
                self.check_room()
        except Exception:
            delete_images(self.names)
            raise
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None:
            delete_images(self.names)
        return False

    def check_room(self) -> None:
        """EvidenceFull unless the order's images with the stored ones fit its quota."""
        used, quota = evidence_used(self.order_id), evidence_quota()
        if self.names and used + stored_size(self.names) > quota:
            raise EvidenceFull(used, quota)


def _buyer_deadline(now: datetime) -> datetime:
    return now + timedelta(days=int(site_settings()["buyer_reply_days"]))


def _default_locale() -> str:
    return current_app.config.get("BABEL_DEFAULT_LOCALE", "zh_CN")


# -- emails and webhooks ------------------------------------------------------------------------


def _queue_emails(complaint: Complaint, message: ComplaintMessage, image_count: int = 0) -> list[int]:
    """Email every party but the author: the buyer (when the order has an email) with
    their order link, the merchant and, once the case is with the platform, every
    operator, with their back-office link."""

    order = complaint.order
    base_url = current_app.config["BASE_URL"].rstrip("/")
    recipients = []
    if message.author != ComplaintMessage.BUYER and order.email:
        recipients.append(
            (order.email, order.locale, f"{base_url}/order/{order.token}/complaint/{complaint.ref}", None, None)
        )
    if message.author != ComplaintMessage.MERCHANT:
        merchant = db.session.get(Merchant, complaint.merchant_id)
        recipients.append(
            (
                merchant_email(merchant),
                _default_locale(),
                f"{base_url}/merchant/complaints/{complaint.ref}",
                merchant.user_id,
                merchant.id,
            )
        )
    with_platform = complaint.status == Complaint.ESCALATED or complaint.escalated_at is not None
    if message.author != ComplaintMessage.OPERATOR and with_platform:
        for user_id, address in db.session.execute(select(User.id, User.email).where(User.role == ROLE_OPERATOR)):
            recipients.append(
                (address, _default_locale(), f"{base_url}/operator/complaints/{complaint.ref}", user_id, None)
            )
    ids = []
    for address, locale, link, user_id, merchant_id in recipients:
        with force_locale(locale):
            subject = _(
                "Complaint about order %(number)s: %(status)s",
                number=order.number,
                status=str(STATUS_LABELS[complaint.status]),
            )
            context = {
                "order_number": order.number,
                "product_title": order.title,
                "status": str(STATUS_LABELS[complaint.status]),
                "author": str(AUTHOR_LABELS[message.author]),
                "body": message.body,
                "images": image_count,
                "link": link,
            }
        email = queue_email(
            EMAIL_COMPLAINT_UPDATE, address, subject, context, locale, user_id=user_id, merchant_id=merchant_id
        )
        ids.append(email.id)
    return ids


AUTHOR_LABELS = {
    ComplaintMessage.BUYER: _l("Buyer"),
    ComplaintMessage.MERCHANT: _l("Seller"),
    ComplaintMessage.OPERATOR: _l("Platform"),
    ComplaintMessage.SYSTEM: _l("System"),
}


def _enqueue_emails(email_ids: list[int]) -> None:
    for email_id in email_ids:
        tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}")


def _webhook_data(complaint: Complaint, order: Order) -> dict:

    data = order_data(order)
    data["complaint"] = {
        "ref": complaint.ref,
        "reason": complaint.reason,
        "status": complaint.status,
        "created_at": int(complaint.created_at.timestamp()),
    }
    return data
