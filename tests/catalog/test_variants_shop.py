"""Variants (规格) on the buyer's side: the product page's options, the price preview, the buy
form, the order, its page and email, reviews, and what a made-up or stale choice gets."""

import re
import secrets
from html import unescape

import pytest
from sqlalchemy import select

from conftest import count, csrf_from, reload, signed_notify, statements
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog import categories, products, variants
from faka.catalog.models import ProductVariant
from faka.catalog.products import ProductDraft
from faka.catalog.variants import VariantDraft
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey
from faka.orders.models import Order
from faka.payments.gateways import ensure_sandbox
from faka.reviews import reviews
from faka.risk import captcha

CHOOSE = "Choose one of the product's options."
RADIO = re.compile(r'<input type="radio" name="variant" value="([0-9a-f]+)"([^>]*)>')


# -- a shop from an empty install --------------------------------------------------------


def gift_card_shop(c_keys: int = 0, shelf: str = "礼品卡"):
    """From an empty database, as docs/ tell a new operator: a one-person shop, a category,
    and a product of three variants through the back office's functions. ¥50 has 5 keys,
    ¥100 (with a tier price from 3) 6 keys, ¥200 none (sold out)."""
    operator = users.create_operator(f"ops{secrets.token_hex(3)}@shop.test", "operator-pass-1", shop_name="卡小铺")
    merchant = db.session.execute(select(Merchant).where(Merchant.user_id == operator.id)).scalar_one()
    category = categories.create(shelf, None, operator.id)
    product = products.save_product(
        merchant.id, ProductDraft(title="Google Play 礼品卡", category_id=category.id, price=4800, max_per_order=5)
    )
    variants.add_variant(
        merchant.id,
        product.slug,
        VariantDraft(name="面值 ¥100", name_en="$100 card", price=9500, max_per_order=3, tiers=[(3, 9000)]),
        first_name="面值 ¥50",
        first_name_en="$50 card",
    )
    variants.add_variant(merchant.id, product.slug, VariantDraft(name="面值 ¥200", price=19000))
    ensure_sandbox()
    db.session.commit()
    product = reload(product)
    a, b, c = product.live_variants
    for variant, keys in ((a, 5), (b, 6), (c, c_keys)):
        if keys:
            import_keys(variant, "\n".join(f"GP-{variant.name[-3:]}-{i}-{secrets.token_hex(4)}" for i in range(keys)))
    return product, (a, b, c)


@pytest.fixture
def shop(app):
    return gift_card_shop()


def radios(html: str) -> dict[str, str]:
    """The variant radio buttons: key -> their attributes ("checked", "disabled")."""
    return dict(RADIO.findall(html))


def buy(client, product, variant_key=None, quantity=1, email="buyer@example.com", **extra):
    page = client.get(f"/p/{product.slug}?lang=en")
    assert page.status_code == 200
    data = {"csrf_token": csrf_from(page.text), "quantity": quantity, "email": email, "query_password": "secret-1"}
    if variant_key is not None:
        data["variant"] = variant_key
    return client.post(f"/p/{product.slug}/buy?lang=en", data={**data, **extra})


def quote(client, product, **params):
    return client.get(f"/p/{product.slug}/quote", query_string={"lang": "en", "quantity": 1, **params})


def shown_total(html: str) -> str:
    return re.search(r'<dd class="price">([^<]+)</dd>', html).group(1)


# -- the product page --------------------------------------------------------------------


def test_the_page_offers_each_variant_with_its_price_and_stock_and_the_sold_out_one_disabled(client, shop):
    product, (a, b, c) = shop
    page = client.get(f"/p/{product.slug}?lang=en").text

    options = radios(page)
    assert list(options) == [a.key, b.key, c.key]  # the merchant's order
    assert "checked" in options[a.key] and "disabled" not in options[a.key]  # the first in stock
    assert "checked" not in options[b.key] and "disabled" not in options[b.key]
    assert "disabled" in options[c.key] and "checked" not in options[c.key]
    labels = re.findall(r'<label class="variant-option[^"]*">(.*?)</label>', page, re.S)
    text = [" ".join(re.sub(r"<[^>]+>", " ", unescape(label)).split()) for label in labels]
    assert text[0] == "$50 card ¥48.00 In stock: 5"
    assert text[1] == "$100 card ¥95.00 In stock: 6 3 or more: ¥90.00 each"
    assert text[2] == "面值 ¥200 ¥190.00 Sold out"  # no English name: the Chinese one
    assert "¥48.00 – ¥190.00" in page
    # The preview and the buy bar start at the preselected variant's price.
    assert shown_total(page) == "¥48.00" and re.search(r'id="bar-total" class="price">¥48.00<', page)
    assert "1 to 5 per order" in page
    assert 'itemprop="lowPrice" content="48.00"' in page and 'itemprop="highPrice" content="190.00"' in page

    chinese = client.get(f"/p/{product.slug}?lang=zh_CN").text
    assert "面值 ¥50" in chinese and "面值 ¥100" in chinese and "$50 card" not in chinese


def test_a_link_with_v_preselects_that_variant_and_only_a_choosable_one(client, shop):
    product, (a, b, c) = shop
    page = client.get(f"/p/{product.slug}?v={b.key}&lang=en").text
    assert "checked" in radios(page)[b.key]
    assert shown_total(page) == "¥95.00" and "1 to 3 per order" in page
    for other in (c.key, "0" * 16, "x" * 500, ""):  # sold out, unknown, absurd, empty: the first in stock
        assert "checked" in radios(client.get(f"/p/{product.slug}", query_string={"v": other}).text)[a.key]


def test_the_v_page_cache_is_kept_only_for_this_products_own_keys(make_app):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        product, (a, b, _c) = gift_card_shop()
        client = app.test_client()
        cache = app.extensions["faka_pagecache"]
        for v in (b.key, b.key, "f" * 16, secrets.token_hex(8), secrets.token_hex(8)):
            assert client.get(f"/p/{product.slug}", query_string={"v": v}).status_code == 200
        pages = sorted(str(key[2]) for key in cache._items if isinstance(key, tuple) and key[0] == "product")
        assert pages == sorted([b.key, "None"])  # made-up keys share the plain page


def test_the_home_page_card_says_from_the_lowest_price(client, shop, make_product):
    make_product(title="单一规格商品", price=1234)
    english = client.get("/?lang=en").text
    assert "from ¥48.00" in english
    assert "¥12.34" in english and "from ¥12.34" not in english  # one price: as before


def test_a_single_variant_product_page_looks_as_before(client, make_product):
    product = make_product(keys=10, price=1000, max_per_order=6, tiers=[(5, 900)])
    page = client.get(f"/p/{product.slug}?lang=en").text
    assert 'name="variant"' not in page and "Choose an option" not in page and "itemscope" not in page
    assert "5 or more: ¥9.00 each" in page and "1 to 6 per order" in page
    assert re.search(r'<span class="price big">¥10.00</span>\s*<span class="stock">In stock: 10</span>', page)
    assert shown_total(page) == "¥10.00"
    response = buy(client, product, quantity=5)
    assert response.status_code == 303
    order = db.session.execute(select(Order)).scalar_one()
    assert (order.variant_id, order.variant_name, order.total) == (product.variants[0].id, None, 4500)


# -- the price preview ---------------------------------------------------------------------


def test_the_preview_prices_the_chosen_variant_with_its_tiers_and_limits(client, shop):
    product, (a, b, c) = shop
    assert shown_total(quote(client, product, variant=a.key).text) == "¥48.00"
    assert shown_total(quote(client, product, variant=b.key, quantity=2).text) == "¥190.00"
    tiered = quote(client, product, variant=b.key, quantity=3)
    assert shown_total(tiered.text) == "¥270.00"  # 3 × ¥90.00
    # The buy bar and the quantity limits follow the variant, out of band.
    assert 'id="bar-total" class="price" hx-swap-oob="true">¥270.00<' in tiered.text
    assert re.search(r'<small id="quantity-limits" hx-swap-oob="true">1 to 3 per order</small>', tiered.text)

    too_many = quote(client, product, variant=b.key, quantity=4)
    assert "This option sells 1 to 3 per order." in too_many.text and "hx-swap-oob" in too_many.text
    assert CHOOSE in quote(client, product).text  # several variants and none chosen
    assert CHOOSE in quote(client, product, variant="0" * 16).text
    picked = client.get(
        f"/p/{product.slug}/quote",
        query_string={"quantity": 1, "variant": b.key},
        headers={"HX-Request": "true", "HX-Trigger": "variants"},
    )
    assert picked.headers["HX-Replace-Url"] == f"/p/{product.slug}?v={b.key}"  # a reload keeps the choice


# -- buying a variant ----------------------------------------------------------------------


def test_buying_variant_b_reserves_only_bs_keys_and_the_order_and_email_name_it(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        product, (a, b, c) = gift_card_shop()
        client = app.test_client()
        response = buy(client, product, b.key, quantity=3)
        assert response.status_code == 303 and "/pay/" in response.headers["Location"]

        order = db.session.execute(select(Order)).scalar_one()
        assert (order.variant_id, order.variant_name) == (b.id, "面值 ¥100")
        assert (order.quantity, order.unit_price, order.total) == (3, 9000, 27000)
        held = db.session.execute(select(CardKey).where(CardKey.order_id == order.id)).scalars().all()
        assert [k.variant_id for k in held] == [b.id] * 3
        assert count(CardKey, CardKey.variant_id == a.id, CardKey.status == CardKey.AVAILABLE) == 5  # untouched
        pay_page = client.get(response.headers["Location"] + "?lang=en").text
        assert "Google Play 礼品卡 · 面值 ¥100 × 3" in pay_page

        assert client.post("/pay/sandbox/notify", data=signed_notify(order)).status_code == 200
        assert reload(order).status == Order.DELIVERED
        order_page = client.get(f"/order/{order.token}?lang=en").text
        assert "<dd>Google Play 礼品卡 · 面值 ¥100</dd>" in order_page

    message = smtp.messages[-1]
    assert "面值 ¥100" in message["Subject"]  # (header encoding may fold the space before the dot)
    body = message.get_body(("plain",)).get_content()
    assert "Google Play 礼品卡 · 面值 ¥100 × 3" in body
    assert "Google Play 礼品卡 · 面值 ¥100 × 3" in unescape(message.get_body(("html",)).get_content())


def _deleted_key(product, offered):
    variants.delete_variant(product.merchant_id, product.slug, offered[1].key)
    return offered[1].key


def _foreign_key(product, offered):
    _other, (_a, b, _c) = gift_card_shop(shelf="另一个货架")
    return b.key


@pytest.mark.parametrize(
    "choose, message, status",
    [
        (lambda product, v: None, CHOOSE, 400),  # none chosen
        (lambda product, v: "", CHOOSE, 400),
        (lambda product, v: "0" * 16, CHOOSE, 400),  # made up
        (lambda product, v: "<b>" * 20, CHOOSE, 400),  # too long for a key
        (_foreign_key, CHOOSE, 400),  # another product's
        (_deleted_key, CHOOSE, 400),  # no longer offered
        (lambda product, v: v[2].key, "Not enough stock of this option", 409),  # sold out
    ],
    ids=["none", "empty", "unknown", "too-long", "foreign", "deleted", "sold-out"],
)
def test_a_bad_variant_choice_is_refused_with_a_message_and_creates_nothing(client, shop, choose, message, status):
    product, offered = shop
    key = choose(product, offered)
    keys_before = count(CardKey, CardKey.status == CardKey.AVAILABLE)
    response = buy(client, product, key)
    assert response.status_code == status
    assert message in unescape(response.text)
    assert count(Order) == 0
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 0
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == keys_before
    # The form comes back with a variant on offer picked, and its price.
    assert "checked" in radios(response.text)[offered[0].key]
    assert shown_total(response.text) == "¥48.00"


def test_a_repeated_tap_is_one_order_per_variant(client, shop):
    product, (a, b, _c) = shop
    first = buy(client, product, b.key)
    again = buy(client, product, b.key)
    assert first.headers["Location"] == again.headers["Location"]
    other = buy(client, product, a.key)  # another variant is another order
    assert other.status_code == 303 and other.headers["Location"] != first.headers["Location"]
    assert count(Order) == 2


def test_a_failed_form_comes_back_with_the_buyers_variant(client, shop):
    product, (_a, b, _c) = shop
    response = buy(client, product, b.key, email="not-an-email")
    assert response.status_code == 400
    assert "checked" in radios(response.text)[b.key]
    assert shown_total(response.text) == "¥95.00"
    assert count(Order) == 0


def test_the_captcha_round_trip_keeps_the_variant(app, client, shop):
    from tests.risk.test_captcha import TEST_MAX_NUMBER, WIDGET, fetched_solution

    app.config["CAPTCHA_MAX_NUMBER"] = TEST_MAX_NUMBER
    product, (_a, b, _c) = shop
    disposable = "x@mailinator.com"  # the captcha's score (tests/risk/test_captcha.py)
    asked = buy(client, product, b.key, email=disposable)
    assert asked.status_code == 400 and WIDGET in asked.text
    assert "checked" in radios(asked.text)[b.key] and count(Order) == 0
    placed = buy(client, product, b.key, email=disposable, **{captcha.FIELD: fetched_solution(client)})
    assert placed.status_code == 303
    assert db.session.execute(select(Order)).scalar_one().variant_id == b.id


def test_variant_names_are_escaped(client, shop):
    product, (a, _b, _c) = shop
    a.name_en = '<img src=x onerror="alert(1)">'
    db.session.commit()
    page = client.get(f"/p/{product.slug}?lang=en").text
    assert "<img src=x" not in page and "&lt;img src=x onerror=" in page


# -- after the sale ------------------------------------------------------------------------


def test_order_lookup_review_and_complaint_pages_name_the_variant(client, shop):
    product, (_a, b, _c) = shop
    response = buy(client, product, b.key)
    order = db.session.execute(select(Order)).scalar_one()
    client.post("/pay/sandbox/notify", data=signed_notify(order))
    assert reload(order).status == Order.DELIVERED

    found = client.get("/lookup?lang=en").text  # the orders placed in this browser
    assert "Google Play 礼品卡 · 面值 ¥100 × 1" in found
    reviews.submit_review(order.token, 5, "到账很快")
    product_page = client.get(f"/p/{product.slug}?lang=en").text
    assert re.search(r'class="review-variant"><small>Bought: 面值 ¥100</small>', product_page)
    complaint = client.get(f"/order/{order.token}/complaint?lang=en")
    assert complaint.status_code == 200 and "Google Play 礼品卡 · 面值 ¥100 × 1" in complaint.text
    assert response.status_code == 303


# -- statements per page -------------------------------------------------------------------


def test_statements_per_product_page_do_not_grow_with_variants(client, make_product):
    product = make_product(keys=3, tiers=[(5, 900)])
    client.get(f"/p/{product.slug}")
    one = statements(client, f"/p/{product.slug}")
    preview_one = statements(client, f"/p/{product.slug}/quote?quantity=1")
    product.variants[0].name = "V0"
    for i in range(1, 20):
        variant = ProductVariant(key=variants.new_key(), name=f"V{i}", price=1000 + i, position=i)
        variant.tiers.extend(variants.TierPrice(min_quantity=q, unit_price=900) for q in (5, 10))
        product.variants.append(variant)
    variants.sync_price_range(product)
    db.session.commit()
    for variant in product.variants[1:]:
        import_keys(variant, f"K-{variant.key}\nL-{variant.key}")
    twenty = statements(client, f"/p/{product.slug}")
    assert len(radios(client.get(f"/p/{product.slug}").text)) == 20
    assert twenty == one
    last = product.variants[-1].key
    assert statements(client, f"/p/{product.slug}/quote?quantity=1&variant={last}") == preview_one


def test_a_buyer_holding_one_variant_is_not_held_back_on_another(app, shop):
    """The stock-hoarding rule looks at the keys of the variant bought: unpaid orders on
    ¥50 do not count against ¥100's share."""
    product, (a, b, _c) = shop
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = "198.51.100.9"
    assert buy(client, product, a.key, quantity=2).status_code == 303
    assert buy(client, product, b.key, quantity=1).status_code == 303  # 1 of 3 unsold: fine
    assert count(Order) == 2
