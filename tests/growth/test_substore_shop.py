"""A reseller's sub-store (分站) as a buyer sees it: the store's page and its product pages
at /s/<code> (and at / and /p/<slug> on the store's own domain), buying there at the
store's price through the platform's checkout, the money split at delivery, and the
order page and email naming the store."""

import re

import pytest
from helpers import store_selling
from sqlalchemy import func, select

from conftest import count, csrf_from, key_texts, reload, signed_notify, statements
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.extensions import db
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.platform import settings

DOMAIN = "shop.moon.test"


@pytest.fixture
def store(app, make_product):
    """An approved reseller's store "Moon Store" selling the merchant's product (floor
    ¥8.00, the platform's price ¥10.00) at ¥12.00, with the resale programme open."""
    product = make_product(keys=5, price=1000, title="Moon card")
    return store_selling(
        product, "Moon Store", DOMAIN, price=1200, floor_price=800, announcement="**Welcome** to the moon"
    )


def add_item(substore: SubStore, product, floor: int, price: int, position: int = 0) -> SubStoreItem:
    variant = product.variants[0]
    db.session.add(
        ResaleTerms(variant_id=variant.id, product_id=product.id, merchant_id=product.merchant_id, floor_price=floor)
    )
    item = SubStoreItem(
        substore_id=substore.id, variant_id=variant.id, product_id=product.id, price=price, position=position
    )
    db.session.add(item)
    db.session.commit()
    return item


def the_item(substore: SubStore) -> SubStoreItem:
    return db.session.execute(select(SubStoreItem).where(SubStoreItem.substore_id == substore.id)).scalars().first()


def buy_in_store(client, substore: SubStore, slug: str, quantity: int = 1, **extra):
    page = client.get(f"/s/{substore.code}/p/{slug}?lang=en")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.text),
        "quantity": quantity,
        "email": "buyer@example.com",
        "query_password": "secret-1",
        "substore": substore.code,
    }
    data.update(extra)
    return client.post(f"/p/{slug}/buy", data=data)


def slug_of(substore: SubStore) -> str:
    return db.session.get(Product, the_item(substore).product_id).slug


def ledger(account_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.merchant_id == account_id)
        .group_by(LedgerEntry.kind)
    )
    return dict(rows.all())


# -- the store's pages ----------------------------------------------------------------------


def test_store_page_shows_its_identity_and_its_items_at_its_prices(client, store):
    page = client.get(f"/s/{store.code}?lang=en")
    assert page.status_code == 200
    assert "Moon Store" in page.text
    assert "<strong>Welcome</strong> to the moon" in page.text  # the shop's sanitised Markdown
    assert "QQ 5551234" in page.text
    assert "Moon card" in page.text and "¥12.00" in page.text and "In stock: 5" in page.text
    assert "¥10.00" not in page.text and "¥8.00" not in page.text  # neither the platform's price nor the floor
    assert f'href="/s/{store.code}/p/{slug_of(store)}"' in page.text


def test_store_page_lists_items_in_the_resellers_order_and_skips_hidden_ones(client, store, make_product):
    the_item(store).position = 5
    db.session.commit()
    add_item(store, make_product(keys=1, price=500, title="Sun card"), floor=400, price=450, position=1)
    hidden = add_item(store, make_product(keys=1, price=500, title="Hidden card"), floor=400, price=450, position=2)
    hidden.hidden = True
    db.session.commit()
    page = client.get(f"/s/{store.code}").text
    assert page.index("Sun card") < page.index("Moon card")
    assert "Hidden card" not in page


def test_store_product_page_names_the_store_and_posts_the_store_to_checkout(client, store):
    slug = slug_of(store)
    page = client.get(f"/s/{store.code}/p/{slug}?lang=en")
    assert page.status_code == 200
    brand = re.search(r'<a class="brand" href="([^"]+)">([^<]*)</a>', page.text)
    assert brand.group(1) == f"/s/{store.code}" and brand.group(2).strip() == "Moon Store"
    assert "Sold by Moon Store" in page.text and "Test Shop" not in page.text
    assert f'action="/p/{slug}/buy"' in page.text
    assert f'name="substore" id="substore" value="{store.code}"' in page.text
    assert "¥12.00" in page.text and "¥10.00" not in page.text
    assert 'name="coupon"' not in page.text  # no coupons in a store


def test_price_preview_in_the_store_charges_the_store_price(client, store):
    slug = slug_of(store)
    answer = client.get(f"/p/{slug}/quote?quantity=3&substore={store.code}&lang=en")
    assert answer.status_code == 200 and "¥36.00" in answer.text
    assert "¥30.00" in client.get(f"/p/{slug}/quote?quantity=3&lang=en").text  # the platform's own price
    store.status = SubStore.FROZEN
    db.session.commit()
    assert "This store is not open." in client.get(f"/p/{slug}/quote?quantity=3&substore={store.code}&lang=en").text


def test_unknown_store_is_a_plain_404(client, store):
    assert client.get("/s/nosuchstore").status_code == 404
    assert client.get(f"/s/{store.code}/p/nosuchproduct").status_code == 404


@pytest.mark.parametrize("lang, text", [("en", "This store is not open"), ("zh_CN", "该分站未开放")])
@pytest.mark.parametrize("closure", ["pending", "rejected", "frozen", "programme off", "owner account frozen"])
def test_a_store_that_is_not_open_says_so_with_a_404(client, store, closure, lang, text):
    if closure == "programme off":
        settings.set_setting("resale_enabled", "0")
    elif closure == "owner account frozen":
        db.session.get(Merchant, store.merchant_id).status = Merchant.FROZEN
        db.session.commit()
    else:
        store.status = closure
        db.session.commit()
    for path in (f"/s/{store.code}", f"/s/{store.code}/p/{slug_of(store)}"):
        page = client.get(f"{path}?lang={lang}")
        assert page.status_code == 404
        assert text in page.text and "Moon card" not in page.text


# -- buying in the store ------------------------------------------------------------------


def test_buying_in_the_store_charges_its_price_and_splits_the_money_at_delivery(app, client, store, merchant, smtp):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    response = buy_in_store(client, store, slug_of(store), quantity=2)
    assert response.status_code == 303
    order = db.session.execute(select(Order)).scalar_one()
    assert (order.total, order.substore_id, order.resale_base) == (2400, store.id, 1600)

    paid = client.post("/pay/sandbox/notify", data=signed_notify(order))
    assert paid.status_code in (200, 303)
    order = reload(order)
    assert order.status == Order.DELIVERED
    fee = settings.programme_fee_bp("resale")
    reseller = ledger(store.merchant_id)
    assert reseller[LedgerEntry.RESALE] == 800  # 2 × (¥12.00 − ¥8.00)
    assert reseller[LedgerEntry.RESALE_FEE] == -(800 * fee // 10000)
    assert ledger(merchant.id)[LedgerEntry.SALE] == 1600  # 2 × the floor

    # The order page: the store's name and contact, the merchant's keys.
    page = client.get(f"/order/{order.token}?lang=en")
    assert "Moon Store" in page.text and "QQ 5551234" in page.text
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page.text)
    assert sorted(shown) == sorted(key_texts(order))
    # The delivery email names the store too.
    (message,) = smtp.messages
    body = message.get_body(("plain",)).get_content()
    assert "Moon Store" in body and "QQ 5551234" in body and shown[0] in body


def test_an_order_outside_the_store_names_no_store(client, store, place, pay):
    order = place(db.session.get(Product, the_item(store).product_id))
    pay(order)
    page = client.get(f"/order/{order.token}?lang=en")
    assert order.total == 1000 and reload(order).substore_id is None
    assert "Moon Store" not in page.text and "Bought in" not in page.text


def withdraw_item(store, how):
    item = the_item(store)
    if how == "hidden":
        item.hidden = True
    elif how == "floor raised above the price":
        db.session.execute(
            select(ResaleTerms).where(ResaleTerms.variant_id == item.variant_id)
        ).scalar_one().floor_price = 1300
    elif how == "terms withdrawn":
        db.session.execute(
            select(ResaleTerms).where(ResaleTerms.variant_id == item.variant_id)
        ).scalar_one().active = False
    elif how == "frozen store":
        store.status = SubStore.FROZEN
    elif how == "owner account frozen":
        db.session.get(Merchant, store.merchant_id).status = Merchant.FROZEN
    elif how == "programme off":
        settings.set_setting("resale_enabled", "0", commit=False)
    db.session.commit()


@pytest.mark.parametrize(
    "how, message",
    [
        ("hidden", "This store does not sell this item at the moment."),
        ("floor raised above the price", "This store does not sell this item at the moment."),
        ("terms withdrawn", "This store does not sell this item at the moment."),
        ("frozen store", "This store is not open"),
        ("owner account frozen", "This store is not open"),
        ("programme off", "This store is not open"),
    ],
)
def test_an_item_off_sale_in_the_store_is_not_shown_and_cannot_be_bought(client, store, how, message):
    slug = slug_of(store)
    page = client.get(f"/s/{store.code}/p/{slug}?lang=en")
    token = csrf_from(page.text)
    withdraw_item(store, how)
    assert "Moon card" not in client.get(f"/s/{store.code}").text
    assert client.get(f"/s/{store.code}/p/{slug}").status_code == 404
    # The page still open in the buyer's browser: the order is refused, with the reason.
    data = {"csrf_token": token, "quantity": 1, "substore": store.code}
    refused = client.post(f"/p/{slug}/buy?lang=en", data=data)
    assert refused.status_code == 404
    assert message in refused.text
    assert count(Order) == 0


def test_a_coupon_is_refused_in_the_store(client, store):
    response = buy_in_store(client, store, slug_of(store), coupon="SAVE10")
    assert response.status_code == 400
    assert "Coupons are not accepted in this store." in response.text
    assert "Moon Store" in response.text  # the store's page again, not the platform's
    assert count(Order) == 0


def test_a_refused_order_comes_back_on_the_store_page_with_its_message(client, store):
    response = buy_in_store(client, store, slug_of(store), quantity=9)  # 5 keys in stock
    assert response.status_code == 409
    assert "Moon Store" in response.text and "¥12.00" in response.text
    assert f'name="substore" id="substore" value="{store.code}"' in response.text
    assert count(Order) == 0


# -- the store's own domain ---------------------------------------------------------------


def test_the_stores_domain_serves_its_pages(client, store):
    slug = slug_of(store)
    home = client.get("/?lang=en", headers={"Host": "Shop.Moon.test:8443"})
    assert home.status_code == 200
    assert "Moon Store" in home.text and "¥12.00" in home.text
    assert f'href="/p/{slug}"' in home.text  # its links stay on its domain
    product = client.get(f"/p/{slug}?lang=en", headers={"Host": DOMAIN})
    assert product.status_code == 200
    assert "Sold by Moon Store" in product.text and "¥12.00" in product.text and "¥10.00" not in product.text
    assert f'value="{store.code}"' in product.text
    # Every other path is the platform's, on the store's domain too.
    assert "Find my order" in client.get("/lookup?lang=en", headers={"Host": DOMAIN}).text


def test_buying_on_the_stores_domain_places_a_store_order(client, store):
    slug = slug_of(store)
    page = client.get(f"/p/{slug}", headers={"Host": DOMAIN})
    response = client.post(
        f"/p/{slug}/buy",
        headers={"Host": DOMAIN},
        data={"csrf_token": csrf_from(page.text), "quantity": 1, "substore": store.code},
    )
    assert response.status_code == 303
    order = db.session.execute(select(Order)).scalar_one()
    assert (order.total, order.substore_id) == (1200, store.id)


def test_another_host_is_the_platform_as_before(client, store):
    slug = slug_of(store)
    for host in ("localhost", "other.test", "moon.test"):
        home = client.get("/?lang=en", headers={"Host": host})
        assert home.status_code == 200 and "Moon Store" not in home.text
        product = client.get(f"/p/{slug}?lang=en", headers={"Host": host})
        assert "¥10.00" in product.text and "Moon Store" not in product.text


def test_a_closed_stores_domain_says_the_store_is_not_open(client, store):
    store.status = SubStore.FROZEN
    db.session.commit()
    page = client.get("/?lang=en", headers={"Host": DOMAIN})
    assert page.status_code == 404 and "This store is not open" in page.text


@pytest.mark.parametrize("path", ["/login", "/merchant/", "/operator/", "/s/another-store", "/shop/abc?x=1", "/nope"])
def test_the_stores_domain_sends_everything_else_to_the_platform(client, store, path):
    response = client.get(path, headers={"Host": DOMAIN})
    assert response.status_code == 302
    assert response.headers["Location"] == f"http://localhost{path}"
    # The platform's own host is served as ever.
    assert client.get(path).status_code != 302 or path.startswith(("/merchant", "/operator"))


def test_the_stores_domain_serves_what_its_buyers_need(client, store):
    slug = slug_of(store)
    for path in ("/lookup", "/static/css/faka.css", "/terms", "/privacy", f"/p/{slug}/quote?quantity=1"):
        assert client.get(path, headers={"Host": DOMAIN}).status_code == 200, path
    response = buy_in_store(client, store, slug)
    order = db.session.execute(select(Order)).scalar_one()
    assert response.status_code == 303
    page = client.get(f"/order/{order.token}?lang=en", headers={"Host": DOMAIN})
    assert page.status_code == 200 and "Moon Store" in page.text
    assert client.get(f"/pay/{order.token}", headers={"Host": DOMAIN}).status_code in (200, 303)


def test_the_store_of_a_frozen_account_takes_no_order(client, store):
    slug = slug_of(store)
    token = csrf_from(client.get(f"/s/{store.code}/p/{slug}?lang=en").text)
    db.session.get(Merchant, store.merchant_id).status = Merchant.FROZEN
    db.session.commit()
    refused = client.post(f"/p/{slug}/buy?lang=en", data={"csrf_token": token, "quantity": 1, "substore": store.code})
    assert refused.status_code == 404 and "This store is not open" in refused.text
    assert count(Order) == 0
    assert client.get("/?lang=en", headers={"Host": DOMAIN}).status_code == 404


def test_a_promoter_whose_account_is_frozen_earns_nothing(app, make_product):
    from helpers import buy, new_promoter, open_programmes, opt_in

    open_programmes()
    product = make_product(keys=3, price=1000, title="Star card")
    opt_in(product, 1000)
    account, promoter = new_promoter()
    assert buy(product, promoter=promoter).promoter_id == promoter.id
    account = db.session.get(Merchant, account.id)
    account.status = Merchant.FROZEN
    db.session.commit()
    order = buy(product, promoter=promoter)
    assert order.promoter_id is None and not order.commission


def test_the_store_page_costs_the_same_statements_for_one_item_and_for_five(client, store, make_product):
    one = statements(client, f"/s/{store.code}")
    for i in range(4):
        add_item(store, make_product(keys=2, price=1000, title=f"Star card {i}"), floor=800, price=1100, position=i + 1)
    five = statements(client, f"/s/{store.code}")
    assert "Star card 3" in client.get(f"/s/{store.code}").text
    assert five == one


def test_pages_on_the_stores_domain_link_within_it(client, store):
    # The order page and a refused order's page, on the store's domain, link to the store
    # at / and /p/<slug> there, not to /s/<code> (which the domain sends to the platform).
    slug = slug_of(store)

    def buy(quantity):
        page = client.get(f"/p/{slug}?lang=en", headers={"Host": DOMAIN})
        data = {"csrf_token": csrf_from(page.text), "quantity": quantity, "substore": store.code}
        return client.post(f"/p/{slug}/buy?lang=en", headers={"Host": DOMAIN}, data=data)

    refused = buy(9)  # 5 keys in stock
    assert refused.status_code == 409
    assert f'href="/s/{store.code}' not in refused.text and f'href="/p/{slug}' in refused.text
    assert buy(1).status_code == 303
    order = db.session.execute(select(Order)).scalar_one()
    page = client.get(f"/order/{order.token}?lang=en", headers={"Host": DOMAIN})
    assert page.status_code == 200 and "Moon Store" in page.text
    assert f'href="/s/{store.code}' not in page.text and 'href="/"' in page.text


def test_an_htmx_request_for_the_platform_leaves_the_stores_domain_whole(client, store):
    response = client.get("/login", headers={"Host": DOMAIN, "HX-Request": "true"})
    assert response.status_code == 204
    assert response.headers["HX-Redirect"] == "http://localhost/login"


def test_the_sites_logo_is_served_on_the_stores_domain(client, store):
    # Served there (a missing file is a 404 there), not sent to the platform's origin,
    # which the pages' img-src 'self' would refuse.
    assert client.get("/site/logo/none.png", headers={"Host": DOMAIN}).status_code == 404
