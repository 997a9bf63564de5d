"""A merchant's products: create, edit, hide, delete (soft), order, with moderation on
prohibited words."""

import re
import secrets
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from faka.catalog import categories as category_service
from faka.catalog import variants
from faka.catalog.models import (
    DELIVERY_AUTO,
    DELIVERY_FIXED,
    DELIVERY_MANUAL,
    DELIVERY_REMOTE,
    DELIVERY_TYPES,
    Category,
    Product,
    ProductVariant,
)
from faka.core import clock
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.platform.settings import site_settings

MAX_PRICE = 100_000_000  # ¥1,000,000.00
MAX_POSITION = 1_000_000
MAX_ACTIVATION_LIMIT = 10_000
MODERATION_APPROVED = "approved"
MODERATION_PENDING = "pending"


class InvalidProduct(DomainError):
    message = _l("Check the product details.")


@dataclass
class ProductDraft:
    """A product's details. Price, limits, tiers and the low-stock threshold are those of
    its single variant; a product with several variants edits them per variant
    (faka/catalog/variants.py) and ignores them here."""

    title: str
    category_id: int
    price: int
    description_md: str = ""
    delivery_type: str = DELIVERY_AUTO
    min_per_order: int = 1
    max_per_order: int = 10
    tiers: list[tuple[int, int]] = field(default_factory=list)  # (min quantity, unit price)
    fixed_content: str | None = None
    # For `remote` delivery: the merchant's server, already through the address guard
    # (faka/orders/remote_delivery.py checked_url: the guard is a layer above this one).
    remote_url: str | None = None
    manual_promise_hours: int = 24
    reusable_key: bool = False
    require_query_password: bool = False
    require_email: bool = False  # checkout refuses an order without an email
    low_stock_threshold: int = 0
    refund_policy: str = ""
    visible: bool = True
    # Stricter risk thresholds (faka/risk/engine.py); None: the site's own.
    risk_captcha_at: int | None = None
    risk_hold_at: int | None = None
    # The merchant's software may check sold keys (faka/inventory/licenses.py), on at most
    # activation_limit instances each (None: any number).
    license_checks: bool = False
    activation_limit: int | None = None
    # Place in the merchant's list and shop (lower first); None: a new product goes last,
    # an edited one keeps its place.
    position: int | None = None


def parse_tiers(text: str) -> list[tuple[int, int]]:
    """'3=47.00, 10=45.50' -> [(3, 4700), (10, 4550)]."""
    tiers = []
    for part in re.split(r"[,\n;，]+", text or ""):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d{1,4})\s*[=:：]\s*(\d{1,7})(?:\.(\d{1,2}))?", part)
        if not match:
            raise InvalidProduct(_l("Write tier prices as quantity=price, for example 3=47.00, 10=45.00."))
        cents = int(match.group(2)) * 100 + int((match.group(3) or "0").ljust(2, "0"))
        tiers.append((int(match.group(1)), cents))
    return tiers


def prohibited_hits(*texts: str) -> list[str]:
    words = [w.strip() for w in re.split(r"[\n,，]+", site_settings().get("prohibited_words", "")) if w.strip()]
    haystack = "\n".join(t or "" for t in texts).lower()
    return [w for w in words if w.lower() in haystack]


def _validate(draft: ProductDraft) -> None:
    if not draft.title.strip() or len(draft.title) > 120:
        raise InvalidProduct(_l("The title must be 1 to 120 characters."))
    if not 1 <= draft.price <= MAX_PRICE:
        raise InvalidProduct(_l("The price must be between 0.01 and 1,000,000."))
    if draft.delivery_type not in DELIVERY_TYPES:
        raise InvalidProduct()
    if not 1 <= draft.min_per_order <= draft.max_per_order <= 100:
        raise InvalidProduct(_l("Quantities per order must satisfy 1 ≤ minimum ≤ maximum ≤ 100."))
    if not 1 <= draft.manual_promise_hours <= 720 or not 0 <= draft.low_stock_threshold <= 100000:
        raise InvalidProduct()
    seen = set()
    for quantity, price in draft.tiers:
        if quantity < 2 or quantity in seen or not 1 <= price <= MAX_PRICE:
            raise InvalidProduct(_l("Each tier needs a different quantity of at least 2 and a valid price."))
        seen.add(quantity)
    if draft.position is not None and not 0 <= draft.position <= MAX_POSITION:
        raise InvalidProduct(_l("The position must be a whole number from 0 to 1,000,000."))
    if draft.delivery_type == DELIVERY_REMOTE and not draft.remote_url:
        raise InvalidProduct(_l("Enter the address of your server that delivers the keys."))
    if draft.delivery_type == DELIVERY_REMOTE and draft.reusable_key:
        raise InvalidProduct(_l("A shared key is for automatic delivery from your stock, not from your server."))
    _validate_license_checks(draft)
    _validate_risk_thresholds(draft)


def _validate_license_checks(draft: ProductDraft) -> None:
    if draft.activation_limit is not None and not 1 <= draft.activation_limit <= MAX_ACTIVATION_LIMIT:
        raise InvalidProduct(_l("The activation limit must be a whole number from 1 to 10,000, or empty for no limit."))
    # A check finds a key sold to one buyer: fixed and manual goods have no keys, and a
    # shared key is never sold (it stays in stock for the next buyer).
    if draft.license_checks and (draft.delivery_type in (DELIVERY_FIXED, DELIVERY_MANUAL) or draft.reusable_key):
        raise InvalidProduct(
            _l(
                "License checks need keys sold one to each buyer: from imported keys or from your server, without a shared key."
            )
        )


class LaxerThanSite(InvalidProduct):
    message = _l("A product's risk thresholds can only be stricter than the site's.")


def _validate_risk_thresholds(draft: ProductDraft) -> None:
    """A product may ask for the captcha or hold delivery at a lower score than the site
    does, never at a higher one: that would let through what the site stops."""
    site = site_settings()
    captcha, hold = int(site["risk_captcha_at"]), int(site["risk_hold_at"])
    if draft.risk_captcha_at is not None and not 1 <= draft.risk_captcha_at <= captcha:
        raise LaxerThanSite(
            _l(
                "Ask for the captcha from a score of 1 to %(limit)s (the site asks from %(limit)s; "
                "a higher score would be laxer), or leave it empty.",
                limit=captcha,
            )
        )
    if draft.risk_hold_at is not None and not 1 <= draft.risk_hold_at <= hold:
        raise LaxerThanSite(
            _l(
                "Hold delivery from a score of 1 to %(limit)s (the site holds from %(limit)s; "
                "a higher score would be laxer), or leave it empty.",
                limit=hold,
            )
        )


def save_product(merchant_id: int, draft: ProductDraft, slug: str | None = None) -> Product:
    """Create (slug None) or update the merchant's product. Text that hits a prohibited
    word sends the product to moderation instead of publishing it."""
    _validate(draft)
    with write_transaction():
        product = get_product(merchant_id, slug) if slug is not None else None
        try:
            # A hidden category is offered only to the products already in it.
            category_service.check_choosable(draft.category_id, current_id=product.category_id if product else None)
        except NotFound:
            raise InvalidProduct(_l("Choose a category.")) from None
        if product is None:
            last = db.session.scalar(
                select(func.max(Product.position)).where(
                    Product.merchant_id == merchant_id, Product.deleted_at.is_(None)
                )
            )
            product = Product(
                slug=secrets.token_hex(8),
                merchant_id=merchant_id,
                position=(last or 0) + 1,
                price=draft.price,  # its one variant's, made below
                price_max=draft.price,
            )
            db.session.add(product)
        if draft.position is not None:
            product.position = draft.position
        for name in (
            "title",
            "category_id",
            "description_md",
            "delivery_type",
            "manual_promise_hours",
            "reusable_key",
            "require_query_password",
            "require_email",
            "refund_policy",
            "visible",
            "risk_captcha_at",
            "risk_hold_at",
            "license_checks",
            "activation_limit",
        ):
            setattr(product, name, getattr(draft, name))
        product.title = draft.title.strip()
        if draft.delivery_type == DELIVERY_REMOTE:
            product.remote_url = draft.remote_url  # its signing secret: remote_delivery.ensure_secret
        if draft.delivery_type == DELIVERY_FIXED:
            # Editing without retyping the content keeps the content already stored.
            if (draft.fixed_content or "").strip():
                product.fixed_content_ciphertext = vault().encrypt(draft.fixed_content.strip())
            elif product.fixed_content_ciphertext is None:
                raise InvalidProduct(_l("A fixed-delivery product needs the content every buyer receives."))
        hits = prohibited_hits(draft.title, draft.description_md, draft.fixed_content or "", *variants.names(product))
        # A product an operator rejected or took down needs an operator again after an edit.
        held = product.moderation in ("rejected", "taken_down")
        product.moderation = MODERATION_PENDING if hits or held else MODERATION_APPROVED
        product.moderation_reason = ", ".join(hits) if hits else None
        if not product.has_choice:
            _save_single_variant(product, draft)
    return product


def _save_single_variant(product: Product, draft: ProductDraft) -> None:
    """The figures of a product without a choice live on its one variant."""
    variant = product.live_variants[0] if product.live_variants else None
    if variant is None:
        variant = ProductVariant(key=variants.new_key(), product=product)
        db.session.add(variant)
    for name in ("price", "min_per_order", "max_per_order", "low_stock_threshold"):
        setattr(variant, name, getattr(draft, name))
    variants.sync_price_range(product)
    variants.set_tiers(variant, draft.tiers)


def get_product(merchant_id: int, slug: str) -> Product:
    """The merchant's own (not deleted) product, or NotFound: the one place products are
    scoped to their merchant."""
    product = db.session.execute(
        select(Product).where(Product.slug == slug, Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
    ).scalar_one_or_none()
    if product is None:
        raise NotFound()
    return product


def set_visible(merchant_id: int, slug: str, visible: bool) -> Product:
    with write_transaction():
        product = get_product(merchant_id, slug)
        product.visible = visible
    return product


def delete_product(merchant_id: int, slug: str) -> None:
    """Soft delete: hidden everywhere, kept for its orders; unsold keys are voided."""
    with write_transaction():
        product = get_product(merchant_id, slug)
        product.deleted_at = clock.now()
        product.visible = False
        db.session.execute(
            CardKey.__table__.update()
            .where(CardKey.product_id == product.id, CardKey.status == CardKey.AVAILABLE)
            .values(status=CardKey.VOID)
        )


@dataclass(frozen=True)
class ProductRow:
    product: Product
    stock: dict[str, int]  # the product's keys by state, every variant's together
    # Its variants on offer, each with its own stock (the stock table's rows under it).
    variants: list["variants.VariantRow"] = field(default_factory=list)


def merchant_products(merchant_id: int, slug: str | None = None) -> list[ProductRow]:
    """The merchant's products in their order (or the one with this slug), with their
    variants and stock: a fixed number of queries however many products and variants
    there are."""
    query = select(Product).where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
    if slug is not None:
        query = query.where(Product.slug == slug)
    products = (
        db.session.execute(
            query.order_by(Product.position, Product.id).options(
                selectinload(Product.category),
                selectinload(Product.variants).selectinload(ProductVariant.tiers),
            )
        )
        .scalars()
        .all()
    )
    counts: dict[int, dict[str, int]] = {p.id: {} for p in products}
    by_variant: dict[int, dict[str, int]] = {}
    product_of = {v.id: p.id for p in products for v in p.variants}
    if product_of:
        # Counted by variant, every variant's (deleted ones' too: their keys are still the
        # product's), so that the index on (variant_id, status) answers without the table.
        for variant_id, status, n in db.session.execute(
            select(CardKey.variant_id, CardKey.status, func.count())
            .where(CardKey.variant_id.in_(product_of))
            .group_by(CardKey.variant_id, CardKey.status)
        ):
            product_id = product_of[variant_id]
            counts[product_id][status] = counts[product_id].get(status, 0) + n
            by_variant.setdefault(variant_id, {})[status] = n
    return [
        ProductRow(
            p,
            counts[p.id],
            [
                variants.VariantRow(
                    v, {state: by_variant.get(v.id, {}).get(state, 0) for state in variants.STOCK_STATES}
                )
                for v in p.live_variants
            ],
        )
        for p in products
    ]


@dataclass(frozen=True)
class ProductChoice:
    id: int
    slug: str
    title: str


def product_choices(merchant_id: int) -> list[ProductChoice]:
    """The merchant's products in their order, as a form offers them to pick from (the
    order list's filter, a coupon's product): one light query, no stock or variants."""
    rows = db.session.execute(
        select(Product.id, Product.slug, Product.title)
        .where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
        .order_by(Product.position, Product.id)
    )
    return [ProductChoice(*row) for row in rows]


def categories(current_id: int | None = None) -> list[Category]:
    """The categories the product form offers: the visible ones in the operator's order,
    and the product's own category (`current_id`) even when it is hidden."""
    return category_service.choosable(current_id)


UP, DOWN = "up", "down"


def move_product(merchant_id: int, slug: str, direction: str) -> Product:
    """One place up (earlier) or down (later) in the merchant's list, and so in its shop
    and on the home page. The merchant's products are renumbered 1, 2, 3 ... in their
    current order first, so products that share a position can be told apart."""
    with write_transaction():
        product = get_product(merchant_id, slug)
        if direction not in (UP, DOWN):
            raise InvalidProduct()
        ordered = list(
            db.session.execute(
                select(Product)
                .where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
                .order_by(Product.position, Product.id)
                .with_for_update()
            ).scalars()
        )
        index = ordered.index(product)
        ordered.pop(index)
        ordered.insert(max(0, index - 1) if direction == UP else index + 1, product)
        for number, p in enumerate(ordered, start=1):
            p.position = number
    return product
