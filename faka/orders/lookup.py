"""Finding an order again without an account, and its live status."""

import hmac
from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import bindparam, select
from sqlalchemy.orm import joinedload

from faka.catalog.models import Product
from faka.core import clock
from faka.core.db import read_row
from faka.core.errors import LookupFailed
from faka.core.passwords import verify_query_password
from faka.extensions import db
from faka.inventory.keys import delivered_items
from faka.orders.models import Order
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent

# A lookup by email checks the query password against exactly this many hashes, padding
# with a dummy hash when the email has fewer orders with a password: the time it takes
# then says nothing about how many orders an email has (or whether it has any).
EMAIL_LOOKUP_HASHES = 10
BROWSER_ORDERS_DAYS = 30  # how far back "orders placed in this browser" reaches
MAX_BROWSER_ORDERS = 50


def lookup(
    query: str, query_password: str, ip: str | None = None, device_hash: str | None = None, captcha_solved: bool = False
) -> list[Order]:
    """The buyer's "find my order": by order number with the query password (or, for an
    order placed without one, the email it was placed with), or by email (its recent
    orders) with the query password. The risk engine asks for the captcha after a few
    failures from one IP address or browser, and refuses guessing in bulk; every failure
    is a security event."""
    signals = engine.Signals(engine.LOOKUP, ip, device_hash)
    verdict = engine.check(signals, captcha_solved)
    if verdict.hits:
        engine.record(signals, verdict, captcha_solved=captcha_solved)
    query = query.strip()
    try:
        return find_by_email(query, query_password) if "@" in query else [find_by_number(query, query_password)]
    except LookupFailed:
        security_events.record(SecurityEvent.LOOKUP_FAILED, ip, device_hash, subject=query[:64])
        raise


def find_by_number(number: str, secret: str) -> Order:
    """The order with this number, given its query password; an order placed without one
    is given by the email it was placed with instead (and one with neither is not found
    this way). An unknown number, a wrong secret and an order with neither fail the same
    way, after the same password hash check."""
    order = db.session.execute(select(Order).where(Order.number == number.strip())).scalar_one_or_none()
    stored = order.query_password_hash if order is not None else None
    password_matches = verify_query_password(stored, secret)  # a hash check whatever the order
    if order is None:
        raise LookupFailed()
    if password_matches or (stored is None and _is_email_of(order, secret)):
        return order
    raise LookupFailed()


def _is_email_of(order: Order, given: str) -> bool:
    # Checkout keeps emails stripped and lower-cased.
    return bool(order.email) and hmac.compare_digest(order.email.encode(), given.strip().lower().encode())


def find_by_email(email: str, query_password: str) -> list[Order]:
    """This email's most recent orders with a query password (EMAIL_LOOKUP_HASHES of
    them) whose password matches, newest first. (An email is no secret: the email itself
    never stands in for the password here.)"""
    orders = (
        db.session.execute(
            select(Order)
            .options(joinedload(Order.product))
            .where(Order.email == email.strip().lower(), Order.query_password_hash.is_not(None))
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(EMAIL_LOOKUP_HASHES)
        )
        .scalars()
        .all()
    )
    matches = [o for o in orders if verify_query_password(o.query_password_hash, query_password)]
    for _padding in range(EMAIL_LOOKUP_HASHES - len(orders)):
        verify_query_password(None, query_password)
    if not matches:
        raise LookupFailed()
    return matches


def placed_in_browser(device_hash: str, now: datetime | None = None) -> list[Order]:
    """The orders placed in the browser with this device hash (device.device_hash()) in the
    last BROWSER_ORDERS_DAYS days, newest first: no password needed, the browser itself
    is the proof."""
    since = (now or clock.now()) - timedelta(days=BROWSER_ORDERS_DAYS)
    return list(
        db.session.execute(
            select(Order)
            .options(joinedload(Order.product))
            .where(Order.device_hash == device_hash, Order.created_at >= since)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(MAX_BROWSER_ORDERS)
        ).scalars()
    )


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
    # A "from my server" order its server did not deliver: the seller delivers it by hand.
    manual_fallback_at: datetime | None

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
            Order.id,
            Order.token,
            Order.status,
            Order.quantity,
            Order.total,
            Order.currency,
            Order.email,
            Order.expires_at,
            Order.delivery_ciphertext,
            Product.delivery_type,
            Product.manual_promise_hours,
            Order.refunded_amount,
            Order.held_at,
            Order.manual_fallback_at,
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
