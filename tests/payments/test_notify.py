"""Gateway notifications: verified to the letter, recorded once."""

import pytest
from sqlalchemy import func, select

from conftest import expire_and_reconcile, reload, signed_notify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.payments.models import PaymentNotice


def count(model, *where):
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_replayed_notify_delivers_once(client, product, place):
    order = place(product, 2)
    fields = signed_notify(order)
    for _ in range(3):
        response = client.post("/pay/sandbox/notify", data=fields)
        assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2
    assert count(LedgerEntry, LedgerEntry.kind == "sale") == 1


@pytest.mark.parametrize(
    "change",
    [
        {"sign": "0" * 64},  # forged signature
        {"amount": "1"},  # amount changed after signing
    ],
    ids=["forged-signature", "tampered-amount"],
)
def test_tampered_notify_changes_nothing(client, product, place, change):
    order = place(product)
    response = client.post("/pay/sandbox/notify", data=signed_notify(order, **change))
    assert response.status_code == 400 and response.text == "fail"
    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0


def _resign(fields):
    from faka.payments.gateways import get_gateway
    from faka.payments.gateways.sandbox import sign

    fields["sign"] = sign(fields, get_gateway("sandbox").settings["secret"])
    return fields


@pytest.mark.parametrize(
    "change",
    [{"amount": "1"}, {"amount": "999999"}, {"currency": "USD"}, {"order_no": "20260101000000000000"}],
    ids=["wrong-amount-low", "wrong-amount-high", "wrong-currency", "unknown-order"],
)
def test_correctly_signed_but_mismatched_notify_changes_nothing(client, product, place, change, caplog):
    order = place(product)
    fields = _resign(signed_notify(order, **change))
    response = client.post("/pay/sandbox/notify", data=fields)
    assert response.status_code == 400
    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 0
    assert "rejected sandbox notify" in caplog.text


def test_notify_for_another_order_number_does_not_pay_this_one(client, product, place):
    first, second = place(product), place(product)
    fields = _resign(signed_notify(first, order_no=second.number))
    assert client.post("/pay/sandbox/notify", data=fields).status_code == 200
    assert reload(first).status == Order.PENDING
    assert reload(second).status == Order.DELIVERED


def test_same_trade_number_cannot_pay_two_orders(client, product, place):
    first, second = place(product), place(product)
    fields = signed_notify(first)
    assert client.post("/pay/sandbox/notify", data=fields).status_code == 200
    reused = _resign(signed_notify(second, trade_no=fields["trade_no"]))
    assert client.post("/pay/sandbox/notify", data=reused).status_code == 400
    assert reload(second).status == Order.PENDING


def test_unknown_gateway_is_404(client):
    assert client.post("/pay/nope/notify", data={"a": "b"}).status_code == 404


def test_waiting_status_changes_nothing(client, product, place):
    order = place(product)
    response = client.post("/pay/sandbox/notify", data=_resign(signed_notify(order, status="waiting")))
    assert response.text == "success"
    assert reload(order).status == Order.PENDING


def test_second_payment_for_paid_order_is_recorded_for_refund(client, product, place, pay):
    order = place(product)
    pay(order)
    pay(order)  # a different trade number: the buyer paid twice
    assert reload(order).status == Order.DELIVERED
    outcomes = sorted(db.session.execute(select(PaymentNotice.outcome)).scalars())
    assert outcomes == ["duplicate", "paid"]
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 1


def test_late_payment_delivers_when_keys_remain(client, product, place, pay):
    order = place(product, 2)
    expire_and_reconcile(order)
    assert reload(order).status == Order.EXPIRED
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 5
    pay(order)
    assert reload(order).status == Order.DELIVERED
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2


def test_late_payment_without_stock_is_flagged_for_refund(client, make_product, place, pay):
    product = make_product(keys=1)
    late = place(product)
    expire_and_reconcile(late)
    place(product)  # someone else takes all the stock
    pay(late)
    assert reload(late).status == Order.PAID_UNFULFILLED
    assert db.session.execute(select(PaymentNotice.outcome)).scalar_one() == "unfulfilled"
    assert "退款" in client.get(f"/order/{late.token}").text
