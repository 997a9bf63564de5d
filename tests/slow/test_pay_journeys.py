"""A buyer pays for real, in a real Chromium: a phone (360×800, Chinese) taps "Buy", is
sent to the provider on another origin (the fake providers of tests/fakes/, each speaking
its protocol exactly), pays there, comes back and sees the key, under faka's real CSP.
Once with JavaScript on and once with it off, for every way of paying: the redirect ones
(易支付, Alipay WAP and desktop page, WeChat H5, Stripe Checkout, epusdt), the QR ones
(Alipay 当面付 and WeChat Native, on a desktop) and WeChat's in-app JSAPI sheet.

`FAKA_JOURNEY_RUNS=5 FAKA_JOURNEY_TIMES=file.jsonl pytest tests/slow/test_pay_journeys.py`
runs each journey five times and appends each "Buy" → key-visible time to the file
(bench/pay_journeys.py reports their medians)."""

import json
import os
import time
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import expect

from conftest import count, key_texts, no_horizontal_scroll, reload
from faka.extensions import db
from faka.orders.models import Order
from faka.payments.models import NotifyLog

PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/126.0.6478.188 Mobile Safari/537.36 XWEB/1260117 MMWEBSDK/20240501 "
    "MicroMessenger/8.0.50.2701(0x28003237) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
PHONE = {
    "viewport": {"width": 360, "height": 800},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 2,
    "locale": "zh-CN",
    "user_agent": PHONE_UA,
}
DESKTOP = {"viewport": {"width": 1280, "height": 800}, "locale": "zh-CN"}
WAIT_MS = 20_000
RUNS = range(int(os.environ.get("FAKA_JOURNEY_RUNS", "1")))


@dataclass(frozen=True)
class Way:
    gateway: str
    settings: dict = field(default_factory=dict)
    screen: dict = field(default_factory=lambda: PHONE)
    paid_by: str = "page"  # "page": the provider's pay page; "qr": scanned; "jsapi": WeChat's sheet
    javascript: tuple[bool, ...] = (True, False)


WAYS = {
    "epay": Way("epay", {"sign_type": "MD5"}),
    "alipay-wap": Way("alipay", {"mode": "wap"}),
    "alipay-page": Way("alipay", {"mode": "page"}),
    "wechat-h5": Way("wechat", {"methods": "h5"}),
    "stripe": Way("stripe"),
    "usdt": Way("usdt"),
    "alipay-qr": Way("alipay", {"mode": "precreate"}, DESKTOP, "qr"),
    "wechat-qr": Way("wechat", {"methods": "native"}, DESKTOP, "qr"),
    "wechat-jsapi": Way("wechat", {"methods": "jsapi"}, {**PHONE, "user_agent": WECHAT_UA}, "jsapi", (True,)),
}
JOURNEYS = [
    pytest.param(
        name,
        javascript,
        run,
        id=f"{name}-js-{'on' if javascript else 'off'}" + (f"-{run + 1}" if len(RUNS) > 1 else ""),
    )
    for name, way in WAYS.items()
    for javascript in way.javascript
    for run in RUNS
]


class Buyer:
    """One phone's (or desktop's) browser: notes every origin it lands on and every
    console error (a CSP violation shows there)."""

    def __init__(self, chromium, shop, way: Way, javascript: bool, providers):
        self.shop = shop
        self.context = chromium.new_context(**way.screen, java_script_enabled=javascript)
        if way.paid_by == "jsapi":  # WeChat's payment sheet, which only the WeChat app has
            self.context.expose_function("fakeWechatPay", providers.wechat.pay_jsapi)
            self.context.add_init_script(
                "window.WeixinJSBridge = {invoke: (name, params, done) => "
                "window.fakeWechatPay(params).then(err_msg => done({err_msg}))};"
            )
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.origins: list[str] = []
        self.errors: list[str] = []
        self.page.on(
            "framenavigated",
            lambda frame: (
                frame == self.page.main_frame and self.origins.append("{}://{}".format(*urlsplit(frame.url)[:2]))
            ),
        )
        # Only faka's own pages are checked: what the provider's pages log is theirs.
        self.page.on("console", lambda m: self._error(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self._error(str(e)))

    def _error(self, text: str) -> None:
        if self.page.url.startswith(self.shop.url):
            self.errors.append(f"{self.page.url}: {text}")


def the_order(product) -> Order:
    db.session.commit()  # end the test's snapshot: the shop committed since
    return db.session.execute(db.select(Order).where(Order.product_id == product.id)).scalar_one()


def pay_on_the_provider(buyer: Buyer, way: Way, providers, product) -> None:
    page = buyer.page
    if way.paid_by == "page":
        page.wait_for_url(providers.base_url + "/**")
        assert no_horizontal_scroll(page)
        page.locator("button.pay").click()
    elif way.paid_by == "qr":
        expect(page.locator("figure.qr svg").first).to_be_visible()
        fake = providers[way.gateway]
        fake.pay_qr(fake.qr_for(the_order(product).number))  # the buyer's phone scans the code and pays
    # jsapi: faka.js opened WeChat's payment sheet by itself, which paid.


@pytest.mark.parametrize("name, javascript, run", JOURNEYS)
def test_buyer_pays_through_the_provider_and_sees_the_key(
    chromium, live_shop, providers, make_product, name, javascript, run
):
    way = WAYS[name]
    providers.configure(way.gateway, **way.settings)
    product = make_product(keys=3, price=1250, title="Steam 钱包充值卡 ¥12.5")
    buyer = Buyer(chromium, live_shop, way, javascript, providers)
    page = buyer.page
    try:
        page.goto(f"{live_shop.url}/p/{product.slug}")
        page.fill("#email", "buyer@example.com")
        page.fill("#query_password", "pw-1234")
        page.locator(f"input[name=gateway][value={way.gateway}]").check()
        started = time.monotonic()
        page.locator("form.buy button[type=submit]").click()
        if not javascript or way.paid_by == "qr":
            page.wait_for_url(f"{live_shop.url}/pay/*")  # faka's own pay page first
            assert no_horizontal_scroll(page)
        if not javascript and way.paid_by == "page":
            page.locator("article.pay a.button.primary").click()  # "Continue to …": a plain link
        pay_on_the_provider(buyer, way, providers, product)
        if not javascript and way.paid_by == "qr":
            page.locator("form[action$='/check'] button").click()  # "I have paid"
        page.wait_for_url(f"{live_shop.url}/order/*", timeout=WAIT_MS)
        order = the_order(product)
        assert page.url.startswith(f"{live_shop.url}/order/{order.token}")
        keys = page.locator(".card-key")
        if javascript:
            expect(keys).to_have_count(1, timeout=WAIT_MS)  # at once, or by the page's polling
        else:
            deadline = time.monotonic() + WAIT_MS / 1000
            while keys.count() == 0 and time.monotonic() < deadline:  # the page refreshes itself every 5 s
                page.wait_for_load_state("load")
                page.wait_for_timeout(250)
        elapsed = time.monotonic() - started
        expect(keys).to_have_count(1)
        assert keys.inner_text().strip() == key_texts(order)[0]
        assert no_horizontal_scroll(page)
        assert buyer.errors == []
    finally:
        buyer.context.close()

    if way.paid_by == "page":
        assert providers.base_url in buyer.origins, "the browser never reached the provider's site"
    elif way.paid_by == "jsapi":  # through WeChat's sign-in (a redirect straight back) to its payment sheet
        assert [r.status for r in providers.wechat.requests_for("oauth2/authorize")] == [302]
        assert len(providers.wechat.requests_for("getBrandWCPayRequest", verified=True)) == 1
    assert reload(order).status == Order.DELIVERED and count(Order) == 1
    assert [
        (log.verified, log.outcome)
        for log in db.session.scalars(
            db.select(NotifyLog).where(NotifyLog.order_number == order.number, NotifyLog.outcome == "paid")
        )
    ] == [(True, "paid")]
    _note_time(name, javascript, elapsed)


def _note_time(name: str, javascript: bool, seconds: float) -> None:
    path = os.environ.get("FAKA_JOURNEY_TIMES")
    if path:
        with open(path, "a") as out:
            out.write(json.dumps({"way": name, "javascript": javascript, "seconds": round(seconds, 3)}) + "\n")
