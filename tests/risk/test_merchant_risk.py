"""The merchant's side of risk control: the flags the risk engine put on its own orders, held
orders it cannot deliver, its own blacklist (and one-click blacklisting of an order's
buyer), and stricter thresholds for high-value products."""

import re

import pytest
from sqlalchemy import select
from test_risk_rules import browser, buy, order_of, pay_on_sandbox_page, shown_keys

from conftest import count, csrf_from, login, reload
from faka.accounts import users
from faka.accounts.login import record_sign_in
from faka.catalog.models import DELIVERY_MANUAL, Product
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Order
from faka.platform import settings
from faka.platform.models import AuditEvent
from faka.risk import blacklist
from faka.risk.models import BlacklistEntry

OWNER_IP = "192.0.2.44"


@pytest.fixture
def seller(app, merchant):
    client = app.test_client()
    client.get("/?lang=en")
    login(client, merchant.user)
    return client


def post(client, url, data=None, page=None):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


def product_fields(product: Product, **changes) -> dict:
    fields = {
        "title": product.title,
        "category_id": product.category_id,
        "price": "10.00",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 10,
        "low_stock_threshold": 0,
        "visible": "y",
        "risk_captcha_at": "",
        "risk_hold_at": "",
    }
    fields.update(changes)
    return fields


def self_purchase(app, merchant, product, email="buyer@example.com"):
    """An order bought from the shop owner's own sign-in address (self_purchase: 20 points)
    and paid on the sandbox page. Returns (order, the order page the buyer sees)."""
    record_sign_in(merchant.user_id, OWNER_IP, None)
    client = browser(app, OWNER_IP)
    order = order_of(buy(client, product, email=email))
    return reload(order), pay_on_sandbox_page(client, order)


# -- risk flags on the merchant's orders ------------------------------------------------------------


def test_flagged_orders_show_a_badge_and_can_be_filtered(app, seller, merchant, make_product, place):
    product = make_product(keys=5)
    honest = place(product, email="honest@example.com")
    flagged, _page = self_purchase(app, merchant, product)
    assert flagged.risk_flags == "self_purchase" and not flagged.is_held

    listing = seller.get("/merchant/orders").text
    rows = {
        number: row
        for row in re.findall(r"<tr>.*?</tr>", listing, re.S)
        for number in re.findall(r"/merchant/orders/(\w+)\"", row)
    }
    assert "risk-flag" in rows[flagged.number] and "risk-flag" not in rows[honest.number]
    assert re.search(r'title="Bought from the seller(\'|&#39;)s own IP or browser"', rows[flagged.number])

    only = seller.get("/merchant/orders?flagged=1").text
    assert flagged.number in only and honest.number not in only
    assert "self_purchase" in seller.get("/merchant/orders.csv?flagged=1").text

    detail = seller.get(f"/merchant/orders/{flagged.number}").text
    assert '<h2 id="risk-heading">Risk</h2>' in detail and "s own IP or browser</li>" in detail
    assert "Held for the platform" not in detail
    assert "Held for the platform" not in seller.get(f"/merchant/orders/{honest.number}").text


def test_a_held_manual_order_cannot_be_delivered_by_the_merchant(app, seller, merchant, make_product):
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, risk_hold_at=20)
    order, page = self_purchase(app, merchant, product)
    assert order.status == Order.PAID and order.is_held

    detail = seller.get(f"/merchant/orders/{order.number}").text
    assert "Held for the platform’s review: delivery waits until an operator releases it." in detail
    assert "Deliver by hand" not in detail  # no form to use

    refused = post(
        seller,
        f"/merchant/orders/{order.number}/deliver",
        {"content": "LICENCE-123"},
        page=f"/merchant/orders/{order.number}",
    )
    assert refused.status_code == 400
    assert "risk review. Deliver it once it is released." in refused.text
    order = reload(order)
    assert order.status == Order.PAID and order.delivery_ciphertext is None


# -- the merchant's blacklist ------------------------------------------------------------------------


def test_blacklisting_a_buyers_email_stops_them_buying_here_only(app, seller, merchant, make_product, place):
    product = make_product(keys=5)
    order = place(product, email="fraud@example.com")
    other_shop = users.create_merchant("other@shop.test", "merchant-pass-2", "Other Shop", approved=True)
    other_product = product_with_one_variant(
        slug="other-shop-product",
        merchant_id=other_shop.id,
        category_id=product.category_id,
        price=500,
        title="Elsewhere",
        max_per_order=5,
    )
    db.session.add(other_product)
    db.session.commit()
    from faka.inventory.keys import import_keys

    import_keys(other_product.variants[0], "OTHER-1\nOTHER-2")

    detail_url = f"/merchant/orders/{order.number}"
    detail = seller.get(detail_url).text
    assert "fraud@example.com" in detail  # the single order's page shows it in full
    assert re.search(r"<title>[^<]*</title>", detail)
    assert f'value="order {order.number}"' in detail  # the reason, prefilled
    assert order.device_hash is None or order.device_hash not in detail

    response = post(
        seller, f"{detail_url}/blacklist", {"kind": "email", "reason": f"order {order.number}"}, page=detail_url
    )
    assert response.status_code == 303
    entry = db.session.execute(select(BlacklistEntry)).scalar_one()
    assert (entry.kind, entry.value, entry.merchant_id) == ("email", "fraud@example.com", merchant.id)
    assert count(AuditEvent, AuditEvent.action == "blacklist.added") == 1
    assert "This buyer’s email is on your blacklist." in seller.get(detail_url).text
    assert "fraud@example.com" in seller.get("/merchant/blacklist").text

    buyer = browser(app, "203.0.113.99")
    refused = buy(buyer, product, email="fraud@example.com")
    assert refused.status_code == 403
    assert "This request cannot be accepted." in refused.text
    assert count(Order, Order.email == "fraud@example.com") == 1
    assert order_of(buy(buyer, other_product, email="fraud@example.com")).merchant_id == other_shop.id
    assert order_of(buy(buyer, product, email="honest@example.com")).merchant_id == merchant.id


def test_blacklisting_a_buyers_browser_takes_the_hash_from_the_order(app, seller, merchant, make_product):
    product = make_product(keys=5)
    buyer = browser(app, "203.0.113.7")
    order = order_of(buy(buyer, product, email="first@example.com"))
    assert order.device_hash
    detail_url = f"/merchant/orders/{order.number}"
    assert order.device_hash not in seller.get(detail_url).text

    # The form has no value field: whatever is posted as one is ignored.
    response = post(
        seller,
        f"{detail_url}/blacklist",
        {"kind": "device", "reason": "chargebacks", "value": "0" * 64},
        page=detail_url,
    )
    assert response.status_code == 303
    entry = db.session.execute(select(BlacklistEntry)).scalar_one()
    assert (entry.kind, entry.value, entry.reason) == ("device", order.device_hash, "chargebacks")
    page = seller.get("/merchant/blacklist").text
    assert "chargebacks" in page and order.device_hash not in page

    assert buy(buyer, product, email="another@example.com").status_code == 403  # same browser, new email
    assert order_of(buy(browser(app, "203.0.113.7"), product, email="another@example.com"))  # a new browser


def test_buyer_blacklist_needs_a_reason(app, seller, make_product, place):
    order = place(make_product(keys=2))
    detail_url = f"/merchant/orders/{order.number}"
    response = post(seller, f"{detail_url}/blacklist", {"kind": "email", "reason": "  "}, page=detail_url)
    assert response.status_code == 400 and "Write why" in response.text
    response = post(seller, f"{detail_url}/blacklist", {"kind": "ip", "reason": "x"}, page=detail_url)
    assert response.status_code == 400
    assert count(BlacklistEntry) == 0


def test_an_order_without_email_offers_only_the_browser(app, seller, make_product, place):
    order = place(make_product(keys=2), email=None)
    detail_url = f"/merchant/orders/{order.number}"
    page = seller.get(detail_url).text
    assert "Blacklist this buyer’s email" not in page
    response = post(seller, f"{detail_url}/blacklist", {"kind": "email", "reason": "x"}, page=detail_url)
    assert response.status_code == 400 and "no email address or browser" in response.text
    assert count(BlacklistEntry) == 0


def test_merchant_adds_and_removes_entries_on_the_blacklist_page(app, seller, merchant):
    page = seller.get("/merchant/blacklist")
    assert page.status_code == 200 and "Your blacklist is empty." in page.text
    bad = post(seller, "/merchant/blacklist", {"kind": "ip", "value": "not-an-ip", "reason": "x"})
    assert bad.status_code == 400 and "not a valid" in bad.text and count(BlacklistEntry) == 0
    ok = post(seller, "/merchant/blacklist", {"kind": "domain", "value": "@Spam.Example", "reason": "spam"})
    assert ok.status_code == 303
    entry = db.session.execute(select(BlacklistEntry)).scalar_one()
    assert (entry.kind, entry.value, entry.merchant_id) == ("domain", "spam.example", merchant.id)
    assert "spam.example" in seller.get("/merchant/blacklist").text

    removed = post(seller, f"/merchant/blacklist/{entry.id}/delete", page="/merchant/blacklist")
    assert removed.status_code == 303 and count(BlacklistEntry) == 0
    assert count(AuditEvent, AuditEvent.action == "blacklist.removed") == 1


def test_a_merchant_cannot_remove_the_operators_or_another_shops_entries(app, seller, merchant):
    other = users.create_merchant("other@shop.test", "merchant-pass-2", "Other Shop", approved=True)
    theirs = blacklist.add("email", "x@example.com", "theirs", actor_id=other.user_id, merchant_id=other.id)
    sites = blacklist.add("email", "y@example.com", "site-wide", actor_id=None)
    for entry in (theirs, sites):
        assert post(seller, f"/merchant/blacklist/{entry.id}/delete", page="/merchant/blacklist").status_code == 404
    assert count(BlacklistEntry) == 2
    page = seller.get("/merchant/blacklist").text
    assert "x@example.com" not in page and "y@example.com" not in page


def test_blacklist_page_needs_a_merchant_login(app, client):
    assert "/login" in client.get("/merchant/blacklist").headers["Location"]
    assert client.get("/merchant/blacklist", headers={"HX-Request": "true"}).status_code == 403


# -- stricter thresholds per product --------------------------------------------------------------


def test_product_form_saves_stricter_thresholds_and_refuses_laxer_ones(app, seller, make_product):
    product = make_product(keys=1)
    url = f"/merchant/products/{product.slug}/edit"
    form = seller.get(url).text
    assert "Risk (advanced)" in form and "Hold delivery for review from score" in form

    assert post(seller, url, product_fields(product, risk_captcha_at="30", risk_hold_at="20")).status_code == 303
    product = reload(product)
    assert (product.risk_captcha_at, product.risk_hold_at) == (30, 20)
    assert 'value="20"' in seller.get(url).text

    laxer = post(seller, url, product_fields(product, risk_hold_at="61"))
    assert laxer.status_code == 400 and "a higher score would be laxer" in laxer.text
    settings.set_setting("risk_hold_at", "70")
    assert post(seller, url, product_fields(product, risk_captcha_at="30", risk_hold_at="61")).status_code == 303
    for bad in ("0", "1001", "abc"):
        assert post(seller, url, product_fields(product, risk_captcha_at=bad)).status_code == 400
    assert reload(product).risk_captcha_at == 30

    assert post(seller, url, product_fields(product)).status_code == 303  # empty: the site's default again
    product = reload(product)
    assert (product.risk_captcha_at, product.risk_hold_at) == (None, None)


def test_a_product_with_a_stricter_hold_holds_what_the_site_only_flags(app, merchant, make_product):
    strict = make_product(keys=3, risk_hold_at=20, title="Expensive")
    order, page = self_purchase(app, merchant, strict, email="a@example.com")
    assert order.status == Order.PAID and order.is_held
    assert "being checked before delivery" in page.text and not shown_keys(page)
    assert count(CardKey, CardKey.order_id == order.id, CardKey.status == CardKey.SOLD) == 0

    normal = make_product(keys=3, title="Cheap")
    order, page = self_purchase(app, merchant, normal, email="b@example.com")
    assert order.status == Order.DELIVERED and order.risk_flags == "self_purchase" and not order.held_at
    assert len(shown_keys(page)) == 1
