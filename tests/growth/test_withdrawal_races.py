"""Resellers' and promoters' money under concurrency: withdrawals asked at the same moment
spend a balance once, and a refund taking back a reseller's margin while the reseller
withdraws it leaves the books whole (PostgreSQL row locks, SQLite immediate
transactions: faka.core.db.write_transaction). Run on both databases."""

import pytest
from helpers import buy, new_promoter, new_reseller, open_programmes, opt_in, resell
from sqlalchemy import select
from test_ledger import alipay, count, new_merchant, new_product, settled

from conftest import run_together
from faka.core.db import write_transaction
from faka.extensions import db
from faka.ledger import balances, payouts, settlement
from faka.ledger.models import LedgerEntry, Withdrawal
from faka.orders.models import Order
from faka.payments import refunds

RACERS = 3


@pytest.fixture
def shop(app):
    """A merchant selling at 10.00 what sub-stores may resell from 6.00, a reseller
    selling it at 20.00 (margin 14.00), a promoter paid 50 % of what the merchant asks
    (3.00 of the 6.00 in the sub-store, 5.00 of a direct sale)."""
    open_programmes(resale_fee_bp=0, affiliate_fee_bp=0)
    merchant = new_merchant(fee_rate_bp=0)
    product = new_product(merchant, keys=20, price=1000)
    reseller, substore = new_reseller()
    promoter_account, promoter = new_promoter()
    resell(substore, product, floor_price=600, price=2000)
    opt_in(product, commission_bp=5000)
    return {
        "merchant": merchant,
        "product": product,
        "reseller": reseller,
        "substore": substore,
        "promoter_account": promoter_account,
        "promoter": promoter,
    }


def withdraw_at_once(app, account, amount, now, racers=RACERS):
    """`racers` requests of `amount` by the account at the same moment; the ids of the
    withdrawals made and the number refused."""
    ids = (account.id, account.user_id, alipay(account).id)
    db.session.commit()

    def withdraw(_i):
        try:
            return payouts.request_withdrawal(*ids, amount, now=now).id
        except payouts.InsufficientBalance:
            return "refused"

    results, errors = run_together(app, racers, withdraw)
    assert errors == []
    return [r for r in results if r != "refused"], results.count("refused")


@pytest.mark.parametrize("who", ["reseller", "promoter"])
def test_concurrent_withdrawals_of_more_than_half_spend_the_balance_once(app, shop, who):
    if who == "reseller":
        buy(shop["product"], 2, substore=shop["substore"])  # margin 2 x 14.00
        account = shop["reseller"]
    else:
        buy(shop["product"], 2, promoter=shop["promoter"])  # commission 2 x 5.00
        account = shop["promoter_account"]
    now = settled()
    available = balances.balance(account.id, now).available
    assert available == {"reseller": 2800, "promoter": 1000}[who]
    more_than_half = available // 2 + 1

    for round_ in range(3):  # a race is a matter of luck: run it a few times
        made, refused = withdraw_at_once(app, account, more_than_half, now)
        if round_ == 0:
            assert len(made) == 1 and refused == RACERS - 1
        else:
            assert made == [] and refused == RACERS
        assert balances.balance(account.id, now).available == available - more_than_half >= 0

    assert count(Withdrawal, Withdrawal.merchant_id == account.id) == 1
    assert count(LedgerEntry, LedgerEntry.kind == LedgerEntry.WITHDRAWAL) == 1
    assert settlement.reconcile_books() == []


def test_reseller_and_promoter_withdrawing_at_once_each_get_their_own_money(app, shop):
    buy(shop["product"], 1, substore=shop["substore"], promoter=shop["promoter"])  # 14.00 and 3.00
    now = settled()
    accounts = [shop["reseller"], shop["promoter_account"]]
    wanted = [1400, 300]
    ids = [(a.id, a.user_id, alipay(a).id) for a in accounts]
    db.session.commit()

    results, errors = run_together(app, 2, lambda i: payouts.request_withdrawal(*ids[i], wanted[i], now=now).amount)
    assert errors == [] and results == wanted
    assert [balances.balance(a.id, now).available for a in accounts] == [0, 0]
    assert settlement.reconcile_books() == []


def refund_by_merchant(order_id: int, merchant_id: int, now):
    """The merchant refunds the whole delivered order (every settled share it takes back
    must be covered by its account's available balance)."""
    try:
        return refunds.refund_order(order_id, merchant_id, None, allowed_statuses=(Order.DELIVERED,), now=now)
    except refunds.RefundNotCovered:
        return "not covered"


def refund_by_complaint(order_id: int, now):
    """A complaint's decision refunds the whole order: balances may go below zero."""
    with write_transaction():
        order = db.session.execute(select(Order).where(Order.id == order_id).with_for_update()).scalar_one()
        refunds.apply_refund(order, order.total, None, now, allow_negative=True)
    return True


def race_the_resellers_withdrawal(app, reseller, refund, now) -> list:
    """`refund()` and the reseller's withdrawal of its 14.00 margin at the same moment; what
    each returned (the withdrawal: its amount, or "refused")."""
    ids = (reseller.id, reseller.user_id, alipay(reseller).id)
    db.session.commit()  # the threads see it all; the test reads nothing until they end

    def act(i):
        if i == 0:
            return refund()
        try:
            return payouts.request_withdrawal(*ids, 1400, now=now).amount
        except payouts.InsufficientBalance:
            return "refused"

    results, errors = run_together(app, 2, act)
    db.session.commit()
    assert errors == []
    return results


@pytest.mark.parametrize("round_", range(3))
def test_merchant_refund_racing_the_resellers_withdrawal_of_the_margin_lets_one_through(app, shop, round_):
    order = buy(shop["product"], 1, substore=shop["substore"])
    reseller, merchant = shop["reseller"], shop["merchant"]
    now = settled()
    assert balances.balance(reseller.id, now).available == 1400
    order_id, merchant_id = order.id, merchant.id
    results = race_the_resellers_withdrawal(app, reseller, lambda: refund_by_merchant(order_id, merchant_id, now), now)
    # Either the refund took the margin back first and there was nothing to withdraw, or
    # the reseller withdrew it first and the refund is refused: never both.
    assert results in ([True, "refused"], ["not covered", 1400]), results
    refunded = results[0] is True
    assert db.session.get(Order, order.id).status == (Order.REFUNDED if refunded else Order.DELIVERED)
    assert balances.balance(reseller.id, now).available == 0
    assert balances.balance(merchant.id, now).available == (0 if refunded else 600)
    assert settlement.reconcile_books() == []


@pytest.mark.parametrize("round_", range(3))
def test_complaint_refund_racing_the_resellers_withdrawal_loses_no_fen(app, shop, round_):
    order = buy(shop["product"], 1, substore=shop["substore"])
    reseller = shop["reseller"]
    now = settled()
    order_id = order.id
    results = race_the_resellers_withdrawal(app, reseller, lambda: refund_by_complaint(order_id, now), now)
    assert results[0] is True
    withdrew = results[1] == 1400
    assert results[1] in (1400, "refused")
    # The decision may take the reseller below zero only by what it had already withdrawn.
    assert balances.balance(reseller.id, now).available == (-1400 if withdrew else 0)
    assert settlement.reconcile_books() == []


def test_merchant_refund_is_refused_when_the_promoter_already_withdrew_the_commission(app, shop):
    """Found by the books machine: a refund checked only the merchant's balance, so
    taking back a commission the promoter had withdrawn left the promoter below zero."""
    order = buy(shop["product"], 1, promoter=shop["promoter"])  # commission 5.00
    promoter = shop["promoter_account"]
    now = settled()
    payouts.request_withdrawal(promoter.id, promoter.user_id, alipay(promoter).id, 500, now=now)

    assert refund_by_merchant(order.id, shop["merchant"].id, now) == "not covered"
    db.session.commit()
    assert db.session.get(Order, order.id).status == Order.DELIVERED
    assert balances.balance(promoter.id, now).available == 0
    assert count(LedgerEntry, LedgerEntry.kind == LedgerEntry.COMMISSION_REFUND) == 0
    # A complaint's decision still refunds it, and says what the promoter now owes.
    assert refund_by_complaint(order.id, now)
    assert balances.balance(promoter.id, now).available == -500
    assert settlement.reconcile_books() == []
