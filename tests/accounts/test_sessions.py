"""Back-office sessions live on the server: a copied session cookie dies with its session
(logout, a password reset, two-factor set-up or an operator's reset of it, a device signed
out from the sessions page, "sign out everywhere else"), every session ends at an absolute
limit however active it is, and the account lists its signed-in devices."""

import re
import time
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import select

from conftest import csrf_from, logged_in_session, login, reload, with_totp
from faka.accounts import sessions, users
from faka.accounts.login import record_sign_in
from faka.accounts.models import User, UserSession
from faka.extensions import db
from faka.platform.models import AuditEvent

PASSWORD = "merchant-pass-1"
PHONE_UA = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.1 Mobile/15E148 Safari/604.1"
)
DESKTOP_UA = (
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0.0.0 Safari/537.36"
)


def browser(app, ip="192.0.2.10", user_agent=DESKTOP_UA, lang="en"):
    client = app.test_client()
    client.environ_base.update({"REMOTE_ADDR": ip, "HTTP_USER_AGENT": user_agent})
    with client.session_transaction() as session:
        session["lang"] = lang
    return client


def post_form(client, page: str, data: dict, action: str | None = None):
    token = csrf_from(client.get(page).text)
    return client.post(action or page, data={"csrf_token": token, **data})


def log_in(client, email, password=PASSWORD):
    response = post_form(client, "/login", {"email": email, "password": password})
    assert response.status_code == 303 and "/login" not in response.headers["Location"]
    return response


def copy_of(client, app):
    """Another browser, elsewhere, holding a copy of `client`'s cookies."""
    thief = browser(app, ip="203.0.113.66", user_agent="curl/8.5.0")
    for name in (app.config["SESSION_COOKIE_NAME"], "faka_device"):
        cookie = client.get_cookie(name)
        if cookie is not None:
            thief.set_cookie(name, cookie.value)
    return thief


def logged_in(client) -> bool:
    response = client.get("/merchant/")
    return response.status_code == 200


def sessions_rows(user) -> list[UserSession]:
    db.session.commit()
    return list(
        db.session.execute(select(UserSession).where(UserSession.user_id == user.id).order_by(UserSession.id)).scalars()
    )


@pytest.fixture
def owner(app, merchant):
    client = browser(app)
    log_in(client, merchant.user.email)
    return client


# -- a copied cookie ------------------------------------------------------------------------


def test_a_copied_cookie_dies_with_the_logout(app, merchant, owner):
    thief = copy_of(owner, app)
    assert logged_in(thief)  # the copy works, as long as the session does
    post_form(owner, "/merchant/", {}, action="/logout")
    assert not logged_in(owner)
    assert not logged_in(thief)
    [row] = sessions_rows(merchant.user)
    assert row.revoked_at is not None


def test_a_copied_cookie_dies_with_a_password_reset(app, merchant, owner):
    thief = copy_of(owner, app)
    other_device = browser(app, ip="198.51.100.7", user_agent=PHONE_UA)
    log_in(other_device, merchant.user.email)
    link = f"/reset/{users.password_reset_token(merchant.user)}"
    response = post_form(browser(app), link, {"password": "brand-new-pass", "confirm": "brand-new-pass"})
    assert response.status_code == 303 and response.headers["Location"] == "/login"
    assert not logged_in(thief) and not logged_in(owner) and not logged_in(other_device)
    assert all(row.revoked_at is not None for row in sessions_rows(merchant.user))


def test_a_copied_cookie_dies_when_two_factor_is_turned_on_and_the_owner_stays(app, merchant, owner):
    thief = copy_of(owner, app)
    assert logged_in(thief)
    page = owner.get("/account/2fa/setup").text
    secret = re.search(r'<code class="secret">([A-Z2-7 ]+)</code>', page).group(1).replace(" ", "")
    response = post_form(owner, "/account/2fa/setup", {"code": pyotp.TOTP(secret).now()})
    assert response.status_code == 303
    assert logged_in(owner)
    assert not logged_in(thief)


def test_a_copied_cookie_dies_when_the_operator_resets_the_merchants_two_factor(app, merchant, owner, operator):
    with_totp(merchant.user)
    thief = copy_of(owner, app)
    assert logged_in(thief)
    desk = browser(app, ip="192.0.2.200")
    login(desk, operator)
    with desk.session_transaction() as session:
        session["reauth_at"] = int(time.time())
    page = f"/operator/merchants/{merchant.id}"
    response = post_form(desk, page, {}, action=f"{page}/reset-2fa")
    assert response.status_code == 303 and reload(merchant.user).totp_secret is None
    assert not logged_in(thief) and not logged_in(owner)
    assert desk.get("/operator/").status_code == 200  # the operator's own session is another account's


def test_a_copied_cookie_dies_when_its_device_is_signed_out_from_the_sessions_page(app, merchant, owner):
    phone = browser(app, ip="198.51.100.7", user_agent=PHONE_UA)
    log_in(phone, merchant.user.email)
    thief = copy_of(phone, app)
    page = owner.get("/account/sessions")
    phone_row = next(row for row in sessions_rows(merchant.user) if row.ip == "198.51.100.7")
    revoke = f"/account/sessions/{phone_row.id}/revoke"
    assert f'action="{revoke}"' in page.text
    assert owner.post(revoke).status_code == 400 and logged_in(thief)  # no CSRF token: nothing happens
    response = post_form(owner, "/account/sessions", {}, action=revoke)
    assert response.status_code == 303 and response.headers["Location"] == "/account/sessions"
    assert "That device is signed out." in owner.get("/account/sessions").text
    assert not logged_in(phone) and not logged_in(thief)
    assert logged_in(owner)
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "session.revoked")).scalar_one()


def test_sign_out_everywhere_else_ends_every_other_session_and_copies_of_this_one(app, merchant, owner):
    others = [browser(app, ip=f"198.51.100.{i}", user_agent=PHONE_UA) for i in (7, 8)]
    for other in others:
        log_in(other, merchant.user.email)
    thieves = [copy_of(client, app) for client in others + [owner]]
    assert all(logged_in(client) for client in others + thieves)
    response = post_form(owner, "/account/sessions", {}, action="/account/sessions/others/revoke")
    assert response.status_code == 303
    assert "2 other devices are signed out." in owner.get("/account/sessions").text
    assert not any(logged_in(client) for client in others + thieves)
    assert logged_in(owner)
    [row] = [row for row in sessions_rows(merchant.user) if row.revoked_at is None]
    assert row.ip == "192.0.2.10"  # the owner's, renewed under a new id


def test_a_merchant_cannot_sign_out_another_accounts_session(app, merchant, owner):
    other = users.create_merchant("other@shop.test", PASSWORD, "Other Shop", approved=True)
    victim = browser(app, ip="198.51.100.9")
    log_in(victim, other.user.email)
    [victim_row] = sessions_rows(other.user)
    response = post_form(owner, "/merchant/", {}, action=f"/account/sessions/{victim_row.id}/revoke")
    assert response.status_code == 303
    assert "That session has already ended." in owner.get("/account/sessions").text
    assert logged_in(victim) and reload(victim_row).revoked_at is None


def test_a_session_cookie_without_a_live_session_is_logged_out(app, merchant):
    forged = browser(app)
    with forged.session_transaction() as session:  # signed with the key, as an old cookie would be
        session["_user_id"] = str(merchant.user_id)
        session["_fresh"] = True
    assert not logged_in(forged)
    with forged.session_transaction() as session:
        assert "_user_id" not in session and session.get("lang") == "en"  # forgotten, language kept
    with forged.session_transaction() as session:
        session.update(logged_in_session(merchant.user))
        session["auth_session"] = "not-a-session-of-ours"
    assert not logged_in(forged)


# -- limits -----------------------------------------------------------------------------------


def test_an_operator_session_ends_after_twelve_hours_however_active(app, operator, frozen_clock):
    desk = browser(app)
    login(desk, operator)
    for _ in range(11):  # a request every 65 minutes, within the idle limit of 120
        frozen_clock.advance(minutes=65)
        assert desk.get("/operator/").status_code == 200
    frozen_clock.advance(minutes=65)  # 13 h after the login
    response = desk.get("/operator/")
    assert response.status_code == 303 and response.headers["Location"].startswith("/login")


def test_a_merchant_session_lasts_seven_days_or_the_configured_hours(make_app, frozen_clock):
    app = make_app()
    with app.app_context():
        user = users.create_merchant("week@shop.test", PASSWORD, "Week Shop", approved=True).user
        session_id = record_sign_in(user.id, "192.0.2.1", None)
        assert sessions.session_user(user.id, session_id) is not None
        week = frozen_clock.now + timedelta(days=7)
        row = db.session.execute(select(UserSession)).scalar_one()
        assert row.expires_at == week
        assert sessions.session_user(user.id, session_id, now=week - timedelta(minutes=1)) is None  # idle by then
        row.last_seen_at = week - timedelta(minutes=5)  # active all week
        db.session.commit()
        assert sessions.session_user(user.id, session_id, now=week - timedelta(minutes=1)) is not None
        assert sessions.session_user(user.id, session_id, now=week) is None
    short = make_app(SESSION_MAX_HOURS_MERCHANT=2)
    with short.app_context():
        client = browser(short)
        log_in(client, "week@shop.test")
        for _ in range(3):
            frozen_clock.advance(minutes=35)
            assert logged_in(client)
        frozen_clock.advance(minutes=20)
        assert not logged_in(client)


def test_an_idle_session_ends_on_the_server_too(app, merchant, owner, frozen_clock):
    thief = copy_of(owner, app)  # whose copy of the cookie is re-signed by each of its requests
    frozen_clock.advance(minutes=119)
    assert logged_in(thief)
    frozen_clock.advance(minutes=121)
    assert not logged_in(owner)
    assert not logged_in(thief)


def test_last_seen_is_written_at_most_once_a_minute(app, merchant, owner, frozen_clock):
    [row] = sessions_rows(merchant.user)
    first_seen = row.last_seen_at
    frozen_clock.advance(seconds=30)
    assert logged_in(owner)
    assert reload(row).last_seen_at == first_seen
    frozen_clock.advance(seconds=31)
    assert logged_in(owner)
    assert reload(row).last_seen_at == frozen_clock.now


# -- the sessions page ------------------------------------------------------------------------


def test_sessions_page_lists_the_accounts_devices_and_marks_this_one(app, merchant, owner):
    phone = browser(app, ip="198.51.100.7", user_agent=PHONE_UA)
    log_in(phone, merchant.user.email)
    other = users.create_merchant("other@shop.test", PASSWORD, "Other Shop", approved=True)
    log_in(browser(app, ip="198.51.100.99"), other.user.email)
    html = owner.get("/account/sessions").text
    rows = re.findall(r"<tr( class=\"current\")?>\s*<td>(.*?)</td>\s*<td>(.*?)</td>", html, re.S)
    assert len(rows) == 2  # the other account's session is not listed
    current, listed_phone = rows
    assert (
        current[0]
        and "Chrome 120 · Windows" in current[1]
        and "This device" in current[1]
        and "192.0.2.10" in current[2]
    )
    assert (
        not listed_phone[0]
        and "Mobile Safari 17 · iOS · iPhone" in listed_phone[1]
        and "198.51.100.7" in listed_phone[2]
    )
    assert "198.51.100.99" not in html
    assert html.count('/revoke"') == 2  # the phone's button, and "sign out everywhere else"
    assert 'href="/account/sessions"' in owner.get("/account/2fa").text
    assert 'href="/account/sessions"' in owner.get("/merchant/").text


def test_sessions_page_needs_a_login(app):
    for path in ("/account/sessions",):
        response = app.test_client().get(path)
        assert response.status_code in (302, 303) and "/login" in response.headers["Location"]
    anonymous = browser(app)
    token = csrf_from(anonymous.get("/login").text)
    response = anonymous.post("/account/sessions/others/revoke", data={"csrf_token": token})
    assert response.status_code in (302, 303) and "/login" in response.headers["Location"]


def test_the_session_id_is_stored_hashed(app, merchant, owner):
    with owner.session_transaction() as session:
        session_id = session["auth_session"]
    [row] = sessions_rows(merchant.user)
    assert session_id not in row.token_hash and len(row.token_hash) == 64
    assert db.session.get(User, merchant.user_id) is not None
