"""Lighthouse's mobile accessibility score of the buyer's pages; fails under 98.

`make a11y` runs this. It builds a throw-away shop (a temporary instance folder with SQLite,
`flask init-db` and `flask seed-demo`, then, through the services, a delivered order and a
complaint about it), serves it on a free port of 127.0.0.1 and runs Lighthouse's accessibility
category, as on a phone, on five pages in the default language (zh_CN): home, a product, the
delivered order with its keys, the order lookup and the complaint. It prints each page's score
and the audits that failed, with the elements they failed on, and exits 1 if a score is under
98. tests/slow/test_accessibility.py checks the same pages with axe-core; this is the figure that
Lighthouse (which runs axe-core too, with its own weights) gives them.

Lighthouse is pinned, every package by its integrity hash, in scripts/lighthouse/package-lock.json;
`npm ci` installs it into .tools/lighthouse/ (git-ignored) the first time and whenever the pins
change, the one time the npm registry is used. Needs Node, npm and Debian's chromium.
"""

import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ROOT = Path(__file__).resolve().parent.parent
PINS = ROOT / "scripts" / "lighthouse"
TOOLS = ROOT / ".tools" / "lighthouse"
LIGHTHOUSE = TOOLS / "node_modules" / "lighthouse" / "cli" / "index.js"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
MINIMUM = 98
SHOWN_ELEMENTS = 5  # per failed audit: enough to find the template


def same_file(a: Path, b: Path) -> bool:
    return a.exists() and a.read_bytes() == b.read_bytes()


def install_lighthouse() -> None:
    """Install the pinned Lighthouse unless the installed copy was made from these pins."""
    pins = ("package.json", "package-lock.json")
    if LIGHTHOUSE.exists() and all(same_file(TOOLS / name, PINS / name) for name in pins):
        return
    TOOLS.mkdir(parents=True, exist_ok=True)
    for name in pins:
        shutil.copyfile(PINS / name, TOOLS / name)
    print(f"installing Lighthouse into {TOOLS.relative_to(ROOT)}/ (npm ci)")
    subprocess.run(["npm", "ci", "--prefix", str(TOOLS), "--no-audit", "--no-fund", "--loglevel=error"], check=True)


def build_instance(folder: Path) -> None:
    """The shop's environment in os.environ, its database created and the demo seeded by the CLI."""
    for key in ("DATABASE_URL", "REDIS_URL", "MAIL_SERVER", "FAKA_ENCRYPTION_KEYS", "SECRET_KEY", "FAKA_BASE_URL"):
        os.environ.pop(key, None)  # nothing of another instance: keys and secret are generated in the folder
    # Jobs inline: the order is delivered by the time its payment's request returns.
    os.environ.update(
        FAKA_INSTANCE_PATH=str(folder), FAKA_JOBS_MODE="sync", FAKA_RECONCILE_INTERVAL="0", PYTHONPATH=str(ROOT)
    )
    for command in ("init-db", "seed-demo"):
        # seed-demo prints the demo's passwords: nothing the log needs.
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "faka", command], cwd=ROOT, check=True, stdout=subprocess.DEVNULL
        )


def add_order_and_complaint(app) -> tuple[dict[str, str], str]:
    """A delivered order of two keys and the buyer's complaint about it, answered by the
    merchant, made as buyer and merchant make them. Returns each page's path, and the
    order's token."""
    from sqlalchemy import select

    from faka.catalog.models import Product
    from faka.complaints import workflow
    from faka.complaints.models import Complaint
    from faka.extensions import db
    from faka.orders import checkout
    from faka.orders.models import Order
    from faka.payments import notify

    product = db.session.scalars(
        select(Product).where(Product.delivery_type == "auto").order_by(Product.position)
    ).first()
    with app.test_request_context():
        order = checkout.place_order(product.slug, 2, "li.ming@example.com", "demo-1234")
        payment = notify.start_payment(order)
    # What the sandbox's pay page posts: a signed notification.
    app.test_client().post(urlsplit(payment.form_action).path, data=payment.form_fields)
    deadline = time.monotonic() + 10
    while db.session.get(Order, order.id, populate_existing=True).status != Order.DELIVERED:
        if time.monotonic() > deadline:
            raise RuntimeError("the order was not delivered")
        db.session.commit()  # end the read's transaction, to see the delivery's
        time.sleep(0.1)
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "第二个卡密提示已被使用，请核实。")
    workflow.post_message(complaint.id, "merchant", product.merchant.user_id, "抱歉，我们正在核实，稍后答复您。")
    return {
        "home": "/",
        "product": f"/p/{product.slug}",
        "order": f"/order/{order.token}",
        "lookup": "/lookup",
        "complaint": f"/order/{order.token}/complaint/{complaint.ref}",
    }, order.token


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    with urllib.request.urlopen(base + "/", timeout=10) as answer:  # it answers before Lighthouse asks
        answer.read()
    return base, server


def lighthouse(url: str, report: Path) -> dict:
    """Lighthouse's JSON report of the page's accessibility, as on a phone (its default)."""
    subprocess.run(
        [
            "node",
            str(LIGHTHOUSE),
            url,
            "--only-categories=accessibility",
            "--form-factor=mobile",
            "--screenEmulation.mobile",
            "--output=json",
            f"--output-path={report}",
            "--quiet",
            "--no-enable-error-reporting",
            "--chrome-flags=--headless=new --no-sandbox --disable-gpu",
        ],
        env={**os.environ, "CHROME_PATH": CHROMIUM},
        check=True,
        timeout=180,
    )
    result = json.loads(report.read_text(encoding="utf-8"))
    if result.get("runtimeError"):
        raise RuntimeError(f"Lighthouse could not audit {url}: {result['runtimeError'].get('message')}")
    return result


def failures(result: dict) -> list[dict]:
    """The category's audits that count towards its score and did not pass."""
    audits = result["audits"]
    weighed = [ref["id"] for ref in result["categories"]["accessibility"]["auditRefs"] if ref["weight"] > 0]
    return [audits[name] for name in weighed if audits[name]["score"] is not None and audits[name]["score"] < 1]


def elements(audit: dict) -> list[str]:
    """Where an audit failed: each element's selector and markup, and what is wrong with it."""
    lines = []
    for item in (audit.get("details") or {}).get("items", [])[:SHOWN_ELEMENTS]:
        node = item.get("node") or {}
        explanation = " ".join((node.get("explanation") or "").split())
        lines.append(f"      {node.get('selector', '?')}  {node.get('snippet', '')}  {explanation}".rstrip())
    return lines


def measure(base: str, pages: dict[str, str], token: str, folder: Path) -> bool:
    """Print a row per page (and what failed); True when every score reaches MINIMUM."""
    # An order's token opens its page: a bearer secret, even in a throw-away shop.
    shown = {name: path.replace(token, "<token>") for name, path in pages.items()}
    width = max(len(path) for path in shown.values())
    print(f"{'page':<10} {'path':<{width}} {'score':>5}  failed audits")
    passed, details = True, []
    for name, path in pages.items():
        result = lighthouse(base + path, folder / f"lighthouse-{name}.json")
        score = round(result["categories"]["accessibility"]["score"] * 100)
        failed = failures(result)
        passed = passed and score >= MINIMUM
        print(f"{name:<10} {shown[name]:<{width}} {score:>5}  {', '.join(a['id'] for a in failed) or '-'}", flush=True)
        for audit in failed:
            details += [f"  {name}: {audit['id']}: {audit['title']}", *elements(audit)]
    if details:
        print("\n".join(["", "failed audits, and where:", *details]))
    return passed


def main() -> int:
    install_lighthouse()
    folder = Path(tempfile.mkdtemp(prefix="faka-a11y-"))
    server = None
    try:
        build_instance(folder)
        sys.path.insert(0, str(ROOT))
        from faka import create_app

        app = create_app({"RATELIMIT_STORAGE_URI": "memory://"})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # a row per page is enough
        with app.app_context():
            pages, token = add_order_and_complaint(app)
            base, server = serve(app)
            started = time.monotonic()
            passed = measure(base, pages, token, folder)
        print(
            f"\n{len(pages)} pages in {time.monotonic() - started:.0f} s; "
            + ("every score is at least" if passed else "FAILED: a score is under")
            + f" {MINIMUM}"
        )
        return 0 if passed else 1
    finally:
        if server is not None:
            server.shutdown()
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
