"""Finding an order again by number or email plus the query password."""
import pytest

from conftest import csrf_from


def lookup(client, query, password):
    page = client.get("/lookup")
    return client.post("/lookup", data={"csrf_token": csrf_from(page.text), "query": query, "query_password": password})


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


def test_order_without_query_password_cannot_be_looked_up(client, product, place):
    order = place(product, password=None)
    assert lookup(client, order.number, "").status_code == 400
    assert lookup(client, order.number, "anything").status_code == 400


def test_lookups_are_rate_limited_per_ip(make_app, make_product, place):
    app = make_app(RATELIMIT_LOOKUP="3 per minute")
    with app.app_context():
        client = app.test_client()
        statuses = [lookup(client, "20260101000000000000", "guess").status_code for _ in range(5)]
        assert statuses[:3] == [400, 400, 400]
        assert statuses[3:] == [429, 429]
        limited = lookup(client, "x", "y")
        assert "操作过于频繁" in limited.text
