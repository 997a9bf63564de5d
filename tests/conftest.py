"""Fixtures: a real database (SQLite file or PostgreSQL, chosen by FAKA_TEST_DATABASE),
real Redis + RQ, a real SMTP server, and small factories for the shop's objects."""

import copy
import gc
import os
import re
import secrets
import shutil
import socket
import socketserver
import threading
from datetime import timedelta
from functools import cache
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from flask import Flask, current_app, has_app_context
from flask.testing import FlaskClient
from jinja2.bccache import Bucket, BytecodeCache
from sqlalchemy import Engine, event, text
from werkzeug.serving import BaseWSGIServer, make_server

from faka import create_app
from faka.accounts import sessions, users
from faka.accounts.models import Merchant
from faka.catalog.models import DELIVERY_AUTO, Category, Product
from faka.catalog.variants import product_with_one_variant
from faka.core import clock
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db as _db
from faka.extensions import limiter
from faka.inventory.keys import import_keys
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import ensure_sandbox, get_gateway
from faka.payments.gateways.base import OrderRef

# The fake payment providers' fixtures: fake_providers, providers, live_shop (tests/fakes/).
pytest_plugins = ["fakes.providers"]

# The HTTP servers tests start in a thread (faka's live server, the fake providers, webhook
# receivers) look for shutdown() every poll_interval: 0.5 s by default, paid at the end of
# each test that stops one. They look every 20 ms instead.
socketserver.BaseServer.serve_forever.__defaults__ = (0.02,)
BaseWSGIServer.serve_forever.__defaults__ = (0.02,)

TEST_DATABASE = os.environ.get("FAKA_TEST_DATABASE", "sqlite")
# FAKA_TEST_REDIS_URL: the Redis the `redis` tests use (a real RQ worker, limits counted in
# Redis), required to be running; set but empty: no Redis, those tests are deselected. Unset:
# database 15 of the local Redis when it answers, else no Redis.
REDIS_REQUIRED = bool(os.environ.get("FAKA_TEST_REDIS_URL"))
TEST_REDIS_URL = os.environ.get("FAKA_TEST_REDIS_URL", "redis://127.0.0.1:6379/15") or None
if "FAKA_TEST_REDIS_URL" not in os.environ:
    from service_check import redis_problem

    if redis_problem(TEST_REDIS_URL):
        TEST_REDIS_URL = None
ENCRYPTION_KEY = Fernet.generate_key().decode()


def database_uri(tmp: Path) -> str:
    if TEST_DATABASE == "sqlite":
        return f"sqlite:///{tmp / 'test.db'}"
    return TEST_DATABASE


if TEST_DATABASE != "sqlite":
    import psycopg

    @event.listens_for(Engine, "connect")
    def _commit_without_waiting_for_the_disk(dbapi_connection, _record) -> None:
        """The PostgreSQL connections of this process commit without waiting for the WAL to
        reach the disk (~6 ms a commit here, tens of thousands of commits a run). What other
        connections see, locks and isolation are unchanged: only a crash of the server
        itself could lose the last commits, and no test crashes it."""
        if isinstance(dbapi_connection, psycopg.Connection):
            with dbapi_connection.cursor() as cursor:
                cursor.execute("SET synchronous_commit TO off")
            dbapi_connection.commit()


@pytest.fixture(scope="session")
def instance_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("instance")


@pytest.fixture(scope="session")
def base_config(instance_dir) -> dict:
    os.environ["FAKA_INSTANCE_PATH"] = str(instance_dir)
    # Back-office passwords are argon2id at its default cost (~0.2 s a hash, on purpose);
    # hundreds of test accounts use the lightest argon2id parameters instead, and so do the
    # query passwords of thousands of test checkouts (~19 ms a hash at the query profile).
    # The hashes are still argon2id, and verifying reads the parameters from each hash.
    from argon2 import PasswordHasher

    from faka.core import passwords

    passwords._login_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    passwords._query_hasher = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
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


class SharedTemplateCode(BytecodeCache):
    """Compiled templates, shared by the session's apps (keyed by each template's name and
    source): an app otherwise compiles every template it renders once more."""

    def __init__(self):
        self.code: dict[str, bytes] = {}

    def load_bytecode(self, bucket: Bucket) -> None:
        if bucket.key in self.code:
            bucket.bytecode_from_string(self.code[bucket.key])

    def dump_bytecode(self, bucket: Bucket) -> None:
        self.code[bucket.key] = bucket.bytecode_to_string()


TEMPLATE_CODE = SharedTemplateCode()


def build_app(config: dict) -> Flask:
    app = create_app(config)
    app.test_client_class = FreshContextClient
    app.jinja_env.bytecode_cache = TEMPLATE_CODE
    return app


def _faka_environ() -> dict:
    # create_app reads FAKA_INSTANCE_PATH and FAKA_PROXY_COUNT.
    return {name: value for name, value in os.environ.items() if name.startswith("FAKA_")}


# With one of these None, create_app reads it from the instance folder, which some tests
# change: an app given one of them is built for its test alone.
READ_AT_BUILD = {"ENCRYPTION_KEYS", "SECRET_KEY", "SQLALCHEMY_DATABASE_URI"}

# Settings faka reads from current_app.config as it serves (a route's limit, the SMTP
# server of the next email, the page cache's lifetime), never in create_app: a kept app
# takes them from the test that asks for it, and has them put back after it.
READ_PER_REQUEST = {
    "BACKUP_DIR",
    "BASE_URL",
    "CAPTCHA_MAX_NUMBER",
    "MAIL_DEFAULT_SENDER",
    "MAIL_MAX_ATTEMPTS",
    "MAIL_PASSWORD",
    "MAIL_PORT",
    "MAIL_SERVER",
    "MAIL_TIMEOUT",
    "MAIL_USERNAME",
    "MAIL_USE_SSL",
    "MAIL_USE_TLS",
    "MERCHANT_STORAGE_QUOTA",
    "ORDER_EVIDENCE_QUOTA",
    "PAGE_CACHE_SECONDS",
    "PERMANENT_SESSION_LIFETIME",
    "RATELIMIT_CAPTCHA",
    "RATELIMIT_CHECKOUT",
    "RATELIMIT_COMPLAINT",
    "RATELIMIT_COMPLAINT_REPLY",
    "RATELIMIT_LOGIN",
    "RATELIMIT_LOOKUP",
    "RATELIMIT_NOTIFY",
    "RATELIMIT_QUOTE",
    "RATELIMIT_REPORT",
    "RATELIMIT_RESTOCK",
    "RATELIMIT_TOKEN_MISSES",
    "RATELIMIT_UPLOAD",
    "SESSION_MAX_HOURS_MERCHANT",
    "SESSION_MAX_HOURS_OPERATOR",
    "STATUS_CACHE_SECONDS",
    "STATUS_TRUST_SECONDS",
    "WEBHOOK_ALLOW_PRIVATE",
}


class KeptApp:
    """An app kept for the session and handed to each test that asks for its config.
    Between tests its config is put back as it was built and its page cache emptied."""

    def __init__(self, config: dict):
        self.app = build_app(config)
        self.config = copy.deepcopy(dict(self.app.config))

    def reset(self) -> None:
        config = self.app.config
        for name in [name for name in config if name not in self.config]:
            del config[name]
        for name, value in self.config.items():
            if name not in config or config[name] != value:
                config[name] = copy.deepcopy(value)
        self.app.extensions["faka_pagecache"].clear()


class Apps:
    """The session's apps, kept by the config create_app reads: `shared`, on the base
    config, which most tests use, and the others tests ask for. Building an app costs more
    than most tests. Within a test, each different config asked for is a different app,
    as it was when every call built one."""

    def __init__(self, base_config: dict):
        self.base_config = base_config
        self.environ = _faka_environ()
        self.kept: dict[str, list[KeptApp]] = {}
        self.shared = self._kept({}, {})
        self.limits = limiter.storage

    def _kept(self, built: dict, taken: dict) -> KeptApp:
        """A kept app built with `built` that this test has not taken yet (one is built
        when all are taken)."""
        same = self.kept.setdefault(repr(sorted(built.items())), [])
        for kept in same:
            if kept not in taken:
                return kept
        same.append(KeptApp({**self.base_config, **built}))
        return same[-1]

    def get(self, overrides: dict, fresh: bool, taken: dict) -> tuple[Flask, KeptApp | None]:
        """The app for these overrides and its KeptApp (None: built for this test alone, as
        it must be when the test changed the environment create_app reads). `taken` holds
        the kept apps this test has, with the settings each was given."""
        if fresh or READ_AT_BUILD & overrides.keys() or _faka_environ() != self.environ:
            return build_app({**self.base_config, **overrides}), None
        per_request = {name: value for name, value in overrides.items() if name in READ_PER_REQUEST}
        built = {name: value for name, value in overrides.items() if name not in READ_PER_REQUEST}
        key = repr(sorted(built.items()))
        for kept, given in taken.items():
            if given == per_request and kept in self.kept.get(key, ()):
                return kept.app, kept  # the same config again in this test: the same app
        kept = self._kept(built, taken)
        kept.app.config.update(per_request)
        taken[kept] = per_request
        if kept is not self.shared:
            limiter.init_app(kept.app)  # as building it would: the limiter counts in its storage
        return kept.app, kept

    def rebind_limiter(self) -> None:
        """The limiter is one object for every app and holds the storage of the app built
        (or handed out) last: bind it back to the shared app's memory storage, emptied."""
        if limiter.storage is self.limits:
            limiter.reset()
        else:
            limiter.init_app(self.shared.app)
            self.limits = limiter.storage


@pytest.fixture(scope="session")
def apps(base_config) -> Apps:
    apps = Apps(base_config)
    with apps.shared.app.app_context():
        _db.drop_all()
        if _db.engine.dialect.name == "postgresql":
            _db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
            _db.session.commit()
        _db.create_all()
    # What exists now (the modules, the collected tests, the shared app) lives as long as
    # the session: the garbage collector need not go through it again at each full pass.
    gc.collect()
    gc.freeze()
    return apps


@pytest.fixture
def make_app(apps):
    """The app of a test, on the test database, emptied first. With no arguments, the
    session's shared app; with extra config as keyword args, a session's app for that
    config; with fresh=True (e.g. to add a route), one built for this test alone."""
    used: list[tuple[Flask, KeptApp | None]] = []
    taken: dict[KeptApp, dict] = {}
    apps.rebind_limiter()

    def build(fresh: bool = False, **overrides):
        app, kept = apps.get(overrides, fresh, taken)
        if not used:
            with app.app_context():
                _empty_database()
                ensure_sandbox()
        if all(app is not other for other, _kept in used):
            used.append((app, kept))
        return app

    yield build
    for app, kept in used:
        with app.app_context():
            app.extensions["faka_jobs"].wait_idle()
            _db.session.remove()
            if kept is not apps.shared:
                _db.engine.dispose()  # its connections (and its watcher's) go until it is used again
        if kept is not None:
            kept.reset()
    apps.rebind_limiter()


@cache
def _emptying_statements():
    """The query naming the tables that hold rows (one EXISTS each, in one statement), and
    a DELETE for each table: written once, run before every test."""
    tables = _db.metadata.sorted_tables
    probe = " UNION ALL ".join(f'SELECT {i} WHERE EXISTS (SELECT 1 FROM "{t.name}")' for i, t in enumerate(tables))
    return text(probe), [text(f'DELETE FROM "{t.name}"') for t in tables]


def _empty_database():
    """Empty the tables that hold rows, children first. A DELETE each: on these small
    tables PostgreSQL's TRUNCATE (of a table and, by CASCADE, every table referring to
    it) costs about 40 ms a test, the DELETEs well under one."""
    probe, deletes = _emptying_statements()
    for i in sorted(_db.session.scalars(probe), reverse=True):
        _db.session.execute(deletes[i])
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
        product = product_with_one_variant(
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
            import_keys(
                product.variants[0], "\n".join(f"KEY-{product.id}-{i:05d}-{secrets.token_hex(3)}" for i in range(keys))
            )
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


def statements(client, path: str) -> int:
    """SQL statements the database ran to answer GET `path` (which must be a 200)."""
    executed = 0

    def counter(*_args):
        nonlocal executed
        executed += 1

    event.listen(_db.engine, "before_cursor_execute", counter)
    try:
        assert client.get(path).status_code == 200
    finally:
        event.remove(_db.engine, "before_cursor_execute", counter)
    return executed


def reload(obj):
    """The object as the database holds it now (ends the test's snapshot first)."""
    _db.session.commit()
    return _db.session.get(type(obj), obj.id)


def count(model, *where) -> int:
    """Rows of `model` matching `where`, as the database holds them now."""
    from sqlalchemy import func, select

    _db.session.commit()
    return _db.session.scalar(select(func.count()).select_from(model).where(*where))


def every_stored_file(area: str) -> set[str]:
    """Every file the app's storage holds in the area, as it really is: the instance
    folder's entries, hidden temporary files too (the storage's own listing leaves them
    out), or every row of the database storage."""
    from faka.core.storage import LocalStorage, StoredFileRow, storage

    store = storage()
    if isinstance(store, LocalStorage):
        folder = store.root / area
        return {path.name for path in folder.iterdir()} if folder.is_dir() else set()
    from sqlalchemy import select

    _db.session.commit()
    return set(_db.session.scalars(select(StoredFileRow.name).where(StoredFileRow.area == area)))


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


# -- markers and the servers a run needs ---------------------------------------------------

REDIS_FIXTURES = {"redis_conn", "rq_app"}


def pytest_addoption(parser):
    parser.addini("slow_paths", type="linelist", help="tests marked slow (directories or files)")
    parser.addini("one_db_paths", type="linelist", help="tests marked one_db (directories or files)")


def pytest_sessionstart(session):
    """Before anything is collected: a server this run needs and cannot reach stops it
    here, with one line saying which and how to start it."""
    from service_check import problem

    if TEST_DATABASE != "sqlite":
        line = problem(TEST_DATABASE)
        if line:
            raise pytest.UsageError(line)
    if REDIS_REQUIRED:
        line = problem(TEST_REDIS_URL)
        if line:
            raise pytest.UsageError(line)


def _under(item, paths: list[str]) -> bool:
    where = Path(str(item.path)).relative_to(item.config.rootpath).as_posix()
    return any(where == p or where.startswith(p.rstrip("/") + "/") for p in paths)


def pytest_itemcollected(item):
    """Markers by where a test lives and what it uses (pytest.ini says which and why):
    `slow`, `one_db` (every `browser` test is one_db too), `browser` for the tests that
    drive Chromium, `redis` for the tests that use the Redis at FAKA_TEST_REDIS_URL."""
    fixtures = set(getattr(item, "fixturenames", ()))
    if "chromium" in fixtures:
        item.add_marker(pytest.mark.browser)
        item.add_marker(pytest.mark.one_db)
    if _under(item, item.config.getini("slow_paths")):
        item.add_marker(pytest.mark.slow)
    if _under(item, item.config.getini("one_db_paths")):
        item.add_marker(pytest.mark.one_db)
    if fixtures & REDIS_FIXTURES:
        item.add_marker(pytest.mark.redis)


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config, items):
    """Without a Redis the `redis` tests still selected are deselected, with a note at the end."""
    if TEST_REDIS_URL:
        return
    deselected = [item for item in items if item.get_closest_marker("redis")]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if not item.get_closest_marker("redis")]
        config.stash[_NO_REDIS] = len(deselected)


_NO_REDIS = pytest.StashKey[int]()


def pytest_terminal_summary(terminalreporter, config):
    left_out = config.stash.get(_NO_REDIS, 0)
    if left_out:
        terminalreporter.write_line(
            f"{left_out} tests that need Redis were deselected: set FAKA_TEST_REDIS_URL "
            "(e.g. redis://127.0.0.1:6379/15) to a running Redis to run them."
        )


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
