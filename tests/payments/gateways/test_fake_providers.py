"""Whole purchases against the fake providers (tests/fakes/): faka on a real port, each
provider on another origin, and a buyer's browser without JavaScript (`requests`) that
leaves faka's pay page by its link, pays on the provider's page (or scans the QR code, or
signs in to WeChat and pays in its payment sheet), comes back, and finds the key.

They check the fakes against faka's gateways, and the gateways against the fakes: what
the shop asks is verified by the provider's rules, what the provider sends is verified by
the shop's. Every signature on the fake side is computed by the fake itself.
"""

import json
from collections.abc import Callable
from dataclasses import dataclass
from html.parser import HTMLParser
from urllib.parse import urljoin, urlsplit

import pytest
import requests
from flask import current_app
from sqlalchemy import select

from conftest import count, key_texts, reload
from faka.extensions import db
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import get_gateway
from faka.payments.models import NotifyLog, PaymentNotice
from fakes.common import key_pair, private_pem

DESKTOP_UA = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
PHONE_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36"
)
WECHAT_UA = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 "
    "Mobile Safari/537.36 XWEB/1260117 MMWEBSDK/20240404 MicroMessenger/8.0.49.2600(0x28003133) "
    "WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)


# -- a browser without JavaScript ---------------------------------------------------------


class _Page(HTMLParser):
    """The links, forms and data-wechat-pay buttons of a page."""

    def __init__(self, text: str):
        super().__init__(convert_charrefs=True)
        self.links: list[dict[str, str]] = []
        self.forms: list[dict] = []
        self.buttons: list[dict[str, str]] = []
        self._select: str | None = None
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        attrs = {name: value or "" for name, value in attrs}
        if tag == "a" and attrs.get("href"):
            self.links.append(attrs)
        elif tag == "form":
            self.forms.append(
                {"action": attrs.get("action", ""), "method": attrs.get("method", "get").lower(), "fields": {}}
            )
        elif tag == "input" and self.forms and attrs.get("name"):
            self.forms[-1]["fields"][attrs["name"]] = attrs.get("value", "")
        elif tag == "select" and self.forms:
            self._select = attrs.get("name")
        elif tag == "option" and self._select and ("selected" in attrs or self._select not in self.forms[-1]["fields"]):
            self.forms[-1]["fields"][self._select] = attrs.get("value", "")
        elif tag == "button":
            self.buttons.append(attrs)
            if self.forms and attrs.get("name") and attrs.get("type", "submit") == "submit":
                self.forms[-1]["fields"].setdefault(attrs["name"], attrs.get("value", ""))

    def handle_endtag(self, tag):
        if tag == "select":
            self._select = None


class Browser:
    """A buyer's browser without JavaScript: it keeps cookies, follows redirects, sends the
    Referer a browser would send when it follows a link, and submits a page's form."""

    def __init__(self, user_agent: str = DESKTOP_UA):
        self.http = requests.Session()
        self.http.trust_env = False
        self.http.headers["User-Agent"] = user_agent

    def get(self, url: str, referer: str | None = None) -> requests.Response:
        headers = {"Referer": referer} if referer else {}
        return self.http.get(url, headers=headers, timeout=30)

    def follow(self, response: requests.Response, link: dict[str, str]) -> requests.Response:
        """Click a link of the page `response` showed."""
        target = urljoin(response.url, link["href"])
        return self.get(target, referer=_referer(response, target, link.get("referrerpolicy")))

    def submit(self, response: requests.Response, form: dict | None = None) -> requests.Response:
        """Submit the page's form (its only one that posts, unless `form` is given)."""
        if form is None:
            forms = [f for f in _Page(response.text).forms if f["method"] == "post"]
            assert len(forms) == 1, f"{response.url} has {len(forms)} forms to post"
            form = forms[0]
        target = urljoin(response.url, form["action"])
        referer = _referer(response, target)
        reply = self.http.post(target, data=form["fields"], timeout=30, headers={"Referer": referer} if referer else {})
        assert reply.status_code < 500, f"{reply.url}: HTTP {reply.status_code}"
        return reply


def _referer(page: requests.Response, target: str, policy: str | None = None) -> str | None:
    """The Referer Chromium sends from `page` to `target`: by the link's referrerpolicy, else
    the page's Referrer-Policy, else strict-origin-when-cross-origin."""
    policy = (
        policy or page.headers.get("Referrer-Policy", "").split(",")[-1].strip() or "strict-origin-when-cross-origin"
    )
    source = page.url
    same_origin = urlsplit(source)[:2] == urlsplit(target)[:2]
    origin = "{}://{}/".format(*urlsplit(source)[:2])
    if policy == "no-referrer" or (policy == "same-origin" and not same_origin):
        return None
    if policy in ("origin", "strict-origin") or (policy == "strict-origin-when-cross-origin" and not same_origin):
        return origin
    return source.split("#")[0]


# -- the shop's side ------------------------------------------------------------------------


def place(product, gateway: str) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(
            product.slug, 1, "buyer@example.com", "secret-1", gateway=gateway, client_ip="127.0.0.1"
        )


def notify_log(order: Order) -> list[tuple[bool, str]]:
    db.session.commit()
    rows = db.session.scalars(
        select(NotifyLog)
        .where(NotifyLog.order_number == order.number, NotifyLog.via == NotifyLog.NOTIFY)
        .order_by(NotifyLog.id)
    )
    return [(row.verified, row.outcome) for row in rows]


def pay_page(browser: Browser, shop, order: Order) -> requests.Response:
    page = browser.get(f"{shop.url}/pay/{order.token}")
    assert page.status_code == 200 and page.url.endswith(f"/pay/{order.token}"), page.text[:500]
    return page


def provider_link(page: requests.Response, fakes) -> dict[str, str]:
    links = [link for link in _Page(page.text).links if link["href"].startswith(fakes.base_url)]
    assert len(links) == 1, f"the pay page links to the provider {len(links)} times"
    return links[0]


def assert_at_order_page(response: requests.Response, shop, order: Order) -> None:
    assert response.status_code == 200
    assert urlsplit(response.url)[:3] == urlsplit(f"{shop.url}/order/{order.token}")[:3], response.url


# -- each way of paying ----------------------------------------------------------------------
# Each takes the buyer from faka's pay page to the order page they come back to.


def leave_and_pay(browser: Browser, page: requests.Response, fakes, shop=None, order=None) -> requests.Response:
    """Follow the pay page's link to the provider and press its pay button."""
    provider_page = browser.follow(page, provider_link(page, fakes))
    assert provider_page.status_code == 200 and provider_page.url.startswith(fakes.base_url)
    assert 'class="error"' not in provider_page.text, fakes.received[-1]
    return browser.submit(provider_page)


def scan_and_pay(gateway: str) -> Callable:
    def pay(browser, page, fakes, shop, order):
        assert "<svg" in page.text  # the QR code
        fakes[gateway].pay_qr(fakes[gateway].qr_for(order.number))
        return browser.get(f"{shop.url}/pay/{order.token}")  # the pay page moves on to the order page

    return pay


def sign_in_and_pay_in_wechat(browser, page, fakes, shop, order):
    """Inside WeChat: the official account's OAuth first, then WeChat's payment sheet."""
    back = browser.follow(page, provider_link(page, fakes))  # WeChat's OAuth, back to the pay page
    # WeChat sends the buyer back to faka, which shows the pay page again (the browser keeps
    # the #wechat_redirect fragment through redirects without one, as browsers do).
    assert back.url.split("#")[0].endswith(f"/pay/{order.token}"), (back.url, fakes.wechat.refused())
    (button,) = [b for b in _Page(back.text).buttons if "data-wechat-pay" in b]
    params = json.loads(button["data-wechat-pay"])
    assert fakes.wechat.pay_jsapi(params) == "get_brand_wcpay_request:ok"
    return browser.get(urljoin(back.url, button["data-paid-url"]))


@dataclass(frozen=True)
class Way:
    gateway: str
    settings: dict
    user_agent: str
    pay: Callable  # (browser, pay page, fakes, shop, order) -> the page the buyer ends on


WAYS = {
    "epay-md5": Way("epay", {"sign_type": "MD5"}, DESKTOP_UA, leave_and_pay),
    "epay-rsa": Way("epay", {"sign_type": "RSA"}, DESKTOP_UA, leave_and_pay),
    "alipay-wap": Way("alipay", {"mode": "wap"}, PHONE_UA, leave_and_pay),
    "alipay-page": Way("alipay", {"mode": "page"}, DESKTOP_UA, leave_and_pay),
    "alipay-precreate": Way("alipay", {"mode": "precreate"}, DESKTOP_UA, scan_and_pay("alipay")),
    "wechat-native": Way("wechat", {"methods": "native"}, DESKTOP_UA, scan_and_pay("wechat")),
    "wechat-h5": Way("wechat", {"methods": "h5"}, PHONE_UA, leave_and_pay),
    "wechat-jsapi": Way("wechat", {"methods": "jsapi"}, WECHAT_UA, sign_in_and_pay_in_wechat),
    "stripe": Way("stripe", {}, DESKTOP_UA, leave_and_pay),
    "usdt": Way("usdt", {}, DESKTOP_UA, leave_and_pay),
}
# Ways whose link to the provider faka signs itself (the others ask the provider's API first).
SIGNED_LINKS = ("epay-md5", "epay-rsa", "alipay-wap", "alipay-page")
# Ways whose gateway has a query API, so "I have paid" finds a payment whose notification was lost.
QUERYABLE = ["epay-md5", "epay-rsa", "alipay-wap", "alipay-precreate", "wechat-native", "stripe"]


@dataclass(frozen=True)
class Purchase:
    order: Order
    browser: Browser
    pay_page: requests.Response  # faka's pay page, as the buyer first saw it
    back: requests.Response  # the page the buyer ended on


@pytest.fixture
def buy(live_shop, providers, make_product):
    """buy(way) → Purchase: a product with keys, ordered with the way's gateway (configured
    to its fake), paid at the fake as a buyer would pay."""

    def buy_with(name: str) -> Purchase:
        way = WAYS[name]
        providers.configure(way.gateway, **way.settings)
        order = place(make_product(keys=3, price=1250), way.gateway)
        browser = Browser(way.user_agent)
        page = pay_page(browser, live_shop, order)
        return Purchase(order, browser, page, way.pay(browser, page, providers, live_shop, order))

    return buy_with


@pytest.mark.parametrize("way", WAYS)
def test_buyer_pays_at_the_provider_comes_back_and_gets_the_key(live_shop, providers, buy, way):
    purchase = buy(way)
    order, back = purchase.order, purchase.back
    assert_at_order_page(back, live_shop, order)
    live_shop.idle()
    assert reload(order).status == Order.DELIVERED
    (key,) = key_texts(order)
    assert key in Browser().get(f"{live_shop.url}/order/{order.token}").text
    fake = providers[WAYS[way].gateway]
    (sent,) = fake.notifications(order.number)
    assert sent.accepted, f"faka answered {sent.status} {sent.answer!r}"
    assert notify_log(order) == [(True, "paid")]
    assert fake.refused() == []

    again = fake.replay(sent)  # the provider did not hear the answer and sends it again

    assert again.accepted
    assert notify_log(order) == [(True, "paid"), (True, "replay")]
    assert count(PaymentNotice) == 1 and key_texts(order) == [key]
    assert reload(order).status == Order.DELIVERED


@pytest.mark.parametrize("way", QUERYABLE)
def test_i_have_paid_asks_the_provider_when_its_notification_is_lost(live_shop, providers, buy, way):
    fake = providers[WAYS[way].gateway]
    fake.hold_notifications = True
    purchase = buy(way)
    order = purchase.order
    assert reload(order).status == Order.PENDING and fake.notifications(order.number) == []
    (i_have_paid,) = [form for form in _Page(purchase.pay_page.text).forms if form["action"].endswith("/check")]

    back = purchase.browser.submit(purchase.pay_page, form=i_have_paid)

    assert_at_order_page(back, live_shop, order)
    live_shop.idle()
    assert reload(order).status == Order.DELIVERED
    (sent,) = fake.release()  # the notification arrives at last, and changes nothing
    assert sent.accepted and notify_log(order) == [(True, "replay")]
    assert count(PaymentNotice) == 1


@pytest.mark.parametrize(
    "way, refund_calls",
    [
        pytest.param("epay-rsa", ["api/pay/refund"] * 2, id="epay-rsa"),
        # Alipay answers the repeated request fund_change=N; faka then asks whether the refund was made.
        pytest.param(
            "alipay-wap",
            ["alipay.trade.refund", "alipay.trade.refund", "alipay.trade.fastpay.refund.query"],
            id="alipay",
        ),
        pytest.param(
            "wechat-native",
            ["GET /v3/pay/transactions/out-trade-no", "POST /v3/refund/domestic/refunds"] * 2,
            id="wechat",
        ),
        pytest.param("stripe", ["POST /v1/refunds"] * 2, id="stripe"),
    ],
)
def test_a_refund_reaches_the_provider_once(live_shop, providers, buy, way, refund_calls):
    order = buy(way).order
    fake = providers[WAYS[way].gateway]
    db.session.commit()  # see what the shop's server committed
    trade_no = db.session.scalar(select(PaymentNotice.trade_no))
    fake.clear()
    gateway = get_gateway(WAYS[way].gateway)

    first = gateway.refund(order.number, trade_no, 500, "R1")
    second = gateway.refund(order.number, trade_no, 500, "R1")  # retried: the same refund

    assert first == second
    calls = [r.action for r in fake.received]
    assert calls == refund_calls and fake.refused() == []


# -- what the fakes refuse ----------------------------------------------------------------------

STRANGER = "a key pair that is not the provider's"


@pytest.mark.parametrize(
    "way, wrong, error",
    [
        ("epay-md5", {"key": "not-the-merchant-key"}, "签名校验失败！"),
        ("epay-rsa", {"merchant_private_key": STRANGER}, "签名校验失败"),
        ("alipay-wap", {"app_private_key": STRANGER}, "isv.invalid-signature"),
        ("alipay-precreate", {"app_private_key": STRANGER}, "isv.invalid-signature"),
        ("wechat-native", {"merchant_private_key": STRANGER}, "SIGN_ERROR"),
        pytest.param("stripe", {"secret_key": "sk_test_" + "x" * 99}, "invalid_request_error"),
        ("usdt", {"api_token": "not-the-token"}, "401"),
    ],
    ids=["epay-md5", "epay-rsa", "alipay-wap", "alipay-precreate", "wechat-native", "stripe", "usdt"],
)
def test_a_request_signed_with_the_wrong_key_is_refused_as_the_provider_refuses_it(
    live_shop, providers, make_product, way, wrong, error
):
    gateway = WAYS[way].gateway
    wrong = {name: private_pem(key_pair("stranger")) if value == STRANGER else value for name, value in wrong.items()}
    providers.configure(gateway, **WAYS[way].settings, **wrong)
    order = place(make_product(keys=1), gateway)
    browser = Browser(WAYS[way].user_agent)

    page = browser.get(f"{live_shop.url}/pay/{order.token}")
    if way in SIGNED_LINKS:
        assert page.status_code == 200  # faka signed the link; the provider shows its error page
        provider_page = browser.follow(page, provider_link(page, providers))
        assert 'class="error"' in provider_page.text and 'method="post"' not in provider_page.text
    else:
        assert page.status_code == 502  # the API call failed: faka offers another way to pay

    (refused,) = providers[gateway].refused()
    assert refused.error == error
    assert reload(order).status == Order.PENDING and providers[gateway].notifications() == []
