"""A shop's reputation as buyers see it on its shop and product pages.

The rating is a Bayesian average: every shop starts with PRIOR_WEIGHT imaginary reviews
at the platform's mean rating, so one five-star review does not put a new shop above one
with two hundred reviews averaging 4.8. Only counted reviews take part (not suspicious,
not hidden; see faka/reviews/reviews.py). Complaint and refund rates look at the last
WINDOW, so an old bad patch fades and a recent one shows.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import and_, bindparam, case, func, select, true

from faka.accounts.models import Merchant
from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.cache import reused
from faka.core.errors import NotFound
from faka.extensions import db
from faka.orders.models import Order
from faka.reviews.models import Review

PRIOR_WEIGHT = 10  # C: how many reviews it takes to outweigh the platform's mean
PRIOR_FALLBACK = 4.0  # the prior while the platform has no counted review at all
WINDOW = timedelta(days=90)
REPUTATION_SECONDS = 60
REFUNDED = (Order.REFUNDED, Order.PARTIALLY_REFUNDED)


def bayesian_rating(rating_sum: int, count: int, prior_mean: float, weight: int = PRIOR_WEIGHT) -> float:
    """(C * m + sum) / (C + n)."""
    return (weight * prior_mean + rating_sum) / (weight + count)


def _ratio(part: int, whole: int) -> float | None:
    return part / whole if whole else None


@dataclass(frozen=True)
class Reputation:
    delivered: int  # orders delivered, all time
    reviews: int  # counted reviews
    rating_sum: int  # of the counted reviews
    platform_mean: float  # the prior: mean of every counted review on the platform
    delivered_recent: int  # within WINDOW
    complaints_recent: int  # opened within WINDOW
    paid_recent: int
    refunded_recent: int
    member_since: datetime
    verified: bool  # qualification approved by an operator

    @property
    def mean(self) -> float | None:
        return _ratio(self.rating_sum, self.reviews)

    @property
    def rating(self) -> float:
        return bayesian_rating(self.rating_sum, self.reviews, self.platform_mean)

    @property
    def complaint_rate(self) -> float | None:
        return _ratio(self.complaints_recent, self.delivered_recent)

    @property
    def refund_rate(self) -> float | None:
        return _ratio(self.refunded_recent, self.paid_recent)

    @property
    def window_days(self) -> int:
        return WINDOW.days

    @property
    def prior_weight(self) -> int:
        return PRIOR_WEIGHT


def platform_mean() -> float:
    """The prior: the mean rating of every counted review on the platform. Counting it
    reads every review, so with the page cache on it is reused for REPUTATION_SECONDS
    within this process (one more review moves it by next to nothing)."""
    return reused("platform-review-mean", _platform_mean, REPUTATION_SECONDS)


def _platform_mean() -> float:
    row = db.session.execute(_platform_query()).one()
    return int(row.sum) / int(row.count) if row.count else PRIOR_FALLBACK


@cache
def _platform_query():
    return select(_count_if(*_COUNTED).label("count"), _sum_if(Review.rating, *_COUNTED).label("sum"))


def _count_if(*conditions):
    return func.coalesce(func.sum(case((and_(*conditions), 1), else_=0)), 0)


def _sum_if(value, *conditions):
    return func.coalesce(func.sum(case((and_(*conditions), value), else_=0)), 0)


_COUNTED = (Review.suspicious_reason.is_(None), Review.hidden_at.is_(None))


@cache
def _reputation_query():
    # Built once: every render of a product or shop page runs it, and building it costs
    # far more than running it.
    merchant_id, since = bindparam("merchant_id"), bindparam("since")
    orders = (
        select(
            func.count(Order.delivered_at).label("delivered"),
            _count_if(Order.delivered_at >= since).label("delivered_recent"),
            _count_if(Order.paid_at >= since).label("paid_recent"),
            _count_if(Order.refunded_at >= since, Order.status.in_(REFUNDED)).label("refunded_recent"),
        )
        .where(Order.merchant_id == merchant_id)
        .subquery()
    )
    reviews = (
        select(
            _count_if(*_COUNTED).label("count"),
            _sum_if(Review.rating, *_COUNTED).label("sum"),
        )
        .where(Review.merchant_id == merchant_id)
        .subquery()
    )
    complaints = (
        select(func.count())
        .select_from(Complaint)
        .where(Complaint.merchant_id == merchant_id, Complaint.created_at >= since)
        .scalar_subquery()
    )
    return (
        select(
            Merchant.created_at, Merchant.status, Merchant.reviewed_at, orders, reviews, complaints.label("complaints")
        )
        .select_from(Merchant)
        .join(orders, true())
        .join(reviews, true())
        .where(Merchant.id == merchant_id)
    )


def merchant_reputation(merchant_id: int, now: datetime | None = None) -> Reputation:
    """The shop's figures. They read all of its orders and reviews, and move slowly, so
    with the page cache on they are reused for REPUTATION_SECONDS within this process
    (every product page of the shop shows them)."""
    if now is not None:
        return _merchant_reputation(merchant_id, now)
    return reused(("reputation", merchant_id), lambda: _merchant_reputation(merchant_id, None), REPUTATION_SECONDS)


def _merchant_reputation(merchant_id: int, now: datetime | None) -> Reputation:
    """In one statement (one pass over the shop's orders, one over its reviews, a count
    of recent complaints), with the platform's mean as the prior."""
    row = db.session.execute(
        _reputation_query(), {"merchant_id": merchant_id, "since": (now or clock.now()) - WINDOW}
    ).one_or_none()
    if row is None:
        raise NotFound()
    return Reputation(
        delivered=int(row.delivered),
        reviews=int(row.count),
        rating_sum=int(row.sum),
        platform_mean=platform_mean(),
        delivered_recent=int(row.delivered_recent),
        complaints_recent=int(row.complaints),
        paid_recent=int(row.paid_recent),
        refunded_recent=int(row.refunded_recent),
        member_since=row.created_at,
        verified=row.status == Merchant.APPROVED and row.reviewed_at is not None,
    )
