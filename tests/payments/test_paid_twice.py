"""Complete payment records when buyers change their minds: a buyer who pays an order
twice gets the second payment back (through the gateway that took it, or by the
operator's hand), without the merchant being credited or debited for it; a buyer who
switched to another way of paying may still pay the first way; a buyer who cancelled and
pays anyway is honoured like a late payment after expiry."""

import re

import pytest
from flask import current_app, render_template
from sqlalchemy import select
from test_gateway_usdt import TOKEN, callback, place_usdt
from test_gateway_usdt import post as post_usdt

from conftest import count, csrf_from, login, reload, signed_notify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger import balances, settlement
from faka.ledger.models import LedgerEntry
from faka.orders import checkout
from faka.orders.coupons import create_coupon
from faka.orders.models import Coupon, Order
from faka.payments import notify, refunds
from faka.payments.gateways import configure_gateway
from faka.payments.models import PaymentAttempt, PaymentNotice, Refund
from faka.platform.models import AuditEvent


@pytest.fixture
def usdt(app, httpserver):
    """USDT (epusdt): a gateway that has no refund API."""
    configure_gateway("usdt", {"api_url": httpserver.url_for("/"), "api_token": TOKEN}, enabled=True)
    return httpserver


@pytest.fixture
def console(app, operator):
    client = app.test_client()
    login(client, operator)
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def notices(order) -> list[PaymentNotice]:
    db.session.commit()
    return list(
        db.session.execute(
            select(PaymentNotice).where(PaymentNotice.order_id == order.id).order_by(PaymentNotice.id)
        ).scalars()
    )


def refunds_of(order) -> list[Refund]:
    db.session.commit()
    return list(db.session.execute(select(Refund).where(Refund.order_id == order.id).order_by(Refund.id)).scalars())


def mismatch_rows(console) -> list[tuple[str, str]]:
    page = console.get("/operator/reconciliation").text
    return re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', page, re.S)


def extra_payment_note(order) -> str:
    """The order page's partial about extra payments, as the buyer (in English) sees it."""
    db.session.commit()
    with current_app.test_request_context("/?lang=en"):
        return render_template("orders/_extra_payment.html", extra_payments=notify.extra_payments(order.id))


def sent_to_pay(order) -> None:
    """The buyer opened the pay page with the order's gateway."""
    notify.start_payment(reload(order))


# -- paid twice -------------------------------------------------------------------------------


def test_second_sandbox_payment_goes_back_to_the_buyer_and_leaves_the_merchant_alone(
    client, product, place, pay, merchant
):
    order = place(product)
    assert pay(order).text == "success"
    assert reload(order).status == Order.DELIVERED
    balance_after_sale = balances.balance(merchant.id)
    entries = count(LedgerEntry)
    assert extra_payment_note(order).strip() == ""  # paid once: nothing to say

    second = signed_notify(order)  # another trade number: the buyer paid again
    assert client.post("/pay/sandbox/notify", data=second).text == "success"

    first, extra = notices(order)
    assert (first.outcome, extra.outcome) == ("paid", "duplicate")
    [refund] = refunds_of(order)
    assert (refund.payment_notice_id, refund.amount, refund.gateway) == (extra.id, order.total, "sandbox")
    assert refund.status == Refund.DONE and refund.reference.startswith("SBXR")  # the sandbox refunds at once
    assert refund.merchant_id == merchant.id and "duplicate payment" in refund.note
    assert reload(order).status == Order.DELIVERED and count(CardKey, CardKey.status == CardKey.SOLD) == 1
    assert balances.balance(merchant.id) == balance_after_sale and count(LedgerEntry) == entries
    assert settlement.reconcile_books() == []
    assert "the extra payment of ¥10.00 has been returned to you" in extra_payment_note(order)

    # The provider sends the second notification again: still one refund.
    assert client.post("/pay/sandbox/notify", data=second).text == "success"
    assert len(notices(order)) == 2 and len(refunds_of(order)) == 1


def test_second_payment_through_a_gateway_that_cannot_refund_waits_for_the_operator(
    client, console, product, usdt, merchant
):
    order = place_usdt(product)
    assert post_usdt(client, callback(order)).text == "ok"
    balance_after_sale = balances.balance(merchant.id)
    second = callback(order)
    assert post_usdt(client, second).text == "ok"

    [refund] = refunds_of(order)
    assert (refund.status, refund.gateway, refund.amount) == (Refund.MANUAL, "usdt", order.total)
    assert "duplicate payment" in refund.note and "cannot refund automatically" in refund.note
    assert balances.balance(merchant.id) == balance_after_sale
    assert "is being returned to you" in extra_payment_note(order)

    rows = mismatch_rows(console)
    assert [kind for kind, _ in rows] == [settlement.EXTRA_PAYMENT_NOT_RETURNED]
    assert order.number in rows[0][1] and "¥10.00" in rows[0][1]
    assert "has not been returned to the buyer" in rows[0][1] and "To be paid back by hand" in rows[0][1]

    listing = console.get("/operator/refunds").text
    row = re.search(rf'<tr id="refund-{refund.id}" data-kind="extra-payment">(.*?)</tr>', listing, re.S)
    assert row and "Paid twice: return the second payment" in row.group(1) and second["trade_id"] in row.group(1)
    answer = console.post(
        f"/operator/refunds/{refund.id}/paid", data={"csrf_token": csrf_from(listing), "reference": "TRX-BACK-1"}
    )
    assert answer.status_code == 303
    assert (reload(refund).status, reload(refund).reference) == (Refund.PAID, "TRX-BACK-1")
    assert mismatch_rows(console) == [] and 'id="books-balance"' in console.get("/operator/reconciliation").text
    assert "has been returned to you" in extra_payment_note(order)
    assert balances.balance(merchant.id) == balance_after_sale


def test_refunding_an_order_paid_twice_returns_its_first_payment(client, product, place, pay, merchant):
    order = place(product)
    pay(order)
    pay(order)
    first, extra = notices(order)
    assert refunds.refund_order(order.id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))
    (sale_refund,) = [r for r in refunds_of(order) if r.payment_notice_id is None]
    assert (sale_refund.status, sale_refund.amount) == (Refund.DONE, order.total)
    db.session.commit()
    details = db.session.execute(select(AuditEvent.detail).where(AuditEvent.action == "refund.done")).scalars().all()
    assert any(f"refund:{sale_refund.id} " in d and f"payment:{first.trade_no}" in d for d in details)
    assert len(refunds_of(order)) == 2 and settlement.reconcile_books() == []


# -- switching the way of paying --------------------------------------------------------------


def test_payment_with_the_first_way_after_switching_is_accepted_and_delivers(client, product, place, usdt):
    order = place(product)
    sent_to_pay(order)  # the sandbox's pay page
    checkout.change_gateway(order.token, "usdt")  # then the buyer chose USDT...
    assert reload(order).gateway == "usdt"
    assert [(a.gateway, a.order_id) for a in db.session.execute(select(PaymentAttempt)).scalars()] == [
        ("sandbox", order.id)
    ]

    paid = signed_notify(order)  # ...but paid on the sandbox page still open
    assert client.post("/pay/sandbox/notify", data=paid).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED and count(CardKey, CardKey.status == CardKey.SOLD) == 1
    assert [(n.gateway, n.outcome) for n in notices(order)] == [("sandbox", "paid")]
    assert client.post("/pay/sandbox/notify", data=paid).text == "success"  # a replay
    assert len(notices(order)) == 1 and refunds_of(order) == []
    assert settlement.reconcile_books() == []


def test_a_refund_goes_through_the_gateway_that_took_the_payment(client, product, place, usdt, merchant):
    order = place(product)
    sent_to_pay(order)
    checkout.change_gateway(order.token, "usdt")
    client.post("/pay/sandbox/notify", data=signed_notify(order))
    assert refunds.refund_order(order.id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))
    [refund] = refunds_of(order)
    # The order now says usdt, which cannot refund; the money is at the sandbox, which can.
    assert (refund.status, refund.gateway) == (Refund.DONE, "sandbox")


def test_a_gateway_the_order_was_never_sent_to_cannot_pay_it(client, product, place, usdt):
    order = place(product)
    checkout.change_gateway(order.token, "usdt")  # before ever opening the sandbox's page
    answer = client.post("/pay/sandbox/notify", data=signed_notify(order))
    assert answer.status_code == 400 and reload(order).status == Order.PENDING and notices(order) == []


# -- paying after cancelling ------------------------------------------------------------------


def test_payment_after_cancelling_is_honoured_while_keys_remain(client, merchant, make_product, pay):
    product = make_product(keys=4)
    create_coupon(merchant.id, "LATE", "fixed", 100, usage_limit=5)
    with current_app.test_request_context():
        order = checkout.place_order(product.slug, 2, "buyer@example.com", None, coupon_code="LATE")
    checkout.cancel_order(order.token)
    order = reload(order)
    assert order.status == Order.CANCELLED and count(CardKey, CardKey.status == CardKey.AVAILABLE) == 4
    assert db.session.execute(select(Coupon.used_count)).scalar_one() == 0

    assert pay(order).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED and order.total == 1900
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2
    assert [n.outcome for n in notices(order)] == ["late_paid"]
    assert db.session.execute(select(Coupon.used_count)).scalar_one() == 1  # the discount was used after all
    assert settlement.reconcile_books() == []


def test_payment_after_cancelling_when_sold_out_is_a_refund_due(client, make_product, place, pay):
    product = make_product(keys=1)
    order = place(product)
    checkout.cancel_order(order.token)
    place(product)  # someone else takes the stock
    pay(order)
    order = reload(order)
    assert order.status == Order.PAID_UNFULFILLED and count(CardKey, CardKey.status == CardKey.SOLD) == 0
    assert [n.outcome for n in notices(order)] == ["unfulfilled"]
    assert settlement.reconcile_books() == []  # a paid order with its payment: nothing amiss
