"""A merchant's money: balances from the ledger, payout accounts, withdrawals an operator
decides, and a property test that the books always reconcile with the orders (refunds among
its random steps). Refunds themselves are tested in tests/payments/test_refunds.py; the
helpers here (new_merchant, new_product, sell, settled, alipay, count, the seller fixture)
are shared with it and with other test modules."""

import secrets
from contextlib import contextmanager
from datetime import datetime, timedelta
from functools import cache

import pyotp
import pytest
from flask import current_app
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select

from conftest import TEST_DATABASE, _empty_database, reload, run_together, signed_notify
from faka.accounts.models import ROLE_MERCHANT, ROLE_OPERATOR, Merchant, User
from faka.catalog.models import DELIVERY_AUTO, Category, Product
from faka.catalog.variants import product_with_one_variant
from faka.core import clock
from faka.core.crypto import vault
from faka.core.errors import NotFound
from faka.core.passwords import hash_login_password
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.ledger import balances, payouts
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.messaging.models import OutboxEmail
from faka.orders import checkout
from faka.orders.delivery import SETTLEMENT_HOLD
from faka.orders.models import Order
from faka.payments import notify, refunds
from faka.payments.gateways import ensure_sandbox
from faka.platform.models import AuditEvent

USDT_ADDRESS = "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t"  # a real TRC20 address (the USDT contract)
THREAD_TIMEOUT = 60


# -- helpers ----------------------------------------------------------------------------


@cache
def password_hash() -> str:
    # Hashed once: argon2 is slow on purpose, and these tests never log in.
    return hash_login_password("merchant-pass-1")


def new_user(role: str) -> User:
    user = User(email=f"{role}{secrets.token_hex(4)}@shop.test", password_hash=password_hash(), role=role)
    db.session.add(user)
    db.session.flush()
    return user


def new_merchant(fee_rate_bp: int = 300, totp: bool = True) -> Merchant:
    user = new_user(ROLE_MERCHANT)
    if totp:
        user.totp_secret = vault().encrypt(pyotp.random_base32())
    merchant = Merchant(user_id=user.id, name="Money Shop", status=Merchant.APPROVED, fee_rate_bp=fee_rate_bp)
    db.session.add(merchant)
    db.session.commit()
    return merchant


def new_operator() -> User:
    user = new_user(ROLE_OPERATOR)
    db.session.commit()
    return user


def new_product(merchant: Merchant, keys: int = 20, price: int = 1000) -> Product:
    category = db.session.execute(select(Category)).scalars().first()
    if category is None:
        category = Category(name="游戏点卡", name_en="Game cards")
        db.session.add(category)
        db.session.commit()
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=merchant.id,
        category_id=category.id,
        price=price,
        delivery_type=DELIVERY_AUTO,
        title="Money product",
        max_per_order=5,
    )
    db.session.add(product)
    db.session.commit()
    import_keys(product.variants[0], "\n".join(f"MONEY-{product.id}-{i}-{secrets.token_hex(4)}" for i in range(keys)))
    return product


def sell(product: Product, quantity: int = 1) -> Order:
    """Place and pay an order through the real services; sync jobs deliver it at once."""
    with current_app.test_request_context():
        order = checkout.place_order(product.slug, quantity, None, None)
        notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


def settled() -> datetime:
    """A moment after every sale made so far has left its hold."""
    return utcnow() + SETTLEMENT_HOLD + timedelta(minutes=1)


def alipay(merchant: Merchant) -> PayoutAccount:
    return payouts.add_payout_account(merchant.id, PayoutAccount.ALIPAY, "张三", "13800138000")


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def ledger_sum(merchant_id: int) -> int:
    db.session.commit()
    return db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(LedgerEntry.merchant_id == merchant_id)
    )


@pytest.fixture
def seller(app) -> Merchant:
    return new_merchant()


@pytest.fixture
def operator(app):
    return new_operator()


# -- balances ---------------------------------------------------------------------------


def test_sale_is_pending_during_the_hold_then_available(seller):
    order = sell(new_product(seller, price=1000), quantity=2)
    fee = 2000 * 300 // 10000
    during = balances.balance(seller.id, order.delivered_at + SETTLEMENT_HOLD - timedelta(seconds=1))
    after = balances.balance(seller.id, order.delivered_at + SETTLEMENT_HOLD)
    assert (during.pending, during.available, during.total) == (2000 - fee, 0, 2000 - fee)
    assert (after.pending, after.available, after.total) == (0, 2000 - fee, 2000 - fee)
    assert after.frozen == after.withdrawn == after.withdrawing == 0
    assert balances.frozen_order_ids(seller.id) == set()


def test_fee_rate_is_set_per_merchant_in_basis_points(app):
    cheap, dear = new_merchant(fee_rate_bp=0), new_merchant(fee_rate_bp=1250)
    sell(new_product(cheap, price=999))
    sell(new_product(dear, price=999))
    assert balances.balance(cheap.id, settled()).available == 999
    assert balances.balance(dear.id, settled()).available == 999 - 999 * 1250 // 10000
    fees = dict(
        db.session.execute(
            select(LedgerEntry.merchant_id, LedgerEntry.amount).where(LedgerEntry.kind == LedgerEntry.FEE)
        ).all()
    )
    assert fees == {cheap.id: 0, dear.id: -124}


def test_balance_counts_only_this_merchants_entries(app):
    mine, theirs = new_merchant(), new_merchant()
    sell(new_product(mine))
    sell(new_product(theirs), quantity=3)
    assert balances.balance(mine.id, settled()).available == 970
    assert balances.balance(theirs.id, settled()).available == 2910


def test_a_complaint_in_progress_does_not_give_back_money_already_withdrawn(seller):
    from faka.complaints import workflow
    from faka.complaints.models import Complaint

    account = alipay(seller)
    product = new_product(seller)
    sell(product)
    disputed = sell(product)  # two sales of 970 net each
    now = settled()
    payouts.request_withdrawal(seller.id, seller.user_id, account.id, 970, now=now)
    workflow.open_complaint(disputed.token, Complaint.KEY_INVALID, "The key does not work.", now=now)
    during = balances.balance(seller.id, now)
    assert (during.available, during.frozen, during.withdrawing) == (0, 970, 970)
    with pytest.raises(payouts.InsufficientBalance):
        payouts.request_withdrawal(seller.id, seller.user_id, account.id, 970, now=now)
    # The daily settlement's totals are every account's balances added up.
    other = new_merchant()
    sell(new_product(other), quantity=3)
    everyone = balances.platform_balance(now)
    assert (everyone.available, everyone.frozen, everyone.withdrawing) == (2910, 970, 970)


# -- the ledger list --------------------------------------------------------------------


def test_ledger_filters_by_kind_and_time_and_pages_newest_first(seller):
    other = new_merchant()
    base = utcnow().replace(microsecond=0)
    for i in range(7):
        kind = LedgerEntry.SALE if i % 2 == 0 else LedgerEntry.FEE
        db.session.add(
            LedgerEntry(
                merchant_id=seller.id,
                kind=kind,
                amount=100 + i,
                available_at=base,
                created_at=base + timedelta(hours=i),
            )
        )
    db.session.add(
        LedgerEntry(merchant_id=other.id, kind=LedgerEntry.SALE, amount=5, available_at=base, created_at=base)
    )
    db.session.commit()

    entries, total = balances.ledger(seller.id)
    assert total == 7 and [e.amount for e in entries] == [106, 105, 104, 103, 102, 101, 100]

    sales, total = balances.ledger(seller.id, kind=LedgerEntry.SALE)
    assert total == 4 and [e.amount for e in sales] == [106, 104, 102, 100]

    window, total = balances.ledger(seller.id, since=base + timedelta(hours=2), until=base + timedelta(hours=5))
    assert total == 3 and [e.amount for e in window] == [104, 103, 102]

    pages = [balances.ledger(seller.id, page=p, per_page=3) for p in (1, 2, 3, 4)]
    assert [[e.amount for e in entries] for entries, _ in pages] == [[106, 105, 104], [103, 102, 101], [100], []]
    assert {total for _, total in pages} == {7}

    assert balances.ledger(seller.id, kind="nonsense") == ([], 0)


# -- payout accounts --------------------------------------------------------------------


@pytest.mark.parametrize(
    "kind, account, stored",
    [
        (PayoutAccount.ALIPAY, " Pay.Me@Example.COM ", "pay.me@example.com"),
        (PayoutAccount.ALIPAY, "13800138000", "13800138000"),
        (PayoutAccount.BANK, "6222 0212 3456 7890 123", "6222021234567890123"),
        (PayoutAccount.USDT, USDT_ADDRESS, USDT_ADDRESS),
    ],
    ids=["alipay-email", "alipay-mobile", "bank-with-spaces", "usdt-trc20"],
)
def test_payout_account_is_stored_encrypted_with_a_hint(seller, kind, account, stored):
    saved = payouts.add_payout_account(seller.id, kind, " 张三 ", account)
    row = reload(saved)
    assert (row.kind, row.holder, row.account_hint) == (kind, "张三", stored[-4:])
    assert stored not in row.account_ciphertext
    assert payouts.payout_account_number(row) == stored
    assert [a.id for a in payouts.payout_accounts(seller.id)] == [saved.id]
    assert count(AuditEvent, AuditEvent.action == "payout_account.added") == 1


@pytest.mark.parametrize(
    "kind, holder, account",
    [
        ("paypal", "张三", "me@example.com"),
        (PayoutAccount.ALIPAY, "张三", "not-an-email"),
        (PayoutAccount.ALIPAY, "张三", "1380013800"),  # ten digits
        (PayoutAccount.ALIPAY, "张三", "23800138000"),  # not a mainland mobile prefix
        (PayoutAccount.BANK, "张三", "12345678901"),  # eleven digits
        (PayoutAccount.BANK, "张三", "1" * 31),
        (PayoutAccount.BANK, "张三", "6222-0212-3456-ABCD"),
        (PayoutAccount.USDT, "张三", USDT_ADDRESS[:-1]),  # too short
        (PayoutAccount.USDT, "张三", "A" + USDT_ADDRESS[1:]),  # not a TRON address
        (PayoutAccount.USDT, "张三", USDT_ADDRESS[:-1] + "u"),  # typo: checksum fails
        (PayoutAccount.USDT, "张三", USDT_ADDRESS[:-1] + "0"),  # 0 is not base58
        (PayoutAccount.ALIPAY, "   ", "13800138000"),
        (PayoutAccount.ALIPAY, "x" * 81, "13800138000"),
    ],
)
def test_invalid_payout_account_is_refused_and_changes_nothing(seller, kind, holder, account):
    with pytest.raises(payouts.InvalidPayoutAccount) as refused:
        payouts.add_payout_account(seller.id, kind, holder, account)
    assert str(refused.value.message)
    assert count(PayoutAccount) == 0
    assert count(AuditEvent) == 0


def test_removed_payout_account_is_kept_but_cannot_be_paid_to(seller):
    account = alipay(seller)
    other = new_merchant()
    with pytest.raises(NotFound):
        payouts.remove_payout_account(other.id, account.id)
    payouts.remove_payout_account(seller.id, account.id)
    assert reload(account).deleted_at is not None
    assert payouts.payout_accounts(seller.id) == []
    sell(new_product(seller))
    with pytest.raises(NotFound):
        payouts.request_withdrawal(seller.id, seller.user_id, account.id, 500, now=settled())
    assert count(Withdrawal) == 0


# -- withdrawal requests ----------------------------------------------------------------


def test_withdrawal_of_exactly_the_available_balance_is_allowed(seller):
    account = alipay(seller)
    sell(new_product(seller), quantity=2)  # 2000 - 60 fee
    now = settled()
    withdrawal = payouts.request_withdrawal(seller.id, seller.user_id, account.id, 1940, now=now)
    assert reload(withdrawal).status == Withdrawal.REQUESTED
    after = balances.balance(seller.id, now)
    assert (after.available, after.withdrawing, after.withdrawn, after.total) == (0, 1940, 0, 0)
    entry = db.session.execute(select(LedgerEntry).where(LedgerEntry.withdrawal_id == withdrawal.id)).scalar_one()
    assert (entry.kind, entry.amount) == (LedgerEntry.WITHDRAWAL, -1940)


@pytest.mark.parametrize(
    "amount, error",
    [
        (1941, payouts.InsufficientBalance),
        (99, payouts.InvalidWithdrawalAmount),
        (0, payouts.InvalidWithdrawalAmount),
        (-100, payouts.InvalidWithdrawalAmount),
        (150.0, payouts.InvalidWithdrawalAmount),
    ],
    ids=["more-than-available", "below-minimum", "zero", "negative", "not-whole-fen"],
)
def test_withdrawal_outside_the_limits_is_refused_and_changes_nothing(seller, amount, error):
    account = alipay(seller)
    sell(new_product(seller), quantity=2)
    with pytest.raises(error):
        payouts.request_withdrawal(seller.id, seller.user_id, account.id, amount, now=settled())
    assert count(Withdrawal) == 0 and count(LedgerEntry, LedgerEntry.kind == LedgerEntry.WITHDRAWAL) == 0
    assert balances.balance(seller.id, settled()).available == 1940


def test_pending_money_cannot_be_withdrawn(seller):
    account = alipay(seller)
    sell(new_product(seller))
    with pytest.raises(payouts.InsufficientBalance):
        payouts.request_withdrawal(seller.id, seller.user_id, account.id, 100)
    assert count(Withdrawal) == 0


def test_withdrawal_needs_two_factor_authentication(app):
    merchant = new_merchant(totp=False)
    account = alipay(merchant)
    sell(new_product(merchant))
    with pytest.raises(payouts.TwoFactorRequired):
        payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 500, now=settled())
    assert count(Withdrawal) == 0


def test_withdrawal_to_another_merchants_account_or_by_another_user_is_refused(seller):
    other = new_merchant()
    theirs = alipay(other)
    mine = alipay(seller)
    sell(new_product(seller))
    with pytest.raises(NotFound):
        payouts.request_withdrawal(seller.id, seller.user_id, theirs.id, 500, now=settled())
    with pytest.raises(NotFound):
        payouts.request_withdrawal(seller.id, other.user_id, mine.id, 500, now=settled())
    assert count(Withdrawal) == 0


def test_frozen_merchant_cannot_withdraw(seller):
    account = alipay(seller)
    sell(new_product(seller))
    seller.status = Merchant.FROZEN
    db.session.commit()
    with pytest.raises(payouts.PayoutsStopped):
        payouts.request_withdrawal(seller.id, seller.user_id, account.id, 500, now=settled())
    assert count(Withdrawal) == 0


def test_two_concurrent_withdrawals_of_the_whole_balance_only_one_succeeds(app, seller):
    account = alipay(seller)
    sell(new_product(seller), quantity=3)
    now = settled()
    whole = balances.balance(seller.id, now).available
    assert whole == 2910
    ids = (seller.id, seller.user_id, account.id)
    db.session.commit()

    def withdraw(_i):
        try:
            return payouts.request_withdrawal(*ids, whole, now=now).id
        except payouts.InsufficientBalance:
            return "refused"

    for _round in range(3):  # a race is a matter of luck: run it a few times
        results, errors = run_together(app, 2, withdraw)
        assert errors == []
        succeeded = [r for r in results if r != "refused"]
        assert len(succeeded) <= 1
        if _round == 0:
            assert len(succeeded) == 1 and results.count("refused") == 1
        else:
            assert succeeded == []
    assert count(Withdrawal) == 1
    assert count(LedgerEntry, LedgerEntry.kind == LedgerEntry.WITHDRAWAL) == 1
    assert balances.balance(seller.id, now).available == 0


# -- operator decisions -----------------------------------------------------------------


def test_withdrawal_approved_then_paid_emails_the_merchant_each_step(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        merchant = new_merchant()
        operator = new_operator()
        account = payouts.add_payout_account(merchant.id, PayoutAccount.BANK, "李四", "6222021234567890123")
        sell(new_product(merchant), quantity=2)
        now = settled()
        withdrawal = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 1500, now=now)

        payouts.approve_withdrawal(withdrawal.id, operator.id, now=now)
        assert reload(withdrawal).status == Withdrawal.APPROVED
        payouts.mark_withdrawal_paid(withdrawal.id, operator.id, now=now)
        assert reload(withdrawal).status == Withdrawal.PAID
        assert reload(withdrawal).decided_at is not None

        after = balances.balance(merchant.id, now)
        assert (after.available, after.withdrawn, after.withdrawing) == (440, 1500, 0)
        actions = db.session.execute(
            select(AuditEvent.action, AuditEvent.actor_id)
            .where(AuditEvent.target == f"withdrawal:{withdrawal.id}")
            .order_by(AuditEvent.id)
        ).all()
        assert actions == [
            ("withdrawal.requested", merchant.user_id),
            ("withdrawal.approved", operator.id),
            ("withdrawal.paid", operator.id),
        ]
        assert count(OutboxEmail, OutboxEmail.status == OutboxEmail.SENT) == 3  # the account added, then each step
        merchant_email = merchant.user.email

    assert [m["To"] for m in smtp.messages] == [merchant_email] * 3
    added, approved, paid = (m.get_body(("plain",)).get_content() for m in smtp.messages)
    assert "0123" in added and "6222021234567890123" not in added
    assert "已批准" in smtp.messages[1]["Subject"] and "已打款" in smtp.messages[2]["Subject"]
    assert "¥15.00" in approved and "¥15.00" in paid and "0123" in paid
    assert "6222021234567890123" not in paid  # only the hint, never the full number


def test_rejected_withdrawal_returns_the_money_and_tells_why(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        merchant = new_merchant()
        operator = new_operator()
        account = alipay(merchant)
        sell(new_product(merchant))
        now = settled()
        withdrawal = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 970, now=now)
        assert balances.balance(merchant.id, now).available == 0
        with pytest.raises(payouts.RejectionReasonRequired):
            payouts.reject_withdrawal(withdrawal.id, operator.id, "  ", now=now)
        payouts.reject_withdrawal(withdrawal.id, operator.id, "账户姓名与实名信息不符", now=now)
        row = reload(withdrawal)
        assert (row.status, row.reason) == (Withdrawal.REJECTED, "账户姓名与实名信息不符")
        after = balances.balance(merchant.id, now)
        assert (after.available, after.withdrawn, after.withdrawing) == (970, 0, 0)
        returned = db.session.execute(
            select(LedgerEntry.amount).where(LedgerEntry.kind == LedgerEntry.WITHDRAWAL_RETURN)
        ).scalar_one()
        assert returned == 970
    body = smtp.messages[-1].get_body(("plain",)).get_content()
    assert "已拒绝" in smtp.messages[-1]["Subject"]
    assert "账户姓名与实名信息不符" in body and "¥9.70" in body


@pytest.mark.parametrize(
    "history, illegal",
    [
        ([], "pay"),  # paying needs an approval first
        (["approve"], "approve"),
        (["approve", "pay"], "reject"),
        (["approve", "pay"], "pay"),
        (["reject"], "approve"),
        (["reject"], "reject"),
    ],
)
def test_illegal_withdrawal_transitions_are_refused(seller, operator, history, illegal):
    decide = {
        "approve": lambda w: payouts.approve_withdrawal(w, operator.id),
        "pay": lambda w: payouts.mark_withdrawal_paid(w, operator.id),
        "reject": lambda w: payouts.reject_withdrawal(w, operator.id, "no"),
    }
    account = alipay(seller)
    sell(new_product(seller))
    withdrawal = payouts.request_withdrawal(seller.id, seller.user_id, account.id, 900, now=settled())
    for step in history:
        decide[step](withdrawal.id)
    before = (reload(withdrawal).status, count(LedgerEntry), count(OutboxEmail), count(AuditEvent))
    with pytest.raises(payouts.IllegalWithdrawalTransition):
        decide[illegal](withdrawal.id)
    assert (reload(withdrawal).status, count(LedgerEntry), count(OutboxEmail), count(AuditEvent)) == before


def test_only_an_operator_decides_withdrawals(seller):
    account = alipay(seller)
    sell(new_product(seller))
    withdrawal = payouts.request_withdrawal(seller.id, seller.user_id, account.id, 900, now=settled())
    with pytest.raises(NotFound):
        payouts.approve_withdrawal(withdrawal.id, seller.user_id)
    assert reload(withdrawal).status == Withdrawal.REQUESTED


def test_frozen_merchants_withdrawal_is_not_paid_but_can_be_rejected(seller, operator):
    account = alipay(seller)
    sell(new_product(seller))
    withdrawal = payouts.request_withdrawal(seller.id, seller.user_id, account.id, 900, now=settled())
    payouts.approve_withdrawal(withdrawal.id, operator.id)
    seller.status = Merchant.FROZEN
    db.session.commit()
    with pytest.raises(payouts.PayoutsStopped):
        payouts.mark_withdrawal_paid(withdrawal.id, operator.id)
    payouts.reject_withdrawal(withdrawal.id, operator.id, "商户已冻结")
    assert reload(withdrawal).status == Withdrawal.REJECTED


# -- the books always reconcile ---------------------------------------------------------

PRICE = 1000
FEE_BP = 250
KEYS = 40
MIN = payouts.MIN_WITHDRAWAL


@contextmanager
def clock_at(moment: datetime):
    """Services read the time through faka.core.clock; let a sale happen at a chosen
    moment, so sales made after time advanced start their own hold."""
    real = clock.now
    clock.now = lambda: moment
    try:
        yield
    finally:
        clock.now = real


class AppMachine(RuleBasedStateMachine):
    """A state machine whose steps run in the context of `app` (given by run_machine)."""

    app = None

    def __init__(self):
        super().__init__()
        self.ctx = self.app.app_context()
        self.ctx.push()

    def teardown(self):
        try:
            db.session.remove()
        finally:
            self.ctx.pop()


def histories(max_examples: int) -> int:
    """How many random histories a state machine runs: `max_examples` on SQLite, a third
    on PostgreSQL. Each history runs every rule's statements, so a few dozen steps run each
    of them on PostgreSQL many times over; the search through histories for one that breaks
    the books runs the same code on either database, and SQLite's half does it in full."""
    return max_examples if TEST_DATABASE == "sqlite" else max(5, max_examples // 3)


def run_machine(machine: type[AppMachine], app, max_examples: int, step_count: int) -> None:
    """Run `histories(max_examples)` random histories of up to `step_count` steps in `app`."""
    run_state_machine_as_test(
        type(f"{machine.__name__}Run", (machine,), {"app": app}),
        settings=settings(
            max_examples=histories(max_examples),
            stateful_step_count=step_count,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )


class MoneyMachine(AppMachine):
    """Random sales, refunds, withdrawals and decisions at moving times, against a model
    of what the merchant is owed."""

    orders = Bundle("orders")
    withdrawals = Bundle("withdrawals")

    def __init__(self):
        super().__init__()
        self.merchant_id = None
        self.offset = timedelta(0)
        self.net: dict[int, int] = {}  # delivered order -> total - fee
        self.settles_at: dict[int, datetime] = {}  # delivered order -> end of its hold
        self.refunded: set[int] = set()
        self.withdrawn: dict[int, int] = {}  # withdrawal -> amount
        self.status: dict[int, str] = {}  # withdrawal -> status

    def now(self):
        return utcnow() + self.offset

    @initialize(target=orders, opening_sales=st.lists(st.integers(1, 3), max_size=3))
    def fresh_merchant(self, opening_sales):
        _empty_database()
        ensure_sandbox()
        merchant = new_merchant(fee_rate_bp=FEE_BP)
        self.merchant_id, self.user_id = merchant.id, merchant.user_id
        self.operator_id = new_operator().id
        self.product = new_product(merchant, keys=KEYS, price=PRICE)
        self.account_id = alipay(merchant).id
        self.keys_left = KEYS
        # A few sales whose hold then passes: money is available from the start, so
        # withdrawals happen in most runs.
        opened = [self.sale(quantity) for quantity in opening_sales]
        self.offset += SETTLEMENT_HOLD
        return multiple(*opened)

    # -- the model ----------------------------------------------------------------------

    def expected(self, now) -> tuple[int, int]:
        """(pending, available) at `now`."""
        live = [o for o in self.net if o not in self.refunded]
        pending = sum(self.net[o] for o in live if self.settles_at[o] > now)
        settled_ = sum(self.net[o] for o in live if self.settles_at[o] <= now)
        out = sum(a for w, a in self.withdrawn.items() if self.status[w] != Withdrawal.REJECTED)
        return pending, settled_ - out

    # -- steps --------------------------------------------------------------------------

    @rule(target=orders, quantity=st.integers(1, 3))
    def sale(self, quantity):
        if self.keys_left < quantity or (quantity > 1 and 2 * quantity > self.keys_left):
            return multiple()  # not in stock, or more than an unpaid order may hold (stock.HOLD_SHARE)
        with clock_at(self.now()):  # the sale happens at the machine's time, not the wall clock's
            order = sell(self.product, quantity)
        self.keys_left -= quantity
        total = PRICE * quantity
        self.net[order.id] = total - total * FEE_BP // 10000
        self.settles_at[order.id] = order.delivered_at + SETTLEMENT_HOLD
        return order.id

    @rule(order_id=orders)
    def refund(self, order_id):
        now = self.now()
        _, available = self.expected(now)
        covered = order_id in self.refunded or self.settles_at[order_id] > now or self.net[order_id] <= available
        try:
            refunded = refunds.refund_order(
                order_id, self.merchant_id, self.user_id, allowed_statuses=(Order.DELIVERED,), now=now
            )
        except refunds.RefundNotCovered:
            assert not covered
            event("refund: not covered by the available balance")
            return
        assert covered
        assert refunded == (order_id not in self.refunded)
        event("refund: " + ("done" if refunded else "repeated, no change"))
        self.refunded.add(order_id)

    @rule(target=withdrawals, how=st.sampled_from(["all", "all", "over", "some"]), some=st.integers(MIN, 5000))
    def request(self, how, some):
        now = self.now()
        _, available = self.expected(now)
        amount = {"all": max(available, MIN), "over": max(available + 1, MIN), "some": some}[how]
        try:
            withdrawal = payouts.request_withdrawal(self.merchant_id, self.user_id, self.account_id, amount, now=now)
        except payouts.InsufficientBalance:
            assert amount > available, f"refused {amount} with {available} available"
            event("withdrawal: refused, more than available")
            return multiple()
        assert amount <= available, f"allowed {amount} with only {available} available"
        event("withdrawal: requested")
        self.withdrawn[withdrawal.id] = amount
        self.status[withdrawal.id] = Withdrawal.REQUESTED
        return withdrawal.id

    @rule(
        withdrawal_id=withdrawals,
        decisions=st.lists(st.sampled_from(["approve", "pay", "reject"]), min_size=1, max_size=2),
    )
    def decide(self, withdrawal_id, decisions):
        """One or two operator decisions in a row, legal or not."""
        act = {
            "approve": (Withdrawal.APPROVED, lambda now: payouts.approve_withdrawal(w, op, now=now)),
            "pay": (Withdrawal.PAID, lambda now: payouts.mark_withdrawal_paid(w, op, now=now)),
            "reject": (Withdrawal.REJECTED, lambda now: payouts.reject_withdrawal(w, op, "随机拒绝", now=now)),
        }
        w, op = withdrawal_id, self.operator_id
        for decision in decisions:
            to, call = act[decision]
            legal = {
                Withdrawal.REQUESTED: {Withdrawal.APPROVED, Withdrawal.REJECTED},
                Withdrawal.APPROVED: {Withdrawal.PAID, Withdrawal.REJECTED},
            }.get(self.status[withdrawal_id], set())
            try:
                call(self.now())
            except payouts.IllegalWithdrawalTransition:
                assert to not in legal
                event("withdrawal: illegal decision refused")
                continue
            assert to in legal
            event(f"withdrawal: {to}")
            self.status[withdrawal_id] = to

    @rule(hours=st.sampled_from([1, 73, 73, 150]))
    def time_passes(self, hours):
        self.offset += timedelta(hours=hours)

    # -- what must always hold ----------------------------------------------------------

    @invariant()
    def books_reconcile_with_orders_and_withdrawals(self):
        if self.merchant_id is None:
            return
        db.session.commit()
        delivered = dict(
            db.session.execute(
                select(Order.id, Order.total).where(
                    Order.merchant_id == self.merchant_id, Order.status == Order.DELIVERED
                )
            ).all()
        )
        owed = sum(total - total * FEE_BP // 10000 for total in delivered.values())
        out = sum(a for w, a in self.withdrawn.items() if self.status[w] != Withdrawal.REJECTED)
        assert ledger_sum(self.merchant_id) == owed - out

        now = self.now()
        pending, available = self.expected(now)
        b = balances.balance(self.merchant_id, now)
        assert (b.pending, b.available, b.frozen) == (pending, available, 0)
        assert b.available >= 0
        assert b.total == ledger_sum(self.merchant_id)
        assert b.withdrawn == sum(a for w, a in self.withdrawn.items() if self.status[w] == Withdrawal.PAID)
        assert b.withdrawing == sum(
            a for w, a in self.withdrawn.items() if self.status[w] in (Withdrawal.REQUESTED, Withdrawal.APPROVED)
        )


def test_random_money_histories_always_reconcile(make_app):
    run_machine(MoneyMachine, make_app(), max_examples=40, step_count=40)
