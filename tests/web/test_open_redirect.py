"""`next` never leads off the site: every page that takes one (the login, its two-factor
step, the re-authentication before secrets are shown) sends a hostile value home instead,
and keeps a good one."""

import html
import re
from urllib.parse import unquote

import pyotp
import pytest

from bench.findings import HOSTILE_NEXT, on_this_site  # the attack scenario reads a Location the same way
from conftest import csrf_from, login, reload, with_totp
from faka.extensions import db
from faka.web.auth.views import _safe_next

PASSWORD = "merchant-pass-1"  # the `merchant` fixture's

# Each as it stands in the query string. Browsers drop tabs and newlines from a URL, read a
# backslash as a slash and take `//host` as another site; proxies and later redirects may
# decode what is still encoded.
HOSTILE = HOSTILE_NEXT  # one table for this test and the attack scenario (bench/findings.py)

GOOD = [
    ("/merchant/orders", "/merchant/orders"),
    ("/merchant/orders%3Fstatus%3Dpaid%26page%3D2", "/merchant/orders?status=paid&page=2"),
    ("/merchant/products/new", "/merchant/products/new"),
]


def post_form(client, page: str, data: dict):
    token = csrf_from(client.get(page).text)
    return client.post(page, data={"csrf_token": token, **data})


def fresh_totp(user):
    """A user with two-factor authentication on and no code used yet (a code is good once)."""
    secret = with_totp(user)
    user = reload(user)
    user.totp_last_step = None
    db.session.commit()
    return secret


def via_login(client, merchant, raw):
    return post_form(client, f"/login?next={raw}", {"email": merchant.user.email, "password": PASSWORD})


def via_two_factor_login(client, merchant, raw):
    secret = fresh_totp(merchant.user)
    step = post_form(client, f"/login?next={raw}", {"email": merchant.user.email, "password": PASSWORD})
    assert step.status_code == 303 and step.headers["Location"] == "/login/2fa"
    return post_form(client, "/login/2fa", {"code": pyotp.TOTP(secret).now()})


def via_reauth(client, merchant, raw):
    login(client, merchant.user)
    return post_form(client, f"/reauth?next={raw}", {"password": PASSWORD})


def via_reauth_with_code(client, merchant, raw):
    secret = fresh_totp(merchant.user)
    login(client, merchant.user)
    return post_form(client, f"/reauth?next={raw}", {"password": PASSWORD, "code": pyotp.TOTP(secret).now()})


ENDPOINTS = {
    "login": via_login,
    "login-2fa": via_two_factor_login,
    "reauth": via_reauth,
    "reauth-2fa": via_reauth_with_code,
}


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("raw", HOSTILE)
def test_hostile_next_goes_home(client, merchant, endpoint, raw):
    response = ENDPOINTS[endpoint](client, merchant, raw)
    assert response.status_code == 303
    assert on_this_site(response.headers["Location"])
    assert "planted" not in response.headers.get("Set-Cookie", "")


# What a view may be handed, decoded once, whatever the layers before it clean up.
@pytest.mark.parametrize(
    "value",
    [unquote(raw) for raw in HOSTILE]
    + [
        "/\t/evil.example/",
        "/\n/evil.example/",
        "/\r\n/evil.example/",
        "\t//evil.example/",
        " //evil.example/",
        "/\\evil.example/",
        "\\\\evil.example/",
        "/\x00/evil.example/",
        "/\x7f/evil.example/",
        "/%2f/evil.example/",
        "/%2F%2Fevil.example/",
        "/%5cevil.example/",
        "/%09/evil.example/",
        "/%250a/evil.example",
        "",
        None,
        42,
        "/" + "a" * 3000,
    ],
)
def test_safe_next_refuses_anything_a_browser_could_read_as_another_site(value):
    assert _safe_next(value) is None


@pytest.mark.parametrize("endpoint", ENDPOINTS)
@pytest.mark.parametrize("raw, expected", GOOD)
def test_a_path_on_this_site_is_kept(client, merchant, endpoint, raw, expected):
    response = ENDPOINTS[endpoint](client, merchant, raw)
    assert response.status_code == 303 and response.headers["Location"] == expected


@pytest.mark.parametrize("raw", HOSTILE)
def test_reauth_page_offers_no_hostile_cancel_link(client, merchant, raw):
    login(client, merchant.user)
    page = client.get(f"/reauth?next={raw}")
    assert page.status_code == 200
    cancel = re.findall(r'<a href="([^"]*)">(?:Cancel|取消)</a>', page.text)
    assert all(on_this_site(html.unescape(href)) for href in cancel)


def test_reauth_page_keeps_a_good_cancel_link(client, merchant):
    login(client, merchant.user)
    page = client.get("/reauth?next=/merchant/orders")
    assert 'href="/merchant/orders"' in page.text


def test_the_login_redirect_of_the_back_office_keeps_the_page_asked_for(client, merchant):
    asked = client.get("/merchant/orders?status=paid")
    assert asked.status_code == 303
    page = asked.headers["Location"]
    assert page.startswith("/login?next=")
    response = post_form(client, page, {"email": merchant.user.email, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/merchant/orders?status=paid"
