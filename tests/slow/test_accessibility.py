"""Accessibility, measured. On a 360 px phone, in the system's Chromium: axe-core
(tests/vendor/axe-core, pinned by scripts/vendor.py) finds no serious or critical violation on
the buyer's pages, colour contrast included, in light and in dark mode (a phone set to dark),
their headings go in order, and whatever a thumb taps there is at least 44 × 44 px. Then the layouts made for phones: the product page's buy bar, the back office's
tables as cards, and the navigation that marks the current page (the console's in groups that
fold). `make a11y` adds Lighthouse's accessibility score of the same pages (scripts/a11y.py)."""

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select

from conftest import login, no_horizontal_scroll, reload, signed_notify
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.extensions import db
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway

AXE = Path(__file__).resolve().parents[1] / "vendor" / "axe-core" / "axe.min.js"
PHONE = {"viewport": {"width": 360, "height": 800}, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
BUYER_PAGES = ("home", "product", "order-pending", "order-delivered", "lookup", "complaint")


def delivered_now(app, order: Order) -> Order:
    """Pay `order` as the sandbox does and wait for its delivery (jobs run in a thread)."""
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    deadline = time.monotonic() + 10
    while reload(order).status != Order.DELIVERED:
        assert time.monotonic() < deadline, "the order was not delivered"
        time.sleep(0.1)
    return order


@pytest.fixture
def shop(live_server, make_product, place):
    """A shop with a product that can be paid three ways, an order waiting for payment, a
    delivered order and a complaint about it. Returns the base URL and each page's path."""
    app, base = live_server
    for gateway in ("alipay", "wechat"):
        configure_gateway(gateway, {}, enabled=True)
    product = make_product(
        keys=12,
        price=4800,
        title="Steam 钱包充值卡 ¥50",
        description_md="**自动发货**：付款后立即显示卡密。\n\n- 仅限国区账户",
    )
    make_product(keys=0, price=9900, title="Windows 11 专业版")  # a sold-out card on the home page
    pending = place(product)
    delivered = delivered_now(app, place(product, quantity=2))
    complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "第二个卡密提示已被使用。")
    return (
        base,
        product,
        {
            "home": "/",
            "product": f"/p/{product.slug}",
            "order-pending": f"/order/{pending.token}",
            "order-delivered": f"/order/{delivered.token}",
            "lookup": "/lookup",
            "complaint": f"/order/{delivered.token}/complaint/{complaint.ref}",
        },
    )


def axe_violations(page) -> list[dict]:
    """axe-core's violations on the page as it is. The page's CSP refuses injected <script>
    tags; evaluating the source through the DevTools protocol is not subject to it."""
    page.evaluate(AXE.read_text(encoding="utf-8"))
    return page.evaluate("""() => axe.run(document, {resultTypes: ['violations']}).then(result =>
        result.violations.map(v => ({id: v.id, impact: v.impact, help: v.help, url: v.helpUrl,
            nodes: v.nodes.map(n => ({target: n.target.join(' '), summary: n.failureSummary}))})))""")


def readable(violations: list[dict]) -> str:
    lines = []
    for v in violations:
        lines.append(f"{v['id']} ({v['impact']}): {v['help']} <{v['url']}>")
        for node in v["nodes"][:8]:
            lines.append(f"    {node['target']}: " + " ".join(node["summary"].split()))
    return "\n".join(lines)


# What a thumb taps: links in the header, navigations and footer, every button, the labels of
# radio buttons and check boxes, and the summaries that fold details. (Links inside a
# sentence are exempt, as WCAG's target size exempts them.)
SMALL_TARGETS = """() => [...document.querySelectorAll(
        'header a, nav a, footer a, .pager a, button, summary, label:has(input[type=radio]), label:has(input[type=checkbox])')]
    .filter(e => e.getClientRects().length && getComputedStyle(e).visibility !== 'hidden')
    .map(e => ({what: e.outerHTML.slice(0, 100), width: e.getBoundingClientRect().width, height: e.getBoundingClientRect().height}))
    .filter(t => t.width < 43.5 || t.height < 43.5)"""

HEADING_LEVELS = "() => [...document.querySelectorAll('h1, h2, h3, h4, h5, h6')].map(h => Number(h.tagName[1]))"


# The page's background, as Chromium painted it: light mode's --bg is #f5f6f8, dark mode's #121417.
BACKGROUNDS = {"light": "rgb(245, 246, 248)", "dark": "rgb(18, 20, 23)"}


@pytest.mark.parametrize("mode", ["light", "dark"])
@pytest.mark.parametrize("name", BUYER_PAGES)
def test_buyer_page_on_a_phone_has_no_serious_violation_in_order_headings_and_big_targets(shop, phone, name, mode):
    base, _product, pages = shop
    page = phone  # conftest's: 360 × 800, console errors noted
    page.emulate_media(color_scheme=mode)
    page.goto(base + pages[name])
    if name == "order-delivered":
        page.wait_for_selector(".card-key")
    assert page.evaluate("getComputedStyle(document.documentElement).backgroundColor") == BACKGROUNDS[mode]
    violations = [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]
    assert not violations, f"axe-core on {pages[name]} at 360 px, {mode} mode:\n{readable(violations)}"

    levels = page.evaluate(HEADING_LEVELS)
    assert levels.count(1) == 1 and levels[0] == 1, f"one <h1>, first: {levels}"
    assert all(after - before <= 1 for before, after in zip(levels, levels[1:])), f"a heading level skipped: {levels}"
    assert page.evaluate(SMALL_TARGETS) == []
    assert no_horizontal_scroll(page)
    assert page.console_errors == []


def test_home_page_has_a_heading_a_description_and_landmarks(client, product):
    html = client.get("/").text
    assert re.search(r"<h1>[^<]+</h1>", html)
    assert re.search(r'<meta name="description" content="[^"]{20,}">', html)
    for landmark in ("<header", "<main>", "<footer"):
        assert html.count(landmark) == 1, landmark
    navigations = re.findall(r"<nav\b[^>]*>", html)
    assert navigations and all("aria-label=" in nav for nav in navigations)


# -- the product page's buy bar ---------------------------------------------------------


def test_the_buy_bar_keeps_total_and_button_on_a_phone_screen_and_orders_once(shop, chromium):
    base, product, pages = shop
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    page.goto(base + pages["product"])
    bar, total = page.locator(".buy-bar"), page.locator("#bar-total")
    assert bar.evaluate("e => getComputedStyle(e).position") == "fixed"
    box = bar.bounding_box()
    assert box["y"] + box["height"] == pytest.approx(800, abs=1) and box["width"] == pytest.approx(360, abs=1)
    # The bar's button is the form's one submit button: nothing else can send the order.
    assert page.evaluate("""() => { const form = document.querySelector('form.buy');
        const submits = [...document.querySelectorAll('button, input[type=submit]')].filter(b => b.form === form && b.type === 'submit');
        return submits.length === 1 && submits[0].closest('.buy-bar') !== null; }""")
    assert total.inner_text() == "¥48.00"

    # The price preview's answer updates the bar too (out of band).
    page.fill("#quantity", "3")
    page.locator("#quantity").dispatch_event("change")
    page.wait_for_selector("#bar-total >> text=¥144.00")
    assert "¥144.00" in page.inner_text("#price-preview")

    # Scrolled to the end, the footer ends above the bar, and a gateway option is large.
    page.evaluate("window.scrollTo(0, document.body.scrollHeight)")
    footer_end = page.evaluate("document.querySelector('footer').lastElementChild.getBoundingClientRect().bottom")
    assert footer_end <= page.evaluate("document.querySelector('.buy-bar').getBoundingClientRect().top")
    page.evaluate("window.scrollTo(0, 0)")
    options = page.locator(".gateway-option")
    assert options.count() == 3 and all(options.nth(i).locator("img").count() == 1 for i in range(3))
    assert options.nth(1).bounding_box()["height"] >= 48

    page.locator(".gateway-option").nth(1).click()
    assert page.locator("input[name=gateway]").nth(1).is_checked()
    page.locator(".gateway-option").nth(0).click()
    before = db.session.scalar(select(func.count(Order.id)))
    page.locator(".buy-bar button").tap()
    page.wait_for_url("**/pay/*")
    db.session.commit()  # see what the shop committed
    assert db.session.scalar(select(func.count(Order.id))) == before + 1
    order = db.session.scalars(select(Order).order_by(Order.id.desc())).first()
    assert order.quantity == 3
    context.close()


def test_without_javascript_the_bar_still_submits_the_form(shop, chromium):
    base, _product, pages = shop
    context = chromium.new_context(**PHONE, java_script_enabled=False)
    page = context.new_page()
    page.goto(base + pages["product"])
    assert page.locator(".buy-bar #bar-total").inner_text() == "¥48.00"
    page.locator(".buy-bar button").click()
    page.wait_for_url("**/pay/*")
    context.close()


def test_on_a_desktop_the_buy_button_sits_in_the_form_without_a_bar(shop, chromium):
    base, _product, pages = shop
    context = chromium.new_context(**DESKTOP)
    page = context.new_page()
    page.goto(base + pages["product"])
    assert page.locator(".buy-bar").evaluate("e => getComputedStyle(e).position") == "static"
    assert not page.locator("#bar-total").is_visible()
    assert page.locator("form.buy button.primary").is_visible()
    context.close()


# -- the back office on a phone ---------------------------------------------------------


def log_in(page, base: str, email: str, password: str) -> None:
    page.goto(f"{base}/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", password)
    page.locator("main button[type=submit]").click()
    page.wait_for_url("**/merchant/")


CARD_CELLS = """() => [...document.querySelectorAll('#order-results tbody tr:first-child td')].map(td => ({
    label: td.dataset.label, shown: getComputedStyle(td, '::before').content, display: getComputedStyle(td).display}))"""


def test_merchant_orders_are_cards_on_a_phone_and_a_scrolling_table_without_javascript(
    live_server, merchant, make_product, place, chromium
):
    app, base = live_server
    product = make_product(keys=3, title="Windows 11 专业版 激活密钥")
    delivered_now(app, place(product))
    place(product, email="someone.with.a.rather.long.address@example.com")

    context = chromium.new_context(**PHONE)
    page = context.new_page()
    log_in(page, base, merchant.user.email, "merchant-pass-1")
    page.goto(f"{base}/merchant/orders?lang=en")
    headings = page.locator("#order-results thead th").all_inner_texts()
    cells = page.evaluate(CARD_CELLS)
    assert [c["label"] for c in cells] == headings == ["Order", "Product", "Total", "Status", "Placed", "Email"]
    assert [c["shown"] for c in cells] == [f'"{h}"' for h in headings] and {c["display"] for c in cells} == {"table"}
    assert (
        not page.locator("#order-results thead").is_visible()
        or page.locator("#order-results thead").bounding_box()["height"] <= 1
    )
    assert no_horizontal_scroll(page)
    # A filter swaps the list in with htmx: the new rows are labelled too.
    page.fill("#email", "someone.with.a.rather.long.address@example.com")
    page.locator("form.filters button[type=submit]").click()
    expect(page.locator("#order-results tbody tr")).to_have_count(1)
    expect(page.locator("#order-results tbody td").first).to_have_attribute("data-label", "Order")
    # The current page is marked in the navigation.
    assert page.locator("nav.backoffice-nav a[aria-current=page]").all_inner_texts() == ["Orders"]
    context.close()

    wide = chromium.new_context(**DESKTOP)
    page = wide.new_page()
    log_in(page, base, merchant.user.email, "merchant-pass-1")
    page.goto(f"{base}/merchant/orders?lang=en")
    assert page.locator("#order-results table").evaluate("t => getComputedStyle(t).display") == "table"
    assert page.locator("#order-results thead").is_visible()
    wide.close()

    plain = chromium.new_context(**PHONE, java_script_enabled=False)
    page = plain.new_page()
    log_in(page, base, merchant.user.email, "merchant-pass-1")
    page.goto(f"{base}/merchant/orders?lang=en")
    assert page.locator("#order-results td[data-label]").count() == 0
    assert page.locator("#order-results thead").is_visible()
    assert page.evaluate(
        "(() => { const t = document.querySelector('#order-results table'); "
        "return t.scrollWidth > t.parentElement.clientWidth; })()"
    )  # it scrolls inside
    assert no_horizontal_scroll(page)  # the page does not
    plain.close()


def test_console_navigation_groups_sections_and_marks_the_current_one(app, operator, merchant):
    from faka.web.operator import NAV

    desk = app.test_client()
    login(desk, operator)
    html = desk.get("/operator/merchants?lang=en").text
    nav = re.search(r'<nav class="backoffice-nav console-nav".*?</nav>', html, re.S).group(0)
    groups = re.findall(r'<details class="nav-group"[^>]*>\s*<summary[^>]*>([^<]+)</summary>', nav)
    assert groups == ["Money", "Risk control", "Content", "Growth", "Your account", "System"]
    assert re.findall(r'<details class="nav-group"[^>]*\bopen>\s*<summary class="current">([^<]+)<', nav) == [
        "Risk control"
    ]
    assert re.findall(r'href="([^"]+)" aria-current="page"', nav) == ["/operator/merchants"]
    live = [endpoint for endpoint, _label in NAV if endpoint in app.view_functions]
    assert len(re.findall(r'<a href="/(?:operator|account)/', nav)) == len(live)  # every section once
    assert 'href="/account/passkeys"' in nav and 'href="/account/sessions"' in nav  # the operator's own account
    assert nav.index('href="/operator/"') < nav.index("<details")  # the dashboard stands alone

    detail = desk.get(f"/operator/merchants/{merchant.id}?lang=en").text
    assert re.search(r'href="/operator/merchants" aria-current="true"', detail)
    dashboard = desk.get("/operator/?lang=en").text
    assert re.findall(r'href="([^"]+)" aria-current="page"', dashboard) == ["/operator/"]
    assert " open>" not in re.search(r'<nav class="backoffice-nav console-nav".*?</nav>', dashboard, re.S).group(0)


def test_merchant_navigation_marks_the_current_page(app, merchant, product, place):
    order = place(product)
    seller = app.test_client()
    login(seller, merchant.user)
    current = lambda html: re.findall(r'href="([^"]+)" aria-current="(page|true)"', html)  # noqa: E731
    assert current(seller.get("/merchant/").text) == [("/merchant/", "page")]
    assert current(seller.get("/merchant/orders").text) == [("/merchant/orders", "page")]
    assert current(seller.get(f"/merchant/orders/{order.number}").text) == [("/merchant/orders", "true")]
