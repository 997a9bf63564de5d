"""Orders the risk engine held: paid, their keys reserved, their delivery waiting for an
operator to release them (the goods go out) or refuse them (the buyer is refunded and the
keys go back on sale)."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import joinedload

from faka.catalog.models import DELIVERY_MANUAL
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.inventory import stock
from faka.orders.models import Order
from faka.payments import refunds
from faka.platform import audit

MAX_REASON = 500


class NotHeld(DomainError):
    message = _l("This order is not held: it was already released or refused.")


class RefusalReasonRequired(DomainError):
    message = _l("Write why the order is refused (up to 500 characters); the buyer's refund follows.")


def held_orders(limit: int = 100) -> list[Order]:
    """Paid orders waiting for a decision, oldest first."""
    return list(
        db.session.execute(
            select(Order)
            .where(Order.status == Order.PAID, Order.held_at.is_not(None))
            .options(joinedload(Order.product), joinedload(Order.merchant))
            .order_by(Order.held_at, Order.id)
            .limit(limit)
        ).scalars()
    )


def held_count() -> int:
    return (
        db.session.scalar(
            select(func.count()).select_from(Order).where(Order.status == Order.PAID, Order.held_at.is_not(None))
        )
        or 0
    )


def _held_order(order_id: int) -> tuple[Order, datetime]:
    """The held order, locked, and since when it is held."""
    order = db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if order is None:
        raise NotFound()
    if order.held_at is None or not order.is_held:
        raise NotHeld()
    return order, order.held_at


def release(order_id: int, operator_id: int) -> Order:
    """Let a held order's goods go out: its delivery runs as if it had just been paid
    (a manual-delivery order goes back to its merchant)."""
    with write_transaction():
        order, held_since = _held_order(order_id)
        order.held_at = None
        audit.record(
            operator_id,
            "order.released",
            f"order:{order.id}",
            before={"held_at": held_since.isoformat()},
            detail=order.risk_flags or "",
        )
        if order.product.delivery_type != DELIVERY_MANUAL:
            tasks.enqueue("orders.tasks.deliver_order", order.id, job_id=f"deliver-{order.id}")
    return order


def refuse(order_id: int, operator_id: int, reason: str) -> Order:
    """Refuse a held order: the whole payment goes back to the buyer through its gateway
    (or by hand, on /operator/refunds) and its reserved keys go back on sale."""
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise RefusalReasonRequired()
    now = clock.now()
    with write_transaction():
        order, _held_since = _held_order(order_id)
        stock.release_keys([order.id])
        refund = refunds.apply_refund(order, order.total, operator_id, now)
        audit.record(operator_id, "order.refused", f"order:{order.id}", detail=reason)
        tasks.enqueue("payments.tasks.refund_payment", refund.id, job_id=f"refund-{refund.id}")
    return order
