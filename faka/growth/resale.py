"""Reseller sub-stores (分站): what a sub-store sells, and at which price.

A merchant lets a variant be resold (ResaleTerms, with its floor price, 拿货价); an
approved sub-store picks it (SubStoreItem) at its own price, at or above the floor. A
buyer on the sub-store pays that price; the merchant's share is computed from the floor
(faka/ledger/shares.py).
"""

import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, func, or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from faka.accounts.models import Merchant
from faka.catalog.models import DELIVERY_AUTO, Product, ProductVariant
from faka.catalog.storefront import variant_stock
from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.cache import forget
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.money import format_money
from faka.core.pagination import Page, paginate
from faka.core.storage import StoredFile
from faka.core.uploads import delete_images, store_image, stored_image
from faka.extensions import db
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.ledger import shares
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.platform import audit, settings


class SubStoreClosed(DomainError):
    message = _l("This store is not open.")


class NotResold(DomainError):
    message = _l("This store does not sell this item at the moment.")


class CouponsNotAccepted(DomainError):
    message = _l("Coupons are not accepted in this store.")


@dataclass(frozen=True)
class Offer:
    """A variant on sale in a sub-store: the store, its price a unit, the floor."""

    substore: SubStore
    price: int
    floor_price: int


def open_substore(code: str | None) -> SubStore:
    """The approved sub-store of this code whose owner's account is not frozen, while the
    resale programme is open."""
    row = (
        db.session.execute(
            select(SubStore, Merchant.status)
            .join(Merchant, Merchant.id == SubStore.merchant_id)
            .where(SubStore.code == code.lower())
        ).one_or_none()
        if code and len(code) <= 20
        else None
    )
    if row is None or not row[0].is_open or row[1] == Merchant.FROZEN or not settings.programme_enabled("resale"):
        raise SubStoreClosed()
    return row[0]


def offer(substore: SubStore, variant: ProductVariant) -> Offer:
    """The sub-store's offer of this variant: its own price, while the merchant still
    lets it be resold and the price is at or above the floor (a floor raised above the
    sub-store's price takes the item off sale there until the reseller raises it)."""
    row = db.session.execute(
        select(SubStoreItem.price, ResaleTerms.floor_price)
        .join(ResaleTerms, ResaleTerms.variant_id == SubStoreItem.variant_id)
        .where(
            SubStoreItem.substore_id == substore.id,
            SubStoreItem.variant_id == variant.id,
            SubStoreItem.hidden.is_(False),
            ResaleTerms.active.is_(True),
        )
    ).one_or_none()
    if row is None or row.price < row.floor_price or substore.merchant_id == variant.product.merchant_id:
        raise NotResold()
    return Offer(substore, row.price, row.floor_price)


# -- the merchant: which variants may be resold, and at which floor ---------------------------

MAX_PRICE = 100_000_000  # fen: the product form's highest price, 1,000,000 yuan
PER_PAGE = 50
UP, DOWN = "up", "down"
RESELLER = shares.RESELLER
RESELLER_KINDS = (RESELLER.credit, RESELLER.fee, RESELLER.refund, RESELLER.fee_return)


class InvalidFloor(DomainError):
    field = "floor"
    message = _l("Enter a floor price between 0.01 and 1,000,000.")


@dataclass(frozen=True)
class TermsRow:
    """One of the merchant's variants on offer, with its resale terms (None: never set)."""

    product: Product
    variant: ProductVariant
    terms: ResaleTerms | None

    @property
    def resold(self) -> bool:
        return self.terms is not None and self.terms.active


def merchant_terms(merchant_id: int) -> list[TermsRow]:
    """The merchant's products (not deleted) and their variants on offer, each with its
    resale terms, in the merchant's order: two queries however many there are."""
    found = db.session.execute(
        select(Product, ProductVariant)
        .join(ProductVariant, ProductVariant.product_id == Product.id)
        .where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None), ProductVariant.deleted_at.is_(None))
        .order_by(Product.position, Product.id, ProductVariant.position, ProductVariant.id)
    ).all()
    terms = (
        {
            t.variant_id: t
            for t in db.session.scalars(
                select(ResaleTerms).where(ResaleTerms.variant_id.in_([v.id for _p, v in found]))
            ).all()
        }
        if found
        else {}
    )
    return [TermsRow(p, v, terms.get(v.id)) for p, v in found]


def own_variant(merchant_id: int, variant_key: str, lock: bool = False) -> ProductVariant:
    """The merchant's variant on offer of this key, or NotFound (anyone else's, a deleted one);
    `lock`: its row locked until the transaction ends."""
    query = (
        select(ProductVariant)
        .join(Product, Product.id == ProductVariant.product_id)
        .where(
            ProductVariant.key == variant_key,
            Product.merchant_id == merchant_id,
            Product.deleted_at.is_(None),
            ProductVariant.deleted_at.is_(None),
        )
    )
    if lock:
        query = query.with_for_update(of=ProductVariant).execution_options(populate_existing=True)
    variant = db.session.execute(query).scalar_one_or_none()
    if variant is None:
        raise NotFound()
    return variant


def set_terms(merchant_id: int, actor_id: int, variant_key: str, active: bool, floor_price: int | None) -> ResaleTerms:
    """Let a variant be resold at no less than `floor_price` a unit, or stop it (the floor
    is kept for next time). Sub-stores' items of a stopped or raised variant leave sale
    there until it is resold again or the reseller's price reaches the floor."""
    with write_transaction():
        # The variant's row locked first: two first saves at once make one set of terms
        # (the second waits, then finds the first's and updates it).
        variant = own_variant(merchant_id, variant_key, lock=True)
        terms = db.session.execute(select(ResaleTerms).where(ResaleTerms.variant_id == variant.id)).scalar_one_or_none()
        if floor_price is None and terms is not None:
            floor_price = terms.floor_price  # stopping keeps the floor
        if floor_price is None or not 1 <= floor_price <= MAX_PRICE:
            raise InvalidFloor()
        before = {"active": terms.active, "floor_price": terms.floor_price} if terms is not None else None
        if terms is None:
            terms = ResaleTerms(variant_id=variant.id, product_id=variant.product_id, merchant_id=merchant_id)
            db.session.add(terms)
        terms.active, terms.floor_price, terms.updated_at = active, floor_price, clock.now()
        after = {"active": active, "floor_price": floor_price}
        if before != after:
            audit.record(actor_id, "resale.terms", f"variant:{variant.key}", before=before, after=after)
    return terms


# -- the reseller's sub-store: apply, edit, its status ----------------------------------------

CODE = re.compile(r"[a-z0-9][a-z0-9-]{1,18}[a-z0-9]")
# Codes that read as the platform's own pages or roles, or that a buyer could mistake for them.
RESERVED_CODES = frozenset(
    """admin administrator api app assets static media images image img css js s shop shops store stores
    merchant merchants operator operators order orders pay payment payments login logout register signup
    account accounts auth site www mail email smtp ftp root support help faka platform official system
    healthz health status docs about terms privacy lookup cart checkout user users null none undefined test""".split()
)
LABEL = re.compile(r"[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?")
NAME_MAX, CONTACT_MAX, ANNOUNCEMENT_MAX, DOMAIN_MAX = 60, 200, 2000, 253


class ResaleClosed(DomainError):
    message = _l("The resale programme is closed on this platform at the moment.")


class NotApproved(DomainError):
    message = _l("Only an approved account can open a sub-store: submit your qualification first.")


class InvalidCode(DomainError):
    field = "code"
    message = _l("The address must be 3 to 20 characters: lower-case letters, digits and hyphens (not first or last).")


class ReservedCode(DomainError):
    field = "code"
    message = _l("That address is reserved by the platform. Choose another one.")


class CodeTaken(DomainError):
    field = "code"
    message = _l("That address is taken by another sub-store. Choose another one.")


class InvalidDomain(DomainError):
    field = "domain"
    message = _l("Enter a domain name such as shop.example.com, without http:// or a path.")


class DomainTaken(DomainError):
    field = "domain"
    message = _l("That domain is already used by another sub-store.")


class PlatformDomain(DomainError):
    field = "domain"
    message = _l("That domain is the platform’s own. Enter a domain of your own.")


class SubStoreJustSaved(DomainError):
    message = _l("Your sub-store was saved a moment ago from another page. Check it and save again.")


class InvalidIdentity(DomainError):
    message = _l("Check the sub-store's name, announcement and contact.")


class NoSubStore(DomainError):
    message = _l("Open your sub-store first.")


class NotRejected(DomainError):
    message = _l("Only a rejected sub-store can apply again.")


@dataclass(frozen=True)
class Identity:
    """What buyers see of a sub-store, as the reseller typed it."""

    code: str
    name: str
    announcement: str = ""
    contact: str = ""
    domain: str = ""


def normal_code(code: str) -> str:
    code = (code or "").strip().lower()
    if not CODE.fullmatch(code):
        raise InvalidCode()
    if code in RESERVED_CODES:
        raise ReservedCode()
    return code


def normal_domain(domain: str) -> str | None:
    """A host name of two labels or more, lower-case (an IDN in its xn-- form), or None
    when empty; never an address, a port, a path or the platform's own host."""
    domain = (domain or "").strip().lower().rstrip(".")
    if not domain:
        return None
    try:
        domain = domain.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise InvalidDomain() from exc
    labels = domain.split(".")
    if (
        len(domain) > DOMAIN_MAX
        or len(labels) < 2
        or not all(LABEL.fullmatch(label) for label in labels)
        or not (labels[-1].isalpha() or labels[-1].startswith("xn--"))
    ):
        raise InvalidDomain()
    # The platform's host and any name under it are the platform's (an address has no
    # alphabetic last label, refused above).
    platform_host = (urlsplit(current_app.config.get("BASE_URL") or "").hostname or "").lower().rstrip(".")
    if platform_host and (domain == platform_host or domain.endswith("." + platform_host)):
        raise PlatformDomain()
    return domain


def _checked(identity: Identity) -> Identity:
    name = identity.name.strip()
    if not 1 <= len(name) <= NAME_MAX:
        raise InvalidIdentity(_l("Give the sub-store a name of at most %(max)s characters.", max=NAME_MAX))
    announcement, contact = identity.announcement.strip(), identity.contact.strip()
    if len(announcement) > ANNOUNCEMENT_MAX or len(contact) > CONTACT_MAX:
        raise InvalidIdentity()
    return Identity(normal_code(identity.code), name, announcement, contact, normal_domain(identity.domain) or "")


def my_substore(merchant_id: int) -> SubStore | None:
    return db.session.execute(select(SubStore).where(SubStore.merchant_id == merchant_id)).scalar_one_or_none()


def _fields(substore: SubStore) -> dict:
    return {
        "code": substore.code,
        "name": substore.name,
        "announcement": substore.announcement,
        "contact": substore.contact,
        "domain": substore.domain,
        "pending_domain": substore.pending_domain,
        "logo": substore.logo,
        "status": substore.status,
    }


def save_substore(
    merchant_id: int, actor_id: int, identity: Identity, logo: bytes | None = None, remove_logo: bool = False
) -> SubStore:
    """Apply for a sub-store (it waits for the operator's review), or change its identity.
    A change keeps the status, except that a rejected store whose address or domain changes
    is reviewed again. A new or changed domain waits for the operator (pending_domain; the
    store keeps its approved one meanwhile); an emptied one is dropped at once. `logo`: an
    uploaded image, checked and re-encoded."""
    if not settings.programme_enabled("resale"):
        raise ResaleClosed()
    account = db.session.get(Merchant, merchant_id)
    if account is None or account.status != Merchant.APPROVED:
        raise NotApproved()
    identity = _checked(identity)
    new_logo = store_image(logo) if logo else None
    try:
        with write_transaction():
            # The account's row locked first: two saves of one account at once (a double
            # click on the first application) are one after the other, not two stores.
            db.session.get(Merchant, merchant_id, with_for_update=True, populate_existing=True)
            substore = my_substore(merchant_id)
            _check_free(merchant_id, identity)
            before = _fields(substore) if substore is not None else None
            old_logo = substore.logo if substore is not None else None
            if substore is None:
                substore = SubStore(merchant_id=merchant_id, status=SubStore.PENDING)
                db.session.add(substore)
            elif substore.status == SubStore.REJECTED and (
                identity.code != substore.code
                or (identity.domain or None) != (substore.pending_domain or substore.domain)
            ):
                substore.status = SubStore.PENDING
            substore.code, substore.name = identity.code, identity.name
            substore.announcement, substore.contact = identity.announcement, identity.contact
            _ask_domain(substore, identity.domain or None)
            if new_logo is not None or remove_logo:
                substore.logo = new_logo
            after = _fields(substore)
            # store_domains() changes: the domain served until now is dropped, or leads to a new code.
            old_served = (before["domain"], before["code"]) if before is not None else (None, None)
            domains_changed = old_served[0] is not None and old_served != (substore.domain, substore.code)
            if before != after:
                audit.record(
                    actor_id,
                    "substore.applied" if before is None else "substore.changed",
                    f"substore:{identity.code}",
                    before=before,
                    after=after,
                )
    except IntegrityError as exc:  # the same code, domain or account's store saved at the same moment
        delete_images([new_logo])
        db.session.rollback()
        taken = _taken(merchant_id, identity)
        if taken is None:
            raise
        raise taken from exc
    except BaseException:
        delete_images([new_logo])
        raise
    if old_logo and old_logo != substore.logo:
        delete_images([old_logo])  # no other row names a sub-store's logo
    if domains_changed:
        forget(("substore-domains",))  # every process stops serving the old domain at once
    return substore


def _domain_holder(domain: str, merchant_id: int) -> int | None:
    """Another account's store that holds this domain or waits for it, if any."""
    return db.session.scalar(
        select(SubStore.id).where(
            or_(SubStore.domain == domain, SubStore.pending_domain == domain), SubStore.merchant_id != merchant_id
        )
    )


def _check_free(merchant_id: int, identity: Identity) -> None:
    if db.session.scalar(
        select(SubStore.id).where(SubStore.code == identity.code, SubStore.merchant_id != merchant_id)
    ):
        raise CodeTaken()
    if identity.domain and _domain_holder(identity.domain, merchant_id):
        raise DomainTaken()


def _taken(merchant_id: int, identity: Identity) -> DomainError | None:
    """Which constraint a save that failed on one at commit met: said as such (None: none
    of these, a fault to raise as it is)."""
    try:
        _check_free(merchant_id, identity)
    except DomainError as taken:
        return taken
    if my_substore(merchant_id) is not None:
        return SubStoreJustSaved()  # the account's one store, opened by its other save
    return None


def _ask_domain(substore: SubStore, domain: str | None) -> None:
    """The reseller's domain: dropped at once when emptied, kept when unchanged, else
    waiting for the operator's approval (the approved one is served meanwhile)."""
    if domain is None:
        substore.domain = substore.pending_domain = None
    elif domain == substore.domain:
        substore.pending_domain = None
    else:
        substore.pending_domain = domain


def apply_again(merchant_id: int, actor_id: int) -> SubStore:
    """A rejected sub-store, its identity fixed, asks for the operator's review again."""
    if not settings.programme_enabled("resale"):
        raise ResaleClosed()
    with write_transaction():
        substore = my_substore(merchant_id)
        if substore is None:
            raise NoSubStore()
        if substore.status != SubStore.REJECTED:
            raise NotRejected()
        substore.status, substore.created_at = SubStore.PENDING, clock.now()
        audit.record(actor_id, "substore.reapplied", f"substore:{substore.code}", detail=substore.reason or "")
    return substore


def logo_file(merchant_id: int, name: str) -> StoredFile:
    """The sub-store's own logo file (for its owner's back office), or NotFound."""
    substore = my_substore(merchant_id)
    stored = stored_image(name) if substore is not None and substore.logo == name else None
    if stored is None:
        raise NotFound()
    return stored


# -- the reseller's catalogue and items ---------------------------------------------------------


class PriceBelowFloor(DomainError):
    field = "price"

    def __init__(self, floor_price: int):
        super().__init__(
            _l("The price must be at least the floor price of %(floor)s.", floor=format_money(floor_price))
        )


class InvalidPrice(DomainError):
    field = "price"
    message = _l("Enter a price between 0.01 and 1,000,000.")


class AlreadyInStore(DomainError):
    message = _l("This item is already in your sub-store: change its price in My items.")


class NotResellable(DomainError):
    message = _l("This item cannot be resold at the moment.")


@dataclass(frozen=True)
class CatalogueRow:
    """A variant another merchant lets sub-stores resell, as the catalogue shows it."""

    product: Product
    variant: ProductVariant
    seller: str  # the merchant's shop name
    floor_price: int
    stock: int | None  # None: not counted (fixed, manual or shared-key delivery)
    picked: bool  # already in this reseller's store


def resellable():
    """Whether a variant may be sold in sub-stores now: its terms active, variant and product
    not deleted, the product on sale (visible, approved by moderation), its merchant approved.
    For a query that joins ResaleTerms, ProductVariant, Product and the product's Merchant;
    never NULL, also where the terms are outer-joined and missing."""
    return and_(
        ResaleTerms.active.is_(True),
        ProductVariant.deleted_at.is_(None),
        Product.deleted_at.is_(None),
        Product.visible.is_(True),
        Product.moderation == "approved",
        Merchant.status == Merchant.APPROVED,
    )


def _resellable():
    """Variants on offer whose merchant lets them be resold."""
    return (
        select(ProductVariant, Product, Merchant.name, ResaleTerms.floor_price)
        .join(ResaleTerms, ResaleTerms.variant_id == ProductVariant.id)
        .join(Product, Product.id == ProductVariant.product_id)
        .join(Merchant, Merchant.id == Product.merchant_id)
        .where(resellable())
    )


def _stock(product: Product, counted: dict[int, int], variant_id: int) -> int | None:
    if product.delivery_type != DELIVERY_AUTO or product.reusable_key:
        return None
    return counted.get(variant_id, 0)


def resale_catalogue(merchant_id: int, page: int = 1) -> Page:
    """A page of what this account may resell: every other merchant's resellable variants."""
    found = paginate(
        _resellable()
        .where(Product.merchant_id != merchant_id)
        .order_by(Product.title, Product.id, ProductVariant.position, ProductVariant.id),
        page,
        PER_PAGE,
    )
    substore = my_substore(merchant_id)
    picked = (
        set(db.session.scalars(select(SubStoreItem.variant_id).where(SubStoreItem.substore_id == substore.id)))
        if substore is not None
        else set()
    )
    counted = variant_stock([row[0].id for row in found.items])
    rows = [
        CatalogueRow(product, variant, seller, floor, _stock(product, counted, variant.id), variant.id in picked)
        for variant, product, seller, floor in found.items
    ]
    return Page(rows, found.page, found.per_page, found.total, found.has_next)


def _checked_price(price: int | None, floor_price: int) -> int:
    if price is None or not 1 <= price <= MAX_PRICE:
        raise InvalidPrice()
    if price < floor_price:
        raise PriceBelowFloor(floor_price)
    return price


def _store_of(merchant_id: int) -> SubStore:
    substore = db.session.execute(
        select(SubStore).where(SubStore.merchant_id == merchant_id).with_for_update()
    ).scalar_one_or_none()
    if substore is None:
        raise NoSubStore()
    return substore


def add_item(merchant_id: int, variant_key: str, price: int | None) -> SubStoreItem:
    """Put another merchant's resellable variant in the sub-store, at `price` (≥ its floor),
    last in the store's order."""
    with write_transaction():
        substore = _store_of(merchant_id)
        row = db.session.execute(
            _resellable().where(ProductVariant.key == variant_key, Product.merchant_id != merchant_id)
        ).one_or_none()
        if row is None:
            raise NotResellable()
        variant, product, _seller, floor_price = row
        price = _checked_price(price, floor_price)
        if db.session.scalar(
            select(SubStoreItem.id).where(
                SubStoreItem.substore_id == substore.id, SubStoreItem.variant_id == variant.id
            )
        ):
            raise AlreadyInStore()
        last = db.session.scalar(select(func.max(SubStoreItem.position)).where(SubStoreItem.substore_id == substore.id))
        item = SubStoreItem(
            substore_id=substore.id,
            variant_id=variant.id,
            product_id=product.id,
            price=price,
            position=(last or 0) + 1,
        )
        db.session.add(item)
    return item


def _item(substore: SubStore, variant_key: str) -> SubStoreItem:
    item = db.session.execute(
        select(SubStoreItem)
        .join(ProductVariant, ProductVariant.id == SubStoreItem.variant_id)
        .where(SubStoreItem.substore_id == substore.id, ProductVariant.key == variant_key)
    ).scalar_one_or_none()
    if item is None:
        raise NotFound()
    return item


def set_item_price(merchant_id: int, variant_key: str, price: int | None) -> SubStoreItem:
    """A new price for an item of the sub-store, at or above the floor (while the merchant
    still resells it: otherwise at or above the last floor it had)."""
    with write_transaction():
        item = _item(_store_of(merchant_id), variant_key)
        floor_price = db.session.scalar(
            select(ResaleTerms.floor_price).where(ResaleTerms.variant_id == item.variant_id)
        )
        item.price = _checked_price(price, floor_price or 1)
    return item


def set_item_hidden(merchant_id: int, variant_key: str, hidden: bool) -> None:
    with write_transaction():
        _item(_store_of(merchant_id), variant_key).hidden = hidden


def remove_item(merchant_id: int, variant_key: str) -> None:
    with write_transaction():
        db.session.delete(_item(_store_of(merchant_id), variant_key))


def move_item(merchant_id: int, variant_key: str, direction: str) -> None:
    """One place earlier (UP) or later (DOWN) in the sub-store."""
    if direction not in (UP, DOWN):
        raise NotFound()
    with write_transaction():
        substore = _store_of(merchant_id)
        item = _item(substore, variant_key)
        items = list(
            db.session.scalars(
                select(SubStoreItem)
                .where(SubStoreItem.substore_id == substore.id)
                .order_by(SubStoreItem.position, SubStoreItem.id)
            )
        )
        index = items.index(item)
        items.pop(index)
        items.insert(max(0, index - 1) if direction == UP else index + 1, item)
        for position, each in enumerate(items, start=1):
            each.position = position


@dataclass(frozen=True)
class ItemRow:
    """An item of the reseller's sub-store and whether buyers can buy it there now."""

    item: SubStoreItem
    product: Product
    variant: ProductVariant
    seller: str
    floor_price: int | None  # None: the merchant never set terms (cannot happen) or removed them
    resold: bool  # the merchant still lets it be resold and the product is on sale
    stock: int | None

    @property
    def below_floor(self) -> bool:
        return self.floor_price is not None and self.item.price < self.floor_price

    @property
    def on_sale(self) -> bool:
        return self.resold and not self.item.hidden and not self.below_floor


def my_items(merchant_id: int) -> list[ItemRow]:
    """The sub-store's items in its order, each with the floor now and whether it sells."""
    substore = my_substore(merchant_id)
    if substore is None:
        return []
    rows = db.session.execute(
        select(SubStoreItem, ProductVariant, Product, Merchant.name, ResaleTerms.floor_price, resellable())
        .join(ProductVariant, ProductVariant.id == SubStoreItem.variant_id)
        .join(Product, Product.id == SubStoreItem.product_id)
        .join(Merchant, Merchant.id == Product.merchant_id)
        .outerjoin(ResaleTerms, ResaleTerms.variant_id == SubStoreItem.variant_id)
        .where(SubStoreItem.substore_id == substore.id)
        .order_by(SubStoreItem.position, SubStoreItem.id)
    ).all()
    counted = variant_stock([variant.id for _i, variant, *_rest in rows])
    return [
        ItemRow(item, product, variant, seller, floor_price, bool(resold), _stock(product, counted, variant.id))
        for item, variant, product, seller, floor_price, resold in rows
    ]


# -- the reseller's orders and their complaints ------------------------------------------------


@dataclass(frozen=True)
class SubStoreOrder:
    """An order placed in the reseller's sub-store, with the reseller's part of it."""

    order: Order
    margin: int  # the total less the merchant's floor total, before the platform's fee
    credited: int  # what the reseller's ledger holds of it now: margin, less fee and refunds
    complaint: Complaint | None  # the latest complaint about it


def substore_orders(merchant_id: int, page: int = 1) -> Page:
    """A page of the orders placed in this account's sub-store, newest first."""
    substore = my_substore(merchant_id)
    if substore is None:
        return Page([], 1, PER_PAGE, 0, False)
    found = paginate(
        select(Order)
        .options(joinedload(Order.product))  # the row's title is the product's
        .where(Order.substore_id == substore.id)
        .order_by(Order.created_at.desc(), Order.id.desc()),
        page,
        PER_PAGE,
    )
    ids = [o.id for o in found.items]
    credited = (
        dict(
            db.session.execute(
                select(LedgerEntry.order_id, func.sum(LedgerEntry.amount))
                .where(
                    LedgerEntry.order_id.in_(ids),
                    LedgerEntry.merchant_id == merchant_id,
                    LedgerEntry.kind.in_(RESELLER_KINDS),
                )
                .group_by(LedgerEntry.order_id)
            ).all()
        )
        if ids
        else {}
    )
    complaints: dict[int, Complaint] = {}
    if ids:
        for complaint in db.session.scalars(
            select(Complaint).where(Complaint.order_id.in_(ids)).order_by(Complaint.id)
        ):
            complaints[complaint.order_id] = complaint  # the latest wins
    rows = [
        SubStoreOrder(o, o.total - (o.resale_base or 0), int(credited.get(o.id) or 0), complaints.get(o.id))
        for o in found.items
    ]
    return Page(rows, found.page, found.per_page, found.total, found.has_next)


def complaint_for_reseller(merchant_id: int, ref: str) -> Complaint:
    """A complaint about an order of this account's sub-store (to follow, not to answer),
    or NotFound."""
    complaint = db.session.execute(
        select(Complaint)
        .join(Order, Order.id == Complaint.order_id)
        .join(SubStore, SubStore.id == Order.substore_id)
        .where(Complaint.ref == ref, SubStore.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if complaint is None:
        raise NotFound()
    return complaint


def substore_names(substore_ids) -> dict[int, str]:
    """The names of these sub-stores by id (the merchant's order pages say where it sold)."""
    ids = {i for i in substore_ids if i is not None}
    if not ids:
        return {}
    return dict(db.session.execute(select(SubStore.id, SubStore.name).where(SubStore.id.in_(ids))).all())
