"""Platform defences: a rate limit on every public form and lookup, the friendly 429 and
expired-form pages, probes and floods logged as security events (a few a minute at most)
that feed the risk engine, uploads that cannot be executed or escape their folder,
secrets that never reach the database in clear, and login lockout with back-off."""

import io
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from flask_limiter.util import get_qualified_name
from PIL import Image
from sqlalchemy import select, text

from conftest import csrf_from, every_stored_file, login, reload, signed_notify, with_totp
from faka.accounts import lockout, onboarding, twofactor, users
from faka.accounts.login import authenticate
from faka.complaints import workflow
from faka.core.crypto import vault
from faka.core.storage import PRIVATE, LocalStorage
from faka.core.types import utcnow
from faka.core.uploads import InvalidImage, store_image, stored_image
from faka.extensions import db, limiter
from faka.inventory.keys import import_keys
from faka.ledger import payouts
from faka.orders.models import Order
from faka.payments.gateways import gateway_settings
from faka.platform.settings import set_setting
from faka.risk import engine
from faka.risk.models import RiskEvent, RiskHit, SecurityEvent

SCANNER_IP = "198.51.100.23"
NEIGHBOUR_IP = "203.0.113.80"


def events(kind: str, ip: str | None = None) -> list[SecurityEvent]:
    db.session.commit()
    query = select(SecurityEvent).where(SecurityEvent.kind == kind)
    if ip:
        query = query.where(SecurityEvent.ip == ip)
    return list(db.session.execute(query.order_by(SecurityEvent.id)).scalars())


def from_ip(app, ip: str):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def image_bytes(mode="RGB") -> bytes:
    out = io.BytesIO()
    Image.new(mode, (40, 30), (20, 120, 200, 128) if mode == "RGBA" else (20, 120, 200)).save(out, "PNG")
    return out.getvalue()


# -- every public form and lookup has a limit ------------------------------------------

# Logged-in POSTs outside the back office that need no limit of their own.
UNLIMITED_POSTS = {
    "auth.logout": "ends the visitor's own session",
    "auth.revoke_session": "logged in; ends one of the visitor's own sessions",
    "auth.revoke_other_sessions": "logged in; ends the visitor's own other sessions",
    "auth.two_factor_setup": "logged in; confirms a code for the secret just shown to that user",
}
NEVER_LIMITED = {"orders.status"}  # polled every 2 s by the order page


def _limits(app, endpoint):
    return limiter.limit_manager.decorated_limits(get_qualified_name(app.view_functions[endpoint]))


def test_every_public_post_and_token_lookup_has_a_rate_limit(app):
    with app.test_request_context():
        missing = []
        for rule in app.url_map.iter_rules():
            if rule.endpoint.startswith(("merchant.", "operator.")):
                continue  # the back office: logged in, behind its own login limits
            limits = _limits(app, rule.endpoint)
            if "POST" in rule.methods and rule.endpoint not in UNLIMITED_POSTS:
                if not any(not limit.methods or "post" in limit.methods for limit in limits):
                    missing.append(f"POST {rule.rule}")
            buyer_token_page = rule.rule.startswith(("/order/<token>", "/pay/<token>"))
            if "GET" in rule.methods and buyer_token_page and rule.endpoint not in NEVER_LIMITED:
                if not any(not limit.methods or "get" in limit.methods for limit in limits):
                    missing.append(f"GET {rule.rule}")
        assert missing == []
        assert _limits(app, "orders.status") == []


def test_notify_is_limited_per_source_address_and_answers_with_retry_after(make_app, make_product, place):
    app = make_app(RATELIMIT_NOTIFY="3 per minute")
    with app.app_context():
        product = make_product(keys=5)
        orders = [place(product) for _ in range(5)]
        gateway = from_ip(app, SCANNER_IP)
        answers = [gateway.post("/pay/sandbox/notify", data=signed_notify(order)) for order in orders[:4]]
        assert [a.status_code for a in answers] == [200, 200, 200, 429]
        limited = answers[-1]
        assert limited.is_json and 0 < int(limited.headers["Retry-After"]) <= 60
        assert reload(orders[3]).status == Order.PENDING
        # Another address (the real gateway) is not held up by the flood.
        assert from_ip(app, NEIGHBOUR_IP).post("/pay/sandbox/notify", data=signed_notify(orders[4])).status_code == 200


def test_guessing_order_tokens_is_limited_but_a_buyers_own_pages_never_are(make_app, product, place):
    app = make_app(RATELIMIT_TOKEN_MISSES="5 per minute")
    with app.app_context():
        order = place(product)
        buyer = from_ip(app, NEIGHBOUR_IP)
        for _ in range(60):  # two minutes of polling every 2 s, and reloads
            assert buyer.get(f"/pay/{order.token}/state", headers={"HX-Request": "true"}).status_code == 200
        assert buyer.get(f"/order/{order.token}").status_code == 200

        guesser = english(from_ip(app, SCANNER_IP))
        statuses = [guesser.get(f"/order/{i:032x}").status_code for i in range(7)]
        assert statuses == [404] * 5 + [429] * 2
        assert guesser.get(f"/pay/{'0' * 32}/state").status_code == 429  # one budget for every token page
        # The polled status widget is never limited.
        assert guesser.get(f"/order/{order.token}/status", headers={"HX-Request": "true"}).status_code == 200


@pytest.mark.parametrize("lang, text", [("en", "Please wait a minute and try again"), ("zh_CN", "操作过于频繁")])
def test_too_many_requests_page_in_both_languages(make_app, lang, text):
    app = make_app(RATELIMIT_LOOKUP="1 per minute")
    with app.app_context():
        client = app.test_client()
        token = csrf_from(client.get("/lookup").text)

        def post():
            return client.post(f"/lookup?lang={lang}", data={"csrf_token": token, "query": "x", "query_password": "y"})

        assert post().status_code == 400
        page = post()
        assert page.status_code == 429 and text in page.text and "<html" in page.text
        assert 0 < int(page.headers["Retry-After"]) <= 60
        fragment = client.post(
            f"/lookup?lang={lang}",
            headers={"HX-Request": "true"},
            data={"csrf_token": token, "query": "x", "query_password": "y"},
        )
        assert fragment.status_code == 429 and text in fragment.text and "<html" not in fragment.text


def test_an_hourly_limit_says_how_many_minutes_to_wait(make_app, product):
    app = make_app(RATELIMIT_REPORT="1 per hour")
    with app.app_context():
        client = english(app.test_client())
        token = csrf_from(client.get("/lookup").text)
        client.post(f"/p/{product.slug}/report", data={"csrf_token": token, "reason": "other", "text": "x"})
        page = client.post(f"/p/{product.slug}/report", data={"csrf_token": token, "reason": "other", "text": "x"})
        assert page.status_code == 429 and "Please try again in about" in page.text
        assert 60 < int(page.headers["Retry-After"]) <= 3600


def test_a_flood_of_429s_is_one_security_event_a_minute(make_app):
    app = make_app(RATELIMIT_LOOKUP="1 per minute")
    with app.app_context():
        client = from_ip(app, SCANNER_IP)
        token = csrf_from(client.get("/lookup").text)
        statuses = [
            client.post("/lookup", data={"csrf_token": token, "query": "x", "query_password": "y"}).status_code
            for _ in range(30)
        ]
        assert statuses.count(429) == 29
        [event] = events(SecurityEvent.RATE_LIMITED)
        assert event.ip == SCANNER_IP and event.subject == "/lookup" and len(event.device_hash) == 64


# -- expired forms ---------------------------------------------------------------------


@pytest.mark.parametrize("lang, text", [("en", "reload the page and try again"), ("zh_CN", "表单已过期")])
def test_a_form_without_its_token_gets_a_friendly_page_and_changes_nothing(make_app, product, lang, text):
    app = make_app()
    with app.app_context():
        client = from_ip(app, SCANNER_IP)
        for _ in range(3):
            response = client.post(f"/p/{product.slug}/buy?lang={lang}", data={"quantity": 1, "csrf_token": "stale"})
            assert response.status_code == 400 and text in response.text
        assert db.session.scalar(select(Order.id)) is None
        [event] = events(SecurityEvent.CSRF_FAILED)  # three failures, one event this minute
        assert event.ip == SCANNER_IP and event.subject == f"/p/{product.slug}/buy"


# -- probes for other software's admin paths --------------------------------------------

PROBES = [
    "/wp-admin/",
    "/wp-login.php",
    "/xmlrpc.php",
    "/phpmyadmin/index.php",
    "/PhpMyAdmin/",
    "/pma/",
    "/.env",
    "/.env.production",
    "/.git/config",
    "/.git/HEAD",
    "/admin",
    "/admin/login",
    "/administrator/",
    "/adminer.php",
    "/config.php",
    "/vendor/phpunit/phpunit/src/Util/PHP/eval-stdin.php",
    "/cgi-bin/luci",
    "/wp-admin/setup-config.php",
    "/.git/index",
    "/wp-login.php?action=register",
]


def checkout(client, product, email="buyer@example.com"):
    token = csrf_from(client.get(f"/p/{product.slug}").text)
    return client.post(
        f"/p/{product.slug}/buy",
        data={"csrf_token": token, "quantity": 1, "email": email, "query_password": "secret-1"},
    )


def test_a_scan_for_admin_paths_flags_the_scanners_next_checkout(app, product):
    scanner = from_ip(app, SCANNER_IP)
    assert len(PROBES) == engine.NOISE_EVENTS
    for path in PROBES:
        assert scanner.get(path).status_code == 404
    probes = events(SecurityEvent.ADMIN_PROBE, SCANNER_IP)
    assert len(probes) == 20 and probes[0].subject == "/wp-admin/"
    scanner.get("/wp-admin/again")  # beyond what the rule needs this minute: answered, not written
    assert len(events(SecurityEvent.ADMIN_PROBE)) == 20

    assert checkout(scanner, product).status_code == 303  # flagged, not refused
    event = db.session.execute(select(RiskEvent).where(RiskEvent.checkpoint == engine.CHECKOUT)).scalar_one()
    assert event.action == engine.FLAG and event.ip == SCANNER_IP and event.order_id is not None
    assert db.session.scalars(select(RiskHit.rule).where(RiskHit.event_id == event.id)).all() == ["security_noise"]
    assert "security_noise" in db.session.get(Order, event.order_id).risk_flags

    assert checkout(from_ip(app, NEIGHBOUR_IP), product, "other@example.com").status_code == 303
    assert db.session.scalar(select(RiskEvent.id).where(RiskEvent.ip == NEIGHBOUR_IP)) is None


@pytest.mark.parametrize(
    "path",
    [
        "/no-such-page",
        "/operator/nothing",
        "/p/no-such-product",
        "/static/admin.css",
        "/order/wp-admin",
        "/shop/phpmyadmin",
    ],
)
def test_an_ordinary_404_is_not_a_probe(client, path):
    assert client.get(path).status_code == 404
    assert events(SecurityEvent.ADMIN_PROBE) == []


# -- uploads -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    [
        "../secret.key",
        "..\\secret.key",
        "/etc/passwd",
        ".hidden.png",
        "a/../../b.png",
        "0" * 32 + ".png/../../secret.key",
        "0" * 32 + ".svg",
        "0" * 32 + ".html",
        "",
        None,
    ],
)
def test_upload_names_other_than_ours_never_reach_the_file_system(app, name):
    assert stored_image(name) is None


def test_uploads_live_outside_static_and_are_served_with_their_real_type(app, client):
    folder = LocalStorage(Path(app.instance_path) / "uploads").folder(PRIVATE)
    assert not folder.resolve().is_relative_to(app.root_path + "/static")
    name = store_image(image_bytes("RGBA"))
    assert stored_image(name).read().startswith(b"\x89PNG")
    set_setting("logo", name)
    served = client.get(f"/site/logo/{name}")
    assert served.status_code == 200 and served.mimetype == "image/png"
    assert served.headers["X-Content-Type-Options"] == "nosniff"
    assert client.get(f"/static/{name}").status_code == 404
    assert client.get(f"/static/../instance/uploads/private/{name}").status_code == 404


@pytest.mark.parametrize(
    "payload",
    [
        b"<html><script>alert(1)</script></html>",
        b"GIF89a<script>alert(1)</script>",
        b'<svg xmlns="http://www.w3.org/2000/svg" onload="alert(1)"/>',
    ],
)
def test_files_that_are_not_images_are_refused(app, payload):
    before = every_stored_file(PRIVATE)
    with pytest.raises(InvalidImage):
        store_image(payload)
    assert every_stored_file(PRIVATE) == before


def test_a_traversal_in_an_evidence_or_logo_url_finds_nothing(app, client, product, place, pay):
    order = place(product)
    pay(order)
    complaint = workflow.open_complaint(order.token, "key_invalid", "Already used.", [image_bytes()])
    sentinel = Path(app.instance_path) / "uploads" / "sentinel.txt"
    sentinel.parent.mkdir(exist_ok=True)
    sentinel.write_text("SENTINEL-not-an-upload")
    set_setting("logo", "../sentinel.txt")  # even a tampered setting reads nothing outside the folder
    base = f"/order/{order.token}/complaint/{complaint.ref}/evidence"
    for url in [
        f"{base}/..%2Fsentinel.txt",
        f"{base}/%2e%2e%2fsentinel.txt",
        f"{base}/..%5Csentinel.txt",
        "/site/logo/..%2Fsentinel.txt",
        "/site/logo/%2e%2e%2fsentinel.txt",
        "/site/logo/..%5Csentinel.txt",
    ]:
        response = client.get(url)
        assert response.status_code == 404 and "SENTINEL" not in response.text, url


# -- secrets at rest ---------------------------------------------------------------------


def database_text() -> str:
    """Every value of every row of every table, as text."""
    db.session.commit()
    dump = []
    for table in db.metadata.sorted_tables:
        for row in db.session.execute(text(f'SELECT * FROM "{table.name}"')):
            dump.extend(str(value) for value in row if value is not None)
    return "\n".join(dump)


def test_secrets_never_reach_the_database_in_clear(app, runner, merchant, product):
    secrets = {
        "gateway key (CLI)": "epay-cli-key-Vq39xLmZ",
        "gateway private key (console)": "alipay-console-key-Tr82KpWd",
        "SMTP password": "smtp-pass-Hx72LqPn",
        "payout account": "13912345678",
        "qualification ID number": "11010519491231002X",
        "card key": "CARD-KEY-Zx91-Wq44-Ln27",
    }
    result = runner.invoke(args=["gateway-config", "epay", f"key={secrets['gateway key (CLI)']}", "pid=1001"])
    assert result.exit_code == 0, result.output

    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    desk = english(app.test_client())
    login(desk, operator)
    token = csrf_from(desk.get("/operator/gateways").text)
    assert (
        desk.post(
            "/operator/gateways/alipay",
            data={
                "csrf_token": token,
                "app_id": "2021000000000000",
                "app_private_key": secrets["gateway private key (console)"],
            },
        ).status_code
        == 303
    )
    assert (
        desk.post(
            "/operator/settings/smtp",
            data={
                "csrf_token": token,
                "smtp_server": "smtp.example.com",
                "smtp_port": "587",
                "smtp_security": "starttls",
                "smtp_username": "shop",
                "smtp_password": secrets["SMTP password"],
                "smtp_sender": "shop <shop@example.com>",
            },
        ).status_code
        == 303
    )

    payouts.add_payout_account(merchant.id, "alipay", "张三", secrets["payout account"])
    applicant = users.create_merchant("new-shop@example.com", "merchant-pass-2", "New Shop")
    onboarding.submit_qualification(
        applicant.id,
        onboarding.Qualification("Zhang San", "individual", secrets["qualification ID number"], "13800000000"),
        image_bytes(),
    )
    totp_secret = pyotp.random_base32()
    twofactor.enable(merchant.user_id, totp_secret, pyotp.TOTP(totp_secret).now())
    secrets["TOTP secret"] = totp_secret
    import_keys(product.variants[0], secrets["card key"])
    secrets["sandbox secret"] = gateway_settings("sandbox")[1]["secret"]

    # Each secret was stored, and can be read back by the app.
    assert gateway_settings("epay")[1]["key"] == secrets["gateway key (CLI)"]
    assert gateway_settings("alipay")[1]["app_private_key"] == secrets["gateway private key (console)"]
    dump = database_text()
    assert "epay" in dump and "13800000000" in dump  # the dump does read the rows
    leaked = [what for what, secret in secrets.items() if secret in dump]
    assert leaked == []


# -- login lockout and the per-address login rule --------------------------------------


def post_login(client, email, password):
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


def unlock(user):
    """Let the account's lock run out, as the clock would."""
    user = reload(user)
    user.locked_until = utcnow() - timedelta(seconds=1)
    db.session.commit()


def post_code(client, code):
    token = csrf_from(client.get("/login/2fa").text)
    return client.post("/login/2fa", data={"csrf_token": token, "code": code})


def wrong_code(secret: str) -> str:
    near = {pyotp.TOTP(secret).at(utcnow().timestamp() + shift) for shift in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(1000000)) if c not in near)


def lock_with_wrong_codes(app, user, ip, secret):
    """Wrong second-factor codes lock the account (wrong passwords only slow their
    address down: tests/accounts/test_login_throttle.py)."""
    client = english(from_ip(app, ip))
    started = utcnow()
    assert post_login(client, user.email, "merchant-pass-1").headers["Location"] == "/login/2fa"
    for _ in range(lockout.MAX_FAILED_LOGINS):
        assert post_code(client, wrong_code(secret)).status_code == 400
    assert post_login(client, user.email, "merchant-pass-1").status_code == 400  # locked: even the right one fails
    return reload(user).locked_until - started


def test_wrong_codes_lock_the_account_longer_each_time_within_a_day(app, merchant):
    user = merchant.user
    secret = with_totp(user)
    first = lock_with_wrong_codes(app, user, "198.51.100.1", secret)
    assert timedelta(minutes=15) <= first < timedelta(minutes=15, seconds=30)
    unlock(user)
    second = lock_with_wrong_codes(app, user, "198.51.100.2", secret)
    assert timedelta(minutes=30) <= second < timedelta(minutes=30, seconds=30)

    unlock(user)
    third = lock_with_wrong_codes(app, user, "198.51.100.3", secret)
    assert timedelta(minutes=60) <= third < timedelta(minutes=60, seconds=30)
    # A day after the last lock the earlier ones are forgotten: the next lasts 15 minutes again.
    assert lockout.lockout_for(reload(user), utcnow() + lockout.LOCKOUT_MEMORY + timedelta(minutes=1)) == timedelta(
        minutes=15
    )

    unlock(user)
    client = from_ip(app, "198.51.100.4")
    assert post_login(client, user.email, "merchant-pass-1").headers["Location"] == "/login/2fa"
    assert post_code(client, pyotp.TOTP(secret).now()).headers["Location"] == "/merchant/"
    assert reload(user).failed_logins == 0 and reload(user).locked_until is None
    failures = events(SecurityEvent.LOGIN_FAILED)  # the right password refused while locked
    assert [event.detail for event in failures] == ["locked"] * 3
    assert {event.subject for event in failures} == {user.email}


def test_fifty_failed_logins_from_one_address_block_its_next_login(app, merchant):
    guesser = english(from_ip(app, SCANNER_IP))
    for i in range(engine.FAILED_LOGINS):
        assert post_login(guesser, f"user{i}@example.com", "guess").status_code == 400
    asked = post_login(guesser, merchant.user.email, "merchant-pass-1")
    assert asked.status_code == 400 and "/merchant" not in asked.headers.get("Location", "")
    assert db.session.scalar(select(RiskEvent.action).where(RiskEvent.checkpoint == engine.LOGIN)) == engine.CAPTCHA
    # A guesser that solves every captcha keeps failing, up to the fiftieth failure.
    for i in range(engine.FAILED_LOGINS, engine.FAILED_LOGINS_BLOCK):
        assert authenticate(f"user{i}@example.com", "guess", SCANNER_IP, captcha_solved=True) is None
    assert len(events(SecurityEvent.LOGIN_FAILED, SCANNER_IP)) == engine.FAILED_LOGINS_BLOCK

    blocked = post_login(english(from_ip(app, SCANNER_IP)), merchant.user.email, "merchant-pass-1")
    assert blocked.status_code == 403 and "This request cannot be accepted" in blocked.text
    event = db.session.execute(
        select(RiskEvent).where(
            RiskEvent.checkpoint == engine.LOGIN, RiskEvent.action == engine.BLOCK, RiskEvent.ip == SCANNER_IP
        )
    ).scalar_one()
    assert "failed_logins_many" in db.session.scalars(select(RiskHit.rule).where(RiskHit.event_id == event.id)).all()
    assert len(events(SecurityEvent.LOGIN_FAILED, SCANNER_IP)) == engine.FAILED_LOGINS_BLOCK  # refused before checking
    # The account owner, from their own address, is not affected.
    assert post_login(from_ip(app, NEIGHBOUR_IP), merchant.user.email, "merchant-pass-1").status_code == 303


def test_limits_are_counted_in_redis_when_configured(make_app, redis_conn, product, place):
    """Several web processes share one count: the limiter keeps it in Redis."""
    from conftest import TEST_REDIS_URL

    first = make_app(RATELIMIT_STORAGE_URI=TEST_REDIS_URL, RATELIMIT_TOKEN_MISSES="2 per minute")
    with first.app_context():
        guesser = from_ip(first, SCANNER_IP)
        assert [guesser.get(f"/order/{i:032x}").status_code for i in range(2)] == [404, 404]
        assert any(b"token-miss" in key for key in redis_conn.keys("*"))
    second = make_app(RATELIMIT_STORAGE_URI=TEST_REDIS_URL, RATELIMIT_TOKEN_MISSES="2 per minute")
    with second.app_context():
        assert from_ip(second, SCANNER_IP).get(f"/order/{'f' * 32}").status_code == 429
