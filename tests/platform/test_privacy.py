"""Privacy: buyer emails masked in the merchant's lists and exports; IP addresses hashed
after 30 days and old logs deleted by the daily retention job; keys shown in the back
office only after re-entering the password (and code), each look audited; a new
session at every login."""

import re
import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from conftest import count, csrf_from, key_texts, login, reload, with_totp
from faka.accounts import lockout, users
from faka.catalog.models import ProductReport
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.text import mask_email
from faka.core.types import utcnow
from faka.extensions import db
from faka.ops import reconcile
from faka.orders.models import Order
from faka.payments.models import NotifyLog
from faka.platform import retention
from faka.platform.models import AuditEvent
from faka.risk import engine
from faka.risk.models import RiskEvent, RiskHit, SecurityEvent, SignIn, SpentChallenge

PASSWORD = "merchant-pass-1"  # the `merchant` fixture's
OPERATOR_PASSWORD = "operator-pass-1"


def english(client):
    client.get("/?lang=en")
    return client


def post(client, url, data=None, page=None, **kwargs):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


@pytest.fixture
def seller(app, merchant):
    client = english(app.test_client())
    login(client, merchant.user)
    return client


# -- masked emails -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "email, shown",
    [
        ("abcdef@qq.com", "ab***@qq.com"),
        ("abc@example.com", "ab***@example.com"),
        ("ab@qq.com", "a***@qq.com"),
        ("a@qq.com", "a***@qq.com"),
        ("no-at-sign", "no***"),
        ("", ""),
        (None, ""),
    ],
)
def test_mask_email(email, shown):
    assert mask_email(email) == shown


def test_merchant_lists_and_export_mask_the_buyers_email_the_order_page_shows_it(seller, make_product, place):
    order = place(make_product(keys=2), email="zhangsan1988@qq.com")
    listing = seller.get("/merchant/orders").text
    assert "zh***@qq.com" in listing and "zhangsan1988" not in listing
    export = seller.get("/merchant/orders.csv").text
    assert "zh***@qq.com" in export and "zhangsan1988" not in export
    assert "zhangsan1988@qq.com" in seller.get(f"/merchant/orders/{order.number}").text
    # Searching by the full address still works: the merchant may know it from the buyer.
    assert order.number in seller.get("/merchant/orders?email=zhangsan1988@qq.com").text


def test_merchant_complaint_and_review_lists_do_not_show_the_email(seller, make_product, place, pay):
    order = place(make_product(keys=2), email="zhangsan1988@qq.com")
    pay(order)
    workflow.open_complaint(order.token, Complaint.KEY_INVALID, "does not work", [])
    for page in ("/merchant/complaints", "/merchant/reviews", "/merchant/"):
        assert "zhangsan1988" not in seller.get(page).text


# -- the retention job -------------------------------------------------------------------------------

NOW = utcnow().replace(microsecond=0)
OLD = NOW - timedelta(days=31)
RECENT = NOW - timedelta(days=29)
IP = "203.0.113.5"


def add(*rows):
    db.session.add_all(rows)
    db.session.commit()
    return rows


def order_row(product, ip, created_at) -> Order:
    import secrets

    (order,) = add(
        Order(
            number=secrets.token_hex(8),
            token=secrets.token_hex(16),
            product_id=product.id,
            variant_id=product.variants[0].id,
            merchant_id=product.merchant_id,
            quantity=1,
            unit_price=100,
            total=100,
            currency="CNY",
            gateway="sandbox",
            client_ip=ip,
            created_at=created_at,
            expires_at=created_at + timedelta(minutes=15),
            status=Order.DELIVERED,
        )
    )
    return order


def ip_rows(product, merchant, when, ip=IP) -> list:
    """One row with `ip` written at `when` in every table that records IP addresses."""
    return [
        order_row(product, ip, when),
        *add(
            SignIn(user_id=merchant.user_id, ip=ip, created_at=when),
            NotifyLog(gateway="sandbox", outcome="paid", source_ip=ip, received_at=when),
            SecurityEvent(kind=SecurityEvent.LOGIN_FAILED, ip=ip, created_at=when),
            RiskEvent(checkpoint=engine.CHECKOUT, action=engine.FLAG, score=20, ip=ip, created_at=when),
            AuditEvent(action="test.event", target="x", ip=ip, created_at=when),
            ProductReport(product_id=product.id, reason="other", ip=ip, created_at=when),
        ),
    ]


def ip_of(row) -> str:
    row = reload(row)
    return getattr(row, "client_ip", None) or getattr(row, "source_ip", None) or row.ip


def test_ip_addresses_older_than_30_days_are_hashed_everywhere(app, merchant, product):
    old, recent = ip_rows(product, merchant, OLD), ip_rows(product, merchant, RECENT)
    report = retention.run(NOW)
    assert report.ips_hashed == len(old) == 7

    hashed = {ip_of(row) for row in old}
    assert len(hashed) == 1  # deterministic: one address, one hash, in every table
    (value,) = hashed
    assert re.fullmatch(r"h:[0-9a-f]{40}", value) and IP not in value and len(value) <= 45
    assert {ip_of(row) for row in recent} == {IP}

    again = retention.run(NOW)  # idempotent: nothing left to do
    assert again.ips_hashed == 0 and {ip_of(row) for row in old} == {value}

    later = retention.run(NOW + timedelta(days=2))  # the recent rows are now old too, hashed the same
    assert later.ips_hashed == 7 and {ip_of(row) for row in recent} == {value}


def test_hashing_depends_on_the_secret_key(app, make_app):
    ours = retention.hash_ip(IP)
    with make_app(SECRET_KEY="another-secret").app_context():
        assert retention.hash_ip(IP) != ours


def test_self_purchase_still_matches_when_both_sides_are_hashed(app, merchant, product):
    order = order_row(product, IP, OLD)
    add(SignIn(user_id=merchant.user_id, ip=IP, created_at=OLD))
    retention.run(NOW)
    order = reload(order)
    assert order.client_ip.startswith("h:")
    hit = engine.order_self_purchase(engine.Signals(engine.NOTIFY, order=order, now=NOW))
    assert hit is not None and hit.rule == "self_purchase"


def test_work_is_done_in_batches(app, merchant, product, monkeypatch):
    monkeypatch.setattr(retention, "BATCH", 3)
    rows = [order_row(product, f"198.51.100.{i}", OLD) for i in range(8)]
    add(
        *(SecurityEvent(kind=SecurityEvent.CSRF_FAILED, ip=None, created_at=NOW - timedelta(days=91)) for _ in range(7))
    )
    report = retention.run(NOW)
    assert report.ips_hashed == 8 and report.security_events_deleted == 7
    assert len({ip_of(row) for row in rows}) == 8 and all(ip_of(row).startswith("h:") for row in rows)


def test_old_logs_are_deleted_and_old_notification_bodies_emptied(app):
    add(
        SecurityEvent(kind=SecurityEvent.ADMIN_PROBE, created_at=NOW - timedelta(days=91)),
        SecurityEvent(kind=SecurityEvent.ADMIN_PROBE, created_at=NOW - timedelta(days=89)),
    )
    old_event, new_event = add(
        RiskEvent(checkpoint=engine.CHECKOUT, action=engine.FLAG, score=20, created_at=NOW - timedelta(days=366)),
        RiskEvent(checkpoint=engine.CHECKOUT, action=engine.FLAG, score=20, created_at=NOW - timedelta(days=364)),
    )
    add(
        RiskHit(event_id=old_event.id, rule="ip_velocity", score=20, created_at=old_event.created_at),
        RiskHit(event_id=new_event.id, rule="ip_velocity", score=20, created_at=new_event.created_at),
    )
    add(
        SpentChallenge(signature="a" * 64, expires_at=NOW - timedelta(seconds=1)),
        SpentChallenge(signature="b" * 64, expires_at=NOW + timedelta(minutes=5)),
    )
    old_log, new_log = add(
        NotifyLog(
            gateway="epay", outcome="paid", headers='{"x": 1}', body="trade_no=1", received_at=NOW - timedelta(days=181)
        ),
        NotifyLog(
            gateway="epay", outcome="paid", headers='{"x": 1}', body="trade_no=2", received_at=NOW - timedelta(days=179)
        ),
    )

    report = retention.run(NOW)
    assert (
        report.security_events_deleted,
        report.risk_events_deleted,
        report.challenges_deleted,
        report.notify_bodies_emptied,
    ) == (1, 1, 1, 1)
    assert count(SecurityEvent) == 1 and count(RiskEvent) == 1 and count(RiskHit) == 1
    assert db.session.scalar(select(RiskHit.event_id)) == new_event.id
    assert db.session.scalar(select(SpentChallenge.signature)) == "b" * 64
    old_log, new_log = reload(old_log), reload(new_log)
    assert (old_log.body, old_log.headers, old_log.outcome) == (None, None, "paid")
    assert new_log.body == "trade_no=2"
    assert retention.run(NOW) == retention.RetentionReport(0, 0, 0, 0, 0)


def test_the_reconciler_starts_the_job_once_a_day(app, merchant, product):
    order = order_row(product, IP, utcnow() - timedelta(days=40))
    assert retention.due()
    assert reconcile.reconcile().retention is True  # jobs run inline in the tests
    assert reload(order).client_ip.startswith("h:")
    assert count(AuditEvent, AuditEvent.action == retention.RAN) == 1
    assert reconcile.reconcile().retention is False and not retention.due()
    assert retention.due(utcnow() + timedelta(hours=25))


def test_retention_command(app, runner, merchant, product):
    order_row(product, IP, OLD)
    result = runner.invoke(args=["retention"])
    assert result.exit_code == 0 and "hashed 1 IP addresses" in result.output


# -- re-authentication before keys are shown ---------------------------------------------------------


@pytest.fixture
def operator(app):
    user = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
    user.totp = with_totp(user)
    return user


@pytest.fixture
def desk(app, operator):
    client = english(app.test_client())
    login(client, operator)
    return client


@pytest.fixture
def case(product, place, pay):
    order = place(product)
    pay(order)
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "does not work", [])
    return complaint, reload(order)


def reauth(client, password, code="", next_url="/"):
    return post(client, f"/reauth?next={next_url}", {"password": password, "code": code})


def reveal(client, complaint, **kwargs):
    case_url = f"/operator/complaints/{complaint.ref}"
    return post(client, f"{case_url}/reveal", page=case_url, **kwargs)


def test_revealing_a_buyers_keys_needs_a_fresh_password_and_code(desk, operator, case):
    complaint, order = case
    [key] = key_texts(order)
    case_url = f"/operator/complaints/{complaint.ref}"

    response = reveal(desk, complaint)
    assert response.status_code == 303 and response.headers["Location"] == f"/reauth?next={case_url}"
    assert key not in response.text
    htmx = reveal(desk, complaint, headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith("/reauth?next=") and key not in htmx.text
    assert count(AuditEvent, AuditEvent.action == workflow.KEYS_REVEALED) == 0

    page = desk.get(f"/reauth?next={case_url}")
    assert page.status_code == 200 and 'name="code"' in page.text and 'name="password"' in page.text
    assert reauth(desk, OPERATOR_PASSWORD, "", case_url).status_code == 400  # the code is needed too
    done = reauth(desk, OPERATOR_PASSWORD, pyotp.TOTP(operator.totp).now(), case_url)
    assert done.status_code == 303 and done.headers["Location"] == case_url

    shown = reveal(desk, complaint)
    assert shown.status_code == 200 and key in shown.text
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == workflow.KEYS_REVEALED)).scalar_one()
    assert event.actor_id == operator.id and key not in (event.detail or "") + (event.after or "")

    with desk.session_transaction() as session:  # five minutes later
        session["reauth_at"] -= 301
    again = reveal(desk, complaint)
    assert again.status_code == 303 and "/reauth" in again.headers["Location"] and key not in again.text
    assert count(AuditEvent, AuditEvent.action == workflow.KEYS_REVEALED) == 1


def test_a_wrong_password_reveals_nothing_and_counts_toward_the_lockout(desk, operator, case):
    complaint, order = case
    [key] = key_texts(order)
    wrong = reauth(desk, "not-the-password", pyotp.TOTP(operator.totp).now())
    assert wrong.status_code == 400 and "That password is not right." in wrong.text
    assert reload(operator).failed_logins == 1
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOGIN_FAILED) == 1
    response = reveal(desk, complaint)
    assert response.status_code == 303 and key not in response.text

    for _ in range(lockout.MAX_FAILED_LOGINS - 1):
        last = reauth(desk, "not-the-password")
    assert last.status_code == 303 and last.headers["Location"] == "/login"  # locked, and logged out
    assert reload(operator).locked_until is not None
    assert desk.get(f"/operator/complaints/{complaint.ref}").status_code == 303
    assert count(AuditEvent, AuditEvent.action == workflow.KEYS_REVEALED) == 0


def test_a_wrong_code_counts_toward_the_lockout_too(desk, operator):
    response = reauth(desk, OPERATOR_PASSWORD, "000000")
    assert response.status_code == 400 and reload(operator).failed_logins == 1


def test_reauth_needs_a_login_and_goes_only_to_local_pages(app, seller):
    assert "/login" in app.test_client().get("/reauth").headers["Location"]
    response = reauth(seller, PASSWORD, next_url="https://evil.example/")
    assert response.status_code == 303 and response.headers["Location"] == "/merchant/"


def test_exporting_stock_keys_needs_a_fresh_password_and_is_audited(seller, merchant, make_product):
    product = make_product(keys=0)
    from faka.inventory.keys import import_keys

    import_keys(product.variants[0], "STOCK-1\nSTOCK-2")
    keys_page = f"/merchant/products/{product.slug}/keys"
    response = post(seller, f"{keys_page}/export", page=keys_page)
    assert response.status_code == 303 and "STOCK-1" not in response.text
    assert response.headers["Location"] == f"/reauth?next={keys_page}"
    assert 'name="code"' not in seller.get(f"/reauth?next={keys_page}").text  # no 2FA, no code asked

    assert reauth(seller, "wrong-password", next_url=keys_page).status_code == 400
    assert reauth(seller, PASSWORD, next_url=keys_page).headers["Location"] == keys_page
    export = post(seller, f"{keys_page}/export", page=keys_page)
    assert export.status_code == 200 and export.text.split() == ["STOCK-1", "STOCK-2"]
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "keys.exported")).scalar_one()
    assert event.target == f"product:{product.id}" and event.detail == "count=2" and "STOCK" not in event.detail


# -- a new session at login --------------------------------------------------------------------------


def test_login_starts_a_new_session(app, merchant):
    client = app.test_client()
    before = csrf_from(client.get("/login?lang=en").text)
    with client.session_transaction() as session:
        session["planted"] = "by an attacker"
    response = client.post("/login", data={"csrf_token": before, "email": merchant.user.email, "password": PASSWORD})
    assert response.status_code == 303
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("lang") == "en" and session.get("_user_id")
    after = csrf_from(client.get("/merchant/").text)
    assert after != before
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400  # the old token is dead
    assert client.get("/merchant/").status_code == 200
    assert client.post("/logout", data={"csrf_token": after}).status_code == 303
    assert client.get("/merchant/").status_code == 303


def test_two_factor_login_starts_a_new_session_too(app, merchant):
    secret = with_totp(merchant.user)
    client = app.test_client()
    before = csrf_from(client.get("/login").text)
    client.post("/login", data={"csrf_token": before, "email": merchant.user.email, "password": PASSWORD})
    with client.session_transaction() as session:
        session["planted"] = "x"
    step = csrf_from(client.get("/login/2fa").text)
    response = client.post("/login/2fa", data={"csrf_token": step, "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303
    with client.session_transaction() as session:
        assert "planted" not in session and session.get("_user_id") == str(merchant.user_id)
    assert client.get("/merchant/").status_code == 200


def test_reauth_page_on_a_phone(live_server, phone, merchant):
    from conftest import no_horizontal_scroll

    _app, base = live_server
    phone.goto(f"{base}/login?lang=en")
    phone.fill("#email", merchant.user.email)
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{base}/merchant/")
    phone.goto(f"{base}/reauth?next=/merchant/blacklist")
    assert no_horizontal_scroll(phone)
    phone.screenshot(path="/tmp/d_reauth.png", full_page=True)
    phone.fill("#password", PASSWORD)
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{base}/merchant/blacklist")
    phone.screenshot(path="/tmp/d_blacklist.png", full_page=True)
    assert no_horizontal_scroll(phone) and time.time()
