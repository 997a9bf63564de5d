"""A promoter's figures: clicks, referred orders and commissions by UTC day, and the
recent referred orders, as the promoter page shows them.

Commissions are read from the promoter account's ledger entries of the COMMISSION kinds,
so the figures agree with the money page: the net (commission, less its platform fee,
less what refunds took back, plus the fees returned with them) is in the hold or available
by each entry's own available_at. A refunded commission is thus never shown as coming.
"""

from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from faka.core import clock
from faka.extensions import db
from faka.growth.affiliates import SELF_REFERRAL
from faka.growth.models import ReferralClick
from faka.ledger import shares
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order

DAYS = 30
RECENT = 20

# What became of a referred order's commission.
AWAITING_PAYMENT = "awaiting_payment"
PENDING = "pending"  # paid, not delivered yet: credited at delivery
CREDITED = "credited"
REVERSED = "reversed"
PARTLY_REVERSED = "partly_reversed"  # a part of the order was refunded
NONE = "none"
SELF = "self"  # none: the promoter bought it themselves


@dataclass
class Day:
    day: date
    clicks: int = 0
    orders: int = 0
    paid: int = 0
    credited: int = 0  # commission credited at delivery (gross)
    reversed: int = 0  # commission taken back by refunds (a positive amount)
    fees: int = 0  # the platform's fee on the commissions, net of fees returned
    # The net of the entries (credited - fees - reversed), by where each entry stands:
    pending: int = 0  # still in the settlement hold
    available: int = 0  # past the hold

    @property
    def net(self) -> int:
        return self.pending + self.available


FIELDS = ("clicks", "orders", "paid", "credited", "reversed", "fees", "pending", "available")


@dataclass
class Figures:
    days: list[Day]  # newest first
    totals: Day = field(default_factory=lambda: Day(date.min))


@dataclass(frozen=True)
class ReferredOrder:
    number: str  # masked
    product: str
    created_at: datetime
    commission: int
    status: str


def daily_figures(promoter_id: int, account_id: int, now: datetime | None = None) -> Figures:
    """The last DAYS UTC days, today included, for the promoter (`account_id` is the
    account its commissions are credited to)."""
    now = now or clock.now()
    first = now.date() - timedelta(days=DAYS - 1)
    since = datetime.combine(first, datetime.min.time(), tzinfo=now.tzinfo)
    days = {first + timedelta(days=i): Day(first + timedelta(days=i)) for i in range(DAYS)}

    for day, clicks in db.session.execute(
        select(ReferralClick.day, func.count())
        .where(ReferralClick.promoter_id == promoter_id, ReferralClick.day >= first.isoformat())
        .group_by(ReferralClick.day)
    ):
        found = days.get(date.fromisoformat(day))
        if found is not None:
            found.clicks = clicks

    for created_at, paid_at in db.session.execute(
        select(Order.created_at, Order.paid_at).where(Order.promoter_id == promoter_id, Order.created_at >= since)
    ):
        found = days.get(created_at.date())
        if found is not None:
            found.orders += 1
            found.paid += paid_at is not None

    for kind, amount, available_at, created_at in db.session.execute(
        select(LedgerEntry.kind, LedgerEntry.amount, LedgerEntry.available_at, LedgerEntry.created_at).where(
            LedgerEntry.merchant_id == account_id,
            LedgerEntry.kind.in_(shares.PROMOTER.kinds),
            LedgerEntry.created_at >= since,
        )
    ):
        found = days.get(created_at.date())
        if found is None:
            continue
        if available_at is not None and available_at <= now:
            found.available += amount
        else:
            found.pending += amount
        if kind == LedgerEntry.COMMISSION:
            found.credited += amount
        elif kind == LedgerEntry.COMMISSION_REFUND:
            found.reversed -= amount
        else:
            found.fees -= amount

    listed = sorted(days.values(), key=lambda d: d.day, reverse=True)
    totals = Day(date.min)
    for d in listed:
        for name in FIELDS:
            setattr(totals, name, getattr(totals, name) + getattr(d, name))
    return Figures(listed, totals)


def mask(number: str) -> str:
    """An order number as the promoter sees it: enough to tell orders apart, not to look
    one up."""
    if len(number) <= 6:
        return number[:2] + "…"
    return f"{number[:4]}…{number[-2:]}"


def recent_orders(promoter_id: int, account_id: int, limit: int = RECENT) -> list[ReferredOrder]:
    """The promoter's latest referred orders, newest first, with their commission's fate."""
    orders = (
        db.session.execute(
            select(Order)
            .where(Order.promoter_id == promoter_id)
            .order_by(Order.created_at.desc(), Order.id.desc())
            .limit(limit)
            .options(selectinload(Order.product))
        )
        .scalars()
        .all()
    )
    kinds: dict[int, set[str]] = {}
    credited: dict[int, int] = {}
    if orders:
        for order_id, kind, amount in db.session.execute(
            select(LedgerEntry.order_id, LedgerEntry.kind, LedgerEntry.amount).where(
                LedgerEntry.merchant_id == account_id,
                LedgerEntry.order_id.in_([o.id for o in orders]),
                LedgerEntry.kind.in_((LedgerEntry.COMMISSION, LedgerEntry.COMMISSION_REFUND)),
            )
        ):
            kinds.setdefault(order_id, set()).add(kind)
            if kind == LedgerEntry.COMMISSION:
                credited[order_id] = credited.get(order_id, 0) + amount
    return [
        ReferredOrder(
            mask(o.number),
            o.product.title if o.product is not None else "",
            o.created_at,
            credited.get(o.id, o.commission or 0),
            _status(o, kinds.get(o.id, set())),
        )
        for o in orders
    ]


def _status(order: Order, kinds: set[str]) -> str:
    if LedgerEntry.COMMISSION_REFUND in kinds and order.status == Order.PARTIALLY_REFUNDED:
        return PARTLY_REVERSED
    if LedgerEntry.COMMISSION_REFUND in kinds or (order.status == Order.REFUNDED and order.commission):
        return REVERSED
    if LedgerEntry.COMMISSION in kinds:
        return CREDITED
    if order.status == Order.PENDING:
        return AWAITING_PAYMENT
    if SELF_REFERRAL in (order.risk_flags or "").split():
        return SELF
    if order.paid_at is not None and order.commission and order.status != Order.REFUNDED:
        return PENDING
    return NONE
