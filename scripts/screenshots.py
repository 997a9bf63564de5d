"""Screenshots of faka's main pages on a phone screen (360×800), in Chinese and in English.

`make screenshots` runs this. It builds a throw-away shop — a temporary instance folder
with SQLite, `flask init-db` and `flask seed-demo`, then, through the services, a few
delivered orders, a review, two complaints with evidence images (one answered by the
merchant, one waiting for the platform), an order waiting for payment, an order held by
the risk engine, a merchant waiting for review and blacklist entries — serves it on a
free local port, and saves a full-page PNG of each page as
docs/screenshots/<lang>-<role>-<page>.png, with docs/screenshots/README.md listing them. The
buyer's pages are taken again in dark mode (a phone set to dark: Chromium's
prefers-color-scheme), as <lang>-buyer-<page>-dark.png.

`--all-dark DIR` takes every page in both modes into DIR instead (nothing in docs/ changes):
for looking over the dark theme of the back office and the console too.

It exits with an error if a page scrolls sideways at 360 px or logs a console error.

Needs Chromium from Debian (/usr/bin/chromium, package `chromium`; no browser is
downloaded), the Debian package `fonts-noto-cjk` (without it Chinese text renders as
boxes), and the dev requirements (Playwright's Python package).
"""

import argparse
import io
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

from PIL import Image, ImageDraw

ROOT = Path(__file__).resolve().parent.parent
OUT = ROOT / "docs" / "screenshots"
CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
LANGUAGES = ("zh_CN", "en")
LANGUAGE_NAMES = {"zh_CN": "中文", "en": "English"}
PHONE = {
    "viewport": {"width": 360, "height": 800},
    "is_mobile": True,
    "has_touch": True,
    "device_scale_factor": 1,
    "user_agent": "Mozilla/5.0 (Linux; Android 14; Pixel 8) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Chrome/126.0.0.0 Mobile Safari/537.36",
}
BUYER_EMAIL, BUYER_PASSWORD = "li.ming@example.com", "demo-1234"


@dataclass(frozen=True)
class Shot:
    role: str
    page: str
    title: str
    path: str = ""  # empty: the step fills a form instead (see take_shots)


def build_instance(folder: Path) -> dict:
    """The shop's environment, its database created and the demo seeded by the CLI."""
    for key in ("DATABASE_URL", "REDIS_URL", "MAIL_SERVER", "FAKA_ENCRYPTION_KEYS", "SECRET_KEY", "FAKA_BASE_URL"):
        os.environ.pop(key, None)  # nothing of another instance: keys and secret are generated in the folder
    env = dict(os.environ)
    env.update(
        FAKA_INSTANCE_PATH=str(folder),
        FAKA_JOBS_MODE="sync",
        FAKA_RECONCILE_INTERVAL="0",
        FAKA_PAGE_CACHE_SECONDS="0",
        FAKA_STATUS_CACHE_SECONDS="0",
        PYTHONPATH=str(ROOT),
    )
    for command in ("init-db", "seed-demo"):
        subprocess.run(
            [sys.executable, "-m", "flask", "--app", "faka", command],
            cwd=ROOT,
            env=env,
            check=True,
            stdout=subprocess.DEVNULL,
        )
    return env


def png(color: tuple[int, int, int], text_rows: int = 6) -> bytes:
    """A stand-in screenshot: a window with a title bar and a few grey lines."""
    image = Image.new("RGB", (320, 200), (250, 250, 250))
    draw = ImageDraw.Draw(image)
    draw.rectangle((0, 0, 320, 28), fill=color)
    for row in range(text_rows):
        draw.rectangle((16, 44 + row * 24, 16 + 260 - (row % 3) * 60, 54 + row * 24), fill=(200, 200, 200))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def add_demo_state(app) -> dict:
    """Orders, a review, complaints, a held order, risk events and blacklist entries, made
    the way buyers, the merchant and the operator make them. Returns what the shots open."""
    import pyotp
    from sqlalchemy import select

    from faka.accounts import onboarding, users
    from faka.accounts.models import Merchant, User
    from faka.catalog.models import Product
    from faka.complaints import workflow
    from faka.core.crypto import vault
    from faka.extensions import db
    from faka.ops.seed import DEMO_MERCHANT, DEMO_OPERATOR
    from faka.orders import checkout
    from faka.payments import notify
    from faka.reviews import reviews
    from faka.risk import blacklist, engine

    operator = db.session.execute(select(User).where(User.email == DEMO_OPERATOR[0])).scalar_one()
    secret = pyotp.random_base32()
    operator.totp_secret = vault().encrypt(secret)  # operators log in with a second factor
    db.session.commit()
    seller = db.session.execute(select(Merchant).join(User).where(User.email == DEMO_MERCHANT[0])).scalar_one()
    steam, windows = (
        db.session.execute(
            select(Product)
            .where(Product.merchant_id == seller.id, Product.delivery_type == "auto")
            .order_by(Product.position)
            .limit(2)  # the seed's first two: the Steam cards and the Windows keys
        )
        .scalars()
        .all()
    )
    client = app.test_client()
    addresses = iter(f"203.0.113.{n}" for n in range(10, 250))

    def pay(placed):
        """As the sandbox's pay page does: post the signed notification (delivery runs inline)."""
        with app.test_request_context():
            payment = notify.start_payment(placed)
        client.post(urlsplit(payment.form_action).path, data=payment.form_fields)
        db.session.commit()

    def order(product, quantity=1, email=BUYER_EMAIL, paid=True):
        with app.test_request_context():
            placed = checkout.place_order(product.slug, quantity, email, BUYER_PASSWORD, client_ip=next(addresses))
        if paid:
            pay(placed)
        return db.session.get(type(placed), placed.id)

    reviewed = order(windows)
    reviews.submit_review(reviewed.token, 5, "秒发货，激活成功。Delivered in seconds and activated fine.")
    for n, email in enumerate(("wang.fang@example.com", "chen.jie@example.net", "zhao.lei@example.org")):
        done = order(windows, email=email)
        reviews.submit_review(done.token, 4 + n % 2, ("好评", "Works.", "")[n])
    answered = order(steam, 2)
    complaint = workflow.open_complaint(
        answered.token,
        "key_invalid",
        "第二个卡密提示已被使用。The second key says it was already redeemed.",
        [png((26, 115, 232)), png((201, 42, 42), 4)],
    )
    workflow.post_message(
        complaint.id,
        "merchant",
        seller.user_id,
        "抱歉！已核实，给您退第二张卡的钱。Sorry, checked: refunding the second card.",
    )
    workflow.offer_refund(complaint.id, seller.user_id, answered.total // 2)
    disputed = order(windows, email="sun.li@example.com")
    case = workflow.open_complaint(
        disputed.token,
        "not_as_described",
        "描述写的是零售版，收到的是批量授权密钥。Listed as retail, got a volume key.",
        [png((43, 138, 62))],
    )
    workflow.post_message(case.id, "merchant", seller.user_id, "密钥是零售版，买家激活方式不对。It is a retail key.")
    workflow.escalate(case.id)
    waiting = order(steam, paid=False)
    held = order(windows, email="reseller@example.net", paid=False)
    blacklist.add("email", "reseller@example.net", "转卖被盗卡密 / resells stolen keys", actor_id=operator.id)
    pay(held)  # blacklisted since checkout: paid, and held for the operator
    for address in ("198.51.100.7", "198.51.100.8"):
        try:
            with app.test_request_context():
                checkout.place_order(windows.slug, 1, "x@mailinator.com", None, client_ip=address)
        except engine.Refused:
            pass  # the risk engine asks for the captcha: the attempt shows in the monitor
    blacklist.add(
        "email",
        "chargeback@example.org",
        "恶意拒付 / charged back twice",
        actor_id=seller.user_id,
        merchant_id=seller.id,
    )
    newcomer = users.create_merchant("newshop@example.com", "newshop-demo-123", "小明的游戏小铺")
    onboarding.submit_qualification(
        newcomer.id,
        onboarding.Qualification("王小明", "individual", "110101199003074518", "微信 wxm-2024"),
        png((120, 120, 120)),
    )
    db.session.commit()
    return {
        "secret": secret,
        "steam": steam.slug,
        "windows": windows.slug,
        "reviewed": reviewed.token,
        "answered": answered.token,
        "complaint": complaint.ref,
        "case": case.ref,
        "waiting": waiting.token,
        "number": answered.number,
        "reviewed_number": reviewed.number,
    }


def shots(state: dict) -> list[Shot]:
    return [
        Shot("buyer", "home", "Home", "/"),
        Shot("buyer", "product", "Product", f"/p/{state['steam']}"),
        Shot("buyer", "pay", "Pay (sandbox)", f"/pay/{state['waiting']}"),
        Shot("buyer", "order", "Order, delivered", f"/order/{state['reviewed']}"),
        Shot("buyer", "lookup", "Find my order"),
        Shot("buyer", "review", "Review", f"/order/{state['reviewed']}/review"),
        Shot("buyer", "complaint", "Complaint", f"/order/{state['answered']}/complaint/{state['complaint']}"),
        Shot("merchant", "dashboard", "Dashboard", "/merchant/"),
        Shot("merchant", "products", "Products", "/merchant/products"),
        Shot("merchant", "product-form", "Product form", f"/merchant/products/{state['windows']}/edit"),
        Shot("merchant", "keys", "Key import", f"/merchant/products/{state['windows']}/keys"),
        Shot("merchant", "orders", "Orders", "/merchant/orders"),
        Shot("merchant", "order", "Order detail", f"/merchant/orders/{state['number']}"),
        Shot("merchant", "money", "Money", "/merchant/money"),
        Shot("merchant", "complaints", "Complaints", "/merchant/complaints"),
        Shot("merchant", "complaint", "Complaint", f"/merchant/complaints/{state['complaint']}"),
        Shot("merchant", "blacklist", "Blacklist", "/merchant/blacklist"),
        Shot("operator", "dashboard", "Dashboard", "/operator/"),
        Shot("operator", "merchants", "Merchants", "/operator/merchants"),
        Shot("operator", "complaints", "Complaint desk", "/operator/complaints"),
        Shot("operator", "complaint", "Complaint case", f"/operator/complaints/{state['case']}"),
        Shot("operator", "risk", "Risk monitor", "/operator/risk"),
        Shot("operator", "blacklist", "Blacklist", "/operator/blacklist"),
        Shot("operator", "payments", "Payments", "/operator/payments"),
        Shot("operator", "settings", "Settings", "/operator/settings"),
    ]


def serve(app) -> tuple[str, object]:
    from werkzeug.serving import make_server

    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_port}", server


class Window:
    """One role's browser on the phone screen; notes pages that misbehave."""

    def __init__(self, browser, base: str, problems: list[str], out: Path = OUT, dark: bool = False, signed_in=None):
        self.base, self.problems, self.out = base, problems, out
        # signed_in: the light window's cookies, so that the dark one needs no second login (a
        # TOTP code is accepted once).
        self.context = browser.new_context(**PHONE, color_scheme="dark" if dark else "light", storage_state=signed_in)
        self.page = self.context.new_page()
        self.page.set_default_timeout(15_000)
        self.errors: list[str] = []
        self.page.on("console", lambda m: self.errors.append(m.text) if m.type == "error" else None)
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))

    def go(self, path: str) -> None:
        self.page.goto(self.base + path)
        # A full-page shot shows what lies below the screen too: load lazy images now.
        self.page.evaluate(
            "document.querySelectorAll('img[loading=lazy]').forEach((img) => { img.loading = 'eager'; })"
        )
        self.page.wait_for_load_state("networkidle")

    def save(self, name: str) -> Path:
        page = self.page
        if not page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"):
            self.problems.append(f"{name}: {page.url} scrolls sideways at 360 px")
        if self.errors:
            self.problems.append(f"{name}: {page.url} console errors: {self.errors}")
            self.errors.clear()
        path = self.out / f"{name}.png"
        shot = page.screenshot(full_page=True, animations="disabled", caret="hide")
        # 256 colours are plenty for flat pages and a third of the bytes in the repository.
        Image.open(io.BytesIO(shot)).convert("RGB").quantize(256).save(path, optimize=True)
        return path


def log_in(window: Window, email: str, password: str, language: str, secret: str | None = None) -> None:
    import pyotp

    window.go(f"/login?lang={language}")
    window.page.fill("#email", email)
    window.page.fill("#password", password)
    window.page.locator("main button[type=submit]").click()
    if secret:
        window.page.wait_for_url("**/login/2fa")
        window.page.fill("#code", pyotp.TOTP(secret).now())
        window.page.locator("main button[type=submit]").click()
    window.page.wait_for_url("**/operator/" if secret else "**/merchant/")


def take_shots(
    browser, base: str, state: dict, problems: list[str], out: Path = OUT, dark_roles: tuple[str, ...] = ("buyer",)
) -> list[tuple[str, Shot]]:
    """Each shot in each language, and again in dark mode for the roles in `dark_roles`."""
    from faka.ops.seed import DEMO_MERCHANT, DEMO_OPERATOR

    taken = []
    windows: dict[tuple[str, bool], Window] = {}
    for language in LANGUAGES:
        for role in ("buyer", "merchant", "operator"):
            for dark in (False, True) if role in dark_roles else (False,):
                if (role, dark) not in windows:
                    signed_in = windows[role, False].context.storage_state() if dark else None
                    windows[role, dark] = Window(browser, base, problems, out, dark, signed_in)
                    if role == "merchant" and not dark:
                        log_in(windows[role, dark], *DEMO_MERCHANT, language)
                    elif role == "operator" and not dark:
                        log_in(windows[role, dark], *DEMO_OPERATOR, language, state["secret"])
                windows[role, dark].go(f"/?lang={language}" if role == "buyer" else f"/{role}/?lang={language}")
        for shot in shots(state):
            for dark in (False, True) if shot.role in dark_roles else (False,):
                window = windows[shot.role, dark]
                if shot.path:
                    window.go(shot.path)
                else:  # the lookup page, with the order it found
                    window.go("/lookup")
                    window.page.fill("#query", state["reviewed_number"])
                    window.page.fill("#query_password", BUYER_PASSWORD)
                    window.page.locator("form.lookup button.primary").click()
                    window.page.locator(".order-list a").first.wait_for()
                name = f"{language}-{shot.role}-{shot.page}" + ("-dark" if dark else "")
                window.save(name)
                if not dark:
                    taken.append((language, shot))
                print(f"  {name}.png")
    for window in windows.values():
        window.context.close()
    return taken


def write_index(taken: list[tuple[str, Shot]]) -> None:
    rows = []
    for shot in [s for language, s in taken if language == LANGUAGES[0]]:
        links = " · ".join(
            f"[{LANGUAGE_NAMES[language]}]({language}-{shot.role}-{shot.page}.png)" for language in LANGUAGES
        )
        if shot.role == "buyer":
            links += " · dark: " + " · ".join(
                f"[{LANGUAGE_NAMES[language]}]({language}-{shot.role}-{shot.page}-dark.png)" for language in LANGUAGES
            )
        rows.append(f"| {shot.role} | {shot.title} | {links} |")
    (OUT / "README.md").write_text(
        "# Screenshots\n\n"
        "faka's main pages on a phone screen (360×800), in Chinese (the default) and in English, taken from the\n"
        "demo shop with a few orders, a review, complaints and risk events added; the buyer's pages also in dark\n"
        "mode, as on a phone set to dark ([themes.md](../themes.md)). Regenerate them with\n"
        "`make screenshots` (needs Debian's `chromium` and `fonts-noto-cjk`; see `scripts/screenshots.py`).\n\n"
        "| who | page | screenshots |\n| --- | --- | --- |\n" + "\n".join(rows) + "\n",
        encoding="utf-8",
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--all-dark", metavar="DIR", type=Path, help="every page in both modes into DIR, not docs/")
    args = parser.parse_args()
    out, dark_roles = (args.all_dark, ("buyer", "merchant", "operator")) if args.all_dark else (OUT, ("buyer",))
    folder = Path(tempfile.mkdtemp(prefix="faka-screenshots-"))
    try:
        env = build_instance(folder)
        os.environ.update({key: value for key, value in env.items() if key.startswith("FAKA_")})
        sys.path.insert(0, str(ROOT))
        from playwright.sync_api import sync_playwright

        from faka import create_app

        app = create_app({"RATELIMIT_STORAGE_URI": "memory://"})
        logging.getLogger("werkzeug").setLevel(logging.WARNING)  # one line per shot is enough
        with app.app_context():
            state = add_demo_state(app)
            base, server = serve(app)
            out.mkdir(parents=True, exist_ok=True)
            for old in out.glob("*.png"):
                old.unlink()
            problems: list[str] = []
            with sync_playwright() as p:
                browser = p.chromium.launch(
                    executable_path=CHROMIUM, args=["--headless", "--no-sandbox", "--disable-gpu"]
                )
                taken = take_shots(browser, base, state, problems, out, dark_roles)
                browser.close()
            server.shutdown()
        if out == OUT:
            write_index(taken)
        files = list(out.glob("*.png"))
        size = sum(f.stat().st_size for f in files)
        print(f"{len(files)} screenshots, {size / 1e6:.1f} MB, in {out}/")
        for problem in problems:
            print("problem:", problem, file=sys.stderr)
        return 1 if problems else 0
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
