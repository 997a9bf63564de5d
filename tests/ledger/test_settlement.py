"""Settlement in the operator console: the withdrawal queue (approve, mark paid with a
reference, reject with a reason), the platform's fee ledger, the reconciliation of orders
with ledger and payments, and the daily settlement check."""

import json
import re
from datetime import timedelta

import pytest
from sqlalchemy import delete, func, select, update

from faka.core import tasks
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger import balances, payouts, settlement
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.orders.models import Order
from faka.payments import refunds
from faka.payments.models import PaymentNotice, Refund
from faka.platform.models import AuditEvent
from tests.conftest import csrf_from, login, reload, run_worker, with_totp

ALIPAY_NUMBER = "13800138000"


# -- helpers ----------------------------------------------------------------------------


@pytest.fixture
def console(app, operator):
    client = app.test_client()
    login(client, operator)
    return client


@pytest.fixture
def merchant_client(app, merchant):
    with_totp(merchant.user)
    client = app.test_client()
    login(client, merchant.user)
    return client


def sell(place, pay, product, quantity: int = 1) -> Order:
    order = place(product, quantity)
    assert pay(order).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


def mature(merchant_id: int) -> None:
    """Let the settlement hold of the merchant's sales so far pass."""
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.merchant_id == merchant_id)
        .values(available_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()


@pytest.fixture
def withdrawal(merchant, product, place, pay) -> Withdrawal:
    """A requested withdrawal of 8.00 out of the 9.70 left of a settled 10.00 sale."""
    sell(place, pay, product)
    mature(merchant.id)
    with_totp(merchant.user)
    account = payouts.add_payout_account(merchant.id, PayoutAccount.ALIPAY, "张三", ALIPAY_NUMBER)
    return payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 800)


def money_page(client) -> str:
    page = client.get("/merchant/money?lang=en")
    assert page.status_code == 200
    return page.text


def shown(html: str, label: str) -> str:
    match = re.search(rf"<dt>{re.escape(label)}</dt><dd[^>]*>([^<]+)</dd>", html)
    assert match, f"{label} not on the page"
    return match.group(1)


def post(console, url: str, **data):
    token = csrf_from(console.get("/operator/withdrawals").text)
    return console.post(url, data={"csrf_token": token, **data})


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# -- the withdrawal queue ---------------------------------------------------------------


def test_queue_lists_requested_withdrawal_with_masked_account(console, withdrawal, merchant):
    page = console.get("/operator/withdrawals")
    assert page.status_code == 200
    assert merchant.name in page.text
    assert "¥8.00" in page.text
    assert "…8000" in page.text
    assert ALIPAY_NUMBER not in page.text


def test_revealing_the_account_number_is_audited(console, withdrawal, operator):
    page = post(console, f"/operator/withdrawals/{withdrawal.id}/reveal")
    assert page.status_code == 200
    assert ALIPAY_NUMBER in page.text
    assert (
        count(
            AuditEvent,
            AuditEvent.action == settlement.REVEAL_ACTION,
            AuditEvent.actor_id == operator.id,
            AuditEvent.target == f"withdrawal:{withdrawal.id}",
        )
        == 1
    )


def test_approved_then_paid_withdrawal_shows_withdrawn_to_merchant(console, merchant_client, withdrawal, operator):
    assert shown(money_page(merchant_client), "Being withdrawn") == "¥8.00"
    answer = post(console, f"/operator/withdrawals/{withdrawal.id}/approve")
    assert answer.status_code == 303
    assert reload(withdrawal).status == Withdrawal.APPROVED
    answer = post(console, f"/operator/withdrawals/{withdrawal.id}/paid", reference="ALI-2026-0042")
    assert answer.status_code == 303
    paid = reload(withdrawal)
    assert (paid.status, paid.reference) == (Withdrawal.PAID, "ALI-2026-0042")
    html = money_page(merchant_client)
    assert shown(html, "Withdrawn") == "¥8.00"
    assert shown(html, "Available") == "¥1.70"
    assert count(AuditEvent, AuditEvent.action == "withdrawal.paid", AuditEvent.actor_id == operator.id) == 1
    assert "ALI-2026-0042" in console.get("/operator/withdrawals?status=paid").text


def test_rejected_withdrawal_restores_balance_and_emails_reason(
    app, smtp, console, merchant_client, withdrawal, merchant
):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    assert shown(money_page(merchant_client), "Available") == "¥1.70"
    answer = post(console, f"/operator/withdrawals/{withdrawal.id}/reject", reason="Account holder name differs")
    assert answer.status_code == 303
    assert reload(withdrawal).status == Withdrawal.REJECTED
    html = money_page(merchant_client)
    assert shown(html, "Available") == "¥9.70"
    assert shown(html, "Being withdrawn") == "¥0.00"
    mails = [m for m in smtp.messages if m["To"] == merchant.user.email]
    assert len(mails) == 1
    assert "Account holder name differs" in mails[0].get_body(("plain",)).get_content()


@pytest.mark.parametrize("action, field", [("paid", "reference"), ("reject", "reason")])
def test_decision_without_reference_or_reason_is_refused(console, operator, withdrawal, action, field):
    if action == "paid":
        payouts.approve_withdrawal(withdrawal.id, operator.id)
    before = reload(withdrawal).status
    answer = post(console, f"/operator/withdrawals/{withdrawal.id}/{action}", **{field: "   "})
    assert answer.status_code == 400
    assert 'role="alert"' in answer.text
    after = reload(withdrawal)
    assert (after.status, after.reference, after.reason) == (before, None, None)
    assert count(LedgerEntry, LedgerEntry.withdrawal_id == withdrawal.id) == 1


def test_queue_puts_requested_before_approved(operator, merchant, withdrawal):
    account = payouts.payout_accounts(merchant.id)[0]
    second = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 100)
    payouts.approve_withdrawal(withdrawal.id, operator.id)
    rows, total = settlement.withdrawal_queue()
    assert total == 2
    assert [r.withdrawal.id for r in rows] == [second.id, withdrawal.id]
    assert [r.withdrawal.id for r in settlement.withdrawal_queue(Withdrawal.APPROVED)[0]] == [withdrawal.id]


# -- the platform ledger ----------------------------------------------------------------


def test_platform_ledger_shows_fees_minus_returned_fees(console, merchant, make_product, place, pay):
    product = make_product(keys=5, price=2000)
    sell(place, pay, product)
    refunded = sell(place, pay, product)
    sell(place, pay, product)
    assert refunds.refund_order(refunded.id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))
    book = settlement.platform_ledger()
    assert (book.fees, book.returned, book.earned) == (180, 60, 120)  # 3 % of three 20.00 sales, one returned
    assert sum(d.fees for d in book.daily) == 120
    page = console.get("/operator/ledger")
    assert page.status_code == 200
    assert re.search(r'id="fees-earned">¥1.20<', page.text)
    assert refunded.number in page.text
    tomorrow = (utcnow() + timedelta(days=2)).date().isoformat()
    assert re.search(r'id="fees-earned">¥0.00<', console.get(f"/operator/ledger?since={tomorrow}").text)


# -- reconciliation ---------------------------------------------------------------------


@pytest.fixture
def shop(operator, merchant, make_product, place, pay, withdrawal):
    """Sales, a refund, a withdrawal paid and one rejected: books that balance."""
    product = make_product(keys=5)
    orders = [sell(place, pay, product) for _ in range(3)]
    assert refunds.refund_order(orders[1].id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))
    operator_id = operator.id
    payouts.approve_withdrawal(withdrawal.id, operator_id)
    payouts.mark_withdrawal_paid(withdrawal.id, operator_id, reference="REF-1")
    mature(merchant.id)
    account = payouts.payout_accounts(merchant.id)[0]
    rejected = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 100)
    payouts.reject_withdrawal(rejected.id, operator_id, "test")
    return orders


def test_clean_shop_books_balance(console, shop):
    assert settlement.reconcile_books() == []
    page = console.get("/operator/reconciliation")
    assert page.status_code == 200
    assert 'id="books-balance"' in page.text


def test_tampered_sale_amount_is_the_one_mismatch(console, shop):
    order = shop[0]
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.SALE)
        .values(amount=order.total + 500)
    )
    db.session.commit()
    assert settlement.reconcile_books() == [
        settlement.Mismatch(settlement.SALE_WRONG, order.number, order.total, order.total + 500)
    ]
    page = console.get("/operator/reconciliation").text
    rows = re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', page, re.S)
    assert len(rows) == 1
    assert rows[0][0] == settlement.SALE_WRONG
    assert order.number in rows[0][1] and "¥10.00" in rows[0][1] and "¥15.00" in rows[0][1]


def test_deleted_payment_notice_is_the_one_mismatch(console, shop):
    order = shop[2]
    db.session.execute(delete(PaymentNotice).where(PaymentNotice.order_id == order.id))
    db.session.commit()
    page = console.get("/operator/reconciliation").text
    rows = re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', page, re.S)
    assert [(kind, order.number in cells) for kind, cells in rows] == [(settlement.PAYMENT_MISSING, True)]


def test_order_paid_twice_balances_once_its_second_payment_is_returned(console, shop, pay):
    order = shop[0]
    pay(order)  # the buyer paid again; the sandbox returns it at once
    assert settlement.reconcile_books() == []
    refund = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    db.session.execute(update(Refund).where(Refund.id == refund.id).values(status=Refund.MANUAL))
    db.session.commit()
    rows = re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', console.get("/operator/reconciliation").text, re.S)
    assert [(kind, order.number in cells) for kind, cells in rows] == [(settlement.EXTRA_PAYMENT_NOT_RETURNED, True)]
    db.session.execute(delete(Refund).where(Refund.id == refund.id))  # as if it had never been refunded
    db.session.commit()
    assert settlement.reconcile_books() == [
        settlement.Mismatch(settlement.EXTRA_PAYMENT_NOT_RETURNED, order.number, order.total, None)
    ]


def test_a_second_payment_does_not_stand_in_for_a_missing_first_one(shop, pay):
    order = shop[0]
    pay(order)
    db.session.execute(delete(PaymentNotice).where(PaymentNotice.order_id == order.id, PaymentNotice.outcome == "paid"))
    db.session.commit()
    assert [m.kind for m in settlement.reconcile_books()] == [settlement.PAYMENT_MISSING]


def test_tampered_withdrawal_entry_is_found(shop, withdrawal):
    db.session.execute(update(LedgerEntry).where(LedgerEntry.withdrawal_id == withdrawal.id).values(amount=-1))
    db.session.commit()
    assert settlement.reconcile_books() == [
        settlement.Mismatch(settlement.WITHDRAWAL_WRONG, f"withdrawal #{withdrawal.id}", -800, -1)
    ]


def test_reconciliation_runs_in_constant_queries(app, shop, make_product, place, pay):
    from sqlalchemy import event

    def queries() -> int:
        statements = []

        def listen(*args):
            statements.append(args)

        event.listen(db.engine, "before_cursor_execute", listen)
        try:
            db.session.commit()
            settlement.reconcile_books()
        finally:
            event.remove(db.engine, "before_cursor_execute", listen)
        return len(statements)

    few = queries()
    product = make_product(keys=5)
    for _ in range(4):
        sell(place, pay, product)
    assert queries() == few


def mismatch_kinds(console) -> list[str]:
    return re.findall(r'<tr data-kind="([a-z_]+)">', console.get("/operator/reconciliation").text)


def test_a_sale_after_the_last_check_is_checked_on_the_next_view(console, shop, make_product, place, pay):
    assert mismatch_kinds(console) == []  # the first view checks everything and keeps the result
    order = sell(place, pay, make_product(keys=1))
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.FEE)
        .values(amount=1)
    )
    db.session.commit()
    page = console.get("/operator/reconciliation").text
    rows = re.findall(r'<tr data-kind="([a-z_]+)">(.*?)</tr>', page, re.S)
    assert [(kind, order.number in cells, "¥0.00" in cells) for kind, cells in rows] == [
        (settlement.FEE_WRONG, True, True)
    ]
    assert 'id="books-checked"' in page


def test_an_entry_edited_by_hand_shows_once_everything_is_checked_again(console, shop, monkeypatch):
    monkeypatch.setattr(settlement, "_OVERLAP", 0)  # a refresh looks at new rows only
    assert mismatch_kinds(console) == []
    order = shop[0]
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.SALE)
        .values(amount=order.total + 500)
    )
    db.session.commit()
    assert mismatch_kinds(console) == []  # no new row announces the edit: the kept result stands
    token = csrf_from(console.get("/operator/reconciliation").text)
    answer = console.post("/operator/reconciliation/check", data={"csrf_token": token})
    assert answer.status_code == 303
    assert mismatch_kinds(console) == [settlement.SALE_WRONG]


def test_checking_everything_needs_the_csrf_token(console, shop):
    assert console.post("/operator/reconciliation/check").status_code == 400


def test_the_kept_result_brought_up_to_date_is_what_checking_everything_finds(
    shop, merchant, make_product, place, pay, withdrawal
):
    first = settlement.refresh_books_check()
    product = make_product(keys=6)
    unpaid, underpaid, twice, refunded, ok = (sell(place, pay, product) for _ in range(5))
    db.session.execute(delete(PaymentNotice).where(PaymentNotice.order_id == underpaid.id))
    db.session.execute(update(Order).where(Order.id == unpaid.id).values(status=Order.EXPIRED))
    pay(twice)  # paid twice: the second payment is returned at once...
    db.session.execute(update(Refund).where(Refund.order_id == twice.id).values(status=Refund.MANUAL))  # ...or not
    assert refunds.refund_order(refunded.id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id == refunded.id, LedgerEntry.kind == LedgerEntry.FEE_RETURN)
        .values(amount=0)
    )
    db.session.add(
        LedgerEntry(merchant_id=merchant.id, kind=LedgerEntry.SALE, amount=100, available_at=utcnow(), order_id=None)
    )
    account = payouts.payout_accounts(merchant.id)[0]
    rejected = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 100)
    db.session.execute(update(LedgerEntry).where(LedgerEntry.withdrawal_id == rejected.id).values(amount=-7))
    db.session.commit()

    report = settlement.books_report()
    assert report.mismatches == settlement.reconcile_books()
    assert {m.kind for m in report.mismatches} == {
        settlement.PAYMENT_MISSING,
        settlement.ENTRIES_ON_UNCREDITED_ORDER,
        settlement.PAYMENT_ON_UNPAID_ORDER,
        settlement.EXTRA_PAYMENT_NOT_RETURNED,
        settlement.FEE_RETURN_WRONG,
        settlement.ENTRY_WITHOUT_OWNER,
        settlement.WITHDRAWAL_WRONG,
    }
    assert report.full_checked_at == first.full_checked_at  # brought up to date, not checked in full
    db.session.execute(update(Refund).where(Refund.order_id == twice.id).values(status=Refund.PAID))
    db.session.commit()
    assert settlement.books_report().mismatches == settlement.reconcile_books()
    assert settlement.EXTRA_PAYMENT_NOT_RETURNED not in {m.kind for m in settlement.books_report().mismatches}


# -- the daily settlement check ---------------------------------------------------------


def test_daily_job_records_balances_and_mismatches_once_a_day(shop, merchant):
    tasks.enqueue("ledger.tasks.settle_balances")
    tasks.enqueue("ledger.tasks.settle_balances")
    events = db.session.execute(select(AuditEvent).where(AuditEvent.action == settlement.DAILY_ACTION)).scalars().all()
    assert len(events) == 1
    totals = json.loads(events[0].after)
    balance = balances.balance(merchant.id)
    assert totals["merchants"] == 1
    assert (totals["pending"], totals["available"], totals["mismatches"]) == (balance.pending, balance.available, 0)
    assert events[0].detail == "books balance"


def test_daily_job_runs_on_a_real_worker(rq_app):
    tasks.enqueue("ledger.tasks.settle_balances", job_id="settle-test")
    assert count(AuditEvent, AuditEvent.action == settlement.DAILY_ACTION) == 0  # queued, not run
    run_worker(rq_app)
    assert count(AuditEvent, AuditEvent.action == settlement.DAILY_ACTION) == 1
