"""Handing the goods to the buyer once an order is paid."""

import logging
from datetime import timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.catalog.models import DELIVERY_AUTO, DELIVERY_FIXED, DELIVERY_MANUAL, DELIVERY_REMOTE, Product
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.inventory import stock
from faka.ledger import shares
from faka.messaging import notifications
from faka.messaging.mail import EMAIL_ORDER_DELIVERED
from faka.messaging.models import OutboxEmail
from faka.orders import remote_delivery
from faka.orders.models import Order

log = logging.getLogger(__name__)

SETTLEMENT_HOLD = timedelta(days=3)


class NotDeliverable(DomainError):
    message = _l("Only a paid order of a manual-delivery product can be delivered by hand.")


class OrderHeld(DomainError):
    message = _l("This order is held for the platform's risk review. Deliver it once it is released.")


def awaiting_delivery() -> tuple:
    """The conditions of paid orders the delivery job still owes their goods: not
    delivered by hand (nor handed to the merchant by a failing delivery server), not held
    by the risk engine (the query joins Product)."""
    return (
        Order.status == Order.PAID,
        Order.held_at.is_(None),
        Product.delivery_type != DELIVERY_MANUAL,
        Order.manual_fallback_at.is_(None),
    )


def deliver_order(order_id: int) -> bool:
    """Deliver a paid order: sell its keys, credit the shares of the sale, queue the email.

    Idempotent: an order that is not `paid` is left alone, so a replayed or duplicated
    job changes nothing; so is an order the risk engine holds for an operator. Returns
    True when this call delivered the order. A "from my server" order asks the merchant's
    server for its keys first (_deliver_from_server).
    """
    if remote_delivery.awaits_server(order_id):
        return _deliver_from_server(order_id)
    with write_transaction():
        order = db.session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one_or_none()
        if (
            order is None
            or order.status != Order.PAID
            or order.is_held
            or order.product.delivery_type in (DELIVERY_MANUAL, DELIVERY_REMOTE)
            or order.manual_fallback_at is not None
        ):
            return False  # nothing written
        now = clock.now()
        handed_over = _hand_over(order, now)
        if handed_over:
            _complete(order, now)
        else:
            order.mark_unfulfilled(now)  # committed with what _hand_over wrote, as before
    if not handed_over:
        log.warning("order %s: paid but no keys left; refund due", order.number)
        return False
    _delivered(order)
    return True


def _deliver_from_server(order_id: int) -> bool:
    """Ask the merchant's server for the order's keys, with no transaction held while
    waiting, then deliver them as stock keys are delivered. A failed attempt is recorded
    and raises RemoteDeliveryFailed, so the job is retried; after the last one the order
    goes to the merchant's manual queue instead (faka/orders/remote_delivery.py)."""
    attempt = remote_delivery.start_attempt(order_id)
    if attempt is None:
        return False  # not due yet, another job is asking, or nothing is owed any more
    reply = attempt.ask()
    with write_transaction():
        order = db.session.execute(
            select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one()
        now = clock.now()
        outcome, error = remote_delivery.settle_attempt(order, attempt, reply, now)
        if outcome == remote_delivery.DELIVERED:
            _complete(order, now)
    if outcome == remote_delivery.DELIVERED:
        _delivered(order)
        return True
    if outcome == remote_delivery.RETRY:
        log.warning("order %s: delivery server attempt %s failed: %s", order.number, attempt.number, error)
        raise remote_delivery.RemoteDeliveryFailed(f"order {order.number}: attempt {attempt.number}: {error}")
    return False


def deliver_manually(merchant_id: int, order_number: str, content: str) -> Order:
    """The merchant hands over a `manual` order, or one whose delivery server failed:
    what they typed becomes the delivery (encrypted like a key), and everything else
    happens as for an automatic delivery."""
    with write_transaction():
        order = db.session.execute(
            select(Order).where(Order.number == order_number, Order.merchant_id == merchant_id).with_for_update()
        ).scalar_one_or_none()
        if order is None:
            raise NotFound()
        by_hand = order.product.delivery_type == DELIVERY_MANUAL or order.manual_fallback_at is not None
        if order.status != Order.PAID or not by_hand:
            raise NotDeliverable()
        if order.is_held:
            raise OrderHeld()
        order.delivery_ciphertext = vault().encrypt(content.strip())
        _complete(order, clock.now())
    _delivered(order)
    return order


def _complete(order: Order, now) -> None:
    """Inside the delivery's write_transaction(): mark a handed-over order delivered,
    credit each share of the sale (faka/ledger/shares.py), queue the buyer's email and its
    job (sent once committed)."""
    order.mark_delivered(now)
    shares.credit_order(order, now)
    email_id = _queue_delivery_email(order)
    if email_id is not None:
        tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}")


def _delivered(order: Order) -> None:
    """After the delivery committed: log it and start the merchant's notifications."""
    log.info("order %s delivered", order.number)
    _notify_merchant_delivered(order.id)


def _notify_merchant_delivered(order_id: int) -> None:
    # The order is delivered whatever happens here; a failure must not fail the job.
    try:
        notifications.order_delivered(order_id)
    except Exception:
        # Its own transaction rolled back already; this ends a failed read before it.
        db.session.rollback()
        log.exception("order %s: merchant notifications for the delivery failed", order_id)


def _hand_over(order: Order, now) -> bool:
    product = order.product
    if product.delivery_type == DELIVERY_FIXED:
        order.delivery_ciphertext = product.fixed_content_ciphertext
        return True
    if product.reusable_key:
        order.delivery_ciphertext = stock.shared_key(order.variant_id)
        return order.delivery_ciphertext is not None
    assert product.delivery_type == DELIVERY_AUTO
    key_ids = stock.reserved_key_ids(order.id)
    missing = order.quantity - len(key_ids)
    if missing > 0:
        # Its reservation lapsed (late payment raced the reconciler): take fresh keys.
        if not stock.reserve_keys(order, missing, until=now, now=now):
            return False
        key_ids = stock.reserved_key_ids(order.id)
    stock.sell_keys(key_ids, now)
    return True


def _queue_delivery_email(order: Order) -> int | None:
    if not order.email:
        return None
    email = OutboxEmail(kind=EMAIL_ORDER_DELIVERED, order_id=order.id, to_addr=order.email, locale=order.locale)
    db.session.add(email)
    db.session.flush()
    return email.id
