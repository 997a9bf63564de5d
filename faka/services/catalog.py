"""What the storefront shows: products on sale and their live stock, shop pages, and the
reputation and reviews shown with them."""
from dataclasses import dataclass
from functools import cache

from sqlalchemy import bindparam, func, select
from sqlalchemy.orm import contains_eager, joinedload, selectinload

from faka.extensions import db
from faka.models import CardKey, Category, Merchant, Product
from faka.models.catalog import DELIVERY_AUTO
from faka.services.reputation import Reputation, merchant_reputation
from faka.services.reviews import ReviewPage, public_reviews
from faka.services.errors import NotFound


@dataclass(frozen=True)
class Listing:
    product: Product
    stock: int | None  # None: not limited by key stock (fixed or manual delivery)

    @property
    def sold_out(self) -> bool:
        return self.stock is not None and self.stock <= 0


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


def _listings(products: list[Product]) -> list[Listing]:
    stock = available_stock([p.id for p in products if p.delivery_type == DELIVERY_AUTO])

    def shown(p: Product) -> int | None:
        if p.delivery_type != DELIVERY_AUTO:
            return None
        count = stock.get(p.id, 0)
        # A shared key is never used up: unlimited while there is one, sold out without.
        return (None if count else 0) if p.reusable_key else count

    return [Listing(p, shown(p)) for p in products]


def storefront() -> list[tuple[Category, list[Listing]]]:
    """Categories in order, each with its products on sale (empty categories left out)."""
    products = (
        db.session.execute(
            _on_sale()
            .options(selectinload(Product.category), selectinload(Product.merchant))
            .order_by(Product.position, Product.id)
        )
        .scalars()
        .all()
    )
    by_category: dict[int, list[Listing]] = {}
    categories: dict[int, Category] = {}
    for listing in _listings(products):
        categories[listing.product.category_id] = listing.product.category
        by_category.setdefault(listing.product.category_id, []).append(listing)
    ordered = sorted(categories.values(), key=lambda c: (c.position, c.id))
    return [(c, by_category[c.id]) for c in ordered]


def product_on_sale(slug: str) -> Product:
    """The product on sale with this slug, with its seller, category and tier prices, in
    one statement."""
    return _one_on_sale(_product_on_sale_query(), slug)


def product_to_sell(slug: str) -> Product:
    """The product on sale with this slug and its tier prices: what a checkout needs (not
    the seller's and category's columns, nor the stock: checkout reserves keys itself,
    and counting a big stock costs far more than the rest of a checkout)."""
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
        .options(contains_eager(Product.merchant), joinedload(Product.category), joinedload(Product.tiers))
    )


@cache
def _product_to_sell_query():
    return _on_sale().where(Product.slug == bindparam("slug")).options(joinedload(Product.tiers))


def product_listing(slug: str) -> Listing:
    return _listings([product_on_sale(slug)])[0]


@dataclass(frozen=True)
class ProductPage:
    listing: Listing
    reputation: Reputation  # the seller's
    reviews: ReviewPage  # the product's, newest first


def product_page(slug: str) -> ProductPage:
    listing = product_listing(slug)
    product = listing.product
    return ProductPage(listing, merchant_reputation(product.merchant_id),
                       public_reviews(product_id=product.id))


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
    listings: list[Listing]
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
    """A shop's public page: who it is, its reputation, its goods on sale, its reviews."""
    merchant = _shop(public_id)
    products = db.session.execute(
        _on_sale().where(Product.merchant_id == merchant.id).order_by(Product.position, Product.id)
    ).scalars().all()
    return ShopPage(merchant, merchant_reputation(merchant.id), _listings(list(products)),
                    public_reviews(merchant_id=merchant.id))


def shop_reviews(public_id: str, sort: str, page: int) -> tuple[Merchant, ReviewPage]:
    merchant = _shop(public_id)
    return merchant, public_reviews(merchant_id=merchant.id, sort=sort, page=page)
