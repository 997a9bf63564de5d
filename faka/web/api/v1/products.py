"""Products: list, read, create, update, hide and show; and the categories a product may
be put in. The same service as the back office's product form (faka/catalog/products.py):
the same rules, the same messages."""

import dataclasses

from flask import current_app, g, url_for

from faka.catalog import products
from faka.inventory import keys as key_service
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
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


def product_answer(product, stock: dict[str, int] | None = None) -> dict:
    """A product as the API shows it (never its fixed content: only whether it has one)."""
    stock = stock if stock is not None else key_service.stock_by_status(product.id)
    answer = {field: getattr(product, field) for field in s.ProductSchema().fields if hasattr(product, field)}
    answer.update(
        slug=product.slug,
        currency=current_app.config["CURRENCY"],
        tiers=[{"min_quantity": t.min_quantity, "unit_price": t.unit_price} for t in product.tiers],
        has_fixed_content=product.fixed_content_ciphertext is not None,
        stock={state: stock.get(state, 0) for state in STOCK_STATES},
    )
    return answer


def _draft(values: dict, product=None) -> products.ProductDraft:
    """The draft to save: the product as it is (every field the draft has, including
    those this API does not show), with `values` written over it."""
    current = {}
    if product is not None:
        current = {
            f.name: getattr(product, f.name)
            for f in dataclasses.fields(products.ProductDraft)
            if hasattr(product, f.name)
        }
        current.update(
            tiers=[(t.min_quantity, t.unit_price) for t in product.tiers],
            fixed_content=None,  # keeps the stored content
            position=None,  # keeps its place
        )
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
    page["items"] = [product_answer(row.product, row.stock) for row in page["items"]]
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
    return product_answer(product), 201, {"Location": url_for(".get_product", slug=product.slug)}


@bp.get("/products/<slug>")
@requires("products:read")
@bp.response(200, s.ProductSchema)
def get_product(slug):
    """Read a product"""
    return product_answer(products.get_product(g.merchant.id, slug))


@bp.patch("/products/<slug>")
@requires("products:write")
@bp.arguments(s.ProductUpdateSchema)
@bp.response(200, s.ProductSchema)
def update_product(data, slug):
    """Update a product

    Send only what changes. An edit of a product the operator rejected or took down sends it to moderation again.
    """
    product = products.get_product(g.merchant.id, slug)
    saved = products.save_product(g.merchant.id, _draft(data, product), slug=slug)
    return product_answer(saved)


@bp.post("/products/<slug>/hide")
@requires("products:write")
@bp.response(200, s.ProductSchema)
def hide_product(slug):
    """Take a product off sale

    It stays in your list with its stock and orders; `show` puts it back on sale.
    """
    return product_answer(products.set_visible(g.merchant.id, slug, False))


@bp.post("/products/<slug>/show")
@requires("products:write")
@bp.response(200, s.ProductSchema)
def show_product(slug):
    """Put a product on sale again"""
    return product_answer(products.set_visible(g.merchant.id, slug, True))
