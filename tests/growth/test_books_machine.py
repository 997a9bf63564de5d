"""One ledger, proved: random histories of a merchant, a reseller and a promoter.

A hypothesis state machine drives direct, sub-store, referred and referred sub-store
purchases through the real checkout, payment and delivery; full and partial refunds by
the merchant (which the balances must cover) and by complaint decisions (which may take
a balance below zero); time passing, so holds mature; and withdrawals by each of the
three accounts, approved, paid or rejected by an operator. A model written here keeps
every account's entries apart from the code, and after every step:

- what buyers paid less what went back to them equals every share credited, less what
  refunds took back, plus the platform's fees (net of the fees it gave back), and what
  went back equals the refunds recorded for the buyers;
- `settlement.reconcile_books()` finds nothing;
- each account's pending, available, withdrawn and in-flight amounts equal the model's;
- an available balance is below zero only on an account a complaint decision took
  below zero;
- a withdrawal is refused exactly when it asks for more than is available.
"""

from datetime import datetime, timedelta

import pytest
from helpers import buy, expected_refund, new_promoter, new_reseller, open_programmes, opt_in, resell
from hypothesis import event
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    initialize,
    invariant,
    multiple,
    rule,
)
from sqlalchemy import func, select
from test_ledger import AppMachine, alipay, clock_at, new_merchant, new_operator, new_product, run_machine

from conftest import _empty_database
from faka.core.db import write_transaction
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger import balances, payouts, settlement, shares
from faka.ledger.models import LedgerEntry, Withdrawal
from faka.orders.models import Order
from faka.payments import refunds
from faka.payments.gateways import ensure_sandbox
from faka.payments.models import Refund

pytestmark = pytest.mark.slow

KEYS = 60
HOLD = timedelta(days=3)  # Merchant.hold_days' default: every share of a sale settles with it
MERCHANT_FEE_BP = 250
RESALE_FEE_BP = 300  # the programmes' defaults, as the operator set them
AFFILIATE_FEE_BP = 500
MIN = payouts.MIN_WITHDRAWAL
CREDIT_KINDS = tuple(party.credit for party in shares.PARTIES)
REFUND_KINDS = tuple(party.refund for party in shares.PARTIES)
WHO = ("merchant", "reseller", "promoter")


class BooksMachine(AppMachine):
    orders = Bundle("orders")
    withdrawals = Bundle("withdrawals")

    def __init__(self):
        super().__init__()
        self.ready = False
        self.offset = timedelta(0)
        # The model: each account's entries as (amount, available_at), the orders.
        self.entries: dict[int, list[tuple[int, datetime]]] = {}
        self.sold: dict[int, dict] = {}  # order id -> what the model knows of it
        self.withdrawn: dict[int, tuple[int, int]] = {}  # withdrawal id -> (account, amount)
        self.status: dict[int, str] = {}  # withdrawal id -> status
        self.pushed_below_zero: set[int] = set()  # accounts a complaint decision took below zero
        self.fees_kept = 0  # the platform's fees, less those it gave back

    def now(self) -> datetime:
        return utcnow() + self.offset

    @initialize(
        target=orders,
        floor=st.integers(100, 900),
        margin=st.sampled_from([0, 1, 333, 500, 800, 800]),
        commission_bp=st.sampled_from([1, 1000, 3333, 5000]),
        substore_fee_bp=st.sampled_from([None, None, 0, 700]),
        promoter_fee_bp=st.sampled_from([None, None, 1000]),
        opening=st.lists(st.sampled_from(["direct", "substore", "referred", "both"]), min_size=1, max_size=4),
    )
    def open_shop(self, floor, margin, commission_bp, substore_fee_bp, promoter_fee_bp, opening):
        _empty_database()
        ensure_sandbox()
        open_programmes(resale_fee_bp=RESALE_FEE_BP, affiliate_fee_bp=AFFILIATE_FEE_BP)
        merchant = new_merchant(fee_rate_bp=MERCHANT_FEE_BP)
        self.price = floor + 37
        self.product = new_product(merchant, keys=KEYS, price=self.price)
        reseller, self.substore = new_reseller(fee_rate_bp=substore_fee_bp)
        promoter_account, self.promoter = new_promoter(fee_rate_bp=promoter_fee_bp)
        self.floor, self.substore_price, self.commission_bp = floor, floor + margin, commission_bp
        resell(self.substore, self.product, floor_price=floor, price=self.substore_price)
        opt_in(self.product, commission_bp=commission_bp)
        self.rates = {
            shares.MERCHANT: MERCHANT_FEE_BP,
            shares.RESELLER: RESALE_FEE_BP if substore_fee_bp is None else substore_fee_bp,
            shares.PROMOTER: AFFILIATE_FEE_BP if promoter_fee_bp is None else promoter_fee_bp,
        }
        self.account = {"merchant": merchant, "reseller": reseller, "promoter": promoter_account}
        self.party_account = {
            shares.MERCHANT: merchant.id,
            shares.RESELLER: reseller.id,
            shares.PROMOTER: promoter_account.id,
        }
        self.payout = {who: alipay(account).id for who, account in self.account.items()}
        self.user = {who: account.user_id for who, account in self.account.items()}
        self.entries = {account.id: [] for account in self.account.values()}
        self.operator_id = new_operator().id
        self.keys_left = KEYS
        self.ready = True
        # A few sales whose hold then passes: money is available from the start.
        opened = [self.purchase(how, 1) for how in opening]
        self.offset += HOLD
        return multiple(*[order for order in opened if isinstance(order, int)])

    # -- the model ------------------------------------------------------------------------

    def add(self, account: int, amount: int, available_at: datetime) -> None:
        self.entries[account].append((amount, available_at))

    def expected(self, account: int, now: datetime) -> tuple[int, int]:
        """(pending, available) of an account at `now`."""
        pending = sum(a for a, at in self.entries[account] if at > now)
        available = sum(a for a, at in self.entries[account] if at <= now)
        return pending, available

    def share_split(self, how: str, quantity: int) -> tuple[int, dict]:
        """The order's total and its shares, by the rules of issue 21 worked out here."""
        substore, referred = how in ("substore", "both"), how in ("referred", "both")
        total = (self.substore_price if substore else self.price) * quantity
        base = self.floor * quantity if substore else total
        commission = base * self.commission_bp // 10000 if referred else 0
        split = {shares.MERCHANT: base - commission}
        if substore and total > base:
            split[shares.RESELLER] = total - base
        if commission:
            split[shares.PROMOTER] = commission
        return total, split

    # -- steps ----------------------------------------------------------------------------

    @rule(target=orders, how=st.sampled_from(["direct", "substore", "referred", "both"]), quantity=st.integers(1, 2))
    def purchase(self, how, quantity):
        if self.keys_left < quantity or (quantity > 1 and 2 * quantity > self.keys_left):
            return multiple()  # not in stock, or more than an unpaid order may hold
        with clock_at(self.now()):
            order = buy(
                self.product,
                quantity,
                substore=self.substore if how in ("substore", "both") else None,
                promoter=self.promoter if how in ("referred", "both") else None,
            )
        self.keys_left -= quantity
        total, split = self.share_split(how, quantity)
        assert order.total == total
        settles_at = order.delivered_at + HOLD
        fees = {party: amount * self.rates[party] // 10000 for party, amount in split.items()}
        for party, amount in split.items():
            self.add(self.party_account[party], amount - fees[party], settles_at)
        self.fees_kept += sum(fees.values())
        self.sold[order.id] = {
            "total": total,
            "split": split,
            "fees": fees,
            "settles_at": settles_at,
            "refunded": 0,
        }
        event(f"purchase: {how}")
        return order.id

    @rule(
        order_id=orders,
        how=st.sampled_from(["merchant", "merchant", "complaint", "complaint"]),
        part=st.sampled_from([None, None, 1, 0.5, 0.99]),
    )
    def refund(self, order_id, how, part):
        """A refund of the whole order (part None) or a part of it, by the merchant (the
        balances must cover what it takes back of settled money) or by a complaint's
        decision (they need not)."""
        sold = self.sold[order_id]
        total = sold["total"]
        amount = total if part is None else min(max(1, int(total * part)), total - 1)
        if amount >= total and part is not None:
            return  # an order of 1 fen has no part to refund
        now = self.now()
        complaint = how == "complaint"
        backs = expected_refund(sold["split"], amount, total)
        fee_backs = {
            party: sold["fees"][party] if backs[party] >= share else sold["fees"][party] * backs[party] // share
            for party, share in sold["split"].items()
        }
        settles_at = max(now, sold["settles_at"])
        uncovered = [
            party
            for party in sold["split"]
            if settles_at <= now
            and backs[party] - fee_backs[party] > max(0, self.expected(self.party_account[party], now)[1])
        ]
        try:
            with write_transaction():  # as the merchant's back office or a complaint's step does
                order = db.session.execute(
                    select(Order)
                    .where(Order.id == order_id)
                    .with_for_update()
                    .execution_options(populate_existing=True)
                ).scalar_one()
                refunds.apply_refund(order, amount, None, now, allow_negative=complaint)
        except refunds.OrderNotRefundable:
            assert sold["refunded"], "a delivered order could not be refunded"
            event("refund: already refunded, refused")
            return
        except refunds.RefundNotCovered:
            assert not sold["refunded"] and not complaint and uncovered, "a covered refund was refused"
            event("refund: not covered, refused")
            return
        assert not sold["refunded"], "an order was refunded twice"
        assert complaint or not uncovered, f"a refund took {uncovered} below what they had available"
        sold["refunded"] = amount
        for party in sold["split"]:
            account = self.party_account[party]
            self.add(account, fee_backs[party] - backs[party], settles_at)
            if complaint and self.expected(account, now)[1] < 0:
                self.pushed_below_zero.add(account)
                event("refund: a complaint's decision took an account below zero")
        self.fees_kept -= sum(fee_backs.values())
        event(f"refund: {'complaint' if complaint else 'merchant'} {'whole' if part is None else 'part'}")

    @rule(
        target=withdrawals,
        who=st.sampled_from(WHO),
        how=st.sampled_from(["all", "all", "all", "over", "half", "some"]),
        some=st.integers(MIN, 3000),
    )
    def request(self, who, how, some):
        account = self.account[who].id
        now = self.now()
        available = self.expected(account, now)[1]
        amount = {
            "all": max(available, MIN),
            "over": max(available + 1, MIN),
            "half": max(available // 2, MIN),
            "some": some,
        }[how]
        try:
            withdrawal = payouts.request_withdrawal(account, self.user[who], self.payout[who], amount, now=now)
        except payouts.InsufficientBalance:
            assert amount > available, f"{who}: refused {amount} with {available} available"
            event("withdrawal: refused, more than available")
            return multiple()
        assert amount <= available, f"{who}: allowed {amount} with only {available} available"
        event(f"withdrawal: requested by the {who}")
        self.add(account, -amount, now)
        self.withdrawn[withdrawal.id] = (account, amount)
        self.status[withdrawal.id] = Withdrawal.REQUESTED
        return withdrawal.id

    @rule(
        withdrawal_id=withdrawals,
        decisions=st.lists(st.sampled_from(["approve", "pay", "reject"]), min_size=1, max_size=2),
    )
    def decide(self, withdrawal_id, decisions):
        w, op = withdrawal_id, self.operator_id
        act = {
            "approve": (Withdrawal.APPROVED, lambda now: payouts.approve_withdrawal(w, op, now=now)),
            "pay": (Withdrawal.PAID, lambda now: payouts.mark_withdrawal_paid(w, op, now=now)),
            "reject": (Withdrawal.REJECTED, lambda now: payouts.reject_withdrawal(w, op, "随机拒绝", now=now)),
        }
        legal_after = {
            Withdrawal.REQUESTED: {Withdrawal.APPROVED, Withdrawal.REJECTED},
            Withdrawal.APPROVED: {Withdrawal.PAID, Withdrawal.REJECTED},
        }
        for decision in decisions:
            to, call = act[decision]
            now = self.now()
            try:
                call(now)
            except payouts.IllegalWithdrawalTransition:
                assert to not in legal_after.get(self.status[w], set())
                continue
            assert to in legal_after.get(self.status[w], set())
            event(f"withdrawal: {to}")
            self.status[w] = to
            if to == Withdrawal.REJECTED:
                account, amount = self.withdrawn[w]
                self.add(account, amount, now)

    @rule(hours=st.sampled_from([1, 73, 73, 150]))
    def time_passes(self, hours):
        self.offset += timedelta(hours=hours)

    # -- what must always hold ------------------------------------------------------------

    @invariant()
    def every_fen_paid_is_somewhere(self):
        if not self.ready:
            return
        db.session.commit()
        paid, refunded = db.session.execute(
            select(func.coalesce(func.sum(Order.total), 0), func.coalesce(func.sum(Order.refunded_amount), 0)).where(
                Order.delivered_at.is_not(None)
            )
        ).one()
        assert paid == sum(o["total"] for o in self.sold.values())
        assert refunded == sum(o["refunded"] for o in self.sold.values())

        def entries(kinds) -> int:
            return db.session.scalar(
                select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.kind.in_(kinds))
            )

        fee_income = -entries(shares.FEE_KINDS)
        assert fee_income == self.fees_kept
        # Every order-kind entry (credits, refunds, fees, fees returned) plus what the
        # platform kept is what buyers paid and did not get back ...
        assert entries(shares.ORDER_KINDS) + fee_income == paid - refunded
        # ... and what buyers paid is every share credited plus what went back to them.
        to_buyers = db.session.scalar(select(func.coalesce(func.sum(Refund.amount), 0)))
        assert to_buyers == refunded == -entries(REFUND_KINDS)
        assert entries(CREDIT_KINDS) == paid

    @invariant()
    def the_books_reconcile(self):
        if self.ready:
            db.session.commit()
            assert settlement.reconcile_books() == []

    @invariant()
    def every_balance_is_the_models(self):
        if not self.ready:
            return
        db.session.commit()
        now = self.now()
        for who, account in self.account.items():
            pending, available = self.expected(account.id, now)
            b = balances.balance(account.id, now)
            assert (who, b.pending, b.available, b.frozen) == (who, pending, available, 0)
            assert b.total == sum(a for a, _at in self.entries[account.id])
            mine = {w: amount for w, (a, amount) in self.withdrawn.items() if a == account.id}
            assert b.withdrawn == sum(amount for w, amount in mine.items() if self.status[w] == Withdrawal.PAID)
            assert b.withdrawing == sum(
                amount for w, amount in mine.items() if self.status[w] in (Withdrawal.REQUESTED, Withdrawal.APPROVED)
            )
            assert b.available >= 0 or account.id in self.pushed_below_zero, f"{who} below zero: {b.available}"


def test_random_growth_histories_keep_every_fen_accounted_for(make_app):
    run_machine(BooksMachine, make_app(), max_examples=25, step_count=20)
