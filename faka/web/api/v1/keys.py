"""Card keys: a product's stock. Import keys in batches, with the back office import's
report (added, repeated in the batch, already in stock, invalid); count them by state;
void keys known to have leaked. The API never returns a key: counts only (the back
office shows keys only in an export the merchant re-enters their password for)."""

from flask import g

from faka.catalog import products
from faka.inventory import keys as key_service
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.resource import Resource

bp = Resource(
    "keys",
    __name__,
    description="A product's card keys (its stock for automatic delivery). Keys are stored encrypted and never "
    "come back out of the API: answers carry counts only.",
)


def _stock(product_id: int) -> dict[str, int]:
    return key_service.stock_by_status(product_id)


@bp.get("/products/<slug>/keys")
@requires("keys:read")
@bp.response(200, s.StockSchema)
def count_keys(slug):
    """Count a product's keys by state

    `available` keys are for sale, `reserved` ones held by unpaid orders, `sold` ones delivered, `void` ones
    withdrawn.
    """
    product = products.get_product(g.merchant.id, slug)
    return _stock(product.id)


@bp.post("/products/<slug>/keys")
@requires("keys:write")
@idempotent
@bp.arguments(s.KeyBatchSchema)
@bp.response(201, s.ImportReportSchema)
def import_keys(data, slug):
    """Import keys

    One key an item, up to 2,000 a call (send more in several calls). Each is trimmed; empty ones are skipped.
    Keys already in the product's stock, repeated in the batch, longer than 2,000 characters or holding
    control characters are not added, and counted in the report. A batch is added whole or not at all.
    """
    product = products.get_product(g.merchant.id, slug)
    batch = [key.strip() for key in data["keys"] if key.strip()]
    report = key_service.import_key_list(product.id, batch)
    return {
        "added": report.added,
        "duplicate_in_batch": report.duplicate_in_batch,
        "already_in_stock": report.already_in_stock,
        "invalid": report.invalid,
        "stock": _stock(product.id),
    }, 201


@bp.post("/products/<slug>/keys/void")
@requires("keys:write")
@bp.arguments(s.KeyBatchSchema)
@bp.response(200, s.VoidReportSchema)
def void_keys(data, slug):
    """Void keys

    Withdraw these keys from sale (say, ones known to have leaked). Only available keys are voided; reserved
    and sold ones stay as they are. Answers how many were voided.
    """
    product = products.get_product(g.merchant.id, slug)
    voided = key_service.void_keys(product.id, "\n".join(data["keys"]))
    return {"voided": voided, "stock": _stock(product.id)}
