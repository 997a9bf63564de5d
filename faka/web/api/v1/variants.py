"""Variants (规格): what the buyer chooses between on a product (面值 ¥50 / ¥100 / ¥200),
each with its own price, tier prices, limits, low-stock alert and keys. The same service
as the back office's variants (faka/catalog/variants.py): names required and distinct once
there are several, the last one on offer kept, the same messages. A variant's `key` is its
public id."""

from flask import g, url_for

from faka.catalog import products, variants
from faka.inventory import keys as key_service
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.products import variant_answer
from faka.web.api.v1.resource import Resource, document

bp = Resource(
    "variants",
    __name__,
    description="What the buyer chooses between on a product, in the order the buyer sees them; every product has "
    "at least one. With one, the product's own price and limits are that variant's; with several, each is changed "
    "here. Deleting a variant stops selling it and voids its unsold keys; its orders keep it.",
)


def document_errors(*statuses: int):
    def decorate(view):
        document(view, responses=statuses)
        return view

    return decorate


LOCATION = {"Location": {"description": "The variant's address in this API.", "schema": {"type": "string"}}}


def _draft(values: dict, variant=None) -> variants.VariantDraft:
    """A draft of the variant as it is (when updating) with `values` written over it."""
    current = {}
    if variant is not None:
        current = {
            name: getattr(variant, name)
            for name in ("name", "name_en", "price", "min_per_order", "max_per_order", "low_stock_threshold")
        }
        current["tiers"] = [(t.min_quantity, t.unit_price) for t in variant.tiers]
    given = {name: value for name, value in values.items() if name not in ("first_name", "first_name_en")}
    if "tiers" in given:
        given["tiers"] = [(t["min_quantity"], t["unit_price"]) for t in given["tiers"]]
    return variants.VariantDraft(**{**current, **given})


def _answer(variant) -> dict:
    return variant_answer(variant, key_service.stock_by_status(variant.product_id, variant.id))


def _list(slug: str) -> dict:
    product = products.get_product(g.merchant.id, slug)
    return {"items": [variant_answer(row.variant, row.stock) for row in variants.variant_rows(product)]}


@bp.get("/products/<slug>/variants")
@requires("products:read")
@bp.response(200, s.VariantListSchema)
def list_variants(slug):
    """List a product's variants

    Those on offer, in the order the buyer sees them, each with its keys counted by state.
    """
    return _list(slug)


@bp.post("/products/<slug>/variants")
@requires("products:write")
@idempotent
@bp.arguments(s.VariantCreateSchema)
@bp.response(201, s.VariantSchema, headers=LOCATION)
def create_variant(data, slug):
    """Add a variant

    After the product's others. The product then offers a choice: each variant needs a `name`, distinct from the
    others'. A product whose one variant has no name yet needs `first_name` too, its name.
    """
    variant = variants.add_variant(
        g.merchant.id, slug, _draft(data), first_name=data.get("first_name"), first_name_en=data.get("first_name_en")
    )
    return _answer(variant), 201, {"Location": url_for(".get_variant", slug=slug, key=variant.key)}


@bp.get("/products/<slug>/variants/<key>")
@requires("products:read")
@bp.response(200, s.VariantSchema)
def get_variant(slug, key):
    """Read a variant"""
    _product, variant = variants.get_variant(g.merchant.id, slug, key)
    return _answer(variant)


@bp.patch("/products/<slug>/variants/<key>")
@requires("products:write")
@bp.arguments(s.VariantUpdateSchema)
@bp.response(200, s.VariantSchema)
def update_variant(data, slug, key):
    """Change a variant

    Send only what changes. Orders already placed keep their price and the name the buyer chose.
    """
    _product, variant = variants.get_variant(g.merchant.id, slug, key)
    return _answer(variants.update_variant(g.merchant.id, slug, key, _draft(data, variant)))


@bp.delete("/products/<slug>/variants/<key>")
@requires("products:write")
@bp.response(204)
@document_errors(422)
def delete_variant(slug, key):
    """Delete a variant

    It is no longer offered or sold, and its unsold keys are voided; its orders and sold keys keep it. The last
    variant on offer cannot be deleted (422 `last_variant`): delete the product instead.
    """
    variants.delete_variant(g.merchant.id, slug, key)
    return ""


@bp.post("/products/<slug>/variants/<key>/move")
@requires("products:write")
@bp.arguments(s.MoveSchema)
@bp.response(200, s.VariantListSchema)
def move_variant(data, slug, key):
    """Move a variant one place up or down

    Answers the product's variants in their new order.
    """
    variants.move_variant(g.merchant.id, slug, key, data["direction"])
    return _list(slug)
