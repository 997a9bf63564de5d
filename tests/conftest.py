"""Fixtures: a real database (SQLite file or PostgreSQL, chosen by FAKA_TEST_DATABASE),
real Redis + RQ, a real SMTP server, and small factories for the shop's objects."""

import os
import re
import secrets
import shutil
import socket
import threading
from datetime import timedelta
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import current_app, has_app_context
from flask.testing import FlaskClient
from sqlalchemy import text
from werkzeug.serving import make_server

from faka import create_app
from faka.accounts import sessions, users
from faka.accounts.models import Merchant
from faka.catalog.models import DELIVERY_AUTO, Category, Product
from faka.core import clock
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db as _db
from faka.inventory.keys import import_keys
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import ensure_sandbox, get_gateway
from faka.payments.gateways.base import OrderRef

# The fake payment providers' fixtures: fake_providers, providers, live_shop (tests/fakes/).
pytest_plugins = ["fakes.providers"]

TEST_DATABASE = os.environ.get("FAKA_TEST_DATABASE", "sqlite")
TEST_REDIS_URL = os.environ.get("FAKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
ENCRYPTION_KEY = Fernet.generate_key().decode()


def database_uri(tmp: Path) -> str:
    if TEST_DATABASE == "sqlite":
        return f"sqlite:///{tmp / 'test.db'}"
    return TEST_DATABASE


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def base_config(instance_dir) -> dict:
    os.environ["FAKA_INSTANCE_PATH"] = str(instance_dir)
    # Back-office passwords are argon2id at its default cost (~0.2 s a hash, on purpose);
    # hundreds of test accounts use the lightest argon2id parameters instead. The hashes
    # are still argon2id, and verifying reads the parameters from each hash.
    from argon2 import PasswordHasher

    from faka.core import passwords

    passwords._login_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    return {
        "TESTING": True,
        "SQLALCHEMY_DATABASE_URI": database_uri(instance_dir),
        "SECRET_KEY": "test-secret",
        "ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "JOBS_MODE": "sync",
        "REDIS_URL": None,
        "RQ_QUEUE": "faka-test",
        "MAIL_SERVER": None,
        "RATELIMIT_LOOKUP": "1000 per minute",
        "RATELIMIT_CHECKOUT": "1000 per minute",
        "RATELIMIT_STORAGE_URI": "memory://",
        "RECONCILE_INTERVAL": 0,
        "BASE_URL": "http://localhost",
        "PAGE_CACHE_SECONDS": 0,
        "STATUS_CACHE_SECONDS": 0,
        "STATUS_TRUST_SECONDS": 0,
    }


@pytest.fixture(scope="session")
def _schema(base_config):
    app = create_app(base_config)
    with app.app_context():
        _db.drop_all()
        if _db.engine.dialect.name == "postgresql":
            _db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            _db.session.commit()
        _db.create_all()
        _db.engine.dispose()
    return True


class FreshContextClient(FlaskClient):
    """Each request gets its own app context, as in a real server: `g`, the logged-in
    user and the database session do not leak from the test into the request."""

    def open(self, *args, **kwargs):
        # End the test's own transaction so it sees what the request commits (a SQLite
        # reader keeps its snapshot until its transaction ends).
        if has_app_context():
            _db.session.commit()
        with self.application.app_context():
            return super().open(*args, **kwargs)


@pytest.fixture
def make_app(base_config, _schema):
    """Build an app on the test database, emptied first. Extra config as keyword args."""
    apps = []

    def build(**overrides):
        app = create_app({**base_config, **overrides})
        app.test_client_class = FreshContextClient
        if not apps:
            with app.app_context():
                _empty_database()
                ensure_sandbox()
        apps.append(app)
        return app

    yield build
    for app in apps:
        with app.app_context():
            app.extensions["faka_jobs"].wait_idle()
            _db.session.remove()
            _db.engine.dispose()


def _empty_database():
    for table in reversed(_db.metadata.sorted_tables):
        _db.session.execute(table.delete())
    _db.session.commit()


@pytest.fixture
def app(make_app):
    app = make_app()
    with app.app_context():
        yield app


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


# -- factories --------------------------------------------------------------------------


@pytest.fixture
def merchant(app) -> Merchant:
    return users.create_merchant(f"m{secrets.token_hex(4)}@shop.test", "merchant-pass-1", "Test Shop", approved=True)


@pytest.fixture
def category(app) -> Category:
    c = Category(name="游戏点卡", name_en="Game cards")
    _db.session.add(c)
    _db.session.commit()
    return c


@pytest.fixture
def make_product(app, merchant, category):
    def make(keys: int = 5, price: int = 1000, delivery_type: str = DELIVERY_AUTO, **fields) -> Product:
        fields.setdefault("title", "Test product")
        fields.setdefault("max_per_order", 10)
        product = Product(
            slug=secrets.token_hex(8),
            merchant_id=merchant.id,
            category_id=category.id,
            price=price,
            delivery_type=delivery_type,
            **fields,
        )
        _db.session.add(product)
        _db.session.commit()
        if keys:
            import_keys(product.id, "\n".join(f"KEY-{product.id}-{i:05d}-{secrets.token_hex(3)}" for i in range(keys)))
        return product

    return make


@pytest.fixture
def product(make_product) -> Product:
    return make_product(keys=5)


@pytest.fixture
def place(app):
    def place_order(
        product: Product, quantity: int = 1, email: str | None = "buyer@example.com", password: str | None = "secret-1"
    ) -> Order:
        with current_app.test_request_context():  # the app of the test's current context
            return checkout.place_order(product.slug, quantity, email, password)

    return place_order


def signed_notify(order: Order, **changes) -> dict[str, str]:
    """The notify form the sandbox pay page would post for this order."""
    start = get_gateway("sandbox").create_payment(
        OrderRef(
            number=order.number,
            token=order.token,
            total=order.total,
            currency=order.currency,
            subject="x",
            notify_url="http://localhost/pay/sandbox/notify",
            return_url="",
        )
    )
    fields = dict(start.form_fields)
    fields.update(changes)
    return fields


@pytest.fixture
def pay(client):
    def pay_order(order: Order, **changes):
        return client.post("/pay/sandbox/notify", data=signed_notify(order, **changes))

    return pay_order


def logged_in_session(user) -> dict:
    """The session values of `user` logged in, with a live session row (a session
    without one is logged out): what the login form leaves once credentials (and any
    second factor) are accepted. For a cookie made by hand in browser tests."""
    from faka.core.db import begin_write

    begin_write()  # a live server may be writing too
    session_id = sessions.start_session(user.id)
    _db.session.commit()
    return {"_user_id": str(user.id), "_fresh": True, "auth_session": session_id}


def login(client, user) -> None:
    """Log `user` in on this test client, as the login form does once credentials (and
    any second factor) are accepted."""
    values = logged_in_session(user)
    with client.session_transaction() as session:
        session.update(values)


def with_totp(user) -> str:
    """Turn on two-factor authentication for a back-office user; returns its TOTP secret."""
    import pyotp

    secret = pyotp.random_base32()
    user.totp_secret = vault().encrypt(secret)
    _db.session.commit()
    return secret


@pytest.fixture
def operator(app):
    """An operator (ops@example.com / operator-pass-1) with two-factor authentication on."""
    user = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(user)
    return user


def expire_and_reconcile(order: Order) -> None:
    """Let the order's payment deadline pass and run the reconciler, which expires it."""
    from datetime import timedelta

    from faka.core.types import utcnow
    from faka.ops.reconcile import reconcile

    order.expires_at = utcnow() - timedelta(minutes=1)
    _db.session.commit()
    reconcile()


def csrf_from(html: str) -> str:
    match = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', html) or re.search(
        r'name="csrf_token" value="([^"]+)"', html
    )
    assert match, "page has no CSRF token"
    return match.group(1)


def reload(obj):
    """The object as the database holds it now (ends the test's snapshot first)."""
    _db.session.commit()
    return _db.session.get(type(obj), obj.id)


def count(model, *where) -> int:
    """Rows of `model` matching `where`, as the database holds them now."""
    from sqlalchemy import func, select

    _db.session.commit()
    return _db.session.scalar(select(func.count()).select_from(model).where(*where))


def assert_nothing_paid(order: Order) -> None:
    """A refused payment left no trace: the order still waits, no payment is recorded,
    no key was sold."""
    from faka.inventory.models import CardKey
    from faka.payments.models import PaymentNotice

    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 0


def assert_pay_page_unavailable(client, order: Order) -> None:
    """The buyer gets the page that offers another way to pay, and nothing changed."""
    page = client.get(f"/pay/{order.token}?lang=en")
    assert page.status_code == 502 and "Nothing was charged" in page.get_data(as_text=True)
    assert reload(order).status == Order.PENDING


def provider_link(client, order: Order, **headers) -> str:
    """The link on faka's pay page that takes the buyer on to the provider. The page
    itself answers 200: it never redirects to another site (faka/payments/cashier.py)."""
    from html import unescape

    page = client.get(f"/pay/{order.token}", headers=headers)
    assert page.status_code == 200, page.status_code
    match = re.search(r'<a class="button primary" href="([^"]+)"', page.get_data(as_text=True))
    assert match, "the pay page links to no provider"
    return unescape(match.group(1))


def key_texts(order: Order) -> list[str]:
    return [vault().decrypt(k.ciphertext) for k in reload(order).keys]


THREAD_TIMEOUT = 60


def run_together(app, count, work):
    """Run work(i) in `count` threads started at once, each inside its own app and
    request context. Returns (results by index, unexpected exceptions)."""
    barrier = threading.Barrier(count)
    results = [None] * count
    errors = []
    lock = threading.Lock()

    def target(i):
        try:
            with app.app_context(), app.test_request_context():
                barrier.wait(timeout=THREAD_TIMEOUT)
                try:
                    results[i] = work(i)
                finally:
                    _db.session.remove()
        except BaseException as exc:  # noqa: BLE001 - every failure must reach the test
            with lock:
                errors.append((i, repr(exc)))

    threads = [threading.Thread(target=target, args=(i,), name=f"buyer-{i}") for i in range(count)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(THREAD_TIMEOUT)
    assert not any(t.is_alive() for t in threads), "threads still running: deadlock or lock wait"
    return results, errors


# -- real services ----------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def smtp():
    """A real SMTP server (aiosmtpd) in this process; `.messages` holds what arrived."""
    from email import message_from_bytes, policy

    from aiosmtpd.controller import Controller

    class Sink:
        def __init__(self):
            self.messages = []

        async def handle_DATA(self, server, session, envelope):
            self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
            return "250 OK"

    sink = Sink()
    controller = Controller(sink, hostname="127.0.0.1", port=free_port())
    controller.start()
    sink.port = controller.port
    sink.controller = controller
    yield sink
    controller.stop()


@pytest.fixture
def redis_conn():
    from redis import Redis

    conn = Redis.from_url(TEST_REDIS_URL)
    conn.flushdb()
    yield conn
    conn.flushdb()


@pytest.fixture
def rq_app(make_app, redis_conn):
    app = make_app(JOBS_MODE="rq", REDIS_URL=TEST_REDIS_URL)
    with app.app_context():
        yield app


def run_worker(app) -> None:
    """Run a real RQ worker in burst mode until the queue is empty."""
    from rq import SimpleWorker

    runner = app.extensions["faka_jobs"]
    with app.app_context():
        SimpleWorker([runner.queue()], connection=runner.redis).work(burst=True, with_scheduler=False)


# -- a real browser -------------------------------------------------------------------

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


CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
    "--disable-sync",
]


def pytest_collection_modifyitems(items):
    # `pytest -m browser` runs every test that drives Chromium.
    for item in items:
        if "chromium" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.browser)


@pytest.fixture(scope="session")
def chromium():
    """The system's Chromium, started once for the whole run (each test opens its own
    context: cookies, storage and screen of its own)."""
    from playwright import sync_api as playwright_api

    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def phone(chromium):
    context = chromium.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.console_errors = errors
    yield page
    context.close()


def no_horizontal_scroll(page) -> bool:
    return page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")


@pytest.fixture
def frozen_clock(monkeypatch):
    """The services' clock, stopped and moved by hand: `frozen_clock.advance(minutes=5)`."""

    class Clock:
        now = utcnow()

        def advance(self, **delta):
            self.now += timedelta(**delta)

    fake = Clock()
    monkeypatch.setattr(clock, "now", lambda: fake.now)
    return fake
