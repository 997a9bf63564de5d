"""Reseller sub-stores (分站): what a sub-store sells, and at which price.

A merchant lets a variant be resold (ResaleTerms, with its floor price, 拿货价); an
approved sub-store picks it (SubStoreItem) at its own price, at or above the floor. A
buyer on the sub-store pays that price; the merchant's share is computed from the floor
(faka/ledger/shares.py).
"""

from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.catalog.models import ProductVariant
from faka.core.errors import DomainError
from faka.extensions import db
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.platform import settings


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
    """The approved sub-store of this code, while the resale programme is open."""
    substore = (
        db.session.execute(select(SubStore).where(SubStore.code == code.lower())).scalar_one_or_none()
        if code and len(code) <= 20
        else None
    )
    if substore is None or not substore.is_open or not settings.programme_enabled("resale"):
        raise SubStoreClosed()
    return substore


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
