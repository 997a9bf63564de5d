"""Every route, every method, hostile input: no answer is a server error.

The routes come from the app's own URL map, so a new route is fuzzed without being listed
here. The shop is the one tests/web/test_zh_pages.py builds (data in every state), and each
role has its own logged-in client: an anonymous visitor, the merchant and the operator
(two-factor on, recently re-authenticated, so the views behind a password check run too).
Each round first opens every page each role can open and reads its forms (action,
method, field names and usual values, and the session's CSRF token); then

- every GET route gets hostile values in its query string (every parameter name a view
  reads, in random subsets), in each path parameter, and bytes that are not UTF-8;
- every form is sent with its fields made hostile one at a time (the others and the CSRF
  token kept valid, so the form's own code runs), all at once, and each twice
  (duplicated keys); file fields get bytes that are no file the form expects;
- every POST route gets a body that is not UTF-8, and a few a body over the size limit;
- every route is called by another role, and half of them with a method they do not accept;
- the gateways' notify route gets a signed sandbox notification made hostile field by
  field (its values are not cleaned at the edge) and bodies that are no JSON.

A round makes a few of each form's fields hostile, and picks one object per role: more
rounds reach more of them.

An answer passes when it is not a 5xx (a few views answer 502/503 on purpose:
ALLOWED_5XX) and nothing was logged at ERROR (a traceback). `make test` runs one round
with the seed 17 (about 1,500 requests); `make fuzz` runs FAKA_FUZZ_ROUNDS rounds with
FAKA_FUZZ_SEED=random (the seed is printed; give it to repeat a run). Connections to
anything but 127.0.0.1 are refused, as on a machine offline: a hostile webhook or SMTP
host must not leave the test machine.
"""

import logging
import os
import random
import re
import smtplib
import socket
import time
import traceback
from dataclasses import dataclass, field
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlsplit

import requests
from flask import session
from flask_wtf.csrf import generate_csrf
from test_zh_pages import client_for, page_urls, picture, shop  # noqa: F401  (shop: a pytest fixture)
from werkzeug.datastructures import MultiDict
from werkzeug.exceptions import HTTPException
from werkzeug.routing import RequestRedirect

from conftest import signed_notify
from faka.payments.gateways import GATEWAYS
from faka.web.request_guard import MULTILINE_FIELDS

ROUNDS = int(os.environ.get("FAKA_FUZZ_ROUNDS") or 1)
SEED = os.environ.get("FAKA_FUZZ_SEED") or "17"

# Every view that answers a 5xx on purpose, and why.
ALLOWED_5XX = {
    ("health.healthz", 503): "the monitoring answer while a part (Redis, the worker) is down",
    ("operator.send_test_email", 502): "the SMTP server refused or could not be reached",
    ("pay.start", 502): "the gateway could not start the payment; the page offers another way",
    ("pay.payer", 502): "the provider's sign-in of the payer failed",
}

HOSTILE = (
    "",
    " ",
    "0",
    "-1",
    "-0",
    "1.5",
    "007",
    str(10**100),
    "-" + str(10**100),
    "1e999",
    "-1e999",
    "1e-999",
    "1E+5",
    "NaN",
    "sNaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "inf",
    "9" * 400,
    "0." + "0" * 398 + "1",
    "0x1F",
    "１２３",
    "١٢٣",
    "true",
    "null",
    "[]",
    "{}",
    "%00",
    "%FF",
    "a\x00b",
    "\x00",
    "x\r\nBcc: victim@example.com",
    "line\nbreak",
    "\ttab",
    "\x1b[2J",
    "\x7f\x85\x9f",
    "\u2028\u2029",
    "\u202egnp.exe",
    "\ufeff",
    "😀" * 30,
    "<script>alert(1)</script>",
    "' OR '1'='1",
    "../../../etc/passwd",
    "javascript:alert(1)",
    "http://127.0.0.1:9/x",
    "9999-12-31",
    "0000-00-00",
    "2026-02-30",
    "A" * 5000,
    "长" * 300,
    "a" * 100_000,
)
# Path parameters (percent-encoded into the URL).
HOSTILE_PATH = ("0", "-1", str(10**100), "9" * 400, "\x00", "%FF", "a\r\nb", "..", "x" * 3000, "😀", "\x7f\x85")
HOSTILE_FILES = (b"", b"\x00" * 64, b"not an image", b"\x89PNG\r\n\x1a\n" + b"\xff" * 64, b"GIF89a" + b"\x00" * 30)
HOSTILE_FILENAMES = ("../../etc/passwd", "a\x00.png", "x" * 300 + ".png", "键.txt", "")
INVALID_UTF8 = b"\xff\xfe\xc3\x28\xa0\xa1\xe2\x28\xa1\xf0\x28\x8c\xbc\xed\xa0\x80"
OVERSIZE = 25 * 1024 * 1024  # over MAX_CONTENT_LENGTH (24 MB)
OTHER_METHODS = ("PUT", "DELETE", "PATCH")
FIELDS_PER_ROUND = 6  # a form's fields made hostile one at a time, chosen at random
PAGES = ("0", "-5", "1e3", "abc", str(10**100), "9" * 400)
NOTIFY_FIELDS = (
    "sign",
    "sign_type",
    "out_trade_no",
    "trade_no",
    "money",
    "trade_status",
    "pid",
    "order_id",
    "amount",
    "signature",
    "status",
    "trade_id",
    "order_no",
    "currency",
)
NOTIFY_BODIES = (
    b'{"signature": "\\ud800", "order_id": "\\udfff", "amount": 1e999, "status": 2}',
    b"[]",
    b"{",
    b'{"amount": NaN}',
    INVALID_UTF8,
    b"\x00" * 100,
    b'{"id": "evt", "type": "checkout.session.completed"}',
)
# A notification's fields are passed on as sent (no edge cleaning): each gets one of these too.
NOTIFY_TEXT = ("\x00", "签名", "a\r\nb", "\x85\x7f", "é" * 64, "\u2028")
ROLES = ("anonymous", "merchant", "operator")
# The roles of test_zh_pages' page list this test fuzzes with.
PAGE_ROLES = {"buyer": "anonymous", "merchant": "merchant", "operator": "operator", "operator_confirmed": "operator"}
RAW_CSRF = "fuzz-csrf-secret"

# Views that take objects away from the others run after them, and the accounts' own
# views (logout, second factor, sessions) last.
DESTRUCTIVE = re.compile(
    r"delete|remove|freeze|reject|disable|reset_2fa|deactivate|take_down|withdraw|refund|"
    r"cancel|escalate|accept|rotate|dismiss"
)

SOURCE = Path(__file__).resolve().parents[2] / "faka" / "web"
READ_NAME = re.compile(r"""request\.(args|form|values)\.get(?:list)?\(\s*["']([A-Za-z0-9_]+)["']""")
PATH_ARGUMENT = re.compile(r"<(?:[^:<>]+:)?([^<>]+)>")


def names_read_by_views() -> tuple[list[str], list[str]]:
    """Every query and form parameter name a view reads by hand (not through a form)."""
    query, form = {"page", "lang", "next", "sort", "status", "kind", "q"}, set()
    for path in SOURCE.rglob("*.py"):
        for where, name in READ_NAME.findall(path.read_text(encoding="utf-8")):
            if where in ("args", "values"):
                query.add(name)
            if where in ("form", "values"):
                form.add(name)
    return sorted(query), sorted(form)


# -- the pages' forms --------------------------------------------------------------------


@dataclass
class Form:
    method: str
    action: str
    multipart: bool
    fields: list[tuple[str, str]] = field(default_factory=list)  # (name, usual value), in page order
    files: list[str] = field(default_factory=list)


class FormReader(HTMLParser):
    """The forms of a page, each with the values a person submitting it unchanged sends."""

    def __init__(self, page_path: str):
        super().__init__(convert_charrefs=True)
        self.page_path = page_path
        self.forms: list[Form] = []
        self.form: Form | None = None
        self.select: str | None = None
        self.textarea: str | None = None
        self.text: list[str] = []
        self.textareas: set[str] = set()

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "form":
            self.form = Form(
                (a.get("method") or "get").upper(),
                a.get("action") or self.page_path,
                "multipart" in (a.get("enctype") or ""),
            )
            self.forms.append(self.form)
            return
        form, name = self.form, a.get("name")
        if form is None:
            return
        have = {n for n, _v in form.fields}
        if tag == "option" and self.select and (self.select not in have or "selected" in a):
            form.fields = [(n, v) for n, v in form.fields if n != self.select] + [(self.select, a.get("value", ""))]
        if not name:
            return
        if tag == "input":
            kind = (a.get("type") or "text").lower()
            if kind == "file":
                form.files.append(name)
            elif kind in ("checkbox", "radio"):
                if "checked" in a or kind == "radio" and name not in have:
                    form.fields.append((name, a.get("value", "on")))
            elif kind not in ("submit", "button", "image", "reset"):
                form.fields.append((name, a.get("value") or usual_value(kind, name, "required" in a)))
            elif name not in have:
                form.fields.append((name, a.get("value", "")))
        elif tag == "button" and name not in have:
            form.fields.append((name, a.get("value", "")))
        elif tag == "select":
            self.select = name
        elif tag == "textarea":
            self.textarea, self.text = name, []

    def handle_data(self, data):
        if self.textarea is not None:
            self.text.append(data)

    def handle_endtag(self, tag):
        if tag == "form":
            self.form = None
        elif tag == "select":
            self.select = None
        elif tag == "textarea" and self.textarea is not None:
            self.textareas.add(self.textarea)
            if self.form is not None:
                self.form.fields.append((self.textarea, "".join(self.text) or "fuzz\ntext"))
            self.textarea = None


def usual_value(kind: str, name: str, required: bool) -> str:
    """What a person would type into an empty input: something valid where it is required."""
    if kind == "email" or "email" in name:
        return "fuzz@example.com"
    typed = {"number": "1", "date": "2099-01-01", "password": "merchant-pass-1"}.get(kind)
    return typed or ("fuzz" if required else "")


# -- the run -----------------------------------------------------------------------------


@dataclass
class Target:
    who: str
    endpoint: str
    method: str
    path: str
    form: Form | None = None


class Fuzzer:
    def __init__(self, app, shop, caplog, rng: random.Random):
        self.app, self.shop, self.caplog, self.rng = app, shop, caplog, rng
        self.adapter = app.url_map.bind("localhost")
        self.query_names, self.form_names = names_read_by_views()
        self.failures: list[str] = []
        self.sent = 0
        self.textareas: set[str] = set()
        # One CSRF secret in every client's session: the token signed from it is valid in all.
        with app.test_request_context():
            session["csrf_token"] = RAW_CSRF
            self.token = generate_csrf()
        # Listed once: a later round finds some of these objects gone, which is fine.
        self.pages = sorted(page_urls(shop).items())
        self.clients: dict = {}
        self.log_in()

    def log_in(self) -> None:
        """Fresh sessions: whatever the last view did to its session (a logout, a revoked
        session, a new second factor), the next one starts logged in and confirmed."""
        now = int(time.time())
        self.clients = {
            "anonymous": client_for(self.app, csrf_token=RAW_CSRF),
            "merchant": client_for(self.app, self.shop.merchant.user, csrf_token=RAW_CSRF, reauth_at=now),
            "operator": client_for(self.app, self.shop.operator, csrf_token=RAW_CSRF, reauth_at=now),
        }

    # -- one request ---------------------------------------------------------------------

    def send(
        self,
        who: str,
        endpoint: str,
        method: str,
        path: str,
        query=None,
        data=None,
        *,
        multipart=False,
        raw_query: bytes | None = None,
        body: bytes | None = None,
        content_type: str | None = None,
    ):
        kwargs: dict = {"method": method}
        if raw_query is not None:
            kwargs["environ_overrides"] = {"QUERY_STRING": raw_query.decode("latin-1")}
        elif query:
            kwargs["query_string"] = MultiDict(query)
        if body is not None:
            kwargs["data"], kwargs["content_type"] = body, content_type
        elif data is not None:
            kwargs["data"] = MultiDict(data)
            if multipart:
                kwargs["content_type"] = "multipart/form-data"
        before = len(self.caplog.records)
        what = f"{who} {method} {path[:200]} {describe(query or raw_query, data or body)}"
        try:
            response = self.clients[who].open(path, **kwargs)
        except Exception as exc:  # noqa: BLE001 - the test client raising is a failure too
            self.failures.append(f"{what}: raised {exc!r}")
            return None
        self.sent += 1
        errors = [r for r in self.caplog.records[before:] if r.levelno >= logging.ERROR and not unreachable(r)]
        status = response.status_code
        if status >= 500 and (endpoint, status) not in ALLOWED_5XX or errors:
            self.failures.append(f"{what[:600]} -> {status} " + "; ".join(logged(r) for r in errors))
        return response

    # -- what the pages show ---------------------------------------------------------------

    def crawl(self) -> tuple[dict[str, list[tuple[str, str]]], dict[str, list[Target]]]:
        """Open every page. Returns endpoint -> [(who, path)] of paths that reach real
        objects, and endpoint -> the forms posting to it."""
        paths: dict[str, list[tuple[str, str]]] = {}
        forms: dict[str, list[Target]] = {}
        seen = set()
        for endpoint, pages in self.pages:
            for who, url, _expected in pages:
                if who not in PAGE_ROLES:
                    continue
                who = PAGE_ROLES[who]
                path, _, query = url.partition("?")
                response = self.send(who, endpoint, "GET", path, query=parse_qsl(query))
                self.add_path(paths, who, "GET", path)
                if response is None or not response.content_type.startswith("text/html"):
                    continue
                reader = FormReader(path)
                reader.feed(response.get_data(as_text=True))
                self.textareas |= reader.textareas
                for form in reader.forms:
                    form.action = urlsplit(form.action).path
                    found = self.match(form.method, form.action)
                    key = found and (who, found[0].endpoint, form.method, tuple(sorted(n for n, _v in form.fields)))
                    if not found or key in seen:
                        continue
                    seen.add(key)
                    forms.setdefault(found[0].endpoint, []).append(
                        Target(who, found[0].endpoint, form.method, form.action, form)
                    )
                    self.add_path(paths, who, form.method, form.action)
        return paths, forms

    def match(self, method: str, path: str):
        try:
            return self.adapter.match(path, method=method, return_rule=True)
        except (HTTPException, RequestRedirect):
            return None

    def add_path(self, paths, who, method, path) -> None:
        found = self.match(method, path)
        if found and (who, path) not in paths.setdefault(found[0].endpoint, []):
            paths[found[0].endpoint].append((who, path))

    # -- the cases -------------------------------------------------------------------------

    def hostile(self) -> str:
        return self.rng.choice(HOSTILE)

    def hostile_paths(self, rule, path: str) -> list[str]:
        """The rule's path with each of its parameters in turn made hostile."""
        values = dict(zip(PATH_ARGUMENT.findall(rule.rule), path_values(rule.rule, path)))
        out = []
        for name in values:
            changed = {**values, name: quote(self.rng.choice(HOSTILE_PATH), safe="")}
            out.append(PATH_ARGUMENT.sub(lambda m, changed=changed: changed[m.group(1)], rule.rule))
        return out

    def fuzz_get(self, who: str, rule, path: str) -> None:
        endpoint = rule.endpoint
        for page in (self.rng.choice(PAGES), None):
            names = self.rng.sample(self.query_names, k=self.rng.randint(1, 6))
            query = [(n, self.hostile()) for n in names] + ([("page", page)] if page else [])
            self.send(who, endpoint, "GET", path, query=self.rng.sample(query, k=len(query)))
        self.send(who, endpoint, "GET", path, raw_query=b"page=" + INVALID_UTF8 + b"&q=" + INVALID_UTF8)
        for hostile_path in self.hostile_paths(rule, path):
            self.send(who, endpoint, "GET", hostile_path)

    def fuzz_form(self, rule, target: Target) -> None:
        form, who, endpoint = target.form, target.who, target.endpoint
        usual = [(n, self.token if n == "csrf_token" else v) for n, v in form.fields]
        multipart = form.multipart or bool(form.files)

        def post(data, path=target.path, files=True):
            self.send(who, endpoint, "POST", path, data=data + (self.files(form) if files else []), multipart=multipart)

        # Each field alone, a few a round: rounds add up to all of them.
        for i in self.rng.sample(range(len(usual)), k=min(len(usual), FIELDS_PER_ROUND)):
            post([(n, self.hostile() if j == i else v) for j, (n, v) in enumerate(usual)])
        post([(n, v if n == "csrf_token" else self.hostile()) for n, v in usual])
        post([pair for n, v in usual for pair in ((n, v), (n, self.hostile()))])
        if form.files:
            post(usual, files=False)
            post(
                usual
                + [
                    (name, (BytesIO(self.rng.choice(HOSTILE_FILES)), self.rng.choice(HOSTILE_FILENAMES)))
                    for name in form.files
                ],
                files=False,
            )
        self.send(
            who,
            endpoint,
            "POST",
            target.path,
            content_type="application/x-www-form-urlencoded",
            body=f"csrf_token={self.token}".encode()
            + b"".join(b"&" + n.encode() + b"=" + INVALID_UTF8 for n, _v in usual if n != "csrf_token"),
        )
        for hostile_path in self.hostile_paths(rule, target.path):
            post(usual, path=hostile_path)

    def files(self, form: Form) -> list:
        return [(name, (BytesIO(picture()), "picture.png")) for name in form.files]

    def fuzz_post(self, who: str, rule, path: str) -> None:
        """A POST no page shows a form for (to this role): the CSRF token and the names
        views read by hand, hostile."""
        for _ in range(2):
            names = self.rng.sample(self.form_names, k=self.rng.randint(1, 6))
            self.send(
                who,
                rule.endpoint,
                "POST",
                path,
                data=[("csrf_token", self.token)] + [(n, self.hostile()) for n in names],
            )
        self.send(who, rule.endpoint, "POST", path, body=INVALID_UTF8, content_type="application/x-www-form-urlencoded")
        for hostile_path in self.hostile_paths(rule, path):
            self.send(who, rule.endpoint, "POST", hostile_path, data={"csrf_token": self.token})

    def round(self) -> None:
        self.log_in()
        paths, forms = self.crawl()
        posts = [t for targets in forms.values() for t in targets if t.method == "POST"]
        for target in self.rng.sample(posts, k=min(3, len(posts))):
            self.send(
                target.who,
                target.endpoint,
                "POST",
                target.path,
                body=b"a=" + b"x" * OVERSIZE,
                content_type="application/x-www-form-urlencoded",
            )
        rules = sorted(
            (r for r in self.app.url_map.iter_rules() if r.endpoint != "static"),
            key=lambda r: (r.endpoint.startswith("auth."), bool(DESTRUCTIVE.search(r.endpoint)), r.rule),
        )
        for rule in rules:
            if rule.endpoint.startswith("auth.") or DESTRUCTIVE.search(rule.endpoint):
                self.log_in()  # the view before may have logged out or taken away the session
            known = paths.get(rule.endpoint) or [(home_role(rule.rule), placeholder_path(rule.rule))]
            # One object per role, picked at random: every round may reach another.
            by_role = {}
            for who, path in self.rng.sample(known, k=len(known)):
                by_role.setdefault(who, path)
            first, first_path = next(iter(by_role.items()))
            others = [role for role in ROLES if role not in by_role]
            for method in sorted(rule.methods - {"HEAD", "OPTIONS"}):
                for who, path in by_role.items():
                    if method == "GET":
                        self.fuzz_get(who, rule, path)
                        continue
                    targets = [t for t in forms.get(rule.endpoint, ()) if t.method == method and t.who == who]
                    # A form shown on many pages (each order, each case) with other fields: two a round.
                    for target in self.rng.sample(targets, k=min(2, len(targets))):
                        self.fuzz_form(rule, target)
                    if not targets:
                        self.fuzz_post(who, rule, path)
                if others:
                    self.send(
                        self.rng.choice(others),
                        rule.endpoint,
                        method,
                        first_path,
                        data=None if method == "GET" else {"csrf_token": self.token},
                    )
            if self.rng.random() < 0.5:
                self.send(first, rule.endpoint, self.rng.choice(OTHER_METHODS), first_path)
        self.fuzz_notify()

    def fuzz_notify(self) -> None:
        """The gateways' notify route: a correctly signed sandbox notification made hostile
        one field at a time, and every gateway's name with hostile fields and bodies."""
        usual = list(signed_notify(self.shop.orders["pending"]).items())
        for i in range(len(usual)):
            for value in (self.hostile(), NOTIFY_TEXT[i % len(NOTIFY_TEXT)]):
                data = [(n, value if j == i else v) for j, (n, v) in enumerate(usual)]
                self.send("anonymous", "pay.notify", "POST", "/pay/sandbox/notify", data=data)
        for body in NOTIFY_BODIES:
            self.send(
                "anonymous", "pay.notify", "POST", "/pay/sandbox/notify", content_type="application/json", body=body
            )
        for name in GATEWAYS:
            fields = [(n, self.hostile()) for n in NOTIFY_FIELDS]
            self.send("anonymous", "pay.notify", "POST", f"/pay/{name}/notify", data=fields)
            self.send("anonymous", "pay.notify", "GET", f"/pay/{name}/notify", query=fields)
            self.send(
                "anonymous",
                "pay.notify",
                "POST",
                f"/pay/{name}/notify",
                content_type="application/json",
                body=self.rng.choice(NOTIFY_BODIES),
            )


def logged(record: logging.LogRecord) -> str:
    """A logged error in short: its message, and its exception with faka's own frames."""
    if not record.exc_info:
        return record.getMessage()
    frames = [
        f"{Path(f.filename).name}:{f.lineno} {f.name}"
        for f in traceback.extract_tb(record.exc_info[2])
        if "/faka/" in f.filename and "site-packages" not in f.filename
    ]
    return f"{record.getMessage()} {record.exc_info[1]!r} at {' < '.join(reversed(frames[-4:]))}"


def path_values(rule: str, path: str) -> list[str]:
    """The path's values of the rule's parameters, as they appear in the path."""
    pattern = (
        "^"
        + PATH_ARGUMENT.sub(lambda m: f"(?P<{m.group(1)}>.+?)", re.escape(rule).replace(r"\<", "<").replace(r"\>", ">"))
        + "$"
    )
    found = re.match(pattern, path)
    return list(found.groups()) if found else ["x"] * len(PATH_ARGUMENT.findall(rule))


def placeholder_path(rule: str) -> str:
    return PATH_ARGUMENT.sub(lambda m: "1" if "int:" in m.group(0) else "x", rule)


def home_role(rule: str) -> str:
    return (
        "operator"
        if rule.startswith("/operator")
        else "merchant"
        if rule.startswith(("/merchant", "/account"))
        else "anonymous"
    )


def describe(query, data) -> str:
    def short(items):
        if isinstance(items, bytes):
            return repr(items[:60])
        items = items.items() if isinstance(items, dict) else items
        return ", ".join(f"{k}={str(v)[:30]!r}" for k, v in items)

    return " ".join(f"{label}[{short(items)}]" for label, items in (("query", query), ("form", data)) if items)


OFFLINE = "offline: the fuzz test resolves no outside name"


def unreachable(record: logging.LogRecord) -> bool:
    """A job that failed because the place it sends to (a webhook, an SMTP server the fuzz
    configured) cannot be reached: retried later by design, not an error of the request."""
    exc = record.exc_info[1] if record.exc_info else None
    while exc is not None:
        if isinstance(exc, (OSError, smtplib.SMTPException, requests.RequestException)) or OFFLINE in str(exc):
            return record.name == "faka.core.tasks"
        exc = exc.__cause__ or exc.__context__
    return False


def offline(monkeypatch) -> None:
    """Name resolution answers only for this machine: nothing the fuzz types reaches out."""
    resolve = socket.getaddrinfo

    def local_only(host, *args, **kwargs):
        if host not in ("127.0.0.1", "localhost", "::1", None):
            raise socket.gaierror(socket.EAI_NONAME, OFFLINE)
        return resolve(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", local_only)


def test_no_route_answers_a_server_error_to_hostile_input(app, make_app, shop, caplog, monkeypatch):
    offline(monkeypatch)
    caplog.set_level(logging.ERROR)
    # The same shop, with rate limits no fuzz reaches: a 429 would keep the view from running.
    unlimited = make_app(
        **{
            name: "1000000 per minute"
            for name, value in app.config.items()
            if name.startswith("RATELIMIT_") and isinstance(value, str) and " per " in value
        }
    )
    seed = SEED if SEED != "random" else str(random.SystemRandom().randrange(10**9))
    fuzz = Fuzzer(unlimited, shop, caplog, random.Random(seed))
    started = time.monotonic()
    for _ in range(ROUNDS):
        fuzz.round()
    print(f"fuzz: {fuzz.sent} requests in {time.monotonic() - started:.1f}s, seed {seed}")
    assert fuzz.sent > 1000
    # Multi-line text keeps its line breaks at the edge only in the fields listed there.
    assert fuzz.textareas <= MULTILINE_FIELDS, f"add to MULTILINE_FIELDS: {fuzz.textareas - MULTILINE_FIELDS}"
    assert not fuzz.failures, f"seed {seed}: {len(fuzz.failures)} failures:\n" + "\n".join(fuzz.failures)
