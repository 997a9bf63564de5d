"""Finding an order again: by number or email plus the query password, by number plus the
order's email when it was placed without a password, and the orders placed in this browser."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import update

from conftest import count, csrf_from
from faka.core import passwords
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders import lookup as order_service
from faka.orders.models import Order
from faka.risk import engine
from faka.risk.models import SecurityEvent
from faka.web import device


def lookup(client, query, password):
    page = client.get("/lookup")
    return client.post("/lookup", data={"csrf_token": csrf_from(page.text), "query": query, "query_password": password})


def found_tokens(html: str) -> list[str]:
    return re.findall(r'href="/order/([0-9a-f]{32})"', html)


def test_lookup_by_order_number_and_password(client, product, place):
    order = place(product, password="my-pass")
    response = lookup(client, order.number, "my-pass")
    assert response.status_code == 200
    assert f"/order/{order.token}" in response.text


def test_lookup_by_email_lists_only_orders_with_that_password(client, product, place):
    mine = [place(product, email="Me@Example.com", password="pw-one") for _ in range(2)]
    other_password = place(product, email="me@example.com", password="pw-two")
    someone_else = place(product, email="you@example.com", password="pw-one")
    response = lookup(client, "me@example.com", "pw-one")
    assert response.status_code == 200
    for order in mine:
        assert f"/order/{order.token}" in response.text
    assert other_password.token not in response.text
    assert someone_else.token not in response.text


@pytest.mark.parametrize("query", ["wrong-number", "202611260000000000", "nobody@example.com"])
def test_unknown_order_and_wrong_password_look_the_same(client, product, place, query):
    order = place(product, password="right-pass")
    wrong_password = lookup(client, order.number, "wrong-pass")
    unknown = lookup(client, query, "right-pass")
    assert wrong_password.status_code == unknown.status_code == 400
    assert order.token not in wrong_password.text
    assert _message(wrong_password.text) == _message(unknown.text)


def _message(html: str) -> str:
    start = html.index('class="alert"')
    return html[start : html.index("</p>", start)]


def test_lookups_are_rate_limited_per_ip(make_app, make_product, place):
    app = make_app(RATELIMIT_LOOKUP="3 per minute")
    with app.app_context():
        client = app.test_client()
        statuses = [lookup(client, "20260101000000000000", "guess").status_code for _ in range(5)]
        assert statuses[:3] == [400, 400, 400]
        assert statuses[3:] == [429, 429]
        limited = lookup(client, "x", "y")
        assert "操作过于频繁" in limited.text


# -- by order number and the order's email, for an order placed without a password -------


def test_an_order_placed_without_a_password_is_found_by_its_number_and_email(client, product, place):
    order = place(product, email="Buyer@Example.com", password=None)
    response = lookup(client, f" {order.number} ", "  BUYER@example.COM ")
    assert response.status_code == 200
    assert found_tokens(response.text) == [order.token]


def test_an_order_with_a_password_is_not_found_by_its_email(client, product, place):
    order = place(product, email="buyer@example.com", password="secret-1")
    response = lookup(client, order.number, "buyer@example.com")
    assert response.status_code == 400
    assert order.token not in response.text


def test_an_email_is_no_password_when_looking_up_by_email(client, product, place):
    order = place(product, email="buyer@example.com", password=None)
    response = lookup(client, "buyer@example.com", "buyer@example.com")
    assert response.status_code == 400
    assert order.token not in response.text


def test_an_order_with_neither_password_nor_email_cannot_be_looked_up(client, product, place):
    order = place(product, email=None, password=None)
    for secret in ("", "anything", "buyer@example.com", "None"):
        response = lookup(client, order.number, secret)
        assert response.status_code == 400 and order.token not in response.text


@pytest.mark.parametrize("case", ["wrong email", "unknown number", "wrong password", "neither"])
def test_a_wrong_email_fails_like_an_unknown_order_after_one_password_check(client, product, place, monkeypatch, case):
    """Same answer, same work: every failure runs exactly one password hash check (the
    one that takes the time), whatever the order has, and is a security event."""
    without_password = place(product, email="buyer@example.com", password=None)
    with_password = place(product, email="buyer@example.com", password="secret-1")
    without_either = place(product, email=None, password=None)
    query, secret = {
        "wrong email": (without_password.number, "other@example.com"),
        "unknown number": ("20991231000000000000", "buyer@example.com"),
        "wrong password": (with_password.number, "buyer@example.com"),
        "neither": (without_either.number, "buyer@example.com"),
    }[case]
    reference = lookup(client, "20991231000000000000", "guess")  # an unknown order, for its message
    checks = []
    real_verify = passwords._verify
    monkeypatch.setattr(passwords, "_verify", lambda *args: checks.append(args) or real_verify(*args))
    events_before = count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOOKUP_FAILED)

    response = lookup(client, query, secret)
    assert response.status_code == 400
    assert found_tokens(response.text) == []
    assert _message(response.text) == _message(reference.text)
    assert len(checks) == 1
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOOKUP_FAILED) == events_before + 1


def test_a_right_email_also_runs_the_password_check(client, product, place, monkeypatch):
    order = place(product, email="buyer@example.com", password=None)
    checks = []
    real_verify = passwords._verify
    monkeypatch.setattr(passwords, "_verify", lambda *args: checks.append(args) or real_verify(*args))
    assert lookup(client, order.number, "buyer@example.com").status_code == 200
    assert len(checks) == 1


def test_after_a_few_failures_the_email_lookup_needs_the_captcha_too(client, product, place):
    order = place(product, email="buyer@example.com", password=None)
    for _ in range(engine.FAILED_LOOKUPS):
        assert lookup(client, order.number, "wrong@example.com").status_code == 400
    asked = lookup(client, order.number, "buyer@example.com")
    assert asked.status_code == 400
    assert order.token not in asked.text
    assert "altcha" in asked.text  # the captcha widget


@pytest.mark.parametrize("lang, label", [("en", "Query password, or email")])
def test_the_second_field_says_it_takes_the_password_or_the_email(client, lang, label):
    page = client.get(f"/lookup?lang={lang}")
    assert re.search(rf'<label for="query_password">{label}</label>', page.text)
    assert "Ordered without one? Enter the order number above and the email you ordered with here." in page.text


def test_an_over_long_secret_is_refused_with_a_message(client, product, place):
    order = place(product, email="buyer@example.com", password=None)
    client.get("/lookup?lang=en")
    response = lookup(client, order.number, "x" * 255)
    assert response.status_code == 400
    assert "too long for a query password or an email" in response.text
    assert order.token not in response.text


# -- the orders placed in this browser -----------------------------------------------------


def buy(client, product, quantity=1):
    page = client.get(f"/p/{product.slug}")
    response = client.post(
        f"/p/{product.slug}/buy",
        data={"csrf_token": csrf_from(page.text), "quantity": quantity, "email": "", "query_password": ""},
    )
    assert response.status_code == 303
    token = response.headers["Location"].rstrip("/").rsplit("/", 1)[1]
    return db.session.execute(db.select(Order).where(Order.token == token)).scalar_one()


def browser_orders(html: str) -> list[str]:
    section = html[html.index('id="browser-orders"') :]
    return found_tokens(section)


def test_lookup_lists_the_orders_placed_in_this_browser_newest_first(client, make_product):
    card = make_product(keys=20, title="Steam 充值卡", price=1500)
    first = buy(client, card, quantity=2)
    second = buy(client, card)
    db.session.execute(update(Order).where(Order.id == first.id).values(created_at=utcnow() - timedelta(hours=1)))
    db.session.commit()

    page = client.get("/lookup?lang=en")
    assert page.status_code == 200
    assert page.headers["Cache-Control"] == "private, no-store"  # this browser's, kept by no cache
    assert browser_orders(page.text) == [second.token, first.token]
    section = page.text[page.text.index('id="browser-orders"') :]
    assert first.number in section and second.number in section
    assert "Steam 充值卡 × 2" in section and "¥30.00" in section
    assert section.count("Waiting for payment") == 2


def test_another_browser_sees_none_of_this_browsers_orders(app, client, product):
    order = buy(client, product)
    other = app.test_client()
    other.get("/?lang=en")  # has a device cookie of its own
    page = other.get("/lookup")
    assert order.token not in page.text and order.number not in page.text
    assert "No orders placed in this browser in the last 30 days" in page.text


def test_a_browser_without_the_cookie_sees_the_empty_state(app, client, product, monkeypatch):
    buy(client, product)
    queries = []
    monkeypatch.setattr(order_service, "placed_in_browser", lambda *a, **k: queries.append(a) or [])
    fresh = app.test_client()
    page = fresh.get("/lookup?lang=en")
    assert page.status_code == 200
    assert "No orders placed in this browser in the last 30 days" in page.text
    assert queries == []  # a browser it has never seen placed nothing: nothing to look up


def test_orders_older_than_30_days_are_not_listed(client, make_product):
    product = make_product(keys=20)
    old, recent = buy(client, product, quantity=1), buy(client, product, quantity=2)  # two orders, not one tapped twice
    db.session.execute(update(Order).where(Order.id == old.id).values(created_at=utcnow() - timedelta(days=31)))
    db.session.commit()
    assert browser_orders(client.get("/lookup").text) == [recent.token]


def device_hash_of(app, client) -> str:
    cookie = client.get_cookie(device.COOKIE)
    with app.test_request_context(headers={"Cookie": f"{device.COOKIE}={cookie.value}"}):
        return device.device_hash()


def test_at_most_50_orders_are_listed(app, client, make_product, place):
    product = make_product(keys=0, delivery_type="fixed", fixed_content_ciphertext=vault().encrypt("licence"))
    client.get("/lookup")
    placed = [place(product, email=None, password=None) for _ in range(order_service.MAX_BROWSER_ORDERS + 1)]
    now = utcnow()
    for age, order in enumerate(placed):  # placed[0] is the newest
        db.session.execute(
            update(Order)
            .where(Order.id == order.id)
            .values(device_hash=device_hash_of(app, client), created_at=now - timedelta(minutes=age))
        )
    db.session.commit()
    listed = browser_orders(client.get("/lookup").text)
    assert listed == [o.token for o in placed[:50]]
