"""Placing an order from the product page, and the page's live price preview."""

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for

from faka.catalog import checkout_fields, storefront
from faka.core.errors import DomainError, NotForSale, NotFound, OutOfStock
from faka.extensions import limiter
from faka.orders import checkout
from faka.orders.coupons import CouponInvalid
from faka.payments.gateways import GatewayUnavailable, enabled_gateways
from faka.platform.settings import cached_site_settings
from faka.risk import captcha, engine
from faka.web import device
from faka.web.forms import CheckoutForm
from faka.web.htmx import from_htmx
from faka.web.i18n import current_language
from faka.web.shop import referral, substore

bp = Blueprint("checkout", __name__)

# The buy form names each checkout field's input "answer-<field key>"
# (templates/catalog/_checkout_fields.html).
ANSWER_PREFIX = "answer-"


def _checkout_limit():
    return current_app.config["RATELIMIT_CHECKOUT"]


def _quote_limit():
    # Generous for a buyer typing, tight enough to make guessing coupon codes slow.
    return current_app.config["RATELIMIT_QUOTE"]


@bp.post("/p/<slug>/buy")
@limiter.limit(_checkout_limit)
def buy(slug: str):
    """Place the order, or show the product page again with what went wrong (a 404 when
    the product is not on sale: place_order looks it up itself)."""
    form = CheckoutForm()
    form.gateway.choices = enabled_gateways()
    form.terms_required = cached_site_settings()["require_terms_consent"] == "1"
    answers = _answers()
    substore_code = request.form.get("substore") or None  # bought in a reseller's store (/s/<code>)
    error = None
    if form.validate_on_submit():
        try:
            order = checkout.place_order(
                slug,
                form.quantity.data,
                form.email.data,
                form.query_password.data,
                gateway=_chosen_gateway(form),
                client_ip=request.remote_addr,
                device_hash=device.device_hash(),
                locale=current_language(),
                coupon_code=form.coupon.data,
                captcha_solved=captcha.solved(request.form, request.remote_addr, device.device_hash()),
                answers=answers,
                variant_key=form.variant.data or None,
                referral_code=referral.referral_code(),
                substore_code=substore_code,
            )
        except DomainError as exc:
            error = exc
        else:
            return _to_pay_page(order.token)
    if substore_code:
        return substore.buy_refused(slug, substore_code, form, error, answers)
    try:
        page = storefront.product_page(slug)  # fresh stock for the message, with the seller's reputation and reviews
    except NotFound:
        abort(404)
    status = 409 if isinstance(error, OutOfStock) else 403 if isinstance(error, engine.Blocked) else 400
    # Every answer's message, also when the form came back for another reason.
    answer_errors = (
        error.errors
        if isinstance(error, checkout_fields.InvalidAnswers)
        else checkout_fields.answer_errors(page.listing.product.checkout_fields, answers, current_language())
    )
    # The buyer's choice again, unless it is gone or sold out meanwhile (the message says
    # so): the form and its price preview show a variant still on offer.
    chosen = page.listing.chosen(form.variant.data)
    if chosen is not None and page.listing.product.has_choice:
        form.variant.data = chosen.variant.key
    price, quote_error = None, None
    if isinstance(error, CouponInvalid):
        # Shown in the price preview below the coupon field, where HTMX shows it too.
        quote_error, error = error.message, None
    elif not form.quantity.errors:
        try:
            price = checkout.price_preview(
                slug,
                form.quantity.data,
                None if form.coupon.errors else form.coupon.data,
                variant_key=form.variant.data or None,
            )
        except CouponInvalid as exc:
            quote_error = exc.message
        except DomainError:
            pass
    response = make_response(
        render_template(
            "catalog/product.html",
            listing=page.listing,
            product=page.listing.product,
            chosen=chosen,
            form=form,
            error=error,
            quote=price,
            quote_error=quote_error,
            reputation=page.reputation,
            reviews=page.reviews,
            captcha_needed=isinstance(error, engine.CaptchaRequired),
            answers=answers,
            answer_errors=answer_errors,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"  # the form comes back with the buyer's query password
    return response


def _answers() -> dict[str, str]:
    """What the buyer typed into the checkout fields, by field key (checkout checks them
    against the product's fields; anything else is ignored)."""
    return {name[len(ANSWER_PREFIX) :]: value for name, value in request.form.items() if name.startswith(ANSWER_PREFIX)}


def _to_pay_page(token: str):
    """On to faka's own pay page, which sends the buyer to the provider (see
    faka/payments/cashier.py). An htmx request is told to navigate there in full
    (HX-Redirect): the pay page must load as a page of its own."""
    url = url_for("pay.start", token=token)
    if from_htmx():
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url
        return response
    return redirect(url, 303)


def _chosen_gateway(form: CheckoutForm) -> str:
    """The gateway the buyer picked; the only one when there is one. An unknown or
    disabled choice is refused by checkout like any unavailable gateway."""
    names = [name for name, _label in form.gateway.choices]
    if form.gateway.data in names:
        return form.gateway.data
    if len(names) == 1 and not form.gateway.data:
        return names[0]
    raise GatewayUnavailable()


@bp.get("/p/<slug>/quote")
@limiter.limit(_quote_limit)
def preview(slug: str):
    """The price preview for a quantity, coupon and variant: subtotal, discount and total,
    or why the coupon or quantity does not apply. The product page asks for it with HTMX as
    the buyer types or picks a variant."""
    form = CheckoutForm(request.args, meta={"csrf": False})
    substore_code = request.args.get("substore") or None  # the store's price, on a sub-store's page
    price, quote_error, status = None, None, 200
    if not form.validate():
        quote_error = next(iter(form.quantity.errors or form.coupon.errors or form.variant.errors), None)
    if quote_error is None:
        try:
            price = checkout.price_preview(
                slug, form.quantity.data, form.coupon.data, form.variant.data or None, substore_code=substore_code
            )
        except NotForSale as exc:
            quote_error, status = exc.message, 404
        except DomainError as exc:
            quote_error = exc.message
    response = current_app.make_response(
        (
            render_template(
                "catalog/_price_preview.html",
                quote=price,
                quote_error=quote_error,
                update_buy_bar=True,
                update_limits=bool(form.variant.data) and price is not None,
            ),
            status,
        )
    )
    response.headers["Cache-Control"] = "no-store"
    if (
        form.variant.data
        and price is not None
        and request.headers.get("HX-Trigger") == "variants"
        and not substore_code  # a store's page has an address of its own
    ):
        # A link copied or a page reloaded after picking a variant opens with it picked.
        response.headers["HX-Replace-Url"] = url_for("catalog.product", slug=slug, v=form.variant.data)
    return response
