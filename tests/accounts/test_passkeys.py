"""Passkeys (WebAuthn): a second factor next to the authenticator app, and a sign-in with
no email and no password, for merchants and operators.

In a real browser (Chromium with its virtual authenticator, driven over the DevTools
protocol, on http://localhost): a merchant adds a passkey and gets recovery codes, signs
in with it alone and as the second step after the password, confirms a payout account
and a withdrawal with it; an operator whose only second factor is a passkey passes the
operators' two-factor rule; a removed passkey signs nobody in; a lost device is replaced
by a recovery code; without JavaScript the login page shows no passkey button and works.

At the server (the test client, with a software authenticator written here from the
WebAuthn spec with `cryptography`: ES256 keys, "none" attestation): assertions for another
origin, replayed with an old copy of the cookie, with a counter that went back, made with
another account's passkey, or for an unknown passkey are refused the same way, and count
as wrong codes do where an account is known.
"""

import base64
import hashlib
import json
import re
import secrets
import struct
import threading
from datetime import timedelta

import cbor2
import pyotp
import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec
from flask_babel import force_locale, gettext
from playwright.sync_api import expect
from sqlalchemy import select, update
from werkzeug.serving import make_server

from conftest import count, csrf_from, free_port, login, reload, with_totp
from faka.accounts import lockout, users
from faka.accounts.models import Passkey
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger import payouts
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.platform.models import AuditEvent
from faka.risk.models import SecurityEvent

PASSWORD = "merchant-pass-1"
OPERATOR_PASSWORD = "operator-pass-1"
REFUSED = "That passkey was not accepted."
WAIT_MS = 20_000


# -- a software authenticator (WebAuthn Level 2, §6.1 authenticator data, §8.7 "none") -------


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def unb64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


UP, UV, AT = 0x01, 0x04, 0x40


class SoftAuthenticator:
    """Makes and uses discoverable ES256 credentials as a platform authenticator does.
    `counter=False` behaves like a synced passkey (its signature counter is always 0)."""

    def __init__(self, counter: bool = True):
        self.counter = counter
        self.credentials = {}  # credential id -> dict(key, rp_id, user_handle, count)

    def create(self, options: dict, origin: str = "http://localhost", verified: bool = True) -> dict:
        rp_id = options["rp"]["id"]
        credential_id = secrets.token_bytes(32)
        key = ec.generate_private_key(ec.SECP256R1())
        numbers = key.public_key().public_numbers()
        cose = cbor2.dumps({1: 2, 3: -7, -1: 1, -2: numbers.x.to_bytes(32, "big"), -3: numbers.y.to_bytes(32, "big")})
        self.credentials[credential_id] = {"key": key, "rp_id": rp_id, "user_handle": options["user"]["id"], "count": 0}
        client_data = self._client_data("webauthn.create", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(rp_id.encode()).digest()
            + bytes([UP | AT | (UV if verified else 0)])
            + struct.pack(">I", 0)
            + bytes(16)
            + struct.pack(">H", len(credential_id))
            + credential_id
            + cose
        )
        attestation = cbor2.dumps({"fmt": "none", "attStmt": {}, "authData": auth_data})
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "attestationObject": b64url(attestation),
                "transports": ["internal"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    def get(
        self,
        options: dict,
        origin: str = "http://localhost",
        credential_id: bytes | None = None,
        verified: bool = True,
        sign_count: int | None = None,
        user_handle: str | None = None,
    ) -> dict:
        if credential_id is None:
            allowed = [unb64url(c["id"]) for c in options.get("allowCredentials") or []]
            credential_id = next(c for c in self.credentials if not allowed or c in allowed)
        held = self.credentials[credential_id]
        if sign_count is None:
            held["count"] += 1 if self.counter else 0
            sign_count = held["count"]
        client_data = self._client_data("webauthn.get", options["challenge"], origin)
        auth_data = (
            hashlib.sha256(held["rp_id"].encode()).digest()
            + bytes([UP | (UV if verified else 0)])
            + struct.pack(">I", sign_count)
        )
        signature = held["key"].sign(auth_data + hashlib.sha256(client_data).digest(), ec.ECDSA(hashes.SHA256()))
        return {
            "id": b64url(credential_id),
            "rawId": b64url(credential_id),
            "type": "public-key",
            "response": {
                "clientDataJSON": b64url(client_data),
                "authenticatorData": b64url(auth_data),
                "signature": b64url(signature),
                "userHandle": user_handle or held["user_handle"],
            },
            "clientExtensionResults": {},
            "authenticatorAttachment": "platform",
        }

    @staticmethod
    def _client_data(kind: str, challenge: str, origin: str) -> bytes:
        return json.dumps({"type": kind, "challenge": challenge, "origin": origin, "crossOrigin": False}).encode()


# -- the test client's side of each ceremony -------------------------------------------------------


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def token(client, page: str = "/login") -> str:
    """The session's CSRF token, as every page gives it to htmx and passkeys.js."""
    html = client.get(page).text
    match = re.search(r'"X-CSRFToken": "([^"]+)"', html)
    assert match, f"{page} has no CSRF token"
    return match.group(1)


def post_json(client, url: str, body: dict, csrf: str):
    return client.post(url, json=body, headers={"X-CSRFToken": csrf, "Accept": "application/json"})


def reauthenticate(client, password: str = PASSWORD) -> None:
    response = client.post("/reauth", data={"csrf_token": token(client, "/reauth"), "password": password})
    assert response.status_code == 303, response.text


def add_passkey(client, authenticator: SoftAuthenticator, name: str = "Laptop", password: str = PASSWORD):
    """Add a passkey from a logged-in client (after /reauth); returns the answer's JSON."""
    reauthenticate(client, password)
    csrf = token(client, "/account/passkeys/add")
    options = post_json(client, "/account/passkeys/add/options", {}, csrf)
    assert options.status_code == 200, options.text
    made = post_json(
        client, "/account/passkeys/add", {"credential": authenticator.create(options.json), "name": name}, csrf
    )
    assert made.status_code == 200, made.text
    return made.json


def passwordless(client, authenticator: SoftAuthenticator, **signing):
    csrf = token(client)
    options = post_json(client, "/login/passkey/options", {}, csrf)
    assert options.status_code == 200, options.text
    assert options.json["userVerification"] == "required" and not options.json.get("allowCredentials")
    return post_json(client, "/login/passkey", {"credential": authenticator.get(options.json, **signing)}, csrf)


def password_step(client, email: str, password: str = PASSWORD) -> None:
    response = client.post("/login", data={"csrf_token": token(client), "email": email, "password": password})
    assert response.status_code == 303 and response.headers["Location"] == "/login/2fa", response.text


def second_step(client, authenticator: SoftAuthenticator, **signing):
    csrf = token(client, "/login/2fa")
    options = post_json(client, "/login/2fa/passkey/options", {}, csrf)
    assert options.status_code == 200, options.text
    return post_json(client, "/login/2fa/passkey", {"credential": authenticator.get(options.json, **signing)}, csrf)


def logged_in_as(client, path: str = "/merchant/") -> bool:
    return client.get(path).status_code == 200


def failed_login_events(detail_part: str) -> int:
    return count(
        SecurityEvent, SecurityEvent.kind == SecurityEvent.LOGIN_FAILED, SecurityEvent.detail.contains(detail_part)
    )


@pytest.fixture
def owner(app, merchant):
    """The merchant, logged in on an English client, with a passkey (their first second factor)."""
    client = english(app.test_client())
    login(client, merchant.user)
    authenticator = SoftAuthenticator()
    answer = add_passkey(client, authenticator)
    client.authenticator = authenticator
    client.first_answer = answer
    return client


# -- adding, listing, renaming, removing ------------------------------------------------------------


def test_a_first_passkey_comes_with_recovery_codes_and_ends_other_sessions(app, merchant):
    elsewhere = english(app.test_client())
    login(elsewhere, merchant.user)  # logged in with the password alone, somewhere
    client = english(app.test_client())
    login(client, merchant.user)
    answer = add_passkey(client, SoftAuthenticator(), name="Work laptop")
    assert answer == {"redirect": "/account/2fa/recovery-codes"}
    codes = client.get("/account/2fa/recovery-codes")
    assert (
        codes.status_code == 200 and len(re.findall(r"<li><code>[0-9a-f]{5}-[0-9a-f]{5}</code></li>", codes.text)) == 10
    )
    assert client.get("/account/2fa/recovery-codes").status_code == 303  # shown once
    assert logged_in_as(client) and not logged_in_as(elsewhere)
    page = client.get("/account/passkeys")
    assert "Work laptop" in page.text and "Never" in page.text and "Recovery codes left: 10" in page.text
    assert reload(merchant.user).two_factor_enabled
    assert count(AuditEvent, AuditEvent.action == "passkey.added", AuditEvent.actor_id == merchant.user_id) == 1


def test_a_passkey_next_to_the_app_makes_no_new_codes(app, merchant):
    secret = with_totp(merchant.user)
    codes_before = reload(merchant.user).recovery_codes
    client = english(app.test_client())
    login(client, merchant.user)
    confirmed = client.post(
        "/reauth", data={"csrf_token": token(client, "/reauth"), "password": PASSWORD, "code": pyotp.TOTP(secret).now()}
    )
    assert confirmed.status_code == 303
    csrf = token(client, "/account/passkeys/add")
    options = post_json(client, "/account/passkeys/add/options", {}, csrf).json
    made = post_json(client, "/account/passkeys/add", {"credential": SoftAuthenticator().create(options)}, csrf)
    assert made.json == {"redirect": "/account/passkeys"}
    assert reload(merchant.user).recovery_codes == codes_before and logged_in_as(client)


def test_adding_a_passkey_needs_a_fresh_password(app, merchant):
    client = english(app.test_client())
    login(client, merchant.user)
    page = client.get("/account/passkeys/add")
    assert page.status_code == 303 and page.headers["Location"].startswith("/reauth?next=")
    csrf = token(client, "/account/passkeys")
    refused = post_json(client, "/account/passkeys/add/options", {}, csrf)
    assert refused.status_code == 403 and refused.json["redirect"].startswith("/reauth")
    assert count(Passkey) == 0


def test_the_registration_options_ask_for_a_discoverable_user_verifying_passkey(app, owner, merchant):
    csrf = token(owner, "/account/passkeys/add")
    options = post_json(owner, "/account/passkeys/add/options", {}, csrf).json
    assert options["rp"]["id"] == "localhost"
    assert options["authenticatorSelection"]["residentKey"] == "required"
    assert options["authenticatorSelection"]["userVerification"] == "required"
    (passkey,) = reload(merchant.user).passkeys
    assert [c["id"] for c in options["excludeCredentials"]] == [passkey.credential_id]
    assert merchant.user.email not in options["user"]["id"] and str(merchant.user_id) != options["user"]["id"]


def test_a_passkey_made_for_another_origin_is_not_added(app, merchant):
    client = english(app.test_client())
    login(client, merchant.user)
    reauthenticate(client)
    csrf = token(client, "/account/passkeys/add")
    options = post_json(client, "/account/passkeys/add/options", {}, csrf).json
    made = post_json(
        client,
        "/account/passkeys/add",
        {"credential": SoftAuthenticator().create(options, origin="http://localhost.evil.test")},
        csrf,
    )
    assert made.status_code == 400 and made.json["error"] == "The passkey could not be added. Please try again."
    assert count(Passkey) == 0 and reload(merchant.user).recovery_codes is None


def test_rename_and_remove_need_the_csrf_token_and_a_fresh_password(app, owner, merchant):
    (passkey,) = reload(merchant.user).passkeys
    assert owner.post(f"/account/passkeys/{passkey.id}/remove").status_code == 400  # no CSRF token
    csrf = token(owner, "/account/passkeys")
    renamed = owner.post(f"/account/passkeys/{passkey.id}/rename", data={"csrf_token": csrf, "name": "  Phone\n "})
    assert renamed.status_code == 303 and reload(passkey).name == "Phone"
    empty = owner.post(f"/account/passkeys/{passkey.id}/rename", data={"csrf_token": csrf, "name": " "})
    assert empty.status_code == 400 and "Give the passkey a name" in empty.text and reload(passkey).name == "Phone"
    with owner.session_transaction() as session:
        session.pop("reauth_at")
    later = owner.post(f"/account/passkeys/{passkey.id}/remove", data={"csrf_token": csrf})
    assert later.status_code == 303 and later.headers["Location"].startswith("/reauth")
    assert count(Passkey) == 1


def test_removing_the_last_passkey_turns_two_factor_off_for_a_merchant(app, owner, merchant):
    passkey_id = reload(merchant.user).passkeys[0].id
    removed = owner.post(
        f"/account/passkeys/{passkey_id}/remove", data={"csrf_token": token(owner, "/account/passkeys")}
    )
    assert removed.status_code == 303
    assert "Two-factor authentication is off" in owner.get("/account/passkeys").text
    user = reload(merchant.user)
    assert not user.two_factor_enabled and user.recovery_codes is None
    again = owner.post(f"/account/passkeys/{passkey_id}/remove", data={"csrf_token": token(owner, "/account/passkeys")})
    assert again.status_code == 400 and "already been removed" in again.text


def test_an_operator_cannot_remove_the_last_second_factor(app):
    operator = users.create_operator("solo@example.com", OPERATOR_PASSWORD)
    client = english(app.test_client())
    login(client, operator)
    add_passkey(client, SoftAuthenticator(), password=OPERATOR_PASSWORD)
    assert client.get("/operator/").status_code == 200  # a passkey is the operator's second factor
    (passkey,) = reload(operator).passkeys
    refused = client.post(
        f"/account/passkeys/{passkey.id}/remove", data={"csrf_token": token(client, "/account/passkeys")}
    )
    assert refused.status_code == 400 and "Operator accounts must keep a second factor" in refused.text
    assert count(Passkey) == 1


def test_another_accounts_passkey_cannot_be_renamed_or_removed(app, owner, merchant):
    other = users.create_merchant("other@shop.test", PASSWORD, "Other").user
    stranger = english(app.test_client())
    login(stranger, other)
    reauthenticate(stranger)
    (passkey,) = reload(merchant.user).passkeys
    csrf = token(stranger, "/account/passkeys")
    assert stranger.post(f"/account/passkeys/{passkey.id}/remove", data={"csrf_token": csrf}).status_code == 400
    assert (
        stranger.post(f"/account/passkeys/{passkey.id}/rename", data={"csrf_token": csrf, "name": "mine"}).status_code
        == 400
    )
    assert count(Passkey) == 1 and reload(passkey).name == "Laptop"


# -- signing in ----------------------------------------------------------------------------------


def test_a_passkey_signs_in_without_email_or_password(app, owner, merchant):
    visitor = english(app.test_client())
    answer = passwordless(visitor, owner.authenticator)
    assert answer.status_code == 200 and answer.json == {"redirect": "/merchant/"}
    assert logged_in_as(visitor)
    assert visitor.get_cookie("faka_known") is not None  # a known browser, as after a password login
    passkey = reload(merchant.user).passkeys[0]
    assert passkey.last_used_at is not None and passkey.sign_count == 1


def test_the_passwordless_sign_in_keeps_a_safe_next_only(app, owner):
    visitor = english(app.test_client())
    csrf = token(visitor)
    options = post_json(visitor, "/login/passkey/options", {}, csrf).json
    answer = post_json(
        visitor, "/login/passkey?next=//evil.example/x", {"credential": owner.authenticator.get(options)}, csrf
    )
    assert answer.json == {"redirect": "/merchant/"}
    visitor = english(app.test_client())
    csrf = token(visitor)
    options = post_json(visitor, "/login/passkey/options", {}, csrf).json
    answer = post_json(
        visitor, "/login/passkey?next=/merchant/money", {"credential": owner.authenticator.get(options)}, csrf
    )
    assert answer.json == {"redirect": "/merchant/money"}


def test_a_passwordless_sign_in_needs_user_verification(app, owner):
    visitor = english(app.test_client())
    answer = passwordless(visitor, owner.authenticator, verified=False)
    assert answer.status_code == 400 and answer.json["error"].startswith(REFUSED)
    assert not logged_in_as(visitor)


def test_the_password_then_the_passkey(app, owner, merchant):
    visitor = english(app.test_client())
    password_step(visitor, merchant.user.email)
    page = visitor.get("/login/2fa")
    assert "Use your passkey" in page.text and "Enter one of your recovery codes instead" in page.text
    assert not logged_in_as(visitor)
    answer = second_step(visitor, owner.authenticator, verified=False)  # presence is enough after the password
    assert answer.json == {"redirect": "/merchant/"} and logged_in_as(visitor)


def test_a_recovery_code_replaces_a_lost_passkey(app, merchant):
    client = english(app.test_client())
    login(client, merchant.user)
    add_passkey(client, SoftAuthenticator())
    codes = re.findall(r"<code>([0-9a-f]{5}-[0-9a-f]{5})</code>", client.get("/account/2fa/recovery-codes").text)
    visitor = english(app.test_client())
    password_step(visitor, merchant.user.email)
    wrong = visitor.post("/login/2fa", data={"csrf_token": token(visitor, "/login/2fa"), "code": "123456"})
    assert wrong.status_code == 400 and not logged_in_as(visitor)  # no app: a 6-digit code is never right
    used = visitor.post("/login/2fa", data={"csrf_token": token(visitor, "/login/2fa"), "code": codes[0]})
    assert used.status_code == 303 and logged_in_as(visitor)
    assert "Recovery codes left: 9" in visitor.get("/account/passkeys").text


def test_a_passkey_confirms_it_is_you_at_reauth(app, owner):
    with owner.session_transaction() as session:
        session.pop("reauth_at")
    assert owner.get("/account/passkeys/add").status_code == 303
    page = owner.get("/reauth?next=/account/passkeys/add")
    assert "Confirm with your passkey" in page.text
    csrf = csrf_from(page.text)
    options = post_json(owner, "/reauth/passkey/options", {}, csrf).json
    answer = post_json(
        owner, "/reauth/passkey?next=/account/passkeys/add", {"credential": owner.authenticator.get(options)}, csrf
    )
    assert answer.json == {"redirect": "/account/passkeys/add"}
    assert owner.get("/account/passkeys/add").status_code == 200


def test_with_a_passkey_reauth_by_password_asks_for_the_second_factor_too(app, owner, merchant):
    with owner.session_transaction() as session:
        session.pop("reauth_at")
    alone = owner.post("/reauth", data={"csrf_token": token(owner, "/reauth"), "password": PASSWORD})
    assert alone.status_code == 400
    with owner.session_transaction() as session:
        assert "reauth_at" not in session


# -- refused assertions ----------------------------------------------------------------------------


def test_an_assertion_for_another_origin_is_refused_and_counted(app, owner, merchant):
    visitor = english(app.test_client())
    answer = passwordless(visitor, owner.authenticator, origin="http://localhost.evil.test")
    assert answer.status_code == 400 and answer.json["error"].startswith(REFUSED)
    assert not logged_in_as(visitor)
    assert failed_login_events("Unexpected client data origin") == 1

    password_step(visitor, merchant.user.email)
    answer = second_step(visitor, owner.authenticator, origin="https://localhost")
    assert answer.status_code == 400 and answer.json["error"].startswith(REFUSED)
    assert not logged_in_as(visitor) and reload(merchant.user).failed_logins == 1


def test_a_replayed_assertion_is_refused(app, owner):
    visitor = english(app.test_client())
    csrf = token(visitor)
    options = post_json(visitor, "/login/passkey/options", {}, csrf).json
    cookie = visitor.get_cookie(app.config["SESSION_COOKIE_NAME"]).value  # holds the challenge
    assertion = owner.authenticator.get(options, sign_count=0)  # like a synced passkey: no counter to betray it
    assert post_json(visitor, "/login/passkey", {"credential": assertion}, csrf).status_code == 200

    thief = english(app.test_client())
    thief.set_cookie(app.config["SESSION_COOKIE_NAME"], cookie)  # the cookie as it was, challenge and all
    replayed = post_json(thief, "/login/passkey", {"credential": assertion}, csrf)
    assert replayed.status_code == 400 and "expired or was already used" in replayed.json["error"]
    assert not logged_in_as(thief)
    again = post_json(
        visitor, "/login/passkey", {"credential": assertion}, token(visitor)
    )  # the challenge left the session
    assert again.status_code == 400 and "expired or was already used" in again.json["error"]
    assert failed_login_events("challenge expired or used") == 1


def test_a_challenge_older_than_five_minutes_is_refused(app, owner):
    visitor = english(app.test_client())
    csrf = token(visitor)
    options = post_json(visitor, "/login/passkey/options", {}, csrf).json
    with visitor.session_transaction() as session:
        kept = session["passkey_sign-in"]
        session["passkey_sign-in"] = {**kept, "t": kept["t"] - 301}
    answer = post_json(visitor, "/login/passkey", {"credential": owner.authenticator.get(options)}, csrf)
    assert answer.status_code == 400 and "expired" in answer.json["error"] and not logged_in_as(visitor)


def test_a_signature_counter_that_goes_back_is_refused_as_a_copy(app, owner, merchant):
    visitor = english(app.test_client())
    assert passwordless(visitor, owner.authenticator, sign_count=7).status_code == 200
    copy = english(app.test_client())
    answer = passwordless(copy, owner.authenticator, sign_count=3)
    assert answer.status_code == 400 and "signature counter went back" in answer.json["error"]
    assert not logged_in_as(copy)
    assert failed_login_events("signature counter went back from 7 to 3") == 1
    assert (
        count(
            AuditEvent, AuditEvent.action == "passkey.copy_suspected", AuditEvent.target == f"user:{merchant.user_id}"
        )
        == 1
    )
    assert reload(merchant.user).passkeys[0].sign_count == 7


def test_another_accounts_passkey_is_no_second_factor(app, owner, merchant):
    other = users.create_merchant("other@shop.test", PASSWORD, "Other").user
    client = english(app.test_client())
    login(client, other)
    theirs = SoftAuthenticator()
    add_passkey(client, theirs)
    # The other merchant's own valid passkey, at the merchant's second step:
    visitor = english(app.test_client())
    password_step(visitor, merchant.user.email)
    answer = second_step(visitor, theirs, credential_id=next(iter(theirs.credentials)))  # whatever the options allow
    assert answer.status_code == 400 and answer.json["error"].startswith(REFUSED) and not logged_in_as(visitor)
    # ...and the merchant's credential id with the other account's user handle, signing in:
    mine = owner.authenticator
    their_handle = next(iter(theirs.credentials.values()))["user_handle"]
    visitor = english(app.test_client())
    answer = passwordless(visitor, mine, user_handle=their_handle)
    assert answer.status_code == 400 and answer.json["error"].startswith(REFUSED) and not logged_in_as(visitor)


def test_an_unknown_passkey_gets_the_same_answer_as_a_wrong_signature(app, owner):
    stranger = SoftAuthenticator()
    stranger.create({"rp": {"id": "localhost"}, "user": {"id": b64url(b"nobody")}, "challenge": b64url(b"x")})
    unknown = passwordless(english(app.test_client()), stranger)
    forged = SoftAuthenticator()
    ((credential_id, held),) = owner.authenticator.credentials.items()
    forged.credentials[credential_id] = {**held, "key": ec.generate_private_key(ec.SECP256R1())}
    wrong = passwordless(english(app.test_client()), forged)
    assert (
        (unknown.status_code, unknown.json) == (wrong.status_code, wrong.json) == (400, {"error": wrong.json["error"]})
    )
    assert wrong.json["error"].startswith(REFUSED)
    assert failed_login_events("unknown passkey") == 1 and failed_login_events("Could not verify") == 1


def test_wrong_passkeys_at_the_second_step_lock_the_account(app, owner, merchant):
    forged = SoftAuthenticator()
    ((credential_id, held),) = owner.authenticator.credentials.items()
    forged.credentials[credential_id] = {**held, "key": ec.generate_private_key(ec.SECP256R1())}
    visitor = english(app.test_client())
    password_step(visitor, merchant.user.email)
    for _ in range(4):
        assert second_step(visitor, forged).json["error"].startswith(REFUSED)
    locked = second_step(visitor, forged)
    assert locked.json == {"error": locked.json["error"], "redirect": "/login"} and "locked" in locked.json["error"]
    assert lockout.is_locked(reload(merchant.user))
    # Locked: the right passkey signs nobody in either, until the lock ends.
    assert passwordless(english(app.test_client()), owner.authenticator).status_code == 400


def test_garbage_is_refused_with_a_message_and_never_a_500(app, owner):
    visitor = english(app.test_client())
    csrf = token(visitor)
    post_json(visitor, "/login/passkey/options", {}, csrf)
    for body in (
        {},
        {"credential": "x"},
        {"credential": {"rawId": "%%%"}},
        {"credential": {"rawId": "AAAA"}},
        {"credential": {"rawId": "AAAA", "id": "AAAA", "response": {"clientDataJSON": "!!"}}},
        [1, 2],
    ):
        post_json(visitor, "/login/passkey/options", {}, csrf)
        answer = post_json(visitor, "/login/passkey", body, csrf)
        assert answer.status_code == 400 and answer.json["error"], body
    raw = visitor.post(
        "/login/passkey",
        data=b"\xff\xfe",
        headers={"X-CSRFToken": csrf, "Accept": "application/json", "Content-Type": "application/json"},
    )
    assert raw.status_code == 400
    assert visitor.post("/login/passkey", json={}).status_code == 400  # no CSRF token


def test_passkeys_are_not_offered_where_browsers_refuse_them(make_app):
    app = make_app(BASE_URL="http://127.0.0.1:5000")  # make run's default: an IP address
    with app.app_context():
        client = app.test_client()
        page = client.get("/login?lang=en")
        assert "data-passkey" not in page.text
        answer = post_json(client, "/login/passkey/options", {}, csrf_from(page.text))
        assert answer.status_code == 404 and "domain name" in answer.json["error"]


def test_the_passkey_pages_speak_chinese(app, merchant):
    from test_zh_pages import english_words, problems_in, visible_text

    client = english(app.test_client())
    login(client, merchant.user)
    authenticator = SoftAuthenticator()
    add_passkey(client, authenticator, name="我的手机")
    payouts.add_payout_account(merchant.id, "alipay", "张三", "13800001234")
    with client.session_transaction() as session:
        session["lang"] = "zh_CN"
    visitor = app.test_client()
    password_step(visitor, merchant.user.email)
    with visitor.session_transaction() as session:
        session["lang"] = "zh_CN"
    pages = {
        url: client.get(url)
        for url in (
            "/account/passkeys",
            "/account/passkeys/add",
            "/account/2fa",
            "/account/2fa/setup",
            "/account/sessions",
            "/reauth",
            "/merchant/money",
        )
    }
    pages["/login/2fa"] = visitor.get("/login/2fa")
    pages["/login"] = app.test_client().get("/login")
    english_ones, found = english_words(), []
    for url, page in pages.items():
        assert page.status_code == 200, url
        found += [
            f"{url}: {p}"
            for p in problems_in(visible_text(page.text), ["我的手机", "张三", merchant.name], english_ones)
        ]
    assert "通行密钥" in pages["/account/passkeys"].text
    assert not found, "\n".join(found)


# -- money -------------------------------------------------------------------------------------------


def confirm(client, authenticator: SoftAuthenticator, **signing) -> str:
    csrf = token(client, "/merchant/money")
    options = post_json(client, "/account/passkeys/confirm/options", {}, csrf)
    assert options.status_code == 200, options.text
    return json.dumps(authenticator.get(options.json, **signing))


def money_post(client, url, data):
    return client.post(f"{url}?lang=en", data={"csrf_token": token(client, "/merchant/money"), **data})


ACCOUNT = {"kind": "alipay", "holder": "张三", "account": "13800001234"}


def test_a_passkey_confirms_a_payout_account_and_a_withdrawal(app, owner, merchant, make_product, place, pay):
    page = owner.get("/merchant/money?lang=en")
    assert "Confirm with your passkey instead" in page.text and 'name="passkey"' in page.text
    missing = money_post(owner, "/merchant/money/accounts", ACCOUNT)
    assert missing.status_code == 400 and "Enter the code from your authenticator app." in missing.text
    forged = SoftAuthenticator()
    ((credential_id, held),) = owner.authenticator.credentials.items()
    forged.credentials[credential_id] = {**held, "key": ec.generate_private_key(ec.SECP256R1())}
    wrong = money_post(owner, "/merchant/money/accounts", {**ACCOUNT, "passkey": confirm(owner, forged)})
    assert wrong.status_code == 400 and REFUSED in wrong.text and count(PayoutAccount) == 0
    assert reload(merchant.user).failed_logins == 1

    assertion = confirm(owner, owner.authenticator)
    added = money_post(owner, "/merchant/money/accounts", {**ACCOUNT, "passkey": assertion})
    assert added.status_code == 303 and count(PayoutAccount) == 1
    replayed = money_post(
        owner, "/merchant/money/accounts", {**ACCOUNT, "account": "13800005678", "passkey": assertion}
    )
    assert replayed.status_code == 400 and count(PayoutAccount) == 1

    pay(place(make_product(keys=2, price=10000)))
    db.session.execute(update(LedgerEntry).values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    account = db.session.execute(select(PayoutAccount)).scalar_one()
    done = money_post(
        owner,
        "/merchant/money/withdrawals",
        {"payout_account_id": account.id, "amount": "50.00", "passkey": confirm(owner, owner.authenticator)},
    )
    assert done.status_code == 303
    assert db.session.execute(select(Withdrawal.amount)).scalar_one() == 5000


def test_a_confirmation_needs_a_challenge_of_its_own(app, owner, merchant):
    # An assertion made for the sign-in challenge is no confirmation of a payout account.
    csrf = token(owner)
    options = post_json(owner, "/login/passkey/options", {}, csrf).json
    assertion = json.dumps(owner.authenticator.get(options))
    refused = money_post(owner, "/merchant/money/accounts", {**ACCOUNT, "passkey": assertion})
    assert refused.status_code == 400 and "expired or was already used" in refused.text
    assert count(PayoutAccount) == 0


def test_the_operators_reset_of_two_factor_removes_passkeys(app, owner, merchant):
    from faka.accounts import review

    operator = users.create_operator("ops@example.com", OPERATOR_PASSWORD)
    review.reset_two_factor(operator.id, merchant.id)
    assert count(Passkey) == 0 and not reload(merchant.user).two_factor_enabled
    assert passwordless(english(app.test_client()), owner.authenticator).status_code == 400


# -- in Chromium, with its virtual authenticator ---------------------------------------------------


@pytest.fixture
def shop(make_app):
    """The shop on http://localhost:<port> (WebAuthn needs a domain name; localhost is a
    secure context without TLS), FAKA_BASE_URL to match."""
    port = free_port()
    app = make_app(JOBS_MODE="thread", BASE_URL=f"http://localhost:{port}")
    server = make_server("127.0.0.1", port, app, threaded=True)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        yield app, f"http://localhost:{port}"
        app.extensions["faka_jobs"].wait_idle()
    server.shutdown()


class Browser:
    """One person's Chromium: a context of its own (360 px wide, English), with a virtual
    platform authenticator (resident keys, user verification) unless `authenticator=False`."""

    def __init__(self, chromium, base: str, authenticator: bool = True, javascript: bool = True):
        self.base = base
        self.context = chromium.new_context(
            viewport={"width": 360, "height": 800}, java_script_enabled=javascript, locale="en-US"
        )
        self.page = self.context.new_page()
        self.page.set_default_timeout(WAIT_MS)
        self.errors: list[str] = []
        self.page.on(
            "console",
            lambda m: self.errors.append(f"{self.page.url}: {m.text} {m.location}") if m.type == "error" else None,
        )
        self.page.on("pageerror", lambda e: self.errors.append(str(e)))
        self.page.on("dialog", lambda d: d.accept())  # hx-confirm
        self.authenticator_id = None
        if authenticator:
            self.cdp = self.context.new_cdp_session(self.page)
            self.cdp.send("WebAuthn.enable")
            self.authenticator_id = self.cdp.send(
                "WebAuthn.addVirtualAuthenticator",
                {
                    "options": {
                        "protocol": "ctap2",
                        "transport": "internal",
                        "hasResidentKey": True,
                        "hasUserVerification": True,
                        "isUserVerified": True,
                        "automaticPresenceSimulation": True,
                    }
                },
            )["authenticatorId"]

    def credentials(self) -> list[dict]:
        return self.cdp.send("WebAuthn.getCredentials", {"authenticatorId": self.authenticator_id})["credentials"]

    def open(self, path: str) -> None:
        self.page.goto(self.base + path + ("&" if "?" in path else "?") + "lang=en")

    def log_in(self, email: str, password: str = PASSWORD) -> None:
        self.open("/login")
        self.page.fill("input[name=email]", email)
        self.page.fill("input[name=password]", password)
        self.page.click("form button[type=submit]")

    def log_out(self) -> None:
        self.page.evaluate("""() => { const f = document.createElement('form'); f.method = 'post'; f.action = '/logout';
            const t = document.createElement('input'); t.type = 'hidden'; t.name = 'csrf_token';
            t.value = JSON.parse(document.body.getAttribute('hx-headers'))['X-CSRFToken']; f.appendChild(t);
            document.body.appendChild(f); f.submit(); }""")
        expect(self.page).to_have_url(at("/"))  # the shop's home

    def add_passkey(self, password: str = PASSWORD, name: str | None = None) -> None:
        """From the passkeys page: confirm the password, name the passkey, make it."""
        self.open("/account/passkeys")
        self.page.get_by_role("link", name="Add a passkey").click()
        expect(self.page).to_have_url(at("/reauth"))
        self.page.fill("input[name=password]", password)
        self.page.click("form button[type=submit]")
        expect(self.page).to_have_url(at("/account/passkeys/add"))
        if name:
            self.page.fill("#name", name)
        self.page.get_by_role("button", name="Create the passkey").click()

    def close(self) -> None:
        self.context.close()


@pytest.fixture
def browsers(chromium):
    opened = []

    def open_browser(base, **kwargs) -> Browser:
        browser = Browser(chromium, base, **kwargs)
        opened.append(browser)
        return browser

    yield open_browser
    for browser in opened:
        browser.close()


def at(path: str) -> re.Pattern:
    """The page's address is `path` on the shop (with any query string)."""
    return re.compile(r"^https?://[^/]+" + re.escape(path) + r"(\?.*)?$")


def new_merchant(email: str = "shop@example.com"):
    return users.create_merchant(email, PASSWORD, "Passkey Shop", approved=True)


def test_a_merchant_adds_a_passkey_and_signs_in_with_it_alone_and_after_the_password(shop, browsers):
    app, base = shop
    merchant = new_merchant()
    me = browsers(base)
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/merchant/"))
    me.add_passkey(name="My phone")
    # The first second factor: recovery codes, once.
    expect(me.page).to_have_url(at("/account/2fa/recovery-codes"))
    expect(me.page.locator(".recovery-codes code")).to_have_count(10)
    assert len(me.credentials()) == 1 and me.credentials()[0]["isResidentCredential"]
    me.open("/account/passkeys")
    expect(me.page.get_by_role("cell", name="My phone")).to_be_visible()
    me.page.screenshot(path="/tmp/faka-passkeys-list-360.png", full_page=True, caret="initial")

    me.log_out()
    me.open("/login")
    me.page.screenshot(path="/tmp/faka-passkeys-login-360.png", full_page=True, caret="initial")
    me.page.get_by_role("button", name="Sign in with a passkey").click()
    expect(me.page).to_have_url(at("/merchant/"))
    me.open("/account/passkeys")
    expect(me.page.get_by_role("cell", name="Never")).to_have_count(0)  # last used: now

    me.log_out()
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/login/2fa"))
    me.page.screenshot(path="/tmp/faka-passkeys-2fa-360.png", full_page=True, caret="initial")
    me.page.get_by_role("button", name="Use your passkey").click()
    expect(me.page).to_have_url(at("/merchant/"))
    assert me.page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
    assert me.errors == []


def test_an_operator_whose_only_second_factor_is_a_passkey_may_run_the_platform(shop, browsers):
    app, base = shop
    operator = users.create_operator("boss@example.com", OPERATOR_PASSWORD)
    me = browsers(base)
    me.log_in(operator.email, OPERATOR_PASSWORD)
    expect(me.page).to_have_url(at("/account/2fa/setup"))  # operators must use a second factor
    me.page.get_by_role("link", name="Add a passkey instead").click()
    expect(me.page).to_have_url(at("/reauth"))
    me.page.fill("input[name=password]", OPERATOR_PASSWORD)
    me.page.click("form button[type=submit]")
    me.page.get_by_role("button", name="Create the passkey").click()
    expect(me.page).to_have_url(at("/account/2fa/recovery-codes"))
    me.open("/operator/")
    expect(me.page).to_have_url(at("/operator/"))
    assert reload(operator).totp_secret is None

    me.log_out()
    me.log_in(operator.email, OPERATOR_PASSWORD)
    expect(me.page).to_have_url(at("/login/2fa"))
    me.page.get_by_role("button", name="Use your passkey").click()
    expect(me.page).to_have_url(at("/operator/"))
    assert me.errors == []


def test_a_removed_passkey_signs_nobody_in(shop, browsers):
    app, base = shop
    merchant = new_merchant()
    me = browsers(base)
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/merchant/"))
    me.add_passkey()
    expect(me.page).to_have_url(at("/account/2fa/recovery-codes"))
    me.open("/account/passkeys")
    me.page.get_by_role("button", name="Remove").click()
    expect(me.page.get_by_text("Two-factor authentication is off")).to_be_visible()
    assert count(Passkey) == 0

    me.log_out()
    me.open("/login")
    me.page.get_by_role("button", name="Sign in with a passkey").click()  # the device still holds it
    expect(me.page.locator("[data-passkey-error]")).to_contain_text(REFUSED)
    me.open("/merchant/")
    expect(me.page).to_have_url(at("/login"))


def test_a_lost_device_is_replaced_by_a_recovery_code(shop, browsers):
    app, base = shop
    merchant = new_merchant()
    me = browsers(base)
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/merchant/"))
    me.add_passkey()
    expect(me.page.locator(".recovery-codes code")).to_have_count(10)
    codes = me.page.locator(".recovery-codes code").all_inner_texts()

    phone = browsers(base, authenticator=False)  # a new browser, without the passkey
    phone.log_in(merchant.user.email)
    expect(phone.page).to_have_url(at("/login/2fa"))
    phone.page.fill("input[name=code]", codes[3])
    phone.page.click("form button[type=submit]")
    expect(phone.page).to_have_url(at("/merchant/"))
    assert count(AuditEvent, AuditEvent.action == "2fa.recovery_code_used") == 1


def test_a_passkey_confirms_a_payout_account_and_a_withdrawal_in_the_browser(
    shop, browsers, merchant, make_product, place, pay
):
    app, base = shop
    me = browsers(base)
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/merchant/"))
    me.add_passkey()
    expect(me.page).to_have_url(at("/account/2fa/recovery-codes"))

    me.open("/merchant/money")
    me.page.locator("details summary", has_text="Add a payout account").click()
    form = me.page.locator("form[action$='/merchant/money/accounts']")
    form.locator("input[name=holder]").fill("张三")
    form.locator("input[name=account]").fill("13800001234")
    me.page.screenshot(path="/tmp/faka-passkeys-money-360.png", full_page=True, caret="initial")
    form.get_by_role("button", name="Confirm with your passkey instead").click()
    expect(me.page.locator("ul.accounts")).to_contain_text("1234")
    assert count(PayoutAccount, PayoutAccount.merchant_id == merchant.id) == 1

    pay(place(make_product(keys=2, price=10000)))
    db.session.execute(update(LedgerEntry).values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    me.open("/merchant/money")
    form = me.page.locator("form[action$='/merchant/money/withdrawals']")
    form.locator("input[name=amount]").fill("50.00")
    form.get_by_role("button", name="Confirm with your passkey instead").click()
    expect(me.page.locator("main")).to_contain_text("50.00")
    db.session.commit()
    assert db.session.execute(select(Withdrawal.amount)).scalars().all() == [5000]
    assert me.errors == []


def test_without_javascript_the_login_page_has_no_passkey_button_and_works(shop, browsers):
    app, base = shop
    merchant = new_merchant()
    me = browsers(base, authenticator=False, javascript=False)
    me.open("/login")
    expect(me.page.get_by_role("button", name="Sign in with a passkey")).to_have_count(0)
    expect(me.page.locator("[data-passkey]")).to_be_hidden()
    me.log_in(merchant.user.email)
    expect(me.page).to_have_url(at("/merchant/"))


def test_a_passkey_that_cannot_verify_the_user_is_explained_in_the_pages_language(shop, browsers, merchant):
    app, base = shop
    me = browsers(base)
    me.cdp.send("WebAuthn.setUserVerified", {"authenticatorId": me.authenticator_id, "isUserVerified": False})
    me.page.goto(base + "/login")  # the site's default language, Chinese
    with app.test_request_context(), force_locale("zh_CN"):
        sign_in, cancelled = (
            gettext("Sign in with a passkey"),
            gettext("The passkey request was cancelled or timed out. Try again, or use another way."),
        )
    me.page.get_by_role("button", name=sign_in).click()
    expect(me.page.locator("[data-passkey-error]")).to_have_text(cancelled)
    expect(me.page).to_have_url(at("/login"))
    me.page.fill("input[name=email]", merchant.user.email)  # the password still works
    me.page.fill("input[name=password]", PASSWORD)
    me.page.click("form button[type=submit]")
    expect(me.page).to_have_url(at("/merchant/"))
