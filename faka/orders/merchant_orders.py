"""A merchant's orders: search, export, timeline, resend, and blacklisting an order's buyer.

Buyer emails leave the back office masked (ab***@qq.com) in lists and exports; only the
single order's page shows one in full (the merchant may have to write to the buyer).

The buyer's answers to a product's checkout fields (the game UID to top up ...) are masked
in the order list (first and last character), and in full on the order's page and in the
CSV export: the merchant needs the whole answer to do the work, and the export is its own,
behind its login."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta, timezone

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select
from sqlalchemy.orm import joinedload

from faka.catalog import checkout_fields
from faka.catalog.models import Product
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.core.text import mask_email
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order
from faka.risk import blacklist
from faka.risk.models import BlacklistEntry

PER_PAGE = 50
EXPORT_LIMIT = 100_000
EXPORT_BATCH = 1000


@dataclass(frozen=True)
class OrderFilter:
    status: str | None = None
    product_slug: str | None = None
    since: date | None = None
    until: date | None = None  # inclusive
    email: str | None = None
    number: str | None = None
    flagged: bool = False  # only orders the risk engine flagged


def _query(merchant_id: int, f: OrderFilter, tz: timezone):
    query = select(Order).where(Order.merchant_id == merchant_id)
    if f.status:
        query = query.where(Order.status == f.status)
    if f.product_slug:
        # The product's id first (slugs are unique): the planner then reads the product's
        # orders from the index on (product_id, created_at), in the list's order.
        product_id = select(Product.id).where(Product.slug == f.product_slug).scalar_subquery()
        query = query.where(Order.product_id == product_id)
    if f.since:
        query = query.where(Order.created_at >= datetime.combine(f.since, time.min, tz))
    if f.until:
        query = query.where(Order.created_at < datetime.combine(f.until + timedelta(days=1), time.min, tz))
    if f.email:
        query = query.where(Order.email == f.email.strip().lower())
    if f.number:
        query = query.where(Order.number == f.number.strip())
    if f.flagged:
        query = query.where(Order.risk_flags.is_not(None))
    return query


def api_query(
    merchant_id: int,
    status: str | None = None,
    product_slug: str | None = None,
    created_from: datetime | None = None,
    created_to: datetime | None = None,
    email: str | None = None,
    number: str | None = None,
):
    """The merchant's orders matching the API's filters (one entity, for cursor pages):
    `created_from` inclusive, `created_to` exclusive, exact times; the email matched
    whole, as the order list's filter does."""
    query = _query(merchant_id, OrderFilter(status=status, product_slug=product_slug, email=email, number=number), UTC)
    if created_from is not None:
        query = query.where(Order.created_at >= created_from)
    if created_to is not None:
        query = query.where(Order.created_at < created_to)
    return query.options(joinedload(Order.product), joinedload(Order.variant))


def delivered_key_counts(order_ids: list[int]) -> dict[int, int]:
    """How many card keys each order was sold (orders without any left out): what the
    API tells of an order's goods, which it never shows."""
    if not order_ids:
        return {}
    rows = db.session.execute(
        select(CardKey.order_id, func.count())
        .where(CardKey.order_id.in_(order_ids), CardKey.status == CardKey.SOLD)
        .group_by(CardKey.order_id)
    )
    return {order_id: int(n) for order_id, n in rows}


def search(merchant_id: int, f: OrderFilter, page: int = 1, tz: timezone = UTC) -> Page:
    """One page of the merchant's orders matching the filter, newest first, counted."""
    # The page's ids first, from the index alone: a far page skips its offset there. The
    # store an order sold in is named in the list: loaded with it, not once a row.
    return paginate(
        _query(merchant_id, f, tz).order_by(Order.created_at.desc(), Order.id.desc()),
        page,
        PER_PAGE,
        ids_first=Order.id,
        load_options=(joinedload(Order.product), joinedload(Order.substore)),
    )


CSV_COLUMNS = (
    "number",
    "created_at",
    "status",
    "product",
    "variant",  # the name the buyer chose; empty when the product offered no choice
    "quantity",
    "unit_price",
    "discount",
    "total",
    "currency",
    "email",
    "paid_at",
    "delivered_at",
    "refunded_at",
    "risk_flags",
    "answers",
)


def export_csv(merchant_id: int, f: OrderFilter, tz: timezone = UTC) -> Iterator[str]:
    """The filtered orders as CSV (amounts in minor units, times in UTC ISO 8601), buyer
    emails masked, the buyer's checkout answers in full ("label: answer", one a line in
    the cell). Delivered keys are never exported here.

    The CSV comes in pieces, the header first: a download of 100,000 orders starts at
    once, and the orders are read EXPORT_BATCH at a time (a server-side cursor on
    PostgreSQL), oldest first in the order of an index, so nothing sorts them all first.
    The caller keeps the request's session open while it sends them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    yield _taken(out)
    query = (
        _query(merchant_id, f, tz)
        .options(joinedload(Order.product))
        .order_by(Order.created_at, Order.id)
        .limit(EXPORT_LIMIT)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    for batch in db.session.execute(query).scalars().partitions():
        answers = checkout_fields.answers_by_order([o.id for o in batch])
        for o in batch:
            writer.writerow(
                [
                    o.number,
                    _iso(o.created_at),
                    o.status,
                    _csv_safe(o.product.title),
                    _csv_safe(o.variant_name or ""),
                    o.quantity,
                    o.unit_price,
                    o.discount,
                    o.total,
                    o.currency,
                    _csv_safe(mask_email(o.email)),
                    _iso(o.paid_at),
                    _iso(o.delivered_at),
                    _iso(o.refunded_at),
                    o.risk_flags or "",
                    _csv_safe("\n".join(f"{a.label}: {a.value}" for a in answers.get(o.id, ()))),
                ]
            )
        yield _taken(out)


def _taken(out: io.StringIO) -> str:
    """What was written to `out` since the last call, and `out` emptied."""
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def _iso(value: datetime | None) -> str:
    return value.astimezone(UTC).isoformat(timespec="seconds") if value else ""


def _csv_safe(text: str) -> str:
    # A cell starting with = + - @ runs as a formula in spreadsheet software.
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def masked_answers(orders: list[Order]) -> dict[int, list[checkout_fields.Answer]]:
    """The orders' checkout answers as the order list shows them, masked, by order id."""
    return {
        order_id: [a.masked() for a in answers]
        for order_id, answers in checkout_fields.answers_by_order([o.id for o in orders]).items()
    }


def buyer_answers(order: Order) -> list[checkout_fields.Answer]:
    """One order's checkout answers in full, for its page."""
    return checkout_fields.order_answers(order.id)


def get_order(merchant_id: int, number: str) -> Order:
    order = db.session.execute(
        select(Order)
        .where(Order.number == number, Order.merchant_id == merchant_id)
        .options(joinedload(Order.product), joinedload(Order.variant))
    ).scalar_one_or_none()
    if order is None:
        raise NotFound()
    return order


@dataclass(frozen=True)
class TimelineEvent:
    when: datetime
    what: str  # created | paid | delivered | emailed | refunded | expired


def timeline(order: Order) -> list[TimelineEvent]:
    events = [TimelineEvent(order.created_at, "created")]
    if order.paid_at:
        events.append(TimelineEvent(order.paid_at, "paid"))
    if order.delivered_at:
        events.append(TimelineEvent(order.delivered_at, "delivered"))
    sent = db.session.execute(
        select(OutboxEmail.sent_at).where(OutboxEmail.order_id == order.id, OutboxEmail.sent_at.is_not(None))
    ).scalars()
    events.extend(TimelineEvent(when, "emailed") for when in sent)
    if order.refunded_at:
        events.append(TimelineEvent(order.refunded_at, "refunded"))
    if order.status == Order.EXPIRED:
        events.append(TimelineEvent(order.expires_at, "expired"))
    if order.cancelled_at:
        events.append(TimelineEvent(order.cancelled_at, "cancelled"))
    return sorted(events, key=lambda e: e.when)


def resend_delivery_email(merchant_id: int, number: str) -> int | None:
    """Queue the delivery email again (say, the buyer lost it). Returns the outbox id, for
    the caller to enqueue its job."""
    with write_transaction():
        order = get_order(merchant_id, number)
        email = db.session.execute(
            select(OutboxEmail).where(OutboxEmail.order_id == order.id, OutboxEmail.kind == "order_delivered")
        ).scalar_one_or_none()
        if order.status != Order.DELIVERED or email is None:
            return None  # nothing written
        email.status = OutboxEmail.QUEUED
        email.attempts = 0
        email.last_error = None
        email_id = email.id
    return email_id


class NothingToBlacklist(DomainError):
    message = _l("This order has no email address or browser to blacklist.")


# What of an order's buyer the merchant can blacklist in one click.
BUYER_KINDS = (BlacklistEntry.EMAIL, BlacklistEntry.DEVICE)


def blacklist_buyer(merchant_id: int, number: str, kind: str, reason: str, actor_id: int) -> BlacklistEntry:
    """Put the buyer of one of the merchant's orders on the merchant's own blacklist: its
    email or its browser (the device hash, which the merchant never sees), taken from the
    order. The entry applies to this merchant's products only."""
    order = get_order(merchant_id, number)
    value = (
        order.email if kind == BlacklistEntry.EMAIL else order.device_hash if kind == BlacklistEntry.DEVICE else None
    )
    if not value:
        raise NothingToBlacklist()
    return blacklist.add(kind, value, reason, actor_id=actor_id, merchant_id=merchant_id)


def buyer_blacklist_entries(merchant_id: int, order: Order) -> dict[str, BlacklistEntry]:
    """The merchant's own entries that name this order's buyer, by kind (email, device)."""
    named = [
        and_(BlacklistEntry.kind == kind, BlacklistEntry.value == value)
        for kind, value in ((BlacklistEntry.EMAIL, order.email), (BlacklistEntry.DEVICE, order.device_hash))
        if value
    ]
    if not named:
        return {}
    rows = db.session.execute(
        select(BlacklistEntry).where(BlacklistEntry.merchant_id == merchant_id, or_(*named))
    ).scalars()
    return {entry.kind: entry for entry in rows}
