"""Platform-wide figures for the operator dashboard, with the definitions of
`faka.platform.analytics` (local days in the site time zone; an order counts as paid on
the day of its `paid_at` when its status says money arrived; GMV is the gross total of
those orders; the refund rate is refunded / paid among them) over every merchant."""

from dataclasses import dataclass
from datetime import date, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from sqlalchemy import case, func, select

from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.complaints.models import Complaint
from faka.core import clock
from faka.extensions import db
from faka.ledger.models import Withdrawal
from faka.orders.models import Order
from faka.payments.models import Refund
from faka.platform.analytics import DEFAULT_TIMEZONE, PAID_STATUSES, _day_index, day_boundaries
from faka.risk.models import RiskEvent

DAYS = 30


@dataclass(frozen=True)
class Window:
    days: int
    gmv: int  # minor units
    orders_paid: int
    orders_refunded: int

    @property
    def refund_rate(self) -> float | None:
        return self.orders_refunded / self.orders_paid if self.orders_paid else None


@dataclass(frozen=True)
class PlatformStats:
    today: Window
    week: Window
    month: Window
    daily: list[tuple[date, int, int]]  # (day, GMV, orders paid), oldest first
    active_merchants: int  # merchants with a delivered order in the last 30 days
    pending_reviews: int  # merchants waiting for review of a submitted qualification
    moderation_queue: int  # products waiting for moderation
    requested_withdrawals: int
    escalated_complaints: int  # complaints waiting for the operator's decision
    manual_refunds: int  # refunds the operator must pay back by hand
    complaints_30_days: int  # complaints opened in the last 30 days
    held_orders: int  # paid orders the risk engine holds for the operator's decision
    risk_events_24h: int  # risk events in the last 24 hours

    @property
    def complaint_rate(self) -> float | None:
        """Complaints opened in 30 days / orders paid in 30 days."""
        return self.complaints_30_days / self.month.orders_paid if self.month.orders_paid else None


def platform_stats(now: datetime | None = None, tz: str | None = None) -> PlatformStats:
    now = now or clock.now()
    tz = tz or current_app.config.get("BABEL_DEFAULT_TIMEZONE") or DEFAULT_TIMEZONE
    days, bounds = day_boundaries(now, ZoneInfo(tz), DAYS)
    per_day = _paid_per_day(bounds)

    def window(n: int) -> Window:
        rows = per_day[DAYS - n :]
        return Window(n, sum(r[1] for r in rows), sum(r[0] for r in rows), sum(r[2] for r in rows))

    count = lambda query: db.session.scalar(select(func.count()).select_from(query.subquery()))  # noqa: E731
    stats = PlatformStats(
        today=window(1),
        week=window(7),
        month=window(DAYS),
        daily=[(day, gmv, n) for day, (n, gmv, _r) in zip(days, per_day)],
        active_merchants=count(
            select(Order.merchant_id).where(Order.delivered_at >= now - timedelta(days=DAYS)).distinct()
        ),
        pending_reviews=count(
            select(Merchant.id).where(Merchant.status == Merchant.PENDING, Merchant.submitted_at.is_not(None))
        ),
        moderation_queue=count(select(Product.id).where(Product.moderation == "pending", Product.deleted_at.is_(None))),
        requested_withdrawals=count(select(Withdrawal.id).where(Withdrawal.status == Withdrawal.REQUESTED)),
        escalated_complaints=count(select(Complaint.id).where(Complaint.status == Complaint.ESCALATED)),
        manual_refunds=count(select(Refund.id).where(Refund.status == Refund.MANUAL)),
        complaints_30_days=count(select(Complaint.id).where(Complaint.created_at >= bounds[0])),
        held_orders=count(select(Order.id).where(Order.status == Order.PAID, Order.held_at.is_not(None))),
        risk_events_24h=count(select(RiskEvent.id).where(RiskEvent.created_at >= now - timedelta(hours=24))),
    )
    db.session.rollback()
    return stats


def _paid_per_day(bounds: list[datetime]) -> list[tuple[int, int, int]]:
    """Per day: (orders paid, GMV, orders since refunded)."""
    per_order = (
        select(
            _day_index(Order.paid_at, bounds).label("day"),
            Order.total.label("total"),
            case((Order.refunded_amount > 0, 1), else_=0).label("is_refunded"),
        )
        .where(Order.status.in_(PAID_STATUSES), Order.paid_at >= bounds[0], Order.paid_at < bounds[-1])
        .subquery()
    )
    rows = db.session.execute(
        select(per_order.c.day, func.count(), func.sum(per_order.c.total), func.sum(per_order.c.is_refunded)).group_by(
            per_order.c.day
        )
    )
    result = [(0, 0, 0)] * (len(bounds) - 1)
    for day, n, total, n_refunded in rows:
        result[day] = (n, int(total), int(n_refunded))
    return result
