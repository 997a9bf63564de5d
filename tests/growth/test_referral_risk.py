"""No commission on a self-referral, and bursts of referred orders watched: a referred
order paid from the promoter's own sign-in address or browser, or to their own email,
earns nothing and is flagged; the third referred order within an hour from one browser
raises a risk event; a merchant or a sub-store owner cannot refer its own sales."""

import secrets

import pytest
from flask import current_app
from sqlalchemy import select
from test_ledger import new_merchant, new_product

from conftest import count, reload, signed_notify
from faka.accounts.login import record_sign_in
from faka.accounts.models import Merchant
from faka.extensions import db
from faka.growth import affiliates
from faka.growth.models import AffiliateTerms, Promoter, ResaleTerms, SubStore, SubStoreItem
from faka.ledger.models import LedgerEntry
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify
from faka.platform import settings
from faka.risk.models import RiskEvent

PROMOTER_IP = "192.0.2.44"
PROMOTER_DEVICE = "p" * 64
BUYER_IP = "203.0.113.10"


@pytest.fixture
def referred(app):
    """The programme open; a product opted in at 10 %; a promoter (a pending account)
    who signed in from PROMOTER_IP with PROMOTER_DEVICE."""
    settings.set_setting("affiliate_enabled", "1", commit=False)
    settings.set_setting("resale_enabled", "1", commit=False)
    db.session.commit()
    seller = new_merchant()
    product = new_product(seller, keys=20, price=2000)
    db.session.add(AffiliateTerms(product_id=product.id, merchant_id=seller.id, commission_bp=1000))
    account = new_merchant()
    account.status = Merchant.PENDING
    db.session.commit()
    promoter = affiliates.become_promoter(account.id, account.user_id)
    record_sign_in(account.user_id, PROMOTER_IP, PROMOTER_DEVICE)
    db.session.commit()
    return product, promoter


def place(product, code, ip=BUYER_IP, device=None, email="buyer@example.com", substore_code=None) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(
            product.slug,
            1,
            email,
            "secret-1",
            client_ip=ip,
            device_hash=device or secrets.token_hex(32),
            referral_code=code,
            substore_code=substore_code,
        )


def paid(order: Order) -> Order:
    with current_app.test_request_context():
        notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    return reload(order)


def rules(order: Order) -> set[str]:
    db.session.commit()
    events = db.session.execute(select(RiskEvent).where(RiskEvent.order_id == order.id)).scalars().all()
    return {hit.rule for event in events for hit in event.hits}


def commissions() -> int:
    db.session.commit()
    return count(LedgerEntry, LedgerEntry.kind == LedgerEntry.COMMISSION)


def test_an_honest_referred_order_earns_the_commission(referred):
    product, promoter = referred
    order = paid(place(product, promoter.code))
    assert order.promoter_id == promoter.id and order.commission == 200
    assert "self_referral" not in (order.risk_flags or "") and "self_referral" not in rules(order)
    assert commissions() == 1


@pytest.mark.parametrize(
    "where",
    [
        {"ip": PROMOTER_IP},
        {"device": PROMOTER_DEVICE},
        {"email": "PROMOTER"},
    ],
    ids=["sign-in address", "sign-in browser", "own email"],
)
def test_a_self_referral_earns_nothing_and_is_flagged(referred, where):
    product, promoter = referred
    if where.get("email") == "PROMOTER":
        where = {"email": db.session.get(Merchant, promoter.merchant_id).user.email}
    order = paid(place(product, promoter.code, **where))
    assert order.status == Order.DELIVERED  # the buyer still gets the goods
    assert order.promoter_id == promoter.id and order.commission == 0
    assert "self_referral" in order.risk_flags.split()
    assert "self_referral" in rules(order)
    assert commissions() == 0
    # The merchant keeps the whole sale.
    sale = db.session.scalar(
        select(LedgerEntry.amount).where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.SALE)
    )
    assert sale == order.total


def test_the_third_referred_order_within_an_hour_from_one_browser_raises_a_risk_event(referred):
    product, promoter = referred
    device = secrets.token_hex(32)
    first = place(product, promoter.code, device=device, email="a@example.com")
    second = place(product, promoter.code, device=device, email="b@example.com")
    assert "referral_burst" not in rules(first) | rules(second)
    third = place(product, promoter.code, device=device, email="c@example.com")
    assert "referral_burst" in rules(third)
    event = db.session.execute(select(RiskEvent).where(RiskEvent.order_id == third.id)).scalars().first()
    assert [h.detail for h in event.hits if h.rule == "referral_burst"] == ["3 in 1 h"]
    # Orders without a promoter link from that browser are not counted.
    plain = place(product, None, device=secrets.token_hex(32), email="d@example.com")
    assert "referral_burst" not in rules(plain)


def test_a_merchant_referring_its_own_product_gets_no_promoter_on_the_order(referred):
    product, _promoter = referred
    seller = db.session.get(Merchant, product.merchant_id)
    own = affiliates.become_promoter(seller.id, seller.user_id)
    order = place(product, own.code)
    assert order.promoter_id is None and order.commission_bp is None


def test_a_sub_store_owner_referring_its_own_stores_order_gets_no_promoter(referred):
    product, _promoter = referred
    owner = new_merchant()
    owner.status = Merchant.PENDING
    store = SubStore(merchant_id=owner.id, code=f"s{secrets.token_hex(4)}", name="My store", status=SubStore.APPROVED)
    db.session.add(store)
    variant = product.variants[0]
    db.session.add(
        ResaleTerms(variant_id=variant.id, product_id=product.id, merchant_id=product.merchant_id, floor_price=1500)
    )
    db.session.commit()
    db.session.add(SubStoreItem(substore_id=store.id, variant_id=variant.id, product_id=product.id, price=2500))
    db.session.commit()
    own = affiliates.become_promoter(owner.id, owner.user_id)
    order = place(product, own.code, substore_code=store.code)
    assert order.substore_id == store.id and order.promoter_id is None
    # Another promoter's link on the same sub-store still counts.
    other = db.session.execute(select(Promoter).where(Promoter.id != own.id)).scalars().first()
    assert place(product, other.code, substore_code=store.code).promoter_id == other.id
