"""The storefront: home and product pages."""
from flask import Blueprint, abort, render_template

from faka.blueprints.forms import CheckoutForm
from faka.i18n import current_language
from faka.pagecache import cached_page
from faka.services import catalog
from faka.services.errors import NotFound

bp = Blueprint("catalog", __name__)


@bp.get("/")
def home():
    return cached_page(("home", current_language()), lambda: render_template("catalog/home.html", sections=catalog.storefront()))


@bp.get("/p/<slug>")
def product(slug: str):
    return cached_page(("product", slug, current_language()), lambda: _render_product(slug))


def _render_product(slug: str) -> str:
    try:
        listing = catalog.product_listing(slug)
    except NotFound:
        abort(404)
    form = CheckoutForm(quantity=listing.product.min_per_order, meta={"csrf": False})  # token added per visitor
    return render_template("catalog/product.html", listing=listing, product=listing.product, form=form)
