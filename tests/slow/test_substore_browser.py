"""A buyer in a reseller's sub-store (分站), in a real Chromium on a phone (360×800,
Chinese): opens the store, taps an item, buys at the store's price, pays on the EPay
fake on another origin, comes back and sees the key on the order page with the store's
name. With JavaScript on the store is visited on its own domain (the Host mapping:
`localhost` here, the shop's address being 127.0.0.1); with it off at /s/<code>.

FAKA_SHOTS=<folder> keeps a screenshot of each page (store, product, order)."""

import os
from urllib.parse import urlsplit

import pytest
from helpers import store_selling
from playwright.sync_api import expect
from test_pay_journeys import WAIT_MS, WAYS, Buyer, pay_on_the_provider, the_order

from conftest import count, key_texts, no_horizontal_scroll, reload
from faka.growth.models import SubStore
from faka.orders.models import Order


def open_store(product, domain: str) -> SubStore:
    """An approved reseller's store "月光小铺" selling the product at ¥15.00 (floor ¥8.00)."""
    return store_selling(
        product,
        "月光小铺",
        domain,
        price=1500,
        floor_price=800,
        announcement="欢迎光临，**自动发货**。",
        owner_name="分销商",
    )


def shot(page, name: str, javascript: bool) -> None:
    folder = os.environ.get("FAKA_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        page.screenshot(path=f"{folder}/{name}-js-{'on' if javascript else 'off'}.png", full_page=True)


@pytest.mark.parametrize("javascript", [True, False], ids=["js-on", "js-off"])
def test_buyer_buys_in_a_substore_and_sees_the_key_with_the_stores_name(
    chromium, live_shop, providers, make_product, javascript
):
    way = WAYS["epay"]
    providers.configure(way.gateway, **way.settings)
    product = make_product(keys=3, price=1000, title="Steam 钱包充值卡")
    store = open_store(product, domain="localhost")
    port = urlsplit(live_shop.url).port
    store_home = f"http://localhost:{port}/" if javascript else f"{live_shop.url}/s/{store.code}"
    buyer = Buyer(chromium, live_shop, way, javascript, providers)
    page = buyer.page
    try:
        page.goto(store_home)
        expect(page.locator("header .brand")).to_have_text("月光小铺")
        expect(page.locator(".product-card .price")).to_have_text("¥15.00")
        assert no_horizontal_scroll(page)
        shot(page, "store", javascript)
        page.locator(".product-card").click()
        expect(page.locator("h1")).to_have_text("Steam 钱包充值卡")
        expect(page.locator("#bar-total")).to_have_text("¥15.00")
        assert no_horizontal_scroll(page)
        shot(page, "product", javascript)
        if javascript:  # the price preview asks for the store's price
            page.fill("#quantity", "2")
            page.locator("#quantity").press("Tab")
            expect(page.locator("#bar-total")).to_have_text("¥30.00")
            page.fill("#quantity", "1")
            page.locator("#quantity").press("Tab")
            expect(page.locator("#bar-total")).to_have_text("¥15.00")
        page.fill("#email", "buyer@example.com")
        page.fill("#query_password", "pw-1234")
        page.locator(f"input[name=gateway][value={way.gateway}]").check()
        page.locator("form.buy button[type=submit]").click()
        if not javascript:
            page.wait_for_url(f"{live_shop.url}/pay/*")  # faka's own pay page first
            page.locator("article.pay a.button.primary").click()  # "Continue to …": a plain link
        pay_on_the_provider(buyer, way, providers, product)
        page.wait_for_url(f"{live_shop.url}/order/*", timeout=WAIT_MS)
        order = the_order(product)
        keys = page.locator(".card-key")
        if javascript:
            expect(keys).to_have_count(1, timeout=WAIT_MS)
        else:
            deadline_ms = WAIT_MS
            while keys.count() == 0 and deadline_ms > 0:  # the page refreshes itself every 5 s
                page.wait_for_load_state("load")
                page.wait_for_timeout(250)
                deadline_ms -= 250
        expect(keys).to_have_count(1)
        assert keys.inner_text().strip() == key_texts(order)[0]
        expect(page.locator(".order-store")).to_have_text("月光小铺")
        expect(page.locator("header .brand")).to_have_text("月光小铺")
        assert no_horizontal_scroll(page)
        shot(page, "order", javascript)
        assert buyer.errors == []
    finally:
        buyer.context.close()

    assert providers.base_url in buyer.origins, "the browser never reached the provider's site"
    order = reload(order)
    assert (order.status, order.total, order.substore_id, order.resale_base) == (Order.DELIVERED, 1500, store.id, 800)
    assert count(Order) == 1
