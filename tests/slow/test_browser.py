"""A buyer on a 360 px phone screen, in the system's Chromium, driven by Playwright."""

from conftest import no_horizontal_scroll, signed_notify


def test_buyer_buys_on_phone_and_key_appears_without_reload(live_server, make_product, phone):
    app, base = live_server
    make_product(keys=3, title="Steam 钱包充值卡")
    phone.goto(base + "/")
    assert no_horizontal_scroll(phone)
    phone.click("text=Steam 钱包充值卡")
    phone.fill("#email", "buyer@example.com")
    phone.fill("#query_password", "pw-1234")
    assert no_horizontal_scroll(phone)
    phone.click("button.primary")
    phone.wait_for_url("**/pay/*")
    phone.click("button.primary")  # the sandbox's pay button posts the signed notify
    phone.wait_for_url("**/order/*")
    phone.wait_for_selector(".card-key", timeout=10000)
    assert phone.locator(".card-key").count() == 1
    assert no_horizontal_scroll(phone)
    assert phone.console_errors == []


def test_order_page_polls_until_delivered(live_server, make_product, place, phone):
    app, base = live_server
    product = make_product(keys=2)
    order = place(product)
    phone.goto(f"{base}/order/{order.token}")
    assert phone.locator(".card-key").count() == 0
    url = phone.url
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    phone.wait_for_selector(".card-key", timeout=10000)
    assert phone.url == url  # swapped in by HTMX polling, no navigation
    assert phone.console_errors == []
