"""Finding an order again without an account, and its live status."""
from dataclasses import dataclass
from datetime import datetime
from functools import cache

from sqlalchemy import bindparam, select

from faka.database import read_row
from faka.extensions import db
from faka.models import Order, Product, SecurityEvent
from faka.services import risk, security_events
from faka.services.delivery import delivered_items
from faka.services.errors import LookupFailed
from faka.services.passwords import verify_query_password

MAX_ORDERS_PER_EMAIL_LOOKUP = 50


def lookup(query: str, query_password: str, ip: str | None = None, device_hash: str | None = None,
           captcha_solved: bool = False) -> list[Order]:
    """The buyer's "find my order": by order number, or by email (its recent orders),
    with the query password. The risk engine asks for the captcha after a few failures
    from one IP address or browser, and refuses guessing in bulk; every failure is a
    security event."""
    signals = risk.Signals(risk.LOOKUP, ip, device_hash)
    verdict = risk.check(signals, captcha_solved)
    if verdict.hits:
        risk.record(signals, verdict, captcha_solved=captcha_solved)
    query = query.strip()
    try:
        return find_by_email(query, query_password) if "@" in query else [find_by_number(query, query_password)]
    except LookupFailed:
        security_events.record(SecurityEvent.LOOKUP_FAILED, ip, device_hash, subject=query[:64])
        raise


def find_by_number(number: str, query_password: str) -> Order:
    """The order with this number and query password. An unknown number and a wrong
    password fail the same way, and take the same time."""
    order = db.session.execute(select(Order).where(Order.number == number.strip())).scalar_one_or_none()
    stored = order.query_password_hash if order is not None else None
    if not verify_query_password(stored, query_password) or order is None:
        raise LookupFailed()
    return order


def find_by_email(email: str, query_password: str) -> list[Order]:
    """This email's recent orders whose query password matches, newest first."""
    orders = db.session.execute(
        select(Order)
        .where(Order.email == email.strip().lower())
        .order_by(Order.created_at.desc())
        .limit(MAX_ORDERS_PER_EMAIL_LOOKUP)
    ).scalars().all()
    matches = [o for o in orders if o.query_password_hash and verify_query_password(o.query_password_hash, query_password)]
    if not matches:
        verify_query_password(None, query_password)
        raise LookupFailed()
    return matches


@dataclass(frozen=True)
class OrderStatus:
    """What the order-status widget shows: a read-only view, loaded in one query."""

    id: int
    token: str
    status: str
    quantity: int
    total: int
    currency: str
    email: str | None
    expires_at: datetime
    delivery_ciphertext: str | None
    delivery_type: str
    manual_promise_hours: int
    refunded_amount: int
    held_at: datetime | None

    @property
    def is_final(self) -> bool:
        return self.status in Order.FINAL

    @property
    def is_held(self) -> bool:
        return self.held_at is not None and self.status == Order.PAID


@cache
def _status_query():
    # Built once: this runs on every poll of every waiting buyer.
    return (
        select(
            Order.id, Order.token, Order.status, Order.quantity, Order.total, Order.currency, Order.email,
            Order.expires_at, Order.delivery_ciphertext, Product.delivery_type, Product.manual_promise_hours,
            Order.refunded_amount, Order.held_at,
        )
        .join(Product, Order.product_id == Product.id)
        .where(Order.token == bindparam("token"))
    )


def order_status(token: str) -> OrderStatus | None:
    """The status view of the order with this token, in one plain query."""
    if len(token) != 32:
        return None
    row = read_row(_status_query(), {"token": token})
    return OrderStatus(*row) if row is not None else None


def status_items(order: OrderStatus) -> list[str]:
    """The goods the status widget shows, read at least as fresh as the order's row. The
    request's session may hold a read from before the delivery committed (SQLite keeps
    one snapshot per transaction), in which a delivered order has no sold keys yet: the
    widget would say delivered, show nothing and stop polling."""
    db.session.rollback()
    return delivered_items(order)
