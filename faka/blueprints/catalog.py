"""The storefront: home and product pages."""
from flask import Blueprint, abort, current_app, render_template, request, send_file

from faka.blueprints.forms import CheckoutForm, ReportForm
from faka.extensions import limiter
from faka.i18n import current_language
from faka.pagecache import cached_page
from faka.services import catalog, moderation
from faka.services.errors import DomainError, NotFound
from faka.services.settings import cached_site_settings
from faka.services.uploads import image_path

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


def _report_limit():
    return current_app.config.get("RATELIMIT_REPORT", "5 per hour")


@bp.post("/p/<slug>/report")
@limiter.limit(_report_limit)
def report(slug: str):
    """A buyer reports the product to the operators. The product page is cached for every
    visitor, so the answer is a page of its own with a link back."""
    form = ReportForm()
    error = None
    if form.validate_on_submit():
        try:
            moderation.report_product(slug, form.reason.data, form.text.data or "", request.remote_addr)
        except NotFound:
            abort(404)
        except DomainError as exc:
            error = exc.message
        else:
            return render_template("catalog/reported.html", slug=slug, error=None)
    else:
        error = form.text.errors[0] if form.text.errors else moderation.InvalidReport.message
    return render_template("catalog/reported.html", slug=slug, error=error), 400


@bp.get("/site/logo/<name>")
def logo(name: str):
    """The site logo: only the file the operator chose is served from the upload folder."""
    if not name or name != cached_site_settings().get("logo"):
        abort(404)
    path = image_path(name)
    if path is None:
        abort(404)
    return send_file(path, mimetype="image/png" if path.suffix == ".png" else "image/jpeg", max_age=86400)
