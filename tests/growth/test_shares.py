"""Who gets which fen of an order (faka/ledger/shares.py): the split of a total into the
merchant's share, a reseller's margin and a promoter's commission, and what each gives
back of a refund, checked against a rule written out here independently of the code
(the floor of each proportional part, the fen left over to the largest remainders, the
merchant first on a tie), on random orders and on cases worked out by hand."""

from datetime import timedelta
from fractions import Fraction

import pytest
from helpers import buy, expected_refund, new_promoter, new_reseller, open_programmes, opt_in, resell
from hypothesis import given
from hypothesis import strategies as st
from sqlalchemy import select
from test_ledger import new_merchant, new_product

from faka.core.db import write_transaction
from faka.extensions import db
from faka.ledger import balances, settlement, shares
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.payments import refunds

M, R, P = shares.MERCHANT, shares.RESELLER, shares.PROMOTER


@st.composite
def orders(draw):
    """(total, resale_base, commission, substore, referred) as checkout and payment make
    them: the floor total at most the sub-store's total, a commission of at most half
    of what the merchant asked."""
    total = draw(st.integers(0, 10**7))
    substore = draw(st.booleans())
    base = draw(st.integers(0, total)) if substore else total
    referred = draw(st.booleans())
    rate = draw(st.integers(0, shares.MAX_COMMISSION_BP)) if referred else 0
    commission = base * rate // 10000
    return total, base if substore else None, commission, substore, referred


# -- the split ---------------------------------------------------------------------------


@given(orders())
def test_shares_add_up_to_the_total_and_none_is_negative(order):
    total, base, commission, substore, referred = order
    split = shares.gross_shares(*order)
    assert sum(split.values()) == total
    assert all(amount >= 0 for amount in split.values())
    assert split[M] == (total if base is None else base) - commission
    assert (R in split) == substore
    assert (P in split) == (referred and commission > 0)


def test_shares_worked_by_hand():
    # A sub-store sells at 10.00 what the merchant lets go for 7.00, through a promoter
    # paid 10 % of the merchant's 7.00.
    assert shares.gross_shares(1000, 700, 70, True, True) == {M: 630, R: 300, P: 70}
    assert shares.gross_shares(1000, None, 0, False, False) == {M: 1000}
    assert shares.gross_shares(1000, None, 150, False, True) == {M: 850, P: 150}
    assert shares.gross_shares(1000, 1000, 0, True, False) == {M: 1000, R: 0}
    # A self-referral's commission was fixed at 0: the promoter has no share at all.
    assert shares.gross_shares(1000, None, 0, False, True) == {M: 1000}


# -- refunds -----------------------------------------------------------------------------


@st.composite
def refunded_orders(draw):
    order = draw(orders())
    refund = draw(st.one_of(st.integers(0, order[0]), st.just(order[0])))
    return order, refund


@given(refunded_orders())
def test_a_refund_takes_back_each_share_by_the_documented_rule(case):
    order, refund = case
    total = order[0]
    split = shares.gross_shares(*order)
    back = shares.refunded_shares(split, refund, total)
    assert back == expected_refund(split, refund, total)
    assert sum(back.values()) == refund
    assert all(0 <= back[p] <= split[p] for p in split)
    if refund == total:
        assert back == split


@given(refunded_orders(), st.integers(0, 5000))
def test_no_share_gives_back_more_than_it_got_net_of_its_fee(case, fee_bp):
    order, refund = case
    total = order[0]
    split = shares.gross_shares(*order)
    back = shares.refunded_shares(split, refund, total)
    for party, share in split.items():
        fee = share * fee_bp // 10000
        fee_back = balances.returned_fee(fee, back[party], share)
        assert 0 <= fee_back <= fee
        assert 0 <= back[party] - fee_back <= share - fee
        if refund == total:
            assert fee_back == fee


@pytest.mark.parametrize(
    "split, refund, total, expected",
    [
        # 630, 300, 70 of 1000, 333 refunded: 209.79, 99.9, 23.31 -> 209, 99, 23 and two
        # fen over, to the reseller (.9) and the merchant (.79).
        ({M: 630, R: 300, P: 70}, 333, 1000, {M: 210, R: 100, P: 23}),
        # Equal remainders: the merchant takes the fen first, then the reseller.
        ({M: 500, R: 500}, 1, 1000, {M: 1, R: 0}),
        ({M: 1, R: 1, P: 1}, 2, 3, {M: 1, R: 1, P: 0}),
        ({M: 1, R: 1, P: 1}, 1, 3, {M: 1, R: 0, P: 0}),
        # Exact parts leave nothing over.
        ({M: 600, P: 400}, 500, 1000, {M: 300, P: 200}),
        # Everything refunded: every share whole, whatever the rounding.
        ({M: 333, R: 333, P: 334}, 1000, 1000, {M: 333, R: 333, P: 334}),
        # A margin of 0 gives nothing back.
        ({M: 1000, R: 0}, 999, 1000, {M: 999, R: 0}),
    ],
)
def test_refunds_worked_by_hand(split, refund, total, expected):
    assert shares.refunded_shares(split, refund, total) == expected
    assert expected_refund(split, refund, total) == expected


def test_the_rule_written_with_fractions_agrees_with_a_long_hand_example():
    # 7 fen of 19 back from 11, 5, 3: exact parts 77/19, 35/19, 21/19 = 4.05, 1.84, 1.10
    # -> 4, 1, 1 and one fen over, to the reseller's .84.
    split = {M: 11, R: 5, P: 3}
    assert [Fraction(s * 7, 19) for s in split.values()] == [Fraction(77, 19), Fraction(35, 19), Fraction(21, 19)]
    assert shares.refunded_shares(split, 7, 19) == {M: 4, R: 2, P: 1}


# -- on a real order ---------------------------------------------------------------------


def entries_of(order_id: int) -> dict[tuple[int, str], int]:
    db.session.commit()
    return {
        (e.merchant_id, e.kind): e.amount
        for e in db.session.execute(select(LedgerEntry).where(LedgerEntry.order_id == order_id)).scalars()
    }


def test_a_referred_sub_store_sale_is_credited_and_partly_refunded_to_the_fen(app):
    open_programmes(resale_fee_bp=300, affiliate_fee_bp=300)
    merchant = new_merchant(fee_rate_bp=250)
    product = new_product(merchant, keys=5, price=900)
    reseller, substore = new_reseller()
    promoter_account, promoter = new_promoter()
    resell(substore, product, floor_price=700, price=1000)
    opt_in(product, commission_bp=1000)

    order = buy(product, substore=substore, promoter=promoter)

    assert (order.total, order.resale_base, order.commission) == (1000, 700, 70)
    # 630 less 2.5 % (15), 300 less 3 % (9), 70 less 3 % (2).
    assert entries_of(order.id) == {
        (merchant.id, LedgerEntry.SALE): 630,
        (merchant.id, LedgerEntry.FEE): -15,
        (reseller.id, LedgerEntry.RESALE): 300,
        (reseller.id, LedgerEntry.RESALE_FEE): -9,
        (promoter_account.id, LedgerEntry.COMMISSION): 70,
        (promoter_account.id, LedgerEntry.COMMISSION_FEE): -2,
    }

    now = order.delivered_at + timedelta(hours=1)
    with write_transaction():  # as a complaint's decision refunds part of an order
        locked = db.session.execute(select(Order).where(Order.id == order.id).with_for_update()).scalar_one()
        refunds.apply_refund(locked, 333, None, now, allow_negative=True)

    found = entries_of(order.id)
    # 210, 100 and 23 back; the fee given back with each: 15*210/630 = 5, 9*100/300 = 3,
    # 2*23/70 = 0.
    assert {k: v for k, v in found.items() if "refund" in k[1] or "return" in k[1]} == {
        (merchant.id, LedgerEntry.REFUND): -210,
        (merchant.id, LedgerEntry.FEE_RETURN): 5,
        (reseller.id, LedgerEntry.RESALE_REFUND): -100,
        (reseller.id, LedgerEntry.RESALE_FEE_RETURN): 3,
        (promoter_account.id, LedgerEntry.COMMISSION_REFUND): -23,
    }
    assert balances.balance(merchant.id, now).total == 630 - 15 - 210 + 5
    assert balances.balance(reseller.id, now).total == 300 - 9 - 100 + 3
    assert balances.balance(promoter_account.id, now).total == 70 - 2 - 23
    # The buyer got 333 back, the platform kept 15 + 9 + 2 - 5 - 3 = 18, the rest is owed.
    assert sum(found.values()) + (15 + 9 + 2 - 5 - 3) == 1000 - 333
    assert settlement.reconcile_books() == []
