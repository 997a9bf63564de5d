"""A TOTP code is good once: the account remembers the time step of the last code it
accepted and refuses that code (or an older one) everywhere a code is asked for, the
login's second step, the re-authentication before secrets are shown, turning two-factor
authentication off, with a message that says why."""

import time

import pyotp
import pytest

from conftest import csrf_from, login, reload, with_totp
from faka.accounts import twofactor
from faka.extensions import db

PASSWORD = "merchant-pass-1"
USED = "That code was already used."


def post_form(client, page: str, data: dict, action: str | None = None):
    token = csrf_from(client.get(page).text)
    return client.post(action or page, data={"csrf_token": token, **data})


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def password_step(client, user):
    response = post_form(client, "/login", {"email": user.email, "password": PASSWORD})
    assert response.status_code == 303 and response.headers["Location"] == "/login/2fa"


@pytest.fixture
def secret(merchant):
    return with_totp(merchant.user)


def test_the_same_code_twice_at_login_is_refused_the_second_time(app, merchant, secret):
    code = pyotp.TOTP(secret).now()
    first = english(app.test_client())
    password_step(first, merchant.user)
    assert post_form(first, "/login/2fa", {"code": code}).status_code == 303
    assert first.get("/merchant/").status_code == 200

    second = english(app.test_client())  # someone who saw the code, within its 30 seconds
    password_step(second, merchant.user)
    response = post_form(second, "/login/2fa", {"code": code})
    assert response.status_code == 400 and USED in response.text
    assert second.get("/merchant/").status_code == 303
    assert reload(merchant.user).failed_logins == 0  # most likely the owner's own, sent twice: not a guess
    # The next code works.
    assert post_form(second, "/login/2fa", {"code": pyotp.TOTP(secret).at(time.time() + 30)}).status_code == 303


def test_an_older_code_is_refused_after_a_newer_one(app, merchant, secret):
    totp = pyotp.TOTP(secret)
    client = english(app.test_client())
    password_step(client, merchant.user)
    assert post_form(client, "/login/2fa", {"code": totp.at(time.time() + 30)}).status_code == 303
    other = english(app.test_client())
    password_step(other, merchant.user)
    response = post_form(other, "/login/2fa", {"code": totp.now()})
    assert response.status_code == 400 and USED in response.text


def test_a_code_used_at_login_is_refused_at_reauthentication(app, merchant, secret):
    code = pyotp.TOTP(secret).now()
    client = english(app.test_client())
    password_step(client, merchant.user)
    assert post_form(client, "/login/2fa", {"code": code}).status_code == 303
    response = post_form(client, "/reauth?next=/merchant/", {"password": PASSWORD, "code": code})
    assert response.status_code == 400 and USED in response.text
    with client.session_transaction() as session:
        assert "reauth_at" not in session


def test_the_same_code_twice_at_reauthentication(app, merchant, secret):
    client = english(app.test_client())
    login(client, merchant.user)
    code = pyotp.TOTP(secret).now()
    assert post_form(client, "/reauth?next=/merchant/", {"password": PASSWORD, "code": code}).status_code == 303
    again = post_form(client, "/reauth?next=/merchant/", {"password": PASSWORD, "code": code})
    assert again.status_code == 400 and USED in again.text


def test_a_used_code_does_not_turn_two_factor_off(app, merchant, secret):
    client = english(app.test_client())
    login(client, merchant.user)
    code = pyotp.TOTP(secret).now()
    assert post_form(client, "/reauth?next=/merchant/", {"password": PASSWORD, "code": code}).status_code == 303
    response = post_form(client, "/account/2fa", {"code": code}, action="/account/2fa/disable")
    assert response.status_code == 400 and USED in response.text
    assert reload(merchant.user).totp_enabled


def test_the_code_that_turned_two_factor_on_cannot_log_in(app, merchant):
    secret = pyotp.random_base32()
    code = pyotp.TOTP(secret).now()
    twofactor.enable(merchant.user_id, secret, code)
    client = english(app.test_client())
    password_step(client, merchant.user)
    response = post_form(client, "/login/2fa", {"code": code})
    assert response.status_code == 400 and USED in response.text


def test_recovery_codes_are_unaffected(app, merchant):
    secret = pyotp.random_base32()
    codes, _session = twofactor.enable(merchant.user_id, secret, pyotp.TOTP(secret).now())
    client = english(app.test_client())
    password_step(client, merchant.user)
    assert post_form(client, "/login/2fa", {"code": codes[0]}).status_code == 303
    db.session.commit()
    assert reload(merchant.user).totp_last_step is not None
