"""Coupons: a merchant's discount codes, applied to the whole order total.

A coupon takes a fixed amount (minor units) or a percentage (basis points, 1000 = 10 %)
off the order's subtotal (unit price × quantity), never off one unit. Percent discounts
round down, in the buyer's disfavour by at most one fen.

Free orders are not possible: every order is paid through a gateway, and a gateway
cannot take a payment of zero. So a percentage coupon stops short of 100 %, and a fixed
coupon worth the whole subtotal or more is refused for that order with a clear message
instead of silently charging less than it promises.

`quote()` only reads, for the product page's preview and inside checkout. Checkout then
takes one use of the coupon with `consume_use()` in its own write transaction: a guarded
UPDATE, so racing checkouts cannot use a coupon more often than its limit allows.
"""

import re
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select, update
from sqlalchemy.exc import IntegrityError

from faka.catalog.models import Product, ProductVariant
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.money import format_money
from faka.extensions import db
from faka.orders.models import Coupon

CODE_PATTERN = re.compile(r"[A-Z0-9_-]{3,32}")
MAX_BASIS_POINTS = 10000
# Bigger amounts are typing mistakes, and would not fit the database's integer columns.
MAX_AMOUNT = 1_000_000_000
MAX_USAGE_LIMIT = 1_000_000_000


class CouponSettingsInvalid(DomainError):
    """A merchant asked for a coupon that cannot exist; nothing was saved."""

    message = _l("These coupon settings are not valid.")


class CouponCodeTaken(CouponSettingsInvalid):
    message = _l("You already have a coupon with this code.")


class CouponInvalid(DomainError):
    """A buyer's coupon cannot be applied to this order; nothing was changed."""

    message = _l("This coupon cannot be used.")


class CouponUnknown(CouponInvalid):
    message = _l("This coupon code is not valid.")


class CouponExpired(CouponInvalid):
    message = _l("This coupon has expired.")


class CouponUsedUp(CouponInvalid):
    message = _l("This coupon has been used up.")


class CouponNotForProduct(CouponInvalid):
    message = _l("This coupon is not valid for this product.")


class CouponBelowMinimum(CouponInvalid):
    def __init__(self, min_amount: int):
        amount = format_money(min_amount, current_app.config["CURRENCY"])
        super().__init__(_l("This coupon needs an order of at least %(amount)s.", amount=amount))


class CouponMakesOrderFree(CouponInvalid):
    message = _l("This coupon is worth the whole order; orders cannot be free. Please buy more or use another coupon.")


@dataclass(frozen=True)
class Quote:
    subtotal: int  # unit price × quantity
    discount: int
    total: int  # subtotal − discount, at least 1
    coupon: Coupon | None
    variant: ProductVariant | None = None  # what was priced


def normalise_code(code: str | None) -> str:
    return (code or "").strip().upper()


def create_coupon(
    merchant_id: int,
    code: str,
    kind: str,
    value: int,
    product_id: int | None = None,
    min_amount: int = 0,
    usage_limit: int | None = None,
    expires_at: datetime | None = None,
) -> Coupon:
    """Create an active coupon, or raise CouponSettingsInvalid and save nothing."""
    code = normalise_code(code)
    _check_settings(code, kind, value, min_amount, usage_limit, expires_at)
    try:
        with write_transaction():
            if product_id is not None and _merchant_product(merchant_id, product_id) is None:
                raise CouponSettingsInvalid(_l("Choose one of your own products, or all of them."))
            taken = db.session.execute(
                select(Coupon.id).where(Coupon.merchant_id == merchant_id, Coupon.code == code)
            ).first()
            if taken:
                raise CouponCodeTaken()
            coupon = Coupon(
                merchant_id=merchant_id,
                code=code,
                kind=kind,
                value=value,
                product_id=product_id,
                min_amount=min_amount,
                usage_limit=usage_limit,
                expires_at=expires_at,
                used_count=0,
                active=True,
                created_at=clock.now(),
            )
            db.session.add(coupon)
    except IntegrityError as exc:  # the same code created at the same moment (PostgreSQL); rolled back
        raise CouponCodeTaken() from exc
    return coupon


def _check_settings(code, kind, value, min_amount, usage_limit, expires_at) -> None:
    if not CODE_PATTERN.fullmatch(code):
        raise CouponSettingsInvalid(_l("A coupon code is 3 to 32 letters, digits, hyphens or underscores."))
    if kind == Coupon.PERCENT:
        if not isinstance(value, int) or not 0 < value < MAX_BASIS_POINTS:
            raise CouponSettingsInvalid(
                _l("A percentage coupon must take off more than 0 % and less than 100 % (orders cannot be free).")
            )
    elif kind == Coupon.FIXED:
        if not isinstance(value, int) or value <= 0:
            raise CouponSettingsInvalid(_l("A fixed coupon must take off an amount greater than zero."))
    else:
        raise CouponSettingsInvalid(_l("A coupon is either a fixed amount or a percentage."))
    if not isinstance(min_amount, int) or min_amount < 0:
        raise CouponSettingsInvalid(_l("The minimum order amount cannot be negative."))
    if max(value, min_amount) > MAX_AMOUNT:
        raise CouponSettingsInvalid(_l("That amount is too large."))
    if usage_limit is not None and (not isinstance(usage_limit, int) or not 1 <= usage_limit <= MAX_USAGE_LIMIT):
        raise CouponSettingsInvalid(_l("The usage limit must be at least 1, or left empty for no limit."))
    if expires_at is not None and expires_at <= clock.now():
        raise CouponSettingsInvalid(_l("The expiry time must be in the future."))


def _merchant_product(merchant_id: int, product_id: int) -> Product | None:
    return db.session.execute(
        select(Product).where(
            Product.id == product_id, Product.merchant_id == merchant_id, Product.deleted_at.is_(None)
        )
    ).scalar_one_or_none()


def deactivate_coupon(coupon_id: int, merchant_id: int) -> Coupon:
    """Stop a coupon from being used again; orders that already used it keep their discount."""
    with write_transaction():
        coupon = db.session.execute(
            select(Coupon).where(Coupon.id == coupon_id, Coupon.merchant_id == merchant_id)
        ).scalar_one_or_none()
        if coupon is None:
            raise NotFound()
        coupon.active = False
    return coupon


def list_coupons(merchant_id: int) -> list[Coupon]:
    """The merchant's coupons, newest first."""
    return list(
        db.session.execute(
            select(Coupon).where(Coupon.merchant_id == merchant_id).order_by(Coupon.created_at.desc(), Coupon.id.desc())
        ).scalars()
    )


def coupons_query(merchant_id: int, active: bool | None = None):
    """The merchant's coupons (one entity, for the API's cursor pages); `active` keeps
    only the coupons that are (or are not) switched on."""
    query = select(Coupon).where(Coupon.merchant_id == merchant_id)
    if active is not None:
        query = query.where(Coupon.active.is_(active))
    return query


def get_coupon(merchant_id: int, coupon_id: int) -> Coupon:
    """The merchant's own coupon, or NotFound."""
    coupon = db.session.execute(
        select(Coupon).where(Coupon.id == coupon_id, Coupon.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if coupon is None:
        raise NotFound()
    return coupon


def product_slugs(coupons: list[Coupon]) -> dict[int, str]:
    """The public ids of the products these coupons are limited to, by product id."""
    ids = {c.product_id for c in coupons if c.product_id is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(Product.id, Product.slug).where(Product.id.in_(sorted(ids)))).all())


UNCHANGED = object()


def update_coupon(
    merchant_id: int,
    coupon_id: int,
    active=UNCHANGED,
    min_amount=UNCHANGED,
    usage_limit=UNCHANGED,
    expires_at=UNCHANGED,
) -> Coupon:
    """Change what a coupon allows (UNCHANGED leaves a setting as it is): switch it off
    (orders that used it keep their discount) or on again, its minimum order, its usage
    limit (None: none), its expiry (None: never). Its code, kind and value stay: a new
    discount is a new coupon. The same rules and messages as creating one."""
    with write_transaction():
        coupon = get_coupon(merchant_id, coupon_id)
        if min_amount is not UNCHANGED:
            coupon.min_amount = min_amount
        if usage_limit is not UNCHANGED:
            coupon.usage_limit = usage_limit
        if expires_at is not UNCHANGED:
            if expires_at is not None and expires_at <= clock.now():
                raise CouponSettingsInvalid(_l("The expiry time must be in the future."))
            coupon.expires_at = expires_at
        _check_settings(coupon.code, coupon.kind, coupon.value, coupon.min_amount, coupon.usage_limit, None)
        if active is not UNCHANGED:
            coupon.active = bool(active)
    return coupon


def quote(product: Product, variant: ProductVariant, quantity: int, coupon_code: str | None, now: datetime) -> Quote:
    """The price of `quantity` of the product's `variant` with this coupon (none if the
    code is empty). A coupon for a product applies to each of its variants.

    Raises a CouponInvalid subclass naming the reason. Reads only; the caller checks the
    quantity is allowed.
    """
    subtotal = variant.unit_price_for(quantity) * quantity
    code = normalise_code(coupon_code)
    if not code:
        return Quote(subtotal=subtotal, discount=0, total=subtotal, coupon=None, variant=variant)
    coupon = _usable_coupon(product, code, now)
    if subtotal < coupon.min_amount:
        raise CouponBelowMinimum(coupon.min_amount)
    if coupon.kind == Coupon.PERCENT:
        discount = subtotal * coupon.value // MAX_BASIS_POINTS
    else:
        discount = min(coupon.value, subtotal)
    if subtotal - discount < 1:
        raise CouponMakesOrderFree()
    return Quote(subtotal=subtotal, discount=discount, total=subtotal - discount, coupon=coupon, variant=variant)


def _usable_coupon(product: Product, code: str, now: datetime) -> Coupon:
    if not CODE_PATTERN.fullmatch(code):
        raise CouponUnknown()
    # Scoped to the product's merchant: another merchant's code is simply unknown here.
    coupon = db.session.execute(
        select(Coupon).where(Coupon.merchant_id == product.merchant_id, Coupon.code == code)
    ).scalar_one_or_none()
    if coupon is None or not coupon.active:
        raise CouponUnknown()
    if coupon.expires_at is not None and coupon.expires_at <= now:
        raise CouponExpired()
    if coupon.usage_limit is not None and coupon.used_count >= coupon.usage_limit:
        raise CouponUsedUp()
    if coupon.product_id is not None and coupon.product_id != product.id:
        raise CouponNotForProduct()
    return coupon


def consume_use(coupon: Coupon, now: datetime) -> None:
    """Take one use of the coupon, inside the caller's write transaction.

    The condition is checked by the UPDATE itself, so of two checkouts racing for the
    last use one updates the row and the other (on PostgreSQL, after waiting for the
    first to commit and re-reading the row) updates nothing and is refused.
    """
    result = db.session.execute(
        update(Coupon)
        .where(
            Coupon.id == coupon.id,
            Coupon.active.is_(True),
            or_(Coupon.expires_at.is_(None), Coupon.expires_at > now),
            or_(Coupon.usage_limit.is_(None), Coupon.used_count < Coupon.usage_limit),
        )
        .values(used_count=Coupon.used_count + 1)
        .execution_options(synchronize_session=False)
    )
    if result.rowcount != 1:
        raise CouponUsedUp()
