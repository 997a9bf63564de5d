"""Opening day: a real shop from an empty database, the way the README tells a new operator
to start, with no demo data and no sandbox.

`flask init-db` and `flask create-operator --shop` run as commands on a new instance folder
(and, in the PostgreSQL suite, a new database). The shop is served on a port of its own and
everything after that happens in a phone's Chromium (360 px, Chinese): the operator sets up
two-factor authentication, creates a category, writes the contact and the policies, lists a
product with a picture, pasted keys and a required 游戏 UID, and points 易支付 at a fake
provider on another port (the sandbox is off on a fresh install). A buyer finds the product
on the home page, reads the terms, answers the UID, pays on the provider's page and gets the
key, once with JavaScript on and once with it off; the shop's order page shows the UID.
"""

import re
import threading
from contextlib import nullcontext

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from test_backup import flask, opened, scratch_database
from test_e2e import SCREENS, png
from werkzeug.serving import make_server

from conftest import TEST_DATABASE, key_texts, no_horizontal_scroll
from faka.catalog.models import Product
from faka.extensions import db
from faka.orders.models import Order
from faka.payments.gateways import gateway_settings

OPERATOR_EMAIL, OPERATOR_PASSWORD = "owner@xinghe.example", "open-the-shop-2026"
SHOP_NAME = "星河数码"
PRODUCT = "原神 创世结晶 60 代充"
WAIT_MS = 20_000
TERMS = "## 服务条款\n\n虚拟商品一经发货**不支持无理由退款**。"
KEYS = ["GENSHIN-60-0001", "GENSHIN-60-0002", "GENSHIN-60-0003"]


@pytest.fixture
def fresh_install(tmp_path, base_config, monkeypatch):
    """`init-db` and `create-operator --shop` in new processes on an empty instance folder
    and database, then that shop served on 127.0.0.1 (jobs in background threads, no SMTP),
    its BASE_URL the address it is served at. Yields (app, base URL)."""
    instance = tmp_path / "instance"
    with scratch_database("opening") if TEST_DATABASE != "sqlite" else nullcontext() as url:
        env = {"FAKA_INSTANCE_PATH": str(instance), **({"DATABASE_URL": url} if url else {})}
        for command in (
            ("init-db",),
            ("create-operator", "--email", OPERATOR_EMAIL, "--password", OPERATOR_PASSWORD, "--shop", SHOP_NAME),
        ):
            done = flask(env, *command)
            assert done.returncode == 0, done.stderr
        with opened(base_config, monkeypatch, instance, url, JOBS_MODE="thread") as app:
            server = make_server("127.0.0.1", 0, app, threaded=True)
            app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
            threading.Thread(target=server.serve_forever, name="opening-day", daemon=True).start()
            try:
                yield app, app.config["BASE_URL"]
            finally:
                app.extensions["faka_jobs"].wait_idle()
                server.shutdown()
                server.server_close()


class Phone:
    """One person's phone browser on the shop, failing on console errors (CSP violations)
    and on pages wider than the screen."""

    def __init__(self, chromium, base: str, javascript: bool = True):
        self.base = base
        self.context = chromium.new_context(**SCREENS["phone"], locale="zh-CN", java_script_enabled=javascript)
        self.context.set_default_timeout(WAIT_MS)
        self.page = self.context.new_page()
        self.errors: list[str] = []
        self.page.on("console", lambda m: self._error(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self._error(str(e)))

    def _error(self, text: str) -> None:
        if self.page.url.startswith(self.base):  # the provider's pages are not ours to judge
            self.errors.append(f"{self.page.url}: {text}")

    def open(self, path: str) -> None:
        self.page.goto(self.base + path)
        self.check()

    def submit(self, form_selector: str, expect_url: str | None = None) -> None:
        self.page.locator(f"{form_selector} button[type=submit]").first.tap()
        if expect_url:
            self.page.wait_for_url(expect_url)
        self.page.wait_for_load_state("load")
        self.check()

    def check(self) -> None:
        expect(self.page.locator("html")).to_have_attribute("lang", "zh-CN")
        assert no_horizontal_scroll(self.page), f"{self.page.url} scrolls sideways on a phone"
        assert self.errors == []


def step_state(phone: Phone, key: str) -> str:
    return phone.page.locator(f"#step-{key}").get_attribute("class").split()[1]


def operator_opens_the_shop(operator: Phone, providers) -> None:
    page = operator.page
    # Signs in; an operator must set up two-factor authentication before anything else.
    operator.open("/login")
    page.fill("#email", OPERATOR_EMAIL)
    page.fill("#password", OPERATOR_PASSWORD)
    operator.submit("form:has(#password)", "**/account/2fa/setup")
    secret = page.locator("code.secret").inner_text().replace(" ", "")
    page.fill("#code", pyotp.TOTP(secret).now())
    operator.submit("form:has(#code)", "**/account/2fa/recovery-codes")
    assert page.locator("li code").count() >= 8  # recovery codes to write down
    operator.open("/operator/")
    # The console's checklist: nothing to sell, no way to pay (the sandbox is off).
    assert [step_state(operator, s) for s in ("category", "merchant", "gateway", "sandbox")] == [
        "todo",
        "todo",
        "todo",
        "done",
    ]

    # A category: in the console's navigation, under the folded group 内容 (content).
    page.locator("nav.console-nav summary", has_text="内容").tap()
    page.locator("nav.console-nav a[href='/operator/categories']").tap()
    page.wait_for_url("**/operator/categories")
    page.fill("#name", "游戏充值")
    page.fill("#name_en", "Game top-ups")
    operator.submit("form.category-new")
    expect(page.locator("main")).to_contain_text("游戏充值")

    # The contact and the policies buyers will read.
    operator.open("/operator/settings")
    page.fill("#contact_qq", "800123456")
    page.fill("#contact_telegram", "xinghe_help")
    page.fill("#contact_email", "help@xinghe.example")
    page.fill("#terms", TERMS)
    page.fill("#refund_policy", "卡密无效请在 24 小时内投诉，核实后补发或退款。")
    page.fill("#privacy_policy", "我们只保存完成订单所需的邮箱和答复。")
    operator.submit("form[action='/operator/settings']", "**/operator/settings?saved=1")

    # 易支付, pointed at the provider (a fake of its protocol on another port).
    operator.open("/operator/gateways")
    settings = providers.epay.settings()
    page.locator("form[action='/operator/gateways/epay'] input[name=enabled]").check()
    for name in ("api_url", "pid", "key"):
        page.fill(f"#epay-{name}", settings[name])
    page.fill("#epay-sign_type", "MD5")
    operator.submit("form[action='/operator/gateways/epay']", "**/operator/gateways?saved=epay")


def shop_lists_the_product(operator: Phone) -> str:
    """The one-person shop's product: a picture, a required 游戏 UID, three keys. Returns its slug."""
    page = operator.page
    operator.open("/merchant/products/new")
    page.fill("#title", PRODUCT)
    page.select_option("#category_id", label="游戏充值")
    page.fill("#price", "6.00")
    page.fill("#description_md", "官方渠道代充，**到账后** 在游戏内邮箱查收。")
    operator.submit("form:has(#title)", "**/merchant/products/*/keys")
    slug = re.search(r"/merchant/products/([^/]+)/keys", page.url).group(1)
    page.fill("#keys", "\n".join(KEYS))
    operator.submit("form:has(#keys)")
    expect(page.locator("section.report")).to_be_visible()

    operator.open(f"/merchant/products/{slug}/images")
    cover = {"name": "cover.png", "mimeType": "image/png", "buffer": png((90, 60, 200), (640, 360))}
    page.set_input_files("#cover-file", [cover])
    operator.submit("form:has(#cover-file)")
    expect(page.locator("main img").first).to_be_visible()

    operator.open(f"/merchant/products/{slug}/fields")
    page.fill("#label", "游戏 UID")
    page.select_option("#kind", "number")
    page.fill("#help_text", "游戏内 设置 → 账号 中的 9 位数字")
    page.locator("form.checkout-field-form summary", has_text="高级").tap()  # the pattern, folded away
    page.fill("#pattern", "[0-9]{9}")
    page.fill("#pattern_message", "UID 是 9 位数字")
    operator.submit("form.checkout-field-form", f"**/merchant/products/{slug}/fields")
    expect(page.locator("main")).to_contain_text("游戏 UID")
    return slug


def buyer_pays_with_epay(buyer: Phone, providers, uid: str, javascript: bool) -> None:
    page = buyer.page
    buyer.open("/")
    card = page.get_by_role("link", name=re.compile(re.escape(PRODUCT)))
    expect(card.locator("img").first).to_be_visible()
    card.first.tap()
    page.wait_for_url("**/p/*")
    buyer.check()
    expect(page.locator("h1")).to_have_text(PRODUCT)
    # The footer names the operator's contact; the consent line opens the terms.
    expect(page.locator("footer")).to_contain_text("800123456")
    with buyer.context.expect_page() as opened:
        page.locator("p.consent a").tap()
    terms = opened.value
    terms.wait_for_load_state()
    expect(terms.locator("main strong")).to_have_text("不支持无理由退款")
    terms.close()

    if javascript:  # a wrong UID first: the shop's own words, and nothing ordered
        page.fill("input[name^=answer-]", "12345")
        page.locator("form.buy button[type=submit]").tap()
        expect(page.locator(".checkout-field .error")).to_have_text("UID 是 9 位数字")
        assert [e for e in buyer.errors if "400" not in e] == []  # Chromium logs the refusal's status
        buyer.errors.clear()
    page.fill("input[name^=answer-]", uid)
    expect(page.locator("input[type=hidden][name=gateway]")).to_have_value("epay")  # the one way to pay
    page.locator("form.buy button[type=submit]").tap()
    if not javascript:
        page.wait_for_url("**/pay/*")  # faka's own pay page, then a plain link to the provider
        page.locator("article.pay a.button.primary").tap()
    page.wait_for_url(providers.base_url + "/**")
    page.locator("button.pay").tap()
    page.wait_for_url(f"{buyer.base}/order/*")
    buyer.check()
    # With JavaScript the page polls; without, it refreshes itself until the key is there.
    expect(page.locator(".card-key")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator(".order-answers")).to_contain_text(uid)


def test_a_fresh_install_opens_a_real_shop_and_sells_a_key(chromium, fresh_install, providers):
    app, base = fresh_install
    assert gateway_settings("sandbox")[0].enabled is False  # init-db leaves the sandbox off

    operator = Phone(chromium, base)
    operator_opens_the_shop(operator, providers)
    slug = shop_lists_the_product(operator)
    operator.open("/operator/")
    assert [step_state(operator, s) for s in ("category", "merchant", "gateway", "sandbox")] == ["done"] * 4

    uids = {True: "100000001", False: "100000002"}
    for javascript, uid in uids.items():
        buyer = Phone(chromium, base, javascript)
        try:
            buyer_pays_with_epay(buyer, providers, uid, javascript)
        finally:
            buyer.context.close()

    db.session.commit()  # see what the shop committed
    product = db.session.scalar(select(Product).where(Product.slug == slug))
    orders = list(db.session.scalars(select(Order).where(Order.product_id == product.id).order_by(Order.id)))
    assert [o.status for o in orders] == [Order.DELIVERED, Order.DELIVERED]  # the wrong UID ordered nothing
    assert sorted(key for o in orders for key in key_texts(o)) == KEYS[:2]

    # The shop sees what the buyer told it, on the order.
    for order, uid in zip(orders, uids.values()):
        operator.open(f"/merchant/orders/{order.number}")
        expect(operator.page.locator(".order-answers")).to_contain_text("游戏 UID")
        expect(operator.page.locator(".order-answers dd")).to_have_text(uid)
    operator.context.close()
