"""Refunds (faka.payments.refunds.refund_order) from the merchant's side: a paid order that
sold out before delivery is refunded once; another merchant's order, or a delivered one
unless allowed, is refused; a refund during the settlement hold takes back the pending sale
and returns its fee; one of settled money the available balance no longer covers is refused
(RefundNotCovered). The shop, the sales and the seller fixture come from test_ledger."""

import pytest
from flask import current_app
from sqlalchemy import select
from test_ledger import alipay, count, new_merchant, new_product, sell, seller, settled  # noqa: F401  (seller: a fixture)

from conftest import expire_and_reconcile, reload, signed_notify
from faka.core.errors import NotFound
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger import balances, payouts
from faka.ledger.models import LedgerEntry
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify, refunds
from faka.platform.models import AuditEvent


def test_paid_unfulfilled_order_is_refunded_once(seller):
    product = new_product(seller, keys=1)
    with current_app.test_request_context():
        late = checkout.place_order(product.slug, 1, None, None)
    expire_and_reconcile(late)
    sell(product, quantity=1)  # someone else takes all the stock
    with current_app.test_request_context():
        notify.handle_notify("sandbox", signed_notify(reload(late)), {}, b"")
    assert reload(late).status == Order.PAID_UNFULFILLED

    assert refunds.refund_order(late.id, seller.id, seller.user_id) is True
    refunded = reload(late)
    assert refunded.status == Order.REFUNDED and refunded.refunded_at is not None
    assert count(LedgerEntry, LedgerEntry.order_id == late.id) == 0  # never credited, nothing to take back
    snapshot = (refunded.refunded_at, count(LedgerEntry), count(AuditEvent, AuditEvent.action == "order.refunded"))

    assert refunds.refund_order(late.id, seller.id, seller.user_id) is False
    assert (
        (reload(late).refunded_at, count(LedgerEntry), count(AuditEvent, AuditEvent.action == "order.refunded"))
        == snapshot
        == (refunded.refunded_at, 2, 1)
    )


def test_refund_of_another_merchants_order_or_of_a_delivered_one_by_default_is_refused(seller):
    order = sell(new_product(seller))
    other = new_merchant()
    with pytest.raises(NotFound):
        refunds.refund_order(order.id, other.id, other.user_id, allowed_statuses=(Order.DELIVERED,))
    with pytest.raises(refunds.OrderNotRefundable):
        refunds.refund_order(order.id, seller.id, seller.user_id)
    assert reload(order).status == Order.DELIVERED
    assert count(LedgerEntry, LedgerEntry.order_id == order.id) == 2


def test_refund_in_the_hold_cancels_the_pending_sale_once(seller):
    order = sell(new_product(seller), quantity=2)
    assert refunds.refund_order(order.id, seller.id, seller.user_id, allowed_statuses=(Order.DELIVERED,)) is True
    assert refunds.refund_order(order.id, seller.id, seller.user_id, allowed_statuses=(Order.DELIVERED,)) is False
    entries = dict(
        db.session.execute(select(LedgerEntry.kind, LedgerEntry.amount).where(LedgerEntry.order_id == order.id)).all()
    )
    assert entries == {
        LedgerEntry.SALE: 2000,
        LedgerEntry.FEE: -60,
        LedgerEntry.REFUND: -2000,
        LedgerEntry.FEE_RETURN: 60,
    }
    for moment in (utcnow(), settled()):
        now_balance = balances.balance(seller.id, moment)
        assert (now_balance.pending, now_balance.available, now_balance.total) == (0, 0, 0)


def test_refund_of_settled_money_already_withdrawn_is_refused(seller):
    account = alipay(seller)
    order = sell(new_product(seller))
    now = settled()
    payouts.request_withdrawal(seller.id, seller.user_id, account.id, 970, now=now)
    with pytest.raises(refunds.RefundNotCovered):
        refunds.refund_order(order.id, seller.id, seller.user_id, allowed_statuses=(Order.DELIVERED,), now=now)
    assert reload(order).status == Order.DELIVERED
    assert count(LedgerEntry, LedgerEntry.order_id == order.id) == 2
