"""The order page and "find my order" on a 360 px phone, in the system's Chromium."""

from conftest import no_horizontal_scroll, signed_notify
from faka.core.crypto import vault
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.web import device


def keys_of(order_id: int) -> list[str]:
    from sqlalchemy import select

    from faka.extensions import db

    db.session.commit()
    rows = db.session.execute(select(CardKey.ciphertext).where(CardKey.order_id == order_id).order_by(CardKey.id))
    return [vault().decrypt(c) for c in rows.scalars()]


def test_buyer_watches_the_order_deliver_reviews_it_copies_all_keys_and_downloads_them(
    live_server, make_product, place, phone, tmp_path
):
    app, base = live_server
    product = make_product(keys=6, title="Steam 钱包充值卡")
    order = place(product, quantity=3)
    phone.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    phone.goto(f"{base}/order/{order.token}?lang=en")
    assert phone.locator("#order-link").inner_text() == f"{base}/order/{order.token}"
    assert phone.locator("#review").count() == 0
    phone.evaluate("window.notReloaded = true")

    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    phone.wait_for_selector(".card-key", timeout=10000)
    phone.wait_for_selector("#review .review-form", timeout=5000)  # the review panel, without navigation
    assert phone.locator("#complaint").is_visible()
    assert phone.evaluate("window.notReloaded === true")
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "delivered.png"), full_page=True)

    keys = keys_of(order.id)
    phone.click("button[data-copy='all-keys']")
    phone.wait_for_selector("button[data-copy='all-keys']:has-text('All 3 copied')")
    assert phone.evaluate("navigator.clipboard.readText()") == "\n".join(keys)

    phone.click("button[data-copy='order-link']")
    assert phone.evaluate("navigator.clipboard.readText()") == f"{base}/order/{order.token}"

    with phone.expect_download() as download:
        phone.click("a.download-keys")
    assert download.value.suggested_filename == f"{order.number}.txt"
    saved = tmp_path / "keys.txt"
    download.value.save_as(saved)
    assert saved.read_text(encoding="utf-8").splitlines() == keys

    # The review form that arrived with the poll publishes (the page's CSRF header goes with it).
    phone.check("#review input[name='rating'][value='5']")
    phone.fill("#review-text", "Fast, all three keys worked.")
    phone.click("#review button.primary")
    phone.wait_for_selector("#review .review-body")
    assert "Fast, all three keys worked." in phone.locator("#review").inner_text()
    assert phone.console_errors == []


def test_find_my_order_lists_this_browsers_orders_on_a_phone(live_server, make_product, phone, tmp_path):
    app, base = live_server
    product = make_product(keys=20, title="Steam 钱包充值卡 100 元 (国区)")
    phone.goto(f"{base}/lookup?lang=en")
    assert phone.locator("#browser-orders .order-list").count() == 0
    assert "No orders placed in this browser in the last 30 days" in phone.locator("#browser-orders").inner_text()
    # Two orders from this browser (its device cookie), one from another.
    cookie = next(c["value"] for c in phone.context.cookies() if c["name"] == device.COOKIE)
    with app.test_request_context(headers={"Cookie": f"{device.COOKIE}={cookie}"}):
        mine = [
            (order.number, order.token)
            for order in (
                checkout.place_order(product.slug, quantity, None, None, device_hash=device.device_hash())
                for quantity in (1, 2)
            )
        ]
    with app.test_request_context():
        checkout.place_order(product.slug, 3, None, None, device_hash=device.device_hash())

    phone.reload()
    rows = phone.locator("#browser-orders .order-list li")
    assert rows.count() == 2
    assert "× 2" in rows.nth(0).inner_text() and mine[1][0] in rows.nth(0).inner_text()  # newest first
    assert phone.get_by_text("Query password, or email").is_visible()
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "lookup.png"), full_page=True)

    rows.nth(1).locator("a").click()
    phone.wait_for_url(f"**/order/{mine[0][1]}")
    assert phone.locator("#order-link").is_visible()
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "pending.png"), full_page=True)
    assert phone.console_errors == []


def test_without_javascript_the_order_page_refreshes_itself_until_the_keys_are_there(
    live_server, make_product, place, phone
):
    app, base = live_server
    order = place(make_product(keys=2))
    context = phone.context.browser.new_context(java_script_enabled=False, viewport={"width": 360, "height": 800})
    page = context.new_page()
    page.goto(f"{base}/order/{order.token}")
    assert page.locator(".card-key").count() == 0
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    page.wait_for_selector(".card-key", timeout=12000)  # the page reloaded itself (every 5 s)
    assert page.locator("#review .review-form").count() == 1
    context.close()
