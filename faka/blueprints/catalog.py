"""The storefront: home and product pages."""
from flask import Blueprint, abort, render_template

from faka.blueprints.forms import CheckoutForm
from faka.services import catalog
from faka.services.errors import NotFound

bp = Blueprint("catalog", __name__)


@bp.get("/")
def home():
    return render_template("catalog/home.html", sections=catalog.storefront())


@bp.get("/p/<slug>")
def product(slug: str):
    try:
        listing = catalog.product_listing(slug)
    except NotFound:
        abort(404)
    form = CheckoutForm(quantity=listing.product.min_per_order)
    return render_template("catalog/product.html", listing=listing, product=listing.product, form=form)
