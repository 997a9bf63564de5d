"""Products: list, read, create, update, hide and show; and the categories a product may
be put in. The same service as the back office's product form (faka/catalog/products.py):
the same rules, the same messages."""

import dataclasses

from flask import current_app, g, url_for
from flask_babel import lazy_gettext as _l

from faka.catalog import products, variants
from faka.core.errors import NotFound
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_rows
from faka.web.api.v1.resource import Resource

bp = Resource(
    "products",
    __name__,
    description="Your products, as on the back office's product pages. A product's `id` is its public id, "
    "the one in its shop address (/p/<id>).",
)

LOCATION = {"Location": {"description": "The product's address in this API.", "schema": {"type": "string"}}}
STOCK_STATES = ("available", "reserved", "sold", "void")


def tiers_answer(variant) -> list[dict]:
    return [{"min_quantity": t.min_quantity, "unit_price": t.unit_price} for t in variant.tiers]


def variant_answer(variant, stock: dict[str, int]) -> dict:
    return {
        "key": variant.key,
        "name": variant.name,
        "name_en": variant.name_en,
        "price": variant.price,
        "min_per_order": variant.min_per_order,
        "max_per_order": variant.max_per_order,
        "low_stock_threshold": variant.low_stock_threshold,
        "position": variant.position,
        "tiers": tiers_answer(variant),
        "stock": {state: stock.get(state, 0) for state in STOCK_STATES},
    }


def product_answer(row: products.ProductRow) -> dict:
    """A product as the API shows it (never its fixed content: only whether it has one).
    Its figures are its one variant's; with several, they are each variant's alone."""
    product = row.product
    answer = {field: getattr(product, field) for field in s.ProductSchema().fields if hasattr(product, field)}
    one = None if product.has_choice else product.live_variants[0]
    answer.update(
        slug=product.slug,
        currency=current_app.config["CURRENCY"],
        min_per_order=one and one.min_per_order,
        max_per_order=one and one.max_per_order,
        low_stock_threshold=one and one.low_stock_threshold,
        tiers=one and tiers_answer(one),
        has_fixed_content=product.fixed_content_ciphertext is not None,
        stock={state: row.stock.get(state, 0) for state in STOCK_STATES},
        variants=[variant_answer(r.variant, r.stock) for r in row.variants],
    )
    return answer


def one_product(slug: str) -> dict:
    """One of the merchant's products as the API shows it (another merchant's: NotFound)."""
    rows = products.merchant_products(g.merchant.id, slug=slug)
    if not rows:
        raise NotFound()
    return product_answer(rows[0])


FIGURES = ("price", "min_per_order", "max_per_order", "tiers", "low_stock_threshold")
HAS_VARIANTS = _l(
    "This product has several variants: change the price, limits, tier prices and low-stock alert of each "
    "through /products/<id>/variants."
)


def _draft(values: dict, product=None) -> products.ProductDraft:
    """The draft to save: the product as it is (every field the draft has, including
    those this API does not show), with `values` written over it."""
    current = {}
    if product is not None:
        one = product.live_variants[0]
        current = {
            f.name: getattr(product, f.name)
            for f in dataclasses.fields(products.ProductDraft)
            if hasattr(product, f.name)
        }
        current.update(
            {name: getattr(one, name) for name in variants.VARIANT_FIELDS},
            tiers=[(t.min_quantity, t.unit_price) for t in one.tiers],
            fixed_content=None,  # keeps the stored content
            position=None,  # keeps its place
        )
        given = sorted(name for name in FIGURES if name in values)
        if product.has_choice and given:
            # Silently ignoring them would leave a program believing it changed a price.
            raise ApiError(422, "has_variants", HAS_VARIANTS, {name: [str(HAS_VARIANTS)] for name in given})
    given = dict(values)
    if "tiers" in given:
        given["tiers"] = [(t["min_quantity"], t["unit_price"]) for t in given["tiers"]]
    return products.ProductDraft(**{**current, **given})


@bp.get("/categories")
@requires("products:read")
@bp.response(200, s.CategoryListSchema)
def list_categories():
    """The categories a new product may be put in

    The operator's visible categories, in their order. Hidden ones keep their products but take no new ones.
    """
    return {"items": products.categories()}


@bp.get("/products")
@requires("products:read")
@bp.arguments(s.PageArgsSchema, location="query")
@bp.response(200, s.ProductPageSchema)
def list_products(args):
    """List your products

    Oldest first, with their stock. Deleted products are left out.
    """
    rows = products.merchant_products(g.merchant.id)
    page = page_of_rows(rows, args["cursor"], args["limit"], key=lambda row: row.product.id)
    page["items"] = [product_answer(row) for row in page["items"]]
    return page


@bp.post("/products")
@requires("products:write")
@idempotent
@bp.arguments(s.ProductCreateSchema)
@bp.response(201, s.ProductSchema, headers=LOCATION)
def create_product(data):
    """Create a product

    Text with a prohibited word sends the product to the operator's moderation (`moderation`: pending)
    instead of the shop. A `fixed` product needs `fixed_content`.
    """
    product = products.save_product(g.merchant.id, _draft(data))
    return one_product(product.slug), 201, {"Location": url_for(".get_product", slug=product.slug)}


@bp.get("/products/<slug>")
@requires("products:read")
@bp.response(200, s.ProductSchema)
def get_product(slug):
    """Read a product"""
    return one_product(slug)


@bp.patch("/products/<slug>")
@requires("products:write")
@bp.arguments(s.ProductUpdateSchema)
@bp.response(200, s.ProductSchema)
def update_product(data, slug):
    """Update a product

    Send only what changes. An edit of a product the operator rejected or took down sends it to moderation again.
    """
    product = products.get_product(g.merchant.id, slug)
    products.save_product(g.merchant.id, _draft(data, product), slug=slug)
    return one_product(slug)


@bp.post("/products/<slug>/hide")
@requires("products:write")
@bp.response(200, s.ProductSchema)
def hide_product(slug):
    """Take a product off sale

    It stays in your list with its stock and orders; `show` puts it back on sale.
    """
    products.set_visible(g.merchant.id, slug, False)
    return one_product(slug)


@bp.post("/products/<slug>/show")
@requires("products:write")
@bp.response(200, s.ProductSchema)
def show_product(slug):
    """Put a product on sale again"""
    products.set_visible(g.merchant.id, slug, True)
    return one_product(slug)
