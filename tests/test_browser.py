"""A buyer on a 360 px phone screen, in the system's Chromium, driven by Playwright."""
import shutil
import threading

import pytest
from werkzeug.serving import make_server

from conftest import signed_notify

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"


@pytest.fixture
def live_server(make_app):
    app = make_app(JOBS_MODE="thread")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        yield app, f"http://127.0.0.1:{server.server_port}"
    server.shutdown()


@pytest.fixture
def phone():
    from playwright import sync_api as playwright_api
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(
            executable_path=CHROMIUM,
            args=["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update"],
        )
        page = browser.new_page(viewport={"width": 360, "height": 800})
        errors = []
        page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
        page.console_errors = errors
        yield page
        browser.close()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


def test_buyer_buys_on_phone_and_key_appears_without_reload(live_server, make_product, phone):
    app, base = live_server
    product = make_product(keys=3, title="Steam 钱包充值卡")
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
