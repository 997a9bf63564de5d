"""Factories for the growth tests: a reseller with an approved sub-store selling a
merchant's variant, a promoter, and sub-store or referred orders placed, paid and
delivered through the real services. Accounts, products and payout accounts come from
tests/ledger/test_ledger.py (new_merchant, new_product, alipay, ...)."""

import secrets
from fractions import Fraction

from flask import current_app
from test_ledger import new_merchant

from conftest import reload, signed_notify
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.extensions import db
from faka.growth.models import AffiliateTerms, Promoter, ResaleTerms, SubStore, SubStoreItem
from faka.ledger import shares
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify
from faka.platform import settings


def open_programmes(resale_fee_bp: int | None = None, affiliate_fee_bp: int | None = None) -> None:
    """The operator opens both programmes (optionally with their default fee rates)."""
    settings.set_setting("resale_enabled", "1", commit=False)
    settings.set_setting("affiliate_enabled", "1", commit=False)
    if resale_fee_bp is not None:
        settings.set_setting("resale_fee_bp", str(resale_fee_bp), commit=False)
    if affiliate_fee_bp is not None:
        settings.set_setting("affiliate_fee_bp", str(affiliate_fee_bp), commit=False)
    db.session.commit()


def new_account(totp: bool = True) -> Merchant:
    """A back-office account that is not an approved merchant: a reseller's or a
    promoter's (its Merchant row holds its balance)."""
    account = new_merchant(totp=totp)
    account.status = Merchant.PENDING
    account.name = "Growth account"
    db.session.commit()
    return account


def new_reseller(fee_rate_bp: int | None = None, status: str = SubStore.APPROVED) -> tuple[Merchant, SubStore]:
    """An account with its own sub-store (approved unless told otherwise); `fee_rate_bp`
    None: the resale programme's default fee."""
    account = new_account()
    substore = SubStore(
        merchant_id=account.id,
        code=f"s{secrets.token_hex(5)}",
        name="Reseller store",
        status=status,
        fee_rate_bp=fee_rate_bp,
    )
    db.session.add(substore)
    db.session.commit()
    return account, substore


def resell(substore: SubStore, product: Product, floor_price: int, price: int) -> SubStoreItem:
    """The merchant lets the product's (first) variant be resold at `floor_price`; the
    sub-store sells it at `price` a unit."""
    variant = product.variants[0]
    terms = db.session.query(ResaleTerms).filter_by(variant_id=variant.id).one_or_none()
    if terms is None:
        terms = ResaleTerms(
            variant_id=variant.id, product_id=product.id, merchant_id=product.merchant_id, floor_price=floor_price
        )
        db.session.add(terms)
    terms.floor_price, terms.active = floor_price, True
    item = SubStoreItem(substore_id=substore.id, variant_id=variant.id, product_id=product.id, price=price)
    db.session.add(item)
    db.session.commit()
    return item


def store_selling(
    product: Product,
    name: str,
    domain: str,
    price: int,
    floor_price: int,
    announcement: str = "",
    owner_name: str = "Reseller",
) -> SubStore:
    """The resale programme open and an approved merchant's sub-store `name` (address
    moon…, contact QQ 5551234, on its own `domain`) selling the product's first variant at
    `price` a unit, its floor `floor_price`."""
    settings.set_setting("resale_enabled", "1")
    reseller = users.create_merchant(f"r{secrets.token_hex(4)}@resell.test", "reseller-pass-1", owner_name, True)
    substore = SubStore(
        merchant_id=reseller.id,
        code=f"moon{secrets.token_hex(3)}",
        name=name,
        announcement=announcement,
        contact="QQ 5551234",
        domain=domain,
        status=SubStore.APPROVED,
    )
    db.session.add(substore)
    db.session.commit()
    resell(substore, product, floor_price, price)
    return substore


def new_promoter(fee_rate_bp: int | None = None) -> tuple[Merchant, Promoter]:
    account = new_account()
    promoter = Promoter(merchant_id=account.id, code=secrets.token_hex(6), fee_rate_bp=fee_rate_bp)
    db.session.add(promoter)
    db.session.commit()
    return account, promoter


def opt_in(product: Product, commission_bp: int) -> AffiliateTerms:
    """The merchant pays promoters `commission_bp` of what it asks for this product."""
    terms = AffiliateTerms(product_id=product.id, merchant_id=product.merchant_id, commission_bp=commission_bp)
    db.session.add(terms)
    db.session.commit()
    return terms


def buy(
    product: Product, quantity: int = 1, substore: SubStore | None = None, promoter: Promoter | None = None
) -> Order:
    """Place an order (in the sub-store, through the promoter's link, or both), pay it
    through the sandbox's notify and let the sync jobs deliver it; the delivered order."""
    with current_app.test_request_context():
        order = checkout.place_order(
            product.slug,
            quantity,
            None,
            None,
            substore_code=substore.code if substore is not None else None,
            referral_code=promoter.code if promoter is not None else None,
        )
        notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    order = reload(order)
    assert order.status == Order.DELIVERED, order.status
    return order


def expected_refund(split: dict, refunded: int, total: int) -> dict:
    """What each share gives back of a refund of `refunded` out of `total`, by the rule
    as the docs state it, computed apart from faka/ledger/shares.py: each share's exact
    proportional part, rounded down; the fen left over, one each, to the shares with the
    largest fractions left, the merchant's first, then the reseller's, on a tie."""
    if refunded >= total:
        return dict(split)
    exact = {party: Fraction(amount * refunded, total) for party, amount in split.items()}
    back = {party: int(part) for party, part in exact.items()}  # int() rounds a positive part down
    order = (shares.MERCHANT, shares.RESELLER, shares.PROMOTER)
    by_fraction = sorted(split, key=lambda p: (-(exact[p] - back[p]), order.index(p)))
    for party in by_fraction[: refunded - sum(back.values())]:
        back[party] += 1
    return back
