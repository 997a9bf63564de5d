"""Benchmark faka on this machine: page throughput against a bare Flask baseline,
notify -> delivered latency (jobs in-process and via RQ), and SQL statements per page.

    .venv/bin/python bench/run.py [--quick] [--out FILE] [--keep]

Everything runs on an isolated instance (a temp dir as FAKA_INSTANCE_PATH, SQLite) and
only on 127.0.0.1. Needs `wrk` on PATH (apt-get install -y wrk); the RQ measurement needs
a Redis on 127.0.0.1:6379 (db 14 is flushed) and is skipped when there is none.
Exits 0 even when a target is missed (the table says MISSED); non-zero only when the
benchmark itself could not run. See bench/README.md.
"""
import argparse
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
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlencode

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
BIN = ROOT / ".venv" / "bin"
if not (BIN / "gunicorn").exists():  # e.g. run with another venv's python
    BIN = Path(sys.executable).parent

RQ_REDIS_URL = "redis://127.0.0.1:6379/14"
RQ_QUEUE = "bench"
WORKERS = 4
THREADS, CONNECTIONS = 2, 16
TARGETS = {"status": 0.6, "status_pending": 0.6, "product": 0.35, "home": 0.3}
STOCK_KEYS = 1000  # extra keys for the latency orders
EXTRA_PRODUCTS = 30
POLL_INTERVAL = 0.005
DELIVERY_TIMEOUT = 30.0
HTMX_STOP_POLLING = 286

# Environment the app reads that must not leak into the isolated instance.
STRIP_ENV = (
    "FAKA_JOBS_MODE", "REDIS_URL", "FAKA_RQ_QUEUE", "DATABASE_URL", "SECRET_KEY",
    "FAKA_ENCRYPTION_KEYS", "FAKA_BASE_URL", "FAKA_SEED_DEMO", "FAKA_PROXY_COUNT",
    "MAIL_SERVER", "MAIL_PORT", "MAIL_USERNAME", "MAIL_PASSWORD", "MAIL_USE_TLS", "MAIL_USE_SSL",
    "FAKA_ORDER_TTL_MINUTES", "FAKA_RECONCILE_INTERVAL", "FAKA_RATELIMIT_CHECKOUT", "FAKA_RATELIMIT_LOOKUP",
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
            argv, cwd=ROOT, env=env, stdout=self._log, stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL, start_new_session=True,
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


def http_request(port: int, method: str, path: str, body: bytes | None = None, headers: dict | None = None,
         timeout: float = 10) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        response = conn.getresponse()
        return response.status, response.read().decode("utf-8", "replace")
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
        str(BIN / "gunicorn"), "-w", str(WORKERS), "-b", f"127.0.0.1:{port}",
        "--log-level", "warning", *extra, app_spec,
    ]
    return Service(name, argv, env, logdir), port


def group_cpu_seconds(pgid: int) -> float:
    """User + system CPU time of the live processes in a process group (a gunicorn master
    and its workers): how much work the server did, whatever else the machine was doing."""
    ticks = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        if int(fields[2]) == pgid:  # fields[0] is the state; pgrp is the 5th field of stat
            ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


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
    return {
        "rps": rps,
        "requests": find(r"(\d+) requests in", int),
        "latency_ms": {"p50": percentiles.get("50"), "p75": percentiles.get("75"),
                       "p90": percentiles.get("90"), "p99": percentiles.get("99")},
        "non_2xx_3xx": find(r"Non-2xx or 3xx responses:\s*(\d+)", int, 0),
        "socket_errors": dict(zip(("connect", "read", "write", "timeout"), map(int, errors.groups()))) if errors else None,
    }


def wrk(port: int, path: str, seconds: int) -> dict:
    argv = ["wrk", f"-t{THREADS}", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", f"http://127.0.0.1:{port}{path}"]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=seconds + 60)
    if done.returncode != 0:
        raise RuntimeError(f"wrk failed ({done.returncode}): {done.stderr or done.stdout}")
    result = parse_wrk(done.stdout)
    result["duration_s"] = seconds
    return result


# -- the isolated instance --------------------------------------------------------------

def base_env(instance: Path) -> dict:
    env = {k: v for k, v in os.environ.items() if k not in STRIP_ENV}
    env["FAKA_INSTANCE_PATH"] = str(instance)
    env["PYTHONUNBUFFERED"] = "1"
    return env


def flask_cli(env: dict, *args: str) -> str:
    done = subprocess.run([str(BIN / "flask"), "--app", "faka", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise RuntimeError(f"flask {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}")
    return done.stdout


class Shop:
    """The app in-process, on the bench instance, for placing and paying orders."""

    def __init__(self):
        from faka import create_app

        self.app = create_app({"JOBS_MODE": "sync", "PAGE_CACHE_SECONDS": 0, "STATUS_CACHE_SECONDS": 0})  # real work, not cache hits

    def auto_products(self) -> list[dict]:
        from sqlalchemy import func, select

        from faka.extensions import db
        from faka.models import CardKey, Product

        with self.app.app_context():
            rows = db.session.execute(
                select(Product.id, Product.slug, func.count(CardKey.id))
                .outerjoin(CardKey, (CardKey.product_id == Product.id) & (CardKey.status == CardKey.AVAILABLE))
                .where(Product.delivery_type == "auto")
                .group_by(Product.id, Product.slug)
                .order_by(func.count(CardKey.id).desc())
            ).all()
        return [{"id": r[0], "slug": r[1], "stock": r[2]} for r in rows]

    def add_keys(self, product_id: int, count: int) -> int:
        from faka.services.keys import import_keys

        with self.app.app_context():
            keys = "\n".join(f"BENCH-{secrets.token_hex(10).upper()}" for _ in range(count))
            return import_keys(product_id, keys).added

    def place_order(self, slug: str) -> dict:
        from faka.services import checkout

        with self.app.test_request_context():
            order = checkout.place_order(slug, 1, "bench@example.com", "benchpass")
            return {"id": order.id, "number": order.number, "token": order.token,
                    "total": order.total, "currency": order.currency}

    def notify_fields(self, order: dict) -> dict[str, str]:
        """The sandbox's signed notify form for this order (return_url empty: plain "success")."""
        from faka.payments import get_gateway
        from faka.payments.base import OrderRef

        with self.app.test_request_context():
            start = get_gateway("sandbox").create_payment(OrderRef(
                number=order["number"], token=order["token"], total=order["total"], currency=order["currency"],
                subject="x", notify_url="http://127.0.0.1/pay/sandbox/notify", return_url="",
            ))
            return dict(start.form_fields)

    def pay_in_process(self, order: dict) -> None:
        from faka.services import payments

        fields = self.notify_fields(order)
        with self.app.test_request_context():
            payments.handle_notify("sandbox", fields, {}, b"")

    def order_status(self, order_id: int) -> str:
        from faka.extensions import db
        from faka.models import Order

        with self.app.app_context():
            return db.session.get(Order, order_id).status


# -- 4. throughput ----------------------------------------------------------------------

def throughput(bare: Service, bare_port: int, faka: Service, faka_port: int, pages: dict[str, str],
               seconds: int, warmup: int) -> dict:
    """Interleaved: bare, home, product, status (final and pending), bare; baseline = mean of
    the two bares.

    Besides wrk's numbers, the server's own CPU time per request (from /proc, over the
    gunicorn process group) is recorded: it does not depend on what else the machine runs.
    """
    targets = [("bare", bare, bare_port, "/bare")] + [(name, faka, faka_port, path) for name, path in pages.items()]
    log(f"warm-up ({warmup}s each) ...")
    for _name, _service, port, path in targets:
        wrk(port, path, warmup)
    runs = []
    for label, (name, service, port, path) in zip(
        ("bare#1", "home", "product", "status", "status_pending", "bare#2"), targets + [targets[0]]
    ):
        log(f"wrk {label:8} {path} ({seconds}s) ...")
        cpu_before = group_cpu_seconds(service.proc.pid)
        result = wrk(port, path, seconds)
        cpu = group_cpu_seconds(service.proc.pid) - cpu_before
        result.update(label=label, page=name, path=path,
                      server_cpu_ms_per_request=cpu * 1000 / result["requests"] if result["requests"] else None)
        log(f"    {result['rps']:.0f} req/s, p99 {result['latency_ms']['p99']:.1f} ms, "
            f"server CPU {_f(result['server_cpu_ms_per_request'], '{:.2f}')} ms/request")
        runs.append(result)
    bare_runs = [r for r in runs if r["page"] == "bare"]
    baseline = statistics.mean(r["rps"] for r in bare_runs)
    cpu_values = [r["server_cpu_ms_per_request"] for r in bare_runs if r["server_cpu_ms_per_request"]]
    bare_cpu = statistics.mean(cpu_values) if cpu_values else None
    pages_out = {}
    for r in runs:
        if r["page"] == "bare":
            continue
        ratio = r["rps"] / baseline if baseline else 0.0
        target = TARGETS.get(r["page"])
        pages_out[r["page"]] = {
            "path": r["path"], "rps": r["rps"], "p99_ms": r["latency_ms"]["p99"], "ratio": round(ratio, 3),
            "target": target, "met": ratio >= target if target is not None else None,
            "non_2xx_3xx": r["non_2xx_3xx"], "requests": r["requests"],
            "server_cpu_ms_per_request": r["server_cpu_ms_per_request"],
            # the same ratio from server CPU per request: bare's cost / the page's cost
            "cpu_ratio": round(bare_cpu / r["server_cpu_ms_per_request"], 3)
            if bare_cpu and r["server_cpu_ms_per_request"] else None,
        }
    return {
        "wrk": {"threads": THREADS, "connections": CONNECTIONS, "duration_s": seconds, "warmup_s": warmup},
        "baseline_rps": baseline,
        "baseline_server_cpu_ms_per_request": bare_cpu,
        "bare_runs": [{"rps": r["rps"], "p99_ms": r["latency_ms"]["p99"],
                       "server_cpu_ms_per_request": r["server_cpu_ms_per_request"]} for r in bare_runs],
        "pages": pages_out,
        "runs": runs,
    }


# -- 5. notify -> delivered -------------------------------------------------------------

def percentile(values: list[float], p: float) -> float | None:
    """Nearest-rank percentile."""
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(0, math.ceil(p / 100 * len(ordered)) - 1)]


def delivery_latency(shop: Shop, port: int, slug: str, n: int, mode: str) -> dict:
    log(f"{mode}: placing {n} orders in-process ...")
    orders = [shop.place_order(slug) for _ in range(n)]
    forms = [shop.notify_fields(o) for o in orders]
    headers = {"Content-Type": "application/x-www-form-urlencoded"}
    latencies, notify_times, polls_needed, failures = [], [], [], []
    log(f"{mode}: notify -> delivered for {n} orders ...")
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
                state = "final without keys" if status == HTMX_STOP_POLLING else f"not delivered after {DELIVERY_TIMEOUT}s"
                failures.append({"order": order["number"], "error": f"{state} (last HTTP {status})"})
                break
            time.sleep(POLL_INTERVAL)
    result = {
        "mode": mode, "orders": n, "delivered": len(latencies), "failures": failures[:10], "failed": len(failures),
        "median_ms": statistics.median(latencies) if latencies else None,
        "p99_ms": percentile(latencies, 99), "max_ms": max(latencies) if latencies else None,
        "min_ms": min(latencies) if latencies else None,
        "notify_response_median_ms": statistics.median(notify_times) if notify_times else None,
        "notify_response_p99_ms": percentile(notify_times, 99),
        "polls_median": statistics.median(polls_needed) if polls_needed else None,
    }
    if latencies:
        log(f"    median {result['median_ms']:.1f} ms, p99 {result['p99_ms']:.1f} ms, {len(failures)} failed")
    else:
        log(f"    nothing delivered; failures: {failures[:3]}")
    return result


def redis_client():
    try:
        from redis import Redis

        client = Redis.from_url(RQ_REDIS_URL, socket_connect_timeout=2)
        client.ping()
        return client
    except Exception as exc:  # noqa: BLE001 - any failure means "no Redis here"
        log(f"no Redis at {RQ_REDIS_URL} ({type(exc).__name__}: {exc}); skipping the RQ measurement")
        return None


def start_rq_worker(env: dict, logdir: Path) -> tuple[Service, str]:
    """Start `python worker.py` and wait until it has registered with Redis."""
    worker = Service("rq-worker", [str(BIN / "python"), "worker.py"], env, logdir)
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


# -- 6. SQL statements per page ---------------------------------------------------------

def count_queries(shop: Shop, paths: dict[str, str]) -> dict[str, dict]:
    from sqlalchemy import event

    from faka.extensions import db

    app = shop.app
    statements: list[str] = []

    def on_execute(conn, cursor, statement, parameters, context, executemany):
        statements.append(statement)

    with app.app_context():
        engine = db.engine
    event.listen(engine, "before_cursor_execute", on_execute)
    try:
        out = {}
        for name, path in paths.items():
            client = app.test_client()
            client.get(path)  # warm: first-request set-up is not the page's cost
            statements.clear()
            response = client.get(path)
            queries = [s for s in statements if s.strip().upper() not in ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")]
            out[name] = {
                "path": path, "http_status": response.status_code, "statements": len(statements),
                "queries": len(queries), "sql": [" ".join(s.split())[:300] for s in statements],
            }
        return out
    finally:
        event.remove(engine, "before_cursor_execute", on_execute)


def add_products(shop: Shop, count: int) -> None:
    from sqlalchemy import select

    from faka.extensions import db
    from faka.models import Product
    from faka.services.keys import import_keys

    with shop.app.app_context():
        template = db.session.execute(
            select(Product).where(Product.delivery_type == "auto").order_by(Product.id)
        ).scalars().first()
        new_ids = []
        for i in range(count):
            p = Product(
                slug=secrets.token_hex(8), merchant_id=template.merchant_id, category_id=template.category_id,
                title=f"Bench product {i + 1}", description_md=template.description_md, price=template.price + i,
                min_per_order=template.min_per_order, max_per_order=template.max_per_order, delivery_type="auto",
                refund_policy=template.refund_policy, position=100 + i,
            )
            db.session.add(p)
            db.session.flush()
            new_ids.append(p.id)
        db.session.commit()
        for pid in new_ids:
            import_keys(pid, "\n".join(f"XTRA-{secrets.token_hex(8).upper()}" for _ in range(3)))


# -- report -----------------------------------------------------------------------------

def _f(value, fmt="{:.1f}", none="-") -> str:
    return none if value is None else fmt.format(value)


def report(results: dict) -> str:
    lines = []
    meta = results["meta"]
    lines.append(f"faka bench ({'quick' if meta['quick'] else 'full'}) {meta['started']}  "
                 f"{meta['cpus']} CPUs, load avg before {meta['loadavg_before']}"
                 + (f", after {meta['loadavg_after']}" if meta.get("loadavg_after") else ""))
    t = results.get("throughput")
    if t:
        w = t["wrk"]
        lines.append("")
        lines.append(f"Throughput: gunicorn -w {WORKERS} (sync), SQLite; wrk -t{w['threads']} -c{w['connections']} "
                     f"-d{w['duration_s']}s after a {w['warmup_s']}s warm-up per URL")
        lines.append(f"  {'run':<9}{'path':<46}{'req/s':>9}{'p99 ms':>9}{'non-2xx/3xx':>13}{'CPU ms/req':>12}"
                     f"{'cpu ratio':>11}{'ratio':>8}  target")
        for r in t["runs"]:
            page = t["pages"].get(r["page"])
            path = r["path"] if len(r["path"]) <= 44 else r["path"][:41] + "..."
            ratio = target = cpu_ratio = ""
            if page:
                cpu_ratio = _f(page["cpu_ratio"], "{:.2f}", "")
                ratio = f"{page['ratio']:.2f}"
                target = f">= {page['target']:.2f} " + ("ok" if page["met"] else "MISSED")
            non2xx = f"{r['non_2xx_3xx']}" + (" (286)" if r["page"] == "status" and r["non_2xx_3xx"] else "")
            lines.append(f"  {r['label']:<9}{path:<46}{r['rps']:>9.0f}{r['latency_ms']['p99']:>9.1f}"
                         f"{non2xx:>13}{_f(r['server_cpu_ms_per_request'], '{:.2f}'):>12}{cpu_ratio:>11}"
                         f"{ratio:>8}  {target}")
        lines.append(f"  baseline (mean of the two bare runs): {t['baseline_rps']:.0f} req/s")
        lines.append("  ratio = req/s / baseline req/s (the target applies to it); CPU ms/req = the gunicorn "
                     "processes' CPU time per request, cpu ratio = bare's / the page's (less sensitive to a busy machine)")
        lines.append("  (the status poll answers 286 = final; wrk counts only >= 400 as non-2xx/3xx, so 0 there is expected)")
    d = results.get("delivery")
    if d:
        lines.append("")
        lines.append("notify -> delivered (time from sending the notify to the first status poll showing the key; "
                     f"polled every {POLL_INTERVAL * 1000:.0f} ms)")
        lines.append(f"  {'mode':<24}{'orders':>7}{'median ms':>11}{'p99 ms':>9}{'max ms':>9}"
                     f"{'notify resp. ms':>17}{'failed':>8}")
        for key, label in (("thread", "in-process (thread)"), ("rq", "RQ (worker.py)")):
            r = d.get(key)
            if r is None:
                continue
            if r.get("skipped"):
                lines.append(f"  {label:<24}skipped: {r['skipped']}")
                continue
            lines.append(f"  {label:<24}{r['orders']:>7}{_f(r['median_ms']):>11}{_f(r['p99_ms']):>9}"
                         f"{_f(r['max_ms']):>9}{_f(r['notify_response_median_ms']):>17}{r['failed']:>8}")
            for failure in r["failures"][:3]:
                lines.append(f"      failed: {failure}")
        if d.get("rq_worker") and d["rq_worker"] != "worker.py":
            lines.append(f"  RQ worker: {d['rq_worker']}")
    q = results.get("queries")
    if q:
        lines.append("")
        lines.append(f"SQL statements per request ({q['products_before']} -> {q['products_after']} products; "
                     "BEGIN/COMMIT included, queries in brackets)")
        lines.append(f"  {'page':<10}{'before':>12}{'after':>12}  constant")
        for name, row in q["pages"].items():
            before, after = row["before"], row["after"]
            lines.append(f"  {name:<10}{before['statements']:>6} [{before['queries']:>2}]{after['statements']:>7} [{after['queries']:>2}]"
                         f"  {'yes' if row['constant'] else 'NO (grows with products: MISSED)'}")
    missed = results.get("missed") or []
    lines.append("")
    if results.get("error"):
        lines.append(f"ERROR: the benchmark did not finish: {results['error']}")
    lines.append("MISSED: " + ", ".join(missed) if missed else "all targets met")
    return "\n".join(lines)


# -- main -------------------------------------------------------------------------------

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="short runs (3s per URL, 30 orders)")
    parser.add_argument("--out", type=Path, default=BENCH / "results" / "latest.json", help="JSON results file")
    parser.add_argument("--keep", action="store_true", help="keep the temp instance and server logs")
    args = parser.parse_args()

    if shutil.which("wrk") is None:
        log("wrk is not installed: apt-get install -y wrk")
        return 2
    seconds, warmup, n_orders = (3, 1, 30) if args.quick else (10, 2, 200)

    instance = Path(tempfile.mkdtemp(prefix="faka-bench-"))
    logdir = instance / "logs"
    logdir.mkdir()
    env = base_env(instance)
    # The in-process app reads the same environment (config.py reads it at import).
    for key in STRIP_ENV:
        os.environ.pop(key, None)
    os.environ["FAKA_INSTANCE_PATH"] = str(instance)
    sys.path.insert(0, str(ROOT))

    def on_signal(signum, _frame):
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)

    results: dict = {"meta": {
        "started": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "quick": args.quick, "cpus": os.cpu_count(), "loadavg_before": [round(x, 2) for x in os.getloadavg()],
        "python": platform.python_version(), "gunicorn_workers": WORKERS, "database": "sqlite",
        "instance": str(instance),
    }}
    failed = False
    redis = None
    try:
        # 1. the isolated instance and one delivered order to poll
        log(f"instance {instance}")
        flask_cli(env, "init-db")
        flask_cli(env, "seed-demo")
        shop = Shop()
        products = shop.auto_products()
        stocked = [p for p in products if p["stock"] > 0]
        if not stocked:
            raise RuntimeError(f"seed-demo left no auto product with stock: {products}")
        page_product = stocked[0]
        polled = shop.place_order(page_product["slug"])
        shop.pay_in_process(polled)
        status = shop.order_status(polled["id"])
        if status != "delivered":
            raise RuntimeError(f"the order to poll is {status!r}, not 'delivered'")
        latency_product = stocked[0]
        added = shop.add_keys(latency_product["id"], STOCK_KEYS)
        log(f"products: {products}; +{added} keys for {latency_product['slug']}")
        pending = shop.place_order(page_product["slug"])  # a buyer still waiting to pay
        pages = {"home": "/", "product": f"/p/{page_product['slug']}", "status": f"/order/{polled['token']}/status",
                 "status_pending": f"/order/{pending['token']}/status"}
        results["meta"]["pages"] = pages

        # 2.-4. baseline and faka under the same gunicorn, then the throughput runs
        bare, bare_port = gunicorn("bare", "bare:app", env, logdir, ["--pythonpath", str(BENCH)])
        faka, faka_port = gunicorn("faka-thread", "faka:create_app()", env, logdir)
        wait_ready(bare, bare_port, "/bare")
        wait_ready(faka, faka_port, "/healthz")
        expected = {"home": 200, "product": 200, "status": HTMX_STOP_POLLING, "status_pending": 200}
        for name, path in pages.items():
            code, body = http_request(faka_port, "GET", path)
            if code != expected[name] or (name == "status" and "card-key" not in body):
                raise RuntimeError(f"GET {path} answered {code} (expected {expected[name]}):\n{body[:500]}")
        results["throughput"] = throughput(bare, bare_port, faka, faka_port, pages, seconds, warmup)
        bare.stop()

        # 5a. notify -> delivered, jobs in a thread of the web worker
        delivery: dict = {}
        results["delivery"] = delivery
        delivery["thread"] = delivery_latency(shop, faka_port, latency_product["slug"], n_orders, "thread")
        faka.stop()  # its reconciler would otherwise deliver the RQ run's orders too

        # 5b. the same with Redis + worker.py
        redis = redis_client()
        if redis is None:
            delivery["rq"] = {"skipped": f"no Redis at {RQ_REDIS_URL}"}
        else:
            redis.flushdb()
            rq_env = dict(env, REDIS_URL=RQ_REDIS_URL, FAKA_RQ_QUEUE=RQ_QUEUE)
            faka_rq, rq_port = gunicorn("faka-rq", "faka:create_app()", rq_env, logdir)
            worker, delivery["rq_worker"] = start_rq_worker(rq_env, logdir)
            wait_ready(faka_rq, rq_port, "/healthz")  # 200 only once the worker has registered
            delivery["rq"] = delivery_latency(shop, rq_port, latency_product["slug"], n_orders, "rq")
            faka_rq.stop()
            worker.stop()

        # 6. SQL statements per page, before and after 30 more products
        from faka.models import Product  # noqa: E402 - after the environment is set

        def product_count() -> int:
            from faka.extensions import db

            with shop.app.app_context():
                return db.session.query(Product).count()

        before_n = product_count()
        before = count_queries(shop, pages)
        add_products(shop, EXTRA_PRODUCTS)
        after_n = product_count()
        after = count_queries(shop, pages)
        results["queries"] = {
            "products_before": before_n, "products_after": after_n,
            "pages": {name: {"before": before[name], "after": after[name],
                             "constant": before[name]["statements"] == after[name]["statements"]} for name in pages},
        }
    except (Exception, KeyboardInterrupt, SystemExit) as exc:
        failed = True
        results["error"] = f"{type(exc).__name__}: {exc}"
        log(f"benchmark failed: {results['error']}")
        for service in Service.running:
            log(f"--- {service.name} log ({service.log_path}) ---\n{service.tail()}")
    finally:
        Service.stop_all()
        if redis is not None:
            try:
                redis.flushdb()
            except Exception:  # noqa: BLE001
                pass

    missed = []
    for name, page in (results.get("throughput") or {}).get("pages", {}).items():
        if page["met"] is False:
            missed.append(f"{name} ratio {page['ratio']:.2f} < {page['target']}")
    for name, row in (results.get("queries") or {}).get("pages", {}).items():
        if not row["constant"]:
            missed.append(f"{name} SQL count not constant ({row['before']['statements']} -> {row['after']['statements']})")
    results["missed"] = missed
    results["meta"]["loadavg_after"] = [round(x, 2) for x in os.getloadavg()]

    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, ensure_ascii=False) + "\n")
    print(report(results))
    print(f"\nresults: {args.out}")
    if args.keep or failed:
        print(f"instance and logs kept in {instance}")
    else:
        shutil.rmtree(instance, ignore_errors=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
