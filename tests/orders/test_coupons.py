"""Coupons: created only with sane settings, applied to the whole order total, checked
again at checkout, and never used more often than their limit, even by racing buyers."""

import re
import secrets
from datetime import timedelta

import pytest
from flask import current_app
from flask_babel import force_locale
from playwright.sync_api import expect
from sqlalchemy import func, select

from conftest import csrf_from, reload, run_together, signed_notify
from faka.accounts import users
from faka.catalog.models import TierPrice
from faka.catalog.variants import product_with_one_variant
from faka.core.errors import NotFound, OutOfStock
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.orders import checkout
from faka.orders.coupons import (
    CouponBelowMinimum,
    CouponCodeTaken,
    CouponExpired,
    CouponInvalid,
    CouponMakesOrderFree,
    CouponNotForProduct,
    CouponSettingsInvalid,
    CouponUnknown,
    CouponUsedUp,
    create_coupon,
    deactivate_coupon,
    list_coupons,
    quote,
)
from faka.orders.models import Coupon, Order


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def order_with(product, quantity=1, coupon=None) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(product.slug, quantity, "buyer@example.com", None, coupon_code=coupon)


@pytest.fixture
def product(make_product):
    """Stock for orders of three keys: an unpaid order holds at most half of what is left
    (faka/inventory/stock.py)."""
    return make_product(keys=10)


@pytest.fixture
def other_merchant(app):
    return users.create_merchant(f"o{secrets.token_hex(4)}@shop.test", "merchant-pass-2", "Other Shop", approved=True)


@pytest.fixture
def other_product(other_merchant, category):
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=other_merchant.id,
        category_id=category.id,
        title="Other's product",
        price=1000,
        delivery_type="fixed",
        fixed_content_ciphertext=None,
    )
    db.session.add(product)
    db.session.commit()
    return product


# -- creating coupons -------------------------------------------------------------------

BAD_SETTINGS = {
    "percent-150": (dict(kind="percent", value=15000), "less than 100 %"),
    "percent-100": (dict(kind="percent", value=10000), "less than 100 %"),
    "percent-0": (dict(kind="percent", value=0), "more than 0 %"),
    "percent-negative": (dict(kind="percent", value=-500), "more than 0 %"),
    "fixed-0": (dict(kind="fixed", value=0), "greater than zero"),
    "fixed-negative": (dict(kind="fixed", value=-100), "greater than zero"),
    "fixed-huge": (dict(kind="fixed", value=10**12), "too large"),
    "unknown-kind": (dict(kind="bogo", value=100), "fixed amount or a percentage"),
    "code-too-short": (dict(code="AB"), "3 to 32"),
    "code-too-long": (dict(code="A" * 33), "3 to 32"),
    "code-with-space": (dict(code="SAVE 10"), "3 to 32"),
    "code-not-ascii": (dict(code="优惠券码"), "3 to 32"),
    "negative-minimum": (dict(min_amount=-1), "cannot be negative"),
    "usage-limit-0": (dict(usage_limit=0), "at least 1"),
    "expired-already": (dict(expires_at=utcnow() - timedelta(minutes=1)), "in the future"),
}


@pytest.mark.parametrize("change,message", BAD_SETTINGS.values(), ids=BAD_SETTINGS.keys())
def test_coupon_with_bad_settings_is_refused_and_nothing_is_saved(app, merchant, change, message):
    settings = dict(code="SAVE10", kind="percent", value=1000) | change
    with pytest.raises(CouponSettingsInvalid) as refused:
        create_coupon(merchant.id, **settings)
    with force_locale("en"):
        assert message in str(refused.value.message)
    assert count(Coupon) == 0


def test_coupon_of_150_percent_is_refused_in_both_languages(app, merchant):
    with pytest.raises(CouponSettingsInvalid) as refused:
        create_coupon(merchant.id, "HALFPLUS", "percent", 15000)
    with force_locale("en"):
        assert str(refused.value.message) == (
            "A percentage coupon must take off more than 0 % and less than 100 % (orders cannot be free)."
        )
    with force_locale("zh_CN"):
        assert str(refused.value.message) == "百分比优惠券的折扣必须大于 0 % 且小于 100 %（订单不能免费）。"
    assert count(Coupon) == 0


def test_coupon_for_someone_elses_product_is_refused(app, merchant, other_product):
    with pytest.raises(CouponSettingsInvalid) as refused:
        create_coupon(merchant.id, "STEAL", "fixed", 100, product_id=other_product.id)
    assert str(refused.value.message) == "请选择您自己的商品，或适用于全部商品。"  # zh_CN is the default
    assert count(Coupon) == 0


def test_coupon_code_is_stored_upper_case_and_unique_per_merchant(app, merchant, other_merchant):
    coupon = create_coupon(merchant.id, " save-10_x ", "percent", 1000)
    assert reload(coupon).code == "SAVE-10_X" and coupon.active and coupon.used_count == 0
    with pytest.raises(CouponCodeTaken):
        create_coupon(merchant.id, "Save-10_X", "fixed", 100)
    create_coupon(other_merchant.id, "SAVE-10_X", "fixed", 100)  # another shop may use the same code
    assert count(Coupon) == 2


def test_merchant_lists_and_deactivates_only_its_own_coupons(app, merchant, other_merchant, product):
    mine = create_coupon(merchant.id, "MINE", "fixed", 100)
    theirs = create_coupon(other_merchant.id, "THEIRS", "fixed", 100)
    assert [c.code for c in list_coupons(merchant.id)] == ["MINE"]
    with pytest.raises(NotFound):
        deactivate_coupon(theirs.id, merchant.id)
    assert reload(theirs).active
    deactivate_coupon(mine.id, merchant.id)
    assert not reload(mine).active
    with pytest.raises(CouponUnknown):
        order_with(product, 1, "MINE")


# -- pricing ----------------------------------------------------------------------------


def test_percent_coupon_applies_to_the_whole_order_not_one_unit(app, merchant, product):
    coupon = create_coupon(merchant.id, "TEN", "percent", 1000)
    order = reload(order_with(product, 3, "ten"))
    assert (order.unit_price, order.quantity, order.discount, order.total) == (1000, 3, 300, 2700)
    assert order.total == order.unit_price * order.quantity - order.discount
    assert order.coupon_id == coupon.id
    assert reload(coupon).used_count == 1


def test_percent_coupon_uses_the_tier_price_and_rounds_down(app, merchant, make_product):
    product = make_product(keys=10, price=999)
    product.variants[0].tiers.append(TierPrice(min_quantity=3, unit_price=899))
    db.session.commit()
    create_coupon(merchant.id, "FIFTEEN", "percent", 1500)
    price = quote(product, product.variants[0], 1, "fifteen", utcnow())
    assert (price.subtotal, price.discount, price.total) == (999, 149, 850)  # 149.85 -> 149
    order = reload(order_with(product, 3, "FIFTEEN"))
    assert (order.unit_price, order.discount, order.total) == (899, 404, 2293)  # 2697 * 15 % = 404.55


def test_fixed_coupon_takes_its_amount_off_the_total(app, merchant, product):
    create_coupon(merchant.id, "FIVE", "fixed", 500)
    order = reload(order_with(product, 3, "FIVE"))
    assert (order.discount, order.total) == (500, 2500)


def test_coupon_that_would_make_the_order_free_is_refused(app, merchant, product):
    create_coupon(merchant.id, "BIG", "fixed", 2000)
    with pytest.raises(CouponMakesOrderFree):
        order_with(product, 2, "BIG")
    assert count(Order) == 0
    assert reload(order_with(product, 3, "BIG")).total == 1000


def test_minimum_amount_is_checked_against_the_whole_subtotal(app, merchant, product):
    create_coupon(merchant.id, "MIN30", "fixed", 300, min_amount=3000)
    with pytest.raises(CouponBelowMinimum) as refused:
        order_with(product, 2, "MIN30")
    with force_locale("en"):
        assert str(refused.value.message) == "This coupon needs an order of at least ¥30.00."
    with force_locale("zh_CN"):
        assert str(refused.value.message) == "订单金额满 ¥30.00 才能使用此优惠券。"
    assert count(Order) == 0
    assert reload(order_with(product, 3, "MIN30")).total == 2700


def test_expired_coupon_is_refused_at_checkout_even_after_a_good_preview(app, merchant, product):
    coupon = create_coupon(merchant.id, "SOON", "fixed", 100, expires_at=utcnow() + timedelta(hours=1))
    assert quote(product, product.variants[0], 1, "SOON", utcnow()).total == 900
    with pytest.raises(CouponExpired):
        quote(product, product.variants[0], 1, "SOON", utcnow() + timedelta(hours=2))
    coupon.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    with pytest.raises(CouponExpired):
        order_with(product, 1, "SOON")
    assert count(Order) == 0 and reload(coupon).used_count == 0
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 0


def test_product_coupon_applies_only_to_that_product(app, merchant, make_product):
    first, second = make_product(keys=2), make_product(keys=2)
    create_coupon(merchant.id, "ONLYFIRST", "fixed", 100, product_id=first.id)
    with pytest.raises(CouponNotForProduct):
        order_with(second, 1, "ONLYFIRST")
    assert reload(order_with(first, 1, "ONLYFIRST")).total == 900


def test_merchant_a_coupon_does_not_apply_to_merchant_b_product(app, merchant, other_merchant, make_product, category):
    create_coupon(merchant.id, "SHOPA", "percent", 5000)
    create_coupon(other_merchant.id, "SHARED", "fixed", 100)
    create_coupon(merchant.id, "SHARED", "fixed", 700)
    b_product = make_product(keys=2)
    b_product.merchant_id = other_merchant.id
    db.session.commit()
    with pytest.raises(CouponUnknown):
        order_with(b_product, 1, "SHOPA")
    assert count(Order) == 0
    assert reload(order_with(b_product, 1, "SHARED")).discount == 100  # B's own coupon, not A's


def test_usage_limit_is_enforced_and_failed_orders_do_not_use_it_up(app, merchant, make_product):
    product = make_product(keys=3)
    coupon = create_coupon(merchant.id, "TWICE", "fixed", 100, usage_limit=2)
    with pytest.raises(OutOfStock):
        order_with(product, 4, "TWICE")
    assert reload(coupon).used_count == 0  # rolled back with the order
    order_with(product, 1, "TWICE")
    order_with(product, 1, "TWICE")
    with pytest.raises(CouponUsedUp):
        order_with(product, 1, "TWICE")
    assert reload(coupon).used_count == 2
    assert count(Order) == 2
    assert reload(order_with(product, 1)).discount == 0  # without the coupon the buyer still buys


def test_ten_racing_checkouts_use_a_three_use_coupon_exactly_three_times(app, merchant, make_product):
    product = make_product(keys=10, max_per_order=1)
    coupon = create_coupon(merchant.id, "RACE", "percent", 2000, usage_limit=3)
    slug, product_id, coupon_id = product.slug, product.id, coupon.id
    db.session.commit()

    def buy(i):
        try:
            return checkout.place_order(slug, 1, f"r{i}@example.com", None, coupon_code="RACE").id
        except CouponInvalid as exc:
            return type(exc).__name__

    results, errors = run_together(app, 10, buy)

    assert errors == []
    order_ids = [r for r in results if isinstance(r, int)]
    # Decision: a buyer who loses the race is refused with a clear message rather than
    # charged the full price they did not agree to.
    assert sorted(r for r in results if not isinstance(r, int)) == ["CouponUsedUp"] * 7
    assert len(order_ids) == 3
    db.session.commit()
    orders = db.session.execute(select(Order).where(Order.product_id == product_id)).scalars().all()
    assert sorted(o.id for o in orders) == sorted(order_ids)
    assert {(o.discount, o.total, o.coupon_id) for o in orders} == {(200, 800, coupon_id)}
    assert db.session.get(Coupon, coupon_id).used_count == 3
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 3


# -- the product page -------------------------------------------------------------------


def test_product_page_has_coupon_field_and_a_visitor_independent_preview(make_app, make_product):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        product = make_product(keys=2, min_per_order=2, price=1500)
        page = app.test_client().get(f"/p/{product.slug}?lang=en").text
        assert 'name="coupon"' in page and "Coupon code (optional)" in page
        coupon_input = re.search(r'<input[^>]*name="coupon"[^>]*>', page).group(0)
        assert f'hx-get="/p/{product.slug}/quote"' in coupon_input
        assert 'hx-trigger="change, keyup changed delay:400ms"' in coupon_input
        assert 'hx-include="#quantity, #coupon"' in coupon_input and 'hx-target="#price-preview"' in coupon_input
        preview = re.search(r'<div id="price-preview".*?</div>', page, re.S).group(0)
        assert "¥30.00" in preview  # the default quantity's total, the same for everyone


def test_preview_shows_subtotal_discount_and_total(client, merchant, product):
    create_coupon(merchant.id, "TEN", "percent", 1000)
    response = client.get(f"/p/{product.slug}/quote", query_string={"quantity": 3, "coupon": "ten", "lang": "en"})
    assert response.status_code == 200 and response.headers["Cache-Control"] == "no-store"
    text = re.sub(r"\s+", " ", response.text)
    assert "<dt>Subtotal</dt><dd>¥30.00</dd>" in text
    assert "<dt>Coupon TEN</dt><dd>-¥3.00</dd>" in text
    assert '<dt>Total</dt><dd class="price">¥27.00</dd>' in text
    assert count(Order) == 0  # a preview changes nothing


def test_preview_explains_a_bad_coupon_in_both_languages(client, merchant, product):
    create_coupon(merchant.id, "GONE", "fixed", 100, usage_limit=1)
    db.session.execute(Coupon.__table__.update().values(used_count=1))
    db.session.commit()
    chinese = client.get(f"/p/{product.slug}/quote", query_string={"quantity": 1, "coupon": "gone"})
    assert chinese.status_code == 200 and "此优惠券已被用完。" in chinese.text and 'class="alert"' in chinese.text
    english = client.get(f"/p/{product.slug}/quote", query_string={"quantity": 1, "coupon": "nope", "lang": "en"})
    assert "This coupon code is not valid." in english.text
    quantity = client.get(f"/p/{product.slug}/quote", query_string={"quantity": 50, "lang": "en"})
    assert "That quantity is not allowed for this product." in quantity.text
    assert client.get("/p/nosuchproduct/quote", query_string={"quantity": 1}).status_code == 404


def test_post_with_bad_coupon_shows_the_message_and_creates_no_order(client, merchant, product):
    create_coupon(merchant.id, "ONLY-OTHER", "fixed", 100, expires_at=utcnow() + timedelta(days=1))
    page = client.get(f"/p/{product.slug}?lang=en")
    response = client.post(
        f"/p/{product.slug}/buy",
        data={"csrf_token": csrf_from(page.text), "quantity": 2, "email": "b@example.com", "coupon": "NOPE"},
    )
    assert response.status_code == 400
    assert "This coupon code is not valid." in response.text
    assert re.search(r'<div class="field invalid">\s*<label for="coupon">', response.text)
    assert 'value="NOPE"' in response.text and 'value="b@example.com"' in response.text
    assert count(Order) == 0
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 0


def test_buyer_pays_the_discounted_total_and_the_order_page_shows_it(client, merchant, product):
    coupon = create_coupon(merchant.id, "TEN", "percent", 1000)
    page = client.get(f"/p/{product.slug}?lang=en")
    response = client.post(
        f"/p/{product.slug}/buy", data={"csrf_token": csrf_from(page.text), "quantity": 3, "coupon": "ten"}
    )
    assert response.status_code == 303
    order = db.session.execute(select(Order)).scalar_one()
    assert (order.discount, order.total, order.coupon_id) == (300, 2700, coupon.id)
    order_page = client.get(f"/order/{order.token}").text
    assert "¥27.00" in order_page and "¥30.00" not in order_page
    assert "¥27.00" in client.get(response.headers["Location"]).text  # the gateway's pay page
    assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    assert reload(order).status == Order.DELIVERED
    sale = db.session.execute(select(LedgerEntry).where(LedgerEntry.kind == LedgerEntry.SALE)).scalar_one()
    assert sale.amount == 2700


def test_preview_updates_as_the_buyer_types_in_a_real_browser(live_server, make_product, merchant, phone):
    _app, base = live_server
    product = make_product(keys=6)
    create_coupon(merchant.id, "TEN", "percent", 1000)
    phone.goto(base + f"/p/{product.slug}?lang=en")
    assert phone.inner_text("#price-preview").split() == ["Total", "¥10.00"]
    phone.fill("#quantity", "")
    phone.locator("#quantity").press_sequentially("3")
    phone.wait_for_selector("#price-preview >> text=¥30.00")
    phone.locator("#coupon").press_sequentially("ten")
    phone.wait_for_selector("#price-preview >> text=¥27.00")
    assert phone.inner_text("#price-preview").split() == [
        "Subtotal",
        "¥30.00",
        "Coupon",
        "TEN",
        "-¥3.00",
        "Total",
        "¥27.00",
    ]
    phone.locator("#coupon").press_sequentially("X")
    phone.wait_for_selector("#price-preview >> text=This coupon code is not valid.")
    phone.locator("#coupon").press("Backspace")
    phone.wait_for_selector("#price-preview >> text=¥27.00")
    # As a buyer who reads the total first: a preview request still in flight on a busy
    # machine would be cut off by the page change, and htmx logs that as a console error.
    expect(phone.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
    phone.click("button.primary")
    phone.wait_for_url("**/pay/*")
    assert "¥27.00" in phone.inner_text(".pay")
    assert phone.console_errors == []


def test_order_expiring_unpaid_gives_its_coupon_use_back(app, merchant, make_product, pay):
    from conftest import expire_and_reconcile

    product = make_product(keys=3)
    coupon = create_coupon(merchant.id, "ONCE", "fixed", 100, usage_limit=1)
    abandoned = order_with(product, 1, "ONCE")
    assert reload(coupon).used_count == 1
    with pytest.raises(CouponUsedUp):
        order_with(product, 1, "ONCE")
    expire_and_reconcile(abandoned)
    assert reload(coupon).used_count == 0
    second = order_with(product, 1, "ONCE")  # the use is available again
    assert second.discount == 100 and reload(coupon).used_count == 1
    pay(abandoned)  # the first buyer pays late after all: honoured, and counted
    assert reload(abandoned).status == Order.DELIVERED
    assert reload(coupon).used_count == 2
