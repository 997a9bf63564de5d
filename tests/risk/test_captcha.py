"""The proof-of-work captcha (ALTCHA PoW v2) the risk engine asks for: challenges we sign,
solutions checked once, garbage refused; the widget at checkout, order lookup and login
when the risk rules ask for it, and never for an honest buyer; a phone solving it."""

import base64
import hashlib
import hmac
import json
import re
import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from faka.core.types import utcnow
from faka.extensions import db
from faka.orders import checkout
from faka.orders.models import Order
from faka.risk import captcha, engine
from faka.risk.models import SecurityEvent, SpentChallenge
from tests.conftest import count, csrf_from, no_horizontal_scroll

WIDGET = "<altcha-widget"
CAPTCHA_MESSAGE = "completes a quick check"  # risk.CaptchaRequired.message, in English
DISPOSABLE = "x@mailinator.com"  # scores 40 (disposable_email): the default captcha threshold
TEST_MAX_NUMBER = 20  # a few PBKDF2 runs per solution in Python


@pytest.fixture(autouse=True)
def easy_captcha(app):
    app.config["CAPTCHA_MAX_NUMBER"] = TEST_MAX_NUMBER


# -- solving, as the widget does it -------------------------------------------------------


def solve(challenge: dict) -> str:
    """The browser's work, written from ALTCHA's PoW v2 description rather than with the
    library: PBKDF2-HMAC-SHA256 of nonce + the counter as a big-endian uint32, salted,
    until the derived key starts with keyPrefix; the payload is base64 JSON."""
    params = challenge["parameters"]
    assert params["algorithm"] == "PBKDF2/SHA-256"
    nonce, salt = bytes.fromhex(params["nonce"]), bytes.fromhex(params["salt"])
    for counter in range(TEST_MAX_NUMBER + 1):
        key = hashlib.pbkdf2_hmac(
            "sha256", nonce + counter.to_bytes(4, "big"), salt, params["cost"], params["keyLength"]
        )
        if key.hex().startswith(params["keyPrefix"]):
            return encode({"challenge": challenge, "solution": {"counter": counter, "derivedKey": key.hex()}})
    raise AssertionError("no counter up to CAPTCHA_MAX_NUMBER solves the challenge")


def encode(payload) -> str:
    return base64.b64encode(json.dumps(payload).encode()).decode()


def decode(payload: str) -> dict:
    return json.loads(base64.b64decode(payload))


def fetched_solution(client) -> str:
    """A solution of a challenge from the widget's endpoint."""
    response = client.get("/captcha/challenge")
    assert response.status_code == 200
    return solve(response.get_json())


# -- challenges and verification ----------------------------------------------------------


def test_challenge_is_signed_with_a_key_derived_from_the_secret_and_expires(app):
    challenge = captcha.challenge()
    params = challenge["parameters"]
    canonical = json.dumps(params, sort_keys=True, separators=(",", ":")).encode()
    derived = hmac.new(b"test-secret", b"faka.captcha", hashlib.sha256).digest()
    assert challenge["signature"] == hmac.new(derived, canonical, hashlib.sha256).hexdigest()
    assert challenge["signature"] != hmac.new(b"test-secret", canonical, hashlib.sha256).hexdigest()
    assert abs(params["expiresAt"] - (time.time() + 600)) < 5
    assert params["cost"] == captcha.COST and len(params["keyPrefix"]) == 32


def test_solution_computed_independently_is_accepted_once(app):
    payload = solve(captcha.challenge())
    assert captcha.verify(payload) is True
    assert captcha.verify(payload) is False  # replayed
    assert count(SpentChallenge) == 1


def _with(path: str, value):
    """A change to one field of a payload, as a tamperer would make it."""

    def change(payload: dict) -> dict:
        *parents, last = path.split(".")
        node = payload
        for name in parents:
            node = node[name]
        node[last] = value(node[last]) if callable(value) else value
        return payload

    return change


TAMPERED = {
    "counter": _with("solution.counter", lambda n: n + 1),
    "derived key": _with("solution.derivedKey", lambda k: ("1" if k[0] == "0" else "0") + k[1:]),
    "salt": _with("challenge.parameters.salt", lambda s: ("1" if s[0] == "0" else "0") + s[1:]),
    "nonce": _with("challenge.parameters.nonce", lambda s: ("1" if s[0] == "0" else "0") + s[1:]),
    "cheaper cost": _with("challenge.parameters.cost", 1),
    "later expiry": _with("challenge.parameters.expiresAt", lambda t: t + 86400),
    "signature": _with("challenge.signature", lambda s: ("1" if s[0] == "0" else "0") + s[1:]),
    "no signature": _with("challenge.signature", None),
}


@pytest.mark.parametrize("tamper", TAMPERED.values(), ids=TAMPERED.keys())
def test_tampered_solution_is_refused(app, tamper):
    payload = decode(solve(captcha.challenge()))
    assert captcha.verify(encode(tamper(payload))) is False
    assert count(SpentChallenge) == 0


def test_expired_challenge_is_refused(app):
    stale = captcha.challenge(now=utcnow() - captcha.TTL - timedelta(seconds=1))
    assert captcha.verify(solve(stale)) is False
    fresh = solve(captcha.challenge())
    assert captcha.verify(fresh, now=utcnow() + captcha.TTL + timedelta(seconds=1)) is False
    assert count(SpentChallenge) == 0


def test_challenge_signed_with_another_key_is_refused(app, make_app):
    other = make_app(SECRET_KEY="another-site-secret", CAPTCHA_MAX_NUMBER=TEST_MAX_NUMBER)
    with other.app_context():
        foreign = solve(captcha.challenge())
    assert captcha.verify(foreign) is False


def _signed_garbage() -> str:
    return encode({"challenge": {"parameters": "x", "signature": "y"}, "solution": {"counter": "1"}})


GARBAGE = {
    "none": None,
    "empty": "",
    "not base64": "%%% not base64 %%%",
    "not json": base64.b64encode(b"\xff\xfe not json").decode(),
    "json list": encode([1, 2, 3]),
    "json string": encode("altcha"),
    "widget test mode": encode({"challenge": None, "solution": None, "test": True}),
    "wrong shapes": _signed_garbage(),
    "missing solution": encode({"challenge": {"parameters": {}, "signature": "x"}}),
    "version 1 payload": encode(
        {"algorithm": "SHA-256", "challenge": "ab", "number": 1, "salt": "s", "signature": "x"}
    ),
    "deep nesting": encode({"challenge": {"parameters": json.loads("[" * 50 + "]" * 50)}}),
    "huge": "A" * 200_000,
    "not a string": {"challenge": 1},
    "unicode": "验证码",
}


@pytest.mark.parametrize("payload", GARBAGE.values(), ids=GARBAGE.keys())
def test_garbage_is_refused_without_error(app, payload):
    assert captcha.verify(payload) is False
    assert count(SpentChallenge) == 0


def test_spending_a_challenge_deletes_expired_ones(app):
    db.session.add(SpentChallenge(signature="expired", expires_at=utcnow() - timedelta(seconds=1)))
    db.session.commit()
    payload = solve(captcha.challenge())
    assert captcha.verify(payload) is True
    assert db.session.scalars(select(SpentChallenge.signature)).all() == [decode(payload)["challenge"]["signature"]]


def test_challenge_endpoint_is_fresh_uncached_and_rate_limited(make_app):
    app = make_app(RATELIMIT_CAPTCHA="3 per minute")
    with app.app_context():
        client = app.test_client()
        responses = [client.get("/captcha/challenge") for _ in range(4)]
        assert [r.status_code for r in responses] == [200, 200, 200, 429]
        assert all(r.headers["Cache-Control"] == "no-store" for r in responses[:3])
        signatures = {r.get_json()["signature"] for r in responses[:3]}
        assert len(signatures) == 3


# -- the forms the risk engine guards -------------------------------------------------------


def english_page(client, path: str):
    page = client.get(path + "?lang=en")
    assert page.status_code == 200
    return page


def buy(client, product, email, solution=None):
    page = english_page(client, f"/p/{product.slug}")
    data = {"csrf_token": csrf_from(page.text), "quantity": 1, "email": email, "query_password": "secret-1"}
    if solution is not None:
        data[captcha.FIELD] = solution
    return client.post(f"/p/{product.slug}/buy", data=data)


def test_checkout_asks_a_risky_buyer_for_the_captcha_then_takes_the_order_once(client, product):
    refused = buy(client, product, DISPOSABLE)
    assert refused.status_code == 400
    assert WIDGET in refused.text and CAPTCHA_MESSAGE in refused.text
    assert 'challenge="/captcha/challenge"' in refused.text and f'name="{captcha.FIELD}"' in refused.text
    assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>|\son[a-z]+=|\sstyle=", refused.text)  # all CSP-safe
    assert count(Order) == 0

    solution = fetched_solution(client)
    placed = buy(client, product, DISPOSABLE, solution)
    assert placed.status_code == 303 and "/pay/" in placed.headers["Location"]
    assert count(Order) == 1

    # Sent again at once (a second tap, a resubmitted form): the same order, nothing new;
    # the spent solution it carried is still noted as a failed captcha.
    again = buy(client, product, DISPOSABLE, solution)
    assert again.status_code == 303 and again.headers["Location"] == placed.headers["Location"]
    assert count(Order) == 1
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.CAPTCHA_FAILED) == 1

    # The same solution for another order: spent.
    for order in db.session.execute(select(Order)).scalars():
        order.created_at -= checkout.REPEAT_WINDOW
    db.session.commit()
    replayed = buy(client, product, DISPOSABLE, solution)
    assert replayed.status_code == 400 and WIDGET in replayed.text
    assert count(Order) == 1
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.CAPTCHA_FAILED) == 2


def test_forged_solution_is_a_security_event_and_takes_no_order(client, product):
    response = buy(client, product, DISPOSABLE, solution="forged")
    assert response.status_code == 400 and WIDGET in response.text
    assert count(Order) == 0
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.CAPTCHA_FAILED) == 1


def test_honest_buyer_never_sees_the_captcha(client, product):
    assert WIDGET not in english_page(client, f"/p/{product.slug}").text
    placed = buy(client, product, "buyer@example.com")
    assert placed.status_code == 303
    assert WIDGET not in client.get(placed.headers["Location"]).text
    assert WIDGET not in english_page(client, f"/p/{product.slug}").text
    assert count(SpentChallenge) == 0


def lookup(client, query, password, solution=None):
    page = english_page(client, "/lookup")
    data = {"csrf_token": csrf_from(page.text), "query": query, "query_password": password}
    if solution is not None:
        data[captcha.FIELD] = solution
    return client.post("/lookup", data=data)


def test_lookup_asks_for_the_captcha_after_failed_guesses(client, product, place):
    order = place(product)
    for _ in range(engine.FAILED_LOOKUPS):
        response = lookup(client, order.number, "wrong guess")
        assert response.status_code == 400 and WIDGET not in response.text
    asked = lookup(client, order.number, "secret-1")
    assert asked.status_code == 400
    assert WIDGET in asked.text and CAPTCHA_MESSAGE in asked.text and "order-list" not in asked.text
    found = lookup(client, order.number, "secret-1", fetched_solution(client))
    assert found.status_code == 200 and order.number in found.text and WIDGET not in found.text


def login(client, email, password, solution=None):
    page = english_page(client, "/login")
    data = {"csrf_token": csrf_from(page.text), "email": email, "password": password}
    if solution is not None:
        data[captcha.FIELD] = solution
    return client.post("/login", data=data)


def test_login_asks_for_the_captcha_after_failed_logins(client, merchant):
    for i in range(engine.FAILED_LOGINS):
        response = login(client, f"nobody{i}@example.com", "guess")
        assert response.status_code == 400 and WIDGET not in response.text
    asked = login(client, merchant.user.email, "merchant-pass-1")
    assert asked.status_code == 400 and WIDGET in asked.text and CAPTCHA_MESSAGE in asked.text
    logged_in = login(client, merchant.user.email, "merchant-pass-1", fetched_solution(client))
    assert logged_in.status_code == 303 and "/login" not in logged_in.headers["Location"]


# -- a phone ---------------------------------------------------------------------------------


def test_phone_solves_the_captcha_by_itself_and_the_buyer_reaches_the_pay_page(live_server, make_product, phone):
    from playwright.sync_api import expect

    app, base = live_server  # the default difficulty, as a real buyer gets it
    product = make_product(keys=3, title="Steam 钱包充值卡")
    phone.goto(f"{base}/p/{product.slug}?lang=en")
    assert phone.locator("altcha-widget").count() == 0
    phone.fill("#email", DISPOSABLE)
    phone.fill("#query_password", "pw-1234")
    phone.click("button.primary")
    expect(phone.locator("altcha-widget")).to_be_visible()
    started = time.monotonic()
    solution = phone.locator(f'altcha-widget input[name="{captcha.FIELD}"]')
    expect(solution).to_have_value(re.compile(".+"), timeout=30_000)
    solved_in = time.monotonic() - started
    assert count(Order) == 0
    assert no_horizontal_scroll(phone)
    # caret="hide" would leave style="" on the inputs, which htmx's history snapshot then trips the CSP on.
    phone.screenshot(path="/tmp/shots_b/captcha_checkout_360.png", full_page=True, caret="initial")
    work = decode(solution.input_value())["solution"]
    print(f"captcha solved in {solved_in:.2f} s (widget's own count: {work['time']:.0f} ms, counter {work['counter']})")

    phone.click("button.primary")
    phone.wait_for_url("**/pay/*")
    assert count(Order) == 1
    assert no_horizontal_scroll(phone)
    # Chromium logs the refused form's 400 itself; anything else (a CSP violation) is a failure.
    assert [e for e in phone.console_errors if "status of 400" not in e] == []
