"""Placing an order from the product page."""
from flask import Blueprint, abort, redirect, render_template, request, url_for

from faka.blueprints.forms import CheckoutForm
from faka.extensions import limiter
from faka.i18n import current_language
from faka.services import catalog, checkout
from faka.services.errors import DomainError, NotFound, OutOfStock

bp = Blueprint("checkout", __name__)


def _checkout_limit():
    from flask import current_app

    return current_app.config["RATELIMIT_CHECKOUT"]


@bp.post("/p/<slug>/buy")
@limiter.limit(_checkout_limit)
def buy(slug: str):
    try:
        listing = catalog.product_listing(slug)
    except NotFound:
        abort(404)
    form = CheckoutForm()
    error = None
    if form.validate_on_submit():
        try:
            order = checkout.place_order(
                slug,
                form.quantity.data,
                form.email.data,
                form.query_password.data,
                client_ip=request.remote_addr,
                locale=current_language(),
            )
        except DomainError as exc:
            error = exc
        else:
            return redirect(url_for("pay.start", token=order.token), 303)
        listing = catalog.product_listing(slug)  # fresh stock for the message
    status = 409 if isinstance(error, OutOfStock) else 400
    return (
        render_template("catalog/product.html", listing=listing, product=listing.product, form=form, error=error),
        status,
    )
