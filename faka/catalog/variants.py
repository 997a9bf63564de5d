"""A product's variants (规格): what the buyer chooses between, each with its own price,
tier prices, limits and key pool."""

import secrets

from faka.catalog.models import Product, ProductVariant, TierPrice
from faka.extensions import db


def new_key() -> str:
    return secrets.token_hex(8)


def set_tiers(variant: ProductVariant, tiers: list[tuple[int, int]]) -> None:
    """Replace the variant's tier prices with (min quantity, unit price) pairs."""
    variant.tiers.clear()
    db.session.flush()
    variant.tiers.extend(TierPrice(min_quantity=q, unit_price=p) for q, p in sorted(tiers))


def sync_price_range(product: Product) -> None:
    """Keep the product's lowest and highest variant price, which the storefront lists and
    sorts by, in step with its variants."""
    prices = [v.price for v in product.live_variants] or [product.price]
    product.price, product.price_max = min(prices), max(prices)


def format_tiers(variant: ProductVariant) -> str:
    return ", ".join(f"{t.min_quantity}={t.unit_price // 100}.{t.unit_price % 100:02d}" for t in variant.tiers)


VARIANT_FIELDS = ("price", "min_per_order", "max_per_order", "low_stock_threshold")


def product_with_one_variant(tiers: list[tuple[int, int]] = (), **fields) -> Product:
    """A new Product (not added to the session) with its single variant, from one set of
    fields: those named in VARIANT_FIELDS go to the variant. For the demo seed, benchmarks
    and tests; the back office saves products through faka/catalog/products.py."""
    own = {name: fields.pop(name) for name in VARIANT_FIELDS if name in fields}
    product = Product(price=own["price"], price_max=own["price"], **fields)
    variant = ProductVariant(key=new_key(), **own)
    variant.tiers.extend(TierPrice(min_quantity=q, unit_price=p) for q, p in sorted(tiers))
    product.variants.append(variant)
    return product
