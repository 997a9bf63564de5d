"""What a buyer sees in a reseller's sub-store (分站): the store's page with the items it
sells, a product page inside the store, and which store a domain of its own names.

An item is on sale in a store when the store is open (approved, the resale programme on),
the reseller has not hidden it, the merchant still lets the variant be resold, the store's
price is at or above the floor (拿货价), the product is on sale (visible, approved by
moderation, its merchant approved, not deleted) and the variant is not deleted. Never the
reseller's own goods. The same rules as resale.offer(), which checkout applies; these are
the reads of many items at once.
"""

from dataclasses import dataclass, field

from sqlalchemy import func, select
from sqlalchemy.orm import selectinload

from faka.accounts.models import Merchant
from faka.catalog import images as product_images
from faka.catalog import storefront
from faka.catalog.models import DELIVERY_AUTO, Product, ProductImage, ProductVariant
from faka.core.errors import NotFound
from faka.core.storage import StoredFile
from faka.core.uploads import stored_image
from faka.extensions import db
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.growth.resale import NotResold, SubStoreClosed, resellable
from faka.platform import settings

CODE_MAX = 20
HOST_MAX = 253


@dataclass(frozen=True)
class StoreOffer:
    """A variant on sale in the store: the store's price a unit, and its live stock (None:
    not limited by key stock)."""

    variant: ProductVariant
    price: int
    stock: int | None

    @property
    def sold_out(self) -> bool:
        return self.stock is not None and self.stock <= 0


@dataclass(frozen=True)
class StoreItem:
    """One item of the store's list: a variant of a product, with its cover picture."""

    product: Product
    offer: StoreOffer
    cover: ProductImage | None = None

    @property
    def sold_out(self) -> bool:
        return self.offer.sold_out


@dataclass(frozen=True)
class StorePage:
    store: SubStore
    items: list[StoreItem]


@dataclass(frozen=True)
class StoreProductPage:
    """A product inside a store: the variants the store sells, in the merchant's order."""

    store: SubStore
    product: Product
    offers: list[StoreOffer]
    cover: ProductImage | None = None
    gallery: list[ProductImage] = field(default_factory=list)

    @property
    def has_choice(self) -> bool:
        return len(self.offers) > 1

    @property
    def sold_out(self) -> bool:
        return all(offer.sold_out for offer in self.offers)

    def chosen(self, key: str | None = None) -> StoreOffer:
        """The offer the buy form starts with: the one named by `key` unless it is sold
        out, else the first in stock, else the first (the page then says sold out)."""
        in_stock = [offer for offer in self.offers if not offer.sold_out]
        named = [offer for offer in in_stock if key and offer.variant.key == key]
        return (named or in_stock or self.offers)[0]


def open_store(code: str) -> SubStore:
    """The store of this code while it sells: NotFound for an unknown code, SubStoreClosed
    for a store that is pending, rejected or frozen, whose owner's account is frozen, or
    while the programme is off."""
    code = code.lower()
    row = (
        db.session.execute(
            select(SubStore, Merchant.status)
            .join(Merchant, Merchant.id == SubStore.merchant_id)
            .where(SubStore.code == code)
        ).one_or_none()
        if len(code) <= CODE_MAX
        else None
    )
    if row is None:
        raise NotFound()
    store, owner_status = row
    # The owner's account frozen by the operator closes its store as a frozen store would.
    if not store.is_open or owner_status == Merchant.FROZEN or not settings.programme_enabled("resale"):
        raise SubStoreClosed()
    return store


def _items_on_sale(store: SubStore):
    """The store's items on sale, with their product, variant and the store's price, in
    the reseller's order."""
    return (
        select(SubStoreItem.price, Product, ProductVariant)
        .join(ResaleTerms, ResaleTerms.variant_id == SubStoreItem.variant_id)
        .join(ProductVariant, ProductVariant.id == SubStoreItem.variant_id)
        .join(Product, Product.id == ProductVariant.product_id)
        .join(Merchant, Merchant.id == Product.merchant_id)
        .where(
            SubStoreItem.substore_id == store.id,
            SubStoreItem.hidden.is_(False),
            SubStoreItem.price >= ResaleTerms.floor_price,
            resellable(),
            Product.merchant_id != store.merchant_id,
        )
        .order_by(SubStoreItem.position, SubStoreItem.id)
        # Whether a product offers a choice reads its variants: loaded for all at once.
        .options(selectinload(Product.variants))
    )


def _stock(rows) -> dict[int, int | None]:
    """Each variant's stock as a buyer sees it (storefront's rule: keys available, not
    reserved; a shared key never runs out; manual and fixed goods are not counted)."""
    counted = storefront.variant_stock([v.id for _price, p, v in rows if p.delivery_type == DELIVERY_AUTO])
    shown: dict[int, int | None] = {}
    for _price, product, variant in rows:
        count = counted.get(variant.id, 0)
        if product.delivery_type != DELIVERY_AUTO:
            shown[variant.id] = None
        elif product.reusable_key:
            shown[variant.id] = None if count else 0
        else:
            shown[variant.id] = count
    return shown


def store_page(code: str) -> StorePage:
    store = open_store(code)
    rows = db.session.execute(_items_on_sale(store)).all()
    stock = _stock(rows)
    covers = product_images.shown_images(list({p.id for _price, p, _v in rows}))
    items = [
        StoreItem(p, StoreOffer(v, price, stock[v.id]), (covers.get(p.id) or product_images.ShownImages()).cover)
        for price, p, v in rows
    ]
    return StorePage(store, items)


def product_page(code: str, slug: str) -> StoreProductPage:
    """The product of this slug as the store sells it: NotResold when the store sells none
    of its variants (unknown slug, product off sale, items hidden or below the floor)."""
    store = open_store(code)
    if not slug or len(slug) > 32:
        raise NotResold()
    rows = db.session.execute(_items_on_sale(store).where(Product.slug == slug)).all()
    if not rows:
        raise NotResold()
    stock = _stock(rows)
    product = rows[0][1]
    prices = {v.id: price for price, _p, v in rows}
    # In the merchant's order of the variants, as the platform's own product page.
    offers = [StoreOffer(v, prices[v.id], stock[v.id]) for v in product.live_variants if v.id in prices]
    shown = product_images.shown_images([product.id], galleries=True).get(product.id) or product_images.ShownImages()
    return StoreProductPage(store, product, offers, shown.cover, shown.gallery)


def store_domains() -> dict[str, str]:
    """Each domain of its own a store has, to its code (any status: a closed store's domain
    says the store is not open rather than showing the platform)."""
    rows = db.session.execute(
        select(func.lower(SubStore.domain), SubStore.code).where(SubStore.domain.is_not(None), SubStore.domain != "")
    )
    return {domain.rstrip("."): code for domain, code in rows.all()}


def logo_file(code: str, name: str) -> StoredFile | None:
    """The store's logo file, when `name` is the logo this store shows, while it is open
    (a pending, rejected or frozen store shows nothing to the public, its logo neither)."""
    if not name:
        return None
    try:
        logo = open_store(code).logo
    except (NotFound, SubStoreClosed):
        return None
    return stored_image(name) if logo and logo == name else None
