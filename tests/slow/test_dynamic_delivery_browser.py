"""A "from my server" product on a fresh install, in a phone's Chromium (360 px, Chinese).

The shop starts empty, as the README has a new operator start it (`flask init-db`,
`flask create-operator --shop`), and is served on a port of its own. Its owner sets up the
shop as on opening day (tests/slow/test_opening_day.py: two-factor authentication, a
category, the policies, 易支付 pointed at a fake provider on another port), then lists a
product delivered from their own server: the product form takes the server's address, the
page after saving shows the signing secret once, and a test request reaches the server.
The merchant's server is a real HTTP server on 127.0.0.1 that checks each request's
signature with that secret and issues a licence. A buyer pays on the provider's page and
sees that licence on the order page.
"""

import hashlib
import hmac
import json
import re
import threading
import time
from contextlib import nullcontext
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from test_backup import flask, opened, scratch_database
from test_opening_day import WAIT_MS, Phone, operator_opens_the_shop
from werkzeug.serving import make_server

from conftest import TEST_DATABASE, key_texts
from faka.catalog.models import DELIVERY_REMOTE, Product
from faka.extensions import db
from faka.orders.models import Order

OPERATOR_EMAIL, OPERATOR_PASSWORD = "owner@xinghe.example", "open-the-shop-2026"
PRODUCT = "星河加速器 年度授权"


class LicenceServer:
    """The merchant's delivery server: a licence per item ordered, once per request id;
    a request whose signature does not check out with `secret` gets 401."""

    def __init__(self):
        self.secret = ""
        self.issued: dict[str, list[str]] = {}
        self.tests = 0
        self.refused = 0
        server = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                if not server.signed(self.headers.get("Faka-Signature", ""), body):
                    server.refused += 1
                    return self.answer(401, {"error": "invalid signature"})
                request = json.loads(body)
                quantity = request["order"]["quantity"]
                if request["test"]:
                    server.tests += 1
                    return self.answer(200, {"keys": [f"TEST-{n}" for n in range(1, quantity + 1)]})
                keys = server.issued.setdefault(
                    request["id"], [f"XH-{request['order']['number'][-6:]}-{n}" for n in range(1, quantity + 1)]
                )
                self.answer(200, {"keys": keys})

            def answer(self, status, payload):
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, *args):
                pass

        self.http = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.http.server_address[1]}/faka/deliver"
        threading.Thread(target=self.http.serve_forever, name="licence-server", daemon=True).start()

    def signed(self, header: str, body: bytes) -> bool:
        try:
            fields = dict(part.split("=", 1) for part in header.split(","))
            t, v1 = int(fields["t"]), fields["v1"]
        except (KeyError, ValueError):
            return False
        expected = hmac.new(self.secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
        return hmac.compare_digest(expected, v1) and abs(time.time() - t) < 300

    def stop(self) -> None:
        self.http.shutdown()
        self.http.server_close()


@pytest.fixture
def licence_server():
    server = LicenceServer()
    yield server
    server.stop()


@pytest.fixture
def fresh_install(tmp_path, base_config, monkeypatch):
    """As in test_opening_day: `init-db` and `create-operator --shop` in new processes on an
    empty instance folder and database, that shop served on 127.0.0.1 (jobs in background
    threads). Its delivery servers may be on 127.0.0.1, as the test's is."""
    instance = tmp_path / "instance"
    with scratch_database("dynamic") if TEST_DATABASE != "sqlite" else nullcontext() as url:
        env = {"FAKA_INSTANCE_PATH": str(instance), **({"DATABASE_URL": url} if url else {})}
        for command in (
            ("init-db",),
            ("create-operator", "--email", OPERATOR_EMAIL, "--password", OPERATOR_PASSWORD, "--shop", "星河数码"),
        ):
            done = flask(env, *command)
            assert done.returncode == 0, done.stderr
        config = {"JOBS_MODE": "thread", "WEBHOOK_ALLOW_PRIVATE": True}
        with opened(base_config, monkeypatch, instance, url, **config) as app:
            server = make_server("127.0.0.1", 0, app, threaded=True)
            app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
            threading.Thread(target=server.serve_forever, name="dynamic-shop", daemon=True).start()
            try:
                yield app, app.config["BASE_URL"]
            finally:
                app.extensions["faka_jobs"].wait_idle()
                server.shutdown()
                server.server_close()


def merchant_lists_a_server_product(owner: Phone, licence_server: LicenceServer, screenshot) -> str:
    """The product form with "from my server"; the secret shown once; a test request.
    Returns the product's slug."""
    page = owner.page
    owner.open("/merchant/products/new")
    page.fill("#title", PRODUCT)
    page.select_option("#category_id", label="游戏充值")
    page.fill("#price", "99.00")
    page.select_option("#delivery_type", DELIVERY_REMOTE)
    page.fill("#remote_url", licence_server.url)
    owner.submit("form:has(#title)")
    secret = page.locator("#server-secret")
    expect(secret).to_be_visible()
    licence_server.secret = secret.inner_text()
    assert re.fullmatch(r"ddsec_[0-9a-f]{64}", licence_server.secret)
    owner.check()

    page.locator("form[action$='/server/test'] button").tap()
    expect(page.locator(".server-test p.notice")).to_be_visible()
    assert licence_server.tests == 1 and licence_server.refused == 0
    owner.check()
    screenshot(page, "server-page")
    db.session.commit()
    return db.session.scalar(select(Product.slug).where(Product.title == PRODUCT))


def buyer_pays_and_gets_the_licence(buyer: Phone, providers, javascript: bool) -> str:
    page = buyer.page
    buyer.open("/")
    page.get_by_role("link", name=re.compile(re.escape(PRODUCT))).first.tap()
    page.wait_for_url("**/p/*")
    buyer.check()
    expect(page.locator("p.delivery")).to_be_visible()
    page.locator("form.buy button[type=submit]").tap()
    if not javascript:
        page.wait_for_url("**/pay/*")  # faka's own pay page, then a plain link to the provider
        page.locator("article.pay a.button.primary").tap()
    page.wait_for_url(providers.base_url + "/**")
    page.locator("button.pay").tap()
    page.wait_for_url(f"{buyer.base}/order/*")
    buyer.check()
    # With JavaScript the page polls; without, it refreshes itself until the key is there.
    key = page.locator(".card-key")
    expect(key).to_have_count(1, timeout=WAIT_MS)
    return key.inner_text()


def test_a_buyer_gets_the_licence_the_merchants_server_issued(
    chromium, fresh_install, providers, licence_server, tmp_path
):
    app, base = fresh_install

    def screenshot(page, name):
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)

    owner = Phone(chromium, base)
    operator_opens_the_shop(owner, providers)
    slug = merchant_lists_a_server_product(owner, licence_server, screenshot)

    shown = []
    for javascript in (True, False):
        buyer = Phone(chromium, base, javascript=javascript)
        try:
            shown.append(buyer_pays_and_gets_the_licence(buyer, providers, javascript))
            screenshot(buyer.page, f"order-page-js-{javascript}")
        finally:
            buyer.context.close()

    db.session.commit()  # see what the shop committed
    orders = db.session.scalars(select(Order).join(Product).where(Product.slug == slug).order_by(Order.id)).all()
    assert [o.status for o in orders] == [Order.DELIVERED, Order.DELIVERED]
    assert list(licence_server.issued.values()) == [[k] for k in shown] == [key_texts(o) for o in orders]
    order = orders[0]

    # The owner's order page shows the request that delivered it.
    owner.open(f"/merchant/orders/{order.number}")
    expect(owner.page.locator("#delivery-server")).to_contain_text("HTTP 200")
    owner.context.close()
