"""Measure faka on a big shop's data (`make bench-big`), next to a small shop in the same run.

    .venv/bin/python bench/big_measure.py [--quick] [--only postgresql|sqlite] [--out FILE] [--keep]

For each database, PostgreSQL (the big shop at full scale) and SQLite (smaller), two shops
are measured the same way, one after the other: the big shop, a year of a busy platform
filled by bench/bigshop.py (filled once and kept, see bench/README.md), and a small shop
(`init-db` + `seed-demo` on a throw-away instance). For each:

- buyer pages (home, product, search, order page, status poll, lookup POST) with wrk on
  loopback, each run between two runs of bench/bare.py: the ratio to bare (target >= 0.4);
- checkout POSTs, every request another buyer (bench/run.py's checkout.lua): orders/s
  (target >= 100);
- back-office pages, sequential requests of a signed-in merchant (the biggest) and
  operator (signed in through the real login form, the operator with a TOTP code): each
  page, each filter its filter form offers and far pages; p99 (target <= 150 ms), and for
  the CSV exports the first and the last byte;
- the SQL statements of each page, counted at the driver as bench/run.py does, the big shop
  against the small (they must be equal), and on the big shop each page's slowest
  statements, with their plans (EXPLAIN ANALYZE on PostgreSQL) for the pages that miss;
- the reconciler's and the settlement job's runs in-process (target < 5 s each), each in a
  transaction rolled back afterwards, so every run sees the same data.

Exits 0 even when targets are missed (the table says MISSED); non-zero only when the
benchmark itself could not run. JSON to bench/results/big-latest.json, the slow pages'
statements and plans to bench/results/big-findings.md.
"""

import argparse
import json
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime, timedelta
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from query_counts import sent  # noqa: E402
from run import (  # noqa: E402
    BENCH,
    CHECKOUT_TARGET,
    HTMX_STOP_POLLING,
    NO_LIMITS,
    PG_ADMIN_URL,
    RISK_OUT_OF_REACH,
    RQ_REDIS_URL,
    STRIP_ENV,
    Meter,
    Postgres,
    Service,
    Shop,
    base_env,
    buyer_session,
    checkout_script,
    count_queries,
    cpu_seconds_between,
    flask_cli,
    gunicorn,
    http_request,
    log,
    measure,
    page_entry,
    percentile,
    polling_path,
    postgres_available,
    wait_ready,
    wrk,
)

BIG_HOME = Path(os.environ.get("BENCH_BIG_HOME", "/var/tmp/faka-bench-big"))
BIG_PG_DATABASE = "faka_bigshop"
PG_SCALE = float(os.environ.get("BENCH_BIG_SCALE", "1"))
SQLITE_SCALE = float(os.environ.get("BENCH_BIG_SQLITE_SCALE", "0.05"))
FILL_SEED = 1
PROFILE = "bigshop.json"  # what bigshop.py writes into the instance: logins and samples

BUYER_TARGET = 0.4  # every buyer page's req/s at least this share of bare's
BACKOFFICE_P99_MS = 150
JOB_TARGET_S = 5
JOB_REPEAT_UNDER_S = 4 * JOB_TARGET_S  # a job run slower than this is not repeated
CHECKOUT_STOCK = 4000  # available keys of the checkout product before the checkout runs
QUERY_PASSWORD = "benchpass"  # what run.py's Shop.place_order sets
# Lookups are rate-limited per address; each wrk request comes from another one anyway.
SERVER_LIMITS = dict(NO_LIMITS, FAKA_RATELIMIT_LOOKUP="1000000 per minute")
JOBS_QUEUE = "bench-big"
SELECT_OPTIONS_ALL = 10  # a filter with more choices than this is measured with its first few
SELECT_OPTIONS_FEW = 3
EXPLAIN_PAGES = 16  # the slowest pages whose statements are explained (one per list)
EXPLAIN_STATEMENTS = 2  # per page

# Back-office pages: (label, path, is a list whose filters and far pages are measured too).
MERCHANT_PAGES = (
    ("merchant dashboard", "/merchant/", False),
    ("merchant orders", "/merchant/orders", True),
    ("merchant products", "/merchant/products", True),
    ("merchant complaints", "/merchant/complaints", True),
    ("merchant reviews", "/merchant/reviews", True),
    ("merchant money", "/merchant/money", True),
    ("merchant coupons", "/merchant/coupons", True),
)
OPERATOR_PAGES = (
    ("operator dashboard", "/operator/", False),
    ("reconciliation", "/operator/reconciliation", True),
    ("risk monitor", "/operator/risk", True),
    ("audit log", "/operator/audit", True),
    ("payments history", "/operator/payments", True),
    ("platform ledger", "/operator/ledger", True),
    ("withdrawals", "/operator/withdrawals", True),
    ("refunds", "/operator/refunds", True),
    ("merchants", "/operator/merchants", True),
    ("complaints queue", "/operator/complaints", True),
    ("operator reviews", "/operator/reviews", True),
    ("security log", "/operator/security", True),
    ("blacklist", "/operator/blacklist", True),
    ("outbox", "/operator/outbox", True),
    ("moderation", "/operator/moderation", False),
    ("operations", "/operator/operations", False),
    ("sub-stores", "/operator/growth/substores", True),
    ("promoters", "/operator/growth/promoters", True),
)


@dataclass(frozen=True)
class Timing:
    samples: int  # sequential requests per URL after the warm-up
    filter_samples: int  # for a filter or far page of a list
    csv_samples: int
    warmup: int  # requests before the timed ones
    budget_s: float  # at most this long per page (a filter half, an export twice; at least MIN_SAMPLES requests)
    wrk_s: int
    wrk_warmup_s: int
    job_runs: int


FULL = Timing(samples=60, filter_samples=20, csv_samples=8, warmup=3, budget_s=8, wrk_s=5, wrk_warmup_s=1, job_runs=3)
QUICK = Timing(samples=15, filter_samples=5, csv_samples=3, warmup=1, budget_s=4, wrk_s=2, wrk_warmup_s=1, job_runs=1)
MIN_SAMPLES = {"page": 3, "filter": 2, "csv": 2}


@dataclass(frozen=True)
class Login:
    email: str
    password: str
    totp_secret: str | None = None


@dataclass
class Target:
    """One shop on one database, and who signs in to it."""

    shop: str  # "small" | "big"
    database: str  # "postgresql" | "sqlite"
    instance: Path
    database_url: str | None  # None: SQLite in the instance
    merchant: Login
    operator: Login
    postgres: Postgres | None = None  # its backends count in the server's CPU
    fill: dict = field(default_factory=dict)  # how the big shop was filled


@dataclass
class Profile:
    """What the measurements use of a shop, read from it in-process."""

    merchant_id: int
    merchant_name: str
    product_slug: str  # the merchant's most ordered product
    search: str
    checkout_slug: str
    delivered: dict  # an order the bench placed and paid: order page, status poll, lookup
    pending: dict  # one it placed and left unpaid: the status poll's URL comes from its page
    order_number: str  # the merchant's latest order
    text_samples: dict[str, str]  # values for the back office's text filters, by field name
    rows: dict[str, int]


# -- the shops ----------------------------------------------------------------------------


def read_logins(instance: Path) -> tuple[Login, Login, dict]:
    """The merchant's and the operator's logins from the profile bigshop.py wrote."""
    data = json.loads((instance / PROFILE).read_text())

    def login(entry: dict) -> Login:
        return Login(entry["email"], entry["password"], entry.get("totp_secret") or entry.get("totp") or None)

    return login(data["merchant"]), login(data["operator"]), data


def filled(instance: Path, database_url: str | None) -> bool:
    """Whether the big shop is there: its profile written (bigshop.py writes it last) and
    its database there."""
    if not (instance / PROFILE).exists():
        return False
    try:
        if database_url:
            import psycopg

            with psycopg.connect(database_url, connect_timeout=5) as conn:
                return bool(conn.execute("SELECT count(*) FROM merchants").fetchone()[0])
        import sqlite3

        path = instance / "faka.db"
        if not path.exists():
            return False
        with sqlite3.connect(path) as conn:
            return bool(conn.execute("SELECT count(*) FROM merchants").fetchone()[0])
    except Exception:  # noqa: BLE001 - no database, no table: not filled
        return False


def big_target(database: str) -> Target:
    """The big shop: the one named by BENCH_BIG_* when given, else ours under BENCH_BIG_HOME,
    filled by bench/bigshop.py the first time (minutes on PostgreSQL), then reused."""
    if database == "postgresql":
        url = os.environ.get("BENCH_BIG_DATABASE_URL") or PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + BIG_PG_DATABASE
        instance = Path(os.environ.get("BENCH_BIG_INSTANCE") or BIG_HOME / "postgresql")
        scale = PG_SCALE
    else:
        url = None
        instance = Path(os.environ.get("BENCH_BIG_SQLITE_INSTANCE") or BIG_HOME / "sqlite")
        scale = SQLITE_SCALE
    fill = {"instance": str(instance), "reused": True}
    if not filled(instance, url):
        # Ours is emptied first (what an interrupted fill left); one named by BENCH_BIG_* never.
        given = bool(os.environ.get("BENCH_BIG_DATABASE_URL" if url else "BENCH_BIG_SQLITE_INSTANCE"))
        fill = run_fill(database, url, instance, scale, reset=not given)
    # A shop kept from an earlier run follows the code's schema, as a real one does on upgrade.
    env = base_env(instance)
    if url:
        env["DATABASE_URL"] = url
    flask_cli(env, "init-db")
    merchant, operator, data = read_logins(instance)
    fill["profile"] = {k: v for k, v in data.items() if k not in ("merchant", "operator")}
    target = Target("big", database, instance, url, merchant, operator, fill=fill)
    if url:
        target.postgres = Postgres()
        target.postgres.url = url
        target.postgres.start()  # with a URL given: only names the database
    return target


def run_fill(database: str, url: str | None, instance: Path, scale: float, reset: bool) -> dict:
    instance.mkdir(parents=True, exist_ok=True)
    if url:
        import psycopg

        name = url.rsplit("/", 1)[1].split("?")[0]
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            if not conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (name,)).fetchone():
                conn.execute(f'CREATE DATABASE "{name}"')
    argv = [
        sys.executable,
        str(BENCH / "bigshop.py"),
        "fill",
        "--database-url",
        url or f"sqlite:///{instance / 'faka.db'}",
        "--instance",
        str(instance),
        "--scale",
        str(scale),
        "--seed",
        str(FILL_SEED),
        *(["--reset"] if reset else []),
    ]
    log(f"[{database} big] filling: {' '.join(argv[1:])}")
    started = time.perf_counter()
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
    done = subprocess.run(argv, cwd=ROOT, env=env, stdout=sys.stderr, stderr=sys.stderr)
    if done.returncode != 0:
        raise RuntimeError(f"bench/bigshop.py fill exited {done.returncode}")
    return {"instance": str(instance), "reused": False, "scale": scale, "seconds": round(time.perf_counter() - started)}


def small_target(database: str, root: Path) -> Target:
    """A small shop as `make run` makes one: init-db + seed-demo, on a throw-away instance
    (PostgreSQL: a database created for the run, dropped at its end), with a TOTP secret
    for the demo operator (operators must use two-factor authentication)."""
    instance = root / f"{database}-small"
    instance.mkdir(parents=True)
    env = base_env(instance)
    postgres = None
    if database == "postgresql":
        postgres = Postgres()
        env["DATABASE_URL"] = postgres.start()
    flask_cli(env, "init-db")
    flask_cli(env, "seed-demo")
    import pyotp
    from sqlalchemy import select

    from faka.accounts.models import User
    from faka.core.crypto import vault
    from faka.extensions import db
    from faka.ops.seed import DEMO_MERCHANT, DEMO_OPERATOR

    operator = Login(*DEMO_OPERATOR, totp_secret=pyotp.random_base32())
    shop = Shop(instance, env.get("DATABASE_URL"))
    try:
        with shop.app.app_context():
            user = db.session.execute(select(User).where(User.email == operator.email)).scalar_one()
            user.totp_secret = vault().encrypt(operator.totp_secret)
            db.session.commit()
    finally:
        shop.close()
    return Target("small", database, instance, env.get("DATABASE_URL"), Login(*DEMO_MERCHANT), operator, postgres)


@contextmanager
def site_settings_for_bench(shop: Shop) -> Iterator[None]:
    """The risk thresholds out of reach and the sandbox gateway on (as bench/run.py runs),
    put back as they were afterwards: the big shop is kept for the next run."""
    from faka.extensions import db
    from faka.payments.gateways import configure_gateway, ensure_sandbox
    from faka.payments.models import GatewayConfig
    from faka.platform import settings

    with shop.app.app_context():
        before = settings.site_settings()
        saved = {key: before[key] for key in RISK_OUT_OF_REACH}
        row = db.session.get(GatewayConfig, "sandbox")
        sandbox_was = row is not None and row.enabled
        ensure_sandbox()
        db.session.commit()
    shop.set_risk_out_of_reach()
    try:
        yield
    finally:
        with shop.app.app_context():
            for key, value in saved.items():
                settings.set_setting(key, value, commit=False)
            db.session.commit()
            if not sandbox_was:
                configure_gateway("sandbox", {}, enabled=False)


def gather_profile(shop: Shop, merchant_email: str) -> Profile:
    """The merchant and what the pages are measured with: its most ordered product, a
    search word from its title, a checkout product with stock, two orders the bench places
    (one paid), and sample values for the text filters."""
    from sqlalchemy import func, select

    from faka.accounts.models import Merchant, User
    from faka.catalog.models import Product
    from faka.extensions import db
    from faka.inventory.models import CardKey
    from faka.ledger.models import LedgerEntry
    from faka.orders.models import Order
    from faka.platform.models import AuditEvent
    from faka.risk.models import RiskEvent, SecurityEvent

    with shop.app.app_context():
        merchant = db.session.execute(
            select(Merchant).join(User, Merchant.user_id == User.id).where(User.email == merchant_email)
        ).scalar_one()
        top = db.session.execute(
            select(Order.product_id)
            .where(Order.merchant_id == merchant.id)
            .group_by(Order.product_id)
            .order_by(func.count().desc(), Order.product_id)
            .limit(1)
        ).scalar()
        product = db.session.get(Product, top) if top else None
        if product is None:
            product = db.session.execute(
                select(Product).where(Product.merchant_id == merchant.id).order_by(Product.id).limit(1)
            ).scalar_one()
        audit_row = db.session.execute(
            select(AuditEvent.actor_id, AuditEvent.target, AuditEvent.action)
            .where(AuditEvent.actor_id.is_not(None), AuditEvent.target.is_not(None))
            .order_by(AuditEvent.id.desc())
            .limit(1)
        ).first()
        ip = db.session.scalar(
            select(RiskEvent.ip).where(RiskEvent.ip.is_not(None)).order_by(RiskEvent.id.desc()).limit(1)
        ) or db.session.scalar(
            select(SecurityEvent.ip).where(SecurityEvent.ip.is_not(None)).order_by(SecurityEvent.id.desc()).limit(1)
        )
        rows = {
            name: db.session.scalar(select(func.count()).select_from(model))
            for name, model in (
                ("merchants", Merchant),
                ("products", Product),
                ("card keys", CardKey),
                ("orders", Order),
                ("ledger entries", LedgerEntry),
                ("audit events", AuditEvent),
                ("risk events", RiskEvent),
            )
        }
        rows["orders of the merchant"] = db.session.scalar(
            select(func.count()).select_from(Order).where(Order.merchant_id == merchant.id)
        )
        identity = (merchant.id, merchant.public_id, merchant.name, product.slug, product.title)
        db.session.rollback()
    merchant_id, public_id, name, slug, title = identity
    checkout_slug = checkout_product(shop)
    delivered = shop.place_order(checkout_slug)
    shop.pay_in_process(delivered)
    if shop.order_status(delivered["id"]) != "delivered":
        raise RuntimeError("the bench's order was not delivered")
    pending = shop.place_order(checkout_slug)
    with shop.app.app_context():  # after the bench's orders: on a small shop they may be the merchant's only ones
        latest = db.session.execute(
            select(Order.number, Order.email)
            .where(Order.merchant_id == merchant_id, Order.email.is_not(None))
            .order_by(Order.id.desc())
            .limit(1)
        ).first()
        db.session.rollback()
    # The operator's complaint queue filters by the merchant's id, its reviews by the shop's public id.
    samples = {"q": name, "merchant": str(merchant_id), "shop": public_id, "number": latest[0] if latest else ""}
    samples.update(order=samples["number"], email=latest[1] if latest else "")
    if audit_row:
        samples.update(actor=str(audit_row[0]), target=audit_row[1], action=audit_row[2])
    if ip:
        samples["ip"] = ip
    return Profile(
        merchant_id=merchant_id,
        merchant_name=name,
        product_slug=slug,
        search=search_word(title),
        checkout_slug=checkout_slug,
        delivered=delivered,
        pending=pending,
        order_number=samples["number"] or delivered["number"],
        text_samples={k: v for k, v in samples.items() if v},
        rows=rows,
    )


def search_word(title: str) -> str:
    """A word of a product's title, as a buyer would search for it: its first word of
    Latin letters, else its first three characters."""
    found = re.search(r"[A-Za-z]{3,}", title)
    return found.group(0).lower() if found else title.strip()[:3]


def checkout_product(shop: Shop) -> str:
    """The product the checkout load buys (and the bench's own orders): made once ("Bench
    checkout", delivered from key stock) and topped up to CHECKOUT_STOCK available keys
    each run, so the shop's own products keep their stock. Its seller is the approved
    merchant with the most orders among those without webhooks or push channels: a sale
    would send those, and the bench sends nothing off the machine (the big shop's point at
    made-up hosts)."""
    from sqlalchemy import func, select

    from faka.accounts.models import Merchant
    from faka.catalog.models import Category, Product
    from faka.catalog.variants import product_with_one_variant
    from faka.extensions import db
    from faka.inventory.models import CardKey
    from faka.messaging.models import PushChannel, WebhookEndpoint
    from faka.orders.models import Order

    with shop.app.app_context():
        quiet = select(Merchant.id).where(
            Merchant.status == Merchant.APPROVED,
            ~select(WebhookEndpoint.id).where(WebhookEndpoint.merchant_id == Merchant.id).exists(),
            ~select(PushChannel.id).where(PushChannel.merchant_id == Merchant.id).exists(),
        )
        product = db.session.execute(
            select(Product).where(Product.merchant_id.in_(quiet), Product.title == "Bench checkout").limit(1)
        ).scalar_one_or_none()
        if product is None:
            merchant_id = db.session.scalar(
                select(Merchant.id)
                .where(Merchant.id.in_(quiet))
                .order_by(select(func.count()).where(Order.merchant_id == Merchant.id).scalar_subquery().desc())
                .limit(1)
            )
            category_id = db.session.scalar(select(Category.id).order_by(Category.id).limit(1))
            product = product_with_one_variant(
                slug="bench-" + secrets.token_hex(6),
                merchant_id=merchant_id,
                category_id=category_id,
                title="Bench checkout",
                description_md="Bench checkout product (bench/big_measure.py).",
                price=1000,
                min_per_order=1,
                max_per_order=5,
                delivery_type="auto",
                position=0,
            )
            db.session.add(product)
            db.session.commit()
        product_id, slug = product.id, product.slug
        stock = db.session.scalar(
            select(func.count())
            .select_from(CardKey)
            .where(CardKey.product_id == product_id, CardKey.status == CardKey.AVAILABLE)
        )
        db.session.rollback()
    if stock < CHECKOUT_STOCK:
        shop.add_keys(product_id, CHECKOUT_STOCK - stock)
    return slug


# -- buyer pages ----------------------------------------------------------------------------


def lookup_script(path: Path, cookie: str, csrf_token: str, number: str, secret: str) -> Path:
    """POST /lookup by order number and query password, each request from another address
    (X-Forwarded-For; the server runs with FAKA_PROXY_COUNT=1), as different buyers would.
    A found order answers 200; wrk counts the rest (400 not found) as non-2xx."""
    body = urlencode({"csrf_token": csrf_token, "query": number, "query_password": secret})
    path.write_text(
        f"""
local body, cookie = "{body}", "{cookie}"
local threads, counter = 0, 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
function request()
  counter = counter + 1
  local n = tid * 1000000 + counter
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  return wrk.format("POST", "/lookup", {{["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie, ["X-Forwarded-For"] = ip}}, body)
end
"""
    )
    return path


def buyer_pages(target: Target, profile: Profile, port: int, bare_port: int, meter, bare_meter, timing, workdir):
    """Each buyer page between two bare runs (bench/run.py's way), then the checkout load."""
    delivered, pending = profile.delivered, profile.pending
    poll = polling_path(port, pending["token"])
    pages = {
        "home": ("/", {}),
        "product": (f"/p/{profile.product_slug}", {}),
        "search": ("/?q=" + quote(profile.search), {}),
        "order page": (f"/order/{delivered['token']}", {}),
    }
    cookies, csrf_token = buyer_session(port, f"/p/{profile.checkout_slug}")
    polling = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "HX-Request": "true"}
    pages["status poll"] = (poll.replace(pending["token"], delivered["token"]), {"headers": polling})
    for name, (path, extra) in pages.items():
        code, body = http_request(port, "GET", path, headers=extra.get("headers"))
        expected = HTMX_STOP_POLLING if name == "status poll" else 200
        if code != expected or (name == "status poll" and "card-key" not in body):
            raise RuntimeError(f"GET {path} answered {code} (expected {expected}):\n{body[:300]}")
    lookup_cookies, lookup_token = buyer_session(port, "/lookup")
    lookup = lookup_script(
        workdir / "lookup.lua",
        "; ".join(f"{k}={v}" for k, v in lookup_cookies.items()),
        lookup_token,
        delivered["number"],
        QUERY_PASSWORD,
    )
    pages["lookup"] = ("/lookup", {"script": lookup})
    buy_path = f"/p/{profile.checkout_slug}/buy"
    buy = checkout_script(workdir / "checkout.lua", buy_path, f"session={cookies['session']}", csrf_token)

    log(f"[{target.database} {target.shop}] buyer pages, {timing.wrk_s} s each between bare runs ...")
    wrk(bare_port, "/bare", timing.wrk_warmup_s)
    for _name, (path, extra) in pages.items():
        wrk(port, path, timing.wrk_warmup_s, **extra)
    runs = [measure("bare", "bare", bare_port, "/bare", timing.wrk_s, bare_meter)]
    entries = {}
    for name, (path, extra) in [*pages.items(), ("checkout", (buy_path, {"script": buy, "script_args": ["1000000"]}))]:
        if name == "checkout":
            wrk(port, buy_path, timing.wrk_warmup_s, script=buy, script_args=["0"])
        run = measure(name, name, port, path, timing.wrk_s, meter, **extra)
        runs.append(run)
        runs.append(measure("bare", "bare", bare_port, "/bare", timing.wrk_s, bare_meter))
        entry = page_entry(run, [runs[-3], runs[-1]], None if name == "checkout" else BUYER_TARGET)
        errors = (run["script"].get("bad") if run["script"] else run["non_2xx_3xx"]) + sum(
            (run["socket_errors"] or {}).values()
        )
        entry["errors"] = errors
        if name == "checkout":
            entry.update(target=CHECKOUT_TARGET, met=run["rps"] >= CHECKOUT_TARGET and not errors)
        elif errors:
            entry["met"] = False
        entries[name] = entry
    return entries, {name: path for name, (path, _extra) in pages.items()}


# -- the back office ------------------------------------------------------------------------


class Browser:
    """A signed-in back-office browser: sequential requests over one connection."""

    def __init__(self, base: str):
        import requests

        self.base = base
        self.http = requests.Session()

    def get(self, path: str, **kwargs):
        return self.http.get(self.base + path, allow_redirects=False, timeout=120, **kwargs)

    def csrf(self, path: str) -> str:
        response = self.get(path)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', response.text)
        if token is None:
            raise RuntimeError(f"GET {path}: HTTP {response.status_code}, no CSRF token")
        return token.group(1)

    def post(self, path: str, data: dict):
        return self.http.post(self.base + path, data=data, allow_redirects=False, timeout=60)

    def sign_in(self, login: Login, home: str) -> None:
        """Through the login form (in English, for the pager's "Page 1 of N"), and the TOTP
        step when the account has one. A code is good once: one already used (by an earlier
        run within its 30 s) waits for the next."""
        token = self.csrf("/login?lang=en")
        answer = self.post("/login", {"csrf_token": token, "email": login.email, "password": login.password})
        if answer.status_code != 303:
            raise RuntimeError(f"login of {login.email}: HTTP {answer.status_code}")
        if answer.headers.get("Location", "").endswith("/login/2fa"):
            if not login.totp_secret:
                raise RuntimeError(f"{login.email} needs a TOTP code and the profile has no secret")
            import pyotp

            token = self.csrf("/login/2fa")
            for _attempt in range(2):
                answer = self.post("/login/2fa", {"csrf_token": token, "code": pyotp.TOTP(login.totp_secret).now()})
                if answer.status_code == 303 or "already used" not in answer.text:
                    break
                time.sleep(30.5 - time.time() % 30)
            if answer.status_code != 303:
                raise RuntimeError(f"two-factor step of {login.email}: HTTP {answer.status_code}")
        landing = self.get(home)
        if landing.status_code != 200:
            raise RuntimeError(f"{login.email} signed in, but {home} answered {landing.status_code}")

    def cookies(self) -> dict[str, str]:
        return self.http.cookies.get_dict()


class _GetForms(HTMLParser):
    """The fields of a page's GET forms (its filters): selects with their options, inputs
    with their types."""

    def __init__(self):
        super().__init__()
        self.selects: dict[str, list[tuple[str, bool]]] = {}  # name -> [(value, selected)]
        self.inputs: dict[str, str] = {}  # name -> type
        self._in_form = False
        self._select: str | None = None

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self._in_form = (a.get("method") or "get").lower() == "get"
        elif not self._in_form:
            return
        elif tag == "select" and a.get("name"):
            self._select = a["name"]
            self.selects.setdefault(self._select, [])
        elif tag == "option" and self._select:
            self.selects[self._select].append((a.get("value") or "", "selected" in a))
        elif tag == "input" and a.get("name") and a.get("type", "text") not in ("hidden", "submit"):
            self.inputs[a["name"]] = a.get("type", "text")

    def handle_endtag(self, tag):
        if tag == "form":
            self._in_form = False
        elif tag == "select":
            self._select = None


def with_args(path: str, **args) -> str:
    return path + ("&" if "?" in path else "?") + urlencode(args)


def list_variants(label: str, path: str, page: str, samples: dict[str, str]) -> tuple[dict[str, str], list[str]]:
    """The URLs of a list page's filters and far pages, found in its HTML: one per choice of
    each select (a long one: its first few), one per text field we have a value for, the
    last 30 days for date fields, checkboxes ticked; page 2, the middle and the last page.
    Also the fields no value was found for."""
    forms = _GetForms()
    forms.feed(page)
    urls: dict[str, str] = {}
    skipped = []
    for name, options in forms.selects.items():
        choices = [value for value, selected in options if value and not selected]
        many = len(choices) > SELECT_OPTIONS_ALL
        for i, value in enumerate(choices[:SELECT_OPTIONS_FEW] if many else choices):
            # A choice named the same on every shop (a status, a kind) by its value; the
            # others (products, merchants) by their place, so the shops' labels match.
            named = not many and re.fullmatch(r"[a-z][a-z_]*", value)
            urls[f"{label} {name}=" + (value if named else f"#{i + 1}")] = with_args(path, **{name: value})
    today = datetime.now(UTC).date()
    for name, kind in forms.inputs.items():
        if kind == "date":
            value = (today - timedelta(days=30) if name in ("since", "from") else today).isoformat()
            urls[f"{label} {name}"] = with_args(path, **{name: value})
        elif kind == "checkbox":
            urls[f"{label} {name}"] = with_args(path, **{name: "1"})
        elif samples.get(name):
            urls[f"{label} {name}"] = with_args(path, **{name: samples[name]})
        else:
            skipped.append(f"{label} {name}")
    pager = re.search(r"Page (\d+) of (\d+)", page)
    if pager:
        pages = int(pager.group(2))
        for name, number in (("page 2", 2), ("middle page", (pages + 1) // 2), ("last page", pages)):
            if number >= 2:
                urls[f"{label} {name}"] = with_args(path, page=number)
    return urls, skipped


def time_url(
    browser: Browser, meter: Meter, path: str, samples: int, warmup: int, budget_s: float, at_least: int
) -> dict:
    """Sequential GETs after a warm-up: latency to the last byte, and to the first (the
    answer's headers), nearest-rank percentiles, and the server's CPU time per request
    (steadier than latency on a shared machine); stops early at the time budget (a slow
    page's warm-up too, after its first request)."""
    started = time.perf_counter()
    for _ in range(warmup):
        browser.get(path)
        if time.perf_counter() - started > budget_s / 4:
            break
    before = meter.snapshot()
    totals, firsts, statuses = [], [], set()
    streamed, size = False, 0
    started = time.perf_counter()
    while len(totals) < samples and (len(totals) < at_least or time.perf_counter() - started < budget_s):
        t0 = time.perf_counter()
        response = browser.get(path, stream=True)
        firsts.append((time.perf_counter() - t0) * 1000)
        size = len(response.content)
        totals.append((time.perf_counter() - t0) * 1000)
        statuses.add(response.status_code)
        streamed = "Content-Length" not in response.headers
    cpu_ms = cpu_seconds_between(before, meter.snapshot()) * 1000 / len(totals)
    return {
        "path": path,
        "n": len(totals),
        "status": sorted(statuses),
        "bytes": size,
        "p50_ms": round(statistics.median(totals), 1),
        "p99_ms": round(percentile(totals, 99), 1),
        "max_ms": round(max(totals), 1),
        "first_byte_p99_ms": round(percentile(firsts, 99), 1),
        "server_cpu_ms": round(cpu_ms, 1),
        "streamed": streamed,
    }


def backoffice(target: Target, profile: Profile, port: int, meter: Meter, timing: Timing) -> tuple[dict, dict, dict]:
    """Each back-office page (and each filter and far page of the lists) timed with a
    signed-in browser; also the cookies of both logins, for the in-process pass."""
    base = f"http://127.0.0.1:{port}"
    results: dict[str, dict] = {}
    skipped: list[str] = []
    cookies = {}
    csv_args = {"since": (datetime.now(UTC).date() - timedelta(days=30)).isoformat()}
    extra = {
        "merchant": [
            ("merchant order page", f"/merchant/orders/{profile.order_number}", "page"),
            ("merchant keys", f"/merchant/products/{profile.product_slug}/keys", "page"),
            ("merchant orders.csv", "/merchant/orders.csv", "csv"),
            ("merchant orders.csv 30 days", with_args("/merchant/orders.csv", **csv_args), "csv"),
        ],
        "operator": [
            ("operator merchant page", f"/operator/merchants/{profile.merchant_id}", "page"),
            ("audit.csv", "/operator/audit.csv", "csv"),
            ("audit.csv 30 days", with_args("/operator/audit.csv", **csv_args), "csv"),
        ],
    }
    for role, login, pages, home in (
        ("merchant", target.merchant, MERCHANT_PAGES, "/merchant/"),
        ("operator", target.operator, OPERATOR_PAGES, "/operator/"),
    ):
        browser = Browser(base)
        browser.sign_in(login, home)
        cookies[role] = browser.cookies()
        log(f"[{target.database} {target.shop}] {role}'s back office ...")
        urls: list[tuple[str, str, str, str]] = []  # (label, path, kind, group)
        for label, path, is_list in pages:
            urls.append((label, path, "page", label))
            if is_list:
                found, missing = list_variants(label, path, browser.get(path).text, profile.text_samples)
                urls += [(name, url, "filter", label) for name, url in found.items()]
                skipped += missing
        urls += [(label, path, kind, label.split(" 30 days")[0]) for label, path, kind in extra[role]]
        for label, path, kind, group in urls:
            samples = {"page": timing.samples, "filter": timing.filter_samples, "csv": timing.csv_samples}[kind]
            budget = timing.budget_s * {"page": 1, "filter": 0.5, "csv": 2}[kind]
            row = time_url(browser, meter, path, samples, timing.warmup, budget, MIN_SAMPLES[kind])
            row.update(kind=kind, group=group, role=role)
            key = "first_byte_p99_ms" if kind == "csv" else "p99_ms"
            row["met"] = row[key] <= BACKOFFICE_P99_MS and row["status"] == [200]
            if kind == "csv":
                row["met"] = row["met"] and row["streamed"]
            results[label] = row
            log(
                f"      {label:<44} p99 {row['p99_ms']:7.1f} ms, CPU {row['server_cpu_ms']:6.1f} ms"
                f"  (n {row['n']}, HTTP {row['status']})"
                + (f"  first byte {row['first_byte_p99_ms']} ms" if kind == "csv" else "")
            )
    return results, cookies, {"skipped_filters": skipped}


# -- in-process: statements per page, the slowest of them, the jobs ---------------------------


def statement_profile(shop: Shop, paths: dict[str, str], cookies: dict[str, dict[str, str]]) -> dict[str, dict]:
    """Each page once more with the caches off (just warmed by the count), its statements
    timed at the cursor: the render time in-process and the slowest statements with their
    parameters (kept to explain them)."""
    from sqlalchemy import event

    from faka.extensions import db

    app = shop.app
    timed: list[tuple[float, str, object]] = []

    def before(conn, _cursor, _statement, _parameters, _context, _executemany):
        conn.info.setdefault("bench_started", []).append(time.perf_counter())

    def after(conn, _cursor, statement, parameters, _context, _executemany):
        started = conn.info["bench_started"].pop()
        timed.append(((time.perf_counter() - started) * 1000, statement, parameters))

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", before)
    event.listen(engine, "after_cursor_execute", after)
    out = {}
    try:
        for label, path in paths.items():
            client = app.test_client()
            for name, value in cookies.get(role_of(path), {}).items():
                client.set_cookie(name, value)
            timed.clear()
            started = time.perf_counter()
            client.get(path).get_data()
            ms = (time.perf_counter() - started) * 1000
            slowest = sorted(timed, key=lambda t: t[0], reverse=True)[:EXPLAIN_STATEMENTS]
            out[label] = {
                "ms": round(ms, 1),
                "sql_ms": round(sum(t[0] for t in timed), 1),
                "slowest": [{"ms": round(t[0], 1), "sql": t[1], "params": t[2]} for t in slowest],
            }
    finally:
        event.remove(engine, "before_cursor_execute", before)
        event.remove(engine, "after_cursor_execute", after)
    return out


def profile_paths(out: dict, paths: dict[str, str]) -> dict[str, str]:
    """The pages timed in-process: the buyer's, every back-office page and export without
    its filters, and of each list the slowest filter or far page over the target (the one
    whose statements are explained)."""
    worst: dict[str, tuple[float, str]] = {}
    for label, row in out["backoffice"].items():
        if row["kind"] == "filter" and not row["met"] and row["p99_ms"] > worst.get(row["group"], (0.0, ""))[0]:
            worst[row["group"]] = (row["p99_ms"], label)
    keep = {label for _ms, label in worst.values()}
    return {
        label: path
        for label, path in paths.items()
        if label not in out["backoffice"] or out["backoffice"][label]["kind"] != "filter" or label in keep
    }


def role_of(path: str) -> str:
    if path.startswith("/merchant"):
        return "merchant"
    return "operator" if path.startswith("/operator") else "buyer"


def explain(shop: Shop, statement: str, params) -> str:
    """The statement's plan: EXPLAIN ANALYZE on PostgreSQL (a SELECT only; anything else
    is planned, not run), EXPLAIN QUERY PLAN on SQLite."""
    from faka.extensions import db

    with shop.app.app_context():
        connection = db.session.connection()
        try:
            if connection.dialect.name == "postgresql":
                run = statement.lstrip().upper().startswith(("SELECT", "WITH"))
                prefix = "EXPLAIN (ANALYZE, BUFFERS) " if run else "EXPLAIN "
                rows = connection.exec_driver_sql(prefix + statement, params or None).all()
                return "\n".join(r[0] for r in rows)
            rows = connection.exec_driver_sql("EXPLAIN QUERY PLAN " + statement, params or ()).all()
            return "\n".join(f"{'  ' * (r[1] > 0)}{r[-1]}" for r in rows)
        except Exception as exc:  # noqa: BLE001 - a plan that cannot be had is said so, not fatal
            return f"(no plan: {type(exc).__name__}: {str(exc)[:200]})"
        finally:
            db.session.rollback()


def jsonable(value):
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    return str(value)


@contextmanager
def rolled_back(app) -> Iterator[None]:
    """Everything the block writes is undone at its end: the session runs in a transaction
    of its own connection, and the code's commits end savepoints inside it."""
    from sqlalchemy.orm import Session

    from faka.extensions import db

    with app.app_context():
        db.session.remove()
        connection = db.engine.connect()
        outer = connection.begin()
        db.session.registry.set(Session(bind=connection, join_transaction_mode="create_savepoint"))
        try:
            yield
        finally:
            db.session.remove()
            outer.rollback()
            connection.close()


def time_jobs(target: Target, redis_url: str, runs: int) -> dict:
    """The reconciler's run (ops.tasks.reconcile) and the settlement job's
    (ledger.tasks.settle_balances), each `runs` times in-process, each run rolled back: the
    jobs they enqueue go to a Redis queue no worker reads, emptied afterwards."""
    from redis import Redis

    from faka import create_app
    from faka.ledger.tasks import settle_balances
    from faka.ops.tasks import reconcile

    os.environ["FAKA_INSTANCE_PATH"] = str(target.instance)
    config = {"JOBS_MODE": "rq", "REDIS_URL": redis_url, "RQ_QUEUE": JOBS_QUEUE, "PAGE_CACHE_SECONDS": 0}
    if target.database_url:
        config["SQLALCHEMY_DATABASE_URI"] = target.database_url
    app = create_app(config)
    out = {}
    try:
        for name, job in (("reconciler", reconcile), ("settlement", settle_balances)):
            seconds, report = [], None
            for _ in range(runs):
                with rolled_back(app):
                    started = time.perf_counter()
                    report = job()
                    seconds.append(time.perf_counter() - started)
                if seconds[-1] > JOB_REPEAT_UNDER_S:
                    break  # far over its target: once says enough, and keeps the run bounded
            out[name] = {
                "runs_s": [round(s, 2) for s in seconds],
                "median_s": round(statistics.median(seconds), 2),
                "max_s": round(max(seconds), 2),
                "report": jsonable(report),
                "target_s": JOB_TARGET_S,
                "met": max(seconds) < JOB_TARGET_S,
            }
            log(f"      {name}: {', '.join(f'{s:.2f}' for s in seconds)} s")
    finally:
        from faka.extensions import db

        with app.app_context():
            db.engine.dispose()
        Redis.from_url(redis_url).flushdb()
    return out


# -- one shop -------------------------------------------------------------------------------


class Phases:
    """How long each phase of a shop's measurement took (the run is meant to stay bounded)."""

    def __init__(self) -> None:
        self.seconds: dict[str, float] = {}
        self._current: tuple[str, float] | None = None

    def start(self, name: str | None) -> None:
        if self._current:
            self.seconds[self._current[0]] = round(time.perf_counter() - self._current[1], 1)
        self._current = (name, time.perf_counter()) if name else None


def measure_shop(target: Target, root: Path, redis_url: str | None, timing: Timing, out: dict) -> None:
    """Everything measured on one shop, into `out` as it goes (a phase that fails leaves
    what the others measured)."""
    out.update(shop=target.shop, database=target.database, fill=target.fill)
    phases = Phases()
    out["phase_s"] = phases.seconds
    workdir = root / f"{target.database}-{target.shop}-run"
    logdir = workdir / "logs"
    logdir.mkdir(parents=True)
    shop = Shop(target.instance, target.database_url)
    try:
        with site_settings_for_bench(shop):
            log(f"[{target.database} {target.shop}] reading the shop ...")
            phases.start("reading the shop")
            profile = gather_profile(shop, target.merchant.email)
            out["rows"] = profile.rows
            out["merchant"] = {"id": profile.merchant_id, "name": profile.merchant_name}
            if target.database == "postgresql":
                shop.analyze()  # as autovacuum would after the bench's key top-up

            env = base_env(target.instance)
            if target.database_url:
                env["DATABASE_URL"] = target.database_url
            # No reconciler in the servers (the jobs are timed on their own) and no RQ worker.
            server_env = dict(env, FAKA_PROXY_COUNT="1", FAKA_RECONCILE_INTERVAL="0", **SERVER_LIMITS)
            if target.database == "postgresql" and redis_url:
                server_env.update(REDIS_URL=redis_url, FAKA_RQ_QUEUE=JOBS_QUEUE)
            bare, bare_port = gunicorn(f"{target.shop}-bare", "bare:app", env, logdir, ["--pythonpath", str(BENCH)])
            faka, port = gunicorn(f"{target.shop}-faka", "faka:create_app()", server_env, logdir)
            try:
                wait_ready(bare, bare_port, "/bare")
                wait_ready(faka, port, "/", timeout=120)
                meter = Meter([faka.proc.pid], target.postgres)
                bare_meter = Meter([bare.proc.pid])
                phases.start("buyer pages")
                out["buyer"], buyer_paths = buyer_pages(
                    target, profile, port, bare_port, meter, bare_meter, timing, workdir
                )
                bare.stop()
                phases.start("back office")
                out["backoffice"], cookies, notes = backoffice(target, profile, port, meter, timing)
                out.update(notes)
            except BaseException:
                for service in Service.running:
                    log(f"--- {service.name} log ({service.log_path}) ---\n{service.tail()}")
                raise
            finally:
                Service.stop_all()

            log(f"[{target.database} {target.shop}] SQL statements per page, in-process ...")
            phases.start("SQL statements per page")
            paths = {k: v for k, v in buyer_paths.items() if k != "lookup"}
            paths.update({label: row["path"] for label, row in out["backoffice"].items()})
            counted = {}
            for role in ("buyer", "merchant", "operator"):
                mine = {k: v for k, v in paths.items() if role_of(v) == role}
                counted.update(count_queries(shop, mine, cookies.get(role)))
            out["sql"] = {
                label: {"path": row["path"], "status": row["http_status"], "count": sent(row["sql"]), "sql": row["sql"]}
                for label, row in counted.items()
            }
            phases.start("slowest statements")
            profiled = statement_profile(shop, profile_paths(out, paths), cookies)
            out["in_process"] = {label: {"ms": p["ms"], "sql_ms": p["sql_ms"]} for label, p in profiled.items()}
            if target.shop == "big":
                out["slowest"] = explain_slowest(shop, out, profiled)
        log(f"[{target.database} {target.shop}] the reconciler and the settlement job, in-process ...")
        phases.start("jobs")
        out["jobs"] = time_jobs(target, redis_url, timing.job_runs) if redis_url else {"skipped": "no Redis"}
        phases.start(None)
    finally:
        shop.close()


def explain_slowest(shop: Shop, out: dict, profiled: dict) -> list[dict]:
    """The slowest statements of the slowest pages, with their plans: the pages over their
    target first (of a list, its slowest filter or page), slowest first, then the others."""
    group_of = {label: row["group"] for label, row in out["backoffice"].items()}
    missed = {label for label, row in out["backoffice"].items() if not row["met"]}
    missed |= {page for page, entry in out["buyer"].items() if entry.get("met") is False and page in profiled}
    ranked = sorted(profiled, key=lambda k: (k not in missed, -profiled[k]["ms"]))
    pages, groups = [], set()
    for label in ranked:
        group = group_of.get(label, label)
        if group not in groups:
            groups.add(group)
            pages.append(label)
    found = []
    for label in pages[:EXPLAIN_PAGES]:
        for statement in profiled[label]["slowest"]:
            found.append(
                {
                    "page": label,
                    "page_ms": profiled[label]["ms"],
                    "statement_ms": statement["ms"],
                    "sql": statement["sql"],
                    "params": jsonable(statement["params"]),
                    "plan": explain(shop, statement["sql"], statement["params"]),
                }
            )
    return found


# -- the report -----------------------------------------------------------------------------

COLUMNS = (("sqlite", "small"), ("sqlite", "big"), ("postgresql", "small"), ("postgresql", "big"))
DB_TITLES = {"sqlite": "SQLite", "postgresql": "PostgreSQL"}


def _cell(text: str, met) -> str:
    return text + (" MISSED" if met is False else "")


def table(results: dict) -> str:
    columns = [(d, s) for d, s in COLUMNS if s in results["databases"].get(d, {})]
    shops = {(d, s): results["databases"][d][s] for d, s in columns}

    def header(d, s):
        rows = shops[(d, s)].get("rows", {})
        return f"{DB_TITLES[d]} {s} ({rows.get('orders', 0):,} orders)"

    lines = [
        "| | " + " | ".join(header(d, s) for d, s in columns) + " | target |",
        "| --- |" + " --- |" * (len(columns) + 1),
    ]

    def row(name, values, target):
        lines.append(f"| {name} | " + " | ".join(values) + f" | {target} |")

    for page in ("home", "product", "search", "order page", "status poll", "lookup"):
        values = []
        for key in columns:
            e = shops[key].get("buyer", {}).get(page)
            rendered = shops[key].get("in_process", {}).get(page)
            if e is None:
                values.append("-")
                continue
            text = f"{e['ratio']:.2f} ({e['rps']:.0f}/s" + (f", {rendered['ms']:.0f} ms uncached)" if rendered else ")")
            values.append(_cell(text, e["met"]))
        row(f"{page} (ratio to bare)", values, f">= {BUYER_TARGET}")
    values = []
    for key in columns:
        e = shops[key].get("buyer", {}).get("checkout")
        values.append(_cell(f"{e['rps']:.0f}/s", e["met"]) if e else "-")
    row("checkout (orders/s)", values, f">= {CHECKOUT_TARGET}")

    groups: dict[str, list[str]] = {}
    for key in columns:
        for label, r in shops[key].get("backoffice", {}).items():
            groups.setdefault(r["group"], [])
            if label not in groups[r["group"]]:
                groups[r["group"]].append(label)
    for group, labels in groups.items():
        values = []
        for key in columns:
            rows = shops[key].get("backoffice", {})
            mine = [(label, rows[label]) for label in labels if label in rows]
            if not mine:
                values.append("-")
                continue
            measure_key = "first_byte_p99_ms" if mine[0][1]["kind"] == "csv" else "p99_ms"
            base = rows.get(group)
            worst_label, worst = max(mine, key=lambda lr: lr[1][measure_key])
            text = f"{base[measure_key]:.0f}" if base else "-"
            if len(mine) > 1:
                text += f", worst {worst[measure_key]:.0f} ({worst_label.removeprefix(group).strip() or 'page'})"
            if mine[0][1]["kind"] == "csv":
                text += f"; last byte {max(r['p99_ms'] for _l, r in mine):.0f}" + (
                    "" if all(r["streamed"] for _l, r in mine) else ", not streamed"
                )
            values.append(_cell(text, all(r["met"] for _l, r in mine)))
        n = max(len([label for label in labels if label in shops[k].get("backoffice", {})]) for k in columns)
        what = "first byte p99 ms" if "csv" in group else "p99 ms"
        row(f"{group} ({what}{f', {n} URLs' if n > 1 else ''})", values, f"<= {BACKOFFICE_P99_MS}")

    for job in ("reconciler", "settlement"):
        values = []
        for key in columns:
            j = shops[key].get("jobs", {}).get(job)
            values.append(_cell(f"{j['median_s']:.2f} s (max {j['max_s']:.2f})", j["met"]) if j else "-")
        row(f"{job} run", values, f"< {JOB_TARGET_S} s")

    values = []
    for d, s in columns:
        if s == "big" and results["sql_equal"].get(d):
            eq = results["sql_equal"][d]
            values.append(f"{eq['equal']}/{eq['compared']} equal" + (" MISSED" if eq["differ"] else ""))
        else:
            values.append("")
    row("SQL statements per page, big = small", values, "all equal")
    return "\n".join(lines)


def _shape(statement: str) -> str:
    """A statement without its values (SQLite's trace gives them inlined, psycopg's
    placeholders name them), an IN list of any length as one, cut short (the statements
    are kept to 300 characters)."""
    shape = re.sub(r"%\([^)]*(\)s(::[A-Z]+)?|$)|'[^']*'|\b\d+\b", "?", statement)
    return re.sub(r"\?(, \?)+", "?", shape)[:160]


def compare_sql(small: dict, big: dict) -> dict:
    """The pages whose statement count differs between the shops, each with what the big
    shop ran more (or less) by the statements' shape: one shape many times over grows with
    the rows (an N+1, or chunks of an IN list); one statement more is most often a list
    that skips a query when it is empty."""
    both = [label for label in big.get("sql", {}) if label in small.get("sql", {})]
    differ = {}
    for label in both:
        a, b = small["sql"][label], big["sql"][label]
        if a["count"] == b["count"]:
            continue
        shapes_a = Counter(_shape(q) for q in a["sql"])
        shapes_b = Counter(_shape(q) for q in b["sql"])
        more = shapes_b - shapes_a
        fewer = shapes_a - shapes_b
        worst = more.most_common(1)
        differ[label] = {
            "small": a["count"],
            "big": b["count"],
            "repeated": worst[0][1] if worst and worst[0][1] > 2 else 0,
            "more": [{"times": n, "sql": shape[:300]} for shape, n in more.most_common()],
            "fewer": [{"times": n, "sql": shape[:300]} for shape, n in fewer.most_common()],
        }
    return {"compared": len(both), "equal": len(both) - len(differ), "differ": differ}


def missed(results: dict) -> list[str]:
    out = []
    for database, shops in results["databases"].items():
        for shop_name, s in shops.items():
            if "error" in s:
                out.append(f"{database} {shop_name}: did not finish ({s['error']})")
            where = f"{database} {shop_name}"
            for page, e in s.get("buyer", {}).items():
                if e.get("met") is False:
                    what = f"{e['rps']:.0f} orders/s" if page == "checkout" else f"ratio {e['ratio']:.2f}"
                    out.append(f"{where} {page} {what}" + (f", {e['errors']} errors" if e.get("errors") else ""))
            for label, r in s.get("backoffice", {}).items():
                if not r["met"]:
                    key = "first_byte_p99_ms" if r["kind"] == "csv" else "p99_ms"
                    out.append(
                        f"{where} {label} p99 {r[key]:.0f} ms"
                        + ("" if r["status"] == [200] else f" (HTTP {r['status']})")
                        + ("" if r["kind"] != "csv" or r["streamed"] else " (not streamed)")
                    )
            for job, j in s.get("jobs", {}).items():
                if isinstance(j, dict) and j.get("met") is False:
                    out.append(f"{where} {job} {j['max_s']:.2f} s")
        eq = results["sql_equal"].get(database)
        if eq and eq["differ"]:
            out.append(
                f"{database} SQL statements differ from the small shop: "
                + ", ".join(
                    f"{k} {v['small']} -> {v['big']}" + (f" (a statement x{v['repeated']})" if v["repeated"] else "")
                    for k, v in eq["differ"].items()
                )
            )
    return out


def findings_markdown(results: dict) -> str:
    lines = [f"# bench-big findings, {results['meta']['started']}", ""]
    for database, shops in results["databases"].items():
        big = shops.get("big", {})
        lines += [f"## {DB_TITLES[database]}", ""]
        slow = [(label, r) for label, r in big.get("backoffice", {}).items() if not r["met"]]
        if slow:
            lines.append("Back-office URLs over the target (p99, first byte for the CSV exports):")
            lines.append("")
            for label, r in slow:
                lines.append(
                    f"- {label} `{r['path']}`: p99 {r['p99_ms']} ms, first byte {r['first_byte_p99_ms']} ms, "
                    f"server CPU {r['server_cpu_ms']} ms/request, HTTP {r['status']}"
                )
            lines.append("")
        differ = results["sql_equal"].get(database, {}).get("differ", {})
        if differ:
            lines += [
                "Pages whose SQL statements differ from the small shop's (what the big shop ran more, fewer):",
                "",
            ]
            for label, d in differ.items():
                lines.append(f"- {label}: {d['small']} -> {d['big']}")
                for sign, key in (("+", "more"), ("-", "fewer")):
                    for item in d[key]:
                        lines.append(f"  - {sign}{item['times']}x `{item['sql'][:200]}`")
            lines.append("")
        for item in big.get("slowest", []):
            lines += [
                f"### {item['page']}: page {item['page_ms']} ms in-process, statement {item['statement_ms']} ms",
                "",
                "```sql",
                item["sql"].strip(),
                "```",
                f"params: `{json.dumps(item['params'], ensure_ascii=False)[:500]}`",
                "",
                "```",
                item["plan"],
                "```",
                "",
            ]
    return "\n".join(lines) + "\n"


# -- main -----------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs and fewer requests per page")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one database only")
    parser.add_argument("--shops", choices=("both", "big", "small"), default="both", help="which shops to measure")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "big-latest.json", help="JSON results file")
    parser.add_argument(
        "--findings", type=Path, default=BENCH / "results" / "big-findings.md", help="slow statements and plans"
    )
    parser.add_argument("--keep", action="store_true", help="keep the small shops' instances and the server logs")
    args = parser.parse_args()
    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install -y wrk")
        return 2
    timing = QUICK if args.quick else FULL
    for key in STRIP_ENV:
        os.environ.pop(key, None)
    os.environ.update(SERVER_LIMITS)

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    root = Path(tempfile.mkdtemp(prefix="faka-bench-big-"))
    results: dict = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "timing": asdict(timing),
            "rate_limits": SERVER_LIMITS,
            "risk_thresholds": RISK_OUT_OF_REACH,
            "work": str(root),
        },
        "databases": {},
        "sql_equal": {},
    }
    from redis import Redis

    redis_url: str | None = RQ_REDIS_URL
    try:
        Redis.from_url(redis_url, socket_connect_timeout=2).flushdb()
    except Exception:  # noqa: BLE001 - the jobs' timing is skipped, said so
        redis_url = None
    failed = interrupted = False
    for database in [args.only] if args.only else ["postgresql", "sqlite"]:
        if database == "postgresql" and (why := postgres_available()):
            log(f"skipping PostgreSQL: {why}")
            results["databases"][database] = {}
            results["meta"]["skipped_postgresql"] = why
            continue
        shops = results["databases"][database] = {}
        for shop_name in ("small", "big") if args.shops == "both" else (args.shops,):
            target = None
            try:
                shops[shop_name] = {}
                target = small_target(database, root) if shop_name == "small" else big_target(database)
                measure_shop(target, root, redis_url, timing, shops[shop_name])
            except (Exception, KeyboardInterrupt, SystemExit) as exc:
                failed = True
                shops[shop_name]["error"] = f"{type(exc).__name__}: {exc}"
                log(f"[{database} {shop_name}] failed: {shops[shop_name]['error']}")
                if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                    interrupted = True
                    break
            finally:
                if target is not None and target.shop == "small" and target.postgres is not None:
                    target.postgres.drop()
        if "small" in shops and "big" in shops and "sql" in shops["small"] and "sql" in shops["big"]:
            results["sql_equal"][database] = compare_sql(shops["small"], shops["big"])
        if interrupted:
            break

    results["missed"] = missed(results)
    results["meta"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    results["meta"]["finished"] = datetime.now(UTC).isoformat(timespec="seconds")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(jsonable(results), indent=2, ensure_ascii=False) + "\n")
    args.findings.write_text(findings_markdown(results))
    print(table(results))
    print()
    print("MISSED:\n- " + "\n- ".join(results["missed"]) if results["missed"] else "all targets met")
    print(f"\nresults: {args.out}; slow statements and plans: {args.findings}")
    if args.keep or failed:
        print(f"instances and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
