"""Placing an order: price it (with its coupon), check the buyer's answers to the product's
checkout fields, reserve its keys, keep the answers and take the coupon's use, all in one
transaction."""

import secrets
from collections.abc import Mapping
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from faka.catalog import checkout_fields, storefront
from faka.catalog.models import DELIVERY_AUTO, Product, ProductVariant
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, InvalidQuantity, NotForSale, NotFound, OutOfStock
from faka.core.passwords import hash_query_password, verify_query_password
from faka.extensions import db
from faka.growth import affiliates, resale
from faka.inventory import stock
from faka.orders import coupons
from faka.orders.models import Order
from faka.payments.gateways import get_gateway
from faka.platform import settings
from faka.risk import engine

# A second identical order from the same browser this soon is the same tap again (a
# double tap, a resubmitted form): the buyer is sent to the first order instead.
REPEAT_WINDOW = timedelta(seconds=10)


class QueryPasswordRequired(DomainError):
    message = _l("This seller asks every buyer to set a query password.")


class EmailRequired(DomainError):
    message = _l("This seller needs your email for this order: enter one.")


class ChooseVariant(DomainError):
    message = _l("Choose one of the product's options.")


class OptionOutOfStock(OutOfStock):
    """The chosen variant (of a product with several) has too few keys left."""

    message = _l("Not enough stock of this option for that quantity. Choose fewer or another option.")


class OptionQuantity(InvalidQuantity):
    """A quantity outside the chosen variant's limits (of a product with several, whose
    limits may differ from option to option)."""

    def __init__(self, variant: ProductVariant) -> None:
        super().__init__(
            _l("This option sells %(min)s to %(max)s per order.", min=variant.min_per_order, max=_max(variant))
        )


def new_order_number(when) -> str:
    # Date prefix for humans, random digits so numbers reveal nothing about volume.
    return when.strftime("%Y%m%d") + "".join(secrets.choice("0123456789") for _ in range(12))


def place_order(
    product_slug: str,
    quantity: int,
    email: str | None,
    query_password: str | None,
    gateway: str = "sandbox",
    client_ip: str | None = None,
    locale: str = "zh_CN",
    coupon_code: str | None = None,
    device_hash: str | None = None,
    captcha_solved: bool = False,
    answers: Mapping[str, str] | None = None,
    variant_key: str | None = None,
    substore_code: str | None = None,
    referral_code: str | None = None,
) -> Order:
    """Create a pending order and reserve its keys; raise and change nothing on failure.

    `variant_key` names the variant the buyer chose; it may be left out for a product
    with one variant, and a product with several refuses the order without it
    (ChooseVariant).

    The risk engine looks at the buyer first: it may refuse the order (risk.Blocked), ask
    for the captcha (risk.CaptchaRequired; `captcha_solved` says the buyer solved one),
    flag the order, or hold its delivery once paid. A refusal is recorded all the same.

    `answers` maps the product's checkout fields' keys to what the buyer typed: any that
    does not fit raises checkout_fields.InvalidAnswers (every field's message at once);
    and a product that requires an email refuses an order without one (EmailRequired).

    A coupon is validated again here, whatever the preview said, and one of its uses is
    taken in the same transaction: an order that fails gives the use back by rolling back.

    The same order placed again from the same browser within REPEAT_WINDOW (same product,
    quantity, email, query password, coupon, answers and way of paying, still unpaid)
    returns the first order and creates nothing: five quick taps on "Buy" are one order.

    `substore_code` places the order in a reseller's sub-store (faka/growth/resale.py): at
    the sub-store's price, with no coupon (CouponsNotAccepted) and no tier prices; the
    order keeps the merchant's floor total. `referral_code` is the promoter link the buyer
    came through (faka/growth/affiliates.py): when it counts, the order names the promoter
    and the product's commission rate.
    """
    get_gateway(gateway)  # refuses an unknown or disabled gateway before any write
    password_hash = hash_query_password(query_password) if query_password else None
    # A refusal by risk.check rolls this back itself and commits its event apart (risk.record).
    with write_transaction():
        order = _place(
            product_slug,
            quantity,
            email,
            query_password,
            password_hash,
            gateway,
            client_ip,
            locale,
            coupon_code,
            device_hash,
            captcha_solved,
            answers or {},
            variant_key,
            substore_code,
            referral_code,
        )
        token = order.token
    # The buyer goes on to the token's pay page: keep the token loaded after the commit
    # instead of reading the order back for it.
    set_committed_value(order, "token", token)
    return order


def price_preview(
    product_slug: str,
    quantity: int,
    coupon_code: str | None,
    variant_key: str | None = None,
    substore_code: str | None = None,
) -> coupons.Quote:
    """What place_order would charge now, for the product page's preview (the quote names
    the variant, whose limits the page shows). Reads only."""
    product = _product_on_sale(product_slug)
    variant = chosen_variant(product, variant_key)
    _check_quantity(product, variant, quantity)
    if substore_code:
        return _substore_quote(resale.open_substore(substore_code), variant, quantity, coupon_code)[0]
    return coupons.quote(product, variant, quantity, coupon_code, clock.now())


def _substore_quote(substore, variant: ProductVariant, quantity: int, coupon_code: str | None):
    """A sub-store's price for `quantity` of the variant, and the merchant's floor total."""
    if coupon_code and coupon_code.strip():
        raise resale.CouponsNotAccepted()
    offer = resale.offer(substore, variant)
    total = offer.price * quantity
    return coupons.Quote(total, 0, total, None, variant), offer.floor_price * quantity


def _product_on_sale(product_slug: str) -> Product:
    try:
        return storefront.product_to_sell(product_slug)
    except Exception as exc:
        raise NotForSale() from exc


def chosen_variant(product: Product, variant_key: str | None) -> ProductVariant:
    """The product's variant on offer that the buyer chose; with no choice made, the only
    one of a product that has one."""
    offered = product.live_variants
    if variant_key:
        for variant in offered:
            if variant.key == variant_key:
                return variant
        raise ChooseVariant()
    if len(offered) != 1:
        raise ChooseVariant()
    return offered[0]


def _max(variant: ProductVariant) -> int:
    return min(variant.max_per_order, current_app.config["MAX_KEYS_PER_ORDER"])


def _check_quantity(product: Product, variant: ProductVariant, quantity: int) -> None:
    if not variant.min_per_order <= quantity <= _max(variant):
        raise OptionQuantity(variant) if product.has_choice else InvalidQuantity()


def _place(
    product_slug,
    quantity,
    email,
    query_password,
    password_hash,
    gateway,
    client_ip,
    locale,
    coupon_code,
    device_hash,
    captcha_solved,
    answers,
    variant_key,
    substore_code,
    referral_code,
) -> Order:
    substore = resale.open_substore(substore_code) if substore_code else None
    product = _product_on_sale(product_slug)
    variant = chosen_variant(product, variant_key)
    _check_quantity(product, variant, quantity)
    if product.require_query_password and password_hash is None:
        raise QueryPasswordRequired()
    email = (email or "").strip().lower() or None
    if product.require_email and email is None:
        raise EmailRequired()
    answered = checkout_fields.clean_answers(product.checkout_fields, answers, locale)

    now = clock.now()
    resale_base = None
    if substore is not None:
        price, resale_base = _substore_quote(substore, variant, quantity, coupon_code)
    else:
        price = coupons.quote(product, variant, quantity, coupon_code, now)
    referred = affiliates.referral(referral_code, product, substore.merchant_id if substore else None)
    signals = engine.Signals(
        engine.CHECKOUT,
        client_ip,
        device_hash,
        email,
        product.merchant_id,
        product,
        quantity,
        now=now,
        variant=variant,
        promoter_id=referred[0] if referred else None,
    )
    engine.serialise_buyer(signals)  # a repeated tap waits here until the first one committed
    first = _same_order_just_placed(
        product, variant, quantity, email, query_password, price.coupon, gateway, device_hash, now, answered, substore
    )
    if first is not None:
        return first
    verdict = engine.check(signals, captcha_solved)
    unit_price = price.subtotal // quantity if substore is not None else variant.unit_price_for(quantity)
    hold = timedelta(minutes=settings.order_ttl_minutes())
    if product.uses_key_stock:
        hold = stock.unpaid_hold(variant.id, quantity, hold, now)
    expires_at = now + hold
    order = Order(
        number=new_order_number(now),
        token=secrets.token_hex(16),
        product_id=product.id,
        variant_id=variant.id,
        variant_name=variant.name if product.has_choice else None,
        merchant_id=product.merchant_id,
        quantity=quantity,
        unit_price=unit_price,
        discount=price.discount,
        total=price.total,
        coupon_id=price.coupon.id if price.coupon else None,
        currency=current_app.config["CURRENCY"],
        email=email,
        query_password_hash=password_hash,
        gateway=gateway,
        client_ip=client_ip,
        device_hash=device_hash,
        locale=locale,
        created_at=now,
        expires_at=expires_at,
        substore_id=substore.id if substore is not None else None,
        resale_base=resale_base,
        promoter_id=referred[0] if referred else None,
        commission_bp=referred[1] if referred else None,
    )
    db.session.add(order)
    db.session.flush()
    checkout_fields.store_answers(order, answered)
    if product.uses_key_stock:
        if not stock.reserve_keys(order, quantity, until=expires_at, now=now):
            raise OptionOutOfStock() if product.has_choice else OutOfStock()
    elif product.delivery_type == DELIVERY_AUTO and stock.shared_key(variant.id) is None:
        raise OptionOutOfStock() if product.has_choice else OutOfStock()
    if verdict.hits:
        engine.add_event(signals, verdict, order_id=order.id, captcha_solved=captcha_solved)
        engine.flag_order(order, verdict)
    if price.coupon is not None:
        # Last, so the coupon's row lock is held only for the commit.
        coupons.consume_use(price.coupon, now)
    return order


def _same_order_just_placed(
    product, variant, quantity, email, query_password, coupon, gateway, device_hash, now, answered, substore
) -> Order | None:
    if device_hash is None:
        return None
    candidates = (
        db.session.execute(
            select(Order)
            .where(
                Order.device_hash == device_hash,
                Order.variant_id == variant.id,
                Order.status == Order.PENDING,
                Order.created_at >= now - REPEAT_WINDOW,
                Order.quantity == quantity,
                Order.gateway == gateway,
                Order.email.is_(None) if email is None else Order.email == email,
                Order.coupon_id.is_(None) if coupon is None else Order.coupon_id == coupon.id,
                Order.substore_id.is_(None) if substore is None else Order.substore_id == substore.id,
            )
            .order_by(Order.created_at)
        )
        .scalars()
        .all()
    )
    for order in candidates:
        if product.checkout_fields and not checkout_fields.same_answers(order.id, answered):
            continue  # the buyer corrected an answer: a new order
        if order.query_password_hash is None and not query_password:
            return order
        if (
            order.query_password_hash
            and query_password
            and verify_query_password(order.query_password_hash, query_password)
        ):
            return order
    return None


class OrderNotPending(DomainError):
    message = _l("This order is no longer waiting for payment.")


def cancel_order(token: str) -> Order:
    """The buyer cancels an unpaid order: its keys go back on sale and its coupon use is
    given back at once. A payment that still arrives later is honoured like one after
    expiry (faka/payments/notify.py)."""
    with write_transaction():
        order = _locked_pending_order(token)
        now = clock.now()
        order.mark_cancelled(now)
        stock.release_keys([order.id])
        if order.coupon_id:
            stock.change_coupon_uses(order.coupon_id, -1)
    return order


def change_gateway(token: str, gateway: str) -> Order:
    """Pay an unpaid order another way. A payment already started with the earlier way
    is still accepted if the buyer completes it (the payment attempts remember it)."""
    get_gateway(gateway)  # an unknown or disabled gateway: GatewayUnavailable
    with write_transaction():
        order = _locked_pending_order(token)
        order.gateway = gateway
    return order


def _locked_pending_order(token: str) -> Order:
    order = (
        db.session.execute(
            select(Order).where(Order.token == token).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if token and len(token) == 32
        else None
    )
    if order is None:
        raise NotFound()
    if order.status != Order.PENDING or order.expires_at <= clock.now():
        raise OrderNotPending()
    return order


def order_by_token(token: str) -> Order | None:
    if not token or len(token) != 32:
        return None
    return db.session.execute(
        select(Order).where(Order.token == token).options(joinedload(Order.product))
    ).scalar_one_or_none()
