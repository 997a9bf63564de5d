"""Two web hosts behind a load balancer, one worker, one PostgreSQL database and one Redis:
nothing a buyer or a merchant does depends on which host answers (issue 22).

Everything is a real process on 127.0.0.1, started the way an operator would start it.
`flask init-db`, `create-operator --shop` and `gateway-config epay` run on an empty
database; host A and host B are gunicorn (sync workers, -w 2 each) with instance folders of
their own, sharing SECRET_KEY, FAKA_ENCRYPTION_KEYS, DATABASE_URL, REDIS_URL and
FAKA_UPLOAD_STORAGE=database from the environment; `python -m faka.worker` is a third
process with a third instance folder, and sends email to an SMTP server in this process.
A fake 易支付 on another port sends its notifications to FAKA_BASE_URL, which is a small TCP
load balancer in this process (round robin over A and B, skipping a host that refuses the
connection): the provider knows one site, not its hosts.

The owner signs in on A and confirms the two-factor code on B (the session is a signed
cookie), then opens the shop through the console and the back office on A. Then:

1. a product image uploaded through the form on A is on the product page on B, and B
   serves each of its files with the bytes their names hash to;
2. a buyer orders on A, pays at the provider, and polls the order on B until the key
   shows; the worker process delivered it and emailed it;
3. order lookups alternating between A and B are refused after one shared count;
4. a product renamed on A shows renamed on B within the page-cache time (2 s);
5. a buyer's email blacklisted in the console on A is refused at checkout on B at once,
   although B's processes had just read the blacklist and keep it for the page-cache time:
   A's forget() reaches them through Redis;
6. host A is SIGKILLed (the whole process group) while a checkout waits inside its
   transaction: that checkout leaves nothing, its buyer orders again on B; a buyer who
   had ordered on A pays on B (the provider's notification fails over to B); an order
   left unpaid gives its key back when `flask reconcile` expires it. Every paid order is
   delivered once, no key is sold twice, and the key counts add up.

Each scenario prints one line with its timings (`pytest -s`); all of them, with the
start-up, are written to FAKA_TWO_HOSTS_TIMES (default: twohosts-timings.txt in the
temporary folder) when the module ends.
"""

import hashlib
import io
import os
import random
import re
import sys
import tempfile
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import timedelta
from email import message_from_bytes, policy
from html.parser import HTMLParser
from pathlib import Path
from urllib.parse import urljoin

import pyotp
import pytest
import requests
from aiosmtpd.controller import Controller
from cryptography.fernet import Fernet
from load_balancer import LoadBalancer
from PIL import Image
from redis import Redis
from rq import Worker
from rq.job import Job
from sqlalchemy import func, select, text, update
from test_backup import flask, opened, scratch_database
from test_chaos import assert_books_intact
from test_fake_providers import PHONE_UA, Browser, leave_and_pay

import chaos_tools
from bench.attack import _SourceAdapter
from chaos_tools import Process, WebServer, app_env, wait_until
from conftest import TEST_DATABASE, TEST_REDIS_URL, count, csrf_from, free_port, key_texts, reload
from faka.core.db import write_transaction
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory import stock as key_stock
from faka.inventory.models import CardKey
from faka.orders.models import Order
from fakes.providers import FakeProviders

pytestmark = [
    pytest.mark.redis,
    pytest.mark.skipif(
        TEST_DATABASE == "sqlite",
        reason="two hosts share one PostgreSQL database and one Redis: this runs in the PostgreSQL part "
        "(FAKA_TEST_DATABASE=postgresql://...)",
    ),
]

OWNER_EMAIL, OWNER_PASSWORD = "owner@twohosts.example", "two-hosts-2026"
SHOP = "双机小铺"
CATEGORY = "游戏点卡"
TITLE = "Steam 钱包 ¥50"
KEYS = [f"STEAM-50-{i:04d}-TWOHOSTS" for i in range(12)]
QUERY_PASSWORD = "find-it-again-1"
LOOKUP_LIMIT = 4  # FAKA_RATELIMIT_LOOKUP per minute, for both hosts together
PAGE_CACHE_SECONDS = 2.0  # config.py's default, which the hosts run with
SLACK = 1.5  # a request started just before the cache expires, on a busy machine
WAIT = 30  # seconds any one thing may take before the test gives up
START = 90  # seconds a process may take to answer, started beside six others on a busy machine
HTMX_STOP_POLLING = 286
CARD_KEY = re.compile(r'class="card-key"[^>]*>([^<]+)<')
EPAY_SETTINGS = ("api_url", "pid", "key", "sign_type")  # 易支付 with MD5 signatures
PRODUCT_IMAGE = re.compile(r"/images/([0-9a-f]{64}\.(?:webp|jpg))")
CHECKOUTS_AT_ONCE = 4  # side by side: both of B's gunicorn workers serve some


# -- what the test reads from pages ---------------------------------------------------------


@dataclass
class Form:
    action: str
    fields: dict[str, str] = field(default_factory=dict)
    options: dict[str, list[tuple[str, str]]] = field(default_factory=dict)  # select -> (value, text)


class PageForms(HTMLParser):
    """The forms of a page, each with its absolute action and what a browser sends when it
    is submitted unchanged: inputs' values, checked boxes only, each select's selected (or
    first) option, and textareas' text. Files and buttons are left out."""

    def __init__(self, page: requests.Response):
        super().__init__(convert_charrefs=True)
        self.url = page.url
        self.forms: list[Form] = []
        self._form: Form | None = None
        self._select: str | None = None
        self._option: tuple[str, list[str], bool] | None = None  # value, text, selected
        self._textarea: tuple[str, list[str]] | None = None
        self.feed(page.text)

    def having(self, name: str, value: str | None = None) -> Form:
        """The one form with this field (and value)."""
        (form,) = [f for f in self.forms if name in f.fields and value in (None, f.fields[name])]
        return form

    def handle_starttag(self, tag, attrs):
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self._form = Form(urljoin(self.url, a.get("action") or self.url))
            self.forms.append(self._form)
            return
        name = a.get("name", "")
        if self._form is None:
            return
        if tag == "input" and name:
            kind = a.get("type", "text").lower()
            if kind in ("checkbox", "radio"):
                if "checked" in a:
                    self._form.fields[name] = a.get("value") or "on"
            elif kind not in ("file", "submit", "button", "image", "reset"):
                self._form.fields[name] = a.get("value", "")
        elif tag == "select" and name:
            self._select = name
            self._form.options[name] = []
        elif tag == "option" and self._select:
            self._option = (a.get("value", ""), [], "selected" in a)
        elif tag == "textarea" and name:
            self._textarea = (name, [])

    def handle_data(self, data):
        for open_element in (self._option, self._textarea):
            if open_element is not None:
                open_element[1].append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self._form = None
        elif tag == "select":
            self._select = None
        elif tag == "option" and self._option is not None and self._form is not None:
            value, words, selected = self._option
            self._form.options[self._select].append((value, "".join(words).strip()))
            if selected or self._select not in self._form.fields:
                self._form.fields[self._select] = value
            self._option = None
        elif tag == "textarea" and self._textarea is not None and self._form is not None:
            name, words = self._textarea
            self._form.fields[name] = "".join(words).removeprefix("\n")
            self._textarea = None


class Buyer(Browser):
    """A phone without JavaScript, from an address of its own: at the owner's address the
    risk rules would take the buyer for the shop buying from itself."""

    def __init__(self, address: str):
        super().__init__(PHONE_UA)
        self.http.mount("http://", _SourceAdapter(address))


def photo(seed: int, size: tuple[int, int] = (900, 600)) -> bytes:
    """A photo-like PNG: noise compresses badly, so each rendition is large enough to be
    stored in several pieces."""
    image = Image.frombytes("RGB", size, random.Random(seed).randbytes(size[0] * size[1] * 3))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


# -- the site: processes, balancer, provider, mailbox -----------------------------------


class Mailbox:
    """An SMTP server's handler that keeps what it receives (aiosmtpd)."""

    def __init__(self):
        self.messages = []

    async def handle_DATA(self, server, session, envelope):
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"

    def to(self, address: str) -> list:
        return [m for m in self.messages if m["To"] == address]


class Timings:
    """One line per step, printed as it ends and written to a file for the closing note."""

    def __init__(self):
        self.lines: list[str] = []

    def record(self, line: str) -> None:
        self.lines.append(line)
        print(f"\ntwo hosts: {line}")

    def write(self) -> Path:
        path = Path(os.environ.get("FAKA_TWO_HOSTS_TIMES") or Path(tempfile.gettempdir()) / "twohosts-timings.txt")
        path.write_text("".join(f"{line}\n" for line in self.lines), encoding="utf-8")
        return path


@dataclass
class Site:
    a: WebServer
    b: WebServer
    worker: Process
    balancer: LoadBalancer
    providers: FakeProviders
    mailbox: Mailbox
    cli: dict  # the environment of `flask --app faka` commands on the site
    owner: Browser  # the shop's owner, signed in
    slug: str
    times: Timings

    def logs(self) -> str:
        """The end of each process's output, for a failure's message."""
        parts = []
        for name, process in (("host A", self.a.process), ("host B", self.b.process), ("worker", self.worker)):
            if process is not None:
                parts.append(f"--- {name} ---\n{process.output()[-1500:]}")
        return "\n".join(parts)


def start_worker(env: dict, logdir: Path, started: list[Process]) -> Process:
    """`python -m faka.worker`, returned once it has registered with Redis. It is in
    `started` before the wait, so a worker that never registers is killed too."""
    worker = Process("worker", [sys.executable, "-m", "faka.worker"], env, logdir)
    started.append(worker)
    with Redis.from_url(env["REDIS_URL"]) as conn:

        def registered():
            if not worker.alive():
                raise AssertionError(f"the worker exited:\n{worker.output()}")
            return [w for w in Worker.all(connection=conn) if w.pid == worker.popen.pid]

        wait_until(registered, START, what="the worker to register with Redis")
    return worker


def flush_redis() -> None:
    with Redis.from_url(TEST_REDIS_URL) as conn:
        conn.flushdb()


def run(env: dict, *command: str) -> str:
    """A `flask --app faka` command on the site's database; its output."""
    done = flask(env, *command)
    assert done.returncode == 0, f"flask {' '.join(command)}:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="module")
def site(tmp_path_factory, base_config, fake_providers):
    root = tmp_path_factory.mktemp("two-hosts")
    times = Timings()
    started: list[Process] = []
    hosts: list[WebServer] = []
    begun = time.perf_counter()
    with ExitStack() as stack:
        url = stack.enter_context(scratch_database("twohosts"))
        monkeypatch = stack.enter_context(pytest.MonkeyPatch.context())
        flush_redis()
        stack.callback(flush_redis)
        mailbox = Mailbox()
        smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
        smtp.start()
        stack.callback(smtp.stop)
        balancer = LoadBalancer().start()  # its hosts are added once they have ports
        stack.callback(balancer.stop)
        shared = {
            "SQLALCHEMY_DATABASE_URI": url,
            "ENCRYPTION_KEYS": Fernet.generate_key().decode(),
            "SECRET_KEY": Fernet.generate_key().decode(),
            "RQ_QUEUE": "faka-two-hosts",
        }
        env = app_env(
            shared,
            REDIS_URL=TEST_REDIS_URL,
            FAKA_BASE_URL=balancer.url,
            FAKA_UPLOAD_STORAGE="database",
            FAKA_RATELIMIT_LOOKUP=f"{LOOKUP_LIMIT} per minute",
            MAIL_SERVER="127.0.0.1",
            MAIL_PORT=smtp.port,
        )
        # app_env turns the caches off for the chaos tests; these hosts run with the defaults.
        for name in ("FAKA_PAGE_CACHE_SECONDS", "FAKA_STATUS_CACHE_SECONDS"):
            env.pop(name, None)

        def instance(name: str) -> dict:
            return {**env, "FAKA_INSTANCE_PATH": str(root / name)}

        @stack.callback
        def stop_processes():  # SIGKILL to each process group, whatever happened
            for host in hosts:
                host.kill()
            for process in started:
                process.kill()

        cli = instance("cli")
        run(cli, "init-db")
        created = time.perf_counter()
        # The commands, both hosts and the worker start side by side: seven Python processes
        # on a machine that may be busy, so each may take longer to answer than chaos_tools
        # allows one process on its own.
        monkeypatch.setattr(chaos_tools, "START_TIMEOUT", START)
        hosts.extend([WebServer(instance("host-a"), root), WebServer(instance("host-b"), root)])
        balancer.ports = [host.port for host in hosts]
        epay = fake_providers.epay.settings()
        with ThreadPoolExecutor(5) as pool:
            steps = [
                pool.submit(
                    run, cli, "create-operator", "--email", OWNER_EMAIL, "--password", OWNER_PASSWORD, "--shop", SHOP
                ),
                pool.submit(run, cli, "gateway-config", "epay", "--enable", *(f"{k}={epay[k]}" for k in EPAY_SETTINGS)),
                *(pool.submit(host.start) for host in hosts),
                pool.submit(start_worker, instance("worker"), root, started),
            ]
        for step in steps:
            step.result()
        worker = steps[-1].result()
        up = time.perf_counter()

        stack.enter_context(
            opened(
                base_config,
                monkeypatch,
                root / "test",
                url,
                ENCRYPTION_KEYS=shared["ENCRYPTION_KEYS"],
                SECRET_KEY=shared["SECRET_KEY"],
            )
        )
        a, b = hosts
        owner = Browser()
        slug = open_the_shop(owner, a, b)
        ready = time.perf_counter()
        times.record(
            f"start-up {ready - begun:.1f} s: init-db {created - begun:.1f} s; create-operator, gateway-config, "
            f"hosts A and B (gunicorn -w 2) and the worker side by side {up - created:.1f} s; "
            f"the shop opened through the pages {ready - up:.1f} s (load average {os.getloadavg()[0]:.1f}, "
            f"{os.cpu_count()} cores)"
        )
        stack.callback(times.write)
        yield Site(a, b, worker, balancer, fake_providers, mailbox, cli, owner, slug, times)


def open_the_shop(owner: Browser, a: WebServer, b: WebServer) -> str:
    """The owner signs in on A and confirms two-factor authentication on B (the session
    and its CSRF token are a signed cookie, good on every host with the same SECRET_KEY),
    adds a category in the console and lists a product with its keys, on A. Its slug."""
    login = owner.get(f"{a.url}/login")
    setup = owner.http.post(
        f"{a.url}/login",
        data={"csrf_token": csrf_from(login.text), "email": OWNER_EMAIL, "password": OWNER_PASSWORD},
        timeout=WAIT,
    )
    assert setup.url == f"{a.url}/account/2fa/setup", (setup.status_code, setup.url)
    secret = re.search(r'<code class="secret">([^<]+)</code>', setup.text).group(1).replace(" ", "")
    codes = owner.http.post(
        f"{b.url}/account/2fa/setup",
        data={"csrf_token": csrf_from(setup.text), "code": pyotp.TOTP(secret).now()},
        timeout=WAIT,
    )
    assert codes.url == f"{b.url}/account/2fa/recovery-codes", (codes.status_code, codes.url)

    categories = owner.get(f"{a.url}/operator/categories")
    added = owner.http.post(
        f"{a.url}/operator/categories",
        data={"csrf_token": csrf_from(categories.text), "name": CATEGORY, "name_en": "Game cards"},
        timeout=WAIT,
    )
    assert added.status_code == 200 and CATEGORY in added.text, added.status_code

    form = PageForms(owner.get(f"{a.url}/merchant/products/new")).having("title")
    category = next(value for value, label in form.options["category_id"] if label == CATEGORY)
    form.fields.update(title=TITLE, category_id=category, price="50.00", description_md="自动发货，**即时到账**。")
    saved = owner.http.post(form.action, data=form.fields, timeout=WAIT)
    keys_page = re.fullmatch(rf"{re.escape(a.url)}/merchant/products/([^/]+)/keys", saved.url)
    assert saved.status_code == 200 and keys_page, (saved.status_code, saved.url)

    form = PageForms(saved).having("separator")  # the import (the void form has keys too)
    form.fields["keys"] = "\n".join(KEYS)
    imported = owner.http.post(form.action, data=form.fields, timeout=WAIT)
    assert imported.status_code == 200 and 'class="report' in imported.text, imported.status_code
    return keys_page.group(1)


# -- what a buyer does --------------------------------------------------------------------


def checkout(buyer: Buyer, host: WebServer, slug: str, quantity: int, email: str) -> str:
    """Order on `host` (paying with 易支付, the one gateway); the order's token."""
    answer = place_order(buyer, host, slug, quantity, email)
    assert answer.status_code == 303, (answer.status_code, answer.text[:500])
    return answer.headers["Location"].rstrip("/").rsplit("/", 1)[-1]


def place_order(buyer: Buyer, host: WebServer, slug: str, quantity: int, email: str) -> requests.Response:
    """The answer to the product page's order form, as it comes (303 to the order when taken)."""
    page = buyer.get(f"{host.url}/p/{slug}")
    assert page.status_code == 200, page.status_code
    return buyer.http.post(
        f"{host.url}/p/{slug}/buy",
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": str(quantity),
            "email": email,
            "query_password": QUERY_PASSWORD,
            "gateway": "epay",
        },
        allow_redirects=False,
        timeout=WAIT,
    )


def pay(site: Site, buyer: Buyer, host: WebServer, token: str) -> requests.Response:
    """From faka's pay page on `host` to the provider, pay, and come back (through the
    balancer, the site's address): the page the buyer ends on."""
    page = buyer.get(f"{host.url}/pay/{token}")
    assert page.status_code == 200, (page.status_code, page.text[:500])
    back = leave_and_pay(buyer, page, site.providers)
    assert back.status_code == 200 and back.url.startswith(f"{site.balancer.url}/order/{token}"), back.url
    return back


def keys_on(site: Site, buyer: Buyer, host: WebServer, token: str) -> list[str]:
    """Poll the order's status on `host`, as the order page does, until it shows the keys."""

    def shown():
        status = buyer.get(f"{host.url}/order/{token}/status")
        return status.status_code == HTMX_STOP_POLLING and CARD_KEY.findall(status.text)

    return wait_until(shown, WAIT, interval=0.2, what=lambda: f"the keys on {host.url}\n{site.logs()}")


def order(token: str) -> Order:
    db.session.commit()  # see what the hosts committed
    return db.session.scalars(select(Order).where(Order.token == token)).one()


def stock() -> dict[str, int]:
    db.session.commit()
    return dict(db.session.execute(select(CardKey.status, func.count()).group_by(CardKey.status)).all())


# -- the scenarios --------------------------------------------------------------------------


def test_an_image_uploaded_on_a_is_shown_by_b(site):
    begun = time.perf_counter()
    a, b = site.a, site.b
    images = site.owner.get(f"{a.url}/merchant/products/{site.slug}/images")
    form = PageForms(images).having("role", "cover")
    uploaded = site.owner.http.post(
        form.action, data=form.fields, files={"image": ("cover.png", photo(1), "image/png")}, timeout=WAIT
    )
    assert uploaded.status_code == 200 and uploaded.url.startswith(f"{a.url}/merchant/products/{site.slug}/images")
    assert '<p class="alert" role="alert">' not in uploaded.text, uploaded.text[:2000]
    stored = time.perf_counter()

    buyer = Buyer("127.0.0.2")

    def on_b_page():
        page = buyer.get(f"{b.url}/p/{site.slug}")
        return page.status_code == 200 and sorted(set(PRODUCT_IMAGE.findall(page.text)))

    names = wait_until(on_b_page, PAGE_CACHE_SECONDS + SLACK, interval=0.1, what="the cover on B's product page")
    seen = time.perf_counter()
    size = 0
    for name in names:
        on_b = buyer.get(f"{b.url}/images/{name}")
        assert on_b.status_code == 200, f"B answers {on_b.status_code} for {name}, uploaded on A\n{site.logs()}"
        assert hashlib.sha256(on_b.content).hexdigest() == name.split(".")[0]  # named by its bytes
        assert on_b.content == requests.get(f"{a.url}/images/{name}", timeout=WAIT).content
        assert Image.open(io.BytesIO(on_b.content)).size[0] >= 200
        size += len(on_b.content)
    site.times.record(
        f"1 image: uploaded on A in {stored - begun:.2f} s, on B's product page {seen - stored:.2f} s later; "
        f"B serves its {len(names)} files ({size // 1024} KB) byte for byte; {time.perf_counter() - begun:.2f} s"
    )


def test_a_buyer_orders_on_a_pays_and_sees_the_key_on_b(site):
    begun = time.perf_counter()
    buyer = Buyer("127.0.0.3")
    token = checkout(buyer, site.a, site.slug, 1, "first@example.com")
    ordered = time.perf_counter()
    pay(site, buyer, site.a, token)
    paid = time.perf_counter()
    keys = keys_on(site, buyer, site.b, token)
    shown = time.perf_counter()

    bought = order(token)
    assert keys == key_texts(bought) and keys[0] in KEYS
    with Redis.from_url(TEST_REDIS_URL) as conn:
        job = Job.fetch(f"deliver-{bought.id}", connection=conn)
        (worker,) = [w for w in Worker.all(connection=conn) if w.name == job.worker_name]
    assert job.get_status() == "finished" and worker.pid == site.worker.popen.pid  # the worker process delivered it
    (email,) = wait_until(lambda: site.mailbox.to("first@example.com"), WAIT, what="the delivery email")
    assert bought.number in email["Subject"] and keys[0] in email.get_body(("plain",)).get_content()
    assert_books_intact(bought)
    site.times.record(
        f"2 order on A, pay, key on B: checkout {ordered - begun:.2f} s, pay page to provider and back "
        f"{paid - ordered:.2f} s, key on B's status poll {shown - paid:.2f} s later; {time.perf_counter() - begun:.2f} s"
    )


def test_order_lookups_on_both_hosts_share_one_limit(site):
    begun = time.perf_counter()
    visitor = Buyer("127.0.0.4")
    answers = []
    for attempt in range(2 * LOOKUP_LIMIT):
        host = (site.a, site.b)[attempt % 2]
        page = visitor.get(f"{host.url}/lookup?lang=en")
        answer = visitor.http.post(
            f"{host.url}/lookup",
            data={"csrf_token": csrf_from(page.text), "query": "nobody@example.com", "query_password": "not-mine-1"},
            allow_redirects=False,
            timeout=WAIT,
        )
        answers.append((host.port, answer.status_code))
        if answer.status_code == 429:
            assert "You are going too fast" in answer.text
    hosts = [port for port, _status in answers]
    # Each host alone would allow LOOKUP_LIMIT: together they allow it once.
    assert answers == list(zip(hosts, [400] * LOOKUP_LIMIT + [429] * LOOKUP_LIMIT)), answers
    site.times.record(
        f"3 shared rate limit: {2 * LOOKUP_LIMIT} lookups alternating A and B, limit {LOOKUP_LIMIT} a minute: "
        f"{LOOKUP_LIMIT} answered, {LOOKUP_LIMIT} refused (429); {time.perf_counter() - begun:.2f} s"
    )


def test_a_product_renamed_on_a_shows_on_b_within_the_page_cache_time(site):
    begun = time.perf_counter()
    buyer = Buyer("127.0.0.5")
    product_page = f"{site.b.url}/p/{site.slug}"
    edit = PageForms(site.owner.get(f"{site.a.url}/merchant/products/{site.slug}/edit")).having("title")
    old_title, new_title = edit.fields["title"], f"{edit.fields['title']} 限时特惠"
    for _ in range(6):  # both of B's workers have the page in their cache
        assert f">{old_title}<" in buyer.get(product_page).text

    edit.fields["title"] = new_title
    saved = site.owner.http.post(edit.action, data=edit.fields, timeout=WAIT)
    assert saved.status_code == 200 and saved.url == f"{site.a.url}/merchant/products", (saved.status_code, saved.url)
    edited = time.perf_counter()

    last_stale, fresh_in_a_row = 0.0, 0
    while fresh_in_a_row < 6:  # several answers in a row: each of B's workers has it
        page = buyer.get(product_page)
        if f">{new_title}<" in page.text:
            fresh_in_a_row += 1
        else:
            last_stale, fresh_in_a_row = time.perf_counter() - edited, 0
        assert time.perf_counter() - edited < WAIT, "B never showed the new title"
        time.sleep(0.05)
    assert last_stale <= PAGE_CACHE_SECONDS + SLACK, f"B showed the old title {last_stale:.2f} s after the edit"
    site.times.record(
        f"4 edit on A, seen on B: the old title last served by B {last_stale:.2f} s after the save "
        f"(page cache {PAGE_CACHE_SECONDS:g} s); {time.perf_counter() - begun:.2f} s"
    )


def test_a_buyer_blacklisted_on_a_is_refused_on_b_at_once(site):
    begun = time.perf_counter()
    a, b = site.a, site.b
    fraud = "chargebacks@example.com"
    form = PageForms(site.owner.get(f"{a.url}/operator/blacklist")).having("value")
    form.fields.update(kind="email", value=fraud, reason="three chargebacks", days="")

    def orders_on_b(emails: list[str], first_address: int) -> list[requests.Response]:
        """Checkouts side by side, each from a browser and an address of its own."""
        with ThreadPoolExecutor(len(emails)) as pool:
            answers = [
                pool.submit(place_order, Buyer(f"127.0.9.{first_address + i}"), b, site.slug, 1, email)
                for i, email in enumerate(emails)
            ]
        return [answer.result() for answer in answers]

    # B's processes read the blacklist (without this buyer) and keep it for the page-cache time.
    warm = orders_on_b([f"warm-{i}@example.com" for i in range(CHECKOUTS_AT_ONCE)], 1)
    assert [r.status_code for r in warm] == [303] * CHECKOUTS_AT_ONCE
    warmed = time.perf_counter()
    saved = site.owner.http.post(form.action, data=form.fields, timeout=WAIT)
    assert saved.status_code == 200 and saved.url.startswith(f"{a.url}/operator/blacklist"), saved.status_code
    assert fraud in saved.text
    blacklisted = time.perf_counter()
    refused = orders_on_b([fraud] * CHECKOUTS_AT_ONCE, 101)
    answered = time.perf_counter()
    assert [r.status_code for r in refused] == [403] * CHECKOUTS_AT_ONCE, [r.text[:300] for r in refused]
    assert answered - blacklisted < 1.0, f"B refused the buyer {answered - blacklisted:.2f} s after the save"
    # Within the cache time of B's reads: without A's message, B would still have let the buyer order.
    assert answered - warmed < PAGE_CACHE_SECONDS, f"{answered - warmed:.2f} s: B's caches may have expired"

    # The warming orders give their keys back, as unpaid orders do when they expire.
    tokens = [r.headers["Location"].rstrip("/").rsplit("/", 1)[-1] for r in warm]
    db.session.commit()  # see what the hosts committed
    with write_transaction():
        db.session.execute(
            update(Order).where(Order.token.in_(tokens)).values(expires_at=utcnow() - timedelta(minutes=1))
        )
        assert key_stock.expire_stale_orders(utcnow()) == CHECKOUTS_AT_ONCE
    assert stock().get(CardKey.RESERVED, 0) == 0
    site.times.record(
        f"5 blacklisted on A, refused on B: {CHECKOUTS_AT_ONCE} checkouts on B, then the console's save on A "
        f"{blacklisted - warmed:.2f} s, then {CHECKOUTS_AT_ONCE} checkouts on B refused (403) within "
        f"{answered - blacklisted:.2f} s of the save ({answered - warmed:.2f} s after B read the blacklist; "
        f"page cache {PAGE_CACHE_SECONDS:g} s); {time.perf_counter() - begun:.2f} s"
    )


@contextmanager
def orders_locked():
    """Hold the orders table (EXCLUSIVE: reads go on, no order is written) from a connection
    of the test. Yields a function giving the server process of a checkout waiting to write
    its order, or None."""
    with db.engine.connect() as conn:
        conn.execute(text("LOCK TABLE orders IN EXCLUSIVE MODE"))

        def waiting_checkout() -> int | None:
            conn.execute(text("SELECT pg_stat_clear_snapshot()"))  # else read once per transaction
            return conn.execute(
                text(
                    "SELECT pid FROM pg_stat_activity WHERE pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                    " AND query ILIKE 'INSERT INTO orders%'"
                )
            ).scalar()

        yield waiting_checkout
        conn.rollback()


def test_host_a_killed_mid_checkout_the_buyers_finish_on_b(site):
    begun = time.perf_counter()
    a, b = site.a, site.b
    before = stock()
    # Before the crash two buyers have ordered on A: one is about to pay, one never will.
    payer, leaver, interrupted = Buyer("127.0.0.6"), Buyer("127.0.0.7"), Buyer("127.0.0.8")
    paying = checkout(payer, a, site.slug, 2, "payer@example.com")
    leaving = checkout(leaver, a, site.slug, 1, "leaver@example.com")
    product_page = interrupted.get(f"{a.url}/p/{site.slug}")

    # A third buyer's checkout is inside its transaction on A when A dies.
    sent: dict[str, object] = {}

    def buy_on_a():
        try:
            sent["answer"] = interrupted.http.post(
                f"{a.url}/p/{site.slug}/buy",
                data={
                    "csrf_token": csrf_from(product_page.text),
                    "quantity": "1",
                    "email": "interrupted@example.com",
                    "query_password": QUERY_PASSWORD,
                    "gateway": "epay",
                },
                allow_redirects=False,
                timeout=WAIT,
            )
        except requests.RequestException as exc:
            sent["error"] = exc

    with orders_locked() as waiting_checkout:
        thread = threading.Thread(target=buy_on_a, name="checkout-on-a", daemon=True)
        thread.start()

        def checkout_waits() -> int | None:
            if not thread.is_alive():
                answer = sent.get("answer")
                raise AssertionError(f"the checkout on A ended: {sent} {answer.text[:3000] if answer else site.logs()}")
            return waiting_checkout()

        backend = wait_until(checkout_waits, WAIT, interval=0.05, what="the checkout on A to write its order")
        a.kill()  # SIGKILL to gunicorn's process group: the master and both workers
        killed = time.perf_counter()
        thread.join(WAIT)
    assert isinstance(sent.get("error"), requests.ConnectionError), sent  # the buyer saw the connection drop

    # PostgreSQL rolls the dead host's transaction back when it finds the client gone.
    def rolled_back():
        db.session.commit()
        return not db.session.execute(text("SELECT 1 FROM pg_stat_activity WHERE pid = :pid"), {"pid": backend}).first()

    wait_until(rolled_back, WAIT, what="the dead host's database session to end")
    assert count(Order, Order.email == "interrupted@example.com") == 0

    # The interrupted buyer orders again, on B; the payer pays the order made on A, on B.
    again = checkout(interrupted, b, site.slug, 1, "interrupted@example.com")
    refused_before = site.balancer.refused[a.port]
    pay(site, interrupted, b, again)
    pay(site, payer, b, paying)
    assert site.balancer.refused[a.port] > refused_before  # the provider's calls and returns went to B
    delivered = {token: keys_on(site, buyer, b, token) for buyer, token in ((interrupted, again), (payer, paying))}
    finished = time.perf_counter()

    # The order nobody pays expires, and its key is for sale again.
    left = order(leaving)
    assert left.status == Order.PENDING and count(CardKey, CardKey.order_id == left.id) == 1
    left.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    reconciled = run(site.cli, "reconcile")
    assert reload(left).status == Order.EXPIRED, reconciled
    assert count(CardKey, CardKey.order_id == left.id) == 0

    # Each paid order delivered once; no key sold twice; every imported key accounted for.
    orders = [order(again), order(paying)]
    assert_books_intact(*orders)
    sold = sum(o.quantity for o in orders)
    shown = [key for keys in delivered.values() for key in keys]
    assert sorted(shown) == sorted(key for o in orders for key in key_texts(o)) and len(set(shown)) == sold
    after = stock()
    assert after.get(CardKey.RESERVED, 0) == 0 and sum(after.values()) == len(KEYS)
    assert after[CardKey.SOLD] == before.get(CardKey.SOLD, 0) + sold
    assert after[CardKey.AVAILABLE] == before[CardKey.AVAILABLE] - sold
    for o in orders:
        (email,) = wait_until(lambda o=o: site.mailbox.to(o.email), WAIT, what=f"the email of {o.number}")
        assert o.number in email["Subject"]
    assert b.process.alive() and site.worker.alive()
    site.times.record(
        f"6 host A SIGKILLed mid-checkout: the interrupted checkout left no order; its buyer ordered again "
        f"and both buyers paid on B (the balancer found A refusing {site.balancer.refused[a.port]} times), keys "
        f"shown {finished - killed:.2f} s after the kill; the unpaid order "
        f"expired by `flask reconcile` gave its key back; stock {after}; {time.perf_counter() - begun:.2f} s"
    )
