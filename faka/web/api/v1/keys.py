"""Card keys: a product's stock. Import keys in batches, with the back office import's
report (added, repeated in the batch, already in stock, invalid); count them by state;
void keys known to have leaked. The API never returns a key: counts only (the back
office shows keys only in an export the merchant re-enters their password for)."""

from flask import g

from faka.catalog import products, variants
from faka.inventory import keys as key_service
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.resource import Resource

bp = Resource(
    "keys",
    __name__,
    description="A product's card keys (its stock for automatic delivery), per variant: each variant sells from "
    "its own keys. Name the variant (`variant`, its key) when the product has several; a product with one needs "
    "none. Keys are stored encrypted and never come back out of the API: answers carry counts only.",
)


def _variant(slug: str, key: str | None):
    """The merchant's product's variant named by `key` (or its only one), else NotFound
    or VariantRequired (422 `variant_required`)."""
    product = products.get_product(g.merchant.id, slug)
    return variants.pick(product, key)


def _stock(variant) -> dict[str, int]:
    return key_service.stock_by_status(variant.product_id, variant.id)


@bp.get("/products/<slug>/keys")
@requires("keys:read")
@bp.arguments(s.VariantArgsSchema, location="query")
@bp.response(200, s.StockSchema)
def count_keys(args, slug):
    """Count a variant's keys by state

    `available` keys are for sale, `reserved` ones held by unpaid orders, `sold` ones delivered, `void` ones
    withdrawn. The product's `variants` carry the same counts for each variant.
    """
    return _stock(_variant(slug, args["variant"]))


@bp.post("/products/<slug>/keys")
@requires("keys:write")
@idempotent
@bp.arguments(s.KeyBatchSchema)
@bp.response(201, s.ImportReportSchema)
def import_keys(data, slug):
    """Import keys

    Into one variant's stock. One key an item, up to 2,000 a call (send more in several calls). Each is trimmed;
    empty ones are skipped. Keys already in the product's stock (any of its variants), repeated in the batch,
    longer than 2,000 characters or holding control characters are not added, and counted in the report. A batch
    is added whole or not at all.
    """
    variant = _variant(slug, data["variant"])
    batch = [key.strip() for key in data["keys"] if key.strip()]
    report = key_service.import_key_list(variant.product_id, variant.id, batch)
    return {
        "added": report.added,
        "duplicate_in_batch": report.duplicate_in_batch,
        "already_in_stock": report.already_in_stock,
        "invalid": report.invalid,
        "stock": _stock(variant),
    }, 201


@bp.post("/products/<slug>/keys/void")
@requires("keys:write")
@bp.arguments(s.KeyBatchSchema)
@bp.response(200, s.VoidReportSchema)
def void_keys(data, slug):
    """Void keys

    Withdraw these keys of a variant from sale (say, ones known to have leaked). Only available keys are voided;
    reserved and sold ones stay as they are. Answers how many were voided.
    """
    variant = _variant(slug, data["variant"])
    voided = key_service.void_keys(variant, "\n".join(data["keys"]))
    return {"voided": voided, "stock": _stock(variant)}
