"""The money resource: the balance of the back office's Money page, and the ledger."""

from datetime import timedelta

from sqlalchemy import update

from api.conftest import ApiClient, error_code
from conftest import login, reload
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger.models import LedgerEntry


def sell(place, pay, product, quantity=1):
    order = place(product, quantity)
    pay(order)
    return reload(order)


def test_the_balance_is_the_money_pages(api, client, merchant, make_product, place, pay, other_product):
    product = make_product(keys=10, price=10000)
    settled = sell(place, pay, product)
    sell(place, pay, product)  # still in the settlement hold
    disputed = sell(place, pay, product)
    sell(place, pay, other_product)
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id.in_([settled.id, disputed.id]))
        .values(available_at=utcnow() - timedelta(days=1))
    )
    db.session.commit()
    workflow.open_complaint(disputed.token, Complaint.KEY_INVALID, "Used already")

    answer = api.get("/api/v1/balance")
    assert answer.status_code == 200
    assert answer.get_json() == {
        "available": 9700,
        "pending": 9700,
        "frozen": 9700,
        "withdrawing": 0,
        "withdrawn": 0,
        "total": 29100,
        "currency": "CNY",
    }
    login(client, reload(merchant).user)
    page = client.get("/merchant/money?lang=en").text
    assert page.count("¥97.00") == 3  # available, pending, frozen: the same figures


def test_the_ledger_pages_oldest_first_with_each_entrys_order(api, make_product, place, pay, other_product):
    product = make_product(keys=10, price=1000)
    first = sell(place, pay, product, 2)
    second = sell(place, pay, product)
    theirs = sell(place, pay, other_product)

    page = api.get("/api/v1/ledger?limit=3")
    assert page.status_code == 200
    body = page.get_json()
    assert [(e["kind"], e["amount"], e["order"]) for e in body["items"]] == [
        ("sale", 2000, first.number),
        ("fee", -60, first.number),
        ("sale", 1000, second.number),
    ]
    assert body["items"][0]["available_at"] > body["items"][0]["created_at"]
    rest = api.get(f"/api/v1/ledger?cursor={body['next_cursor']}").get_json()
    assert [(e["kind"], e["amount"]) for e in rest["items"]] == [("fee", -30)] and rest["next_cursor"] is None
    fees = api.get("/api/v1/ledger?kind=fee").get_json()["items"]
    assert [e["amount"] for e in fees] == [-60, -30]
    assert theirs.number not in page.get_data(as_text=True) + str(rest) + str(fees)


def test_the_ledger_filters_by_time(api, make_product, place, pay, frozen_clock):
    product = make_product(keys=10, price=1000)
    early = sell(place, pay, product)
    frozen_clock.advance(days=2)
    late = sell(place, pay, product)
    cut = (early.created_at + timedelta(days=1)).isoformat().replace("+", "%2B")
    before = api.get(f"/api/v1/ledger?created_to={cut}").get_json()["items"]
    after = api.get(f"/api/v1/ledger?created_from={cut}&kind=sale").get_json()["items"]
    assert {e["order"] for e in before} == {early.number}
    assert [e["order"] for e in after] == [late.number]
    invalid = api.get("/api/v1/ledger?kind=gift&created_from=soon")
    assert invalid.status_code == 422 and set(invalid.get_json()["error"]["fields"]) == {"kind", "created_from"}


def test_money_needs_its_scope(client, make_key):
    other = ApiClient(client, make_key(scopes=["orders:write", "products:write"]))
    for path in ("/api/v1/balance", "/api/v1/ledger"):
        answer = other.get(path)
        assert answer.status_code == 403 and error_code(answer) == "insufficient_scope"
    reader = ApiClient(client, make_key(scopes=["money:read"]))
    assert reader.get("/api/v1/balance").status_code == 200
