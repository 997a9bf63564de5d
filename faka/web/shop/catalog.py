"""The storefront: home, product and shop pages, their reviews, and the operator's policies."""

from flask import Blueprint, abort, current_app, make_response, render_template, request
from flask_babel import lazy_gettext as _l

from faka.catalog import images, moderation, search, storefront
from faka.core.cache import PAGES, SEARCHES, cached_page
from faka.core.errors import DomainError, NotFound
from faka.core.uploads import stored_image
from faka.extensions import limiter
from faka.payments.gateways import enabled_gateways
from faka.platform.settings import cached_site_settings
from faka.reviews.reviews import SORTS
from faka.web.forms import CheckoutForm, ReportForm
from faka.web.htmx import wants_partial
from faka.web.i18n import current_language
from faka.web.pagination import page_number
from faka.web.security import image_response, not_modified
from faka.web.shop.share import share_card

bp = Blueprint("catalog", __name__)


@bp.get("/")
def home():
    """All goods on sale, or those a search, a category tab and an order pick, a page at a
    time (faka/catalog/search.py)."""
    params = _search_args()
    return cached_page(
        ("home", params, current_language()),
        lambda: render_template("catalog/home.html", results=search.find_products(params)),
        store=_store(params),
    )


def _search_args() -> search.Search:
    return search.Search.of(
        request.args.get("q"), request.args.get("category"), request.args.get("sort"), page_number()
    )


def _store(params: search.Search) -> str:
    # Only the lists as they open (in any order) go to the main cache: a query, a category
    # or a page number can be anything, and must not push the home page out
    # (faka/core/cache.py).
    return PAGES if params.plain else SEARCHES


@bp.get("/p/<slug>")
def product(slug: str):
    variant = _variant_in_url(slug)
    return cached_page(("product", slug, variant, current_language()), lambda: _render_product(slug, variant))


def _variant_in_url(slug: str) -> str | None:
    """The variant a `?v=<key>` link preselects, when the key is one of this product's:
    only those get a cached page of their own, so made-up keys cannot fill the cache. (One
    small query per such link, not cached either: the keys of unknown slugs would be.)"""
    wanted = request.args.get("v")
    if not wanted or len(wanted) > 32:
        return None
    return wanted if wanted in storefront.offered_variant_keys(slug) else None


def _render_product(slug: str, variant: str | None = None) -> str:
    try:
        page = storefront.product_page(slug)
    except NotFound:
        abort(404)
    product = page.listing.product
    chosen = page.listing.chosen(variant)
    # The token is added per visitor; the chosen variant's smallest quantity to start with.
    form = CheckoutForm(
        quantity=chosen.variant.min_per_order if chosen else 1,
        variant=chosen.variant.key if chosen and product.has_choice else None,
        meta={"csrf": False},
    )
    form.gateway.choices = enabled_gateways()
    form.gateway.data = form.gateway.choices[0][0] if form.gateway.choices else None
    return render_template(
        "catalog/product.html",
        listing=page.listing,
        product=product,
        chosen=chosen,
        form=form,
        reputation=page.reputation,
        reviews=page.reviews,
    )


@bp.get("/shop/<public_id>")
def shop(public_id: str):
    params = _search_args()
    return cached_page(
        ("shop", public_id, params, current_language()), lambda: _render_shop(public_id, params), store=_store(params)
    )


def _render_shop(public_id: str, params: search.Search) -> str:
    try:
        page = search.shop_catalogue(public_id, params)
    except NotFound:
        abort(404)
    return render_template(
        "catalog/shop.html",
        shop=page.shop.merchant,
        reputation=page.shop.reputation,
        results=page.results,
        reviews=page.shop.reviews,
    )


def _list_args() -> tuple[str, int]:
    sort = request.args.get("sort", "newest")
    return (sort if sort in SORTS else "newest"), page_number()


def _reviews_response(key: tuple, render):
    """The reviews list: the partial for an HTMX swap inside a page, a page of its own for
    a plain (or boosted) link. The URL is the same, so caches must tell them apart."""
    partial = wants_partial()
    response = make_response(cached_page(key + (partial, current_language()), lambda: render(partial)))
    response.vary.add("HX-Request")
    return response


@bp.get("/p/<slug>/reviews")
def product_reviews(slug: str):
    sort, page = _list_args()

    def render(partial: bool) -> str:
        try:
            product, reviews = storefront.product_reviews(slug, sort, page)
        except NotFound:
            abort(404)
        return render_template(
            "catalog/_reviews.html" if partial else "catalog/reviews.html",
            reviews=reviews,
            product=product,
            list_endpoint="catalog.product_reviews",
            list_args={"slug": slug},
        )

    return _reviews_response(("product-reviews", slug, sort, page), render)


@bp.get("/shop/<public_id>/reviews")
def shop_reviews(public_id: str):
    sort, page = _list_args()

    def render(partial: bool) -> str:
        try:
            shop, reviews = storefront.shop_reviews(public_id, sort, page)
        except NotFound:
            abort(404)
        return render_template(
            "catalog/_reviews.html" if partial else "catalog/reviews.html",
            reviews=reviews,
            shop=shop,
            list_endpoint="catalog.shop_reviews",
            list_args={"public_id": public_id},
        )

    return _reviews_response(("shop-reviews", public_id, sort, page), render)


def _report_limit():
    return current_app.config["RATELIMIT_REPORT"]


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
    """The site logo: only the file the operator chose is served from the storage."""
    if not name or name != cached_site_settings().get("logo"):
        abort(404)
    if (unchanged := not_modified(name)) is not None:
        return unchanged
    stored = stored_image(name)
    if stored is None:
        abort(404)
    return image_response(stored, private=False)


# The product page's Open Graph tags, from the listing it already has (templates/catalog/product.html).
bp.add_app_template_global(share_card, "share_card")
bp.add_app_template_filter(images.initial, "initial")  # a product without a picture shows its initial


@bp.get("/images/<name>")
def product_image(name: str):
    """A product image file, named by the hash of its bytes: its content never changes, so
    browsers and proxies keep it for a year. Only names of images of products on sale are
    served; any other name is a 404 that never touches the storage."""
    if (unchanged := not_modified(name, immutable=True)) is not None:
        return unchanged  # the browser has the bytes: whether they are still shown does not matter
    stored = storefront.product_image_file(name)
    if stored is None:
        abort(404)
    return image_response(stored, private=False, immutable=True)


# -- the operator's policies --------------------------------------------------------------

# Setting key -> the page's title; each policy is a page of its own, linked from every
# page's footer (templates/_site_footer.html).
POLICIES = {
    "terms": _l("Terms of service"),
    "refund_policy": _l("Refund policy"),
    "privacy_policy": _l("Privacy policy"),
}
# The setting behind each policy page's endpoint, for the console's settings page.
POLICY_PAGES = {"terms": "catalog.terms", "refund_policy": "catalog.refund_policy", "privacy_policy": "catalog.privacy"}


@bp.get("/terms", endpoint="terms", defaults={"key": "terms"})
@bp.get("/refund-policy", endpoint="refund_policy", defaults={"key": "refund_policy"})
@bp.get("/privacy", endpoint="privacy", defaults={"key": "privacy_policy"})
def policy(key: str):
    """The operator's text as sanitised Markdown, or a line saying it is not published yet."""
    return cached_page(
        ("policy", key, current_language()),
        lambda: render_template("catalog/policy.html", title=POLICIES[key], text=cached_site_settings()[key]),
    )
