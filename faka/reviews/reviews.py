"""Buyers' reviews of delivered orders and the merchant's replies.

A buyer rates a delivered order once (1-5 stars, optional text) and may change the review
for EDIT_WINDOW after writing it; the merchant may reply once. Text is stored as plain
text (any HTML dropped) and escaped when shown.

Reviews that look fake still appear on the shop's pages, unmarked (a fraudster should not
learn which trick was caught), but do not count towards the rating: each review gets the
first suspicion signal that fits (`SUSPICION_RULES`) when it is written or edited, and a
merchant's sign-in marks the earlier reviews from that place (`mark_self_purchases`). An
operator can also hide a review, with a reason; hidden reviews are neither shown nor
counted.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from faka.accounts.models import Merchant
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.core.text import clean_text
from faka.extensions import db
from faka.orders.models import Order
from faka.platform import audit
from faka.reviews.models import Review
from faka.risk import engine

MAX_TEXT = 1000
EDIT_WINDOW = timedelta(hours=24)
PER_PAGE = 10
SORTS = ("newest", "lowest")

# Suspicion codes, stored in Review.suspicious_reason.
SELF_PURCHASE = "self_purchase"
DEVICE_MANY_ORDERS = "device_many_orders"
DEVICE_MANY_REVIEWS = "device_many_reviews"
REVIEW_BURST = "review_burst"

# One browser paying for this many orders of one shop within the window is a farm or the
# shop itself more often than a loyal buyer; honest repeat buyers rarely reach it.
DEVICE_ORDERS_LIMIT = 5
DEVICE_ORDERS_WINDOW = timedelta(days=30)
# A buyer reviews a shop a couple of times; a browser that already left this many reviews
# for the same shop is stuffing its rating.
DEVICE_REVIEWS_LIMIT = 3
# Small shops get a few reviews a day: this many within an hour is a campaign, not
# customers, so the whole hour stops counting until an operator looks.
BURST_LIMIT = 10
BURST_WINDOW = timedelta(hours=1)


class NotReviewable(DomainError):
    message = _l("Only a delivered order can be reviewed.")


class ReviewLocked(DomainError):
    message = _l("A review can be changed only within 24 hours of writing it; this one is final now.")


class AlreadyReviewed(DomainError):
    message = _l("This order already has a review.")


class InvalidRating(DomainError):
    message = _l("Choose a rating from 1 to 5 stars.")


class TextTooLong(DomainError):
    message = _l("Keep the text under 1000 characters.")


class AlreadyReplied(DomainError):
    message = _l("You have already replied to this review; a reply cannot be changed.")


class ReplyRequired(DomainError):
    message = _l("Write a reply first.")


class ReasonRequired(DomainError):
    message = _l("Write the reason for hiding this review.")


# -- text -------------------------------------------------------------------------------


def _checked_text(text: str | None) -> str:
    if text and len(text) > 10 * MAX_TEXT:
        raise TextTooLong()  # before cleaning: no markup shrinks that much in good faith
    cleaned = clean_text(text)
    if len(cleaned) > MAX_TEXT:
        raise TextTooLong()
    return cleaned


# -- the buyer's side -------------------------------------------------------------------


def reviewable(order: Order) -> bool:
    """Delivered, including orders refunded (in part or whole) after delivery."""
    return order.delivered_at is not None and order.status in (
        Order.DELIVERED,
        Order.PARTIALLY_REFUNDED,
        Order.REFUNDED,
    )


def editable(review: Review, now: datetime | None = None) -> bool:
    return (now or clock.now()) < review.created_at + EDIT_WINDOW


@dataclass(frozen=True)
class OrderPanel:
    """What the order page shows about reviewing the order."""

    review: Review | None
    can_edit: bool

    @property
    def edit_until(self) -> datetime | None:
        return self.review.created_at + EDIT_WINDOW if self.review else None


def review_for_order(order_id: int) -> Review | None:
    return db.session.execute(select(Review).where(Review.order_id == order_id)).scalar_one_or_none()


def order_panel(order: Order, now: datetime | None = None) -> OrderPanel | None:
    """What the order page shows about reviewing this order: nothing before delivery."""
    if not reviewable(order):
        return None
    review = review_for_order(order.id)
    return OrderPanel(review=review, can_edit=review is None or editable(review, now))


# The risk rule each suspicion is recorded under, for the operator's risk monitor.
RISK_RULES = {
    SELF_PURCHASE: "review_self_purchase",
    DEVICE_MANY_ORDERS: "review_device_orders",
    DEVICE_MANY_REVIEWS: "review_device_reviews",
    REVIEW_BURST: "review_burst",
}


def submit_review(
    order_token: str,
    rating: int,
    text: str | None,
    now: datetime | None = None,
    ip: str | None = None,
    device_hash: str | None = None,
) -> Review:
    """Write the order's review, or change it within EDIT_WINDOW of writing it. A
    blacklisted reviewer is refused (risk.Blocked); a suspicious review is kept, does
    not count, and shows in the risk monitor."""
    now = now or clock.now()
    if not isinstance(rating, int) or not 1 <= rating <= 5:
        raise InvalidRating()
    body = _checked_text(text)
    try:
        with write_transaction():
            order = _locked_order(order_token)
            if not reviewable(order):
                raise NotReviewable()
            signals = engine.Signals(
                engine.REVIEW, ip, device_hash, order.email, order.merchant_id, order=order, now=now
            )
            engine.check(signals)
            review = review_for_order(order.id)
            if review is None:
                review = Review(
                    order_id=order.id,
                    merchant_id=order.merchant_id,
                    product_id=order.product_id,
                    rating=rating,
                    body=body,
                    created_at=now,
                )
                db.session.add(review)
                db.session.flush()
            elif not editable(review, now):
                raise ReviewLocked()
            else:
                review.rating, review.body, review.edited_at = rating, body, now
            was = review.suspicious_reason
            _assess(review, order, now)
            if review.suspicious_reason and review.suspicious_reason != was:
                engine.note(signals, RISK_RULES[review.suspicious_reason])
    except IntegrityError as exc:
        raise AlreadyReviewed() from exc  # the same order reviewed twice at once
    return review


def _locked_order(token: str) -> Order:
    order = None
    if token and len(token) == 32:
        # The row lock orders two simultaneous first reviews of one order on PostgreSQL.
        order = db.session.execute(select(Order).where(Order.token == token).with_for_update()).scalar_one_or_none()
    if order is None:
        raise NotFound()
    return order


# -- suspicion signals ------------------------------------------------------------------


def is_self_purchase(order: Order) -> bool:
    """The order came from an IP address or browser the shop's owner signed in from."""
    signals = engine.Signals(engine.REVIEW, order.client_ip, order.device_hash, merchant_id=order.merchant_id)
    return engine.self_purchase(signals) is not None


def device_has_many_orders(order: Order, now: datetime) -> bool:
    """The order's browser paid for DEVICE_ORDERS_LIMIT or more of this shop's orders in
    the last DEVICE_ORDERS_WINDOW (this order included)."""
    if not order.device_hash:
        return False
    count = db.session.scalar(
        select(func.count())
        .select_from(Order)
        .where(
            Order.merchant_id == order.merchant_id,
            Order.device_hash == order.device_hash,
            Order.paid_at.is_not(None),
            Order.paid_at > now - DEVICE_ORDERS_WINDOW,
        )
    )
    return count >= DEVICE_ORDERS_LIMIT


def device_has_many_reviews(order: Order) -> bool:
    """DEVICE_REVIEWS_LIMIT or more reviews of this shop already came from orders placed
    with the order's browser (its own review left out)."""
    if not order.device_hash:
        return False
    count = db.session.scalar(
        select(func.count())
        .select_from(Review)
        .join(Order, Order.id == Review.order_id)
        .where(
            Review.merchant_id == order.merchant_id, Order.device_hash == order.device_hash, Review.order_id != order.id
        )
    )
    return count >= DEVICE_REVIEWS_LIMIT


def is_review_burst(merchant_id: int, now: datetime) -> bool:
    """The shop received BURST_LIMIT or more reviews in the hour up to `now`."""
    count = db.session.scalar(
        select(func.count())
        .select_from(Review)
        .where(Review.merchant_id == merchant_id, Review.created_at > now - BURST_WINDOW, Review.created_at <= now)
    )
    return count >= BURST_LIMIT


def suspicion(order: Order, now: datetime) -> str | None:
    """The first signal that fits this order's review, or None."""
    if is_self_purchase(order):
        return SELF_PURCHASE
    if device_has_many_orders(order, now):
        return DEVICE_MANY_ORDERS
    if device_has_many_reviews(order):
        return DEVICE_MANY_REVIEWS
    return None


def _assess(review: Review, order: Order, now: datetime) -> None:
    """Set the review's suspicion. A burst is judged when a review arrives and marks every
    review of that hour, so an edit keeps a burst mark it got from its neighbours."""
    reason = suspicion(order, now)
    if reason is None and review.suspicious_reason == REVIEW_BURST:
        reason = REVIEW_BURST
    review.suspicious_reason = reason
    if review.edited_at is None and is_review_burst(review.merchant_id, now):
        if review.suspicious_reason is None:
            review.suspicious_reason = REVIEW_BURST
        db.session.execute(
            update(Review)
            .where(
                Review.merchant_id == review.merchant_id,
                Review.created_at > now - BURST_WINDOW,
                Review.created_at <= now,
                Review.suspicious_reason.is_(None),
            )
            .values(suspicious_reason=REVIEW_BURST)
            .execution_options(synchronize_session=False)
        )


def mark_self_purchases(user_id: int, ip: str | None, device_hash: str | None) -> None:
    """A shop owner signed in from `ip` / `device_hash`: reviews of the shop's orders
    placed from there stop counting, whenever they were written. Runs in the caller's
    transaction."""
    merchant_id = db.session.scalar(select(Merchant.id).where(Merchant.user_id == user_id))
    places = [c == v for c, v in ((Order.client_ip, ip), (Order.device_hash, device_hash)) if v]
    if merchant_id is None or not places:
        return
    from_there = select(Order.id).where(Order.merchant_id == merchant_id, or_(*places))
    db.session.execute(
        update(Review)
        .where(
            Review.merchant_id == merchant_id,
            Review.order_id.in_(from_there),
            or_(Review.suspicious_reason.is_(None), Review.suspicious_reason == REVIEW_BURST),
        )
        .values(suspicious_reason=SELF_PURCHASE)
        .execution_options(synchronize_session=False)
    )


# -- public lists -----------------------------------------------------------------------


@dataclass(frozen=True)
class ReviewPage(Page):
    """A page of a public list, not counted; its links keep the list's sort."""

    sort: str


def public_reviews(
    *, merchant_id: int | None = None, product_id: int | None = None, sort: str = "newest", page: int = 1
) -> ReviewPage:
    """One page of the reviews shown to everyone (hidden ones left out), newest first or
    lowest rating first."""
    sort = sort if sort in SORTS else "newest"
    query = select(Review).where(Review.hidden_at.is_(None))
    if merchant_id is not None:
        query = query.where(Review.merchant_id == merchant_id)
    if product_id is not None:
        query = query.where(Review.product_id == product_id)
    order = (Review.created_at.desc(), Review.id.desc())
    if sort == "lowest":
        order = (Review.rating.asc(),) + order
    # With the variant each review's order bought, shown under it (in the same statement).
    options = (joinedload(Review.product), joinedload(Review.order).load_only(Order.variant_name))
    found = paginate(query.options(*options).order_by(*order), page, PER_PAGE, count=False)
    return ReviewPage(**vars(found), sort=sort)


# -- the merchant's side ----------------------------------------------------------------

MERCHANT_FILTERS = ("all", "unanswered")


def merchant_reviews(merchant_id: int, only: str = "all", page: int = 1) -> Page:
    """One page of the shop's reviews, newest first, hidden ones included; counted."""
    query = select(Review).where(Review.merchant_id == merchant_id)
    if only == "unanswered":
        query = query.where(Review.reply.is_(None))
    query = query.options(joinedload(Review.product), joinedload(Review.order))
    return paginate(query.order_by(Review.created_at.desc(), Review.id.desc()), page, PER_PAGE)


def reply(merchant_id: int, review_id: int, text: str | None, now: datetime | None = None) -> Review:
    """The shop's one reply to a review; it cannot be changed afterwards."""
    body = _checked_text(text)
    if not body:
        raise ReplyRequired()
    with write_transaction():
        review = db.session.execute(
            select(Review).where(Review.id == review_id, Review.merchant_id == merchant_id).with_for_update()
        ).scalar_one_or_none()
        if review is None:
            raise NotFound()
        if review.reply is not None:
            raise AlreadyReplied()
        review.reply, review.replied_at = body, now or clock.now()
    return review


# -- the operator's side ----------------------------------------------------------------

OPERATOR_FILTERS = ("all", "suspicious", "hidden")


def operator_reviews(only: str = "all", merchant_public_id: str | None = None, page: int = 1) -> Page:
    """One page of every review, newest first, filtered by state and shop; counted."""
    query = select(Review)
    if only == "suspicious":
        query = query.where(Review.suspicious_reason.is_not(None))
    elif only == "hidden":
        query = query.where(Review.hidden_at.is_not(None))
    if merchant_public_id:
        query = query.join(Merchant, Merchant.id == Review.merchant_id).where(Merchant.public_id == merchant_public_id)
    query = query.options(joinedload(Review.product), joinedload(Review.order).joinedload(Order.merchant))
    return paginate(query.order_by(Review.created_at.desc(), Review.id.desc()), page, PER_PAGE)


def reviewed_merchants() -> list[tuple[str, str]]:
    """(public id, name) of every shop with a review, for the operator's filter."""
    rows = db.session.execute(
        select(Merchant.public_id, Merchant.name)
        .where(Merchant.id.in_(select(Review.merchant_id).distinct()))
        .order_by(Merchant.name)
    ).all()
    return [tuple(r) for r in rows]


def _review_for_operator(review_id: int) -> Review:
    review = db.session.execute(select(Review).where(Review.id == review_id).with_for_update()).scalar_one_or_none()
    if review is None:
        raise NotFound()
    return review


def hide(review_id: int, operator_id: int, reason: str | None, now: datetime | None = None) -> Review:
    """Take a review off the shop's pages and out of its rating, saying why."""
    reason = clean_text(reason)
    if not reason:
        raise ReasonRequired()
    if len(reason) > MAX_TEXT:
        raise TextTooLong()
    with write_transaction():
        review = _review_for_operator(review_id)
        before = {"hidden_at": review.hidden_at, "hidden_reason": review.hidden_reason}
        review.hidden_at, review.hidden_reason, review.hidden_by = now or clock.now(), reason, operator_id
        audit.record(
            operator_id,
            "review.hide",
            f"review:{review.id}",
            before=before,
            after={"hidden_at": review.hidden_at, "hidden_reason": reason},
            detail=reason,
        )
    return review


def unhide(review_id: int, operator_id: int) -> Review:
    with write_transaction():
        review = _review_for_operator(review_id)
        before = {"hidden_at": review.hidden_at, "hidden_reason": review.hidden_reason}
        review.hidden_at, review.hidden_reason, review.hidden_by = None, None, None
        audit.record(
            operator_id,
            "review.unhide",
            f"review:{review.id}",
            before=before,
            after={"hidden_at": None, "hidden_reason": None},
        )
    return review
