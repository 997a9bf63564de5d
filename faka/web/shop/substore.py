"""A reseller's sub-store (分站) as a buyer sees it: the store's page at /s/<code> and its
product pages at /s/<code>/p/<slug> (or / and /p/<slug> on the store's own domain:
faka/web/substore_host.py). The buy form posts to the platform's checkout with the
store's code; the order, its payment and its keys are the platform's as usual."""

from flask import Blueprint, abort, g, make_response, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from faka.catalog import checkout_fields
from faka.core.cache import cached_page
from faka.core.errors import DomainError, NotFound, OutOfStock
from faka.growth import storefront
from faka.growth.resale import CouponsNotAccepted, NotResold, SubStoreClosed
from faka.orders import checkout
from faka.orders.coupons import Quote
from faka.payments.gateways import enabled_gateways
from faka.risk import engine
from faka.web.forms import CheckoutForm
from faka.web.i18n import current_language
from faka.web.security import image_response, not_modified

bp = Blueprint("substore", __name__)

CLOSED_TITLE = _l("This store is not open")
CLOSED_MESSAGE = _l("The store you are looking for is not open at the moment. Please try again later.")


def on_own_domain(code: str) -> bool:
    """Whether this request came in on the store's own domain (faka/web/substore_host.py)."""
    return g.get("substore_host") == code


def store_url(store, slug: str | None = None, **args) -> str:
    """The address of the store's page, or of a product in it: / and /p/<slug> on the
    store's own domain, /s/<code>/... on the platform's."""
    if on_own_domain(store.code):
        return url_for("catalog.product", slug=slug, **args) if slug else url_for("catalog.home", **args)
    if slug:
        return url_for("substore.product", code=store.code, slug=slug, **args)
    return url_for("substore.store", code=store.code, **args)


bp.add_app_template_global(store_url, "store_url")


def _closed():
    response = make_response(render_template("errors/error.html", title=CLOSED_TITLE, message=CLOSED_MESSAGE), 404)
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.get("/s/<code>")
def store(code: str):
    code = code.lower()
    try:
        return cached_page(
            ("substore", code, on_own_domain(code), current_language()),
            lambda: render_template("substore/store.html", page=storefront.store_page(code)),
        )
    except SubStoreClosed:
        return _closed()
    except NotFound:
        abort(404)


@bp.get("/s/<code>/p/<slug>")
def product(code: str, slug: str):
    code = code.lower()
    wanted = request.args.get("v")
    # Only a key of one of the store's variants gets a page of its own (made-up keys
    # cannot fill the cache): any other is the page as it opens.
    variant = wanted if wanted and len(wanted) <= 32 else None
    try:
        if variant is not None and variant not in _offered_keys(code, slug):
            variant = None
        return cached_page(
            ("substore-product", code, slug, variant, on_own_domain(code), current_language()),
            lambda: _render_product(storefront.product_page(code, slug), variant),
        )
    except SubStoreClosed:
        return _closed()
    except (NotFound, NotResold):
        abort(404)


def _offered_keys(code: str, slug: str) -> set[str]:
    return {offer.variant.key for offer in storefront.product_page(code, slug).offers}


def _form(page: storefront.StoreProductPage, chosen: storefront.StoreOffer) -> CheckoutForm:
    form = CheckoutForm(quantity=chosen.variant.min_per_order, variant=chosen.variant.key, meta={"csrf": False})
    form.gateway.choices = enabled_gateways()
    form.gateway.data = form.gateway.choices[0][0] if form.gateway.choices else None
    return form


def _opening_quote(chosen: storefront.StoreOffer) -> Quote:
    """What the chosen variant costs at its smallest quantity, at the store's price (no
    tier prices, no coupons in a store)."""
    total = chosen.price * chosen.variant.min_per_order
    return Quote(total, 0, total, None, chosen.variant)


def _render_product(page: storefront.StoreProductPage, variant: str | None, **context) -> str:
    chosen = page.chosen(variant)
    return render_template(
        "substore/product.html",
        page=page,
        store=page.store,
        product=page.product,
        chosen=chosen,
        form=context.pop("form", None) or _form(page, chosen),
        # Always given: without one the price partials would show the merchant's own price.
        quote=context.pop("quote") if "quote" in context else _opening_quote(chosen),
        **context,
    )


def buy_refused(slug: str, code: str, form: CheckoutForm, error: DomainError | None, answers: dict[str, str]):
    """The store's product page again, with what went wrong with the buyer's order
    (checkout.buy sends a store's refused order here)."""
    try:
        page = storefront.product_page(code, slug)
    except SubStoreClosed:
        return _closed()
    except (NotFound, NotResold):
        response = make_response(
            render_template("errors/error.html", title=CLOSED_TITLE, message=NotResold.message), 404
        )
        response.headers["Cache-Control"] = "no-store"
        return response
    status = 409 if isinstance(error, OutOfStock) else 403 if isinstance(error, engine.Blocked) else 400
    answer_errors = (
        error.errors
        if isinstance(error, checkout_fields.InvalidAnswers)
        else checkout_fields.answer_errors(page.product.checkout_fields, answers, current_language())
    )
    chosen = page.chosen(form.variant.data)
    form.variant.data = chosen.variant.key
    quote, quote_error = None, None
    if isinstance(error, CouponsNotAccepted):
        quote_error, error = error.message, None
    elif not form.quantity.errors:
        try:
            quote = checkout.price_preview(
                slug, form.quantity.data, None, variant_key=chosen.variant.key, substore_code=code
            )
        except DomainError as exc:
            quote_error = exc.message
    response = make_response(
        _render_product(
            page,
            chosen.variant.key,
            form=form,
            quote=quote,
            quote_error=quote_error,
            error=error,
            captcha_needed=isinstance(error, engine.CaptchaRequired),
            answers=answers,
            answer_errors=answer_errors,
        ),
        status,
    )
    response.headers["Cache-Control"] = "no-store"  # the form comes back with the buyer's query password
    return response


@bp.get("/s/<code>/logo/<name>")
def logo(code: str, name: str):
    """The store's logo: only the file the store shows is served from the storage."""
    if (unchanged := not_modified(name)) is not None:
        return unchanged  # the browser has the bytes: whether the store still shows them does not matter
    stored = storefront.logo_file(code, name)
    if stored is None:
        abort(404)
    return image_response(stored, private=False)
