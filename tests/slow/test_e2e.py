"""End to end in a real browser (the system's Chromium, driven by Playwright), on a phone
(360×800, touch, a mobile browser, in Chinese) and on a desktop (1280×800, in English):

- a buyer buys with the sandbox gateway, sees the key arrive without reloading, copies
  it, finds the order again, reviews it and complains with a screenshot;
- a merchant signs up, confirms the email, submits qualification, is approved by the
  operator, lists a product, imports keys and sees a buyer's purchase;
- the operator decides an escalated complaint with a partial refund, and the buyer's
  order page shows it.

On every page each visitor lands on: no sideways scrolling, no console error (CSP
violations and script errors show there), and the page speaks the visitor's language.
"""

import io
import re
import threading
import time
from dataclasses import dataclass
from datetime import timedelta

import pyotp
import pytest
from flask_babel import force_locale, gettext
from PIL import Image
from playwright.sync_api import expect
from sqlalchemy import select, update
from werkzeug.serving import make_server

from faka.accounts import users
from faka.accounts.models import User
from faka.catalog.models import Category
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintImage
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders import tasks as order_tasks
from faka.orders.models import Order
from tests.conftest import count, no_horizontal_scroll, reload, signed_notify, with_totp

MOBILE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
SCREENS = {
    "phone": {
        "viewport": {"width": 360, "height": 800},
        "is_mobile": True,
        "has_touch": True,
        "device_scale_factor": 2,
        "user_agent": MOBILE_UA,
    },
    "desktop": {"viewport": {"width": 1280, "height": 800}},
}
# The phone speaks the default language (Chinese), the desktop switches to English.
SCREEN_LANGUAGES = [pytest.param("phone", "zh_CN", id="phone-zh"), pytest.param("desktop", "en", id="desktop-en")]
WAIT_MS = 15_000


def png(color=(30, 120, 200), size=(160, 90)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, color).save(out, "PNG")
    return out.getvalue()


def png_file(name: str, color=(30, 120, 200)) -> dict:
    return {"name": name, "mimeType": "image/png", "buffer": png(color)}


# -- the browser, the shop, the visitors ----------------------------------------------------


@pytest.fixture
def browser(chromium):
    return chromium


@pytest.fixture
def shop(make_app, smtp):
    """The shop served on a real port, jobs in background threads, email to a real SMTP server."""
    app = make_app(JOBS_MODE="thread", MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        yield Shop(app, f"http://127.0.0.1:{server.server_port}", smtp)
        app.extensions["faka_jobs"].wait_idle()
    server.shutdown()


@dataclass
class Shop:
    app: object
    base: str
    smtp: object

    def idle(self) -> None:
        """Wait for the background jobs (delivery, email) started so far."""
        self.app.extensions["faka_jobs"].wait_idle()


class Visitor:
    """One person's browser: a context of its own (cookies, language, screen), which checks
    every page it lands on."""

    def __init__(self, browser, shop: Shop, screen: str, language: str, **context):
        self.shop, self.screen, self.language = shop, screen, language
        self.showing = "zh_CN"  # the site's default until the visitor picks a language
        self.context = browser.new_context(**SCREENS[screen], **context)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on(
            "console", lambda m: self.errors.append(f"{self.page.url}: {m.text}") if m.type == "error" else None
        )
        self.page.on("pageerror", lambda e: self.errors.append(f"{self.page.url}: {e}"))
        self.page.on("dialog", lambda d: d.accept())  # hx-confirm on final decisions
        self.page.set_default_timeout(WAIT_MS)

    def t(self, english: str, **values) -> str:
        """`english` as this visitor's pages say it (from the shop's own catalogue)."""
        with self.shop.app.test_request_context(), force_locale(self.language):
            said = gettext(english, **values)
        if self.language != "en":
            assert said != (english % values if values else english), f"not translated: {english!r}"
        return said

    def open(self, path: str) -> None:
        if "lang=en" in path:
            self.showing = "en"
        self.page.goto(self.shop.base + path)
        self.check()

    def press(self, target) -> None:
        """Tap on the phone (a touch screen), click on the desktop. `target`: a selector or a locator."""
        locator = self.page.locator(target) if isinstance(target, str) else target
        # Not while htmx is still swapping in the last answer: on a busy machine a tap then can
        # land on an element that is being replaced, and nothing happens.
        expect(self.page.locator(".htmx-request, .htmx-swapping, .htmx-settling")).to_have_count(0)
        if self.screen == "phone":
            locator.first.tap()
        else:
            locator.first.click()

    def press_text(self, english: str, role: str = "link", **values) -> None:
        self.press(self.page.get_by_role(role, name=self.t(english, **values), exact=True))

    def opens_console_group(self, english: str) -> None:
        """Unfold a group of the console's navigation (its links are hidden until then)."""
        self.press(self.page.locator("nav.console-nav summary", has_text=self.t(english)))

    def sees(self, english: str, **values) -> None:
        expect(self.page.locator("main")).to_contain_text(self.t(english, **values))

    def check(self) -> None:
        """The page is in the visitor's language, fits the screen's width, and the console
        stayed clean."""
        self.page.wait_for_load_state("load")
        expect(self.page.locator("html")).to_have_attribute("lang", "en" if self.showing == "en" else "zh-CN")
        assert no_horizontal_scroll(self.page), f"{self.page.url} scrolls sideways at {self.screen} width"
        assert self.errors == []

    def arrive(self, url_glob: str) -> None:
        self.page.wait_for_url(url_glob)
        self.check()

    def choose_language(self) -> None:
        """Switch with the header's language link when the visitor reads English."""
        if self.language == "en":
            self.press('header a[lang="en"]')
            self.showing = "en"
            self.page.wait_for_url("**?lang=en")
            self.check()
        expect(self.page.locator("header nav")).to_contain_text(self.t("Find my order"))

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def visitors(browser, shop):
    opened: list[Visitor] = []

    def visitor(screen: str, language: str, **context) -> Visitor:
        opened.append(Visitor(browser, shop, screen, language, **context))
        return opened[-1]

    yield visitor
    for v in opened:
        v.close()


def assert_loaded(image) -> None:
    """The image really loaded (decoded, with a size), however long a busy machine takes:
    visible only means its box is on the page."""
    image.page.wait_for_function(
        "(img) => img.complete && img.naturalWidth > 0", arg=image.element_handle(), timeout=WAIT_MS
    )


def one(model, *where):
    """The one row of `model` matching `where`, as the database holds it now."""
    db.session.commit()  # end the test's snapshot: the server committed since
    return db.session.execute(select(model).where(*where)).scalar_one()


def operator_logs_in(v: Visitor, email: str, password: str, secret: str) -> None:
    """Through the real login form and its second step, with the authenticator's code."""
    v.open("/login" + ("?lang=en" if v.language == "en" else ""))
    v.sees("Log in")
    v.page.fill("#email", email)
    v.page.fill("#password", password)
    v.press("main button[type=submit]")
    v.arrive("**/login/2fa")
    v.page.fill("#code", pyotp.TOTP(secret).now())
    v.press("main button[type=submit]")
    v.arrive("**/operator/")


def buys(v: Visitor, title: str, email: str, password: str) -> None:
    """From the home page to the order page, paying on the sandbox's pay page."""
    v.press(v.page.get_by_role("link", name=re.compile(re.escape(title))))
    expect(v.page.locator("h1")).to_have_text(title)
    v.check()
    v.sees("Buy now")
    v.page.fill("#email", email)
    v.page.fill("#query_password", password)
    v.press("form.buy button.primary")
    v.arrive("**/pay/*")
    v.sees("This is a test gateway: no real money moves.")
    v.press("article.pay button.primary")  # posts the signed notify, back to the order
    v.arrive("**/order/*")


# -- the buyer ------------------------------------------------------------------------------


@pytest.mark.parametrize("screen, language", SCREEN_LANGUAGES)
def test_buyer_buys_copies_finds_reviews_and_complains(shop, visitors, make_product, monkeypatch, screen, language):
    product = make_product(keys=3, title="Steam 钱包充值卡 ¥100", price=9800)
    # Delivery waits until the order page is open, so the key must come by polling.
    may_deliver = threading.Event()
    deliver = order_tasks.deliver_order

    def gated_delivery(order_id):
        may_deliver.wait(WAIT_MS / 1000)
        return deliver(order_id)

    monkeypatch.setattr(order_tasks, "deliver_order", gated_delivery)
    buyer = visitors(screen, language, permissions=["clipboard-read", "clipboard-write"])
    page = buyer.page

    buyer.open("/")
    buyer.choose_language()
    buys(buyer, product.title, "buyer@example.com", "pw-1234")
    expect(page.locator("#order-status")).to_contain_text(buyer.t("Paid: delivering…"))
    assert page.locator(".card-key").count() == 0
    page.evaluate("window.e2eSamePage = true")  # a full page load would lose it
    may_deliver.set()
    expect(page.locator(".card-key")).to_have_count(1, timeout=WAIT_MS)
    assert page.evaluate("window.e2eSamePage === true")
    buyer.sees("Delivered")
    buyer.check()
    order = one(Order, Order.product_id == product.id)
    key = page.locator(".card-key").inner_text().strip()
    assert key.startswith(f"KEY-{product.id}-")

    # Copy: the clipboard (permission granted to the context) holds the key, and the button says so.
    buyer.press(".keys button.copy")
    expect(page.locator(".keys button.copy")).to_have_text(buyer.t("Copied"))
    assert page.evaluate("navigator.clipboard.readText()") == key
    buyer.check()

    # Later, from the header: find the order by its number and query password.
    buyer.press_text("Find my order")
    buyer.arrive("**/lookup")
    page.fill("#query", order.number)
    page.fill("#query_password", "pw-1234")
    buyer.press("form.lookup button.primary")
    # The order found, listed under the form (this browser's own orders are listed below it).
    found = "form.lookup + .order-list a"
    expect(page.locator(found)).to_contain_text(order.number)
    buyer.check()
    buyer.press(found)
    buyer.arrive(f"**/order/{order.token}")
    expect(page.locator(".card-key")).to_have_text(key)

    # A review: four stars and a line, shown on the order page.
    page.locator('.review-form input[name="rating"][value="4"]').check()
    page.fill("#review-text", "到账很快 fast delivery")
    buyer.press(".review-form button.primary")
    expect(page.locator("#review .review-body")).to_have_text("到账很快 fast delivery")
    buyer.check()
    buyer.sees("Your review")

    # A complaint with a screenshot; its thread shows the image.
    buyer.press_text("Open a complaint")
    buyer.arrive(f"**/order/{order.token}/complaint")
    buyer.sees("Open a complaint")
    page.locator('input[name="reason"][value="key_invalid"]').check()
    page.fill("#description", "激活时提示密钥已被使用 / says already redeemed")
    page.set_input_files("#images", [png_file("screenshot.png")])
    buyer.press_text("Send the complaint", role="button")
    buyer.arrive(f"**/order/{order.token}/complaint/*")
    expect(page.locator(".message").first).to_contain_text("says already redeemed")
    image = page.locator(".evidence img").first
    expect(image).to_be_visible()
    assert_loaded(image)
    buyer.check()
    complaint = one(Complaint, Complaint.order_id == order.id)
    assert complaint.status == Complaint.OPEN
    assert count(ComplaintImage, ComplaintImage.complaint_id == complaint.id) == 1


# -- the merchant -----------------------------------------------------------------------------


def wait_for_email(smtp, count: int, timeout: float = WAIT_MS / 1000):
    deadline = time.monotonic() + timeout
    while len(smtp.messages) < count and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.messages) >= count, "no email arrived"
    return smtp.messages[count - 1]


def link_in(message, path: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(rf"https?://[^/\s]+({re.escape(path)}\S+)", body)
    assert match, body
    return match.group(1)


@pytest.mark.parametrize("screen, language", SCREEN_LANGUAGES)
def test_merchant_signs_up_is_approved_lists_keys_and_sees_the_sale(shop, visitors, screen, language):
    db.session.add(Category(name="软件激活码", name_en="Software keys"))
    db.session.commit()
    secret = with_totp(users.create_operator("ops@example.com", "operator-pass-1"))
    email = f"seller-{screen}@example.com"
    seller = visitors(screen, language)
    page = seller.page

    # Sign up, confirm the address from the email, log in, log out and in again.
    seller.open("/signup" + ("?lang=en" if language == "en" else ""))
    seller.sees("Sign up")
    page.fill("#email", email)
    page.fill("#password", "a-good-password")
    page.fill("#shop_name", "星光小铺 Starlight")
    seller.press("main button.primary")
    # The same answer as for an email that already has an account: nothing is revealed.
    seller.arrive("**/signup/sent")
    seller.sees("We sent you an email. Open the link in it to continue.")
    seller.open(link_in(wait_for_email(shop.smtp, 1), "/verify/"))
    seller.arrive("**/login")
    seller.sees("Your email address is confirmed.")
    assert one(User, User.email == email).email_verified_at is not None
    page.fill("#email", email)
    page.fill("#password", "a-good-password")
    seller.press("main button[type=submit]")
    seller.arrive("**/merchant/")
    seller.sees("Submit your qualification to start selling. You can prepare products meanwhile.")
    seller.press("nav.backoffice-nav button.link")  # log out
    seller.arrive(shop.base + "/")
    seller.open("/login")
    page.fill("#email", email)
    page.fill("#password", "a-good-password")
    seller.press("main button[type=submit]")
    seller.arrive("**/merchant/")

    # Qualification with a licence image.
    seller.press_text("Qualification")
    seller.arrive("**/merchant/qualification")
    page.fill("#legal_name", "张三")
    page.locator('input[name="entity_type"][value="individual"]').check()
    page.fill("#id_number", "110101199003074518")
    page.fill("#contact", "WeChat starlight")
    page.set_input_files("#licence_image", [png_file("licence.png", (240, 240, 230))])
    seller.press_text("Submit for review", role="button")
    seller.arrive("**/merchant/")
    seller.sees("Your qualification is under review. You can prepare products; buyers see them once you are approved.")

    # The operator, in a browser of their own, approves it.
    operator = visitors(screen, language)
    operator_logs_in(operator, "ops@example.com", "operator-pass-1", secret)
    operator.opens_console_group("Risk control")
    operator.press_text("Merchants")
    operator.arrive("**/operator/merchants")
    operator.press(operator.page.get_by_role("link", name="星光小铺 Starlight"))
    operator.arrive("**/operator/merchants/*")
    licence = operator.page.locator("img.licence")
    expect(licence).to_be_visible()
    assert_loaded(licence)
    operator.press_text("Approve", role="button")
    expect(operator.page.locator("h1 .badge")).to_have_text(operator.t("Approved"))
    operator.check()

    # The merchant lists a product and pastes keys.
    seller.open("/merchant/")
    expect(page.locator(".alert")).to_have_count(0)
    seller.press_text("New product")
    seller.arrive("**/merchant/products/new")
    page.fill("#title", "Office 2021 专业增强版")
    page.select_option("#category_id", label="Software keys" if language == "en" else "软件激活码")
    page.fill("#price", "25.80")
    page.locator("#description_md").press_sequentially("**一机一码**，自动发货")  # keystrokes refresh the preview
    expect(page.locator("#md-preview strong")).to_have_text("一机一码")
    seller.press_text("Save", role="button")
    seller.arrive("**/merchant/products/*/keys")
    page.fill("#keys", "OFFICE-AAAA-0001\nOFFICE-AAAA-0002\nOFFICE-AAAA-0002\nOFFICE-AAAA-0003")
    seller.press_text("Import", role="button")
    expect(page.locator("section.report")).to_be_visible()
    seller.check()
    expect(page.locator("dl.summary dd").first).to_have_text("3")  # available: the duplicate skipped

    # A buyer buys one.
    buyer = visitors(screen, language)
    buyer.open("/")
    buyer.choose_language()
    buys(buyer, "Office 2021 专业增强版", "someone@example.com", "pw-5678")
    expect(buyer.page.locator(".card-key")).to_have_count(1, timeout=WAIT_MS)
    buyer.check()
    number = one(Order, Order.email == "someone@example.com").number

    # The merchant sees the sale: in the orders and on the dashboard.
    seller.press_text("Orders")
    seller.arrive("**/merchant/orders")
    row = page.locator("#order-results tbody tr").filter(has_text=number)
    expect(row).to_contain_text("Office 2021")
    expect(row).to_contain_text("¥25.80")
    seller.press_text("Dashboard")
    seller.arrive("**/merchant/")
    expect(page.locator(".figure-card").first).to_contain_text("¥25.80")
    seller.check()


# -- the operator's arbitration ----------------------------------------------------------------


@pytest.mark.parametrize("screen, language", SCREEN_LANGUAGES)
def test_operator_decides_an_escalated_complaint_and_the_buyer_sees_the_refund(
    shop, visitors, make_product, place, screen, language
):
    product = make_product(keys=2, title="Windows 11 专业版", price=9900)
    order = place(product)
    assert shop.app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).status_code in (200, 303)
    shop.idle()
    assert reload(order).status == Order.DELIVERED
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "密钥无法激活 / will not activate", [png()])
    db.session.execute(
        update(Complaint).where(Complaint.id == complaint.id).values(deadline_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    assert workflow.run_deadlines().escalated == 1  # the merchant stayed silent
    secret = with_totp(users.create_operator("ops@example.com", "operator-pass-1"))

    desk = visitors(screen, language)
    page = desk.page
    operator_logs_in(desk, "ops@example.com", "operator-pass-1", secret)
    desk.opens_console_group("Risk control")
    desk.press_text("Complaints")
    desk.arrive("**/operator/complaints")
    desk.press(page.get_by_role("link", name=order.number))
    desk.arrive(f"**/operator/complaints/{complaint.ref}")
    expect(page.locator(".evidence img")).to_have_count(1)
    page.locator('input[name="outcome"][value="refund"]').check()
    page.fill("#decide-amount", "40.00")
    page.fill("#decide-reason", "截图显示密钥已被使用 / the screenshot shows a used key")
    desk.press_text("Record the decision", role="button")  # hx-confirm: accepted
    expect(page.locator(".decision")).to_contain_text("the screenshot shows a used key")
    desk.check()
    assert reload(complaint).status == Complaint.RESOLVED_REFUND

    buyer = visitors(screen, language)
    buyer.open(f"/order/{order.token}" + ("?lang=en" if language == "en" else ""))
    expect(buyer.page.locator("#order-status .state")).to_have_text(
        buyer.t("Delivered, and %(amount)s of it refunded to you.", amount="¥40.00")
    )
    expect(buyer.page.locator("#complaint")).to_contain_text("¥40.00")
    buyer.check()
    assert reload(order).status == Order.PARTIALLY_REFUNDED and reload(order).refunded_amount == 4000
