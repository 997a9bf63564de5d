"""What a buyer sees while a request runs or fails, in a real Chromium (JavaScript on, and
off where it matters): "Buy" tapped five times makes one order, a network error is said
out loud, and a destructive action asks first."""

import re
from pathlib import Path

import pytest
from playwright.sync_api import expect

from conftest import count, no_horizontal_scroll, reload, signed_notify
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Order

PHONE = {
    "viewport": {"width": 360, "height": 800},
    "is_mobile": True,
    "has_touch": True,
    "locale": "zh-CN",
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
}
WAIT_MS = 15_000


@pytest.fixture
def visit(chromium, live_server):
    """A phone's browser on the live shop; `visit(javascript=False)` turns scripts off."""
    _app, base = live_server
    contexts = []

    def open_page(path: str = "/", javascript: bool = True):
        context = chromium.new_context(**PHONE, java_script_enabled=javascript)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(WAIT_MS)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.on("console", lambda m: page.errors.append(m.text) if m.type == "error" else None)
        page.goto(base + path)
        return page

    yield open_page
    for context in contexts:
        context.close()


def fill_buy_form(page):
    page.fill("#email", "buyer@example.com")
    page.fill("#query_password", "pw-1234")


def test_five_quick_taps_on_buy_make_one_order(visit, product):
    page = visit(f"/p/{product.slug}")
    fill_buy_form(page)
    # Five taps as fast as a thumb: the first disables the button until the page moves on.
    page.evaluate("""() => { const b = document.querySelector('form.buy button[type=submit]');
                             for (let i = 0; i < 5; i++) b.click(); }""")
    page.wait_for_url("**/pay/*")
    assert count(Order) == 1
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 1
    assert page.errors == []


def test_five_quick_taps_without_javascript_make_one_order(visit, product):
    page = visit(f"/p/{product.slug}", javascript=False)
    fill_buy_form(page)
    page.locator("form.buy button[type=submit]").focus()
    for _ in range(5):
        page.keyboard.press("Enter")  # each press submits the form again before the last answer came
    page.wait_for_url("**/pay/*")
    assert count(Order) == 1
    order = db.session.execute(db.select(Order)).scalar_one()
    assert page.url.endswith(f"/pay/{order.token}")


def test_the_buy_button_shows_it_is_busy_while_the_order_is_placed(visit, product):
    page = visit(f"/p/{product.slug}")
    fill_buy_form(page)
    held = []
    page.route("**/buy", lambda route: held.append(route))  # the answer waits until the test lets it go
    page.locator("form.buy button[type=submit]").tap()
    button = page.locator("form.buy button[type=submit]")
    expect(button).to_be_disabled()
    expect(button.locator(".busy-label")).to_have_text("正在创建订单…")
    expect(button.locator(".busy-label")).to_be_visible()
    expect(button.locator(".idle-label")).to_be_hidden()
    held[0].continue_()
    page.wait_for_url("**/pay/*")


def test_a_network_error_on_buy_is_said_and_the_button_works_again(visit, product):
    page = visit(f"/p/{product.slug}")
    fill_buy_form(page)
    page.route("**/buy", lambda route: route.abort("internetdisconnected"))
    page.locator("form.buy button[type=submit]").tap()
    toast = page.locator("#request-failed")
    expect(toast).to_be_visible()
    expect(toast).to_have_text("网络错误，请重试。")
    expect(page.locator("form.buy button[type=submit]")).to_be_enabled()
    assert count(Order) == 0
    assert no_horizontal_scroll(page)

    page.unroute("**/buy")  # the network is back: the same button places the order
    page.locator("form.buy button[type=submit]").tap()
    page.wait_for_url("**/pay/*")
    assert count(Order) == 1


@pytest.fixture
def open_complaint(live_server, make_product, place):
    app, _base = live_server
    order = place(make_product(keys=2))
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    app.extensions["faka_jobs"].wait_idle()
    assert reload(order).status == Order.DELIVERED
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "激活失败 / will not activate", [])
    return order, complaint


def test_withdrawing_a_complaint_asks_first_and_no_changes_nothing(visit, open_complaint):
    order, complaint = open_complaint
    page = visit(f"/order/{order.token}/complaint/{complaint.ref}")
    asked = []

    def answer(dialog):
        asked.append(dialog.message)
        dialog.dismiss()

    page.once("dialog", answer)
    page.get_by_role("button", name="撤回投诉").tap()
    expect(page.locator("#thread .complaint-status")).to_contain_text(re.compile("."))
    page.wait_for_timeout(300)  # had the form been sent, its answer would be here by now
    assert asked and "撤回投诉" in asked[0]
    assert reload(complaint).status == Complaint.OPEN

    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="撤回投诉").tap()
    expect(page.locator("#thread .badge")).to_have_text("已关闭")
    assert reload(complaint).status == Complaint.WITHDRAWN
    assert page.errors == []


def test_every_confirmation_is_on_a_request_htmx_sends():
    """htmx asks hx-confirm only for the requests it sends itself: a form it does not boost
    (hx-boost="false", or under hx-disinherit="*", which also stops hx-boost from being
    inherited) would be sent at the first tap."""
    import faka

    templates = Path(faka.__file__).parent / "templates"
    for path in templates.rglob("*.html"):
        text = path.read_text()
        assert 'hx-disinherit="*"' not in text, path
        for tag in re.findall(r"<[a-z]+\b[^>]*hx-confirm=[^>]*>", text):
            assert 'hx-boost="false"' not in tag, (path, tag)
