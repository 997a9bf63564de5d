"""Checkout fields: what a product asks the buyer at checkout (a game UID, a server, an
account). The same service as the back office's fields page (faka/catalog/checkout_fields.py):
at most five a product, patterns checked so they cannot take long to match, the same messages.
A field's `id` is its public key."""

from flask import g, url_for

from faka.catalog import checkout_fields
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.resource import Resource

bp = Resource(
    "checkout-fields",
    __name__,
    description="What a product asks the buyer at checkout, in the order the buyer sees them; at most "
    f"{checkout_fields.MAX_FIELDS} a product. Answers are checked at checkout; orders keep the question as it "
    "was asked.",
)

LOCATION = {"Location": {"description": "The field's address in this API.", "schema": {"type": "string"}}}


def _draft(values: dict, field=None) -> checkout_fields.FieldDraft:
    """A draft of the field as it is (when updating) with `values` written over it."""
    current = {}
    if field is not None:
        current = {
            name: getattr(field, name)
            for name in (
                "label",
                "label_en",
                "kind",
                "required",
                "choices",
                "pattern",
                "pattern_message",
                "pattern_message_en",
                "help_text",
                "help_text_en",
            )
        }
    given = dict(values)
    if "choices" in given:
        given["choices"] = "\n".join(given["choices"] or [])
    return checkout_fields.FieldDraft(**{**current, **given})


@bp.get("/products/<slug>/fields")
@requires("products:read")
@bp.response(200, s.CheckoutFieldListSchema)
def list_fields(slug):
    """List a product's checkout fields"""
    _product, fields = checkout_fields.product_fields(g.merchant.id, slug)
    return {"items": fields}


@bp.post("/products/<slug>/fields")
@requires("products:write")
@idempotent
@bp.arguments(s.CheckoutFieldCreateSchema)
@bp.response(201, s.CheckoutFieldSchema, headers=LOCATION)
def create_field(data, slug):
    """Add a checkout field

    After the product's others. A `choice` needs `choices`; a `pattern` is a regular expression the whole answer
    must match, refused when it could take long to check.
    """
    field = checkout_fields.add_field(g.merchant.id, slug, _draft(data))
    return field, 201, {"Location": url_for(".get_field", slug=slug, key=field.key)}


@bp.get("/products/<slug>/fields/<key>")
@requires("products:read")
@bp.response(200, s.CheckoutFieldSchema)
def get_field(slug, key):
    """Read a checkout field"""
    _product, field = checkout_fields.get_field(g.merchant.id, slug, key)
    return field


@bp.patch("/products/<slug>/fields/<key>")
@requires("products:write")
@bp.arguments(s.CheckoutFieldUpdateSchema)
@bp.response(200, s.CheckoutFieldSchema)
def update_field(data, slug, key):
    """Change a checkout field

    Send only what changes. Orders already placed keep the question as it was asked.
    """
    _product, field = checkout_fields.get_field(g.merchant.id, slug, key)
    return checkout_fields.update_field(g.merchant.id, slug, key, _draft(data, field))


@bp.delete("/products/<slug>/fields/<key>")
@requires("products:write")
@bp.response(204)
def delete_field(slug, key):
    """Remove a checkout field

    The answers orders already hold stay with them.
    """
    checkout_fields.remove_field(g.merchant.id, slug, key)
    return ""


@bp.post("/products/<slug>/fields/<key>/move")
@requires("products:write")
@bp.arguments(s.MoveSchema)
@bp.response(200, s.CheckoutFieldListSchema)
def move_field(data, slug, key):
    """Move a checkout field one place up or down

    Answers the product's fields in their new order.
    """
    checkout_fields.move_field(g.merchant.id, slug, key, data["direction"])
    _product, fields = checkout_fields.product_fields(g.merchant.id, slug)
    return {"items": fields}
