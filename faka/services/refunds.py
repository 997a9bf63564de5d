"""Getting refunded money back to the buyer.

`money.apply_refund` debits the merchant and writes a Refund (`pending`) in the same
transaction as the order's change; `execute()` (the jobs.refund_payment job, enqueued
after that commit and again by the reconciler while it stays pending) asks the order's
gateway to refund the payment. A gateway without a refund API turns it `manual`: the
operator pays the buyer back by hand and marks it `paid` with the payment's reference.
"""
import logging

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from faka.database import begin_write
from faka.extensions import db
from faka.models import Order, PaymentNotice, Refund, User
from faka.payments import GATEWAYS, gateway_settings
from faka.payments.base import CannotRefund
from faka.services import audit, clock
from faka.services.errors import DomainError, NotFound

log = logging.getLogger(__name__)

PER_PAGE = 50
STATUS_LABELS = {
    Refund.PENDING: _l("Sending to the payment gateway"),
    Refund.DONE: _l("Refunded through the gateway"),
    Refund.MANUAL: _l("To be paid back by hand"),
    Refund.PAID: _l("Paid back by hand"),
}


class RefundAlreadyPaid(DomainError):
    message = _l("This refund is not waiting to be paid by hand.")


def execute(refund_id: int) -> bool:
    """Ask the gateway to refund. Returns True when this call settled the refund (done
    or turned manual); a refund no longer pending is left alone. A gateway error
    propagates so the job is retried."""
    refund = db.session.get(Refund, refund_id)
    if refund is None or refund.status != Refund.PENDING:
        db.session.rollback()
        return False
    order = db.session.get(Order, refund.order_id)
    trade_no = db.session.scalar(
        select(PaymentNotice.trade_no).where(PaymentNotice.order_id == order.id).order_by(PaymentNotice.id).limit(1)
    )
    gateway_class = GATEWAYS.get(refund.gateway)
    _row, settings = gateway_settings(refund.gateway) if gateway_class else (None, {})
    db.session.rollback()  # no transaction held open across the gateway call
    reference, note = None, None
    if gateway_class is None or trade_no is None:
        note = "no gateway payment to refund"
    else:
        try:
            reference = gateway_class(settings).refund(order.number, trade_no, refund.amount, f"R{refund.id}")
        except CannotRefund as exc:
            note = str(exc)
    begin_write()
    refund = db.session.execute(
        select(Refund).where(Refund.id == refund_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one()
    if refund.status != Refund.PENDING:
        db.session.commit()
        return False
    if reference is not None:
        refund.status, refund.reference, refund.completed_at = Refund.DONE, reference[:64], clock.now()
    else:
        refund.status, refund.note = Refund.MANUAL, note
    audit.record(None, f"refund.{refund.status}", f"order:{refund.order_id}",
                 detail=f"refund:{refund.id} amount={refund.amount} gateway={refund.gateway}")
    db.session.commit()
    log.info("refund %s of order %s: %s", refund.id, refund.order_id, refund.status)
    return True


def pending_ids() -> list[int]:
    return list(db.session.execute(select(Refund.id).where(Refund.status == Refund.PENDING)).scalars())


def refunds(status: str | None = Refund.MANUAL, page: int = 1) -> tuple[list[tuple[Refund, Order]], int]:
    """One page of refunds (default: those the operator must pay by hand), oldest
    first, with their orders, and how many match."""
    conditions = [Refund.status == status] if status in STATUS_LABELS else []
    page = max(1, int(page))
    total = db.session.scalar(select(func.count()).select_from(Refund).where(*conditions))
    rows = db.session.execute(
        select(Refund, Order).join(Order, Order.id == Refund.order_id).where(*conditions)
        .order_by(Refund.created_at, Refund.id).offset((page - 1) * PER_PAGE).limit(PER_PAGE)
    ).all()
    return [(r, o) for r, o in rows], int(total)


def mark_paid(refund_id: int, operator_id: int, reference: str) -> Refund:
    """The operator paid a manual refund back to the buyer; `reference` is the payment's."""
    begin_write()
    try:
        operator = db.session.get(User, operator_id)
        refund = db.session.execute(
            select(Refund).where(Refund.id == refund_id).with_for_update()
        ).scalar_one_or_none()
        if refund is None or operator is None or not operator.is_operator:
            raise NotFound()
        if refund.status != Refund.MANUAL:
            raise RefundAlreadyPaid()
        refund.status, refund.completed_at, refund.paid_by = Refund.PAID, clock.now(), operator_id
        refund.reference = (reference or "").strip()[:64] or None
        audit.record(operator_id, "refund.paid", f"order:{refund.order_id}",
                     detail=f"refund:{refund.id} amount={refund.amount} reference={refund.reference or ''}")
        db.session.commit()
    except Exception:
        db.session.rollback()
        raise
    return refund
