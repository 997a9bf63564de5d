"""All the fake providers in one WSGI app on one port of 127.0.0.1, each under its own
path prefix, and the pytest fixtures that start it (and faka) on real ports."""

import threading
from dataclasses import dataclass

import pytest
from flask import Flask, current_app
from werkzeug.serving import make_server

from faka.payments.gateways import GATEWAYS, configure_gateway
from fakes.alipay import FakeAlipay
from fakes.common import Provider, Received, Sent
from fakes.epay import FakeEpay
from fakes.epusdt import FakeEpusdt
from fakes.stripe_checkout import FakeStripe
from fakes.wechat import FakeWechatPay


class FakeProviders:
    """Every fake provider, served together. `configure(gateway)` points faka's gateway at
    its fake (call it inside the shop's app context)."""

    def __init__(self):
        self.epay = FakeEpay()
        self.alipay = FakeAlipay()
        self.wechat = FakeWechatPay()
        self.stripe = FakeStripe()
        self.usdt = FakeEpusdt()
        self.app = Flask(__name__, static_folder=None)
        for provider in self.all:
            for blueprint in provider.blueprints():
                self.app.register_blueprint(blueprint)
        self.base_url = ""
        self._server = None

    @property
    def all(self) -> list[Provider]:
        return [self.epay, self.alipay, self.wechat, self.stripe, self.usdt]

    def __getitem__(self, gateway: str) -> Provider:
        """The fake for a faka gateway name: "epay", "alipay", "wechat", "stripe" or "usdt"."""
        for provider in self.all:
            if provider.name == gateway:
                return provider
        raise KeyError(gateway)

    def start(self) -> "FakeProviders":
        self._server = make_server("127.0.0.1", 0, self.app, threaded=True)
        self.base_url = f"http://127.0.0.1:{self._server.server_port}"
        for provider in self.all:
            provider.base_url = self.base_url
        threading.Thread(target=self._server.serve_forever, name="fake-providers", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()

    def configure(self, gateway: str, **overrides: str) -> dict[str, str]:
        """Enable faka's `gateway` with settings pointing at its fake (the fake's own ids, keys
        and secrets, which faka also needs), plus `overrides` (e.g. `mode="wap"` for Alipay).
        Settings the gateway does not (yet) have are left out; an override it does not have
        is refused. Also tells the fake about the shop where the real provider's console
        would: Stripe's webhook endpoint, WeChat's H5 payment and OAuth domain."""
        provider = self[gateway]
        fields = GATEWAYS[gateway].settings_fields
        values = {name: value for name, value in provider.settings().items() if name in fields}
        values.update(overrides)
        site = current_app.config["BASE_URL"].rstrip("/")
        if gateway == "stripe":
            provider.webhook_url = site + current_app.url_map.bind("").build("pay.notify", {"gateway": "stripe"})
        if gateway == "wechat":
            provider.allow_domain(site)
        configure_gateway(gateway, values, enabled=True)
        return values

    def clear(self) -> None:
        """Forget every provider's records (not the trades and sessions they hold)."""
        for provider in self.all:
            provider.clear()

    @property
    def received(self) -> list[Received]:
        return sorted((r for p in self.all for r in p.received), key=lambda r: r.at)

    @property
    def sent(self) -> list[Sent]:
        return sorted((s for p in self.all for s in p.sent), key=lambda s: s.at)


@pytest.fixture(scope="module")
def fake_providers():
    """The fake providers' server, one per test module (its state lives as long)."""
    fakes = FakeProviders().start()
    yield fakes
    fakes.stop()


@pytest.fixture
def providers(fake_providers):
    """The module's fake providers, with the records of earlier tests forgotten."""
    fake_providers.clear()
    return fake_providers


@dataclass
class LiveShop:
    app: Flask
    url: str  # e.g. http://127.0.0.1:54321, also the app's BASE_URL

    def idle(self) -> None:
        """Wait for the background jobs (delivery, email) started so far."""
        self.app.extensions["faka_jobs"].wait_idle()


@pytest.fixture
def live_shop(app, make_app):
    """faka served on a real port of 127.0.0.1 (jobs in background threads) whose BASE_URL
    is that address, so the notify and return URLs it gives a provider reach it. The test
    runs inside its app context: it comes after `app` (which the factories use), so it is
    the current app, whose BASE_URL `FakeProviders.configure` reads."""
    app = make_app(JOBS_MODE="thread")
    server = make_server("127.0.0.1", 0, app, threaded=True)
    app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
    threading.Thread(target=server.serve_forever, name="faka", daemon=True).start()
    shop = LiveShop(app, app.config["BASE_URL"])
    with app.app_context():
        yield shop
        shop.idle()
    server.shutdown()
    server.server_close()
