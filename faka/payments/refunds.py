"""Refunds: taking an order's money back from the merchant, and getting it to the buyer.

`refund_order` (the merchant's back office) and `apply_refund` (inside a complaint's or a
risk hold's decision) debit the merchant and write a Refund (`pending`) in the same
transaction as the order's change; a second payment of an order already paid gets its
own Refund (`notify._refund_duplicate`, tied to that payment, no ledger entry).
`execute()` (the "payments.tasks.refund_payment" task, enqueued after that commit and again by the
reconciler while it stays pending) asks the gateway that took the payment to refund it:
the order's first payment, or for an extra payment that payment, each with the gateway
it came through (the buyer may have switched the order's gateway before paying). A
gateway without a refund API turns it `manual`: the operator pays the buyer back by hand
and marks it `paid` with the payment's reference.
"""

import logging
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.accounts.models import Merchant, User
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.ledger import balances, shares
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import GATEWAYS, gateway_settings
from faka.payments.gateways.base import CannotRefund
from faka.payments.models import PaymentNotice, Refund
from faka.platform import audit

log = logging.getLogger(__name__)

PER_PAGE = 50


class OrderNotRefundable(DomainError):
    message = _l("This order cannot be refunded in its current state.")


class RefundNotCovered(DomainError):
    message = _l(
        "The available balance of the merchant, or of the reseller or promoter sharing the order, cannot cover this refund."
    )


class UndeliveredRefundInFull(DomainError):
    message = _l("An order that was never delivered can only be refunded in full.")


class RefundAlreadyPaid(DomainError):
    message = _l("This refund is not waiting to be paid by hand.")


# -- taking the money back from the merchant ----------------------------------------------


def refund_order(
    order_id: int,
    merchant_id: int,
    actor_id: int | None,
    allowed_statuses: tuple[str, ...] = (Order.PAID_UNFULFILLED,),
    now: datetime | None = None,
) -> bool:
    """Refund the merchant's whole order (from the back office: a paid order that sold
    out before delivery). Returns True when this call refunded it; an order already
    refunded is left alone. A refund of settled money is refused when the available
    balance cannot cover it (RefundNotCovered)."""
    now = now or clock.now()
    with write_transaction():
        order = _locked_order(order_id)
        if order is None or order.merchant_id != merchant_id:
            raise NotFound()
        if order.status == Order.REFUNDED:
            return False
        if order.status not in allowed_statuses:
            raise OrderNotRefundable()
        refund = apply_refund(order, order.total, actor_id, now)
        tasks.enqueue("payments.tasks.refund_payment", refund.id, job_id=f"refund-{refund.id}")
    return True


def _locked_order(order_id: int) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def apply_refund(
    order: Order,
    amount: int,
    actor_id: int | None,
    now: datetime,
    complaint_id: int | None = None,
    allow_negative: bool = False,
) -> Refund:
    """Refund `amount` of a locked order inside the caller's write transaction: the order
    becomes refunded (or partially refunded), the merchant is debited, and a Refund
    records how the money reaches the buyer (the caller enqueues "payments.tasks.refund_payment",
    which write_transaction() sends once it has committed).

    Each share of the sale (the merchant's, a reseller's margin, a promoter's commission:
    faka/ledger/shares.py) is taken back in proportion to the refund, with the matching
    part of its fee. Those entries settle when the sale does,
    so a refund inside the hold only cancels pending money. A refund of settled money
    must be covered by the available balance unless `allow_negative` (a complaint's
    decision: the balance may go below zero, which blocks withdrawals until sales
    cover it). An order whose settlement is frozen is refunded out of the frozen money.
    """
    if order.status not in (Order.PAID, Order.DELIVERED, Order.PAID_UNFULFILLED):
        raise OrderNotRefundable()
    if order.delivered_at is None and amount != order.total:
        # Nothing was credited to anyone: the part not refunded would belong to nobody.
        raise UndeliveredRefundInFull()
    merchant_id = order.merchant_id
    credits = {
        e.kind: e
        for e in db.session.execute(
            select(LedgerEntry).where(LedgerEntry.order_id == order.id, LedgerEntry.kind.in_(shares.ORDER_KINDS))
        ).scalars()
    }
    # Every account the refund debits is locked like a withdrawal request (in id order,
    # so two refunds cannot deadlock), so the two cannot both spend the same balance.
    accounts = sorted({merchant_id, *(e.merchant_id for e in credits.values())})
    db.session.execute(select(Merchant.id).where(Merchant.id.in_(accounts)).order_by(Merchant.id).with_for_update())
    sale = credits.get(LedgerEntry.SALE)
    credited = {party: credits[party.credit] for party in shares.PARTIES if party.credit in credits}
    backs = shares.refunded_shares({p: e.amount for p, e in credited.items()}, amount, order.total)
    fee_backs = {
        party: balances.returned_fee(-credits[party.fee].amount, backs[party], entry.amount)
        if party.fee in credits
        else 0
        for party, entry in credited.items()
    }
    if sale is not None:
        settles_at = max(now, sale.available_at)
        # Settled money is taken back from every share's account (the merchant's, the
        # reseller's, the promoter's): each must have it available, or a promoter who
        # withdrew a commission would be left below zero by a refund no complaint decided.
        takes_available = settles_at <= now and not allow_negative
        for party, entry in credited.items() if takes_available else ():
            if order.id in balances.frozen_order_ids(entry.merchant_id):
                continue  # taken out of the frozen money
            taken = backs[party] - fee_backs[party]
            if taken > 0 and taken > balances.balance(entry.merchant_id, now).available:
                raise RefundNotCovered()
    was = order.status
    order.mark_refunded(now, amount)
    for party, entry in credited.items():
        for kind, value in ((party.refund, -backs[party]), (party.fee_return, fee_backs[party])):
            if value or kind == party.refund:
                db.session.add(
                    LedgerEntry(
                        merchant_id=entry.merchant_id,
                        order_id=order.id,
                        kind=kind,
                        amount=value,
                        available_at=settles_at,
                        created_at=now,
                    )
                )
    refund = Refund(
        order_id=order.id,
        merchant_id=merchant_id,
        complaint_id=complaint_id,
        amount=amount,
        gateway=order.gateway,
        status=Refund.PENDING,
        created_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    audit.record(
        actor_id,
        "order.refunded",
        f"order:{order.id}",
        detail=f"merchant:{merchant_id} was={was} amount={amount} of={order.total}"
        + (f" complaint:{complaint_id}" if complaint_id else ""),
    )
    return refund


# -- getting it to the buyer --------------------------------------------------------------


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
    order_number = db.session.execute(select(Order.number).where(Order.id == refund.order_id)).scalar_one()
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


def refunds(status: str | None = Refund.MANUAL, page: int = 1) -> Page:
    """One page of refunds (default: those the operator must pay by hand), oldest
    first, counted. Each item is a row (Refund, Order, PaymentNotice | None): the refund,
    its order and, for the refund of an extra payment (the buyer paid an order twice),
    that payment."""
    conditions = [Refund.status == status] if status in Refund.STATUS_LABELS else []
    return paginate(
        select(Refund, Order, PaymentNotice)
        .join(Order, Order.id == Refund.order_id)
        .outerjoin(PaymentNotice, PaymentNotice.id == Refund.payment_notice_id)
        .where(*conditions)
        .order_by(Refund.created_at, Refund.id),
        page,
        PER_PAGE,
    )


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
