"""Getting refunded money back to the buyer.

`money.apply_refund` debits the merchant and writes a Refund (`pending`) in the same
transaction as the order's change; a second payment of an order already paid gets its
own Refund (`payments._refund_duplicate`, tied to that payment, no ledger entry).
`execute()` (the "payments.tasks.refund_payment" task, enqueued after that commit and again by the
reconciler while it stays pending) asks the gateway that took the payment to refund it:
the order's first payment, or for an extra payment that payment, each with the gateway
it came through (the buyer may have switched the order's gateway before paying). A
gateway without a refund API turns it `manual`: the operator pays the buyer back by hand
and marks it `paid` with the payment's reference.
"""

import logging

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from faka.accounts.models import User
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import GATEWAYS, gateway_settings
from faka.payments.gateways.base import CannotRefund
from faka.payments.models import PaymentNotice, Refund
from faka.platform import audit

log = logging.getLogger(__name__)

PER_PAGE = 50


class RefundAlreadyPaid(DomainError):
    message = _l("This refund is not waiting to be paid by hand.")


def refunded_payment(refund: Refund) -> PaymentNotice | None:
    """The payment a refund gives back: the extra payment it was made for, else the
    order's first payment (not a later, duplicate one)."""
    if refund.payment_notice_id is not None:
        return db.session.get(PaymentNotice, refund.payment_notice_id)
    return db.session.execute(
        select(PaymentNotice)
        .where(PaymentNotice.order_id == refund.order_id, PaymentNotice.outcome != notify.OUTCOME_DUPLICATE)
        .order_by(PaymentNotice.id)
        .limit(1)
    ).scalar_one_or_none()


def execute(refund_id: int) -> bool:
    """Ask the gateway to refund. Returns True when this call settled the refund (done
    or turned manual); a refund no longer pending is left alone. A gateway error
    propagates so the job is retried."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != Refund.PENDING:
        db.session.rollback()  # ends the read snapshot (a job may run in its caller's session)
        return False
    order_number = db.session.scalar(select(Order.number).where(Order.id == refund.order_id))
    payment = refunded_payment(refund)
    gateway_name = payment.gateway if payment is not None else refund.gateway
    trade_no = payment.trade_no if payment is not None else None
    gateway_class = GATEWAYS.get(gateway_name)
    _row, settings = gateway_settings(gateway_name) if gateway_class else (None, {})
    amount = refund.amount
    db.session.rollback()  # no transaction held open across the gateway call
    reference, note = None, None
    if gateway_class is None or trade_no is None:
        note = "no gateway payment to refund"
    else:
        try:
            reference = gateway_class(settings).refund(order_number, trade_no, amount, f"R{refund_id}")
        except CannotRefund as exc:
            note = str(exc)
    with write_transaction():
        refund = db.session.execute(
            select(Refund).where(Refund.id == refund_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one()
        if refund.status != Refund.PENDING:
            return False  # nothing written: the commit only ends the transaction
        refund.gateway = gateway_name  # where the money is, whatever the order's gateway is now
        if reference is not None:
            refund.status, refund.reference, refund.completed_at = Refund.DONE, reference[:64], clock.now()
        else:
            # An extra payment's refund keeps saying what it is for.
            refund.status, refund.note = Refund.MANUAL, "; ".join(filter(None, (refund.note, note)))
        audit.record(
            None,
            f"refund.{refund.status}",
            f"order:{refund.order_id}",
            detail=f"refund:{refund.id} amount={refund.amount} gateway={refund.gateway}"
            + (f" payment:{trade_no}" if trade_no else ""),
        )
    log.info("refund %s of order %s: %s", refund.id, refund.order_id, refund.status)
    return True


def pending_ids() -> list[int]:
    return list(db.session.execute(select(Refund.id).where(Refund.status == Refund.PENDING)).scalars())


def refunds(
    status: str | None = Refund.MANUAL, page: int = 1
) -> tuple[list[tuple[Refund, Order, PaymentNotice | None]], int]:
    """One page of refunds (default: those the operator must pay by hand), oldest
    first, with their orders and, for the refund of an extra payment (the buyer paid an
    order twice), that payment; and how many match."""
    conditions = [Refund.status == status] if status in Refund.STATUS_LABELS else []
    page = max(1, int(page))
    total = db.session.scalar(select(func.count()).select_from(Refund).where(*conditions))
    rows = db.session.execute(
        select(Refund, Order, PaymentNotice)
        .join(Order, Order.id == Refund.order_id)
        .outerjoin(PaymentNotice, PaymentNotice.id == Refund.payment_notice_id)
        .where(*conditions)
        .order_by(Refund.created_at, Refund.id)
        .offset((page - 1) * PER_PAGE)
        .limit(PER_PAGE)
    ).all()
    return [(r, o, extra) for r, o, extra in rows], int(total)


def mark_paid(refund_id: int, operator_id: int, reference: str) -> Refund:
    """The operator paid a manual refund back to the buyer; `reference` is the payment's."""
    with write_transaction():
        operator = db.session.get(User, operator_id)
        refund = db.session.execute(select(Refund).where(Refund.id == refund_id).with_for_update()).scalar_one_or_none()
        if refund is None or operator is None or not operator.is_operator:
            raise NotFound()
        if refund.status != Refund.MANUAL:
            raise RefundAlreadyPaid()
        refund.status, refund.completed_at, refund.paid_by = Refund.PAID, clock.now(), operator_id
        refund.reference = (reference or "").strip()[:64] or None
        audit.record(
            operator_id,
            "refund.paid",
            f"order:{refund.order_id}",
            detail=f"refund:{refund.id} amount={refund.amount} reference={refund.reference or ''}",
        )
    return refund
