"""Placing an order: price it (with its coupon), reserve its keys and take the coupon's
use, all in one transaction."""
import secrets
from datetime import timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import joinedload
from sqlalchemy.orm.attributes import set_committed_value

from faka.database import begin_write
from faka.extensions import db
from faka.models import Order, Product
from faka.models.catalog import DELIVERY_AUTO
from faka.payments import get_gateway
from faka.services import catalog, clock, coupons, risk, settings, stock
from faka.services.errors import DomainError, InvalidQuantity, NotForSale, OutOfStock
from faka.services.passwords import hash_query_password


class QueryPasswordRequired(DomainError):
    message = _l("This seller asks every buyer to set a query password.")


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
) -> Order:
    """Create a pending order and reserve its keys; raise and change nothing on failure.

    The risk engine looks at the buyer first: it may refuse the order (risk.Blocked), ask
    for the captcha (risk.CaptchaRequired; `captcha_solved` says the buyer solved one),
    flag the order, or hold its delivery once paid. A refusal is recorded all the same.

    A coupon is validated again here, whatever the preview said, and one of its uses is
    taken in the same transaction: an order that fails gives the use back by rolling back.
    """
    get_gateway(gateway)  # refuses an unknown or disabled gateway before any write
    password_hash = hash_query_password(query_password) if query_password else None
    begin_write()
    try:
        order = _place(product_slug, quantity, email, password_hash, gateway, client_ip, locale, coupon_code,
                       device_hash, captcha_solved)
    except Exception:
        db.session.rollback()
        raise
    token = order.token
    db.session.commit()
    # The buyer goes on to the token's pay page: keep the token loaded after the commit
    # instead of reading the order back for it.
    set_committed_value(order, "token", token)
    return order


def price_preview(product_slug: str, quantity: int, coupon_code: str | None) -> coupons.Quote:
    """What place_order would charge now, for the product page's preview. Reads only."""
    product = _product_on_sale(product_slug)
    _check_quantity(product, quantity)
    return coupons.quote(product, quantity, coupon_code, clock.now())


def _product_on_sale(product_slug: str) -> Product:
    try:
        return catalog.product_to_sell(product_slug)
    except Exception as exc:
        raise NotForSale() from exc


def _check_quantity(product: Product, quantity: int) -> None:
    max_allowed = min(product.max_per_order, current_app.config["MAX_KEYS_PER_ORDER"])
    if not product.min_per_order <= quantity <= max_allowed:
        raise InvalidQuantity()


def _place(product_slug, quantity, email, password_hash, gateway, client_ip, locale, coupon_code,
           device_hash, captcha_solved) -> Order:
    product = _product_on_sale(product_slug)
    _check_quantity(product, quantity)
    if product.require_query_password and password_hash is None:
        raise QueryPasswordRequired()

    now = clock.now()
    email = (email or "").strip().lower() or None
    signals = risk.Signals(risk.CHECKOUT, client_ip, device_hash, email, product.merchant_id, product, quantity, now=now)
    risk.serialise_buyer(signals)
    verdict = risk.check(signals, captcha_solved)
    price = coupons.quote(product, quantity, coupon_code, now)
    unit_price = product.unit_price_for(quantity)
    expires_at = now + timedelta(minutes=settings.order_ttl_minutes())
    order = Order(
        number=new_order_number(now),
        token=secrets.token_hex(16),
        product_id=product.id,
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
    )
    db.session.add(order)
    db.session.flush()
    if product.uses_key_stock:
        if not stock.reserve_keys(order, quantity, until=expires_at, now=now):
            raise OutOfStock()
    elif product.delivery_type == DELIVERY_AUTO and stock.shared_key(product.id) is None:
        raise OutOfStock()
    if verdict.hits:
        risk.add_event(signals, verdict, order_id=order.id, captcha_solved=captcha_solved)
        risk.flag_order(order, verdict)
    if price.coupon is not None:
        # Last, so the coupon's row lock is held only for the commit.
        coupons.consume_use(price.coupon, now)
    return order


def order_by_token(token: str) -> Order | None:
    if not token or len(token) != 32:
        return None
    return db.session.execute(
        select(Order).where(Order.token == token).options(joinedload(Order.product))
    ).scalar_one_or_none()
