"""Back-office accounts: sign-up with a verification email, password reset by email, TOTP
two-factor authentication with recovery codes, and lockout across both login steps."""

import json
import re
import time
from urllib.parse import urlsplit

import pyotp
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer
from sqlalchemy import func, select

from conftest import csrf_from, reload
from faka.accounts import lockout, users
from faka.accounts.models import Merchant, User
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db
from faka.messaging.models import OutboxEmail
from faka.platform.models import AuditEvent
from faka.platform.settings import set_setting

PASSWORD = "merchant-pass-1"  # the `merchant` fixture's


@pytest.fixture
def mail_app(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        yield app


@pytest.fixture
def mail_client(mail_app):
    return mail_app.test_client()


def post_form(client, page: str, data: dict, action: str | None = None):
    """Open `page`, then post its form (with its CSRF token) to `action` or the page."""
    token = csrf_from(client.get(page).text)
    return client.post(action or page, data={"csrf_token": token, **data})


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def user_by_email(email: str) -> User | None:
    db.session.commit()
    return db.session.execute(select(User).where(User.email == email)).scalar_one_or_none()


def link_in(message, path: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(rf"http://localhost({re.escape(path)}\S+)", body)
    assert match, body
    return match.group(1)


def past_token(salt: str, payload, hours_ago: float, secret: str = "test-secret") -> str:
    """A token signed correctly, but `hours_ago` hours ago."""

    class PastSigner(TimestampSigner):
        def get_timestamp(self):
            return int(time.time() - hours_ago * 3600)

    return URLSafeTimedSerializer(secret, salt=salt, signer=PastSigner).dumps(payload)


def signup(client, email="new@example.com", password="a-good-password", shop_name="New Shop", **extra):
    return post_form(client, "/signup", {"email": email, "password": password, "shop_name": shop_name, **extra})


def login(client, email, password, next_path=None):
    page = "/login" + (f"?next={next_path}" if next_path else "")
    return post_form(client, page, {"email": email, "password": password})


def path_of(response) -> str:
    return urlsplit(response.headers["Location"]).path


# -- sign-up and email verification -----------------------------------------------------


def test_signup_answers_check_your_inbox_and_its_emailed_link_verifies_the_address(mail_client, smtp):
    response = signup(mail_client, email="New@Example.com")
    assert response.status_code == 303 and path_of(response) == "/signup/sent"
    user = user_by_email("new@example.com")
    assert user.role == "merchant" and user.email_verified_at is None and user.password_hash.startswith("$argon2")
    merchant = db.session.execute(select(Merchant).where(Merchant.user_id == user.id)).scalar_one()
    assert merchant.name == "New Shop" and merchant.status == Merchant.PENDING
    assert mail_client.get("/merchant/").status_code == 303  # not logged in: the answer is the same for a taken email

    [message] = smtp.messages
    assert message["To"] == "new@example.com"
    link = link_in(message, "/verify/")
    outbox = db.session.execute(select(OutboxEmail)).scalar_one()
    assert outbox.kind == "verify_email" and outbox.status == OutboxEmail.SENT
    assert link.rsplit("/", 1)[1] not in outbox.payload_ciphertext  # the token is encrypted at rest

    confirmed = mail_client.get(link + "?lang=en")
    assert confirmed.status_code == 303 and path_of(confirmed) == "/login"
    assert "Your email address is confirmed." in mail_client.get("/login?lang=en").text
    verified_at = reload(user).email_verified_at
    assert verified_at is not None
    assert mail_client.get(link).status_code == 303  # opening it again is harmless
    assert reload(user).email_verified_at == verified_at
    assert path_of(login(mail_client, "new@example.com", "a-good-password")) == "/merchant/"
    assert mail_client.get("/merchant/").status_code == 200


def test_signup_answers_the_same_for_a_new_and_a_taken_email_and_tells_the_owner(mail_client, smtp):
    owner = users.create_merchant("taken@example.com", PASSWORD, "First Shop")

    def without_tokens(html: str) -> str:
        return re.sub(r'(value=|"X-CSRFToken": )"[^"]*"', r'\1""', html)

    def answer(email):
        client = mail_client.application.test_client()
        page = client.get("/signup?lang=en")
        response = signup(client, email=email)
        landing = client.get(response.headers["Location"])
        return (
            page.status_code,
            response.status_code,
            response.headers["Location"],
            sorted(response.headers.keys()),
            without_tokens(response.text),
            landing.status_code,
            without_tokens(landing.text),
            sorted(cookie.key for cookie in client._cookies.values()),
            client.get("/merchant/").status_code,
        )

    assert answer("new@example.com") == answer("TAKEN@example.com")
    assert count(User) == 2 and count(Merchant) == 2  # the new shop was opened; the taken email got nothing new
    emails = {(e.kind, e.to_addr) for e in db.session.execute(select(OutboxEmail)).scalars()}
    assert emails == {("verify_email", "new@example.com"), ("account_exists", owner.user.email)}
    assert {m["To"] for m in smtp.messages} == {"new@example.com", owner.user.email}


def test_logged_in_merchant_can_ask_for_a_new_verification_link(mail_client, smtp):
    signup(mail_client)
    login(mail_client, "new@example.com", "a-good-password")
    token = csrf_from(mail_client.get("/reset").text)
    assert mail_client.post("/verify/resend", data={"csrf_token": token}).status_code == 303
    assert len(smtp.messages) == 2
    second = link_in(smtp.messages[1], "/verify/")
    assert mail_client.get(second).status_code == 303
    assert user_by_email("new@example.com").email_verified_at is not None
    mail_client.post("/verify/resend", data={"csrf_token": token})
    assert len(smtp.messages) == 2  # nothing left to verify, nothing sent


@pytest.mark.parametrize("kind", ["expired", "forged", "other-purpose", "garbage"])
def test_bad_verification_links_are_refused(client, merchant, kind):
    user = merchant.user
    payload = {"uid": user.id, "email": user.email}
    token = {
        "expired": past_token(users.VERIFY_SALT, payload, hours_ago=49),
        "forged": URLSafeTimedSerializer("not-our-secret", salt=users.VERIFY_SALT).dumps(payload),
        "other-purpose": URLSafeTimedSerializer("test-secret", salt=users.RESET_SALT).dumps(payload),
        "garbage": "not-a-token",
    }[kind]
    response = client.get(f"/verify/{token}?lang=en")
    assert response.status_code == 400 and "invalid or has expired" in response.text
    assert reload(user).email_verified_at is None


def test_verification_link_a_day_old_still_works(client, merchant):
    user = merchant.user
    token = past_token(users.VERIFY_SALT, {"uid": user.id, "email": user.email}, hours_ago=24)
    assert client.get(f"/verify/{token}").status_code == 303
    assert reload(user).email_verified_at is not None


def test_signup_refused_when_registration_is_closed(client):
    set_setting("open_registration", "0")
    page = client.get("/signup?lang=en")
    assert page.status_code == 403 and "cannot sign up" in page.text and 'name="password"' not in page.text
    token = csrf_from(client.get("/login").text)
    response = client.post(
        "/signup",
        data={"csrf_token": token, "email": "new@example.com", "password": "a-good-password", "shop_name": "New Shop"},
    )
    assert response.status_code == 403
    assert count(User) == 0 and count(Merchant) == 0
    assert "/signup" not in client.get("/login").text  # no link to a closed page


def test_signup_closed_message_is_in_chinese_by_default(client):
    set_setting("open_registration", "0")
    assert "暂不开放" in client.get("/signup").text


def test_signup_with_a_taken_email_answers_neutrally_and_creates_nothing(mail_client, smtp):
    merchant = users.create_merchant("taken@example.com", PASSWORD, "First Shop")
    before = merchant.user.password_hash
    response = signup(mail_client, email=merchant.user.email.upper(), shop_name="Copycat")
    assert response.status_code == 303 and path_of(response) == "/signup/sent"
    assert "Check your inbox" in mail_client.get("/signup/sent?lang=en").text
    assert count(User) == 1 and count(Merchant) == 1
    assert reload(merchant.user).password_hash == before
    assert mail_client.get("/merchant/").status_code == 303  # not logged in
    # The owner hears about it; the email holds no verification link.
    [message] = smtp.messages
    assert message["To"] == merchant.user.email
    assert "/verify/" not in message.get_body(preferencelist=("plain",)).get_content()


@pytest.mark.parametrize(
    "fields",
    [
        {"password": "short"},
        {"email": "same.as.password@example.com", "password": "Same.As.Password@example.com"},
        {"email": "not-an-email"},
        {"shop_name": "   "},
        {"shop_name": "x" * 81},
    ],
    ids=["short-password", "password-is-email", "bad-email", "blank-shop", "long-shop"],
)
def test_signup_with_bad_input_changes_nothing(client, fields):
    response = signup(client, **fields)
    assert response.status_code == 400 and 'class="error"' in response.text
    assert count(User) == 0 and count(Merchant) == 0 and count(OutboxEmail) == 0


def test_signup_without_csrf_token_changes_nothing(client):
    response = client.post(
        "/signup", data={"email": "new@example.com", "password": "a-good-password", "shop_name": "S"}
    )
    assert response.status_code == 400
    assert count(User) == 0


def test_signup_is_rate_limited_per_ip(client):
    token = csrf_from(client.get("/signup").text)
    statuses = [client.post("/signup", data={"csrf_token": token, "email": "x"}).status_code for _ in range(11)]
    assert statuses[:10] == [400] * 10 and statuses[10] == 429


# -- password reset ---------------------------------------------------------------------


def test_password_reset_by_email_works_once(mail_client, smtp, merchant):
    user = merchant.user
    user.locked_until = utcnow() + lockout.LOCKOUT  # locked out after failures
    db.session.commit()
    for _ in range(2):
        response = post_form(mail_client, "/reset", {"email": user.email})
        assert response.status_code == 303 and path_of(response) == "/reset/sent"
    first, second = (link_in(m, "/reset/") for m in smtp.messages)

    assert mail_client.get(first).status_code == 200
    mismatch = post_form(mail_client, first, {"password": "brand-new-pass", "confirm": "other-new-pass"})
    assert mismatch.status_code == 400 and reload(user).password_hash == user.password_hash
    response = post_form(mail_client, first, {"password": "brand-new-pass", "confirm": "brand-new-pass"})
    assert response.status_code == 303 and path_of(response) == "/login"

    user = reload(user)
    assert user.locked_until is None and user.failed_logins == 0
    assert count(AuditEvent, AuditEvent.action == "password.reset", AuditEvent.actor_id == user.id) == 1
    assert login(mail_client, user.email, PASSWORD).status_code == 400
    assert login(mail_client, user.email, "brand-new-pass").status_code == 303

    # Both links die with the password they were issued for.
    for link in (first, second):
        assert mail_client.get(link).status_code == 400
        token = csrf_from(mail_client.get("/reset").text)
        again = mail_client.post(
            link, data={"csrf_token": token, "password": "third-password", "confirm": "third-password"}
        )
        assert again.status_code == 400
    assert login(mail_client, user.email, "brand-new-pass").status_code == 303


def test_reset_for_an_unknown_email_answers_the_same_and_sends_nothing(mail_client, smtp, merchant):
    response = post_form(mail_client, "/reset", {"email": "nobody@shop.test"})
    assert response.status_code == 303 and path_of(response) == "/reset/sent"
    assert smtp.messages == [] and count(OutboxEmail) == 0


@pytest.mark.parametrize("kind", ["expired", "forged", "other-purpose"])
def test_bad_reset_links_change_nothing(client, merchant, kind):
    user = merchant.user
    good = users.password_reset_token(user)
    payload = URLSafeTimedSerializer("test-secret", salt=users.RESET_SALT).loads(good)
    token = {
        "expired": past_token(users.RESET_SALT, payload, hours_ago=1.1),
        "forged": URLSafeTimedSerializer("not-our-secret", salt=users.RESET_SALT).dumps(payload),
        "other-purpose": URLSafeTimedSerializer("test-secret", salt=users.VERIFY_SALT).dumps(payload),
    }[kind]
    assert client.get(f"/reset/{token}").status_code == 400
    csrf = csrf_from(client.get("/reset").text)
    response = client.post(
        f"/reset/{token}", data={"csrf_token": csrf, "password": "evil-password", "confirm": "evil-password"}
    )
    assert response.status_code == 400
    assert reload(user).password_hash == user.password_hash


def test_reset_refuses_the_email_as_password(client, merchant):
    link = f"/reset/{users.password_reset_token(merchant.user)}"
    email = merchant.user.email
    response = post_form(client, link, {"password": email, "confirm": email})
    assert response.status_code == 400
    assert reload(merchant.user).password_hash == merchant.user.password_hash


# -- two-factor authentication ----------------------------------------------------------


def set_up_totp(client, user, password=PASSWORD) -> tuple[str, list[str]]:
    """Log in and turn on TOTP as a user would; returns the secret and recovery codes."""
    login(client, user.email, password)
    page = client.get("/account/2fa/setup")
    assert page.status_code == 200 and "<svg" in page.text
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page.text).group(1).replace(" ", "")
    response = post_form(client, "/account/2fa/setup", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303 and path_of(response) == "/account/2fa/recovery-codes"
    codes = re.findall(
        r"<li><code>([0-9a-f]{5}-[0-9a-f]{5})</code></li>", client.get(response.headers["Location"]).text
    )
    return secret, codes


def next_code(secret: str) -> str:
    """The code of the next 30-second step: accepted (within the window), and newer than
    a code just used, which is good only once."""
    return pyotp.TOTP(secret).at(time.time() + 30)


def wrong_code(secret: str) -> str:
    totp = pyotp.TOTP(secret)
    near = {totp.at(time.time() + shift) for shift in (-60, -30, 0, 30, 60)}
    return next(c for c in (f"{n:06d}" for n in range(1000000)) if c not in near)


def logout(client):
    token = csrf_from(client.get("/login").text)
    client.post("/logout", data={"csrf_token": token})


def test_totp_setup_stores_the_secret_encrypted_and_shows_codes_once(client, merchant):
    secret, codes = set_up_totp(client, merchant.user)
    user = reload(merchant.user)
    assert user.totp_enabled
    assert user.totp_secret != secret and secret not in user.totp_secret
    assert vault().decrypt(user.totp_secret) == secret
    assert len(codes) == 10 and len(set(codes)) == 10
    stored = json.loads(user.recovery_codes)
    assert len(stored) == 10 and all(h.startswith("$argon2") for h in stored)
    assert not any(c.replace("-", "") in user.recovery_codes for c in codes)
    assert count(AuditEvent, AuditEvent.action == "2fa.enabled", AuditEvent.actor_id == user.id) == 1
    again = client.get("/account/2fa/recovery-codes")
    assert again.status_code == 303 and codes[0] not in client.get("/account/2fa").text


def test_totp_setup_with_a_wrong_code_changes_nothing(client, merchant):
    login(client, merchant.user.email, PASSWORD)
    page = client.get("/account/2fa/setup").text
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")
    response = post_form(client, "/account/2fa/setup", {"code": wrong_code(secret)})
    assert response.status_code == 400 and secret in response.text.replace(" ", "")  # same secret offered again
    assert reload(merchant.user).totp_secret is None and count(AuditEvent, AuditEvent.action == "2fa.enabled") == 0


def test_setup_page_has_no_inline_script_or_style(client, merchant):
    login(client, merchant.user.email, PASSWORD)
    html = client.get("/account/2fa/setup").text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html)
    assert not re.search(r"\s(on[a-z]+|style)=", html)
    assert "data:" not in html


def test_login_with_totp_needs_the_second_step(client, merchant):
    secret, _codes = set_up_totp(client, merchant.user)
    logout(client)
    response = login(client, merchant.user.email, PASSWORD, next_path="/merchant/orders")
    assert response.status_code == 303 and path_of(response) == "/login/2fa"
    assert client.get("/merchant/").status_code == 303  # not logged in yet
    response = post_form(client, "/login/2fa", {"code": next_code(secret)})
    assert response.status_code == 303 and response.headers["Location"] == "/merchant/orders"
    assert client.get("/merchant/").status_code == 200


def test_second_step_without_a_password_goes_back_to_login(client, merchant):
    assert path_of(client.get("/login/2fa")) == "/login"


def test_second_step_expires_after_a_few_minutes(client, merchant):
    secret, _codes = set_up_totp(client, merchant.user)
    logout(client)
    login(client, merchant.user.email, PASSWORD)
    with client.session_transaction() as session:
        session["auth_pending_2fa"] = {**session["auth_pending_2fa"], "until": int(time.time()) - 1}
    token = csrf_from(client.get("/login").text)
    response = client.post("/login/2fa", data={"csrf_token": token, "code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303 and path_of(response) == "/login"
    assert client.get("/merchant/").status_code == 303


def test_recovery_code_logs_in_once(client, merchant):
    _secret, codes = set_up_totp(client, merchant.user)
    for attempt in range(2):
        logout(client)
        login(client, merchant.user.email, PASSWORD)
        response = post_form(client, "/login/2fa", {"code": codes[3].upper().replace("-", " ")})
        if attempt == 0:
            assert response.status_code == 303 and client.get("/merchant/").status_code == 200
        else:
            assert response.status_code == 400 and client.get("/merchant/").status_code == 303
    user = reload(merchant.user)
    assert len(json.loads(user.recovery_codes)) == 9
    assert count(AuditEvent, AuditEvent.action == "2fa.recovery_code_used") == 1


def test_wrong_codes_lock_the_account(client, merchant):
    secret, _codes = set_up_totp(client, merchant.user)
    logout(client)
    login(client, merchant.user.email, PASSWORD)
    for _ in range(4):
        assert post_form(client, "/login/2fa", {"code": wrong_code(secret)}).status_code == 400
    # Entering the password again does not wipe the count.
    assert path_of(login(client, merchant.user.email, PASSWORD)) == "/login/2fa"
    response = post_form(client, "/login/2fa?lang=en", {"code": wrong_code(secret)})
    assert response.status_code == 400 and "locked" in response.text
    assert reload(merchant.user).locked_until is not None
    # Locked: neither the right code nor the right password gets in.
    assert path_of(client.get("/login/2fa")) == "/login"
    assert login(client, merchant.user.email, PASSWORD).status_code == 400
    assert client.get("/merchant/").status_code == 303


def test_locked_account_refuses_the_right_code(client, merchant):
    secret, _codes = set_up_totp(client, merchant.user)
    logout(client)
    login(client, merchant.user.email, PASSWORD)
    user = reload(merchant.user)
    user.locked_until = utcnow() + lockout.LOCKOUT
    db.session.commit()
    response = post_form(client, "/login/2fa", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 400 and client.get("/merchant/").status_code == 303


def test_turning_totp_off_needs_a_current_code(client, merchant):
    secret, _codes = set_up_totp(client, merchant.user)
    response = post_form(client, "/account/2fa", {"code": wrong_code(secret)}, action="/account/2fa/disable")
    assert response.status_code == 400 and reload(merchant.user).totp_enabled
    response = post_form(client, "/account/2fa", {"code": next_code(secret)}, action="/account/2fa/disable")
    assert response.status_code == 303
    user = reload(merchant.user)
    assert user.totp_secret is None and user.recovery_codes is None
    assert count(AuditEvent, AuditEvent.action == "2fa.disabled") == 1
    logout(client)
    assert path_of(login(client, user.email, PASSWORD)) == "/merchant/"


def test_operator_without_totp_is_sent_to_set_it_up(client):
    operator = users.create_operator("ops@shop.test", "operator-pass-1")
    response = login(client, operator.email, "operator-pass-1")
    assert response.status_code == 303 and path_of(response) == "/account/2fa/setup"
    from faka.accounts import twofactor

    assert twofactor.needs_setup(reload(operator))
    secret, _codes = set_up_totp(client, operator, password="operator-pass-1")
    assert not twofactor.needs_setup(reload(operator))
    logout(client)
    assert path_of(login(client, operator.email, "operator-pass-1")) == "/login/2fa"
    response = post_form(client, "/login/2fa", {"code": next_code(secret)})
    assert path_of(response) == "/operator/"


def test_account_pages_need_a_login(client):
    for path in ["/account/2fa", "/account/2fa/setup", "/account/2fa/recovery-codes"]:
        response = client.get(path)
        assert response.status_code in (302, 303) and path_of(response) == "/login"


# -- on a phone -------------------------------------------------------------------------

from conftest import no_horizontal_scroll  # noqa: E402


def test_merchant_signs_up_and_turns_on_totp_on_a_phone(live_server, phone):
    _app, base = live_server
    phone.goto(base + "/signup?lang=en")
    assert no_horizontal_scroll(phone)
    phone.fill("#email", "phone@example.com")
    phone.fill("#password", "a-good-password")
    phone.fill("#shop_name", "Phone Shop")
    phone.click("button.primary")
    phone.wait_for_url("**/signup/sent")
    assert no_horizontal_scroll(phone)
    phone.goto(base + "/login")
    phone.fill("#email", "phone@example.com")
    phone.fill("#password", "a-good-password")
    phone.click("main button.primary")
    phone.wait_for_url("**/merchant/")
    phone.goto(base + "/account/2fa/setup")
    assert phone.locator(".qr svg").is_visible() and no_horizontal_scroll(phone)
    secret = phone.locator("code.secret").inner_text().replace(" ", "")
    phone.fill("#code", pyotp.TOTP(secret).now())
    phone.click("button.primary")
    phone.wait_for_url("**/account/2fa/recovery-codes")
    assert phone.locator(".recovery-codes li").count() == 10 and no_horizontal_scroll(phone)
    assert phone.console_errors == []  # no CSP violation from the inline QR code
    assert user_by_email("phone@example.com").totp_enabled
