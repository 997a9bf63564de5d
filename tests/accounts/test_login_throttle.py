"""Wrong login passwords never lock an account (anyone who knows an email could lock its
owner out, the operator's included): they slow down the address they come from, for that
account, with growing delays and the captcha, while the owner signs in from elsewhere or
from a browser that has logged in to the account before. Every attempt is still a
security event, and a per-address limit stays on whatever the accounts."""

import pytest
from sqlalchemy import select
from test_captcha import fetched_solution

from conftest import csrf_from, reload
from faka.accounts import lockout
from faka.extensions import db
from faka.risk import captcha
from faka.risk.models import RiskEvent, SecurityEvent

PASSWORD = "merchant-pass-1"
ATTACKER_IP = "198.51.100.66"
OWNER_IP = "192.0.2.10"
WIDGET = "<altcha-widget"


@pytest.fixture(autouse=True)
def easy_captcha(app):
    app.config["CAPTCHA_MAX_NUMBER"] = 20  # a few PBKDF2 runs per solution in Python (test_captcha.solve)


def browser(app, ip):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def attempt(client, email, password, solution=None):
    data = {"csrf_token": csrf_from(client.get("/login").text), "email": email, "password": password}
    if solution is not None:
        data[captcha.FIELD] = solution
    return client.post("/login", data=data)


def signed_in(response) -> bool:
    return (
        response.status_code == 303
        and "/login" not in response.headers["Location"]
        or response.headers.get("Location") == "/login/2fa"
    )


def login_events(**where) -> list[SecurityEvent]:
    db.session.commit()
    query = select(SecurityEvent).where(
        SecurityEvent.kind == SecurityEvent.LOGIN_FAILED, *(getattr(SecurityEvent, k) == v for k, v in where.items())
    )
    return list(db.session.execute(query.order_by(SecurityEvent.id)).scalars())


@pytest.mark.parametrize("who", ["merchant", "operator"])
def test_twenty_wrong_passwords_from_one_address_do_not_lock_the_owner_out(app, merchant, operator, who):
    user, password = (merchant.user, PASSWORD) if who == "merchant" else (operator, "operator-pass-1")
    attacker = browser(app, ATTACKER_IP)
    statuses = [attempt(attacker, user.email, "wrong-password").status_code for _ in range(20)]
    assert statuses[:3] == [400] * 3 and set(statuses[3:]) <= {400, 429}
    assert reload(user).locked_until is None
    owner = browser(app, OWNER_IP)
    response = attempt(owner, user.email, password)
    assert signed_in(response)
    # Every attempt is on record: the passwords tried and the waits refused, until the
    # address's ten failures make the risk engine ask it for the captcha first (its event).
    events = login_events(ip=ATTACKER_IP)
    assert [e.detail for e in events] == [None] * 3 + ["throttled"] * 7
    assert {e.subject for e in events} == {user.email}
    assert db.session.scalar(select(RiskEvent.action).where(RiskEvent.ip == ATTACKER_IP)) == "captcha"


def test_the_same_address_waits_longer_after_each_failure_and_needs_the_captcha(app, merchant, frozen_clock):
    attacker = browser(app, ATTACKER_IP)
    email = merchant.user.email
    for _ in range(lockout.FREE_LOGIN_FAILURES):
        response = attempt(attacker, email, "wrong-password")
        assert response.status_code == 400 and "Wrong email or password" in response.text
        assert WIDGET not in response.text
    unsolved = attempt(attacker, email, PASSWORD)
    assert unsolved.status_code == 429 and WIDGET in unsolved.text  # the page brings the captcha along
    frozen_clock.advance(seconds=5)
    unsolved = attempt(attacker, email, PASSWORD)  # waited, but without the captcha: even the right password
    assert unsolved.status_code == 400 and WIDGET in unsolved.text and "completes a quick check" in unsolved.text
    waits = []
    for _ in range(4):  # a bot that solves every captcha
        solved = attempt(attacker, email, "wrong-password", fetched_solution(attacker))
        assert solved.status_code == 400 and "Wrong email or password" in solved.text
        early = attempt(attacker, email, PASSWORD, fetched_solution(attacker))  # even the right password waits
        assert early.status_code == 429 and "Please try again in" in early.text
        waits.append(int(early.headers["Retry-After"]))
        frozen_clock.advance(seconds=waits[-1] - 1)
        assert attempt(attacker, email, PASSWORD, fetched_solution(attacker)).status_code == 429
        frozen_clock.advance(seconds=1)
    assert waits == [10, 20, 40, 80]
    assert lockout.login_delay(30) == lockout.MAX_LOGIN_DELAY
    # Waited out, with the captcha, the right password gets in.
    assert signed_in(attempt(attacker, email, PASSWORD, fetched_solution(attacker)))
    assert reload(merchant.user).locked_until is None
    details = [e.detail for e in login_events(ip=ATTACKER_IP)]
    assert (
        details.count(None) == 3 + 4
        and details.count("throttled") == 1 + 4 * 2
        and details.count("captcha required") == 1
    )


def test_an_unknown_email_is_throttled_the_same_way(app, merchant, frozen_clock):
    def statuses(email, ip):
        client = browser(app, ip)
        return [attempt(client, email, "wrong-password").status_code for _ in range(5)]

    assert (
        statuses(merchant.user.email, "198.51.100.1")
        == statuses("nobody@example.com", "198.51.100.2")
        == [400, 400, 400, 429, 429]
    )


def test_the_owners_known_browser_signs_in_at_the_address_being_hammered(app, merchant, frozen_clock):
    email = merchant.user.email
    owner = browser(app, ATTACKER_IP)  # the owner and the attacker behind one address (an office, a NAT)
    assert signed_in(attempt(owner, email, PASSWORD))
    owner.post("/logout", data={"csrf_token": csrf_from(owner.get("/merchant/").text)})
    assert owner.get_cookie("faka_known") is not None
    frozen_clock.advance(minutes=1)

    attacker = browser(app, ATTACKER_IP)
    for _ in range(5):
        attempt(attacker, email, "wrong-password")
    assert attempt(attacker, email, PASSWORD).status_code == 429
    # A new browser at that address waits too; the owner's browser does not.
    assert attempt(browser(app, ATTACKER_IP), email, PASSWORD).status_code == 429
    assert signed_in(attempt(owner, email, PASSWORD))

    # The known-browser mark is good only with that browser's device cookie.
    thief = browser(app, ATTACKER_IP)
    thief.set_cookie("faka_known", owner.get_cookie("faka_known").value)
    assert attempt(thief, email, PASSWORD).status_code == 429


def test_wrong_passwords_on_a_known_browser_slow_down_that_browser(app, merchant, frozen_clock):
    email = merchant.user.email
    owner = browser(app, OWNER_IP)
    assert signed_in(attempt(owner, email, PASSWORD))
    owner.post("/logout", data={"csrf_token": csrf_from(owner.get("/merchant/").text)})
    frozen_clock.advance(minutes=1)
    for _ in range(lockout.FREE_LOGIN_FAILURES):
        assert attempt(owner, email, "wrong-password").status_code == 400
    assert attempt(owner, email, PASSWORD).status_code == 429


def test_a_login_forgets_the_browsers_earlier_failures(app, merchant, frozen_clock):
    email = merchant.user.email
    client = browser(app, OWNER_IP)
    for _ in range(2):
        attempt(client, email, "wrong-password")
    assert signed_in(attempt(client, email, PASSWORD))
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/merchant/").text)})
    frozen_clock.advance(minutes=1)
    for _ in range(2):
        assert attempt(client, email, "wrong-password").status_code == 400
    assert signed_in(attempt(client, email, PASSWORD))  # two failures since the login, not four


def test_failures_older_than_a_day_are_forgotten(app, merchant, frozen_clock):
    attacker = browser(app, ATTACKER_IP)
    for _ in range(3):
        attempt(attacker, merchant.user.email, "wrong-password")
    frozen_clock.advance(hours=24, seconds=1)
    assert signed_in(attempt(attacker, merchant.user.email, PASSWORD))


def test_the_per_address_limit_stays_whatever_the_accounts(make_app):
    app = make_app(RATELIMIT_LOGIN="3 per minute")
    with app.app_context():
        client = browser(app, ATTACKER_IP)
        statuses = [attempt(client, f"user{i}@example.com", "guess").status_code for i in range(4)]
        assert statuses == [400, 400, 400, 429]
        assert attempt(browser(app, OWNER_IP), "user9@example.com", "guess").status_code == 400
