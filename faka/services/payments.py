"""What happens when a gateway says an order was paid."""
import logging
from dataclasses import dataclass
from typing import Mapping

from flask import current_app, url_for
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from faka import jobs
from faka.database import begin_write
from faka.extensions import db
from faka.models import Order, PaymentNotice
from faka.payments import GATEWAYS, get_gateway
from faka.payments.base import Gateway, Notice, NotifyAnswer, OrderRef, PaymentStart
from faka.services import clock, stock
from faka.services.errors import InvalidNotify

log = logging.getLogger(__name__)

OUTCOME_PAID = "paid"
OUTCOME_LATE_PAID = "late_paid"  # paid after expiry, keys still available
OUTCOME_UNFULFILLED = "unfulfilled"  # paid after expiry, no keys left: refund due
OUTCOME_DUPLICATE = "duplicate"  # a second payment for an order already paid: refund due


@dataclass(frozen=True)
class NotifyResult:
    gateway: Gateway
    notice: Notice
    order: Order
    replay: bool


def start_payment(order: Order) -> PaymentStart:
    return get_gateway(order.gateway).create_payment(order_ref(order))


def order_ref(order: Order) -> OrderRef:
    """What the order's gateway is told about it: amount and currency as the order holds
    them, and the addresses the provider sends the buyer and its notifications to."""
    base = current_app.config["BASE_URL"].rstrip("/")
    return OrderRef(
        number=order.number,
        token=order.token,
        total=order.total,
        currency=order.currency,
        subject=order.product.title,
        notify_url=base + url_for("pay.notify", gateway=order.gateway),
        return_url=url_for("orders.show", token=order.token),
        base_url=base,
        expires_at=order.expires_at,
        client_ip=order.client_ip,
    )


def refusal(gateway_name: str) -> NotifyAnswer:
    """The failure answer of a gateway whose notification was refused (plain "fail" for
    a gateway we do not know or have disabled)."""
    cls = GATEWAYS.get(gateway_name)
    return cls({}).answer(False) if cls is not None else NotifyAnswer("fail", status=400)


def handle_notify(
    gateway_name: str, form: Mapping[str, str], headers: Mapping[str, str], body: bytes, _retry: bool = True
) -> NotifyResult:
    """Verify a notification and record the payment exactly once.

    Raises InvalidNotify (and changes nothing) for a bad signature, an unknown order, or a
    mismatched amount or currency. A replay of an accepted notification changes nothing
    and returns `replay=True`, so the route still answers the gateway's success body.
    """
    gateway = get_gateway(gateway_name)
    notice = gateway.verify_notify(form, headers, body)
    begin_write()
    try:
        result, enqueue_delivery = _record(gateway, gateway_name, notice)
        db.session.commit()
    except IntegrityError:
        db.session.rollback()
        if not _retry:
            raise
        # A concurrent copy of the same notification committed first: this time it is a replay.
        return handle_notify(gateway_name, form, headers, body, _retry=False)
    except Exception:
        db.session.rollback()
        raise
    if enqueue_delivery:
        jobs.enqueue(jobs.deliver_order, result.order.id, job_id=f"deliver-{result.order.id}")
        _notify_merchant_paid(result.order.id)
    return result


def _notify_merchant_paid(order_id: int) -> None:
    # Must never fail the gateway's answer: the payment is already recorded.
    from faka.services import notifications

    try:
        notifications.order_paid(order_id)
    except Exception:
        db.session.rollback()
        log.exception("order %s: merchant notifications for the payment failed", order_id)


def _record(gateway: Gateway, gateway_name: str, notice: Notice) -> tuple[NotifyResult, bool]:
    order = db.session.execute(
        select(Order).where(Order.number == notice.order_number).with_for_update()
    ).scalar_one_or_none()
    if order is None:
        raise InvalidNotify(f"unknown order {notice.order_number}")
    if order.gateway != gateway_name:
        raise InvalidNotify(f"order {order.number} was not placed with {gateway_name}")
    if notice.amount != order.total or notice.currency != order.currency:
        raise InvalidNotify(
            f"order {order.number}: amount {notice.amount} {notice.currency} != {order.total} {order.currency}"
        )
    existing = db.session.execute(
        select(PaymentNotice).where(PaymentNotice.gateway == gateway_name, PaymentNotice.trade_no == notice.trade_no)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.order_id != order.id:
            raise InvalidNotify(f"trade {notice.trade_no} already recorded for another order")
        return NotifyResult(gateway, notice, order, replay=True), False
    if not notice.paid:
        return NotifyResult(gateway, notice, order, replay=False), False

    now = clock.now()
    outcome = _apply_payment(order, now)
    db.session.add(
        PaymentNotice(
            gateway=gateway_name,
            trade_no=notice.trade_no,
            order_id=order.id,
            amount=notice.amount,
            currency=notice.currency,
            outcome=outcome,
            received_at=now,
        )
    )
    db.session.flush()
    if outcome in (OUTCOME_UNFULFILLED, OUTCOME_DUPLICATE):
        log.warning("order %s: payment %s needs a refund (%s)", order.number, notice.trade_no, outcome)
    return NotifyResult(gateway, notice, order, replay=False), outcome in (OUTCOME_PAID, OUTCOME_LATE_PAID)


def _apply_payment(order: Order, now) -> str:
    if order.status == Order.PENDING:
        order.mark_paid(now)
        return OUTCOME_PAID
    if order.status == Order.EXPIRED:
        # Honour a late payment if stock remains; never drop it. Its coupon use, given
        # back at expiry, is taken again: the buyer did pay with the discount.
        if order.coupon_id:
            stock.change_coupon_uses(order.coupon_id, 1)
        needs_keys = order.product.uses_key_stock
        if not needs_keys or stock.reserve_keys(order, order.quantity, until=now):
            order.mark_paid(now)
            return OUTCOME_LATE_PAID
        order.mark_unfulfilled(now)
        return OUTCOME_UNFULFILLED
    return OUTCOME_DUPLICATE
