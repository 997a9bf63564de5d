"""A merchant's balance, summed from the append-only ledger.

Every movement is a LedgerEntry; nothing here updates or deletes one. A balance is a
sum over the merchant's entries, split by where each entry stands at a moment `now`:

- pending: credited but still inside the settlement hold (available_at > now);
- available: settled (available_at <= now), net of withdrawals in flight and paid;
- frozen: entries of orders with an open complaint, whatever their hold;
- withdrawn: money paid out (the WITHDRAWAL entries of paid withdrawals).

The entries are written elsewhere: a sale's by delivery, a withdrawal's by
faka.ledger.payouts, a refund's (REFUND and FEE_RETURN) by faka.payments.refunds.
"""

from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, false, func, not_, or_, select, true

from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.pagination import paginate
from faka.extensions import db
from faka.ledger.models import LedgerEntry, Withdrawal
from faka.orders.models import Order

LEDGER_KINDS = (
    LedgerEntry.SALE,
    LedgerEntry.FEE,
    LedgerEntry.REFUND,
    LedgerEntry.FEE_RETURN,
    LedgerEntry.WITHDRAWAL,
    LedgerEntry.WITHDRAWAL_RETURN,
    LedgerEntry.RESALE,
    LedgerEntry.RESALE_FEE,
    LedgerEntry.RESALE_REFUND,
    LedgerEntry.RESALE_FEE_RETURN,
    LedgerEntry.COMMISSION,
    LedgerEntry.COMMISSION_FEE,
    LedgerEntry.COMMISSION_REFUND,
    LedgerEntry.COMMISSION_FEE_RETURN,
)
# What an account's ledger calls each kind of entry.
LEDGER_KIND_LABELS = {
    LedgerEntry.SALE: _l("Sale"),
    LedgerEntry.FEE: _l("Platform fee"),
    LedgerEntry.REFUND: _l("Refund"),
    LedgerEntry.FEE_RETURN: _l("Fee returned"),
    LedgerEntry.WITHDRAWAL: _l("Withdrawal"),
    LedgerEntry.WITHDRAWAL_RETURN: _l("Withdrawal returned"),
    LedgerEntry.RESALE: _l("Sub-store margin"),
    LedgerEntry.RESALE_FEE: _l("Platform fee on the margin"),
    LedgerEntry.RESALE_REFUND: _l("Margin refunded"),
    LedgerEntry.RESALE_FEE_RETURN: _l("Margin fee returned"),
    LedgerEntry.COMMISSION: _l("Commission"),
    LedgerEntry.COMMISSION_FEE: _l("Platform fee on the commission"),
    LedgerEntry.COMMISSION_REFUND: _l("Commission reversed"),
    LedgerEntry.COMMISSION_FEE_RETURN: _l("Commission fee returned"),
}
LEDGER_PER_PAGE = 50
MAX_PER_PAGE = 200


# -- balances ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Balance:
    pending: int
    available: int
    frozen: int
    withdrawn: int  # paid out, for information; already deducted from `available`
    withdrawing: int  # requested or approved, not yet paid; already deducted from `available`
    total: int  # pending + available + frozen: everything the platform still owes


def frozen_order_ids(merchant_id: int) -> set[int]:
    """The account's orders whose settlement is frozen: those with a complaint in
    progress, whether the account sold them, resold them in its sub-store or brought
    their buyer. All their ledger entries count as frozen instead of pending or
    available until the complaint is resolved or withdrawn."""
    return set(
        db.session.execute(
            select(Complaint.order_id).where(
                Complaint.status.in_(Complaint.ACTIVE),
                # Complaints in progress are few, an account's entries many (150,000 on a
                # big shop): each complaint's order is looked up among its entries.
                or_(
                    Complaint.merchant_id == merchant_id,
                    select(LedgerEntry.id)
                    .where(LedgerEntry.order_id == Complaint.order_id, LedgerEntry.merchant_id == merchant_id)
                    .exists(),
                ),
            )
        ).scalars()
    )


def balance(merchant_id: int, now: datetime | None = None) -> Balance:
    """The merchant's balance at `now` (default: the current time), in one query."""
    frozen_ids = frozen_order_ids(merchant_id)
    is_frozen = LedgerEntry.order_id.in_(sorted(frozen_ids)) if frozen_ids else false()
    return _summed(LedgerEntry.merchant_id == merchant_id, is_frozen, now or clock.now())


def platform_balance(now: datetime) -> Balance:
    """Every account's balance at `now` added up (the daily settlement's totals), in one
    pass over the ledger instead of one query per account: an entry is frozen exactly
    when its order has a complaint in progress, whichever account it belongs to (its
    account then is one that frozen_order_ids names the order for)."""
    in_progress = select(Complaint.order_id).where(Complaint.status.in_(Complaint.ACTIVE))
    return _summed(true(), LedgerEntry.order_id.in_(in_progress), now)


def _summed(which, is_frozen, now: datetime) -> Balance:
    """The balance of the ledger entries `which` selects, `is_frozen` telling the frozen ones."""
    # An entry of no order (a withdrawal, its return) is never frozen. Said outright: for
    # it, "order_id IN (...)" is NULL, not false, and NOT NULL would leave it out of
    # `available` too.
    is_frozen = and_(LedgerEntry.order_id.is_not(None), is_frozen)

    def total_where(condition, amount=LedgerEntry.amount):
        return func.coalesce(func.sum(case((condition, amount), else_=0)), 0)

    def withdrawal_of_status(*statuses):
        return and_(LedgerEntry.kind == LedgerEntry.WITHDRAWAL, Withdrawal.status.in_(statuses))

    row = db.session.execute(
        select(
            total_where(and_(not_(is_frozen), LedgerEntry.available_at > now)),
            total_where(and_(not_(is_frozen), LedgerEntry.available_at <= now)),
            total_where(is_frozen),
            total_where(withdrawal_of_status(Withdrawal.PAID), -LedgerEntry.amount),
            total_where(withdrawal_of_status(Withdrawal.REQUESTED, Withdrawal.APPROVED), -LedgerEntry.amount),
        )
        .select_from(LedgerEntry)
        .outerjoin(Withdrawal, LedgerEntry.withdrawal_id == Withdrawal.id)
        .where(which)
    ).one()
    pending, available, frozen, withdrawn, withdrawing = (int(v) for v in row)
    return Balance(
        pending=pending,
        available=available,
        frozen=frozen,
        withdrawn=withdrawn,
        withdrawing=withdrawing,
        total=pending + available + frozen,
    )


def ledger(
    merchant_id: int,
    kind: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
    per_page: int = LEDGER_PER_PAGE,
) -> tuple[list[LedgerEntry], int]:
    """One page of the merchant's ledger, newest first, and how many entries match.

    `kind` is one of LEDGER_KINDS; `since` (inclusive) and `until` (exclusive) bound the
    time the entry was written. An unknown kind matches nothing."""
    conditions = [LedgerEntry.merchant_id == merchant_id]
    if kind is not None:
        conditions.append(LedgerEntry.kind == kind)
    if since is not None:
        conditions.append(LedgerEntry.created_at >= since)
    if until is not None:
        conditions.append(LedgerEntry.created_at < until)
    per_page = min(max(1, int(per_page)), MAX_PER_PAGE)
    found = paginate(
        select(LedgerEntry).where(*conditions).order_by(LedgerEntry.created_at.desc(), LedgerEntry.id.desc()),
        page,
        per_page,
        ids_first=LedgerEntry.id,
    )
    return found.items, found.total


def ledger_query(
    merchant_id: int, kind: str | None = None, since: datetime | None = None, until: datetime | None = None
):
    """The merchant's ledger entries (one entity, for the API's cursor pages), filtered as
    `ledger()` filters them."""
    query = select(LedgerEntry).where(LedgerEntry.merchant_id == merchant_id)
    if kind is not None:
        query = query.where(LedgerEntry.kind == kind)
    if since is not None:
        query = query.where(LedgerEntry.created_at >= since)
    if until is not None:
        query = query.where(LedgerEntry.created_at < until)
    return query


def order_numbers(order_ids) -> dict[int, str]:
    """The numbers of these orders, by id (for entries that name their order)."""
    ids = sorted({i for i in order_ids if i is not None})
    if not ids:
        return {}
    return dict(db.session.execute(select(Order.id, Order.number).where(Order.id.in_(ids))).all())


# -- the fee a refund gives back ---------------------------------------------------------


def returned_fee(fee_taken: int, refunded: int, total: int) -> int:
    """The share of the platform fee given back with a refund of `refunded` out of
    `total`: all of it for a full refund, in proportion (rounded down) for a part.

    The ledger's rule, not the refund's: payments.refunds writes the FEE_RETURN entry
    with it, and settlement.reconcile_books checks those entries against it (the ledger
    may not import payments)."""
    return fee_taken if refunded >= total else fee_taken * refunded // total
