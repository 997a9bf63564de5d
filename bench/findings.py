"""Issue 17's fixed findings, attacked over HTTP: each phase makes the requests an attacker
would make against a live server and records what they get now.

bench/attack.py runs them against gunicorn on a fresh `init-db` instance (`--scenario
findings`, and in the default run); tests/slow/test_attack.py runs them at a smaller scale
against the test app and asserts each outcome. The accounts and the shop's objects an
attacker would find already there (a merchant, an operator, products, old orders) are
made in-process on the server's database, the way bench/attack.py seeds its product;
everything the attacker does goes over the wire, from loopback addresses of its own
(any 127.x address is local on Linux).

Each phase returns a row: the finding, the attack, what it gets now (with the numbers),
the test that pins the fix, `ok` (the fix holds) and the raw figures the test asserts on.
"""

import html
import io
import re
import secrets
import statistics
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import timedelta
from functools import cache
from types import SimpleNamespace
from urllib.parse import unquote, urlsplit

import pyotp
import requests

from bench.attack import CONCURRENCY, Visitor, _burst, honest_purchase

PRICE = 1000
PASSWORD = "findings-pass-1"
NEW_PASSWORD = "findings-pass-2"
OPERATOR_PASSWORD = "operator-pass-1"
LOOKUP_PASSWORD = "right-pass-1"

# Scales: the bench's and the one tests/slow/test_attack.py runs in `make test`.
# (Rate limits without Redis are kept per gunicorn worker: the guesses and posts outnumber
# two workers' budgets at either scale.)
FULL = {
    "redirect_values": 24,
    "two_factor_values": 10,
    "reauth_values": 10,
    "wrong_passwords": 500,
    "token_guesses": 60,
    "complaint_posts": 30,
    "lookup_samples": 7,
    "csrf_visitors": 5,
    "resubmissions": 5,
    "signups": 2,
}
SMALL = {
    "redirect_values": 24,
    "two_factor_values": 4,
    "reauth_values": 6,
    "wrong_passwords": 40,
    "token_guesses": 45,
    "complaint_posts": 25,
    "lookup_samples": 9,
    "csrf_visitors": 3,
    "resubmissions": 3,
    "signups": 1,
}

# Hostile `next` values as they stand in the query string (tests/web/test_open_redirect.py uses
# them too).
HOSTILE_NEXT = [
    "//evil.example/",
    "///evil.example/",
    "%2F%2Fevil.example/",
    "/%09/evil.example/",
    "/%0a/evil.example/",
    "/%0d/evil.example/",
    "%09//evil.example/",
    "%20//evil.example/",
    "/%00/evil.example/",
    "/%5cevil.example/",
    "%5c%5cevil.example/",
    "/%5c/evil.example/",
    "/%252f/evil.example/",
    "/%252F%252Fevil.example/",
    "/%255c%255cevil.example/",
    "/%25252f%25252fevil.example/",
    "http://evil.example/",
    "https:evil.example/",
    "HTTPS://evil.example/",
    "javascript:alert(1)",
    "JaVaScRiPt%3Aalert(1)",
    "evil.example/",
    "%0d%0aSet-Cookie:%20planted=1",
    "/merchant/%0d%0aSet-Cookie:%20planted=1",
]
# A spread of them for the two-factor step (each login there spends a recovery code) and
# the re-authentication (each one another password hash).
HOSTILE_NEXT_2FA = [HOSTILE_NEXT[i] for i in (0, 3, 9, 12, 17, 19, 22, 2, 15, 23)]

PLACEHOLDER = "__faka_csrf_token__"  # what the page cache used to swap for every visitor's token
EVIDENCE_REFUSED = "each picture may have at most 25 megapixels"
CODE_USED = "That code was already used."
CODE_NEEDED = "Enter the code from your authenticator app."
WEBHOOK_V4 = ("127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.1")
PUBLIC_WEBHOOKS = ("https://[2606:4700:4700::1111]/hook", "https://[64:ff9b::8.8.8.8]/hook")
NOT_NUMBERS = ("sNaN", "1e999", "NaN", "-Infinity")
NON_ASCII_SIGNS = ("签名" * 16, "é" * 64, "\u202e" + "0" * 63)
CRLF_TITLE = "Steam\r\nBcc: victim@example.com"
OLD_CRLF_TITLE = "Old card\r\nBcc: victim@example.com"  # a row saved before titles were one line
MAIL_WAIT = 15.0  # seconds for a delivery email to reach the mail sink


# -- the target ---------------------------------------------------------------------------


@dataclass
class Target:
    """A live faka server and, in-process, an app on its database (for what an attacker
    finds already there, and to read what the attack left)."""

    base_url: str
    app: object
    sizes: dict
    sandbox_after_init_db: Callable[[], bool]  # how `flask init-db` leaves the sandbox gateway
    mailbox: list | None = None  # the messages the server's SMTP server received (MailSink), if it has one
    settle_seconds: float = 0.0  # how long the server's processes reuse gateway settings and pages
    source_block: int = 10  # the attacker's and the people's addresses: 127.0.<block>.<n>, 127.0.<block+1>.<n> ...
    requests: int = 0
    server_errors: list = field(default_factory=list)
    _sources: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def source(self) -> str:
        """A loopback address no one has used yet in this run."""
        with self._lock:
            n = self._sources
            self._sources += 1
        return f"127.0.{self.source_block + n // 250}.{n % 250 + 1}"

    def _seen(self, response, *_args, **_kwargs):
        with self._lock:
            self.requests += 1
            if response.status_code >= 500:
                self.server_errors.append(
                    f"{response.request.method} {urlsplit(response.url).path} {response.status_code}"
                )

    def visitor(self, source: str | None = None) -> Visitor:
        """A browser of its own, from `source` (else a new address); every answer it gets
        is counted, and 5xx answers are kept."""
        return Visitor(self.base_url, source or self.source(), on_response=self._seen)

    def purchase(self, slug: str, source: str | None = None) -> dict:
        """A buyer buys one key, pays with the sandbox and waits for it (bench/attack.py)."""
        return honest_purchase(self.base_url, slug, source or self.source(), on_response=self._seen)

    def settle(self) -> None:
        """After a gateway is switched in-process: the server's processes reuse what they
        read for a moment (faka/core/cache.py reused())."""
        from faka.core.cache import forget

        with self.app.app_context():
            forget("enabled-gateways")
        time.sleep(self.settle_seconds)


class MailSink:
    """An SMTP server on 127.0.0.1 (aiosmtpd) for the server to send its emails to;
    `.messages` holds what arrived, parsed."""

    def __init__(self, port: int):
        from aiosmtpd.controller import Controller

        self.messages: list = []
        self.port = port
        self._controller = Controller(self, hostname="127.0.0.1", port=port)
        self._controller.start()

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def stop(self) -> None:
        self._controller.stop()


# -- helpers ------------------------------------------------------------------------------


def on_this_site(location: str) -> bool:
    """A relative path starting with a single `/`, with no host, as a browser reads it,
    however often it is decoded (tests/web/test_open_redirect.py)."""
    for _round in range(4):
        parts = urlsplit(location)
        if (
            not location.startswith("/")
            or location.startswith("//")
            or parts.scheme
            or parts.netloc
            or "\\" in location
            or any(ord(c) < 0x20 or ord(c) == 0x7F for c in location)
        ):
            return False
        location = unquote(location)
    return True


def log_in(visitor: Visitor, email: str, password: str, page: str = "/login") -> requests.Response:
    token = visitor.csrf(page)
    return visitor.post(page, {"csrf_token": token, "email": email, "password": password})


def logged_in(visitor: Visitor) -> requests.Response:
    return visitor.get("/merchant/")


def copy_of(t: Target, visitor: Visitor) -> Visitor:
    """Another browser, at another address, holding a copy of `visitor`'s cookies."""
    thief = t.visitor()
    thief.session.cookies.update(visitor.session.cookies)
    return thief


def post_form(visitor: Visitor, page: str, data: dict, action: str | None = None, **kwargs) -> requests.Response:
    return visitor.post(action or page, {"csrf_token": visitor.csrf(page), **data}, **kwargs)


def answer(response: requests.Response) -> str:
    """`303 → /login`, `400`, ..."""
    location = response.headers.get("Location")
    return f"{response.status_code} → {urlsplit(location).path}" if location else str(response.status_code)


def token_of(order_path: str) -> str:
    return order_path.rstrip("/").rsplit("/", 1)[1]


def png(colour=(200, 30, 30), size=(40, 30)) -> bytes:
    from PIL import Image

    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


@cache
def huge_png(width: int = 5000, height: int = 5000) -> bytes:
    """A few kilobytes as a file, 25 megapixels (75 MB) once decoded."""
    from PIL import Image

    out = io.BytesIO()
    Image.new("1", (width, height), 1).save(out, "PNG")
    return out.getvalue()


def private_files(t: Target) -> set[str]:
    """Every private file the shop holds: the folder's entries as they are (temporary
    ones too), or the database storage's rows."""
    from faka.core.storage import PRIVATE, LocalStorage, storage

    with t.app.app_context():
        store = storage()
        if isinstance(store, LocalStorage):
            folder = store.root / PRIVATE
            return {p.name for p in folder.iterdir()} if folder.is_dir() else set()
        return set(store.names(PRIVATE))


def _row(key, finding, attack, gets, test, ok, **figures) -> dict:
    return {
        "key": key,
        "finding": finding,
        "attack": attack,
        "gets": gets,
        "test": test,
        "ok": bool(ok),
        "figures": figures,
    }


# -- what the attacker finds already there ------------------------------------------------


def seed(t: Target) -> SimpleNamespace:
    """Accounts and products, made in-process: an approved shop and its products, a shop
    whose owner uses two-factor authentication, an operator (two-factor on, as the console
    requires), a shop that has not been approved yet, and orders for the lookup phase."""
    from sqlalchemy import update

    from faka.accounts import twofactor, users
    from faka.accounts.models import User
    from faka.catalog.models import DELIVERY_AUTO, DELIVERY_FIXED, Category
    from faka.catalog.variants import product_with_one_variant
    from faka.core.crypto import vault
    from faka.extensions import db
    from faka.inventory.keys import import_keys
    from faka.orders import checkout
    from faka.orders.models import Order
    from faka.payments.gateways import configure_gateway

    run = secrets.token_hex(3)  # the test database outlives a run; emails and slugs stay unique
    cast = SimpleNamespace(run=run)
    with t.app.app_context():
        category = Category(name="游戏点卡", name_en="Game cards")
        db.session.add(category)
        db.session.commit()
        cast.category_id = category.id

        def merchant(name: str, approved: bool = True, password: str = PASSWORD):
            m = users.create_merchant(f"{name}-{run}@example.com", password, f"{name} shop", approved=approved)
            return SimpleNamespace(email=m.user.email, password=password, merchant_id=m.id, user_id=m.user_id)

        def totp_on(account) -> None:
            account.secret = pyotp.random_base32()
            account.recovery_codes, _session = twofactor.enable(
                account.user_id, account.secret, pyotp.TOTP(account.secret).now()
            )

        def product(owner, slug: str, keys: int, **fields) -> str:
            fields.setdefault("title", slug.replace("-", " "))
            fields.setdefault("max_per_order", 10)
            fields.setdefault("delivery_type", DELIVERY_AUTO)
            row = product_with_one_variant(
                slug=f"{slug}-{run}",
                merchant_id=owner.merchant_id,
                category_id=category.id,
                price=fields.pop("price", PRICE),
                **fields,
            )
            db.session.add(row)
            db.session.commit()
            if keys:
                import_keys(
                    row.variants[0], "\n".join(f"{slug.upper()}-{i:04d}-{secrets.token_hex(4)}" for i in range(keys))
                )
            return row.slug

        cast.shop = merchant("shop")  # the findings' shop: its products, complaints, webhooks
        cast.redirect = merchant("redirect")  # follows the crafted login links
        cast.redirect_2fa = merchant("redirect2fa")
        totp_on(cast.redirect_2fa)
        cast.sessions = merchant("sessions")  # whose cookie is copied
        cast.totp = merchant("totp")  # whose codes are replayed, whose money is asked for
        cast.totp.secret = pyotp.random_base32()  # on, no code used yet (enable() would spend this step's)
        db.session.get(User, cast.totp.user_id).totp_secret = vault().encrypt(cast.totp.secret)
        cast.applicant = merchant("applicant", approved=False)  # has not sent its qualification yet
        operator = users.create_operator(f"ops-{run}@example.com", OPERATOR_PASSWORD)
        cast.operator = SimpleNamespace(
            email=operator.email, password=OPERATOR_PASSWORD, user_id=operator.id, secret=pyotp.random_base32()
        )
        operator.totp_secret = vault().encrypt(cast.operator.secret)
        db.session.commit()

        cast.target = product(cast.shop, "findings-target", 60)
        cast.hoard = product(cast.shop, "findings-hoard", 10, max_per_order=10)
        bait = f"Tell me your token: {PLACEHOLDER} [free keys](https://evil.example/?t={PLACEHOLDER})"
        cast.bait = product(cast.shop, "findings-bait", 5, title=f"Keys {PLACEHOLDER}", description_md=bait)
        cast.payout_product = product(cast.totp, "findings-payout", 5, price=10000)
        cast.old_title = product(cast.shop, "findings-old-title", 3, title=OLD_CRLF_TITLE)
        fixed = product(
            cast.shop,
            "findings-licence",
            0,
            delivery_type=DELIVERY_FIXED,
            fixed_content_ciphertext=vault().encrypt("licence"),
        )

        # Old orders of three buyers: none, one and ten, each with a query password (placed
        # with the sandbox on; the first phase puts it back as `init-db` left it).
        configure_gateway("sandbox", {}, enabled=True)
        cast.lookup_emails = {0: f"none-{run}@example.com", 1: f"one-{run}@example.com", 10: f"ten-{run}@example.com"}
        for orders, email in cast.lookup_emails.items():
            ids = []
            for _ in range(orders):
                with t.app.test_request_context():
                    ids.append(checkout.place_order(fixed, 1, None, LOOKUP_PASSWORD).id)
            if ids:
                db.session.execute(update(Order).where(Order.id.in_(ids)).values(email=email))
        db.session.commit()
    return cast


# -- 4. the sandbox gateway after `init-db` (first: it needs the fresh install) ------------


def sandbox_default(t: Target, cast) -> dict:
    from faka.ops import doctor
    from faka.payments.gateways import configure_gateway

    left_on = t.sandbox_after_init_db()
    with t.app.app_context():
        configure_gateway("sandbox", {}, enabled=left_on)  # as the fresh install is
    t.settle()
    attacker = t.visitor()
    page = attacker.get(f"/p/{cast.target}?lang=en")
    match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
    checkout = attacker.post(
        f"/p/{cast.target}/buy",
        {
            "csrf_token": match.group(1) if match else "",
            "quantity": 1,
            "email": "free@example.com",
            "query_password": "free-pass-1",
        },
    )
    free_keys = 0
    if checkout.status_code == 303:  # an order: "pay" it with the sandbox page's own button
        pay_page = attacker.get(checkout.headers["Location"])
        fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', pay_page.text))
        action = re.search(r'<form method="post" action="([^"]+)"', pay_page.text)
        if action:
            paid = attacker.post(action.group(1), fields)
            if paid.status_code == 303:
                time.sleep(1)
                order = attacker.get(paid.headers["Location"])
                free_keys = len(re.findall(r'class="card-key"', order.text))
    forged = attacker.post(
        "/pay/sandbox/notify",
        {
            "order_no": "20260101000000000001",
            "trade_no": "SBX1",
            "amount": str(PRICE),
            "currency": "CNY",
            "status": "paid",
            "sign": secrets.token_hex(32),
        },
    )
    # The operator turns it on for a test: the shop says so everywhere.
    with t.app.app_context():
        configure_gateway("sandbox", {}, enabled=True)
    t.settle()
    with t.app.app_context():
        doctor_status = doctor.sandbox_off().status  # what `flask doctor` checks
    desk = t.visitor()
    cast.operator_browser = desk  # logs in now: the operator's known browser later
    step = log_in(desk, cast.operator.email, cast.operator.password)
    signed = post_form(desk, "/login/2fa", {"code": pyotp.TOTP(cast.operator.secret).now()})
    console = desk.get("/operator/?lang=en")
    banner = "The sandbox gateway is on: anyone can mark orders paid." in console.text
    post_form(desk, "/operator/", {}, action="/logout")
    ok = (
        not left_on
        and checkout.status_code == 400
        and free_keys == 0
        and forged.status_code == 404
        and doctor_status == "fail"
        and banner
        and console.status_code == 200
    )
    gets = (
        f"`init-db` leaves it {'ON' if left_on else 'off'}; a checkout then: {checkout.status_code} (no way to "
        f"pay), keys got without paying: {free_keys}, a forged sandbox notification: {forged.status_code}. "
        f"Turned on: `doctor` {doctor_status.upper()}, red line on the console: {'yes' if banner else 'NO'}"
    )
    return _row(
        "sandbox",
        "4. Sandbox gateway on by default in `init-db`",
        'on a fresh install, buy and "pay" with the sandbox; then the operator turns it on',
        gets,
        "test_cli.py::test_migrations_build_the_same_schema_as_the_models, "
        "test_shop_hardening.py::test_doctor_fails_while_the_sandbox_is_on_at_a_public_address, "
        "::test_every_console_page_warns_while_the_sandbox_is_on",
        ok,
        sandbox_after_init_db=left_on,
        checkout=checkout.status_code,
        free_keys=free_keys,
        forged_notify=forged.status_code,
        doctor=doctor_status,
        banner=banner,
        login=[step.status_code, signed.status_code],
    )


# -- 1. open redirect -----------------------------------------------------------------------


def open_redirect(t: Target, cast) -> dict:
    values = HOSTILE_NEXT[: t.sizes["redirect_values"]]
    two_factor_values = HOSTILE_NEXT_2FA[: t.sizes["two_factor_values"]]
    reauth_values = set(HOSTILE_NEXT_2FA[: t.sizes["reauth_values"]])

    def password_only(raw: str) -> dict:
        browser = t.visitor()  # one crafted link each, so the login limit per address is no factor
        login = log_in(browser, cast.redirect.email, cast.redirect.password, page=f"/login?next={raw}")
        page = browser.get(f"/reauth?next={raw}&lang=en")
        cancel = [html.unescape(h) for h in re.findall(r'<a href="([^"]*)">(?:Cancel|取消)</a>', page.text)]
        if raw not in reauth_values:
            return {"login": login, "reauth": None, "cancel": cancel}
        match = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text)
        reauth = browser.post(
            f"/reauth?next={raw}", {"csrf_token": match.group(1) if match else "", "password": cast.redirect.password}
        )
        return {"login": login, "reauth": reauth, "cancel": cancel}

    def with_code(pair) -> requests.Response:
        raw, code = pair
        browser = t.visitor()
        step = log_in(browser, cast.redirect_2fa.email, cast.redirect_2fa.password, page=f"/login?next={raw}")
        if step.headers.get("Location") != "/login/2fa":
            return step
        return post_form(browser, "/login/2fa", {"code": code})

    with ThreadPoolExecutor(CONCURRENCY) as pool:
        plain = list(pool.map(password_only, values))
        coded = list(pool.map(with_code, zip(two_factor_values, cast.redirect_2fa.recovery_codes)))

    def home(response) -> bool:
        return (
            response.status_code == 303
            and on_this_site(response.headers.get("Location", ""))
            and "planted" not in response.headers.get("Set-Cookie", "")
        )

    logins = sum(home(r["login"]) for r in plain)
    reauthed = [r["reauth"] for r in plain if r["reauth"] is not None]
    reauths = sum(home(r) for r in reauthed)
    second = sum(home(r) for r in coded)
    cancels_off = sum(any(not on_this_site(h) for h in r["cancel"]) for r in plain)  # a hostile one shows none
    offsite = sorted(
        {r.headers.get("Location", "") for r in [p["login"] for p in plain] + reauthed + coded if not home(r)}
    )
    ok = logins == len(values) and reauths == len(reauthed) and second == len(two_factor_values) and cancels_off == 0
    gets = (
        f"Location stays on site: login {logins}/{len(values)}, two-factor step {second}/{len(two_factor_values)}, "
        f"re-authentication {reauths}/{len(reauthed)}; Cancel links off site: {cancels_off}/{len(values)}"
    )
    return _row(
        "open_redirect",
        "1. Open redirect after login / 2FA / re-authentication",
        f"{len(values)} crafted links (`next=/%09/evil.example/`, `%5c%5c`, `%252f`, CR/LF ...) "
        "followed by a merchant who signs in",
        gets,
        "test_open_redirect.py::test_hostile_next_goes_home, ::test_reauth_page_offers_no_hostile_cancel_link",
        ok,
        values=len(values),
        logins_on_site=logins,
        two_factor_on_site=second,
        two_factor_values=len(two_factor_values),
        reauth_values=len(reauthed),
        reauth_on_site=reauths,
        cancel_off_site=cancels_off,
        off_site=offsite,
    )


# -- 2. session replay ----------------------------------------------------------------------


def session_replay(t: Target, cast) -> dict:
    from faka.accounts import users
    from faka.accounts.models import User
    from faka.extensions import db

    m = cast.sessions
    outcome = {}
    # Logout.
    owner = t.visitor()
    log_in(owner, m.email, m.password)
    thief = copy_of(t, owner)
    outcome["before"] = logged_in(thief).status_code
    post_form(owner, "/merchant/", {}, action="/logout")
    outcome["logout"] = answer(logged_in(thief))
    # A password reset (from the emailed link) ends every session.
    owner = t.visitor()
    log_in(owner, m.email, m.password)
    thief = copy_of(t, owner)
    with t.app.app_context():
        link = f"/reset/{users.password_reset_token(db.session.get(User, m.user_id))}"
    reset = post_form(t.visitor(), link, {"password": NEW_PASSWORD, "confirm": NEW_PASSWORD})
    outcome["reset_page"] = reset.status_code
    outcome["reset"] = answer(logged_in(thief))
    outcome["reset_owner"] = answer(logged_in(owner))
    # "Sign out everywhere else", from the owner's other device.
    laptop, phone = t.visitor(), t.visitor()
    log_in(laptop, m.email, NEW_PASSWORD)
    log_in(phone, m.email, NEW_PASSWORD)
    thief = copy_of(t, laptop)
    outcome["copy_works"] = logged_in(thief).status_code
    post_form(phone, "/account/sessions", {}, action="/account/sessions/others/revoke")
    outcome["everywhere"] = answer(logged_in(thief))
    outcome["laptop"] = answer(logged_in(laptop))
    outcome["phone_stays"] = logged_in(phone).status_code

    def out(key) -> bool:
        return outcome[key].startswith("303 → /login")

    ok = (
        outcome["before"] == 200
        and outcome["copy_works"] == 200
        and outcome["reset_page"] == 303
        and out("logout")
        and out("reset")
        and out("reset_owner")
        and out("everywhere")
        and out("laptop")
        and outcome["phone_stays"] == 200
    )
    gets = (
        f"copied cookie (works before: {outcome['before']}) after logout: {outcome['logout']}; after a password "
        f'reset: {outcome["reset"]}; after "sign out everywhere else": {outcome["everywhere"]} (the device '
        f"that asked: {outcome['phone_stays']})"
    )
    return _row(
        "sessions",
        "2. Session replay with a copied cookie",
        "copy the merchant's cookies to another address, then the owner logs out / resets the password / "
        "signs out everywhere else",
        gets,
        "test_sessions.py::test_a_copied_cookie_dies_with_the_logout, "
        "::test_a_copied_cookie_dies_with_a_password_reset, "
        "::test_sign_out_everywhere_else_ends_every_other_session_and_copies_of_this_one",
        ok,
        **outcome,
    )


# -- 3. uploads -----------------------------------------------------------------------------

QUALIFICATION = {
    "legal_name": "张三",
    "entity_type": "individual",
    "id_number": "11010519491231002X",
    "contact": "13800000000",
}


def refused_licences(t: Target, cast) -> dict:
    applicant = t.visitor()
    log_in(applicant, cast.applicant.email, cast.applicant.password)

    def submit(colour) -> requests.Response:
        token = applicant.csrf("/merchant/qualification")
        return applicant.post(
            "/merchant/qualification?lang=en",
            {"csrf_token": token, **QUALIFICATION},
            files={"licence_image": ("licence.png", png(colour), "image/png")},
        )

    first = submit((10, 10, 10))
    before = private_files(t)
    refused = [submit((i * 40 % 256, 90, 0)) for i in range(1, t.sizes["resubmissions"] + 1)]
    left = len(private_files(t) - before)
    statuses = [r.status_code for r in refused]
    locked = sum("approved or under review" in html.unescape(r.text) for r in refused)
    ok = first.status_code == 303 and statuses == [400] * len(refused) and left == 0
    gets = (
        f"first submission {first.status_code}; {len(refused)} re-submissions while under review: "
        f"{'/'.join(map(str, sorted(set(statuses))))} ×{len(refused)}, files left behind: {left}"
    )
    return _row(
        "licence",
        "3. Uploads: a refused qualification image is stored",
        f"{len(refused)} more licence images sent while the first is under review",
        gets,
        "test_upload_limits.py::test_a_refused_qualification_leaves_no_file",
        ok,
        first=first.status_code,
        statuses=statuses,
        files_left=left,
        said_locked=locked,
    )


def pixel_bomb(t: Target, cast) -> dict:
    from sqlalchemy import func, select

    from faka.complaints.models import Complaint
    from faka.extensions import db
    from faka.orders.models import Order

    bought = t.purchase(cast.target)
    cast.buyer_order = bought["order"]
    cast.buyer_source = bought["source"]
    buyer = t.visitor()
    url = f"{bought['order']}/complaint"
    before = private_files(t)
    token = buyer.csrf(url)
    started = time.perf_counter()
    bomb = buyer.post(
        f"{url}?lang=en",
        {"csrf_token": token, "reason": "key_invalid", "description": "Screenshots attached."},
        files=[("images", (f"shot{i}.png", huge_png(), "image/png")) for i in range(5)],
    )
    ms = (time.perf_counter() - started) * 1000
    stored = len(private_files(t) - before)
    with t.app.app_context():
        complaints_opened = (
            db.session.scalar(
                select(func.count())
                .select_from(Complaint)
                .join(Order, Complaint.order_id == Order.id)
                .where(Order.token == token_of(bought["order"]))
            )
            or 0
        )
    said = EVIDENCE_REFUSED in html.unescape(bomb.text)
    # The same complaint without pictures is opened (the next phase answers it).
    opened = post_form(buyer, url, {"reason": "key_invalid", "description": "The key is already redeemed."})
    cast.complaint_ref = opened.headers.get("Location", "").rstrip("/").rsplit("/", 1)[-1]
    ok = (
        bought["outcome"] == "delivered"
        and bomb.status_code == 400
        and said
        and stored == 0
        and complaints_opened == 0
        and opened.status_code == 303
    )
    gets = (
        f'{bomb.status_code} in {ms:.0f} ms ("at most 25 megapixels each, 60 together"); files stored: '
        f"{stored}, complaints opened: {complaints_opened}"
    )
    return _row(
        "pixels",
        "3. Uploads: 5000×5000 pictures ×5 in a complaint post",
        f"a buyer opens a complaint with five 25-megapixel PNGs ({len(huge_png()) // 1024} KB each as a file, "
        "75 MB each decoded)",
        gets,
        "test_upload_limits.py::test_a_set_of_5000_pixel_square_evidence_is_refused_before_decoding",
        ok,
        status=bomb.status_code,
        ms=round(ms, 1),
        said=said,
        files_stored=stored,
        complaints_opened=complaints_opened,
        text_only=opened.status_code,
    )


def complaint_posts(t: Target, cast) -> dict:
    from sqlalchemy import func, select

    from faka.complaints.models import ComplaintMessage
    from faka.extensions import db

    seller = t.visitor()
    log_in(seller, cast.shop.email, cast.shop.password)
    cast.seller = seller
    url = f"/merchant/complaints/{cast.complaint_ref}"
    token = seller.csrf(url)
    with t.app.app_context():
        before = db.session.scalar(select(func.count()).select_from(ComplaintMessage)) or 0
    n = t.sizes["complaint_posts"]
    started = time.perf_counter()
    # Multipart, as the thread's form (which takes pictures) sends it.
    statuses = [
        seller.post(f"{url}/message", files={"csrf_token": (None, token), "body": (None, f"Answer {i}.")}).status_code
        for i in range(n)
    ]
    seconds = time.perf_counter() - started
    with t.app.app_context():
        stored = (db.session.scalar(select(func.count()).select_from(ComplaintMessage)) or 0) - before
    taken = statuses.count(303)
    refused = statuses.count(429)
    ok = 0 < taken < n and taken + refused == n and stored == taken
    gets = f"{taken} of {n} posts in {seconds:.1f} s taken, {refused} refused 429; messages stored: {stored}"
    return _row(
        "complaint_posts",
        "3. Uploads: unlimited merchant complaint posts",
        f"a merchant posts {n} messages to one complaint as fast as it can",
        gets,
        "test_upload_limits.py::test_merchant_complaint_posts_are_rate_limited",
        ok,
        posts=n,
        taken=taken,
        refused=refused,
        stored=stored,
        statuses=sorted(set(statuses)),
    )


# -- the findings rated low ----------------------------------------------------------------


def csrf_placeholder(t: Target, cast) -> dict:
    leaked = shown = 0
    n = t.sizes["csrf_visitors"]
    for _ in range(n):
        visitor = t.visitor()
        page = visitor.get(f"/p/{cast.bait}?lang=en")
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', page.text).group(1)
        own = page.text.count(f'value="{token}"') + page.text.count(f'"X-CSRFToken": "{token}"')
        leaked += page.text.count(token) > own or f"?t={token}" in page.text
        shown += PLACEHOLDER in page.text
    ok = leaked == 0 and shown == n
    gets = f"visitors whose token lands in the merchant's text: {leaked}/{n} (the text shown as written: {shown}/{n})"
    return _row(
        "csrf_placeholder",
        "CSRF placeholder in merchant text harvests visitors' tokens",
        f"a product description with `{PLACEHOLDER}` in a link; {n} visitors open the (cached) page",
        gets,
        "test_shop_hardening.py::test_csrf_token_never_lands_in_merchant_text",
        ok,
        visitors=n,
        leaked=leaked,
        shown=shown,
    )


def totp_replay(t: Target, cast) -> dict:
    m = cast.totp
    owner = t.visitor()
    cast.totp_owner = owner
    code = pyotp.TOTP(m.secret).now()
    log_in(owner, m.email, m.password)
    first = post_form(owner, "/login/2fa", {"code": code})
    attacker = t.visitor()  # saw the code (over the shoulder, a phishing proxy) and knows the password
    step = log_in(attacker, m.email, m.password)
    replay = post_form(attacker, "/login/2fa?lang=en", {"code": code})
    reauth = post_form(
        owner,
        "/reauth?next=/merchant/",
        {"password": m.password, "code": code},
        action="/reauth?next=/merchant/&lang=en",
    )
    refused = [r for r in (replay, reauth) if r.status_code == 400 and CODE_USED in r.text]
    attacker_in = logged_in(attacker).status_code == 200
    ok = (
        first.status_code == 303
        and step.headers.get("Location") == "/login/2fa"
        and len(refused) == 2
        and not attacker_in
    )
    gets = (
        f"the owner's code replayed within its 30 s: at login {replay.status_code}, at re-authentication "
        f'{reauth.status_code} ("already used": {len(refused)}/2); attacker signed in: '
        f"{'YES' if attacker_in else 'no'}"
    )
    return _row(
        "totp_replay",
        "TOTP code replay",
        "sign in with the owner's code seen a moment ago",
        gets,
        "test_totp_replay.py::test_the_same_code_twice_at_login_is_refused_the_second_time",
        ok,
        owner=first.status_code,
        replay=replay.status_code,
        reauth=reauth.status_code,
        attacker_in=attacker_in,
    )


def payout_with_session(t: Target, cast) -> dict:
    from sqlalchemy import func, select, update

    from faka.core.types import utcnow
    from faka.extensions import db
    from faka.ledger import payouts
    from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal

    m = cast.totp
    sale = t.purchase(cast.payout_product)  # the shop has earned something
    with t.app.app_context():
        db.session.execute(
            update(LedgerEntry)
            .where(LedgerEntry.merchant_id == m.merchant_id)
            .values(available_at=utcnow() - timedelta(days=1))
        )
        db.session.commit()
        account_id = payouts.add_payout_account(m.merchant_id, "alipay", "张三", "13800001234").id
        accounts_before = db.session.scalar(select(func.count()).select_from(PayoutAccount)) or 0
    thief = copy_of(t, cast.totp_owner)  # the stolen session
    new_account = {"kind": "alipay", "holder": "李四", "account": "13900009999"}
    tries = [
        post_form(thief, "/merchant/money", {**new_account, "code": code}, action="/merchant/money/accounts?lang=en")
        for code in ("", "000000")
    ]
    withdrawal = post_form(
        thief,
        "/merchant/money",
        {"payout_account_id": account_id, "amount": "5.00", "code": ""},
        action="/merchant/money/withdrawals?lang=en",
    )
    with t.app.app_context():
        added = (db.session.scalar(select(func.count()).select_from(PayoutAccount)) or 0) - accounts_before
        withdrawals = (
            db.session.scalar(
                select(func.count()).select_from(Withdrawal).where(Withdrawal.merchant_id == m.merchant_id)
            )
            or 0
        )
    # The owner, with the next code from the app, may.
    owner = post_form(
        cast.totp_owner,
        "/merchant/money",
        {**new_account, "code": pyotp.TOTP(m.secret).at(time.time() + 30)},
        action="/merchant/money/accounts",
    )
    statuses = [r.status_code for r in tries] + [withdrawal.status_code]
    ok = (
        sale["outcome"] == "delivered"
        and statuses == [400, 400, 400]
        and added == 0
        and withdrawals == 0
        and CODE_NEEDED in withdrawal.text
        and owner.status_code == 303
    )
    gets = (
        f"with the session alone: payout account {tries[0].status_code} (wrong code {tries[1].status_code}), "
        f"withdrawal {withdrawal.status_code}; added {added}, withdrawals {withdrawals}. The owner with a fresh "
        f"code: {owner.status_code}"
    )
    return _row(
        "payout",
        "Payout account / withdrawal with only a session",
        "with a stolen session cookie, add a payout account and ask for a withdrawal",
        gets,
        "test_shop_hardening.py::test_a_payout_account_needs_a_current_code, ::test_a_withdrawal_needs_a_current_code",
        ok,
        statuses=statuses,
        added=added,
        withdrawals=withdrawals,
        owner=owner.status_code,
    )


def signup_enumeration(t: Target, cast) -> dict:
    def strip(text: str) -> str:
        return re.sub(r'((?:value|nonce)=|"X-CSRFToken": )"[^"]*"', r'\1""', text)

    def sign_up(email: str):
        browser = t.visitor()
        token = browser.csrf("/signup")
        started = time.perf_counter()
        response = browser.post(
            "/signup", {"csrf_token": token, "email": email, "password": "a-good-password", "shop_name": "Probe"}
        )
        ms = (time.perf_counter() - started) * 1000
        landing = browser.get(response.headers.get("Location", "/signup"))
        seen = (
            response.status_code,
            response.headers.get("Location"),
            landing.status_code,
            strip(landing.text),
            sorted(c.name for c in browser.session.cookies),
            logged_in(browser).status_code,
        )
        return seen, ms

    taken, new, times = [], [], {"taken": [], "new": []}
    for i in range(t.sizes["signups"]):
        for kind, email in (("taken", cast.shop.email.upper()), ("new", f"new{i}-{cast.run}@example.com")):
            seen, ms = sign_up(email)
            (taken if kind == "taken" else new).append(seen)
            times[kind].append(ms)
    same = all(a == b for a, b in zip(taken, new)) and len(set(map(repr, taken + new))) == 1
    first = taken[0]
    ms = {k: statistics.median(v) for k, v in times.items()}
    ok = same and first[0] == 303 and first[1] == "/signup/sent"
    gets = (
        f"answers for a taken and a new email: {'identical' if same else 'DIFFERENT'} ({first[0]} → {first[1]}); "
        f"{ms['taken']:.0f} vs {ms['new']:.0f} ms"
    )
    return _row(
        "signup",
        "Sign-up reveals which emails have an account",
        "sign up with a merchant's email and with a new one; compare answers, pages, cookies and time",
        gets,
        "test_auth.py::test_signup_answers_the_same_for_a_new_and_a_taken_email_and_tells_the_owner",
        ok,
        identical=same,
        status=first[0],
        location=first[1],
        ms_taken=round(ms["taken"], 1),
        ms_new=round(ms["new"], 1),
    )


def lookup_timing(t: Target, cast) -> dict:
    def one(email: str) -> float:
        browser = t.visitor()  # a fresh address each: the captcha after 5 failures is no factor
        token = browser.csrf("/lookup")
        started = time.perf_counter()
        response = browser.post("/lookup", {"csrf_token": token, "query": email, "query_password": "wrong-pass-1"})
        if response.status_code != 400:
            raise RuntimeError(f"lookup of {email}: HTTP {response.status_code}")
        return (time.perf_counter() - started) * 1000

    emails = cast.lookup_emails
    for email in emails.values():  # warm up each worker's code paths
        one(email)
    samples = {orders: [] for orders in emails}
    for i in range(t.sizes["lookup_samples"]):
        for orders in sorted(emails, key=lambda o: (o + i) % 11):  # a different order each round
            samples[orders].append(one(emails[orders]))
    # Each email's fastest answer: a busy machine only ever adds time, and the work an
    # email costs shows in the fastest (before the fix, 10 orders cost 10 hashes, none 0).
    fastest = {orders: min(v) for orders, v in samples.items()}
    ratio = fastest[10] / fastest[0]
    spread = max(fastest.values()) / min(fastest.values())
    # The leak is time growing with the orders: more orders, more hashes. A busy machine
    # can make any of the three slow (the spread), but not the email with more orders
    # alone, every time.
    ok = ratio < 2 and fastest[1] / fastest[0] < 2
    gets = (
        f"wrong-password lookups of an email with 0 / 1 / 10 orders, fastest of {len(samples[0])}: "
        f"{fastest[0]:.0f} / {fastest[1]:.0f} / {fastest[10]:.0f} ms (10 vs 0 orders: {ratio:.2f}x)"
    )
    return _row(
        "lookup_timing",
        "/lookup timing reveals how many orders an email has",
        f"time {t.sizes['lookup_samples']} wrong-password lookups of each of three emails",
        gets,
        "test_shop_hardening.py::test_email_lookup_checks_the_same_number_of_hashes_for_0_1_and_10_orders",
        ok,
        ms={str(k): round(v, 1) for k, v in fastest.items()},
        median_ms={str(k): round(statistics.median(v), 1) for k, v in samples.items()},
        ratio=round(ratio, 3),
        spread=round(spread, 3),
    )


def account_lock(t: Target, cast) -> dict:
    from faka.accounts.models import User
    from faka.extensions import db

    op = cast.operator
    address = t.source()
    n = t.sizes["wrong_passwords"]

    def setup():
        browser = t.visitor(address)
        return browser, browser.csrf("/login")

    def send(state, i):
        browser, token = state
        return browser.post("/login", {"csrf_token": token, "email": op.email, "password": f"guess-{i:04d}"})

    tally = _burst(n, CONCURRENCY, setup, send)
    with t.app.app_context():
        user = db.session.get(User, op.user_id)
        locked = user.locked_until is not None
    known = log_in(cast.operator_browser, op.email, op.password)  # the browser it signed in with before
    elsewhere = log_in(t.visitor(), op.email, op.password)

    def signed_in(response) -> bool:
        return response.status_code == 303 and response.headers.get("Location") == "/login/2fa"

    statuses = tally["statuses"]
    ok = not locked and signed_in(known) and signed_in(elsewhere) and statuses.get("303", 0) == 0
    tried = n - statuses.get("429", 0)
    gets = (
        f"after {n} wrong passwords for the operator from one address ({tried} answered, "
        f"{statuses.get('429', 0)} refused 429): account locked: {'YES' if locked else 'no'}; the operator signs "
        f"in from a known browser: {'yes' if signed_in(known) else 'NO'} ({answer(known)}), from a new one "
        f"elsewhere: {'yes' if signed_in(elsewhere) else 'NO'}"
    )
    return _row(
        "account_lock",
        "Locking any account (the operator's) with 5 wrong passwords",
        f"{n} wrong passwords for the operator's email from one address, {CONCURRENCY} connections",
        gets,
        "test_login_throttle.py::test_twenty_wrong_passwords_from_one_address_do_not_lock_the_owner_out, "
        "::test_the_owners_known_browser_signs_in_at_the_address_being_hammered",
        ok,
        attempts=n,
        statuses=statuses,
        locked=locked,
        known_browser=known.status_code,
        known_location=known.headers.get("Location"),
        elsewhere=elsewhere.status_code,
    )


def stock_hoarding(t: Target, cast) -> dict:
    from sqlalchemy import func, select

    from faka.catalog.models import Product
    from faka.extensions import db
    from faka.inventory.models import CardKey

    held, refused = [], 0
    for i in range(3):
        hoarder = t.visitor()  # an address, a browser and an email of its own each
        token = hoarder.csrf(f"/p/{cast.hoard}")
        for quantity in range(10, 0, -1):
            response = hoarder.post(
                f"/p/{cast.hoard}/buy",
                {
                    "csrf_token": token,
                    "quantity": quantity,
                    "email": f"hoarder{i}-{cast.run}@example.com",
                    "query_password": "hoard-pass-1",
                },
            )
            if response.status_code == 303:
                held.append(quantity)
                break
            refused += 1
        else:
            held.append(0)

    def on_sale() -> int:
        with t.app.app_context():
            return (
                db.session.scalar(
                    select(func.count())
                    .select_from(CardKey)
                    .join(Product, CardKey.product_id == Product.id)
                    .where(Product.slug == cast.hoard, CardKey.status == CardKey.AVAILABLE)
                )
                or 0
            )

    left = on_sale()
    buyer = t.purchase(cast.hoard)
    ok = left >= 1 and buyer["outcome"] == "delivered" and sum(held) <= 7
    gets = (
        f"keys still on sale after 3 hoarding orders: {left}/10 (they hold {'+'.join(map(str, held))}; "
        f"{refused} larger orders refused 409); a buyer after them: {buyer['outcome']}"
    )
    return _row(
        "hoarding",
        "Unpaid orders from 3 addresses take a product off sale",
        "three addresses each order as many of a 10-key product as they can and never pay",
        gets,
        "test_shop_hardening.py::test_three_unpaid_orders_from_three_addresses_leave_keys_on_sale",
        ok,
        held=held,
        refused=refused,
        left=left,
        buyer=buyer["outcome"],
    )


def _ipv6_forms(v4: str) -> dict[str, str]:
    import ipaddress

    value = int(ipaddress.IPv4Address(v4))
    high, low = value >> 16, value & 0xFFFF
    flipped = value ^ 0xFFFFFFFF  # Teredo stores the client address inverted
    return {
        "NAT64": f"64:ff9b::{v4}",
        "local NAT64": f"64:ff9b:1::{v4}",
        "6to4": f"2002:{high:x}:{low:x}::1",
        "IPv4-compatible": f"::{v4}",
        "IPv4-mapped": f"::ffff:{v4}",
        "IPv4-translated": f"::ffff:0:{v4}",
        "Teredo": f"2001:0:4136:e378:8000:63bf:{flipped >> 16:x}:{flipped & 0xFFFF:x}",
    }


def webhook_filter(t: Target, cast) -> dict:
    from sqlalchemy import delete, func, select

    from faka.extensions import db
    from faka.messaging.models import WebhookEndpoint

    seller = cast.seller
    token = seller.csrf("/merchant/webhooks")

    def add(url: str) -> int:
        response = seller.post("/merchant/webhooks", {"csrf_token": token, "url": url, "events": ["order.paid"]})
        return response.status_code

    private = {
        f"{kind} {v4}": add(f"https://[{form}]/hook") for v4 in WEBHOOK_V4 for kind, form in _ipv6_forms(v4).items()
    }
    accepted = [name for name, status in private.items() if status != 400]
    public = [add(url) for url in PUBLIC_WEBHOOKS]
    with t.app.app_context():
        stored = (
            db.session.scalar(
                select(func.count())
                .select_from(WebhookEndpoint)
                .where(WebhookEndpoint.merchant_id == cast.shop.merchant_id)
            )
            or 0
        )
        # Gone again before anything is sold: the run sends nothing off this machine.
        db.session.execute(delete(WebhookEndpoint).where(WebhookEndpoint.merchant_id == cast.shop.merchant_id))
        db.session.commit()
    ok = not accepted and public == [200] * len(PUBLIC_WEBHOOKS) and stored == len(PUBLIC_WEBHOOKS)
    gets = (
        f"private addresses in NAT64/6to4/Teredo/IPv4-compatible/-mapped/-translated form accepted: "
        f"{len(accepted)}/{len(private)}; public ones: {public.count(200)}/{len(public)}"
    )
    return _row(
        "webhooks",
        "Webhook URL filter vs NAT64 / 6to4 / IPv4-compatible IPv6",
        f"a merchant adds webhooks to {len(WEBHOOK_V4)} private IPv4 addresses (loopback, 10/8, the cloud "
        "metadata address, 192.168/16) in 7 IPv6 forms each",
        gets,
        "test_shop_hardening.py::test_ipv6_forms_of_private_addresses_are_refused",
        ok,
        private=len(private),
        accepted=accepted,
        public=public,
        stored=stored,
    )


def no_store(t: Target, cast) -> dict:
    from sqlalchemy import select

    from faka.extensions import db
    from faka.orders.models import Order

    order = cast.buyer_order
    with t.app.app_context():
        number = db.session.scalar(select(Order.number).where(Order.token == token_of(order)))
    buyer = t.visitor(cast.buyer_source)
    answers = {
        "order page": buyer.get(order),
        "status": buyer.get(f"{order}/status", headers={"HX-Request": "true"}),
        "keys.txt": buyer.get(f"{order}/keys.txt"),
        "lookup": post_form(buyer, "/lookup", {"query": number, "query_password": "honest-1"}),
    }
    with_keys = {name: r for name, r in answers.items() if r.status_code in (200, 286)}
    stored = [name for name, r in answers.items() if "no-store" not in r.headers.get("Cache-Control", "")]
    ok = len(with_keys) == len(answers) and not stored
    gets = (
        f"answers with the keys that say `Cache-Control: no-store`: {len(answers) - len(stored)}/{len(answers)} "
        f"(order page, status poll, keys.txt, lookup)"
    )
    return _row(
        "no_store",
        "Order page with keys lacks `Cache-Control: no-store`",
        "a buyer's order page, status poll, keys.txt and lookup, as a shared cache would see them",
        gets,
        "test_shop_hardening.py::test_every_answer_with_keys_says_no_store",
        ok,
        statuses={n: r.status_code for n, r in answers.items()},
        cacheable=stored,
    )


def token_misses(t: Target, cast) -> dict:
    shared = t.source()  # a campus, a carrier's NAT: the guesser and a real buyer behind one address
    guesser = t.visitor(shared)
    statuses = [guesser.get(f"/order/{secrets.token_hex(16)}").status_code for _ in range(t.sizes["token_guesses"])]
    buyer = t.visitor(shared)
    page = buyer.get(cast.buyer_order)
    keys = buyer.get(f"{cast.buyer_order}/keys.txt")
    still_refused = buyer.get(f"/order/{secrets.token_hex(16)}").status_code
    ok = page.status_code == 200 and keys.status_code == 200 and 429 in statuses
    gets = (
        f"{len(statuses)} guesses: {statuses.count(404)} × 404, then {statuses.count(429)} × 429; a real buyer "
        f"behind that address: order page {page.status_code}, keys.txt {keys.status_code}"
    )
    return _row(
        "token_misses",
        "Bad-token limit locks a real buyer out behind a shared address",
        f"{len(statuses)} guessed order links from one address, then a buyer at that address opens theirs",
        gets,
        "test_shop_hardening.py::test_a_real_order_opens_behind_an_address_that_used_up_the_miss_budget",
        ok,
        guesses=len(statuses),
        misses=statuses.count(404),
        refused=statuses.count(429),
        order_page=page.status_code,
        keys_txt=keys.status_code,
        unknown_after=still_refused,
    )


def server_errors(t: Target, cast) -> dict:
    from sqlalchemy import select

    from faka.catalog.models import Product
    from faka.extensions import db
    from faka.inventory.keys import import_keys

    errors_before, requests_before = len(t.server_errors), t.requests
    seller = cast.seller
    probes = {}
    huge = str(10**100)
    probes["?page=10**100 (reviews)"] = t.visitor().get(f"/p/{cast.target}/reviews?page={huge}").status_code
    probes["?page=10**100 (orders)"] = seller.get(f"/merchant/orders?page={huge}").status_code
    form = {
        "category_id": cast.category_id,
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
    }
    for value in NOT_NUMBERS:
        probes[f"price {value}"] = post_form(
            seller, "/merchant/products/new", {**form, "title": "Probe", "price": value}
        ).status_code
    # A pending order's own sandbox form, its signature swapped for non-ASCII text.
    attacker = t.visitor()
    placed = post_form(
        attacker,
        f"/p/{cast.target}",
        {"quantity": 1, "email": "sign@example.com", "query_password": "sign-pass-1"},
        action=f"/p/{cast.target}/buy",
    )
    pay_page = attacker.get(placed.headers["Location"])
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', pay_page.text))
    for sign in NON_ASCII_SIGNS:
        probes[f"sandbox sign {sign[:2]}…"] = attacker.post("/pay/sandbox/notify", {**fields, "sign": sign}).status_code
    probes["CR/LF in next (page)"] = t.visitor().get("/login?next=%0d%0aSet-Cookie:%20planted=1").status_code
    # A product title with a line break, then a sale of it (its delivery email's subject).
    created = post_form(seller, "/merchant/products/new", {**form, "title": CRLF_TITLE, "price": "10.00"})
    probes["CR/LF in title"] = created.status_code
    slug = created.headers.get("Location", "").split("/products/")[-1].split("/")[0]
    with t.app.app_context():
        product = db.session.execute(select(Product).where(Product.slug == slug)).scalar_one_or_none()
        title = product.title if product else None
        if product is not None:
            import_keys(product.variants[0], "CRLF-KEY-1\nCRLF-KEY-2")
    sale = t.purchase(slug) if title else {"outcome": "no product"}
    # An old row's title with a line break: its delivery email (the header it would break).
    old_sale = t.purchase(cast.old_title)
    probes["old CR/LF title: sale"] = old_sale["outcome"]
    subject = None
    if t.mailbox is not None:
        deadline = time.monotonic() + MAIL_WAIT
        while subject is None and time.monotonic() < deadline:
            subject = next((str(m["Subject"]) for m in list(t.mailbox) if "Old card" in str(m["Subject"])), None)
            time.sleep(0.1)
        probes["old CR/LF title: email"] = (
            "sent, one line"
            if subject and "\n" not in subject
            else f"{'not sent' if subject is None else 'sent with a line break'}"
        )
    errors = t.server_errors[errors_before:]
    expected = {name: 400 for name in probes}
    expected.update(
        {
            "CR/LF in next (page)": 200,
            "CR/LF in title": 303,
            "old CR/LF title: sale": "delivered",
            "old CR/LF title: email": "sent, one line",
        }
    )
    wrong = {name: status for name, status in probes.items() if status != expected[name]}
    ok = (
        not errors
        and not wrong
        and title is not None
        and "\r" not in title
        and "\n" not in title
        and sale["outcome"] == "delivered"
    )

    def got(prefix: str) -> str:
        return "/".join(sorted({str(status) for name, status in probes.items() if name.startswith(prefix)}))

    gets = (
        f"5xx answers: {len(errors)} of {t.requests - requests_before}; huge ?page= → {got('?page')}, "
        f"sNaN/1e999/NaN/-Infinity price → {got('price')}, non-ASCII sandbox signature → {got('sandbox')}, "
        f"CR/LF in `next` → {got('CR/LF in next')}; a title with CR/LF is stored as {title!r} and sold: "
        f"{sale['outcome']}; an old title with CR/LF sold: {old_sale['outcome']}, its delivery email "
        f"{probes.get('old CR/LF title: email', 'not checked (no SMTP server)')}"
        + (f" ({re.sub(r'[0-9]{12,}', '…', subject)!r})" if subject else "")
    )
    return _row(
        "edge_500s",
        "500s from huge ?page=, sNaN/1e999, non-ASCII sandbox sign, CR/LF in next and title",
        "each of these requests once",
        gets,
        "test_edge_input.py (test_public_review_lists_refuse_a_page_that_cannot_be, "
        "test_the_price_takes_only_a_plain_number, test_a_non_ascii_signature_is_a_failed_signature, "
        "test_an_old_title_with_a_line_break_still_gets_its_delivery_email_sent), test_fuzz_routes.py",
        ok,
        probes=probes,
        wrong=wrong,
        errors=errors,
        title=title,
        sale=sale["outcome"],
        old_subject=subject,
    )


# -- the run ------------------------------------------------------------------------------

# Run order (the sandbox first: it needs the install as `init-db` left it) ...
PHASES = (
    ("sandbox", sandbox_default),
    ("open_redirect", open_redirect),
    ("sessions", session_replay),
    ("licence", refused_licences),
    ("pixels", pixel_bomb),
    ("complaint_posts", complaint_posts),
    ("csrf_placeholder", csrf_placeholder),
    ("totp_replay", totp_replay),
    ("payout", payout_with_session),
    ("signup", signup_enumeration),
    ("lookup_timing", lookup_timing),
    ("account_lock", account_lock),
    ("hoarding", stock_hoarding),
    ("webhooks", webhook_filter),
    ("no_store", no_store),
    ("token_misses", token_misses),
    ("edge_500s", server_errors),
)
# ... and the table's order: the review's.
TABLE_ORDER = (
    "open_redirect",
    "sessions",
    "licence",
    "pixels",
    "complaint_posts",
    "sandbox",
    "csrf_placeholder",
    "totp_replay",
    "payout",
    "signup",
    "lookup_timing",
    "account_lock",
    "hoarding",
    "webhooks",
    "no_store",
    "token_misses",
    "edge_500s",
)


def run(t: Target, log=lambda message: None) -> dict:
    """Every phase, in order; a phase that fails to run is a row with ok False and its error."""
    cast = seed(t)
    rows = []
    for key, phase in PHASES:
        log(f"[findings] {key} ...")
        requests_before, errors_before, started = t.requests, len(t.server_errors), time.perf_counter()
        try:
            row = phase(t, cast)
        except Exception as exc:  # noqa: BLE001 - the row says what broke; the rest still runs
            row = _row(
                key,
                key,
                "-",
                f"the phase failed: {type(exc).__name__}: {exc}",
                "-",
                False,
                error=f"{type(exc).__name__}: {exc}",
            )
        row.update(
            requests=t.requests - requests_before,
            server_errors=t.server_errors[errors_before:],
            seconds=round(time.perf_counter() - started, 2),
        )
        if row["server_errors"]:
            row["ok"] = False
        log(f"    {'ok' if row['ok'] else 'NOT OK'}: {row['gets']} ({row['requests']} requests, {row['seconds']} s)")
        rows.append(row)
    order = {key: i for i, key in enumerate(TABLE_ORDER)}
    rows.sort(key=lambda r: order.get(r["key"], len(order)))
    return {"rows": rows, "requests": t.requests, "server_errors": t.server_errors}


def table(result: dict) -> str:
    """The findings as a Markdown table."""
    lines = ["| finding | attack | what it gets now | pinning test |", "| --- | --- | --- | --- |"]
    for row in result["rows"]:
        gets = row["gets"] if row["ok"] else f"**NOT FIXED?** {row['gets']}"
        lines.append(
            f"| {row['finding']} | {row['attack']} | {gets} | {row['test']} |".replace("\r", "\\r").replace("\n", "\\n")
        )
    lines.append(
        f"\n{result['requests']} requests in all, 5xx answers: {len(result['server_errors'])}"
        + (f" ({', '.join(result['server_errors'][:5])})" if result["server_errors"] else "")
    )
    return "\n".join(lines)
