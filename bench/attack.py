"""A scripted attack on a real faka server: what a bot gets, what it costs the shop, and
whether an honest buyer still buys.

    .venv/bin/python bench/attack.py [--quick] [--scenario all|both|limits|engine|findings] [--workers N]
                                     [--out FILE] [--keep]

Each scenario runs on its own throw-away instance (a temp dir as FAKA_INSTANCE_PATH,
SQLite, `flask init-db`) served by gunicorn on 127.0.0.1. The bot's scenarios have a
product of 1,000 keys and the sandbox gateway. The attacker's requests come from
127.0.0.1; the honest buyers bind their sockets to 127.0.0.3 (before the attack) and
127.0.0.2 (after it), so the server sees other addresses (any 127.x address is local on
Linux).

1. a burst of 500 checkouts of the product (CSRF token taken from the product page),
2. 1,000 order-lookup guesses,
3. 1,000 payment notifications with bad signatures to /pay/sandbox/notify,
4. an honest buyer from another address buys one key and waits for it on the order page.

Scenarios: `limits` serves with the production rate limits (config.py's defaults, kept
per gunicorn worker in memory); `engine` raises those limits out of reach, so what stops
the bot is the risk engine alone (`both`: these two). `findings` attacks each finding of
issue 17's security review that is fixed, one phase each (bench/findings.py), with the
production settings, and prints a second table: what each attack gets now and the test
that pins the fix. `all` (the default) runs the three. See bench/README.md for how to read
the tables. Exits 1 if an honest buyer does not get the key or a finding's attack gets
more than its fix allows.
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
import sys
import tempfile
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
from requests.adapters import HTTPAdapter

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from bench.run import BIN, ROOT, STRIP_ENV, Service, base_env, flask_cli, free_port, log, wait_ready  # noqa: E402

ATTACKER = "127.0.0.1"
HONEST_BEFORE = "127.0.0.3"
HONEST_AFTER = "127.0.0.2"
KEYS = 1000
PRICE = 1000
FULL = {"reservations": 500, "lookups": 1000, "notifies": 1000}
QUICK = {"reservations": 100, "lookups": 200, "notifies": 200}
CONCURRENCY = 4  # the bot's parallel connections
WORKERS = 2
TIMEOUT = 30
DELIVERY_TIMEOUT = 30.0
POLL_INTERVAL = 0.05
HTMX_STOP_POLLING = 286
# The `engine` scenario: limits no single address reaches in this run.
NO_LIMITS = {
    "FAKA_RATELIMIT_CHECKOUT": "100000 per minute",
    "FAKA_RATELIMIT_LOOKUP": "100000 per minute",
    "FAKA_RATELIMIT_NOTIFY": "100000 per minute",
}
CAPTCHA_TEXT = "quick check"  # in the English captcha message and the widget's hint
SERVER_CACHE_SECONDS = 2.0  # config.py's PAGE_CACHE_SECONDS, which the servers run with


# -- a browser on the wire --------------------------------------------------------------


class _SourceAdapter(HTTPAdapter):
    """Connections from a chosen local address, so the server sees it as REMOTE_ADDR."""

    def __init__(self, source: str):
        self.source = source
        super().__init__()

    def init_poolmanager(self, *args, **kwargs):
        kwargs["source_address"] = (self.source, 0)
        super().init_poolmanager(*args, **kwargs)


class Visitor:
    """One browser: its own cookies (session, device), connecting from `source`.
    Redirects are not followed, so each answer's status is seen."""

    def __init__(self, base_url: str, source: str, on_response=None):
        self.base = base_url.rstrip("/")
        self.source = source
        self.session = requests.Session()
        self.session.mount("http://", _SourceAdapter(source))
        if on_response is not None:  # sees every answer (bench/findings.py counts them)
            self.session.hooks["response"].append(on_response)

    def get(self, path: str, **kwargs) -> requests.Response:
        return self.session.get(self.base + path, allow_redirects=False, timeout=TIMEOUT, **kwargs)

    def post(self, path: str, data: dict | None = None, **kwargs) -> requests.Response:
        return self.session.post(self.base + path, data=data, allow_redirects=False, timeout=TIMEOUT, **kwargs)

    def csrf(self, path: str) -> str:
        """The CSRF token of the form on this page (English, so messages can be read)."""
        page = self.get(path + ("&" if "?" in path else "?") + "lang=en")
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        if page.status_code != 200 or match is None:
            raise RuntimeError(f"GET {path}: HTTP {page.status_code}, no CSRF token")
        return match.group(1)


def _tally(responses: list) -> dict:
    """Answers by status; a 400 that asks for the captcha is also counted as `captcha`."""
    statuses = Counter()
    captcha = errors = 0
    for response in responses:
        if isinstance(response, Exception):
            errors += 1
            continue
        statuses[str(response.status_code)] += 1
        captcha += response.status_code == 400 and CAPTCHA_TEXT in response.text
    return {"statuses": dict(sorted(statuses.items())), "captcha": captcha, "errors": errors}


def _burst(n: int, concurrency: int, setup, send) -> dict:
    """n requests over `concurrency` connections; setup() makes each connection's state,
    send(state, i) makes one request. Returns the tally and the time it took."""
    states = [setup() for _ in range(concurrency)]
    started = time.perf_counter()

    def run(worker: int) -> list:
        out = []
        for i in range(worker, n, concurrency):
            try:
                out.append(send(states[worker], i))
            except requests.RequestException as exc:
                out.append(exc)
        return out

    with ThreadPoolExecutor(concurrency) as pool:
        responses = [r for chunk in pool.map(run, range(concurrency)) for r in chunk]
    seconds = time.perf_counter() - started
    return {
        "requests": n,
        **_tally(responses),
        "seconds": round(seconds, 2),
        "requests_per_second": round(n / seconds, 1) if seconds else None,
    }


# -- the phases (tests/slow/test_attack.py runs them too, at a smaller scale) ----------------


def reservation_burst(base_url: str, slug: str, n: int, source: str = ATTACKER, concurrency: int = CONCURRENCY):
    """n checkouts of one key each, as a bot reusing each connection's CSRF token."""

    def setup():
        visitor = Visitor(base_url, source)
        return visitor, visitor.csrf(f"/p/{slug}")

    def send(state, i):
        visitor, token = state
        return visitor.post(
            f"/p/{slug}/buy",
            {"csrf_token": token, "quantity": 1, "email": f"bot{i}@example.com", "query_password": "botpass1"},
        )

    return _burst(n, concurrency, setup, send)


def lookup_guesses(base_url: str, n: int, source: str = ATTACKER, concurrency: int = CONCURRENCY):
    """n guesses of an order number and its query password."""

    def setup():
        visitor = Visitor(base_url, source)
        return visitor, visitor.csrf("/lookup")

    def send(state, i):
        visitor, token = state
        number = datetime.now(UTC).strftime("%Y%m%d") + f"{secrets.randbelow(10**12):012d}"
        return visitor.post("/lookup", {"csrf_token": token, "query": number, "query_password": secrets.token_hex(4)})

    return _burst(n, concurrency, setup, send)


def forged_notifies(base_url: str, n: int, source: str = ATTACKER, concurrency: int = CONCURRENCY):
    """n sandbox notifications claiming payment of made-up orders, with made-up signatures."""

    def setup():
        return Visitor(base_url, source)

    def send(visitor, i):
        number = datetime.now(UTC).strftime("%Y%m%d") + f"{secrets.randbelow(10**12):012d}"
        return visitor.post(
            "/pay/sandbox/notify",
            {
                "order_no": number,
                "trade_no": "SBX" + secrets.token_hex(12),
                "amount": str(PRICE),
                "currency": "CNY",
                "status": "paid",
                "return_url": "",
                "sign": secrets.token_hex(32),
            },
        )

    return _burst(n, concurrency, setup, send)


def honest_purchase(base_url: str, slug: str, source: str, on_response=None) -> dict:
    """A buyer with a fresh browser buys one key, pays on the sandbox page and waits on the
    order page until the key shows. Returns the outcome, each step's answer, the times and
    the order page's path."""
    visitor = Visitor(base_url, source, on_response)
    steps = []
    order_path = None
    started = time.perf_counter()

    def step(name: str, response: requests.Response, expected: int) -> requests.Response:
        steps.append(
            {"step": name, "status": response.status_code, "ms": round((time.perf_counter() - started) * 1000, 1)}
        )
        if response.status_code != expected:
            raise _Failed(f"{name}: HTTP {response.status_code}, expected {expected}")
        return response

    try:
        token = visitor.csrf(f"/p/{slug}")
        checkout = step(
            "checkout",
            visitor.post(
                f"/p/{slug}/buy",
                {"csrf_token": token, "quantity": 1, "email": "honest@example.com", "query_password": "honest-1"},
            ),
            303,
        )
        pay_page = step("pay page", visitor.get(checkout.headers["Location"]), 200)
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', pay_page.text))
        action = re.search(r'<form method="post" action="([^"]+)"', pay_page.text).group(1)
        paid = step("notify (pay button)", visitor.post(action, fields), 303)
        order_path = paid.headers["Location"]
        while True:
            status = visitor.get(f"{order_path}/status")
            if status.status_code == HTMX_STOP_POLLING:
                break
            if status.status_code != 200 or time.perf_counter() - started > DELIVERY_TIMEOUT:
                step("status poll", status, HTMX_STOP_POLLING)
            time.sleep(POLL_INTERVAL)
        step("delivered", status, HTMX_STOP_POLLING)
        page = step("order page", visitor.get(order_path), 200)
        keys = re.findall(r'class="card-key"[^>]*>([^<]+)<', page.text)
        outcome = "delivered" if keys else "no key on the order page"
    except _Failed as exc:
        outcome, keys = f"failed at {exc}", []
    except (requests.RequestException, RuntimeError, AttributeError, KeyError) as exc:
        outcome, keys = f"failed: {type(exc).__name__}: {exc}", []
    return {
        "source": source,
        "outcome": outcome,
        "keys": len(keys),
        "seconds": round(time.perf_counter() - started, 3),
        "steps": steps,
        "order": order_path,
    }


class _Failed(Exception):
    pass


# -- the shop, in-process ---------------------------------------------------------------


class Shop:
    """The bench instance's database, read and seeded in-process."""

    def __init__(self):
        from faka import create_app

        self.app = create_app({"JOBS_MODE": "sync", "PAGE_CACHE_SECONDS": 0})

    def seed(self, keys: int) -> str:
        """A merchant with one product of `keys` keys; returns the product's slug."""
        from faka.accounts import users
        from faka.catalog.models import DELIVERY_AUTO, Category
        from faka.catalog.variants import product_with_one_variant
        from faka.extensions import db
        from faka.inventory.keys import import_keys
        from faka.payments.gateways import configure_gateway

        with self.app.app_context():
            configure_gateway("sandbox", {}, enabled=True)  # `init-db` leaves it off; the buyers pay with it
            merchant = users.create_merchant(
                "attack-shop@example.com", secrets.token_hex(12), "Attack Shop", approved=True
            )
            category = Category(name="游戏点卡", name_en="Game cards")
            db.session.add(category)
            db.session.flush()
            product = product_with_one_variant(
                slug="attack-target",
                merchant_id=merchant.id,
                category_id=category.id,
                price=PRICE,
                delivery_type=DELIVERY_AUTO,
                title="Attack target",
                max_per_order=10,
            )
            db.session.add(product)
            db.session.commit()
            report = import_keys(
                product.variants[0], "\n".join(f"ATTACK-{i:05d}-{secrets.token_hex(6)}" for i in range(keys))
            )
            if report.added != keys:
                raise RuntimeError(f"imported {report.added} of {keys} keys")
            return product.slug

    def figures(self) -> dict:
        """What the attacker holds and what the shop wrote so far."""
        from sqlalchemy import func, select

        from faka.extensions import db
        from faka.inventory.models import CardKey
        from faka.orders.models import Order
        from faka.payments.models import NotifyLog
        from faka.risk.models import RiskEvent, RiskHit, SecurityEvent

        def scalar(query) -> int:
            return db.session.scalar(query) or 0

        def rows(model) -> int:
            return scalar(select(func.count()).select_from(model))

        with self.app.app_context():
            keys = dict(db.session.execute(select(CardKey.status, func.count()).group_by(CardKey.status)).all())
            security = dict(
                db.session.execute(select(SecurityEvent.kind, func.count()).group_by(SecurityEvent.kind)).all()
            )
            actions = dict(db.session.execute(select(RiskEvent.action, func.count()).group_by(RiskEvent.action)).all())
            return {
                "attacker_orders": scalar(select(func.count()).select_from(Order).where(Order.client_ip == ATTACKER)),
                "attacker_pending": scalar(
                    select(func.count())
                    .select_from(Order)
                    .where(Order.client_ip == ATTACKER, Order.status == Order.PENDING)
                ),
                "attacker_keys_reserved": scalar(
                    select(func.count())
                    .select_from(CardKey)
                    .join(Order, CardKey.order_id == Order.id)
                    .where(Order.client_ip == ATTACKER, CardKey.status == CardKey.RESERVED)
                ),
                "keys": {status: keys.get(status, 0) for status in ("available", "reserved", "sold")},
                "orders": rows(Order),
                "risk_events": rows(RiskEvent),
                "risk_events_by_action": actions,
                "risk_hits": rows(RiskHit),
                "security_events": rows(SecurityEvent),
                "security_events_by_kind": security,
                "notify_log": rows(NotifyLog),
            }


def _delta(before: dict, after: dict) -> dict:
    return {
        name: after[name] - before[name]
        for name in ("risk_events", "risk_hits", "security_events", "notify_log", "orders")
    }


# -- a scenario -------------------------------------------------------------------------


def scenario(name: str, sizes: dict, workers: int, concurrency: int, keep: bool) -> dict:
    instance = Path(tempfile.mkdtemp(prefix=f"faka-attack-{name}-"))
    logdir = instance / "logs"
    logdir.mkdir()
    env = base_env(instance)
    if name == "engine":
        env.update(NO_LIMITS)
    os.environ["FAKA_INSTANCE_PATH"] = str(instance)  # the in-process app reads it when created
    result: dict = {
        "scenario": name,
        "instance": str(instance),
        "rate_limits": "raised out of reach" if name == "engine" else "production defaults (config.py)",
    }
    server = None
    finished = False
    try:
        log(f"[{name}] instance {instance}")
        flask_cli(env, "init-db")
        shop = Shop()
        slug = shop.seed(KEYS)
        port = free_port()
        server = Service(
            f"gunicorn-{name}",
            [
                str(BIN / "gunicorn"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "faka:create_app()",
            ],
            env,
            logdir,
        )
        wait_ready(server, port, "/healthz")
        base_url = f"http://127.0.0.1:{port}"

        log(f"[{name}] honest buyer before the attack ({HONEST_BEFORE}) ...")
        result["honest_before"] = honest_purchase(base_url, slug, HONEST_BEFORE)
        phases = []
        for phase, run in (
            ("reservations", lambda: reservation_burst(base_url, slug, sizes["reservations"], concurrency=concurrency)),
            ("lookups", lambda: lookup_guesses(base_url, sizes["lookups"], concurrency=concurrency)),
            ("forged notifies", lambda: forged_notifies(base_url, sizes["notifies"], concurrency=concurrency)),
        ):
            log(f"[{name}] {phase} ...")
            before = shop.figures()
            tally = run()
            after = shop.figures()
            phases.append({"phase": phase, **tally, "after": after, "written": _delta(before, after)})
            log(f"    {tally['statuses']} in {tally['seconds']} s")
        result["phases"] = phases
        log(f"[{name}] honest buyer after the attack ({HONEST_AFTER}) ...")
        result["honest_after"] = honest_purchase(base_url, slug, HONEST_AFTER)
        log(f"    {result['honest_after']['outcome']} in {result['honest_after']['seconds']} s")
        result["final"] = shop.figures()
        finished = True
    finally:
        if server is not None:
            server.stop()
        if finished and not keep:
            shutil.rmtree(instance, ignore_errors=True)
    return result


def findings_scenario(quick: bool, workers: int, keep: bool) -> dict:
    """Issue 17's fixed findings (bench/findings.py), each attacked on a fresh `init-db`
    instance served with the production settings."""
    from bench import findings

    instance = Path(tempfile.mkdtemp(prefix="faka-attack-findings-"))
    logdir = instance / "logs"
    logdir.mkdir()
    env = base_env(instance)
    os.environ["FAKA_INSTANCE_PATH"] = str(instance)
    result: dict = {"scenario": "findings", "instance": str(instance), "rate_limits": "production defaults (config.py)"}
    server = None
    finished = False
    mail = findings.MailSink(free_port())  # the emails go somewhere real: a subject must survive SMTP
    env.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=str(mail.port))
    try:
        log(f"[findings] instance {instance}")
        flask_cli(env, "init-db")
        shop = Shop()
        with shop.app.app_context():
            from faka.payments.gateways import gateway_settings

            row, _settings = gateway_settings("sandbox")
            sandbox_on = bool(row is not None and row.enabled)  # as `init-db` left it
        port = free_port()
        server = Service(
            "gunicorn-findings",
            [
                str(BIN / "gunicorn"),
                "-w",
                str(workers),
                "-b",
                f"127.0.0.1:{port}",
                "--log-level",
                "warning",
                "faka:create_app()",
            ],
            env,
            logdir,
        )
        wait_ready(server, port, "/healthz")
        target = findings.Target(
            f"http://127.0.0.1:{port}",
            shop.app,
            findings.SMALL if quick else findings.FULL,
            lambda: sandbox_on,
            mailbox=mail.messages,
            settle_seconds=SERVER_CACHE_SECONDS + 0.2,
        )
        result["findings"] = findings.run(target, log)
        result["emails_sent"] = len(mail.messages)
        finished = True
    finally:
        if server is not None:
            server.stop()
        mail.stop()
        if finished and not keep:
            shutil.rmtree(instance, ignore_errors=True)
    return result


# -- report -----------------------------------------------------------------------------


def _statuses(phase: dict, code: str) -> str:
    value = phase["statuses"].get(code, 0)
    if code == "400" and phase["captcha"]:
        return f"{value} ({phase['captcha']})"
    return str(value)


def _honest(label: str, run: dict) -> str:
    steps = ", ".join(f"{s['step']} {s['status']} @{s['ms']:.0f} ms" for s in run["steps"])
    return (
        f"  honest buyer {label} ({run['source']}): {run['outcome']}, {run['keys']} key(s) in "
        f"{run['seconds'] * 1000:.0f} ms  [{steps}]"
    )


def report(results: dict) -> str:
    meta = results["meta"]
    lines = [
        f"faka attack run ({'quick' if meta['quick'] else 'full'}) {meta['started']}  {meta['cpus']} CPUs, "
        f"gunicorn -w {meta['workers']} (sync), SQLite, {KEYS} keys, the bot on {CONCURRENCY} connections "
        f"from {ATTACKER}"
    ]
    for run in results["scenarios"]:
        took = f" ({run['seconds']} s)" if "seconds" in run else ""
        lines += ["", f"Scenario `{run['scenario']}`{took}: rate limits {run['rate_limits']}"]
        if run.get("error"):
            lines.append(f"  ERROR: {run['error']}")
        if not run.get("phases"):
            continue
        lines.append(
            f"  {'phase':<16}{'requests':>9}{'303':>6}{'200':>6}{'400 (captcha)':>15}{'403':>6}{'429':>6}"
            f"{'other':>7}{'s':>7}{'req/s':>7}  {'bot orders':>10}{'keys left':>10}"
            f"{'+risk ev.':>10}{'+sec. ev.':>10}{'+notify log':>12}"
        )
        for phase in run["phases"]:
            other = sum(v for k, v in phase["statuses"].items() if k not in ("200", "303", "400", "403", "429"))
            other += phase["errors"]
            after, written = phase["after"], phase["written"]
            lines.append(
                f"  {phase['phase']:<16}{phase['requests']:>9}{_statuses(phase, '303'):>6}{_statuses(phase, '200'):>6}"
                f"{_statuses(phase, '400'):>15}{_statuses(phase, '403'):>6}{_statuses(phase, '429'):>6}{other:>7}"
                f"{phase['seconds']:>7.1f}{phase['requests_per_second']:>7.0f}  {after['attacker_orders']:>10}"
                f"{after['keys']['available']:>10}{written['risk_events']:>10}{written['security_events']:>10}"
                f"{written['notify_log']:>12}"
            )
        final = run["final"]
        lines.append(
            f"  the bot holds {final['attacker_pending']} unpaid order(s) reserving "
            f"{final['attacker_keys_reserved']} key(s); keys available {final['keys']['available']} of {KEYS}; "
            f"risk events by action {final['risk_events_by_action']}; security events by kind "
            f"{final['security_events_by_kind']}"
        )
        lines.append(_honest("before", run["honest_before"]))
        lines.append(_honest("after", run["honest_after"]))
    if any(run.get("phases") for run in results["scenarios"]):
        lines += [
            "",
            "400 (captcha): answers 400, of which (n) asked for the captcha; bot orders: orders placed "
            f"from {ATTACKER} so far; +risk ev./+sec. ev./+notify log: rows each phase wrote",
        ]
    for run in results["scenarios"]:
        if run.get("findings"):
            from bench.findings import table

            lines += [
                "",
                "Issue 17's findings (scenario `findings`: a fresh `init-db` instance, production limits):",
                "",
                table(run["findings"]),
            ]
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------


def _on_signal(signum, _frame):
    raise SystemExit(128 + signum)  # so the servers are stopped on the way out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="a fifth of the requests")
    parser.add_argument(
        "--scenario",
        choices=("all", "both", "limits", "engine", "findings"),
        default="all",
        help="all: the bot (limits, engine) and the findings; both: limits and engine",
    )
    parser.add_argument("--workers", type=int, default=WORKERS, help="gunicorn workers")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "attack.json", help="JSON results")
    parser.add_argument("--keep", action="store_true", help="keep the temp instances and server logs")
    args = parser.parse_args()

    for key in STRIP_ENV + tuple(NO_LIMITS):
        os.environ.pop(key, None)
    signal.signal(signal.SIGTERM, _on_signal)

    sizes = QUICK if args.quick else FULL
    names = {"all": ("limits", "engine", "findings"), "both": ("limits", "engine")}.get(args.scenario, (args.scenario,))
    results: dict = {
        "meta": {
            "started": datetime.now(UTC).isoformat(timespec="seconds"),
            "quick": args.quick,
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "workers": args.workers,
            "concurrency": CONCURRENCY,
            "database": "sqlite",
            "keys": KEYS,
            "sizes": sizes,
        },
        "scenarios": [],
    }
    failed = False
    started = time.perf_counter()
    for name in names:
        scenario_started = time.perf_counter()
        try:
            if name == "findings":
                results["scenarios"].append(findings_scenario(args.quick, args.workers, args.keep))
            else:
                results["scenarios"].append(scenario(name, sizes, args.workers, CONCURRENCY, args.keep))
            results["scenarios"][-1]["seconds"] = round(time.perf_counter() - scenario_started, 1)
        except (Exception, KeyboardInterrupt, SystemExit) as exc:
            failed = True
            results["scenarios"].append({"scenario": name, "error": f"{type(exc).__name__}: {exc}", "rate_limits": "-"})
            log(f"[{name}] failed: {type(exc).__name__}: {exc}")
            for service in Service.running:
                log(f"--- {service.name} log ({service.log_path}) ---\n{service.tail()}")
            Service.stop_all()
    results["meta"]["seconds"] = round(time.perf_counter() - started, 1)
    honest = [run[key] for run in results["scenarios"] for key in ("honest_before", "honest_after") if key in run]
    results["meta"]["honest_buyers_delivered"] = sum(run["outcome"] == "delivered" for run in honest)
    results["meta"]["honest_buyer_median_ms"] = (
        round(statistics.median(run["seconds"] for run in honest) * 1000, 1) if honest else None
    )

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(report(results))
    print(f"\n{results['meta']['seconds']} s in all; results: {args.out}")
    failed = failed or any(run["outcome"] != "delivered" for run in honest)
    findings_rows = [row for run in results["scenarios"] for row in run.get("findings", {}).get("rows", ())]
    failed = failed or any(not row["ok"] for row in findings_rows)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
