"""Key reservation and release: the only code that moves keys between states."""

import math
from collections import Counter
from datetime import datetime, timedelta
from functools import cache

from sqlalchemy import Integer, bindparam, case, func, or_, select, update

from faka.catalog.models import Product, ProductVariant
from faka.core.db import is_postgresql
from faka.core.errors import StockHeld
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Coupon, Order

# An unpaid order reserves its keys so that the buyer who pays gets them, but reserving
# costs nothing: a few unpaid orders from a few addresses could otherwise take a variant's
# last keys off sale for the whole order time. So, of a variant's unsold keys (available
# plus reserved; each variant of a product has its own key pool):
HOLD_SHARE = 0.5  # unpaid orders together hold at most this share (so one order too) ...
LARGE_SHARE = 0.25  # ... and an order reserving more than this share ...
LARGE_HOLD = timedelta(minutes=5)  # ... keeps them this long at most, not the site's order time.
# An order of one key is never refused by HOLD_SHARE: refusing it would refuse every buyer
# once the share is held. Single-key hoarding is the risk engine's (one address or browser
# holds few unpaid orders, and little of one variant's stock).
# Unsold keys from which one key is no longer a large share.
SINGLE_KEY_ROOM = math.ceil(1 / LARGE_SHARE)


def unpaid_hold(variant_id: int, quantity: int, order_time: timedelta, now: datetime) -> timedelta:
    """How long a new unpaid order of `quantity` keys may hold them: the site's order time,
    or LARGE_HOLD when it takes a large share of what is left. Raises StockHeld when
    unpaid orders would hold more than HOLD_SHARE of the variant's unsold keys.

    Runs inside the checkout's write transaction, before its keys are reserved. SQLite's
    immediate transaction serialises checkouts; on PostgreSQL, checkouts of several keys
    of one variant take turns on the variant's row, so two cannot both pass the share.
    (A concurrent single-key checkout may still go first: it was allowed either way, and
    it moves a key from available to held, leaving the unsold count the same.)
    """
    if quantity > 1:
        db.session.execute(
            select(ProductVariant.id).where(ProductVariant.id == variant_id).with_for_update(key_share=True)
        )
    available, held = _unsold(variant_id, quantity)
    if (quantity > available or _over_share(quantity, available, held)) and expire_stale_orders(
        now, variant_id=variant_id
    ):
        available, held = _unsold(variant_id, quantity)
    if quantity <= available and _over_share(quantity, available, held):
        raise StockHeld()
    return min(order_time, LARGE_HOLD) if quantity > LARGE_SHARE * (available + held) else order_time


def _over_share(quantity: int, available: int, held: int) -> bool:
    return quantity > 1 and held + quantity > HOLD_SHARE * (available + held)


def _unsold(variant_id: int, quantity: int) -> tuple[int, int]:
    """The variant's (available, reserved) keys. Available keys are counted only up to
    reserved + 4 × quantity, more than either limit above ever compares them with: a
    variant with 100,000 keys is not counted through at every checkout. A single key
    meets neither the share (_over_share) nor, from SINGLE_KEY_ROOM unsold keys on,
    LARGE_SHARE: both counts stop there, so a checkout of one key costs the same however
    many unpaid orders hold keys of the variant (thousands, while a sale draws buyers)."""
    if quantity == 1:
        return tuple(db.session.execute(_single_key_unsold_statement(), {"variant": variant_id}).one())
    return tuple(db.session.execute(_unsold_statement(), {"variant": variant_id, "room": 4 * quantity}).one())


@cache
def _single_key_unsold_statement():
    def counted_up_to_room(status: str):
        keys = (
            select(CardKey.id)
            .where(CardKey.variant_id == bindparam("variant"), CardKey.status == status)
            .limit(SINGLE_KEY_ROOM)
        )
        return select(func.count()).select_from(keys.subquery()).scalar_subquery()

    return select(counted_up_to_room(CardKey.AVAILABLE), counted_up_to_room(CardKey.RESERVED))


@cache
def _unsold_statement():
    # Built once: every checkout of a key product runs it.
    held = (
        select(func.count())
        .where(CardKey.variant_id == bindparam("variant"), CardKey.status == CardKey.RESERVED)
        .scalar_subquery()
    )
    available = (
        select(CardKey.id)
        .where(CardKey.variant_id == bindparam("variant"), CardKey.status == CardKey.AVAILABLE)
        .limit(held + bindparam("room", type_=Integer))
        .subquery()
    )
    return select(select(func.count()).select_from(available).scalar_subquery(), held)


def reserve_keys(order: Order, quantity: int, until: datetime, now: datetime) -> bool:
    """Reserve `quantity` available keys of the order's variant for it.

    Runs inside the caller's write transaction. On SQLite the caller's BEGIN IMMEDIATE
    already serialises writers. On PostgreSQL concurrent checkouts first skip each other's
    locked rows (FOR UPDATE SKIP LOCKED), so they do not queue behind one another.
    A checkout that comes up short first expires the variant's unpaid orders past their
    deadline, whose keys the reconciler would release soon anyway, and tries again. Then
    on PostgreSQL it may only be seeing keys another checkout will give back, so it
    releases what it locked and waits its turn in key order (which cannot deadlock, as it
    then holds no other key) before deciding the stock is gone. Returns False, reserving
    nothing, when there are not enough keys.
    """
    reserved = _reserve(order, quantity, until, skip_locked=True)
    if not reserved and expire_stale_orders(now, variant_id=order.variant_id):
        reserved = _reserve(order, quantity, until, skip_locked=True)
    if not reserved and is_postgresql():
        reserved = _reserve(order, quantity, until, skip_locked=False)
    return reserved


def _reserve(order: Order, quantity: int, until: datetime, skip_locked: bool) -> bool:
    """Reserve `quantity` available keys, lowest id first, in one statement; or none:
    when there are fewer, its savepoint is rolled back, which also unlocks them."""
    savepoint = db.session.begin_nested()
    reserved = db.session.execute(
        _reserve_statement(skip_locked),
        {
            "variant": order.variant_id,
            "quantity": quantity,
            "order": order.id,
            "until": until,
        },
    ).all()
    if len(reserved) < quantity:
        savepoint.rollback()
        return False
    savepoint.commit()
    return True


@cache
def _reserve_statement(skip_locked: bool):
    # Built once each: every checkout runs one.
    picked = (
        select(CardKey.id)
        .where(CardKey.variant_id == bindparam("variant"), CardKey.status == CardKey.AVAILABLE)
        .order_by(CardKey.id)
        .limit(bindparam("quantity", type_=Integer))
        .with_for_update(skip_locked=skip_locked)
    )
    return (
        update(CardKey)
        .where(CardKey.id.in_(picked.scalar_subquery()))
        .values(status=CardKey.RESERVED, order_id=bindparam("order"), reserved_until=bindparam("until"))
        .returning(CardKey.id)
        .execution_options(synchronize_session=False)
    )


def shared_key(variant_id: int) -> str | None:
    """The ciphertext of a reusable-key product's key for this variant (the oldest
    available one)."""
    return db.session.execute(
        select(CardKey.ciphertext)
        .where(CardKey.variant_id == variant_id, CardKey.status == CardKey.AVAILABLE)
        .order_by(CardKey.id)
        .limit(1)
    ).scalar_one_or_none()


def release_keys(order_ids: list[int]) -> int:
    """Put the reserved keys of these orders back on sale; those of a variant or product
    deleted meanwhile are voided instead, as its unsold keys were when it was deleted."""
    if not order_ids:
        return 0
    withdrawn = (
        select(ProductVariant.id)
        .join(Product, Product.id == ProductVariant.product_id)
        .where(or_(ProductVariant.deleted_at.is_not(None), Product.deleted_at.is_not(None)))
    )
    db.session.execute(
        update(CardKey)
        .where(CardKey.order_id.in_(order_ids), CardKey.status == CardKey.RESERVED, CardKey.variant_id.in_(withdrawn))
        .values(status=CardKey.VOID, order_id=None, reserved_until=None)
        .execution_options(synchronize_session=False)
    )
    result = db.session.execute(
        update(CardKey)
        .where(CardKey.order_id.in_(order_ids), CardKey.status == CardKey.RESERVED)
        .values(status=CardKey.AVAILABLE, order_id=None, reserved_until=None)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount


def reserved_key_ids(order_id: int) -> list[int]:
    return list(
        db.session.execute(
            select(CardKey.id).where(CardKey.order_id == order_id, CardKey.status == CardKey.RESERVED)
        ).scalars()
    )


def sell_keys(key_ids: list[int], when: datetime) -> None:
    db.session.execute(
        update(CardKey)
        .where(CardKey.id.in_(key_ids), CardKey.status == CardKey.RESERVED)
        .values(status=CardKey.SOLD, sold_at=when, reserved_until=None)
        .execution_options(synchronize_session=False)
    )


def expire_stale_orders(now: datetime, variant_id: int | None = None) -> int:
    """Expire pending orders past their deadline, release their keys and give back the
    coupon uses they took.

    Runs inside the caller's write transaction. Returns how many orders expired.
    """
    query = select(Order).where(Order.status == Order.PENDING, Order.expires_at < now)
    if variant_id is not None:
        query = query.where(Order.variant_id == variant_id)
    orders = db.session.execute(query.with_for_update(skip_locked=True)).scalars().all()
    for order in orders:
        order.mark_expired()
    release_keys([o.id for o in orders])
    for coupon_id, uses in Counter(o.coupon_id for o in orders if o.coupon_id).items():
        change_coupon_uses(coupon_id, -uses)
    return len(orders)


def change_coupon_uses(coupon_id: int, delta: int) -> None:
    """Count uses of a coupon up or down (never below zero). Taking a use at checkout is
    guarded by the usage limit in faka/orders/coupons.py; this is for giving one back
    (an order expired unpaid) and for a late payment that used it after all."""
    db.session.execute(
        update(Coupon)
        .where(Coupon.id == coupon_id)
        .values(used_count=case((Coupon.used_count + delta < 0, 0), else_=Coupon.used_count + delta))
        .execution_options(synchronize_session=False)
    )
