"""What the storefront shows: products on sale and their live stock, shop pages, and the
reputation and reviews shown with them."""

from dataclasses import dataclass, field
from functools import cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import contains_eager, joinedload

from faka.accounts.models import Merchant
from faka.catalog import images as product_images
from faka.catalog.models import DELIVERY_AUTO, Product, ProductImage, ProductVariant
from faka.core.errors import NotFound
from faka.core.storage import StoredFile
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.reviews.reputation import Reputation, merchant_reputation
from faka.reviews.reviews import ReviewPage, public_reviews


@dataclass(frozen=True)
class Offer:
    """A variant on offer, with its live stock (None: not limited by key stock)."""

    variant: ProductVariant
    stock: int | None

    @property
    def sold_out(self) -> bool:
        return self.stock is not None and self.stock <= 0


@dataclass(frozen=True)
class Listing:
    product: Product
    stock: int | None  # None: not limited by key stock (fixed or manual delivery)
    cover: ProductImage | None = None
    gallery: list[ProductImage] = field(default_factory=list)  # on the product's own page only
    # The variants on offer with their stock, in the merchant's order: on the product's own page only.
    offers: list[Offer] = field(default_factory=list)

    @property
    def sold_out(self) -> bool:
        return self.stock is not None and self.stock <= 0

    def chosen(self, key: str | None = None) -> Offer | None:
        """The offer the buy form starts with: the one named by `key` unless it is sold
        out, else the first in stock, else the first (the page then says sold out)."""
        in_stock = [offer for offer in self.offers if not offer.sold_out]
        named = [offer for offer in in_stock if key and offer.variant.key == key]
        return (named or in_stock or self.offers or [None])[0]


def _on_sale():
    return (
        select(Product)
        .join(Merchant, Product.merchant_id == Merchant.id)
        .where(Product.visible.is_(True), Product.moderation == "approved", Merchant.status == Merchant.APPROVED)
    )


def available_stock(product_ids: list[int]) -> dict[int, int]:
    """Available (not reserved, not sold) keys per product, in one query."""
    if not product_ids:
        return {}
    rows = db.session.execute(
        select(CardKey.product_id, func.count())
        .where(CardKey.product_id.in_(product_ids), CardKey.status == CardKey.AVAILABLE)
        .group_by(CardKey.product_id)
    )
    return dict(rows.all())


def variant_stock(variant_ids: list[int]) -> dict[int, int]:
    """Available keys per variant, in one query."""
    if not variant_ids:
        return {}
    rows = db.session.execute(
        select(CardKey.variant_id, func.count())
        .where(CardKey.variant_id.in_(variant_ids), CardKey.status == CardKey.AVAILABLE)
        .group_by(CardKey.variant_id)
    )
    return dict(rows.all())


def _shown_stock(product: Product, count: int) -> int | None:
    if product.delivery_type != DELIVERY_AUTO:
        return None
    # A shared key is never used up: unlimited while there is one, sold out without.
    return (None if count else 0) if product.reusable_key else count


def _listings(products: list[Product], galleries: bool = False, offers: bool = False) -> list[Listing]:
    """The products' listings with their stock; with `offers` (their variants loaded), each
    live variant's stock too, counted per variant instead of per product (still one query)."""
    keyed = [p for p in products if p.delivery_type == DELIVERY_AUTO]
    per_variant: dict[int, int] = {}
    if offers:
        per_variant = variant_stock([v.id for p in keyed for v in p.live_variants])
        stock = {p.id: sum(per_variant.get(v.id, 0) for v in p.live_variants) for p in keyed}
    else:
        stock = available_stock([p.id for p in keyed])
    images = product_images.shown_images([p.id for p in products], galleries=galleries)

    def listing(p: Product) -> Listing:
        shown_images = images.get(p.id) or product_images.ShownImages()
        shown = [Offer(v, _shown_stock(p, per_variant.get(v.id, 0))) for v in p.live_variants] if offers else []
        return Listing(p, _shown_stock(p, stock.get(p.id, 0)), shown_images.cover, shown_images.gallery, shown)

    return [listing(p) for p in products]


def product_on_sale(slug: str) -> Product:
    """The product on sale with this slug, with its seller, category and tier prices, in
    one statement."""
    return _one_on_sale(_product_on_sale_query(), slug)


def product_to_sell(slug: str) -> Product:
    """The product on sale with this slug, its tier prices and checkout fields: what a
    checkout needs (not the seller's and category's columns, nor the stock: checkout
    reserves keys itself, and counting a big stock costs far more than the rest of a
    checkout)."""
    return _one_on_sale(_product_to_sell_query(), slug)


def _one_on_sale(query, slug: str) -> Product:
    product = db.session.execute(query, {"slug": slug}).unique().scalar_one_or_none()
    if product is None:
        raise NotFound()
    return product


# Built once each: building a statement costs more than running it.
@cache
def _product_on_sale_query():
    return (
        _on_sale()
        .where(Product.slug == bindparam("slug"))
        .options(
            contains_eager(Product.merchant),
            joinedload(Product.category),
            joinedload(Product.variants).joinedload(ProductVariant.tiers),
            joinedload(Product.checkout_fields),
        )
    )


@cache
def _product_to_sell_query():
    # With the checkout fields: the buyer's answers are checked against them (no statement of
    # its own: a product without fields adds an empty outer join).
    return (
        _on_sale()
        .where(Product.slug == bindparam("slug"))
        .options(joinedload(Product.variants).joinedload(ProductVariant.tiers), joinedload(Product.checkout_fields))
    )


def product_listing(slug: str, galleries: bool = False, offers: bool = False) -> Listing:
    return _listings([product_on_sale(slug)], galleries=galleries, offers=offers)[0]


def offered_variant_keys(slug: str) -> frozenset[str]:
    """The keys of the variants a product offers (none for an unknown slug): which `?v=`
    links name one of its variants."""
    return frozenset(
        db.session.execute(
            select(ProductVariant.key)
            .join(Product, ProductVariant.product_id == Product.id)
            .where(Product.slug == slug, ProductVariant.deleted_at.is_(None))
        ).scalars()
    )


@dataclass(frozen=True)
class ProductPage:
    listing: Listing
    reputation: Reputation  # the seller's
    reviews: ReviewPage  # the product's, newest first


def product_page(slug: str) -> ProductPage:
    listing = product_listing(slug, galleries=True, offers=True)
    product = listing.product
    return ProductPage(listing, merchant_reputation(product.merchant_id), public_reviews(product_id=product.id))


def product_reviews(slug: str, sort: str, page: int) -> tuple[Product, ReviewPage]:
    """A page of a product on sale's reviews."""
    product = db.session.execute(_on_sale().where(Product.slug == slug)).scalar_one_or_none()
    if product is None:
        raise NotFound()
    return product, public_reviews(product_id=product.id, sort=sort, page=page)


@dataclass(frozen=True)
class ShopPage:
    merchant: Merchant
    reputation: Reputation
    reviews: ReviewPage


def _shop(public_id: str) -> Merchant:
    # Only approved shops have a page: a frozen shop's goods are hidden, and so is its page.
    merchant = db.session.execute(
        select(Merchant).where(Merchant.public_id == public_id, Merchant.status == Merchant.APPROVED)
    ).scalar_one_or_none()
    if merchant is None:
        raise NotFound()
    return merchant


def shop_page(public_id: str) -> ShopPage:
    """A shop's public page: who it is, its reputation, its reviews (its goods: the
    search's shop_catalogue())."""
    merchant = _shop(public_id)
    return ShopPage(merchant, merchant_reputation(merchant.id), public_reviews(merchant_id=merchant.id))


def shop_reviews(public_id: str, sort: str, page: int) -> tuple[Merchant, ReviewPage]:
    merchant = _shop(public_id)
    return merchant, public_reviews(merchant_id=merchant.id, sort=sort, page=page)


def product_image_file(name: str) -> StoredFile | None:
    """A product image's file, if an image of a product on sale names it. A name of any
    other shape reaches neither the database nor the storage; one no product on sale
    shows (unknown, removed, or of a hidden, deleted or taken-down product) never the
    storage."""
    condition = product_images.named(name)
    if condition is None:
        return None
    known = db.session.execute(
        _on_sale()
        .join(ProductImage, ProductImage.product_id == Product.id)
        .where(condition, Product.deleted_at.is_(None))
        .with_only_columns(ProductImage.id)
        .limit(1)
    ).first()
    return product_images.existing(name) if known else None
