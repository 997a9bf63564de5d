"""Settlement: the withdrawal queue, the platform's fee income, and the checks that the
books agree with the orders and the payments.

Balances mature by time, not by a moving job: a merchant's ledger entry counts as
available once its `available_at` has passed (see faka.ledger.balances), unless its
order has an open complaint (`balances.frozen_order_ids`). So there is nothing to move
from pending to available, and nothing a missed run could leave behind. The daily job
(`settle()`, run by "ledger.tasks.settle_balances") is instead the day's settlement *check*: it
sums every merchant's pending / available / frozen balance at that moment, brings the
stored books check up to date (`refresh_books_check()`, see "the stored check" below), and
writes one "settlement.daily" audit event with the totals and the number of mismatches,
at most once per UTC day, so running it again that day (or every hour) changes nothing
but the stored check; the day's event also starts a full check of the books.
"""

from dataclasses import dataclass, field
from datetime import date, datetime
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, delete, func, or_, select, text, true

from faka.accounts.models import Merchant
from faka.core import clock, tasks
from faka.core.db import is_postgresql, write_transaction
from faka.core.errors import NotFound
from faka.core.money import format_money
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.growth.models import Promoter, SubStore
from faka.ledger import balances, payouts, shares
from faka.ledger.models import BooksCheck, BooksMismatch, LedgerEntry, PayoutAccount, Withdrawal
from faka.orders.models import Order
from faka.payments.models import PaymentNotice, Refund
from faka.platform import audit
from faka.platform.analytics import DEFAULT_TIMEZONE, _day_index, day_boundaries
from faka.platform.models import AuditEvent

PER_PAGE = 50
LEDGER_DAYS = 30
DAILY_ACTION = "settlement.daily"
_SETTLE_LOCK = 7313  # the advisory lock that runs the daily check one at a time on PostgreSQL
REVEAL_ACTION = "withdrawal.account_revealed"

QUEUE_OPEN = "open"  # requested and approved: what still needs the operator
QUEUE_FILTERS = (QUEUE_OPEN, Withdrawal.REQUESTED, Withdrawal.APPROVED, Withdrawal.PAID, Withdrawal.REJECTED, "all")

FEE_KINDS = shares.FEE_KINDS
ORDER_KINDS = shares.ORDER_KINDS
FEE_TAKEN_KINDS = tuple(party.fee for party in shares.PARTIES)
WITHDRAWAL_KINDS = (LedgerEntry.WITHDRAWAL, LedgerEntry.WITHDRAWAL_RETURN)
REFUNDED_STATUSES = (Order.REFUNDED, Order.PARTIALLY_REFUNDED)
CREDITED_STATUSES = (Order.DELIVERED, *REFUNDED_STATUSES)  # the only orders with ledger entries
PAID_STATUSES = (Order.PAID, Order.DELIVERED, *REFUNDED_STATUSES, Order.PAID_UNFULFILLED)

# -- mismatch kinds ---------------------------------------------------------------------

SALE_WRONG = "sale"
FEE_WRONG = "fee"
REFUND_WRONG = "refund"
FEE_RETURN_WRONG = "fee_return"
ENTRIES_ON_UNCREDITED_ORDER = "entries_on_uncredited_order"
PAYMENT_MISSING = "payment_missing"
PAYMENT_ON_UNPAID_ORDER = "payment_on_unpaid_order"
WITHDRAWAL_WRONG = "withdrawal"
WITHDRAWAL_RETURN_WRONG = "withdrawal_return"
ENTRY_WITHOUT_OWNER = "entry_without_owner"
EXTRA_PAYMENT_NOT_RETURNED = "extra_payment_not_returned"
RESALE_WRONG = "resale"
COMMISSION_WRONG = "commission"
SHARE_FEE_WRONG = "share_fee"
SHARE_REFUND_WRONG = "share_refund"
SHARE_FEE_RETURN_WRONG = "share_fee_return"
ENTRY_OF_WRONG_ACCOUNT = "entry_of_wrong_account"
UNDELIVERED_PART_REFUND = "undelivered_part_refund"

MISMATCH_LABELS = {
    SALE_WRONG: _l("Sale entry is missing or differs from the order total"),
    FEE_WRONG: _l("Fee entry is missing or outside 0 to the order total"),
    REFUND_WRONG: _l("Refund entry is missing or differs from the amount refunded"),
    FEE_RETURN_WRONG: _l("Returned fee differs from the share of the fee refunded"),
    ENTRIES_ON_UNCREDITED_ORDER: _l("Ledger entries on an order that was neither delivered nor refunded"),
    PAYMENT_MISSING: _l("No payment of the order total was received"),
    PAYMENT_ON_UNPAID_ORDER: _l("Payment received for an order that is not paid"),
    WITHDRAWAL_WRONG: _l("Withdrawal entry is missing or differs from the withdrawal"),
    WITHDRAWAL_RETURN_WRONG: _l("Returned withdrawal does not match its rejection"),
    ENTRY_WITHOUT_OWNER: _l("Ledger entry belongs to no order or withdrawal"),
    EXTRA_PAYMENT_NOT_RETURNED: _l("A second payment of this order has not been returned to the buyer"),
    RESALE_WRONG: _l("Reseller's margin entry is missing or differs from the sub-store price less the floor"),
    COMMISSION_WRONG: _l("Promoter's commission entry is missing or differs from the commission of the order"),
    SHARE_FEE_WRONG: _l("Fee on a reseller's or promoter's share is missing or outside 0 to the share"),
    SHARE_REFUND_WRONG: _l("A reseller's or promoter's share was not taken back in proportion to the refund"),
    SHARE_FEE_RETURN_WRONG: _l("Returned fee of a reseller's or promoter's share differs from its refunded part"),
    ENTRY_OF_WRONG_ACCOUNT: _l("Ledger entry is credited to an account that has no share in the order"),
    UNDELIVERED_PART_REFUND: _l("An order never delivered was refunded in part: the rest belongs to nobody"),
}


@dataclass(frozen=True)
class Mismatch:
    """One disagreement in the books. `expected` and `found` are amounts in minor units,
    None for "no entry / no payment", or a short text (an order status)."""

    kind: str
    reference: str  # an order number, "withdrawal #12" or "ledger entry #34"
    expected: "int | str | FeeBounds | None"
    found: int | str | None

    @property
    def label(self):
        return MISMATCH_LABELS[self.kind]


@dataclass(frozen=True)
class FeeBounds:
    """What a fee entry should be: between minus the share and 0 (shown as such)."""

    share: int

    def __str__(self) -> str:
        return str(_l("between %(low)s and %(high)s", low=format_money(-self.share), high=format_money(0)))


# -- the withdrawal queue -----------------------------------------------------------------


@dataclass(frozen=True)
class QueuedWithdrawal:
    withdrawal: Withdrawal
    merchant_name: str
    account: PayoutAccount


def withdrawal_queue(status: str = QUEUE_OPEN, page: int = 1) -> tuple[list[QueuedWithdrawal], int]:
    """One page of withdrawals for the operator and how many match: requested first,
    then approved, then the decided ones; oldest first within each, so the longest
    waiting request is on top. `status` is one of QUEUE_FILTERS."""
    conditions = []
    if status == QUEUE_OPEN:
        conditions.append(Withdrawal.status.in_((Withdrawal.REQUESTED, Withdrawal.APPROVED)))
    elif status != "all":
        conditions.append(Withdrawal.status == status)
    urgency = case(
        (Withdrawal.status == Withdrawal.REQUESTED, 0), (Withdrawal.status == Withdrawal.APPROVED, 1), else_=2
    )
    found = paginate(
        select(Withdrawal, Merchant.name, PayoutAccount)
        .join(Merchant, Merchant.id == Withdrawal.merchant_id)
        .join(PayoutAccount, PayoutAccount.id == Withdrawal.payout_account_id)
        .where(*conditions)
        .order_by(urgency, Withdrawal.created_at, Withdrawal.id),
        page,
        PER_PAGE,
    )
    return [QueuedWithdrawal(w, name, account) for w, name, account in found.items], found.total


def reveal_payout_account(withdrawal_id: int, operator_id: int) -> str:
    """The full account number a withdrawal is to be paid to. Every look is audited."""
    with write_transaction():
        withdrawal = db.session.get(Withdrawal, withdrawal_id)
        if withdrawal is None:
            raise NotFound()
        account = db.session.get(PayoutAccount, withdrawal.payout_account_id)
        number = payouts.payout_account_number(account)
        audit.record(
            operator_id,
            REVEAL_ACTION,
            f"withdrawal:{withdrawal.id}",
            detail=f"merchant:{withdrawal.merchant_id} payout_account:{account.id}",
        )
    return number


# -- the platform's fee income ------------------------------------------------------------


@dataclass(frozen=True)
class DailyFees:
    day: date
    fees: int  # fees taken that day minus fees returned that day


@dataclass(frozen=True)
class PlatformLedger:
    earned: int  # fees taken minus fees returned, within since/until
    fees: int
    returned: int
    daily: list[DailyFees]  # the last LEDGER_DAYS local days up to until (or now)
    entries: Page  # of FEE and FEE_RETURN entries, newest first, counted
    order_numbers: dict[int, str] = field(default_factory=dict)
    merchant_names: dict[int, str] = field(default_factory=dict)


def platform_ledger(
    since: datetime | None = None, until: datetime | None = None, page: int = 1, now: datetime | None = None
) -> PlatformLedger:
    """What the platform earned in fees: the fee entries on every share (negative for
    the account, so income for the platform) minus the fees refunds gave back. `since` is inclusive,
    `until` exclusive; both bound the time the entry was written."""
    conditions = [LedgerEntry.kind.in_(FEE_KINDS)]
    if since is not None:
        conditions.append(LedgerEntry.created_at >= since)
    if until is not None:
        conditions.append(LedgerEntry.created_at < until)
    fees, returned = db.session.execute(
        select(
            func.coalesce(func.sum(case((LedgerEntry.kind.in_(FEE_TAKEN_KINDS), -LedgerEntry.amount), else_=0)), 0),
            func.coalesce(func.sum(case((LedgerEntry.kind.not_in(FEE_TAKEN_KINDS), LedgerEntry.amount), else_=0)), 0),
        ).where(*conditions)
    ).one()
    entries = paginate(
        select(LedgerEntry).where(*conditions).order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()),
        page,
        PER_PAGE,
    )
    order_ids = {e.order_id for e in entries.items if e.order_id is not None}
    merchant_ids = {e.merchant_id for e in entries.items}
    order_numbers = (
        dict(db.session.execute(select(Order.id, Order.number).where(Order.id.in_(order_ids))).all())
        if order_ids
        else {}
    )
    merchant_names = (
        dict(db.session.execute(select(Merchant.id, Merchant.name).where(Merchant.id.in_(merchant_ids))).all())
        if merchant_ids
        else {}
    )
    return PlatformLedger(
        earned=int(fees) - int(returned),
        fees=int(fees),
        returned=int(returned),
        daily=_daily_fees(conditions, until or now or clock.now()),
        entries=entries,
        order_numbers=order_numbers,
        merchant_names=merchant_names,
    )


def _daily_fees(conditions, end: datetime) -> list[DailyFees]:
    tz = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or DEFAULT_TIMEZONE)
    days, bounds = day_boundaries(end, tz, LEDGER_DAYS)
    per_entry = (
        select(_day_index(LedgerEntry.created_at, bounds).label("day"), (-LedgerEntry.amount).label("income"))
        .where(*conditions, LedgerEntry.created_at >= bounds[0], LedgerEntry.created_at < bounds[-1])
        .subquery()
    )
    income = dict(
        db.session.execute(select(per_entry.c.day, func.sum(per_entry.c.income)).group_by(per_entry.c.day)).all()
    )
    return [DailyFees(day, int(income.get(i, 0))) for i, day in enumerate(days)]


# -- reconciliation -----------------------------------------------------------------------


def reconcile_books() -> list[Mismatch]:
    """Every disagreement between orders, ledger entries, payments, refunds and
    withdrawals, in five queries whatever the size of the shop:

    - a delivered order (and a refunded one that was delivered) has, for each of its
      shares (faka/ledger/shares.py: the merchant's always, a reseller's margin, a
      promoter's commission), one credit of the share and one fee between minus the
      share and 0; a refunded one also, for each share, a refund of the share's part of
      the refund and the fee returned with it;
    - each of those entries is the account's whose share it is;
    - no order other than delivered/refunded has ledger entries, and one refunded without
      having been delivered was refunded in full (nobody was credited the rest);
    - a paid, delivered, refunded or paid-but-unfulfilled order has a payment notice of
      its total that paid it (not an extra one), and no other order has one (a late
      payment of an expired or cancelled order made it paid, or paid but unfulfilled);
    - an extra payment of an order already paid is returned to the buyer: its refund is
      done by the gateway or paid by hand (until then it is reported; it has no ledger
      entry, the merchant never had it);
    - a withdrawal has a WITHDRAWAL entry of minus its amount, and a WITHDRAWAL_RETURN
      of its amount exactly when it was rejected;
    - every order-kind entry has an order and every withdrawal-kind entry a withdrawal.
    """
    return [
        found.mismatch
        for section in (
            _order_mismatches(),
            _wrong_accounts(),
            _unreturned_extra_payments(),
            _withdrawal_mismatches(),
            _ownerless_entries(),
        )
        for found in section
    ]


@dataclass(frozen=True)
class _Found:
    """A mismatch with what the stored check files it under (see BooksMismatch)."""

    subject: int
    sort_key: int
    mismatch: Mismatch


def _only(column, ids):
    """The condition "column is one of ids", or none when ids is None (everything)."""
    return true() if ids is None else column.in_(ids)


def _per_kind(kind: str):
    """(count, sum) of the grouped entries of one kind."""
    return (
        func.sum(case((LedgerEntry.kind == kind, 1), else_=0)).label(f"n_{kind}"),
        func.sum(case((LedgerEntry.kind == kind, LedgerEntry.amount), else_=0)).label(f"sum_{kind}"),
    )


def _order_mismatches(order_ids=None) -> list[_Found]:
    entries = (
        select(
            LedgerEntry.order_id,
            func.count().label("n"),
            *(column for kind in ORDER_KINDS for column in _per_kind(kind)),
        )
        .where(LedgerEntry.order_id.is_not(None), _only(LedgerEntry.order_id, order_ids))
        .group_by(LedgerEntry.order_id)
        .subquery()
    )
    notices = (
        select(PaymentNotice.order_id, func.count().label("n"), func.max(PaymentNotice.amount).label("amount"))
        .where(_only(PaymentNotice.order_id, order_ids))
        .group_by(PaymentNotice.order_id)
        .subquery()
    )
    matching_notices = (
        select(PaymentNotice.order_id, func.count().label("n"))
        .join(Order, Order.id == PaymentNotice.order_id)
        .where(
            PaymentNotice.amount == Order.total,
            PaymentNotice.outcome != PaymentNotice.DUPLICATE,
            _only(PaymentNotice.order_id, order_ids),
        )
        .group_by(PaymentNotice.order_id)
        .subquery()
    )
    rows = db.session.execute(
        select(
            Order.id.label("order_pk"),
            Order.number,
            Order.status,
            Order.total,
            Order.refunded_amount,
            Order.delivered_at,
            Order.resale_base,
            Order.commission,
            Order.substore_id,
            Order.promoter_id,
            entries,
            notices.c.n.label("notices"),
            notices.c.amount.label("notice_amount"),
            matching_notices.c.n.label("matching"),
        )
        .outerjoin(entries, entries.c.order_id == Order.id)
        .outerjoin(notices, notices.c.order_id == Order.id)
        .outerjoin(matching_notices, matching_notices.c.order_id == Order.id)
        .where(
            or_(Order.status.in_(PAID_STATUSES), entries.c.order_id.is_not(None), notices.c.order_id.is_not(None)),
            _only(Order.id, order_ids),
        )
        .order_by(Order.id)
    ).mappings()
    return [_Found(row["order_pk"], row["order_pk"], mismatch) for row in rows for mismatch in _check_order(row)]


def _check_order(row) -> list[Mismatch]:
    number, status, total = row["number"], row["status"], row["total"]
    mismatches = []
    credited = status == Order.DELIVERED or (status in REFUNDED_STATUSES and row["delivered_at"] is not None)
    if credited:
        expected = shares.gross_shares(
            total, row["resale_base"], row["commission"], row["substore_id"] is not None, row["promoter_id"] is not None
        )
        expected = {p: a for p, a in expected.items() if p is shares.MERCHANT or a > 0}
        refunded = row["refunded_amount"] if status in REFUNDED_STATUSES else 0
        backs = shares.refunded_shares(expected, refunded, total)
        for party in shares.PARTIES:
            mismatches.extend(_check_share(row, party, expected.get(party), backs.get(party), status))
    elif row["n"]:
        mismatches.append(Mismatch(ENTRIES_ON_UNCREDITED_ORDER, number, None, status))
    if not credited and status in REFUNDED_STATUSES and row["refunded_amount"] != total:
        mismatches.append(Mismatch(UNDELIVERED_PART_REFUND, number, total, row["refunded_amount"]))

    if status in PAID_STATUSES:
        if not row["matching"]:
            mismatches.append(Mismatch(PAYMENT_MISSING, number, total, row["notice_amount"]))
    elif row["notices"]:
        mismatches.append(Mismatch(PAYMENT_ON_UNPAID_ORDER, number, None, status))
    return mismatches


_SHARE_MISMATCHES = {
    shares.MERCHANT: (SALE_WRONG, FEE_WRONG, REFUND_WRONG, FEE_RETURN_WRONG),
    shares.RESELLER: (RESALE_WRONG, SHARE_FEE_WRONG, SHARE_REFUND_WRONG, SHARE_FEE_RETURN_WRONG),
    shares.PROMOTER: (COMMISSION_WRONG, SHARE_FEE_WRONG, SHARE_REFUND_WRONG, SHARE_FEE_RETURN_WRONG),
}


def _check_share(row, party, share: int | None, back: int | None, status: str) -> list[Mismatch]:
    """One party's entries of a credited order: its credit, the fee on it, and (once
    refunded) what it gave back and the fee returned with that. `share` is None for a
    party the order has no share for: then it must have no entries."""

    def entry(kind):
        return row[f"sum_{kind}"] if row[f"n_{kind}"] else None

    number = row["number"]
    credit_wrong, fee_wrong, refund_wrong, fee_return_wrong = _SHARE_MISMATCHES[party]
    credit, fee = entry(party.credit), entry(party.fee)
    if share is None:
        found = [entry(kind) for kind in party.kinds]
        if any(value is not None for value in found):
            return [
                Mismatch(
                    credit_wrong,
                    number,
                    None,
                    credit if credit is not None else next(v for v in found if v is not None),
                )
            ]
        return []
    mismatches = []
    if credit != share:
        mismatches.append(Mismatch(credit_wrong, number, share, credit))
    if fee is None or fee > 0 or -fee > share:
        mismatches.append(Mismatch(fee_wrong, number, FeeBounds(share), fee))
    if status in REFUNDED_STATUSES:
        refund, fee_return = entry(party.refund), entry(party.fee_return)
        if refund != -back:
            mismatches.append(Mismatch(refund_wrong, number, -back, refund))
        if fee is not None and (fee_return or 0) != balances.returned_fee(-fee, back, share):
            mismatches.append(Mismatch(fee_return_wrong, number, balances.returned_fee(-fee, back, share), fee_return))
    return mismatches


def _wrong_accounts(order_ids=None) -> list[_Found]:
    """Entries of an order credited to another account than the party they are the
    share of: the merchant's kinds to the order's merchant, the margin's to the
    sub-store's owner, the commission's to the promoter's account."""
    owner = case(
        (LedgerEntry.kind.in_(shares.MERCHANT.kinds), Order.merchant_id),
        (LedgerEntry.kind.in_(shares.RESELLER.kinds), SubStore.merchant_id),
        else_=Promoter.merchant_id,
    )
    rows = db.session.execute(
        select(Order.id, Order.number, LedgerEntry.id, LedgerEntry.merchant_id, owner)
        .join(Order, Order.id == LedgerEntry.order_id)
        .outerjoin(SubStore, SubStore.id == Order.substore_id)
        .outerjoin(Promoter, Promoter.id == Order.promoter_id)
        .where(
            LedgerEntry.kind.in_(ORDER_KINDS),
            or_(owner.is_(None), owner != LedgerEntry.merchant_id),
            _only(LedgerEntry.order_id, order_ids),
        )
        .order_by(LedgerEntry.id)
    ).all()
    return [
        _Found(
            order_id,
            entry_id,
            Mismatch(ENTRY_OF_WRONG_ACCOUNT, f"{number} (ledger entry #{entry_id})", expected, found),
        )
        for order_id, number, entry_id, found, expected in rows
    ]


def _unreturned_extra_payments(order_ids=None) -> list[_Found]:
    """Extra payments (an order paid twice) whose refund is not done or paid yet:
    expected is the amount owed to the buyer, found what became of its refund."""
    rows = db.session.execute(
        select(Order.id, Order.number, PaymentNotice.id, PaymentNotice.amount, Refund.status)
        .join(Order, Order.id == PaymentNotice.order_id)
        .outerjoin(Refund, Refund.payment_notice_id == PaymentNotice.id)
        .where(
            PaymentNotice.outcome == PaymentNotice.DUPLICATE,
            or_(Refund.id.is_(None), Refund.status.not_in(Refund.RETURNED)),
            _only(PaymentNotice.order_id, order_ids),
        )
        .order_by(PaymentNotice.id)
    ).all()
    return [
        _Found(
            order_id,
            notice_id,
            Mismatch(EXTRA_PAYMENT_NOT_RETURNED, number, amount, Refund.STATUS_LABELS.get(status)),
        )
        for order_id, number, notice_id, amount, status in rows
    ]


def _withdrawal_mismatches(withdrawal_ids=None) -> list[_Found]:
    entries = (
        select(LedgerEntry.withdrawal_id, *(column for kind in WITHDRAWAL_KINDS for column in _per_kind(kind)))
        .where(LedgerEntry.withdrawal_id.is_not(None), _only(LedgerEntry.withdrawal_id, withdrawal_ids))
        .group_by(LedgerEntry.withdrawal_id)
        .subquery()
    )
    rows = db.session.execute(
        select(Withdrawal.id, Withdrawal.status, Withdrawal.amount, entries)
        .outerjoin(entries, entries.c.withdrawal_id == Withdrawal.id)
        .where(_only(Withdrawal.id, withdrawal_ids))
        .order_by(Withdrawal.id)
    ).mappings()
    mismatches: list[_Found] = []
    for row in rows:
        reference = f"withdrawal #{row['id']}"
        taken = row[f"sum_{LedgerEntry.WITHDRAWAL}"] if row[f"n_{LedgerEntry.WITHDRAWAL}"] else None
        returned = row[f"sum_{LedgerEntry.WITHDRAWAL_RETURN}"] if row[f"n_{LedgerEntry.WITHDRAWAL_RETURN}"] else None
        if taken != -row["amount"]:
            mismatches.append(
                _Found(row["id"], row["id"], Mismatch(WITHDRAWAL_WRONG, reference, -row["amount"], taken))
            )
        expected_return = row["amount"] if row["status"] == Withdrawal.REJECTED else None
        if returned != expected_return:
            mismatches.append(
                _Found(row["id"], row["id"], Mismatch(WITHDRAWAL_RETURN_WRONG, reference, expected_return, returned))
            )
    return mismatches


def _ownerless_entries(after: int = 0) -> list[_Found]:
    """Entries (of ids above `after`) that belong to no order or withdrawal."""
    rows = db.session.execute(
        select(LedgerEntry.id, LedgerEntry.amount)
        .where(
            or_(
                and_(LedgerEntry.kind.in_(ORDER_KINDS), LedgerEntry.order_id.is_(None)),
                and_(LedgerEntry.kind.in_(WITHDRAWAL_KINDS), LedgerEntry.withdrawal_id.is_(None)),
            ),
            LedgerEntry.id > after,
        )
        .order_by(LedgerEntry.id)
    ).all()
    return [
        _Found(entry_id, entry_id, Mismatch(ENTRY_WITHOUT_OWNER, f"ledger entry #{entry_id}", None, amount))
        for entry_id, amount in rows
    ]


# -- the stored check ---------------------------------------------------------------------
#
# Checking every order takes half a minute on a shop of a million orders, so the
# reconciliation page shows a stored result (BooksMismatch rows) that each refresh brings up
# to date by re-checking only the orders and withdrawals that something was written for
# since the last one. Ledger entries, payment notices and refunds are only ever added, and
# every change the check can see comes with one of them (a payment with its notice, a
# delivery or a refund with its entries, a rejected withdrawal with its return), so the
# ids past the last run's marks name every order and withdrawal to look at again. A full
# check, on the operator's demand and after each day's settlement, replaces the whole result
# and catches what no new row announces (a row edited or deleted by hand).

ORDER_SECTION, ACCOUNT_SECTION, EXTRA_SECTION, WITHDRAWAL_SECTION, OWNERLESS_SECTION = range(5)
BOUNDS_KINDS = (FEE_WRONG, SHARE_FEE_WRONG)
CHECK_TASK = "ledger.tasks.check_all_books"
REFRESH_TASK = "ledger.tasks.refresh_books"
REFRESH_JOB_ID = "books-refresh"  # one queued refresh at a time, however many page views ask
_CHECK_LOCK = 7314  # one refresh at a time on PostgreSQL (SQLite's write transaction already is)
_CHUNK = 500  # ids per IN (...) list
# A transaction that added a row commits after one that added a higher id: a refresh
# between them moves its mark past the first row, so each refresh looks this many ids back.
_OVERLAP = 1000


@dataclass(frozen=True)
class BooksReport:
    """The stored result: its mismatches, when it was last brought up to date and when
    everything was last checked."""

    mismatches: list[Mismatch]
    checked_at: datetime
    full_checked_at: datetime


def books_report() -> BooksReport | None:
    """The books check's stored result, None before the first check. When rows were added
    since it, or an extra payment is still to be returned (its refund changes without a new
    row), a refresh is started (a job: in the background with a worker, inline in tests),
    so the page never waits for a check of a big shop."""
    state = db.session.get(BooksCheck, 1)
    if state is None or _refresh_due(state):
        tasks.enqueue(REFRESH_TASK, job_id=REFRESH_JOB_ID)
        db.session.expire_all()
        state = db.session.get(BooksCheck, 1)
        if state is None:
            return None
    rows = db.session.execute(
        select(BooksMismatch).order_by(BooksMismatch.section, BooksMismatch.sort_key, BooksMismatch.id)
    ).scalars()
    return BooksReport([_loaded(row) for row in rows], state.checked_at, state.full_checked_at)


_MARKS = ("entry_mark", "notice_mark", "refund_mark", "withdrawal_mark")


def _marks_of(state: BooksCheck) -> tuple[int, ...]:
    return tuple(getattr(state, name) for name in _MARKS)


def _mark_columns() -> list:
    """The highest id of each append-only table the check follows."""
    return [
        select(func.coalesce(func.max(column), 0)).scalar_subquery()
        for column in (LedgerEntry.id, PaymentNotice.id, Refund.id, Withdrawal.id)
    ]


def _current_marks() -> tuple[int, ...]:
    return tuple(db.session.execute(select(*_mark_columns())).one())


def _refresh_due(state: BooksCheck) -> bool:
    waiting = select(BooksMismatch.id).where(BooksMismatch.section == EXTRA_SECTION).exists()
    *marks, extra_waiting = db.session.execute(select(*_mark_columns(), waiting)).one()
    return tuple(marks) != _marks_of(state) or bool(extra_waiting)


def refresh_books_check(full: bool = False, now: datetime | None = None) -> BooksCheck:
    """Bring the stored result up to date: re-check what was written since the last run,
    or everything when `full` (or when there is no result yet). Returns the check's row."""
    now = now or clock.now()
    with write_transaction():
        if is_postgresql():
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _CHECK_LOCK})
            if not full:
                # A refresh reads a few hundred rows per statement by index; starting parallel
                # workers for them costs more than the reads (seconds on a busy server).
                db.session.execute(text("SET LOCAL max_parallel_workers_per_gather = 0"))
        state = db.session.get(BooksCheck, 1)
        marks = _current_marks()
        if state is None or full:
            db.session.execute(delete(BooksMismatch))
            _store(ORDER_SECTION, _order_mismatches())
            _store(ACCOUNT_SECTION, _wrong_accounts())
            _store(EXTRA_SECTION, _unreturned_extra_payments())
            _store(WITHDRAWAL_SECTION, _withdrawal_mismatches())
            _store(OWNERLESS_SECTION, _ownerless_entries())
            if state is None:
                state = BooksCheck(id=1)
                db.session.add(state)
            state.full_checked_at = now
        else:
            _refresh(state)
        for name, value in zip(_MARKS, marks, strict=True):
            setattr(state, name, value)
        state.checked_at = now
    return state


def _refresh(state: BooksCheck) -> None:
    entries_after = max(state.entry_mark - _OVERLAP, 0)
    order_ids = set(
        db.session.scalars(
            select(LedgerEntry.order_id).where(LedgerEntry.id > entries_after, LedgerEntry.order_id.is_not(None))
        )
    )
    order_ids.update(
        db.session.scalars(select(PaymentNotice.order_id).where(PaymentNotice.id > state.notice_mark - _OVERLAP))
    )
    order_ids.update(db.session.scalars(select(Refund.order_id).where(Refund.id > state.refund_mark - _OVERLAP)))
    # An extra payment's refund changes status without a new row: look at the unreturned again.
    order_ids.update(db.session.scalars(select(BooksMismatch.subject).where(BooksMismatch.section == EXTRA_SECTION)))
    withdrawal_ids = set(
        db.session.scalars(
            select(LedgerEntry.withdrawal_id).where(
                LedgerEntry.id > entries_after, LedgerEntry.withdrawal_id.is_not(None)
            )
        )
    )
    withdrawal_ids.update(
        db.session.scalars(select(Withdrawal.id).where(Withdrawal.id > state.withdrawal_mark - _OVERLAP))
    )

    for chunk in _chunks(order_ids):
        db.session.execute(
            delete(BooksMismatch).where(
                BooksMismatch.section.in_((ORDER_SECTION, ACCOUNT_SECTION, EXTRA_SECTION)),
                BooksMismatch.subject.in_(chunk),
            )
        )
        _store(ORDER_SECTION, _order_mismatches(chunk))
        _store(ACCOUNT_SECTION, _wrong_accounts(chunk))
        _store(EXTRA_SECTION, _unreturned_extra_payments(chunk))
    for chunk in _chunks(withdrawal_ids):
        db.session.execute(
            delete(BooksMismatch).where(BooksMismatch.section == WITHDRAWAL_SECTION, BooksMismatch.subject.in_(chunk))
        )
        _store(WITHDRAWAL_SECTION, _withdrawal_mismatches(chunk))
    db.session.execute(
        delete(BooksMismatch).where(BooksMismatch.section == OWNERLESS_SECTION, BooksMismatch.subject > entries_after)
    )
    _store(OWNERLESS_SECTION, _ownerless_entries(entries_after))


def _chunks(ids: set[int]) -> list[list[int]]:
    ordered = sorted(ids)
    return [ordered[start : start + _CHUNK] for start in range(0, len(ordered), _CHUNK)]


def _store(section: int, found: list[_Found]) -> None:
    for item in found:
        m = item.mismatch
        expected_amount, expected_text = _stored_value(m.expected)
        found_amount, found_text = _stored_value(m.found)
        db.session.add(
            BooksMismatch(
                section=section,
                subject=item.subject,
                sort_key=item.sort_key,
                kind=m.kind,
                reference=m.reference,
                expected_amount=expected_amount,
                expected_text=expected_text,
                found_amount=found_amount,
                found_text=found_text,
            )
        )


def _stored_value(value) -> tuple[int | None, str | None]:
    """A Mismatch's expected or found value as (amount, text): an amount, a fee's bounds
    (by its share), an order status, or a refund's status (by its code, so that the page
    shows its label in the reader's language)."""
    if value is None:
        return None, None
    if isinstance(value, int):
        return value, None
    if isinstance(value, FeeBounds):
        return value.share, None
    for code, label in Refund.STATUS_LABELS.items():
        if value is label:
            return None, code
    return None, str(value)


def _loaded(row: BooksMismatch) -> Mismatch:
    expected: int | str | FeeBounds | None = row.expected_amount
    if row.kind in BOUNDS_KINDS and row.expected_amount is not None:
        expected = FeeBounds(row.expected_amount)
    elif expected is None:
        expected = row.expected_text
    found = row.found_amount if row.found_amount is not None else row.found_text
    if row.kind == EXTRA_PAYMENT_NOT_RETURNED and row.found_text is not None:
        found = Refund.STATUS_LABELS.get(row.found_text)
    return Mismatch(row.kind, row.reference, expected, found)


# -- the daily settlement check ------------------------------------------------------------


def settle(now: datetime | None = None) -> AuditEvent:
    """Record the day's settlement check (see the module docstring): every merchant's
    balance at `now` and the books check's result (brought up to date), as one
    "settlement.daily" audit event per UTC day, and start that day's full check of the
    books. A second run on the same day returns that day's event and writes nothing."""
    now = now or clock.now()
    target = f"settlement:{now.date().isoformat()}"
    refresh_books_check(now=now)
    with write_transaction():
        if is_postgresql():
            # Every worker schedules this job, and workers started together run it side by
            # side: one at a time, so the second finds the first one's event. (SQLite's
            # write transaction already runs one at a time.)
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _SETTLE_LOCK})
        existing = db.session.execute(
            select(AuditEvent).where(AuditEvent.action == DAILY_ACTION, AuditEvent.target == target)
        ).scalar_one_or_none()
        if existing is not None:
            return existing  # nothing written: the commit only ends the transaction
        # Every account's balance added up, in one pass over the ledger (a query per
        # account took half a minute on a platform of 500 merchants).
        summed = balances.platform_balance(now)
        totals = {
            "merchants": db.session.scalar(select(func.count()).select_from(Merchant)),
            "pending": summed.pending,
            "available": summed.available,
            "frozen": summed.frozen,
            "withdrawing": summed.withdrawing,
        }
        mismatches = db.session.scalar(select(func.count()).select_from(BooksMismatch))
        totals["mismatches"] = mismatches
        totals["at"] = now.isoformat()
        event = audit.record(
            None,
            DAILY_ACTION,
            target,
            after=totals,
            detail=f"{mismatches} mismatches" if mismatches else "books balance",
        )
        tasks.enqueue(CHECK_TASK)
    return event
