"""The operator's control of the growth programmes: opening them and their default fees,
the review of sub-stores, freezing a sub-store or a promoter, per-account fee rates, and
the programmes' figures for the dashboard.

Each decision is one write transaction that changes the row, records an audit event with
the fields before and after and, where the owner should know, queues a `substore_review`
email (sent after the commit), like the merchant review (faka/accounts/review.py).

A frozen sub-store is closed (resale.open_substore), a frozen promoter's links stop
counting (affiliates.active_promoter), and either stops its owner's withdrawals
(payouts.payouts_frozen); orders already paid are still delivered and credited.
"""

from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import case, func, or_, select
from sqlalchemy.orm import joinedload

from faka.accounts import review
from faka.accounts.models import Merchant
from faka.core import clock, tasks
from faka.core.cache import forget
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.growth import resale
from faka.growth.models import Promoter, SubStore
from faka.ledger.models import LedgerEntry
from faka.messaging.mail import queue_owner_email
from faka.orders.models import Order
from faka.platform import audit, settings

EMAIL_SUBSTORE_REVIEW = "substore_review"
MAX_FEE_RATE_BP = 5000  # 50 %
MAX_REASON = review.MAX_REASON  # as long as a merchant review's reason
PER_PAGE = 50
FIGURE_DAYS = 30
PROGRAMME_KEYS = ("resale_enabled", "affiliate_enabled", "resale_fee_bp", "affiliate_fee_bp")

SUBSTORE_STATUS_LABELS = {
    SubStore.PENDING: _l("Awaiting approval"),
    SubStore.APPROVED: _l("Approved"),
    SubStore.REJECTED: _l("Rejected"),
    SubStore.FROZEN: _l("Frozen"),
}
PROMOTER_STATUS_LABELS = {Promoter.ACTIVE: _l("Active"), Promoter.FROZEN: _l("Frozen")}

# The subject of the email each decision sends to the account's owner.
_SUBJECTS = {
    "approved": _l("Your sub-store has been approved"),
    "rejected": _l("Your sub-store application was rejected"),
    "frozen": _l("Your sub-store has been frozen"),
    "unfrozen": _l("Your sub-store is open again"),
    "promoter_frozen": _l("Your promoter account has been frozen"),
    "promoter_unfrozen": _l("Your promoter account is active again"),
    "domain_approved": _l("Your sub-store's domain has been approved"),
    "domain_refused": _l("Your sub-store's domain was refused"),
}


class IllegalDecision(DomainError):
    message = _l("That decision is not possible in the current state.")


class InvalidFeeRate(DomainError):
    message = _l("The fee rate must be 0% to 50%.")


class InvalidProgrammeSettings(DomainError):
    message = _l("Check the programme settings.")

    def __init__(self, errors: dict):
        super().__init__()
        self.errors = errors


# -- the programmes' settings --------------------------------------------------------------


def save_programmes(operator_id: int, values: dict[str, str]) -> dict[str, str]:
    """Open or close each programme and set its default fee (in basis points, as text
    like every setting). Checked by settings.validate; nothing changes when any value is
    wrong (InvalidProgrammeSettings carries the messages by key). Returns what changed."""
    values = {key: str(values[key]) for key in PROGRAMME_KEYS if key in values}
    errors = settings.validate(values)
    if errors:
        raise InvalidProgrammeSettings(errors)
    with write_transaction():
        current = settings.site_settings()
        changed = {key: value for key, value in values.items() if value != current.get(key)}
        if changed:
            for key, value in changed.items():
                settings.set_setting(key, value, commit=False)
            audit.record(
                operator_id,
                "growth.settings",
                "settings",
                before={key: current.get(key) for key in changed},
                after=changed,
            )
    forget("site-settings")  # every process sees the change at once
    return changed


# -- sub-stores -------------------------------------------------------------------------------


def approve_substore(operator_id: int, code: str) -> SubStore:
    """Pending → approved: the sub-store opens (while the resale programme is open), on
    the domain it asked for, if any."""
    return _decide_substore(operator_id, code, "approved", (SubStore.PENDING,), SubStore.APPROVED)


def reject_substore(operator_id: int, code: str, reason: str) -> SubStore:
    """Pending → rejected, with the reason the owner sees."""
    return _decide_substore(
        operator_id, code, "rejected", (SubStore.PENDING,), SubStore.REJECTED, review.clean_reason(reason)
    )


def freeze_substore(operator_id: int, code: str, reason: str) -> SubStore:
    """Approved → frozen: the store's pages answer 404 and its owner's withdrawals stop;
    orders already paid there are still delivered and credited."""
    return _decide_substore(
        operator_id, code, "frozen", (SubStore.APPROVED,), SubStore.FROZEN, review.clean_reason(reason)
    )


def unfreeze_substore(operator_id: int, code: str) -> SubStore:
    """Frozen → approved."""
    return _decide_substore(operator_id, code, "unfrozen", (SubStore.FROZEN,), SubStore.APPROVED)


def _decide_substore(
    operator_id: int, code: str, decision: str, allowed: tuple[str, ...], to: str, reason: str | None = None
) -> SubStore:
    with write_transaction():
        substore = _locked_substore(code)
        if substore.status not in allowed:
            raise IllegalDecision()
        if decision in ("approved", "rejected"):
            substore.reviewed_at = clock.now()
        if decision == "approved" and substore.pending_domain:
            _take_pending_domain(operator_id, substore)  # a first application's domain comes with it
        _change_status(operator_id, substore, f"substore.{decision}", f"substore:{substore.code}", to, reason)
        email = _queue_email(substore.merchant, decision, substore.name, reason)
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return substore


def approve_domain(operator_id: int, code: str) -> SubStore:
    """The domain the sub-store asked for is served from now on (its old one no longer)."""
    with write_transaction():
        substore = _locked_substore(code)
        if not substore.pending_domain:
            raise IllegalDecision()
        domain = substore.pending_domain
        _take_pending_domain(operator_id, substore)
        email = _queue_email(substore.merchant, "domain_approved", substore.name, None, domain)
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    forget(("substore-domains",))  # served at once by every process
    return substore


def refuse_domain(operator_id: int, code: str, reason: str) -> SubStore:
    """The domain the sub-store asked for is not served; the request is cleared and the
    owner told why (the store keeps its approved domain, if any)."""
    reason = review.clean_reason(reason)
    with write_transaction():
        substore = _locked_substore(code)
        if not substore.pending_domain:
            raise IllegalDecision()
        domain = substore.pending_domain
        audit.record(
            operator_id,
            "substore.domain_refused",
            f"substore:{substore.code}",
            before={"pending_domain": domain},
            after={"pending_domain": None},
            detail=reason,
        )
        substore.pending_domain = None
        email = _queue_email(substore.merchant, "domain_refused", substore.name, reason, domain)
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return substore


def _take_pending_domain(operator_id: int, substore: SubStore) -> None:
    domain = substore.pending_domain
    if db.session.scalar(select(SubStore.id).where(SubStore.domain == domain, SubStore.id != substore.id)):
        raise resale.DomainTaken()
    audit.record(
        operator_id,
        "substore.domain",
        f"substore:{substore.code}",
        before={"domain": substore.domain},
        after={"domain": domain},
    )
    substore.pending_domain = None
    db.session.flush()  # the request's unique entry is free before the domain takes it
    substore.domain = domain


def set_substore_fee(operator_id: int, code: str, fee_rate_bp: int | None) -> SubStore:
    """The platform's fee on this reseller's margins from its next delivery on; None
    goes back to the programme's default rate."""
    _check_fee(fee_rate_bp)
    with write_transaction():
        substore = _locked_substore(code)
        _change_fee(operator_id, substore, "substore.fee_rate", f"substore:{substore.code}", fee_rate_bp)
    return substore


# -- promoters --------------------------------------------------------------------------------


def freeze_promoter(operator_id: int, code: str, reason: str) -> Promoter:
    """Active → frozen: the promoter's links stop counting and withdrawals stop; the
    commissions of orders already paid are still credited at delivery."""
    return _decide_promoter(operator_id, code, "frozen", Promoter.ACTIVE, Promoter.FROZEN, review.clean_reason(reason))


def unfreeze_promoter(operator_id: int, code: str) -> Promoter:
    """Frozen → active."""
    return _decide_promoter(operator_id, code, "unfrozen", Promoter.FROZEN, Promoter.ACTIVE)


def _decide_promoter(
    operator_id: int, code: str, decision: str, allowed: str, to: str, reason: str | None = None
) -> Promoter:
    with write_transaction():
        promoter = _locked_promoter(code)
        if promoter.status != allowed:
            raise IllegalDecision()
        _change_status(operator_id, promoter, f"promoter.{decision}", f"promoter:{promoter.id}", to, reason)
        email = _queue_email(promoter.merchant, f"promoter_{decision}", promoter.code, reason)
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return promoter


def set_promoter_fee(operator_id: int, code: str, fee_rate_bp: int | None) -> Promoter:
    """The platform's fee on this promoter's commissions from the next delivery on;
    None goes back to the programme's default rate."""
    _check_fee(fee_rate_bp)
    with write_transaction():
        promoter = _locked_promoter(code)
        _change_fee(operator_id, promoter, "promoter.fee_rate", f"promoter:{promoter.id}", fee_rate_bp)
    return promoter


# -- helpers ----------------------------------------------------------------------------------


def _change_status(
    operator_id: int, record: SubStore | Promoter, action: str, target: str, to: str, reason: str | None
) -> None:
    """A sub-store's or a promoter's new status (and the reason its owner sees), audited."""
    before = {"status": record.status, "reason": record.reason}
    record.status = to
    record.reason = reason
    audit.record(
        operator_id, action, target, before=before, after={"status": to, "reason": reason}, detail=reason or ""
    )


def _change_fee(
    operator_id: int, record: SubStore | Promoter, action: str, target: str, fee_rate_bp: int | None
) -> None:
    """A sub-store's or a promoter's own fee rate (None: the programme's default), audited
    when it changes."""
    if record.fee_rate_bp != fee_rate_bp:
        audit.record(
            operator_id, action, target, before={"fee_rate_bp": record.fee_rate_bp}, after={"fee_rate_bp": fee_rate_bp}
        )
        record.fee_rate_bp = fee_rate_bp


def _check_fee(fee_rate_bp: int | None) -> None:
    if fee_rate_bp is None:
        return
    if isinstance(fee_rate_bp, bool) or not isinstance(fee_rate_bp, int) or not 0 <= fee_rate_bp <= MAX_FEE_RATE_BP:
        raise InvalidFeeRate()


def _locked_substore(code: str) -> SubStore:
    substore = db.session.execute(
        select(SubStore)
        .where(SubStore.code == (code or "").lower()[:20])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if substore is None:
        raise NotFound()
    return substore


def _locked_promoter(code: str) -> Promoter:
    promoter = db.session.execute(
        select(Promoter)
        .where(Promoter.code == (code or "")[:16])
        .with_for_update()
        .execution_options(populate_existing=True)
    ).scalar_one_or_none()
    if promoter is None:
        raise NotFound()
    return promoter


def _queue_email(owner: Merchant, decision: str, name: str, reason: str | None, domain: str = ""):
    context = {"account_name": owner.name, "name": name, "decision": decision, "reason": reason or "", "domain": domain}
    return queue_owner_email(EMAIL_SUBSTORE_REVIEW, owner, _SUBJECTS[decision], context)


# -- reading: the queue, the lists ------------------------------------------------------------


def get_substore(code: str) -> SubStore:
    substore = db.session.execute(
        select(SubStore)
        .options(joinedload(SubStore.merchant).joinedload(Merchant.user))
        .where(SubStore.code == (code or "").lower()[:20])
    ).scalar_one_or_none()
    if substore is None:
        raise NotFound()
    return substore


def get_promoter(code: str) -> Promoter:
    promoter = db.session.execute(
        select(Promoter)
        .options(joinedload(Promoter.merchant).joinedload(Merchant.user))
        .where(Promoter.code == (code or "")[:16])
    ).scalar_one_or_none()
    if promoter is None:
        raise NotFound()
    return promoter


# A sub-store waits for the operator: its application, or a domain it asked for.
WAITING = or_(SubStore.status == SubStore.PENDING, SubStore.pending_domain.is_not(None))


def substore_queue() -> list[SubStore]:
    """Sub-stores waiting for a decision (an application, or a domain to approve), oldest
    application first, with their owners."""
    return list(
        db.session.execute(
            select(SubStore)
            .options(joinedload(SubStore.merchant).joinedload(Merchant.user))
            .where(WAITING)
            .order_by(SubStore.created_at, SubStore.id)
        ).scalars()
    )


def search_substores(status: str | None = None, page: int = 1) -> Page:
    """One page of sub-stores, newest first, of one status or all; counted."""
    query = select(SubStore).options(joinedload(SubStore.merchant).joinedload(Merchant.user))
    if status:
        query = query.where(SubStore.status == status)
    return paginate(query.order_by(SubStore.created_at.desc(), SubStore.id.desc()), page, PER_PAGE)


def search_promoters(status: str | None = None, page: int = 1) -> Page:
    """One page of promoters, newest first, of one status or all; counted."""
    query = select(Promoter).options(joinedload(Promoter.merchant).joinedload(Merchant.user))
    if status:
        query = query.where(Promoter.status == status)
    return paginate(query.order_by(Promoter.created_at.desc(), Promoter.id.desc()), page, PER_PAGE)


@dataclass(frozen=True)
class AccountRoles:
    """What an account is on the platform, for the withdrawal queue."""

    merchant: bool  # its own shop was approved (or frozen) as a merchant
    reseller: bool  # it owns a sub-store past review
    promoter: bool


def account_roles(merchant_ids: list[int]) -> dict[int, AccountRoles]:
    """The roles of each account, in one statement."""
    if not merchant_ids:
        return {}
    has_store = (
        select(SubStore.id)
        .where(SubStore.merchant_id == Merchant.id, SubStore.status.in_((SubStore.APPROVED, SubStore.FROZEN)))
        .exists()
    )
    has_promoter = select(Promoter.id).where(Promoter.merchant_id == Merchant.id).exists()
    rows = db.session.execute(
        select(Merchant.id, Merchant.status, has_store, has_promoter).where(Merchant.id.in_(merchant_ids))
    ).all()
    return {
        mid: AccountRoles(status in (Merchant.APPROVED, Merchant.FROZEN), bool(store), bool(promoter))
        for mid, status, store, promoter in rows
    }


# -- the dashboard's figures ------------------------------------------------------------------


@dataclass(frozen=True)
class ResaleFigures:
    orders: int  # sub-store orders delivered (later refunds included)
    total: int  # what their buyers paid
    margins: int  # the resellers' margins (total less the floor)
    floors: int  # what the merchants asked (the floor prices)
    margins_reversed: int  # margins taken back by refunds
    fees: int  # the platform's fees on the margins, less those returned


@dataclass(frozen=True)
class AffiliateFigures:
    orders: int  # referred orders delivered
    total: int
    commissions: int  # fixed at payment, credited at delivery
    commissions_reversed: int  # taken back by refunds
    fees: int  # the platform's fees on the commissions, less those returned


@dataclass(frozen=True)
class ProgrammeFigures:
    resale_enabled: bool
    affiliate_enabled: bool
    pending_substores: int
    month: tuple[ResaleFigures, AffiliateFigures]  # the last FIGURE_DAYS days
    all_time: tuple[ResaleFigures, AffiliateFigures]


_SUMMED_KINDS = (
    LedgerEntry.RESALE_REFUND,
    LedgerEntry.RESALE_FEE,
    LedgerEntry.RESALE_FEE_RETURN,
    LedgerEntry.COMMISSION_REFUND,
    LedgerEntry.COMMISSION_FEE,
    LedgerEntry.COMMISSION_FEE_RETURN,
)


def programme_figures(now: datetime | None = None) -> ProgrammeFigures:
    """Each programme's figures over the last FIGURE_DAYS days and all time, in three
    statements whatever the number of orders: the delivered sub-store and referred orders
    (by the time of delivery), the ledger's reversals and fees by kind (by the time of
    the entry), and the pending applications. A reversed margin or commission counts
    positive; fees are the platform's income (fees taken less fees returned)."""
    since = (now or clock.now()) - timedelta(days=FIGURE_DAYS)
    recent = Order.delivered_at >= since
    is_store, is_referred = Order.substore_id.is_not(None), Order.promoter_id.is_not(None)
    floor = func.coalesce(Order.resale_base, Order.total)

    def sums(condition, value):
        return (
            func.coalesce(func.sum(case((condition & recent, value), else_=0)), 0),
            func.coalesce(func.sum(case((condition, value), else_=0)), 0),
        )

    columns = [
        *sums(is_store, 1),
        *sums(is_store, Order.total),
        *sums(is_store, Order.total - floor),
        *sums(is_store, floor),
        *sums(is_referred, 1),
        *sums(is_referred, Order.total),
        *sums(is_referred, Order.commission),
    ]
    row = db.session.execute(select(*columns).where(Order.delivered_at.is_not(None), is_store | is_referred)).one()
    o = [int(v) for v in row]

    entry_recent = LedgerEntry.created_at >= since
    by_kind = {
        kind: (int(recent_sum), int(all_sum))
        for kind, recent_sum, all_sum in db.session.execute(
            select(
                LedgerEntry.kind,
                func.coalesce(func.sum(case((entry_recent, LedgerEntry.amount), else_=0)), 0),
                func.coalesce(func.sum(LedgerEntry.amount), 0),
            )
            .where(LedgerEntry.kind.in_(_SUMMED_KINDS))
            .group_by(LedgerEntry.kind)
        ).all()
    }
    pending = db.session.scalar(select(func.count()).select_from(SubStore).where(WAITING))

    def kind(name: str, i: int) -> int:
        return by_kind.get(name, (0, 0))[i]

    def figures(i: int) -> tuple[ResaleFigures, AffiliateFigures]:
        resale = ResaleFigures(
            orders=o[0 + i],
            total=o[2 + i],
            margins=o[4 + i],
            floors=o[6 + i],
            margins_reversed=-kind(LedgerEntry.RESALE_REFUND, i),
            fees=-(kind(LedgerEntry.RESALE_FEE, i) + kind(LedgerEntry.RESALE_FEE_RETURN, i)),
        )
        affiliate = AffiliateFigures(
            orders=o[8 + i],
            total=o[10 + i],
            commissions=o[12 + i],
            commissions_reversed=-kind(LedgerEntry.COMMISSION_REFUND, i),
            fees=-(kind(LedgerEntry.COMMISSION_FEE, i) + kind(LedgerEntry.COMMISSION_FEE_RETURN, i)),
        )
        return resale, affiliate

    return ProgrammeFigures(
        resale_enabled=settings.programme_enabled("resale"),
        affiliate_enabled=settings.programme_enabled("affiliate"),
        pending_substores=int(pending or 0),
        month=figures(0),
        all_time=figures(1),
    )
