"""Setting up without SMTP: the operator reads a queued email (a buyer's goods stay
hidden), and helps a merchant who cannot log in with a two-factor reset or a
password-reset link, each behind the password prompt and in the audit log."""

import re
import time
from html import unescape
from urllib.parse import urlsplit

import pyotp
import pytest
from sqlalchemy import select

from conftest import count, csrf_from, login, no_horizontal_scroll, reload
from faka.accounts import users
from faka.accounts.models import Merchant, User
from faka.core.crypto import vault
from faka.extensions import db
from faka.messaging.mail import MASKED, queue_email
from faka.messaging.models import OutboxEmail
from faka.platform.models import AuditEvent

OPERATOR_PASSWORD = "operator-pass-1"
MERCHANT_PASSWORD = "merchant-pass-1"  # the `merchant` fixture's


@pytest.fixture
def operator(app):
    user = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
    user.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    return user


def desk(app, operator, confirmed: bool = True):
    """The operator's browser; `confirmed`: the password was re-entered a moment ago."""
    client = app.test_client()
    login(client, operator)
    if confirmed:
        with client.session_transaction() as session:
            session["reauth_at"] = int(time.time())
    return client


def events(action: str) -> list[AuditEvent]:
    db.session.commit()
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def outbox(kind: str) -> list[OutboxEmail]:
    db.session.commit()
    return list(
        db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == kind).order_by(OutboxEmail.id)).scalars()
    )


def local_link(html: str, path: str) -> str:
    match = re.search(rf"http://localhost({re.escape(path)}[^\s<\"]+)", html)
    assert match, f"no {path} link"
    return unescape(match.group(1))


# -- reading the outbox -------------------------------------------------------------------


def signup(client, email="new@example.com"):
    token = csrf_from(client.get("/signup?lang=en").text)
    response = client.post(
        "/signup", data={"csrf_token": token, "email": email, "password": "a-good-password", "shop_name": "New Shop"}
    )
    assert response.status_code == 303


def test_a_queued_verification_email_can_be_read_and_its_link_works(app, operator):
    signup(app.test_client())
    [email] = outbox("verify_email")
    assert email.status == OutboxEmail.QUEUED  # no SMTP: it waits
    ops = desk(app, operator)
    listing = ops.get("/operator/outbox?lang=en").text
    assert f'href="/operator/outbox/{email.id}"' in listing and "pass a verification or password-reset link" in listing

    page = ops.get(f"/operator/outbox/{email.id}?lang=en")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "private, no-store"
    html = page.text
    assert "Confirm your email address for faka" in html and "new@example.com" in html
    assert "Please confirm your email address by opening this link" in html  # the body as the recipient reads it
    link = local_link(html, "/verify/")
    assert re.search(r'<code id="email-link-1">http://localhost/verify/', html) and 'data-copy="email-link-1"' in html

    [read] = events("outbox.read")
    assert read.actor_id == operator.id and read.target == f"email:{email.id}" and "verify_email" in read.detail
    assert "/verify/" not in (read.detail or "") + (read.after or "")  # the link itself is not logged

    user = db.session.execute(select(User).where(User.email == "new@example.com")).scalar_one()
    assert user.email_verified_at is None
    assert app.test_client().get(link).status_code == 303  # the merchant opens the link passed on
    assert reload(user).email_verified_at is not None


def test_reading_asks_for_the_password_again_first(app, operator):
    email = queue_email(
        "verify_email", "someone@example.com", "Verify", {"verify_url": "http://localhost/verify/abc", "hours": 48}
    )
    db.session.commit()
    ops = desk(app, operator, confirmed=False)
    asked = ops.get(f"/operator/outbox/{email.id}")
    assert asked.status_code == 303
    assert asked.headers["Location"] == f"/reauth?next=/operator/outbox/{email.id}"
    assert events("outbox.read") == []
    htmx = ops.get(f"/operator/outbox/{email.id}", headers={"HX-Request": "true"})
    assert htmx.headers["HX-Redirect"].startswith("/reauth?next=") and "verify/abc" not in htmx.text

    code = pyotp.TOTP(vault().decrypt(reload(operator).totp_secret)).now()
    token = csrf_from(ops.get(asked.headers["Location"]).text)
    confirmed = ops.post(
        asked.headers["Location"], data={"csrf_token": token, "password": OPERATOR_PASSWORD, "code": code}
    )
    assert confirmed.status_code == 303 and confirmed.headers["Location"] == f"/operator/outbox/{email.id}"
    assert "http://localhost/verify/abc" in ops.get(confirmed.headers["Location"]).text
    assert len(events("outbox.read")) == 1


def test_a_delivery_email_keeps_the_buyers_keys_and_order_link_hidden(app, operator, make_product, place, pay):
    product = make_product(keys=4)
    order = place(product, quantity=2)
    assert pay(order).status_code == 200
    [email] = outbox("order_delivered")
    keys = [vault().decrypt(k.ciphertext) for k in reload(order).keys]
    assert len(keys) == 2

    html = desk(app, operator).get(f"/operator/outbox/{email.id}?lang=en").text
    assert order.number in html and "buyer@example.com" in html
    for key in keys:
        assert key not in html
    assert order.token not in html
    assert html.count(MASKED) >= 3  # two keys and the order link
    assert "goods and the link to their order page are hidden" in html
    assert 'id="email-link-' not in html  # no link worth copying
    assert len(events("outbox.read")) == 1


def test_a_link_to_a_buyers_order_page_is_hidden_in_any_email(app, operator, product, place):
    order = place(product)
    email = queue_email(
        "complaint_update",
        "buyer@example.com",
        "Complaint",
        {
            "order_number": order.number,
            "product_title": "x",
            "status": "open",
            "author": "Seller",
            "body": "Hello",
            "images": 0,
            "link": f"http://localhost/order/{order.token}/complaint/abc123",
        },
    )
    db.session.commit()
    html = desk(app, operator).get(f"/operator/outbox/{email.id}?lang=en").text
    assert "Hello" in html and order.token not in html and f"/order/{MASKED}/complaint/abc123" in html


def test_reading_an_email_that_does_not_exist_is_a_404(app, operator):
    assert desk(app, operator).get("/operator/outbox/999999").status_code == 404
    assert events("outbox.read") == []


def test_the_outbox_reader_fits_a_phone(live_server, phone):
    app, base = live_server
    operator = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
    secret = pyotp.random_base32()
    operator.totp_secret = vault().encrypt(secret)
    db.session.commit()
    email = queue_email(
        "password_reset",
        "merchant-with-a-long-address@a-long-domain.example",
        "Reset your password for faka",
        {"reset_url": "http://localhost/reset/" + "Ab3" * 40, "minutes": 60},
        locale="en",
    )
    db.session.commit()
    phone.goto(f"{base}/login?lang=en")
    phone.fill("#email", "ops@example.com")
    phone.fill("#password", OPERATOR_PASSWORD)
    phone.click("button[type=submit]")
    phone.fill("#code", pyotp.TOTP(secret).now())
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{base}/operator/")
    phone.goto(f"{base}/operator/outbox/{email.id}")
    phone.wait_for_url(re.compile(r".*/reauth\?next=.*"))
    phone.fill("#password", OPERATOR_PASSWORD)
    phone.fill("#code", pyotp.TOTP(secret).at(time.time() + 30))  # a code is good once: the next one
    phone.click("button[type=submit]")
    phone.wait_for_url(f"{base}/operator/outbox/{email.id}")
    assert phone.locator("#email-link-1").inner_text().startswith("http://localhost/reset/")
    phone.screenshot(path="/tmp/policies-outbox-reader.png", full_page=True)
    assert no_horizontal_scroll(phone)
    assert phone.console_errors == []


# -- helping a merchant log in -------------------------------------------------------------


def merchant_page(ops, merchant) -> str:
    return ops.get(f"/operator/merchants/{merchant.id}?lang=en").text


def act(ops, merchant, action: str):
    token = csrf_from(merchant_page(ops, merchant))
    return ops.post(f"/operator/merchants/{merchant.id}/{action}?lang=en", data={"csrf_token": token})


def with_totp(user) -> str:
    secret = pyotp.random_base32()
    user.totp_secret = vault().encrypt(secret)
    db.session.commit()
    return secret


def log_in(client, email, password):
    token = csrf_from(client.get("/login").text)
    return client.post("/login", data={"csrf_token": token, "email": email, "password": password})


def test_resetting_two_factor_lets_the_merchant_log_in_with_the_password_and_tells_them(app, operator, merchant):
    with_totp(merchant.user)
    ops = desk(app, operator)
    page = merchant_page(ops, merchant)
    assert "Reset two-factor authentication" in page and "hx-confirm=" in page
    assert log_in(app.test_client(), merchant.user.email, MERCHANT_PASSWORD).headers["Location"] == "/login/2fa"

    done = act(ops, merchant, "reset-2fa")
    assert done.status_code == 303
    assert not reload(merchant.user).totp_enabled and reload(merchant.user).recovery_codes is None
    after = ops.get(done.headers["Location"] + "&lang=en").text
    assert "Two-factor authentication is off" in after and "SMTP is not configured" in after
    [email] = outbox("two_factor_reset")
    assert email.to_addr == merchant.user.email and email.status == OutboxEmail.QUEUED
    assert f'href="/operator/outbox/{email.id}"' in after

    [event] = events("merchant.2fa_reset")
    assert event.actor_id == operator.id and event.target == f"merchant:{merchant.id}"
    assert "Merchant&#39;s two-factor authentication reset" in merchant_page(ops, merchant)  # in its history
    assert (
        urlsplit(log_in(app.test_client(), merchant.user.email, MERCHANT_PASSWORD).headers["Location"]).path
        == "/merchant/"
    )


def test_resetting_two_factor_emails_the_merchant_when_smtp_works(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        operator = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
        with_totp(operator)
        merchant = users.create_merchant("shop@example.com", MERCHANT_PASSWORD, "Shop", approved=True)
        with_totp(merchant.user)
        ops = desk(app, operator)
        done = act(ops, merchant, "reset-2fa")
        assert done.status_code == 303
        assert "The merchant is told by email." in ops.get(done.headers["Location"] + "&lang=en").text
        [message] = smtp.messages
        assert message["To"] == "shop@example.com"
        body = message.get_body(preferencelist=("plain",)).get_content()
        assert "http://localhost/account/2fa" in body
        assert outbox("two_factor_reset")[0].status == OutboxEmail.SENT


def test_a_reset_link_without_smtp_waits_in_the_outbox_and_works_once_passed_on(app, operator, merchant):
    ops = desk(app, operator)
    done = act(ops, merchant, "send-reset-link")
    assert done.status_code == 303
    [email] = outbox("password_reset")
    assert email.to_addr == merchant.user.email and email.status == OutboxEmail.QUEUED
    after = ops.get(done.headers["Location"] + "&lang=en").text
    assert "A password-reset link (valid for an hour) was queued" in after and "SMTP is not configured" in after
    [event] = events("merchant.password_reset_sent")
    assert event.actor_id == operator.id and event.target == f"merchant:{merchant.id}"
    assert "/reset/" not in (event.detail or "")

    link = local_link(ops.get(f"/operator/outbox/{email.id}?lang=en").text, "/reset/")
    new_password = "a-brand-new-password"
    merchant_browser = app.test_client()
    token = csrf_from(merchant_browser.get(link).text)
    reset = merchant_browser.post(link, data={"csrf_token": token, "password": new_password, "confirm": new_password})
    assert reset.status_code == 303
    assert (
        urlsplit(log_in(app.test_client(), merchant.user.email, new_password).headers["Location"]).path == "/merchant/"
    )


def test_a_reset_link_reaches_the_merchant_when_smtp_works(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        operator = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
        with_totp(operator)
        merchant = users.create_merchant("shop@example.com", MERCHANT_PASSWORD, "Shop", approved=True)
        ops = desk(app, operator)
        done = act(ops, merchant, "send-reset-link")
        assert done.status_code == 303
        assert "The merchant is told by email." in ops.get(done.headers["Location"] + "&lang=en").text
        [message] = smtp.messages
        assert message["To"] == "shop@example.com"
        body = message.get_body(preferencelist=("plain",)).get_content()
        link = re.search(r"http://localhost(/reset/\S+)", body).group(1)
        assert app.test_client().get(link).status_code == 200


def test_login_help_asks_for_the_password_again_and_changes_nothing_until_then(app, operator, merchant):
    with_totp(merchant.user)
    ops = desk(app, operator, confirmed=False)
    for action in ("reset-2fa", "send-reset-link"):
        asked = act(ops, merchant, action)
        assert asked.status_code == 303
        assert (
            asked.headers["Location"].startswith("/reauth?next=")
            and f"/operator/merchants/{merchant.id}" in asked.headers["Location"]
        )
    assert reload(merchant.user).totp_enabled
    assert (
        count(OutboxEmail) == 0 and events("merchant.2fa_reset") == [] and events("merchant.password_reset_sent") == []
    )


def test_a_merchant_without_two_factor_has_nothing_to_reset(app, operator, merchant):
    ops = desk(app, operator)
    assert "Reset two-factor authentication" not in merchant_page(ops, merchant)
    refused = act(ops, merchant, "reset-2fa")
    assert refused.status_code == 400 and "does not use two-factor authentication" in refused.text
    assert count(OutboxEmail) == 0 and events("merchant.2fa_reset") == []


def test_an_operators_own_shop_is_not_reset_from_the_merchant_page(app):
    owner = users.create_operator("owner@example.com", OPERATOR_PASSWORD, shop_name="Owner Shop")
    with_totp(owner)
    shop = db.session.execute(select(Merchant).where(Merchant.user_id == owner.id)).scalar_one()
    ops = desk(app, owner)
    assert "operators manage their own password" in merchant_page(ops, shop)
    for action in ("reset-2fa", "send-reset-link"):
        refused = act(ops, shop, action)
        assert refused.status_code == 400 and "operators manage their own password" in refused.text
    assert reload(owner).totp_enabled and count(OutboxEmail) == 0


def test_a_reset_for_a_merchant_that_does_not_exist_is_a_404(app, operator):
    ops = desk(app, operator)
    token = csrf_from(ops.get("/operator/merchants").text)
    for action in ("reset-2fa", "send-reset-link"):
        assert ops.post(f"/operator/merchants/999999/{action}", data={"csrf_token": token}).status_code == 404


def test_login_help_without_a_csrf_token_changes_nothing(app, operator, merchant):
    with_totp(merchant.user)
    ops = desk(app, operator)
    for action in ("reset-2fa", "send-reset-link"):
        assert ops.post(f"/operator/merchants/{merchant.id}/{action}").status_code == 400
    assert reload(merchant.user).totp_enabled and count(OutboxEmail) == 0


# -- who may -------------------------------------------------------------------------------


def test_buyers_and_merchants_may_not_read_the_outbox_or_help_with_logins(app, merchant):
    other = users.create_merchant("other@example.com", MERCHANT_PASSWORD, "Other", approved=True)
    with_totp(other.user)
    email = queue_email(
        "verify_email", "x@example.com", "Verify", {"verify_url": "http://localhost/verify/secret", "hours": 48}
    )
    db.session.commit()
    buyer = app.test_client()
    as_merchant = app.test_client()
    login(as_merchant, merchant.user)
    with as_merchant.session_transaction() as session:
        session["reauth_at"] = int(time.time())  # even with the password just re-entered

    # (client, method, url, expected status, redirect path or None)
    table = []
    for client, status, where in ((buyer, 303, "/login"), (as_merchant, 403, None)):
        table.append((client, "GET", f"/operator/outbox/{email.id}", status, where))
        for action in ("reset-2fa", "send-reset-link"):
            table.append((client, "POST", f"/operator/merchants/{other.id}/{action}", status, where))
    wrong = []
    for client, method, url, status, where in table:
        token = csrf_from(client.get("/lookup").text)
        response = client.open(url, method=method, data={"csrf_token": token} if method == "POST" else None)
        location = urlsplit(response.headers.get("Location", "")).path if where else None
        if response.status_code != status or location != where or "verify/secret" in response.text:
            wrong.append((method, url, response.status_code, response.headers.get("Location")))
    assert wrong == []
    assert reload(other.user).totp_enabled
    assert events("outbox.read") == [] and count(OutboxEmail) == 1
