"""A product's variants (规格): what the buyer chooses between, each with its own price,
tier prices, limits and key pool.

Every product has at least one variant. A product with one looks like a product without
any: its figures are edited in the product form (faka/catalog/products.py), and its one
variant may have no name. Once it has several, each is named (Chinese required, English
optional; names distinct), and they are edited here: add, change, delete, move. Deleting
one is soft: it is no longer offered or sold, its unsold keys are voided, and the orders
and keys it already has keep it. The last variant on offer cannot be deleted (delete the
product instead).

Every change keeps the product's price range (`sync_price_range`), which the storefront
lists and sorts by, and sends a variant name with a prohibited word to moderation like a
product's title. Changes lock the product's row, so two tabs adding at once cannot both
pass the checks.
"""

import secrets
import unicodedata
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from faka.catalog import products
from faka.catalog.models import Product, ProductVariant, TierPrice
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.inventory.models import CardKey

UP, DOWN = "up", "down"
NAME_MAX = ProductVariant.NAME_MAX
# Each shows on the product page and in every list of the product: a bound keeps them
# short, and the page small.
MAX_VARIANTS = 50
STOCK_STATES = (CardKey.AVAILABLE, CardKey.RESERVED, CardKey.SOLD, CardKey.VOID)


class InvalidVariant(DomainError):
    """A variant the merchant cannot save; `field` names the input at fault."""

    message = _l("Check the variant.")

    def __init__(self, message=None, field: str = "name"):
        super().__init__(message)
        self.field = field


class LastVariant(DomainError):
    message = _l("A product keeps at least one variant on offer: delete the product instead.")


class TooManyVariants(DomainError):
    message = _l("A product can have at most %(count)s variants.", count=MAX_VARIANTS)


class VariantRequired(DomainError):
    """Keys go into one variant's stock: a product with several needs to be told which."""

    message = _l("Choose the variant these keys are for.")
    field = "variant"


def new_key() -> str:
    return secrets.token_hex(8)


@dataclass
class VariantDraft:
    name: str = ""
    name_en: str | None = None
    price: int = 0  # minor units (fen)
    min_per_order: int = 1
    max_per_order: int = 10
    tiers: list[tuple[int, int]] = field(default_factory=list)  # (min quantity, unit price)
    low_stock_threshold: int = 0


@dataclass(frozen=True)
class VariantRow:
    variant: ProductVariant
    stock: dict[str, int]  # keys by state: available, reserved, sold, void

    @property
    def low(self) -> bool:
        """At or below its low-stock threshold (when one is set)."""
        threshold = self.variant.low_stock_threshold
        return bool(threshold) and self.stock[CardKey.AVAILABLE] <= threshold


# -- reading -----------------------------------------------------------------------------


def variant_rows(product: Product) -> list[VariantRow]:
    """The product's variants on offer, in order, with their tier prices, each with its
    keys counted by state: the same three queries however many variants there are."""
    offered = db.session.scalars(
        select(ProductVariant)
        .where(ProductVariant.product_id == product.id, ProductVariant.deleted_at.is_(None))
        .order_by(ProductVariant.position, ProductVariant.id)
        .options(selectinload(ProductVariant.tiers))
    ).all()
    counts: dict[int, dict[str, int]] = {v.id: dict.fromkeys(STOCK_STATES, 0) for v in offered}
    if counts:
        for variant_id, status, n in db.session.execute(
            select(CardKey.variant_id, CardKey.status, func.count())
            .where(CardKey.product_id == product.id)
            .group_by(CardKey.variant_id, CardKey.status)
        ):
            if variant_id in counts:
                counts[variant_id][status] = n
    return [VariantRow(v, counts[v.id]) for v in offered]


def get_variant(merchant_id: int, slug: str, key: str) -> tuple[Product, ProductVariant]:
    """The merchant's own product and its variant on offer named by `key`, or NotFound."""
    product = products.get_product(merchant_id, slug)
    return product, _one(product, key)


def pick(product: Product, key: str | None) -> ProductVariant:
    """The variant on offer that keys go to (an import, a void, an export): the one named
    by `key`, or with none named, the only one of a product that has one. Raises
    VariantRequired otherwise."""
    offered = product.live_variants
    if key:
        for variant in offered:
            if variant.key == key:
                return variant
        raise VariantRequired()
    if len(offered) != 1:
        raise VariantRequired()
    return offered[0]


def names(product: Product) -> list[str]:
    """Its variants' names, as moderation reads them with the product's text."""
    return [text for v in product.live_variants for text in (v.name, v.name_en or "") if text]


def label(product: Product, variant: ProductVariant | None) -> str:
    """How the back office, alerts and pushes name a variant: "title · variant" for one
    of a product with several, else the title."""
    if variant is None or not variant.name or not product.has_choice:
        return product.title
    return f"{product.title} · {variant.name}"


# -- changing ----------------------------------------------------------------------------


def add_variant(
    merchant_id: int,
    slug: str,
    draft: VariantDraft,
    first_name: str | None = None,
    first_name_en: str | None = None,
) -> ProductVariant:
    """Add a variant after the product's others. A product whose one variant has no name
    yet names it at the same time (`first_name`, `first_name_en`): from now on the buyer
    chooses between them by name."""
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        offered = product.live_variants
        if len(offered) >= MAX_VARIANTS:
            raise TooManyVariants()
        if len(offered) == 1 and not offered[0].name:
            name = _name(first_name, "first_name", required=True)
            name_en = _name(first_name_en, "first_name_en")
            offered[0].name, offered[0].name_en = name, name_en
            _moderate(product, name, name_en)
        values = _clean(draft, offered, None)
        position = max((v.position for v in offered), default=-1) + 1
        variant = ProductVariant(key=new_key(), product=product, position=position, **values)
        db.session.add(variant)
        set_tiers(variant, draft.tiers)
        _moderate(product, variant.name, variant.name_en)
        sync_price_range(product)
    return variant


def update_variant(merchant_id: int, slug: str, key: str, draft: VariantDraft) -> ProductVariant:
    """Change a variant. Orders already placed keep their price and the name chosen."""
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        variant = _one(product, key)
        values = _clean(draft, product.live_variants, variant)
        for name, value in values.items():
            setattr(variant, name, value)
        set_tiers(variant, draft.tiers)
        _moderate(product, variant.name, variant.name_en)
        sync_price_range(product)
    return variant


def delete_variant(merchant_id: int, slug: str, key: str) -> int:
    """Stop offering a variant and void its unsold keys; returns how many. Its orders and
    its sold keys keep it. The last variant on offer stays (LastVariant)."""
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        variant = _one(product, key)
        if len(product.live_variants) == 1:
            raise LastVariant()
        variant.deleted_at = clock.now()
        voided = db.session.execute(
            CardKey.__table__.update()
            .where(CardKey.variant_id == variant.id, CardKey.status == CardKey.AVAILABLE)
            .values(status=CardKey.VOID)
        ).rowcount
        _renumber(product.live_variants)
        sync_price_range(product)
    return voided


def move_variant(merchant_id: int, slug: str, key: str, direction: str) -> None:
    """One place earlier (UP) or later (DOWN) among the options the buyer sees."""
    if direction not in (UP, DOWN):
        raise InvalidVariant(field="direction")
    with write_transaction():
        product = _locked_product(merchant_id, slug)
        variant = _one(product, key)
        offered = product.live_variants
        index = offered.index(variant)
        offered.pop(index)
        offered.insert(max(0, index - 1) if direction == UP else index + 1, variant)
        _renumber(offered)


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


def _locked_product(merchant_id: int, slug: str) -> Product:
    # The product's row is the lock around its variants: two tabs adding at once cannot
    # both pass MAX_VARIANTS or the distinct names.
    product = products.get_product(merchant_id, slug)
    db.session.execute(select(Product.id).where(Product.id == product.id).with_for_update())
    return product


def _one(product: Product, key: str) -> ProductVariant:
    for variant in product.live_variants:
        if variant.key == key:
            return variant
    raise NotFound()


def _renumber(offered: list[ProductVariant]) -> None:
    for position, variant in enumerate(offered):
        variant.position = position


def _name(value: str | None, field_name: str, required: bool = False) -> str | None:
    name = (value or "").strip()
    if len(name) > NAME_MAX or any(unicodedata.category(c) == "Cc" for c in name) or (required and not name):
        raise InvalidVariant(
            _l("Name each variant in 1 to %(count)s characters, e.g. ¥50 or 1 month.", count=NAME_MAX), field_name
        )
    return name or None


def _clean(draft: VariantDraft, offered: list[ProductVariant], variant: ProductVariant | None) -> dict:
    """The columns to store, or InvalidVariant naming the input at fault. `offered` are
    the product's variants on offer; `variant` the one changed (None: a new one)."""
    others = [v for v in offered if v is not variant]
    name = _name(draft.name, "name", required=bool(others)) or ""
    name_en = _name(draft.name_en, "name_en")
    if name and any(v.name.casefold() == name.casefold() for v in others):
        raise InvalidVariant(_l("Another variant of this product is already called “%(name)s”.", name=name), "name")
    if name_en and any((v.name_en or "").casefold() == name_en.casefold() for v in others):
        raise InvalidVariant(
            _l("Another variant of this product is already called “%(name)s”.", name=name_en), "name_en"
        )
    if not 1 <= draft.price <= products.MAX_PRICE:
        raise InvalidVariant(_l("The price must be between 0.01 and 1,000,000."), "price")
    if not 1 <= draft.min_per_order <= draft.max_per_order <= 100:
        raise InvalidVariant(
            _l("Quantities per order must satisfy 1 ≤ minimum ≤ maximum ≤ 100."),
            "max_per_order" if 1 <= draft.min_per_order <= 100 else "min_per_order",
        )
    seen = set()
    for quantity, price in draft.tiers:
        if quantity < 2 or quantity in seen or not 1 <= price <= products.MAX_PRICE:
            raise InvalidVariant(_l("Each tier needs a different quantity of at least 2 and a valid price."), "tiers")
        seen.add(quantity)
    if not 0 <= draft.low_stock_threshold <= 100000:
        raise InvalidVariant(_l("The low-stock alert must be a whole number from 0 to 100,000."), "low_stock_threshold")
    return {
        "name": name,
        "name_en": name_en,
        "price": draft.price,
        "min_per_order": draft.min_per_order,
        "max_per_order": draft.max_per_order,
        "low_stock_threshold": draft.low_stock_threshold,
    }


def _moderate(product: Product, *texts: str | None) -> None:
    """A variant name with a prohibited word sends the product to moderation, as its title
    would. A clean name never approves a product that waits for the operator."""
    hits = products.prohibited_hits(*(t or "" for t in texts))
    if hits:
        known = [w for w in (product.moderation_reason or "").split(", ") if w]
        product.moderation = products.MODERATION_PENDING
        product.moderation_reason = ", ".join(known + [w for w in hits if w not in known])


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
