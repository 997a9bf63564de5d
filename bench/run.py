"""Benchmark faka on this machine, in two set-ups, each against a bare Flask endpoint under
the same gunicorn: SQLite with jobs in-process, and PostgreSQL + Redis + worker.py.

    .venv/bin/python bench/run.py [--quick] [--only sqlite|postgresql] [--out FILE] [--keep]

Per set-up: requests/s, p99 and server CPU per request for home, product, status poll
(delivered and pending), checkout POST and payment notify, each run between two runs of
the bare endpoint; notify -> key-visible latency; a 100,000-key import; the memory of one
web worker (and of the RQ worker); SQL statements per page. Once: the product page's
compressed weight. Everything runs on throw-away instances (a temp dir as
FAKA_INSTANCE_PATH; PostgreSQL: a database created and dropped by the run, or
BENCH_DATABASE_URL) and only on 127.0.0.1. Needs `wrk`; the PostgreSQL set-up needs a
PostgreSQL (BENCH_PG_ADMIN_URL) and a Redis (BENCH_REDIS_URL, flushed) and is skipped
without them. Exits 0 even when a target is missed (the tables say MISSED); non-zero only
when the benchmark itself could not run. See bench/README.md.
"""

import argparse
import gzip
import html
import http.client
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import quote, urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = ROOT / ".venv" / "bin"
if not (BIN / "gunicorn").exists():  # e.g. run with another venv's python
    BIN = Path(sys.executable).parent

RQ_REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/6")
PG_ADMIN_URL = os.environ.get("BENCH_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RQ_QUEUE = "bench"
WORKERS = 4
THREADS, CONNECTIONS = 2, 16
WRK_TIMEOUT = 10  # seconds; wrk's default (2 s) would drop slow answers from the latency figures
RATIO_TARGETS = {"status": 0.6, "status_pending": 0.6, "product": 0.35, "home": 0.3}
CHECKOUT_TARGET = 100  # orders/s on PostgreSQL with 4 workers
LATENCY_P99_TARGET_MS = 250  # notify -> key visible, with the RQ worker
PAGE_WEIGHT_TARGET = 40 * 1024  # product page, HTML + CSS + JS, compressed
IMPORT_TARGET_S = 30  # 100,000 keys
GZIP_LEVEL = 6
STOCK_KEYS = 1000  # extra keys for the latency orders
EXTRA_PRODUCTS = 30
POLL_INTERVAL = 0.005
DELIVERY_TIMEOUT = 30.0
DRAIN_TIMEOUT = 300.0
HTMX_STOP_POLLING = 286
GATEWAY_IP = "203.0.113.7"  # where the load's notifications claim to come from (X-Forwarded-For)
# Limits no load from one address reaches: the bench measures the work, not the limiter.
NO_LIMITS = {"FAKA_RATELIMIT_CHECKOUT": "1000000 per minute", "FAKA_RATELIMIT_NOTIFY": "1000000 per minute"}
# Risk thresholds out of reach: every rule still runs (and costs what it costs), none refuses.
RISK_OUT_OF_REACH = {"risk_captcha_at": "998", "risk_hold_at": "999", "risk_block_at": "1000"}

# Environment the app reads that must not leak into the isolated instance.
STRIP_ENV = (
    "FAKA_JOBS_MODE",
    "REDIS_URL",
    "FAKA_RQ_QUEUE",
    "DATABASE_URL",
    "SECRET_KEY",
    "FAKA_ENCRYPTION_KEYS",
    "FAKA_BASE_URL",
    "FAKA_SEED_DEMO",
    "FAKA_PROXY_COUNT",
    "MAIL_SERVER",
    "MAIL_PORT",
    "MAIL_USERNAME",
    "MAIL_PASSWORD",
    "MAIL_USE_TLS",
    "MAIL_USE_SSL",
    "FAKA_ORDER_TTL_MINUTES",
    "FAKA_RECONCILE_INTERVAL",
    "FAKA_RATELIMIT_CHECKOUT",
    "FAKA_RATELIMIT_LOOKUP",
    "FAKA_RATELIMIT_NOTIFY",
    "FAKA_PAGE_CACHE_SECONDS",
    "FAKA_STATUS_CACHE_SECONDS",
)


def log(message: str = "") -> None:
    print(message, file=sys.stderr, flush=True)


# -- processes --------------------------------------------------------------------------


class Service:
    """A subprocess in its own process group, with its output in a log file."""

    running: list["Service"] = []

    def __init__(self, name: str, argv: list[str], env: dict, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}.log"
        self._log = open(self.log_path, "wb")
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )
        Service.running.append(self)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def stop(self) -> None:
        if self in Service.running:
            Service.running.remove(self)
        if self.alive():
            for sig, wait in ((signal.SIGTERM, 10), (signal.SIGKILL, 5)):
                try:
                    os.killpg(self.proc.pid, sig)  # the group is this process's own (start_new_session)
                except ProcessLookupError:
                    break
                try:
                    self.proc.wait(wait)
                    break
                except subprocess.TimeoutExpired:
                    continue
        self._log.close()

    @classmethod
    def stop_all(cls) -> None:
        for service in list(reversed(cls.running)):
            service.stop()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_request(
    port: int,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: dict | None = None,
    timeout: float = 10,
    full: bool = False,
):
    """(status, text), or with full=True (status, body bytes, headers)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        data = response.read()
        if full:
            return response.status, data, response.getheaders()
        return response.status, data.decode("utf-8", "replace")
    finally:
        conn.close()


def wait_ready(service: Service, port: int, path: str, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        if not service.alive():
            raise RuntimeError(f"{service.name} exited:\n{service.tail()}")
        try:
            status, body = http_request(port, "GET", path, timeout=2)
            if status == 200:
                return
            last = f"HTTP {status}: {body[:200]}"
        except OSError as exc:
            last = repr(exc)
        time.sleep(0.2)
    raise RuntimeError(f"{service.name} not ready on {path} after {timeout}s ({last}):\n{service.tail()}")


def gunicorn(name: str, app_spec: str, env: dict, logdir: Path, extra: list[str] = ()) -> tuple[Service, int]:
    """The same gunicorn settings for the baseline and faka."""
    port = free_port()
    argv = [
        str(BIN / "gunicorn"),
        "-w",
        str(WORKERS),
        "-b",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        *extra,
        app_spec,
    ]
    return Service(name, argv, env, logdir), port


def _proc_stat(pid: int) -> list[str] | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_ticks(pgids: list[int], pids: list[int] = ()) -> dict[int, int]:
    """CPU ticks (user + system, and those of reaped children) of each live process in
    these process groups, and of these other processes (PostgreSQL backends)."""
    out = {}
    wanted_groups = set(pgids)
    for stat in Path("/proc").glob("[0-9]*/stat"):
        pid = int(stat.parent.name)
        fields = _proc_stat(pid)
        if fields is None:
            continue
        if int(fields[2]) in wanted_groups or pid in pids:  # fields[2] is pgrp
            out[pid] = sum(int(fields[i]) for i in (11, 12, 13, 14))  # utime stime cutime cstime
    return out


def cpu_seconds_between(before: dict[int, int], after: dict[int, int]) -> float:
    """CPU time spent between two snapshots (a process new in `after` counts from zero)."""
    return sum(ticks - before.get(pid, 0) for pid, ticks in after.items()) / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    return sum(cpu_ticks([pgid]).values()) / os.sysconf("SC_CLK_TCK")


def memory_kib(pid: int) -> dict | None:
    """RSS and PSS of one process (PSS shares the pages it has in common with its
    gunicorn siblings, so it is what one more worker costs)."""
    try:
        text = Path(f"/proc/{pid}/smaps_rollup").read_text()
    except OSError:
        return None
    values = dict(re.findall(r"^(Rss|Pss):\s+(\d+) kB", text, re.M))
    return {"rss_kib": int(values.get("Rss", 0)), "pss_kib": int(values.get("Pss", 0))}


def children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        fields = _proc_stat(int(stat.parent.name))
        if fields is not None and int(fields[1]) == pid:  # fields[1] is the parent's pid
            out.append(int(stat.parent.name))
    return sorted(out)


# -- wrk --------------------------------------------------------------------------------

_UNITS = {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 60e3}


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text.strip())
    if not m:
        raise ValueError(f"unparsable wrk latency {text!r}")
    return float(m.group(1)) * _UNITS[m.group(2)]


def parse_wrk(output: str) -> dict:
    def find(pattern, cast=float, default=None):
        m = re.search(pattern, output)
        return cast(m.group(1)) if m else default

    rps = find(r"Requests/sec:\s*([\d.]+)")
    if rps is None:
        raise RuntimeError(f"wrk output not understood:\n{output}")
    percentiles = {p: _ms(v) for p, v in re.findall(r"^\s+(50|75|90|99)%\s+(\S+)", output, re.M)}
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    script = dict(re.findall(r"^BENCH (\w+)=(-?\d+)", output, re.M))  # what the Lua scripts report
    return {
        "rps": rps,
        "requests": find(r"(\d+) requests in", int),
        "latency_ms": {
            "p50": percentiles.get("50"),
            "p75": percentiles.get("75"),
            "p90": percentiles.get("90"),
            "p99": percentiles.get("99"),
        },
        "non_2xx_3xx": find(r"Non-2xx or 3xx responses:\s*(\d+)", int, 0),
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups())))
        if errors
        else None,
        "script": {k: int(v) for k, v in script.items()},
    }


def wrk(
    port: int,
    path: str,
    seconds: float,
    script: Path | None = None,
    script_args: list[str] = (),
    headers: dict | None = None,
) -> dict:
    argv = [
        "wrk",
        f"-t{THREADS}",
        f"-c{CONNECTIONS}",
        f"-d{max(1, round(seconds))}s",
        f"--timeout={WRK_TIMEOUT}s",
        "--latency",
    ]
    for name, value in (headers or {}).items():
        argv += ["-H", f"{name}: {value}"]
    if script is not None:
        argv += ["-s", str(script)]
    argv.append(f"http://127.0.0.1:{port}{path}")
    if script_args:
        argv += ["--", *script_args]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    result["duration_s"] = seconds
    return result


def _lua_string(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'


# Each thread counts the answers that were not the expected status; done() adds them up.
_LUA_COMMON = """
local threads = {}
function setup(thread)
  table.insert(threads, thread)
  thread:set("tid", #threads)
end
bad = 0
function done(summary, latency, requests)
  local total_bad, next_index = 0, 0
  for _, t in ipairs(threads) do
    total_bad = total_bad + t:get("bad")
    local n = t:get("index")
    if n and n > next_index then next_index = n end
  end
  io.write(string.format("BENCH bad=%d\\nBENCH next=%d\\n", total_bad, next_index))
end
"""


def checkout_script(path: Path, buy_path: str, cookie: str, csrf_token: str) -> Path:
    """Checkout POSTs, each from another buyer: its own address (X-Forwarded-For, read
    because the server runs with FAKA_PROXY_COUNT=1), email, and browser (no device
    cookie, so each gets a new one), all in one session, whose CSRF token the form
    carries. Script argument: a number that makes this run's buyers differ from the
    last run's."""
    path.write_text(
        _LUA_COMMON
        + f"""
local buy_path, cookie, token = {_lua_string(buy_path)}, {_lua_string(cookie)}, {_lua_string(quote(csrf_token, safe=""))}
local base, counter = 0, 0
function init(args)
  base = tonumber(args[1]) + tid * 100000
end
function request()
  counter = counter + 1
  index = counter
  local n = base + counter
  local ip = string.format("10.%d.%d.%d", math.floor(n / 65536) % 256, math.floor(n / 256) % 256, n % 256)
  local body = "csrf_token=" .. token .. "&quantity=1&email=b" .. n .. "%40d" .. n
    .. ".example.com&query_password=benchpass1&gateway=sandbox"
  return wrk.format("POST", buy_path, {{["Content-Type"] = "application/x-www-form-urlencoded",
    ["Cookie"] = cookie, ["X-Forwarded-For"] = ip}}, body)
end
function response(status, headers, body)
  if status ~= 303 then bad = bad + 1 end
end
"""
    )
    return path


def notify_script(path: Path) -> Path:
    """Signed sandbox notifications, each for another pending order: thread t of T sends
    lines offset + t, offset + t + T, ... of the bodies file. Past its end it would start
    over with replays (cheap answers that flatter the figure): `next` in the output says
    how far the run got, and the bench checks it stayed within the file.
    Script arguments: bodies file, number of threads, offset."""
    path.write_text(
        _LUA_COMMON
        + f"""
local bodies, step = {{}}, 1
local headers = {{["Content-Type"] = "application/x-www-form-urlencoded", ["X-Forwarded-For"] = "{GATEWAY_IP}"}}
function init(args)
  for line in io.lines(args[1]) do bodies[#bodies + 1] = line end
  step = tonumber(args[2])
  index = tonumber(args[3]) + tid - 1
end
function request()
  local body = bodies[index % #bodies + 1]
  index = index + step
  return wrk.format("POST", "/pay/sandbox/notify", headers, body)
end
function response(status, headers, body)
  if status ~= 200 or not string.find(body, "success", 1, true) then bad = bad + 1 end
end
"""
    )
    return path


# -- the isolated instance --------------------------------------------------------------


def base_env(instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
    env["FAKA_INSTANCE_PATH"] = str(instance)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def flask_cli(env: dict, *args: str) -> str:
    done = subprocess.run(
        [str(BIN / "flask"), "--app", "faka", *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Shop:
    """The app in-process, on the bench instance, for placing and paying orders."""

    def __init__(self, instance: Path, database_url: str | None = None):
        from faka import create_app

        os.environ["FAKA_INSTANCE_PATH"] = str(instance)  # read by create_app
        config = {"JOBS_MODE": "sync", "PAGE_CACHE_SECONDS": 0, "STATUS_CACHE_SECONDS": 0}  # real work, not cache hits
        if database_url:
            config["SQLALCHEMY_DATABASE_URI"] = database_url
        self.app = create_app(config)
        self._buyers = 0

    def close(self) -> None:
        from faka.extensions import db

        with self.app.app_context():
            db.session.remove()
            db.engine.dispose()

    def analyze(self) -> None:
        from sqlalchemy import text

        from faka.extensions import db

        with self.app.app_context():
            db.session.execute(text("ANALYZE"))
            db.session.commit()

    def set_risk_out_of_reach(self) -> None:
        from faka.platform import settings

        with self.app.app_context():
            for key, value in RISK_OUT_OF_REACH.items():
                settings.set_setting(key, value, commit=False)
            from faka.extensions import db

            db.session.commit()

    def auto_products(self) -> list[dict]:
        from sqlalchemy import func, select

        from faka.catalog.models import Product
        from faka.extensions import db
        from faka.inventory.models import CardKey

        with self.app.app_context():
            rows = db.session.execute(
                select(Product.id, Product.slug, func.count(CardKey.id))
                .outerjoin(CardKey, (CardKey.product_id == Product.id) & (CardKey.status == CardKey.AVAILABLE))
                .where(Product.delivery_type == "auto", Product.reusable_key.is_(False))
                .group_by(Product.id, Product.slug)
                .order_by(func.count(CardKey.id).desc(), Product.id)
            ).all()
        return [{"id": r[0], "slug": r[1], "stock": r[2]} for r in rows]

    def add_keys(self, product_id: int, count: int) -> int:
        from faka.catalog.models import Product
        from faka.extensions import db
        from faka.inventory.keys import import_keys

        with self.app.app_context():
            keys = "\n".join(f"BENCH-{secrets.token_hex(10).upper()}" for _ in range(count))
            return import_keys(db.session.get(Product, product_id).variants[0], keys).added

    def timed_import(self, n_keys: int) -> dict:
        """A new product of the demo shop, and n keys imported into it by the back office's
        path for big imports (the import job), timed."""
        from sqlalchemy import func, select

        from faka.catalog.models import Product
        from faka.catalog.variants import product_with_one_variant
        from faka.extensions import db
        from faka.inventory import keys
        from faka.inventory.models import CardKey, KeyImport

        with self.app.app_context():
            template = (
                db.session.execute(select(Product).where(Product.delivery_type == "auto").order_by(Product.id))
                .scalars()
                .first()
            )
            product = product_with_one_variant(
                slug="bench-" + secrets.token_hex(6),
                merchant_id=template.merchant_id,
                category_id=template.category_id,
                title="Bench checkout product",
                description_md=template.description_md,
                price=template.price,
                min_per_order=1,
                max_per_order=template.variants[0].max_per_order,
                delivery_type="auto",
                refund_policy=template.refund_policy,
                position=0,
            )
            db.session.add(product)
            db.session.commit()
            product_id, slug, merchant_id = product.id, product.slug, product.merchant_id
            text = "\n".join(f"BENCH-{i:07d}-{secrets.token_hex(6)}" for i in range(n_keys))
            started = time.perf_counter()
            job = keys.start_import(merchant_id, product.variants[0], text)
            keys.run_import(job.id)
            seconds = time.perf_counter() - started
            job = db.session.get(KeyImport, job.id)
            stored = db.session.scalar(
                select(func.count()).select_from(CardKey).where(CardKey.product_id == product_id)
            )
            added = job.added
            db.session.rollback()
        return {
            "product_id": product_id,
            "slug": slug,
            "keys": n_keys,
            "added": added,
            "stored": stored,
            "seconds": round(seconds, 2),
            "keys_per_second": round(n_keys / seconds) if seconds else None,
        }

    def place_order(self, slug: str) -> dict:
        from faka.orders import checkout

        self._buyers += 1
        n = self._buyers
        with self.app.test_request_context():
            order = checkout.place_order(
                slug, 1, f"lat{n}@l{n}.example.com", "benchpass", client_ip=f"10.250.{n // 256 % 256}.{n % 256}"
            )
            return {
                "id": order.id,
                "number": order.number,
                "token": order.token,
                "total": order.total,
                "currency": order.currency,
            }

    def notify_fields(self, order: dict) -> dict[str, str]:
        """The sandbox's signed notify form for this order (return_url empty: plain "success")."""
        from faka.payments.gateways import get_gateway
        from faka.payments.gateways.base import OrderRef

        with self.app.test_request_context():
            start = get_gateway("sandbox").create_payment(
                OrderRef(
                    number=order["number"],
                    token=order["token"],
                    total=order["total"],
                    currency=order["currency"],
                    subject="x",
                    notify_url="http://127.0.0.1/pay/sandbox/notify",
                    return_url="",
                )
            )
            return dict(start.form_fields)

    def notify_bodies(self, product_id: int) -> list[str]:
        """A signed notify body for each pending order of this product, oldest first."""
        from sqlalchemy import select

        from faka.extensions import db
        from faka.orders.models import Order
        from faka.payments.gateways import get_gateway
        from faka.payments.gateways.sandbox import sign

        with self.app.test_request_context():
            secret = get_gateway("sandbox").settings["secret"]
            rows = db.session.execute(
                select(Order.number, Order.total, Order.currency)
                .where(Order.product_id == product_id, Order.status == Order.PENDING)
                .order_by(Order.id)
            ).all()
            db.session.rollback()
        bodies = []
        for number, total, currency in rows:
            fields = {
                "order_no": number,
                "trade_no": "SBX" + secrets.token_hex(12),
                "amount": str(total),
                "currency": currency,
                "status": "paid",
                "return_url": "",
            }
            fields["sign"] = sign(fields, secret)
            bodies.append(urlencode(fields))
        return bodies

    def pay_in_process(self, order: dict) -> None:
        from faka.payments import notify as payments

        fields = self.notify_fields(order)
        with self.app.test_request_context():
            payments.handle_notify("sandbox", fields, {}, b"")

    def order_status(self, order_id: int) -> str:
        from faka.extensions import db
        from faka.orders.models import Order

        with self.app.app_context():
            status = db.session.get(Order, order_id).status
            db.session.rollback()
            return status

    def count_orders(self, product_id: int | None = None, status: str | None = None) -> int:
        from sqlalchemy import func, select

        from faka.extensions import db
        from faka.orders.models import Order

        query = select(func.count()).select_from(Order)
        if product_id is not None:
            query = query.where(Order.product_id == product_id)
        if status is not None:
            query = query.where(Order.status == status)
        with self.app.app_context():
            value = db.session.scalar(query)
            db.session.rollback()
            return value


def buyer_session(port: int, path: str) -> tuple[dict[str, str], str]:
    """What a browser has after opening a product page: its cookies (session, device) by
    name, and the form's CSRF token."""
    status, body, headers = http_request(port, "GET", path, full=True)
    token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', body.decode())
    if status != 200 or token is None:
        raise RuntimeError(f"GET {path}: HTTP {status}, no CSRF token")
    cookies = dict(value.split(";", 1)[0].split("=", 1) for name, value in headers if name.lower() == "set-cookie")
    return cookies, token.group(1)


def polling_path(port: int, token: str) -> str:
    """The URL the page of a pending order polls (its status widget's hx-get)."""
    status, body = http_request(port, "GET", f"/order/{token}")
    found = re.search(r'id="order-status"[^>]*hx-get="([^"]+)"', body)
    if status != 200 or found is None:
        raise RuntimeError(f"GET /order/{token}: HTTP {status}, no polling status widget")
    return html.unescape(found.group(1))


# -- PostgreSQL and Redis ---------------------------------------------------------------


class Postgres:
    """A database for the run: BENCH_DATABASE_URL as given, or a new one created here and
    dropped at the end."""

    def __init__(self):
        self.url = os.environ.get("BENCH_DATABASE_URL")
        self.created = None
        self.name = None

    def start(self) -> str:
        import psycopg

        if self.url:
            self.name = self.url.rsplit("/", 1)[1].split("?")[0]
            return self.url
        self.name = f"faka_bench_{os.getpid()}_{secrets.token_hex(3)}"
        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'CREATE DATABASE "{self.name}"')
        self.created = self.name
        self.url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + self.name
        return self.url

    def backend_pids(self) -> list[int]:
        import psycopg

        try:
            with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
                return [
                    r[0]
                    for r in conn.execute(
                        "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()", (self.name,)
                    )
                ]
        except Exception:  # noqa: BLE001 - CPU accounting only
            return []

    def drop(self) -> None:
        if not self.created:
            return
        import psycopg

        with psycopg.connect(PG_ADMIN_URL, autocommit=True, connect_timeout=5) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{self.created}" WITH (FORCE)')
        self.created = None


def postgres_available() -> str | None:
    """Why the PostgreSQL set-up cannot run here, or None."""
    try:
        import psycopg

        with psycopg.connect(os.environ.get("BENCH_DATABASE_URL") or PG_ADMIN_URL, connect_timeout=3):
            pass
    except Exception as exc:  # noqa: BLE001 - any failure means "no PostgreSQL here"
        return f"no PostgreSQL ({type(exc).__name__}: {str(exc).strip()[:120]})"
    try:
        from redis import Redis

        Redis.from_url(RQ_REDIS_URL, socket_connect_timeout=2).ping()
    except Exception as exc:  # noqa: BLE001
        return f"no Redis at {RQ_REDIS_URL} ({type(exc).__name__})"
    return None


def start_rq_worker(env: dict, logdir: Path) -> tuple[Service, str]:
    """Start `python worker.py` and wait until it has registered with Redis."""
    worker = Service("rq-worker", [str(BIN / "faka-worker")], env, logdir)
    deadline = time.monotonic() + 20
    from redis import Redis
    from rq import Worker

    redis = Redis.from_url(env["REDIS_URL"])
    while time.monotonic() < deadline:
        if not worker.alive():
            crash = worker.tail(3).splitlines()[-1:] or ["(no output)"]
            worker.stop()
            raise SystemExit(f"worker.py exited at start: {crash[0]}")
        if Worker.all(connection=redis):
            return worker, "worker.py"
        time.sleep(0.2)
    return worker, "worker.py (not registered after 20s)"


# -- throughput -------------------------------------------------------------------------


class Meter:
    """The server side's CPU time: the gunicorn process group, plus (PostgreSQL) the
    database's backends and the RQ worker."""

    def __init__(self, groups: list[int], postgres: Postgres | None = None):
        self.groups = groups
        self.postgres = postgres
        self.backends: set[int] = set()

    def snapshot(self) -> dict[int, int]:
        backends = self.postgres.backend_pids() if self.postgres else []
        self.backends.update(backends)
        return cpu_ticks(self.groups, backends)


def measure(label: str, page: str, port: int, path: str, seconds: float, meter: Meter, **wrk_args) -> dict:
    log(f"  wrk {label:<15} {path[:60]} ({seconds:.0f}s) ...")
    before = meter.snapshot()
    result = wrk(port, path, seconds, **wrk_args)
    after = meter.snapshot()
    cpu = cpu_seconds_between(before, after)
    db_cpu = cpu_seconds_between(
        {p: t for p, t in before.items() if p in meter.backends},
        {p: t for p, t in after.items() if p in meter.backends},
    )
    per_request = 1000 / result["requests"] if result["requests"] else None
    result.update(
        label=label,
        page=page,
        path=path,
        server_cpu_ms_per_request=cpu * per_request if per_request else None,
        database_cpu_ms_per_request=db_cpu * per_request if per_request and meter.postgres else None,
    )
    log(
        f"      {result['rps']:.0f} req/s, p99 {result['latency_ms']['p99']:.1f} ms, server CPU "
        f"{_f(result['server_cpu_ms_per_request'], '{:.2f}')} ms/request"
        + (f", script {result['script']}" if result["script"] else "")
    )
    return result


def page_entry(run: dict, bares: list[dict], target: float | None) -> dict:
    """A page's run with its ratios to the bare runs just before and after it."""
    baseline = statistics.mean(b["rps"] for b in bares)
    bare_cpus = [b["server_cpu_ms_per_request"] for b in bares if b["server_cpu_ms_per_request"]]
    bare_cpu = statistics.mean(bare_cpus) if bare_cpus else None
    ratio = run["rps"] / baseline if baseline else 0.0
    cpu = run["server_cpu_ms_per_request"]
    return {
        "path": run["path"],
        "rps": run["rps"],
        "p99_ms": run["latency_ms"]["p99"],
        "requests": run["requests"],
        "non_2xx_3xx": run["non_2xx_3xx"],
        "bad_answers": run["script"].get("bad"),
        "server_cpu_ms_per_request": cpu,
        "database_cpu_ms_per_request": run.get("database_cpu_ms_per_request"),
        "baseline_rps": baseline,
        "ratio": round(ratio, 3),
        "cpu_ratio": round(bare_cpu / cpu, 3) if bare_cpu and cpu else None,
        "target": target,
        "met": ratio >= target if target is not None else None,
    }


# -- notify -> delivered ----------------------------------------------------------------


def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def delivery_latency(shop: Shop, port: int, slug: str, n: int, mode: str) -> dict:
    log(f"  {mode}: placing {n} orders in-process ...")
    orders = [shop.place_order(slug) for _ in range(n)]
    forms = [shop.notify_fields(o) for o in orders]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    latencies, notify_times, polls_needed, failures = [], [], [], []
    log(f"  {mode}: notify -> delivered for {n} orders ...")
    for order, fields in zip(orders, forms):
        body = urlencode(fields).encode()
        t0 = time.perf_counter()
        try:
            status, text = http_request(port, "POST", "/pay/sandbox/notify", body, headers)
        except OSError as exc:
            failures.append({"order": order["number"], "error": f"notify: {exc!r}"})
            continue
        notify_times.append((time.perf_counter() - t0) * 1000)
        if status != 200 or text.strip() != "success":
            failures.append({"order": order["number"], "error": f"notify answered {status}: {text[:200]}"})
            continue
        polls = 0
        while True:
            polls += 1
            try:
                status, text = http_request(port, "GET", f"/order/{order['token']}/status")
            except OSError as exc:
                status, text = 0, repr(exc)
            elapsed = time.perf_counter() - t0
            if status == HTMX_STOP_POLLING and "card-key" in text:
                latencies.append(elapsed * 1000)
                polls_needed.append(polls)
                break
            if status == HTMX_STOP_POLLING or elapsed > DELIVERY_TIMEOUT:
                state = (
                    "final without keys" if status == HTMX_STOP_POLLING else f"not delivered after {DELIVERY_TIMEOUT}s"
                )
                failures.append(
                    {
                        "order": order["number"],
                        "status": shop.order_status(order["id"]),
                        "error": f"{state} (last HTTP {status})",
                    }
                )
                break
            time.sleep(POLL_INTERVAL)
    result = {
        "mode": mode,
        "orders": n,
        "delivered": len(latencies),
        "failures": failures[:10],
        "failed": len(failures),
        "median_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 99),
        "max_ms": max(latencies) if latencies else None,
        "min_ms": min(latencies) if latencies else None,
        "notify_response_median_ms": statistics.median(notify_times) if notify_times else None,
        "notify_response_p99_ms": percentile(notify_times, 99),
        "polls_median": statistics.median(polls_needed) if polls_needed else None,
    }
    if latencies:
        log(f"      median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, {len(failures)} failed")
    else:
        log(f"      nothing delivered; failures: {failures[:3]}")
    return result


def wait_delivered(shop: Shop, product_id: int, timeout: float = DRAIN_TIMEOUT) -> dict:
    """Wait until no order of the product is paid but undelivered (the load's deliveries
    are done), so the latency run that follows starts on an idle server."""
    from faka.orders.models import Order

    started = time.perf_counter()
    waiting = shop.count_orders(product_id, Order.PAID)
    while waiting and time.perf_counter() - started < timeout:
        time.sleep(0.25)
        waiting = shop.count_orders(product_id, Order.PAID)
    return {
        "seconds": round(time.perf_counter() - started, 2),
        "still_undelivered": waiting,
        "delivered": shop.count_orders(product_id, Order.DELIVERED),
    }


# -- SQL statements per page ------------------------------------------------------------


def count_queries(shop: Shop, paths: dict[str, str], cookies: dict[str, str] | None = None) -> dict[str, dict]:
    """The SQL each page runs, counted at the driver: SQLite's trace callback, and a
    psycopg cursor class that notes each query. SQLAlchemy's own events would miss the
    status poll's read (faka/core/db.py's read_row goes around them). `cookies` (e.g. a
    back-office login's) are sent with every page."""
    import psycopg
    from sqlalchemy import event

    from faka.extensions import db

    app = shop.app
    statements: list[str] = []

    class NotingCursor(psycopg.Cursor):
        def execute(self, query, *args, **kwargs):
            statements.append(query if isinstance(query, str) else query.decode())
            return super().execute(query, *args, **kwargs)

    def on_checkout(dbapi_connection, _record, _proxy):
        if isinstance(dbapi_connection, psycopg.Connection):
            dbapi_connection.cursor_factory = NotingCursor
        else:
            dbapi_connection.set_trace_callback(statements.append)

    def on_checkin(dbapi_connection, _record):
        if isinstance(dbapi_connection, psycopg.Connection):
            dbapi_connection.cursor_factory = psycopg.Cursor
        elif dbapi_connection is not None:
            dbapi_connection.set_trace_callback(None)

    def watch(engine) -> None:
        engines.append(engine)
        event.listen(engine, "checkout", on_checkout)
        event.listen(engine, "checkin", on_checkin)

    engines: list = []
    with app.app_context():
        watch(db.engine)
    try:
        out = {}
        for name, path in paths.items():
            client = app.test_client()
            for cookie, value in (cookies or {}).items():
                client.set_cookie(cookie, value)
            client.get(path)  # warm: first-request set-up is not the page's cost
            reader = app.extensions.get("faka_read_engine")  # database.read_row's own engine (PostgreSQL)
            if reader is not None and reader not in engines:
                watch(reader)
            statements.clear()
            response = client.get(path)
            queries = [
                s for s in statements if s.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
            ]
            out[name] = {
                "path": path,
                "http_status": response.status_code,
                "statements": len(statements),
                "queries": len(queries),
                "sql": [" ".join(s.split())[:300] for s in statements],
            }
        return out
    finally:
        for engine in engines:
            event.remove(engine, "checkout", on_checkout)
            event.remove(engine, "checkin", on_checkin)


def add_products(shop: Shop, count: int) -> None:
    from sqlalchemy import select

    from faka.catalog.models import Product
    from faka.catalog.variants import product_with_one_variant
    from faka.extensions import db
    from faka.inventory.keys import import_keys

    with shop.app.app_context():
        template = (
            db.session.execute(select(Product).where(Product.delivery_type == "auto").order_by(Product.id))
            .scalars()
            .first()
        )
        new_ids = []
        for i in range(count):
            p = product_with_one_variant(
                slug=secrets.token_hex(8),
                merchant_id=template.merchant_id,
                category_id=template.category_id,
                title=f"Bench product {i + 1}",
                description_md=template.description_md,
                price=template.price + i,
                min_per_order=template.variants[0].min_per_order,
                max_per_order=template.variants[0].max_per_order,
                delivery_type="auto",
                refund_policy=template.refund_policy,
                position=100 + i,
            )
            db.session.add(p)
            db.session.flush()
            new_ids.append(p.id)
        db.session.commit()
        for pid in new_ids:
            import_keys(
                db.session.get(Product, pid).variants[0],
                "\n".join(f"XTRA-{secrets.token_hex(8).upper()}" for _ in range(3)),
            )


def sql_per_page(shop: Shop, pages: dict[str, str]) -> dict:
    from sqlalchemy import func, select

    from faka.catalog.models import Product
    from faka.extensions import db

    def product_count() -> int:
        with shop.app.app_context():
            value = db.session.scalar(select(func.count()).select_from(Product))
            db.session.rollback()
            return value

    before_n = product_count()
    before = count_queries(shop, pages)
    add_products(shop, EXTRA_PRODUCTS)
    after_n = product_count()
    after = count_queries(shop, pages)
    return {
        "products_before": before_n,
        "products_after": after_n,
        "pages": {
            name: {
                "before": before[name],
                "after": after[name],
                "constant": before[name]["statements"] == after[name]["statements"],
            }
            for name in pages
        },
    }


# -- page weight ------------------------------------------------------------------------


def page_weight(port: int, path: str) -> dict:
    """The product page and the CSS and JavaScript it loads, raw and gzip-compressed. Only
    what the page references: the captcha widget is added to it only when the risk engine
    asks a buyer for the captcha."""
    status, html, _headers = http_request(port, "GET", path, full=True)
    if status != 200:
        raise RuntimeError(f"GET {path} answered {status}")
    text = html.decode()
    assets = re.findall(r'<link[^>]*rel="stylesheet"[^>]*href="([^"]+)"', text)
    assets += re.findall(r'<script[^>]*src="([^"]+)"', text)
    parts = [{"what": "HTML " + path, "raw": len(html), "gzip": len(gzip.compress(html, GZIP_LEVEL))}]
    for url in assets:
        status, body, _headers = http_request(port, "GET", url, full=True)
        if status != 200:
            raise RuntimeError(f"GET {url} answered {status}")
        parts.append({"what": url, "raw": len(body), "gzip": len(gzip.compress(body, GZIP_LEVEL))})
    total = sum(p["gzip"] for p in parts)
    return {
        "parts": parts,
        "raw": sum(p["raw"] for p in parts),
        "gzip": total,
        "gzip_level": GZIP_LEVEL,
        "target": PAGE_WEIGHT_TARGET,
        "met": total <= PAGE_WEIGHT_TARGET,
    }


# -- one set-up -------------------------------------------------------------------------


def run_setup(
    name: str, out: dict, root: Path, seconds: int, warmup: int, n_orders: int, n_import: int, with_weight: bool
) -> None:
    """The whole measurement on one database, into `out`: SQLite (jobs in a thread of each
    web worker) or PostgreSQL (+ Redis + worker.py)."""
    instance = root / name
    logdir = instance / "logs"
    logdir.mkdir(parents=True)
    env = base_env(instance)
    postgres = Postgres() if name == "postgresql" else None
    out["jobs"] = "RQ (worker.py)" if postgres else "thread in each web worker"
    shop = None
    redis = None
    try:
        if postgres:
            env["DATABASE_URL"] = postgres.start()
            out["database_url"] = re.sub(r"//[^@/]*@", "//", env["DATABASE_URL"])
            from redis import Redis

            redis = Redis.from_url(RQ_REDIS_URL)
            redis.flushdb()
        log(f"[{name}] instance {instance}")
        flask_cli(env, "init-db")
        flask_cli(env, "seed-demo")
        shop = Shop(instance, env.get("DATABASE_URL"))
        shop.set_risk_out_of_reach()

        # 1. the 100,000-key import, on an idle machine, into the product the checkouts buy
        log(f"[{name}] importing {n_import} keys ...")
        imported = shop.timed_import(n_import)
        imported.update(
            target_s=IMPORT_TARGET_S if n_import == 100_000 else None,
            met=imported["seconds"] < IMPORT_TARGET_S if n_import == 100_000 else None,
        )
        out["import"] = imported
        log(f"      {imported['seconds']} s ({imported['keys_per_second']} keys/s)")
        if postgres:
            # Fresh statistics, as autovacuum gathers them within about a minute of a big
            # import: the runs below measure a shop in its steady state.
            shop.analyze()

        # 2. a delivered order to poll, a pending one, stock for the latency orders
        products = [p for p in shop.auto_products() if p["stock"] > 0 and p["id"] != imported["product_id"]]
        if not products:
            raise RuntimeError("seed-demo left no auto product with stock")
        page_product = products[0]
        polled = shop.place_order(page_product["slug"])
        shop.pay_in_process(polled)
        if shop.order_status(polled["id"]) != "delivered":
            raise RuntimeError("the order to poll was not delivered")
        shop.add_keys(page_product["id"], STOCK_KEYS)
        pending = shop.place_order(page_product["slug"])
        pages = {"home": "/", "product": f"/p/{page_product['slug']}"}
        out["pages"] = pages

        # 3. the servers: bare and faka under the same gunicorn, and worker.py
        server_env = dict(env, FAKA_PROXY_COUNT="1", **NO_LIMITS)
        if postgres:
            server_env.update(REDIS_URL=RQ_REDIS_URL, FAKA_RQ_QUEUE=RQ_QUEUE)
        bare, bare_port = gunicorn(f"{name}-bare", "bare:app", env, logdir, ["--pythonpath", str(BENCH)])
        faka, port = gunicorn(f"{name}-faka", "faka:create_app()", server_env, logdir)
        worker = None
        if postgres:
            worker, out["rq_worker"] = start_rq_worker(server_env, logdir)
        wait_ready(bare, bare_port, "/bare")
        wait_ready(faka, port, "/healthz")
        # The status URLs exactly as the order page's polling asks for them.
        poll = polling_path(port, pending["token"])
        pages.update(status=poll.replace(pending["token"], polled["token"]), status_pending=poll)
        expected = {"home": 200, "product": 200, "status": HTMX_STOP_POLLING, "status_pending": 200}
        for page, path in pages.items():
            code, body = http_request(port, "GET", path)
            if code != expected[page] or (page == "status" and "card-key" not in body):
                raise RuntimeError(f"GET {path} answered {code} (expected {expected[page]}):\n{body[:500]}")

        # 4. throughput: each page between two bare runs
        cookies, csrf_token = buyer_session(port, f"/p/{imported['slug']}")
        # The order page's polls carry the buyer's cookies; the checkouts only the session's
        # (for the CSRF token), so that each is a new browser.
        buyer_headers = {"Cookie": "; ".join(f"{k}={v}" for k, v in cookies.items()), "HX-Request": "true"}
        buy = checkout_script(
            instance / "checkout.lua", f"/p/{imported['slug']}/buy", f"session={cookies['session']}", csrf_token
        )
        notify = notify_script(instance / "notify.lua")
        bare_meter = Meter([bare.proc.pid])
        meter = Meter([faka.proc.pid] + ([worker.proc.pid] if worker else []), postgres)
        loads = [
            ("home", pages["home"], {}),
            ("product", pages["product"], {}),
            ("status", pages["status"], {"headers": buyer_headers}),
            ("status_pending", pages["status_pending"], {"headers": buyer_headers}),
        ]
        log(f"[{name}] warm-up ({warmup}s per URL) ...")
        wrk(bare_port, "/bare", warmup)
        for _page, path, extra in loads:
            wrk(port, path, warmup, **extra)
        runs = [measure("bare", "bare", bare_port, "/bare", seconds, bare_meter)]
        entries = {}

        def page_run(page: str, path: str, target: float | None, **extra) -> dict:
            run = measure(page, page, port, path, seconds, meter, **extra)
            runs.append(run)
            runs.append(measure("bare", "bare", bare_port, "/bare", seconds, bare_meter))
            entries[page] = page_entry(run, [runs[-3], runs[-1]], target)
            return run

        for page, path, extra in loads:
            page_run(page, path, RATIO_TARGETS.get(page), **extra)

        # checkout: a warm-up with its own buyers, then the measured run
        wrk(port, f"/p/{imported['slug']}/buy", warmup, script=buy, script_args=["0"])
        before_orders = shop.count_orders(imported["product_id"])
        checkout_run = page_run("checkout", f"/p/{imported['slug']}/buy", None, script=buy, script_args=["1000000"])
        placed = shop.count_orders(imported["product_id"]) - before_orders
        entries["checkout"].update(orders_placed=placed, orders_per_second=checkout_run["rps"])
        if postgres:
            entries["checkout"].update(
                target_orders_per_second=CHECKOUT_TARGET,
                met=checkout_run["rps"] >= CHECKOUT_TARGET and not checkout_run["script"].get("bad"),
            )

        # notify: signed notifications for distinct pending orders; more orders first if
        # the notify run could outrun them (about three times the checkout rate)
        needed = int(3 * max(checkout_run["rps"], 50) * (seconds + warmup)) + 200
        topped_up = 0
        for attempt in range(4):
            pending_now = shop.count_orders(imported["product_id"], "pending")
            if pending_now >= needed:
                break
            extra_seconds = min(30, (needed - pending_now) / max(checkout_run["rps"], 20) + 1)
            log(f"  placing about {needed - pending_now} more orders for the notify run ({extra_seconds:.0f}s) ...")
            wrk(
                port,
                f"/p/{imported['slug']}/buy",
                extra_seconds,
                script=buy,
                script_args=[str(2000000 + attempt * 400000)],
            )
            topped_up += 1
        bodies = shop.notify_bodies(imported["product_id"])
        bodies_file = instance / "notify-bodies.txt"
        bodies_file.write_text("\n".join(bodies) + "\n")
        warm = wrk(
            port, "/pay/sandbox/notify", warmup, script=notify, script_args=[str(bodies_file), str(THREADS), "0"]
        )
        offset = warm["script"].get("next", 0)
        notify_run = page_run(
            "notify",
            "/pay/sandbox/notify",
            None,
            script=notify,
            script_args=[str(bodies_file), str(THREADS), str(offset)],
        )
        used = notify_run["script"].get("next", 0)
        entries["notify"].update(pending_orders=len(bodies), used_through=used, replays=max(0, used - len(bodies)))
        out["throughput"] = {
            "wrk": {"threads": THREADS, "connections": CONNECTIONS, "duration_s": seconds, "warmup_s": warmup},
            "pages": entries,
            "runs": runs,
            "notify_topups": topped_up,
        }

        # 5. memory after the load
        out["memory"] = {
            "web_workers": [dict(pid=pid, **(memory_kib(pid) or {})) for pid in children(faka.proc.pid)],
            "bare_workers": [dict(pid=pid, **(memory_kib(pid) or {})) for pid in children(bare.proc.pid)],
        }
        if worker:
            out["memory"]["rq_worker"] = dict(pid=worker.proc.pid, **(memory_kib(worker.proc.pid) or {}))
        bare.stop()

        # 6. the load's deliveries finish, then notify -> key visible on an idle server
        out["drain"] = wait_delivered(shop, imported["product_id"])
        log(f"  load's deliveries done {out['drain']['seconds']} s after the notify run")
        out["delivery"] = delivery_latency(shop, port, page_product["slug"], n_orders, "rq" if postgres else "thread")
        if postgres:
            out["delivery"].update(
                target_p99_ms=LATENCY_P99_TARGET_MS,
                met=out["delivery"]["p99_ms"] is not None
                and out["delivery"]["failed"] == 0
                and out["delivery"]["p99_ms"] < LATENCY_P99_TARGET_MS,
            )
        if worker:
            out["memory"]["rq_worker_after_latency"] = dict(pid=worker.proc.pid, **(memory_kib(worker.proc.pid) or {}))
        if with_weight:
            out["page_weight"] = page_weight(port, pages["product"])
        faka.stop()
        if worker:
            worker.stop()

        # 7. SQL statements per page, before and after 30 more products
        out["queries"] = sql_per_page(shop, pages)
    except BaseException:
        for service in Service.running:
            log(f"--- {service.name} log ({service.log_path}) ---\n{service.tail()}")
        raise
    finally:
        Service.stop_all()
        if shop is not None:
            shop.close()
        if postgres:
            try:
                postgres.drop()
            except Exception as exc:  # noqa: BLE001
                log(f"could not drop {postgres.created}: {exc}")
        if redis is not None:
            try:
                redis.flushdb()
            except Exception:  # noqa: BLE001
                pass


# -- report -----------------------------------------------------------------------------


def _f(value, fmt="{:.1f}", none="-") -> str:
    return none if value is None else fmt.format(value)


def _mark(met) -> str:
    return "" if met is None else ("ok" if met else "MISSED")


def report_setup(s: dict) -> list[str]:
    lines = [""]
    title = {
        "sqlite": "SQLite, jobs in a thread of each web worker",
        "postgresql": "PostgreSQL + Redis, jobs in worker.py (RQ)",
    }[s["database"]]
    if s.get("skipped"):
        return lines + [f"{title}: skipped ({s['skipped']})"]
    t = s.get("throughput")
    if t:
        w = t["wrk"]
        lines.append(
            f"{title}: gunicorn -w {WORKERS} (sync); wrk -t{w['threads']} -c{w['connections']} "
            f"-d{w['duration_s']}s, each run between two bare runs"
        )
        lines.append(
            f"  {'run':<16}{'req/s':>8}{'p99 ms':>9}{'errors':>8}{'CPU ms/req':>12}{'cpu ratio':>11}"
            f"{'ratio':>8}  target"
        )
        for r in t["runs"]:
            entry = t["pages"].get(r["page"]) if r["page"] != "bare" else None
            errors = (r["script"].get("bad") if r["script"] else r["non_2xx_3xx"]) + sum(
                (r["socket_errors"] or {}).values()
            )
            line = (
                f"  {r['label']:<16}{r['rps']:>8.0f}{r['latency_ms']['p99']:>9.1f}{errors:>8}"
                f"{_f(r['server_cpu_ms_per_request'], '{:.2f}'):>12}"
            )
            if entry:
                target = ""
                if entry.get("target") is not None:
                    target = f">= {entry['target']:.2f} {_mark(entry['met'])}"
                elif entry.get("target_orders_per_second"):
                    target = f">= {entry['target_orders_per_second']} orders/s {_mark(entry['met'])}"
                line += f"{_f(entry['cpu_ratio'], '{:.2f}'):>11}{entry['ratio']:>8.2f}  {target}"
            lines.append(line)
        c, n = t["pages"].get("checkout"), t["pages"].get("notify")
        if c:
            db_share = (
                f"; of its {c['server_cpu_ms_per_request']:.1f} ms CPU per order, PostgreSQL "
                f"{c['database_cpu_ms_per_request']:.1f} ms"
                if c.get("database_cpu_ms_per_request")
                else ""
            )
            lines.append(
                f"  checkout: {c['orders_per_second']:.0f} orders/s ({c['orders_placed']} orders placed "
                f"in the run, every request a different buyer{db_share})"
            )
        if n:
            lines.append(
                f"  notify: {n['rps']:.0f} payments/s, each a different pending order "
                f"({n['used_through']} of {n['pending_orders']} used, replays {n['replays']})"
            )
        lines.append(
            "  errors = answers other than the expected one (checkout 303, notify 200 'success'; elsewhere "
            f"wrk's >= 400) plus socket errors and timeouts ({WRK_TIMEOUT} s)"
        )
        lines.append(
            "  ratio = req/s / mean of the bare runs around it; cpu ratio = bare's CPU ms/req / the page's"
            + (" (faka's includes its PostgreSQL backends and worker.py)" if s["database"] == "postgresql" else "")
        )
    d = s.get("delivery")
    if d:
        target = ""
        if d.get("target_p99_ms"):
            target = f"  p99 < {d['target_p99_ms']} ms {_mark(d['met'])}"
        lines.append(
            f"  notify -> key visible ({d['orders']} orders, polled every {POLL_INTERVAL * 1000:.0f} ms): "
            f"median {_f(d['median_ms'])} ms, p99 {_f(d['p99_ms'])} ms, max {_f(d['max_ms'])} ms, "
            f"failed {d['failed']}{target}"
        )
        for failure in d["failures"][:3]:
            lines.append(f"      failed: {failure}")
    dr = s.get("drain")
    if dr:
        lines.append(
            f"  the notify load's deliveries were all done {dr['seconds']} s after it ended "
            f"({dr['delivered']} delivered, {dr['still_undelivered']} left)"
        )
    imp = s.get("import")
    if imp:
        target = f"  target < {imp['target_s']} s {_mark(imp['met'])}" if imp.get("target_s") else ""
        lines.append(
            f"  import of {imp['keys']:,} keys (the back office's import job): {imp['seconds']} s "
            f"= {imp['keys_per_second']:,} keys/s, {imp['stored']:,} stored{target}"
        )
    m = s.get("memory")
    if m:

        def mib(value):
            return f"{value / 1024:.0f}"

        web = [w for w in m["web_workers"] if w.get("rss_kib")]
        if web:
            lines.append(
                f"  memory after the load: web worker RSS {mib(statistics.median(w['rss_kib'] for w in web))} MiB, "
                f"PSS {mib(statistics.median(w['pss_kib'] for w in web))} MiB (median of {len(web)})"
                + (
                    f"; bare worker RSS {mib(statistics.median(w['rss_kib'] for w in m['bare_workers']))} MiB"
                    if m["bare_workers"]
                    else ""
                )
            )
        rq = m.get("rq_worker_after_latency") or m.get("rq_worker")
        if rq and rq.get("rss_kib"):
            lines.append(
                f"  RQ worker (worker.py, SimpleWorker): RSS {mib(rq['rss_kib'])} MiB, PSS {mib(rq['pss_kib'])} MiB"
            )
    q = s.get("queries")
    if q:
        counts = ", ".join(
            f"{page} {row['after']['queries']}"
            + ("" if row["constant"] else f" (was {row['before']['queries']}: grows with products, MISSED)")
            for page, row in q["pages"].items()
        )
        lines.append(
            f"  SQL queries per request, page cache off ({q['products_before']} -> {q['products_after']} "
            f"products): {counts}"
        )
    if s.get("error"):
        lines.append(f"  ERROR: {s['error']}")
    return lines


def report(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"faka bench ({'quick' if meta['quick'] else 'full'}) {meta['started']}  {meta['cpus']} CPUs, "
        f"load avg before {meta['loadavg_before']}"
        + (f", after {meta['loadavg_after']}" if meta.get("loadavg_after") else "")
    ]
    for setup in results["setups"].values():
        lines += report_setup(setup)
    weight = results.get("page_weight")
    if weight:
        lines.append("")
        lines.append(
            f"Product page weight (gzip -{weight['gzip_level']}; the captcha widget is added only when "
            "the risk engine asks for it, so it is not counted):"
        )
        for part in weight["parts"]:
            lines.append(f"  {part['what'][:60]:<62}{part['raw'] / 1024:>7.1f} KiB{part['gzip'] / 1024:>7.1f} KiB gzip")
        lines.append(
            f"  {'total':<62}{weight['raw'] / 1024:>7.1f} KiB{weight['gzip'] / 1024:>7.1f} KiB gzip  "
            f"target <= {weight['target'] // 1024} KiB {_mark(weight['met'])}"
        )
    lines.append("")
    missed = results.get("missed") or []
    lines.append("MISSED: " + "; ".join(missed) if missed else "all targets met")
    return "\n".join(lines)


def missed_targets(results: dict) -> list[str]:
    missed = []
    for name, s in results["setups"].items():
        for page, entry in ((s.get("throughput") or {}).get("pages") or {}).items():
            if entry.get("met") is False:
                if page == "checkout":
                    missed.append(f"{name} checkout {entry['orders_per_second']:.0f} orders/s < {CHECKOUT_TARGET}")
                else:
                    missed.append(f"{name} {page} ratio {entry['ratio']:.2f} < {entry['target']}")
        d = s.get("delivery") or {}
        if d.get("met") is False:
            missed.append(
                f"{name} notify -> key visible p99 {_f(d.get('p99_ms'))} ms (target < {LATENCY_P99_TARGET_MS})"
            )
        imp = s.get("import") or {}
        if imp.get("met") is False:
            missed.append(f"{name} import {imp['seconds']} s (target < {IMPORT_TARGET_S})")
        for page, row in ((s.get("queries") or {}).get("pages") or {}).items():
            if not row["constant"]:
                missed.append(f"{name} {page} SQL count grows with products")
        if s.get("error"):
            missed.append(f"{name} did not finish")
    weight = results.get("page_weight")
    if weight and not weight["met"]:
        missed.append(f"product page {weight['gzip'] / 1024:.1f} KiB compressed (target <= 40)")
    return missed


# -- main -------------------------------------------------------------------------------


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (3s per URL, 30 orders, 10,000 keys)")
    parser.add_argument("--only", choices=("sqlite", "postgresql"), help="one set-up only")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json", help="JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep the temp instances and server logs")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install -y wrk")
        return 2
    seconds, warmup, n_orders, n_import = (3, 1, 30, 10_000) if args.quick else (10, 2, 200, 100_000)

    root = Path(tempfile.mkdtemp(prefix="faka-bench-"))
    # The in-process app reads the same environment (config.py reads it at import).
    for key in STRIP_ENV:
        os.environ.pop(key, None)
    os.environ.update(NO_LIMITS)
    sys.path.insert(0, str(ROOT))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)

    results: dict = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "loadavg_before": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
            "gunicorn_workers": WORKERS,
            "instances": str(root),
            "risk_thresholds": RISK_OUT_OF_REACH,
            "rate_limits": NO_LIMITS,
        },
        "setups": {},
    }
    failed = False
    names = [args.only] if args.only else ["sqlite", "postgresql"]
    for name in names:
        if name == "postgresql" and (why := postgres_available()):
            log(f"skipping the PostgreSQL set-up: {why}")
            results["setups"][name] = {"database": name, "skipped": why}
            continue
        setup = results["setups"][name] = {"database": name}
        try:
            run_setup(name, setup, root, seconds, warmup, n_orders, n_import, with_weight="page_weight" not in results)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:
            failed = True
            setup["error"] = f"{type(exc).__name__}: {exc}"
            log(f"[{name}] benchmark failed: {setup['error']}")
            if isinstance(exc, (KeyboardInterrupt, SystemExit)):
                break
        finally:
            if "page_weight" in setup:
                results["page_weight"] = setup.pop("page_weight")

    results["missed"] = missed_targets(results)
    results["meta"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(report(results))
    print(f"\nresults: {args.out}")
    delivery_failed = any((s.get("delivery") or {}).get("failed") for s in results["setups"].values())
    if args.keep or failed or delivery_failed:
        print(f"instances and logs kept in {root}")
    else:
        shutil.rmtree(root, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
