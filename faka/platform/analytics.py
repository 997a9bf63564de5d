"""A merchant's sales figures: what the analytics dashboard shows, read in five queries.

Definitions (every figure is scoped to one merchant):

- Days are local days in the site time zone (`BABEL_DEFAULT_TIMEZONE`). "Today" is the
  local day of `now`; "7 days" and "30 days" are that many local days ending with today.
- An order counts as *paid* on the local day of its `paid_at`, if its status says money
  arrived (paid, delivered, paid_unfulfilled, refunded, partially refunded). *Sales*
  are the gross totals of those orders; *refunded* is the amount of them since given
  back (whole or part), so net sales = sales - refunded.
- *Orders created* counts orders by `created_at`, whatever became of them.
- *Conversion* follows the orders created in the window: the share of them that were
  paid. (Dividing orders paid by orders created would mix two populations: an order
  created late yesterday and paid today would push today's figure above 100%.)
- *Refund rate* is refunded (whole or part) / paid among the orders paid in the window.
- *Complaint rate* is complaints opened in the window / orders paid in the window.

How days are bucketed: the local-midnight boundaries are computed in Python with
zoneinfo (right across daylight-saving changes, which SQL date functions of SQLite and
PostgreSQL would each handle differently), and the database maps each timestamp to its
day index with one CASE over those boundaries, grouping on it. That is plain SQL on both
databases, returns at most 30 rows per query, and the number of queries is fixed
whatever the number of orders.
"""

from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import NamedTuple
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import and_, case, func, or_, select
from sqlalchemy.orm import aliased

from faka.catalog.models import DELIVERY_AUTO, Product, ProductVariant
from faka.complaints.models import Complaint
from faka.core import clock
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Order

DAYS = 30
WEEK = 7
TOP_PRODUCTS = 5
DEFAULT_TIMEZONE = "Asia/Shanghai"

# Statuses of orders whose money arrived (paid_at is set on each of these moves).
PAID_STATUSES = (Order.PAID, Order.DELIVERED, Order.PAID_UNFULFILLED, Order.REFUNDED, Order.PARTIALLY_REFUNDED)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Window:
    """The figures of one period: today, the last 7 days or the last 30 days."""

    days: int
    start: datetime  # UTC, inclusive: local midnight of the first day
    end: datetime  # UTC, exclusive: local midnight after today
    sales: int = 0  # gross, minor units, of orders paid in the window
    refunded: int = 0  # minor units: the part of `sales` refunded since
    orders_created: int = 0
    orders_paid: int = 0
    orders_refunded: int = 0  # of `orders_paid`
    created_and_paid: int = 0  # of `orders_created`
    complaints: int = 0  # opened in the window

    @property
    def net_sales(self) -> int:
        return self.sales - self.refunded

    @property
    def conversion(self) -> float | None:
        """Share of the orders created in the window that were paid; None without orders."""
        return _ratio(self.created_and_paid, self.orders_created)

    @property
    def refund_rate(self) -> float | None:
        return _ratio(self.orders_refunded, self.orders_paid)

    @property
    def complaint_rate(self) -> float | None:
        return _ratio(self.complaints, self.orders_paid)


class DailySales(NamedTuple):
    day: date  # local day
    revenue: int  # gross sales, minor units
    orders: int  # orders paid that day


class TopProduct(NamedTuple):
    product_id: int
    title: str
    orders: int
    units: int
    revenue: int  # gross sales over 30 days, minor units


class StockAlert(NamedTuple):
    product_id: int
    title: str  # "title · variant" for a variant of a product with several
    available: int
    threshold: int  # the variant's low_stock_threshold (0: alert only when sold out)
    variant_key: str | None = None  # the variant of a product with several


@dataclass(frozen=True)
class Dashboard:
    merchant_id: int
    generated_at: datetime
    timezone: str
    currency: str
    today: Window
    last_7_days: Window
    last_30_days: Window
    daily_sales: list[DailySales] = field(default_factory=list)  # oldest first, every day
    top_products: list[TopProduct] = field(default_factory=list)
    stock_alerts: list[StockAlert] = field(default_factory=list)

    @property
    def windows(self) -> list[Window]:
        return [self.today, self.last_7_days, self.last_30_days]


def dashboard(merchant_id: int, now: datetime | None = None, tz: str | None = None) -> Dashboard:
    """The merchant's analytics as of `now` (default: the current time), with days in
    time zone `tz` (default: the site's)."""
    now = now or clock.now()
    if now.tzinfo is None:
        raise ValueError("naive datetime; pass an aware one (faka.models.utcnow())")
    tz = tz or current_app.config.get("BABEL_DEFAULT_TIMEZONE") or DEFAULT_TIMEZONE
    days, bounds = day_boundaries(now, ZoneInfo(tz), DAYS)

    paid = _paid_per_day(merchant_id, bounds)
    created = _created_per_day(merchant_id, bounds)
    complaints = _complaint_counts(merchant_id, bounds)

    def window(n: int) -> Window:
        first = DAYS - n
        indexes = range(first, DAYS)
        return Window(
            days=n,
            start=bounds[first],
            end=bounds[DAYS],
            sales=sum(paid[i][1] for i in indexes),
            refunded=sum(paid[i][3] for i in indexes),
            orders_paid=sum(paid[i][0] for i in indexes),
            orders_refunded=sum(paid[i][2] for i in indexes),
            orders_created=sum(created[i][0] for i in indexes),
            created_and_paid=sum(created[i][1] for i in indexes),
            complaints=sum(complaints[i] for i in indexes),
        )

    return Dashboard(
        merchant_id=merchant_id,
        generated_at=now,
        timezone=tz,
        currency=current_app.config["CURRENCY"],
        today=window(1),
        last_7_days=window(WEEK),
        last_30_days=window(DAYS),
        daily_sales=[DailySales(day, paid[i][1], paid[i][0]) for i, day in enumerate(days)],
        top_products=_top_products(merchant_id, bounds[0], bounds[DAYS]),
        stock_alerts=stock_alerts(merchant_id),
    )


def day_boundaries(now: datetime, tz: ZoneInfo, days: int) -> tuple[list[date], list[datetime]]:
    """The last `days` local days up to and including today, and their `days + 1`
    boundaries in UTC: local midnight of each day, then local midnight after today."""
    today = now.astimezone(tz).date()
    local_days = [today - timedelta(days=days - 1 - i) for i in range(days)]
    midnights = [*local_days, today + timedelta(days=1)]
    bounds = [datetime.combine(d, time(), tzinfo=tz).astimezone(UTC) for d in midnights]
    return local_days, bounds


# What a sale brought the merchant before fees: the total, or in a reseller's sub-store the
# floor total the merchant asked (the reseller's margin is not the merchant's sale).
MERCHANT_GROSS = func.coalesce(Order.resale_base, Order.total)


def _day_index(column, bounds: list[datetime]):
    """SQL: the index of the day the timestamp falls on (rows are already limited to
    bounds[0] <= column < bounds[-1])."""
    return case(*[(column < bound, i) for i, bound in enumerate(bounds[1:-1])], else_=len(bounds) - 2)


def _paid_per_day(merchant_id: int, bounds: list[datetime]) -> list[tuple[int, int, int, int]]:
    """Per day: (orders paid, gross sales, orders since refunded, amount refunded)."""
    per_order = (
        select(
            _day_index(Order.paid_at, bounds).label("day"),
            MERCHANT_GROSS.label("total"),
            case((Order.refunded_amount > 0, 1), else_=0).label("is_refunded"),
            Order.refunded_amount.label("refunded_total"),
        )
        .where(
            Order.merchant_id == merchant_id,
            Order.status.in_(PAID_STATUSES),
            Order.paid_at >= bounds[0],
            Order.paid_at < bounds[-1],
        )
        .subquery()
    )
    rows = db.session.execute(
        select(
            per_order.c.day,
            func.count(),
            func.sum(per_order.c.total),
            func.sum(per_order.c.is_refunded),
            func.sum(per_order.c.refunded_total),
        ).group_by(per_order.c.day)
    )
    result = [(0, 0, 0, 0)] * (len(bounds) - 1)
    for day, count, total, n_refunded, refunded_total in rows:
        result[day] = (count, int(total), int(n_refunded), int(refunded_total))
    return result


def _created_per_day(merchant_id: int, bounds: list[datetime]) -> list[tuple[int, int]]:
    """Per day: (orders created, of which paid)."""
    per_order = (
        select(
            _day_index(Order.created_at, bounds).label("day"),
            case((Order.status.in_(PAID_STATUSES), 1), else_=0).label("is_paid"),
        )
        .where(Order.merchant_id == merchant_id, Order.created_at >= bounds[0], Order.created_at < bounds[-1])
        .subquery()
    )
    rows = db.session.execute(
        select(per_order.c.day, func.count(), func.sum(per_order.c.is_paid)).group_by(per_order.c.day)
    )
    result = [(0, 0)] * (len(bounds) - 1)
    for day, count, n_paid in rows:
        result[day] = (count, int(n_paid))
    return result


def _complaint_counts(merchant_id: int, bounds: list[datetime]) -> list[int]:
    """Complaints opened on this merchant's orders per local day."""
    per_complaint = (
        select(_day_index(Complaint.created_at, bounds).label("day"))
        .where(
            Complaint.merchant_id == merchant_id, Complaint.created_at >= bounds[0], Complaint.created_at < bounds[-1]
        )
        .subquery()
    )
    result = [0] * (len(bounds) - 1)
    for day, count in db.session.execute(select(per_complaint.c.day, func.count()).group_by(per_complaint.c.day)):
        result[day] = int(count)
    return result


def _top_products(merchant_id: int, start: datetime, end: datetime) -> list[TopProduct]:
    """The best-selling products by gross sales of orders paid in [start, end)."""
    revenue = func.sum(MERCHANT_GROSS)
    rows = db.session.execute(
        select(Product.id, Product.title, func.count(Order.id), func.sum(Order.quantity), revenue)
        .join(Product, Order.product_id == Product.id)
        .where(
            Order.merchant_id == merchant_id,
            Order.status.in_(PAID_STATUSES),
            Order.paid_at >= start,
            Order.paid_at < end,
        )
        .group_by(Product.id, Product.title)
        .order_by(revenue.desc(), Product.id)
        .limit(TOP_PRODUCTS)
    )
    return [TopProduct(pid, title, n, int(units), int(total)) for pid, title, n, units, total in rows]


def stock_alerts(merchant_id: int) -> list[StockAlert]:
    """The variants on offer of the merchant's auto-delivery products that are sold out,
    or at or below their low-stock threshold (when one is set), emptiest first. Each
    variant has its own keys; reserved keys are not stock. One query."""
    offered = aliased(ProductVariant)
    keys = select(CardKey.id).where(CardKey.variant_id == ProductVariant.id, CardKey.status == CardKey.AVAILABLE)
    if db.engine.dialect.name == "postgresql":
        # Only up to one key past the threshold is counted: enough to tell an alert from
        # none, exact below it, and quick on a variant with hundreds of thousands of keys.
        # (SQLite cannot take the outer row's threshold as a LIMIT; its shops are small.)
        keys = keys.limit(ProductVariant.low_stock_threshold + 1)
    available = select(func.count()).select_from(keys.correlate(ProductVariant).subquery()).scalar_subquery()
    choices = (
        select(func.count())
        .where(offered.product_id == Product.id, offered.deleted_at.is_(None))
        .correlate(Product)
        .scalar_subquery()
    )
    stock = (
        select(
            Product.id,
            Product.title,
            ProductVariant.id.label("variant_id"),
            ProductVariant.key,
            ProductVariant.name,
            ProductVariant.position,
            ProductVariant.low_stock_threshold,
            available.label("available"),
            choices.label("choices"),
        )
        .join(ProductVariant, ProductVariant.product_id == Product.id)
        .where(
            Product.merchant_id == merchant_id,
            Product.delivery_type == DELIVERY_AUTO,
            Product.deleted_at.is_(None),
            ProductVariant.deleted_at.is_(None),
        )
        .subquery()
    )
    rows = db.session.execute(
        select(
            stock.c.id,
            stock.c.title,
            stock.c.available,
            stock.c.low_stock_threshold,
            stock.c.key,
            stock.c.name,
            stock.c.choices,
        )
        .where(
            or_(
                stock.c.available == 0,
                and_(stock.c.low_stock_threshold > 0, stock.c.available <= stock.c.low_stock_threshold),
            )
        )
        .order_by(stock.c.available, stock.c.id, stock.c.position, stock.c.variant_id)
    )
    alerts = []
    for product_id, title, available_keys, threshold, key, name, choices_count in rows:
        if choices_count > 1:
            alerts.append(StockAlert(product_id, f"{title} · {name}", available_keys, threshold, key))
        else:
            alerts.append(StockAlert(product_id, title, available_keys, threshold))
    return alerts
