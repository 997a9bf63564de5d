"""The API's request and response shapes (marshmallow), from which the OpenAPI document is
generated. Shared pieces first (text, errors, pages), then each resource's.

Conventions:
- Request schemas refuse unknown fields; response schemas mark what is always present
  as required, so the document says exactly what a program can rely on.
- Money is an integer of minor units (fen), as everywhere in faka.
- Text is `Text`: what a person could type. No control characters (line breaks only
  where the field is multi-line) and no unpaired surrogates; the database could not
  store some of them, and no person types them.
- Lengths the services check with their own messages are documented here (maxLength)
  but left to the service, so the API answers the back office's words.
"""

import marshmallow as ma
from marshmallow import fields, validate

from faka.catalog.models import DELIVERY_TYPES, KIND_TEXT, KINDS
from faka.web.request_guard import MAX_ID

ONE_LINE = r"^[^\x00-\x1f\x7f]*$"
MULTI_LINE = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
MAX_PAGE = 100
DEFAULT_PAGE = 20


class Text(fields.String):
    """A string a person could have typed (see the module's docstring)."""

    default_error_messages = {"control": "Remove control characters.", "surrogate": "Not valid Unicode text."}

    def __init__(self, *, multiline: bool = False, max_length: int | None = None, **kwargs):
        metadata = {"pattern": MULTI_LINE if multiline else ONE_LINE, **kwargs.pop("metadata", {})}
        if max_length is not None:
            metadata.setdefault("maxLength", max_length)
        super().__init__(metadata=metadata, **kwargs)
        self.multiline = multiline

    def _deserialize(self, value, attr, data, **kwargs):
        text = super()._deserialize(value, attr, data, **kwargs)
        try:
            text.encode("utf-8")
        except UnicodeEncodeError:
            raise self.make_error("surrogate") from None
        allowed = "\n\r\t" if self.multiline else ""
        if any((ord(c) < 32 and c not in allowed) or ord(c) == 127 for c in text):
            raise self.make_error("control")
        return text


def Id(**kwargs):  # noqa: N802 - reads as a field type
    """A database id in a request: a whole number from 1 that the database can hold."""
    return fields.Integer(strict=True, validate=validate.Range(1, MAX_ID), **kwargs)


def Count(low: int, high: int, **kwargs):  # noqa: N802 - reads as a field type
    return fields.Integer(strict=True, validate=validate.Range(low, high), **kwargs)


class Schema(ma.Schema):
    """Requests refuse fields they do not know (marshmallow's default, said here)."""

    class Meta:
        unknown = ma.RAISE


# -- errors and pages -------------------------------------------------------------------


class ErrorDetailSchema(Schema):
    code = fields.String(
        required=True,
        metadata={"description": "Stable, for programs: not_found, invalid, unauthorized, rate_limited, ..."},
    )
    message = fields.String(required=True, metadata={"description": "For people, in the key owner's language."})
    field_errors = fields.Dict(
        data_key="fields",
        keys=fields.String(),
        values=fields.List(fields.String()),
        metadata={"description": "Only for invalid input: each input at fault and what is wrong with it."},
    )


class ErrorSchema(Schema):
    error = fields.Nested(ErrorDetailSchema, required=True)


class PageArgsSchema(Schema):
    cursor = Text(
        load_default=None,
        max_length=40,
        metadata={"description": "`next_cursor` of the previous page; leave out for the first page."},
    )
    limit = fields.Integer(
        load_default=DEFAULT_PAGE,
        validate=validate.Range(1, MAX_PAGE),
        metadata={"description": f"Items per page, 1 to {MAX_PAGE}."},
    )


def page_schema(item: type[ma.Schema], name: str) -> type[ma.Schema]:
    """A list answer: `items`, and `next_cursor` to ask for the next page (null at the end)."""
    return Schema.from_dict(
        {
            "items": fields.List(fields.Nested(item), required=True),
            "next_cursor": fields.String(
                required=True, allow_none=True, metadata={"description": "Pass as `cursor` for the next page."}
            ),
        },
        name=name,
    )


# -- products -------------------------------------------------------------------------


SEVERAL = "Its one variant's; null when the product has several (see `variants`)."
FIGURES_OF_ONE = "For a product with one variant only; a product with several takes them per variant."


class TierSchema(Schema):
    min_quantity = Count(2, 9999, required=True)
    unit_price = Count(1, 100_000_000, required=True, metadata={"description": "Minor units (fen)."})


class StockSchema(Schema):
    available = fields.Integer(required=True)
    reserved = fields.Integer(required=True, metadata={"description": "Held by unpaid orders."})
    sold = fields.Integer(required=True)
    void = fields.Integer(required=True)


class CategorySchema(Schema):
    id = fields.Integer(required=True)
    name = fields.String(required=True, metadata={"description": "Chinese."})
    name_en = fields.String(required=True, allow_none=True)


class VariantSchema(Schema):
    key = fields.String(required=True, metadata={"description": "Public id of the variant."})
    name = fields.String(
        required=True,
        metadata={
            "description": "Chinese; what the buyer chooses. Empty for the one variant of a product without a choice."
        },
    )
    name_en = fields.String(required=True, allow_none=True)
    price = fields.Integer(required=True, metadata={"description": "Minor units (fen)."})
    min_per_order = fields.Integer(required=True)
    max_per_order = fields.Integer(required=True)
    low_stock_threshold = fields.Integer(required=True)
    position = fields.Integer(required=True, metadata={"description": "0, 1, 2 ... in the order the buyer sees them."})
    tiers = fields.List(fields.Nested(TierSchema), required=True)
    stock = fields.Nested(StockSchema, required=True)


class ProductSchema(Schema):
    id = fields.String(
        required=True, attribute="slug", metadata={"description": "Public id, as in the shop's address /p/<id>."}
    )
    title = fields.String(required=True)
    category_id = fields.Integer(required=True)
    price = fields.Integer(
        required=True, metadata={"description": "Minor units (fen); with several variants, the lowest of their prices."}
    )
    price_max = fields.Integer(
        required=True, metadata={"description": "The highest variant price (= `price` with one variant)."}
    )
    currency = fields.String(required=True)
    description_md = fields.String(required=True)
    delivery_type = fields.String(required=True, validate=validate.OneOf(DELIVERY_TYPES))
    min_per_order = fields.Integer(required=True, allow_none=True, metadata={"description": SEVERAL})
    max_per_order = fields.Integer(required=True, allow_none=True, metadata={"description": SEVERAL})
    tiers = fields.List(fields.Nested(TierSchema), required=True, allow_none=True, metadata={"description": SEVERAL})
    has_fixed_content = fields.Boolean(
        required=True, metadata={"description": "Fixed delivery: whether the content is set (it is never shown)."}
    )
    manual_promise_hours = fields.Integer(required=True)
    reusable_key = fields.Boolean(required=True)
    require_query_password = fields.Boolean(required=True)
    require_email = fields.Boolean(required=True)
    low_stock_threshold = fields.Integer(required=True, allow_none=True, metadata={"description": SEVERAL})
    refund_policy = fields.String(required=True)
    visible = fields.Boolean(required=True)
    risk_captcha_at = fields.Integer(required=True, allow_none=True)
    risk_hold_at = fields.Integer(required=True, allow_none=True)
    license_checks = fields.Boolean(
        required=True, metadata={"description": "Your software may check the keys it is given (docs/licenses.md)."}
    )
    activation_limit = fields.Integer(
        required=True, allow_none=True, metadata={"description": "Installations per key at once; null: any number."}
    )
    position = fields.Integer(required=True)
    moderation = fields.String(
        required=True, metadata={"description": "approved, pending (waiting for the operator), rejected, taken_down."}
    )
    moderation_reason = fields.String(required=True, allow_none=True)
    stock = fields.Nested(StockSchema, required=True, metadata={"description": "Every variant's keys together."})
    variants = fields.List(
        fields.Nested(VariantSchema),
        required=True,
        metadata={"description": "What the buyer chooses between, in order (one for a product without a choice)."},
    )
    created_at = fields.DateTime(required=True)


def _product_input(required: bool) -> dict:
    """The product fields a request may send: all required ones when creating, any of them
    when updating."""

    def need(**kwargs):
        return {"required": True} if required else kwargs

    return {
        "title": Text(max_length=120, **need()),
        "category_id": Id(**need(), metadata={"description": "From GET /api/v1/categories."}),
        "price": Count(1, 100_000_000, **need(), metadata={"description": "Minor units (fen). " + FIGURES_OF_ONE}),
        "description_md": Text(multiline=True, validate=validate.Length(max=20000)),
        "delivery_type": fields.String(
            validate=validate.OneOf(DELIVERY_TYPES),
            metadata={
                "description": "auto: keys from stock; fixed: the same content for everyone; manual: by hand; "
                "remote: from your server, whose address is set in the back office."
            },
        ),
        "min_per_order": Count(1, 100, metadata={"description": FIGURES_OF_ONE}),
        "max_per_order": Count(1, 100, metadata={"description": FIGURES_OF_ONE}),
        "tiers": fields.List(
            fields.Nested(TierSchema),
            validate=validate.Length(max=20),
            metadata={"description": "Lower unit prices from a quantity on. " + FIGURES_OF_ONE},
        ),
        "fixed_content": Text(
            multiline=True,
            allow_none=True,
            validate=validate.Length(max=5000),
            metadata={"description": "Fixed delivery: what every buyer receives. Write-only; leave out to keep it."},
        ),
        "manual_promise_hours": Count(1, 720),
        "reusable_key": fields.Boolean(),
        "require_query_password": fields.Boolean(),
        "require_email": fields.Boolean(),
        "low_stock_threshold": Count(0, 100000, metadata={"description": FIGURES_OF_ONE}),
        "refund_policy": Text(multiline=True, validate=validate.Length(max=2000)),
        "visible": fields.Boolean(),
        "risk_captcha_at": Count(
            1, 1000, allow_none=True, metadata={"description": "Stricter than the site's; null: the site's."}
        ),
        "risk_hold_at": Count(
            1, 1000, allow_none=True, metadata={"description": "Stricter than the site's; null: the site's."}
        ),
        "license_checks": fields.Boolean(metadata={"description": "Automatic delivery of unshared keys only."}),
        "activation_limit": Count(1, 10_000, allow_none=True, metadata={"description": "null: any number."}),
        "position": Count(0, 1_000_000, metadata={"description": "Lower first; a new product goes last without it."}),
    }


ProductCreateSchema = Schema.from_dict(_product_input(required=True), name="ProductCreate")
ProductUpdateSchema = Schema.from_dict(_product_input(required=False), name="ProductUpdate")
ProductPageSchema = page_schema(ProductSchema, "ProductPage")
CategoryListSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(CategorySchema), required=True)}, name="CategoryList"
)


# -- variants ---------------------------------------------------------------------------


def _variant_input(required: bool) -> dict:
    def need(**kwargs):
        return {"required": True} if required else kwargs

    fields_ = {
        "name": Text(
            max_length=40,
            metadata={"description": "Chinese, what the buyer chooses; required when the product has several."},
        ),
        "name_en": Text(max_length=40, allow_none=True, metadata={"description": "For English pages; optional."}),
        "price": Count(1, 100_000_000, **need(), metadata={"description": "Minor units (fen)."}),
        "min_per_order": Count(1, 100),
        "max_per_order": Count(1, 100),
        "tiers": fields.List(
            fields.Nested(TierSchema),
            validate=validate.Length(max=20),
            metadata={"description": "Lower unit prices from a quantity on."},
        ),
        "low_stock_threshold": Count(
            0, 100000, metadata={"description": "Alert when its available keys fall to this; 0: only when sold out."}
        ),
    }
    if required:
        fields_["name"] = Text(max_length=40, required=True, metadata=fields_["name"].metadata)
        fields_["first_name"] = Text(
            max_length=40,
            allow_none=True,
            metadata={
                "description": "When the product's one variant has no name yet: its name (required then), "
                "for the buyer now chooses between the two."
            },
        )
        fields_["first_name_en"] = Text(max_length=40, allow_none=True)
    return fields_


VariantCreateSchema = Schema.from_dict(_variant_input(required=True), name="VariantCreate")
VariantUpdateSchema = Schema.from_dict(_variant_input(required=False), name="VariantUpdate")
VariantListSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(VariantSchema), required=True)}, name="VariantList"
)


# -- checkout fields --------------------------------------------------------------------


class CheckoutFieldSchema(Schema):
    id = fields.String(required=True, attribute="key", metadata={"description": "Public id of the field."})
    position = fields.Integer(required=True, metadata={"description": "0, 1, 2 ... in the order the buyer sees them."})
    label = fields.String(required=True)
    label_en = fields.String(required=True, allow_none=True)
    kind = fields.String(required=True, validate=validate.OneOf(KINDS))
    required = fields.Boolean(required=True)
    choices = fields.List(fields.String(), required=True, attribute="choice_list")
    pattern = fields.String(required=True, allow_none=True)
    pattern_message = fields.String(required=True, allow_none=True)
    pattern_message_en = fields.String(required=True, allow_none=True)
    help_text = fields.String(required=True, allow_none=True)
    help_text_en = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


def _field_input(required: bool) -> dict:
    return {
        "label": Text(max_length=40, required=True) if required else Text(max_length=40),
        "label_en": Text(max_length=40, allow_none=True),
        "kind": fields.String(validate=validate.OneOf(KINDS), **({"load_default": KIND_TEXT} if required else {})),
        "required": fields.Boolean(),
        "choices": fields.List(
            Text(max_length=60),
            allow_none=True,
            validate=validate.Length(max=20),
            metadata={"description": "For kind `choice`: the options, at most 20."},
        ),
        "pattern": Text(
            max_length=100,
            allow_none=True,
            metadata={"description": "A regular expression the whole answer must match."},
        ),
        "pattern_message": Text(max_length=100, allow_none=True),
        "pattern_message_en": Text(max_length=100, allow_none=True),
        "help_text": Text(max_length=200, allow_none=True),
        "help_text_en": Text(max_length=200, allow_none=True),
    }


CheckoutFieldCreateSchema = Schema.from_dict(_field_input(required=True), name="CheckoutFieldCreate")
CheckoutFieldUpdateSchema = Schema.from_dict(_field_input(required=False), name="CheckoutFieldUpdate")
CheckoutFieldListSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(CheckoutFieldSchema), required=True)}, name="CheckoutFieldList"
)


class MoveSchema(Schema):
    direction = fields.String(required=True, validate=validate.OneOf(("up", "down")))


# -- keys -------------------------------------------------------------------------------

MAX_KEYS_PER_CALL = 2000


VARIANT_CHOICE = "The variant's key (from the product's `variants`): required when the product has several."


class VariantArgsSchema(Schema):
    variant = Text(max_length=16, load_default=None, metadata={"description": VARIANT_CHOICE})


class KeyBatchSchema(Schema):
    keys = fields.List(
        Text(max_length=2000),
        required=True,
        validate=validate.Length(1, MAX_KEYS_PER_CALL),
        metadata={"description": f"One key an item, at most {MAX_KEYS_PER_CALL} a call."},
    )
    variant = Text(max_length=16, allow_none=True, load_default=None, metadata={"description": VARIANT_CHOICE})


class ImportReportSchema(Schema):
    added = fields.Integer(required=True)
    duplicate_in_batch = fields.Integer(required=True, metadata={"description": "Repeated in this batch."})
    already_in_stock = fields.Integer(required=True)
    invalid = fields.Integer(
        required=True, metadata={"description": "Too long (over 2,000 characters) or control characters."}
    )
    stock = fields.Nested(StockSchema, required=True, metadata={"description": "The variant's keys now."})


class VoidReportSchema(Schema):
    voided = fields.Integer(required=True, metadata={"description": "Available keys withdrawn from sale."})
    stock = fields.Nested(StockSchema, required=True, metadata={"description": "The variant's keys now."})
