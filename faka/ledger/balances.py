"""A merchant's money: balances summed from the append-only ledger, payout accounts,
withdrawals decided by an operator, and refunds.

Every movement is a LedgerEntry; nothing here updates or deletes one. A balance is a
sum over the merchant's entries, split by where each entry stands at a moment `now`:

- pending: credited but still inside the settlement hold (available_at > now);
- available: settled (available_at <= now), net of withdrawals in flight and paid;
- frozen: entries of orders with an open complaint, whatever their hold;
- withdrawn: money paid out (the WITHDRAWAL entries of paid withdrawals).

A withdrawal takes its amount out of `available` from the moment it is requested (a
WITHDRAWAL entry), so two requests can never spend the same money; a rejection puts it
back with a WITHDRAWAL_RETURN entry. A refund takes the sale back with REFUND and
FEE_RETURN entries that settle when the sale would have, so refunding an order still
in its hold never touches money that is already available.
"""

import hashlib
import re
from dataclasses import dataclass
from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, case, false, func, not_, select

from faka.accounts import passkeys, twofactor
from faka.accounts.models import Merchant, User
from faka.complaints.models import Complaint
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import paginate
from faka.extensions import db
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.messaging.mail import queue_email
from faka.orders.models import Order
from faka.payments.models import Refund
from faka.platform import audit

LEDGER_KINDS = (
    LedgerEntry.SALE,
    LedgerEntry.FEE,
    LedgerEntry.REFUND,
    LedgerEntry.FEE_RETURN,
    LedgerEntry.WITHDRAWAL,
    LedgerEntry.WITHDRAWAL_RETURN,
)
# What a merchant's ledger calls each kind of entry.
LEDGER_KIND_LABELS = {
    LedgerEntry.SALE: _l("Sale"),
    LedgerEntry.FEE: _l("Platform fee"),
    LedgerEntry.REFUND: _l("Refund"),
    LedgerEntry.FEE_RETURN: _l("Fee returned"),
    LedgerEntry.WITHDRAWAL: _l("Withdrawal"),
    LedgerEntry.WITHDRAWAL_RETURN: _l("Withdrawal returned"),
}
PAYOUT_KIND_LABELS = {
    PayoutAccount.ALIPAY: _l("Alipay"),
    PayoutAccount.BANK: _l("Bank card"),
    PayoutAccount.USDT: _l("USDT (TRC20)"),
}
MIN_WITHDRAWAL = 100  # fen
LEDGER_PER_PAGE = 50
MAX_PER_PAGE = 200
EMAIL_WITHDRAWAL_STATUS = "withdrawal_status"
EMAIL_PAYOUT_ACCOUNT_ADDED = "payout_account_added"

# Which decision may follow which: requested -> approved -> paid; rejected from either.
_NEXT_STATUSES = {
    Withdrawal.REQUESTED: {Withdrawal.APPROVED, Withdrawal.REJECTED},
    Withdrawal.APPROVED: {Withdrawal.PAID, Withdrawal.REJECTED},
    Withdrawal.PAID: set(),
    Withdrawal.REJECTED: set(),
}
WITHDRAWAL_STATUS_LABELS = {
    Withdrawal.REQUESTED: _l("Requested"),
    Withdrawal.APPROVED: _l("Approved, payment on its way"),
    Withdrawal.PAID: _l("Paid out"),
    Withdrawal.REJECTED: _l("Rejected"),
}


# -- errors -----------------------------------------------------------------------------


class InvalidPayoutAccount(DomainError):
    message = _l("That payout account is not valid.")


class TwoFactorRequired(DomainError):
    message = _l("Turn on two-factor authentication before requesting a withdrawal.")


class PayoutTwoFactorRequired(TwoFactorRequired):
    message = _l("Turn on two-factor authentication before adding a payout account.")


class InvalidWithdrawalAmount(DomainError):
    message = _l("Enter a whole amount of at least the minimum withdrawal.")


class InsufficientBalance(DomainError):
    message = _l("The amount is more than the available balance.")


class PayoutsStopped(DomainError):
    message = _l("Payouts are stopped for this merchant.")


class IllegalWithdrawalTransition(DomainError):
    message = _l("This withdrawal has already been decided and cannot change that way.")


class RejectionReasonRequired(DomainError):
    message = _l("Give a reason for the rejection.")


class OrderNotRefundable(DomainError):
    message = _l("This order cannot be refunded in its current state.")


class RefundNotCovered(DomainError):
    message = _l("The merchant's available balance cannot cover this refund.")


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
    """The merchant's orders whose settlement is frozen: those with a complaint in
    progress. All their ledger entries count as frozen instead of pending or available
    until the complaint is resolved or withdrawn."""
    return set(
        db.session.execute(
            select(Complaint.order_id).where(
                Complaint.merchant_id == merchant_id, Complaint.status.in_(Complaint.ACTIVE)
            )
        ).scalars()
    )


def balance(merchant_id: int, now: datetime | None = None) -> Balance:
    """The merchant's balance at `now` (default: the current time), in one query."""
    now = now or clock.now()
    frozen_ids = frozen_order_ids(merchant_id)
    is_frozen = LedgerEntry.order_id.in_(sorted(frozen_ids)) if frozen_ids else false()

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
        .where(LedgerEntry.merchant_id == merchant_id)
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
    )
    return found.items, found.total


# -- payout accounts --------------------------------------------------------------------

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[A-Za-z]{2,}$")
_CN_MOBILE = re.compile(r"^1[3-9]\d{9}$")
_BANK_CARD = re.compile(r"^\d{12,30}$")
_BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
_TRON_ADDRESS = re.compile(rf"^T[{_BASE58}]{{33}}$")
MAX_HOLDER_LENGTH = 80


def add_payout_account(merchant_id: int, kind: str, holder: str, account: str) -> PayoutAccount:
    """Save where the merchant wants to be paid. The account number is checked for its
    kind (Alipay: email or mainland mobile; bank: 12–30 digits; USDT: a TRC20 address
    with a valid checksum) and stored encrypted; only its last characters stay readable.
    The merchant is emailed, so an account added behind their back does not go unseen."""
    holder, account = _checked_payout_account(kind, holder, account)
    with write_transaction():
        merchant = db.session.get(Merchant, merchant_id)
        if merchant is None:
            raise NotFound()
        payout = PayoutAccount(
            merchant_id=merchant_id,
            kind=kind,
            holder=holder,
            account_ciphertext=vault().encrypt(account),
            account_hint=account[-4:],
        )
        db.session.add(payout)
        db.session.flush()
        _audit(
            merchant.user_id, "payout_account.added", f"merchant:{merchant_id}", f"payout_account:{payout.id} {kind}"
        )
        email = _queue_payout_account_email(payout, merchant)
        tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return payout


def add_payout_account_confirmed(
    merchant_id: int,
    user_id: int,
    code: str,
    kind: str,
    holder: str,
    account: str,
    passkey: "passkeys.Proof | None" = None,
) -> PayoutAccount:
    """add_payout_account, asked from the back office: only with a fresh code from the
    merchant's authenticator app (or a recovery code), or a passkey's signature of a fresh
    challenge, so a stolen session alone cannot send the shop's money elsewhere. The
    account is checked before the code is spent."""
    _checked_payout_account(kind, holder, account)
    _confirm_second_factor(merchant_id, user_id, code, PayoutTwoFactorRequired, passkey)
    return add_payout_account(merchant_id, kind, holder, account)


def _checked_payout_account(kind: str, holder: str, account: str) -> tuple[str, str]:
    holder = (holder or "").strip()
    if not holder or len(holder) > MAX_HOLDER_LENGTH:
        raise InvalidPayoutAccount(_l("Enter the account holder's name (at most 80 characters)."))
    return holder, _normalised_account(kind, account or "")


def _confirm_second_factor(
    merchant_id: int,
    user_id: int,
    code: str,
    required: type[TwoFactorRequired],
    passkey: "passkeys.Proof | None" = None,
) -> None:
    """The merchant's own user confirms with a current code (twofactor.verify_login: a
    code is good once, and wrong ones count toward the account's lockout), or with one of
    their passkeys (passkeys.verify_second_factor: a challenge is good once, and refused
    signatures count the same)."""
    user = db.session.get(User, user_id)
    if user is None or _merchant_user_id(merchant_id) != user_id:
        raise NotFound()
    if not user.two_factor_enabled:
        raise required()
    if passkey is not None:
        passkeys.verify_second_factor(user_id, passkey, passkey.ip, passkey.device_hash, "confirmation")
    else:
        twofactor.verify_login(user_id, code)


def _queue_payout_account_email(payout: PayoutAccount, merchant: Merchant):
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        subject = _("A payout account was added to your shop")
    context = {
        "merchant_name": merchant.name,
        "account_kind": payout.kind,
        "account_hint": payout.account_hint,
        "holder": payout.holder,
        "money_url": current_app.config["BASE_URL"].rstrip("/")
        + current_app.url_map.bind("").build("merchant.money_overview"),
    }
    return queue_email(
        EMAIL_PAYOUT_ACCOUNT_ADDED,
        merchant.user.email,
        subject,
        context,
        locale,
        user_id=merchant.user_id,
        merchant_id=merchant.id,
    )


def _normalised_account(kind: str, account: str) -> str:
    account = account.strip()
    if kind == PayoutAccount.ALIPAY:
        if _CN_MOBILE.match(account):
            return account
        if _EMAIL.match(account) and len(account) <= 254:
            return account.lower()
        raise InvalidPayoutAccount(_l("An Alipay account is an email address or an 11-digit mobile number."))
    if kind == PayoutAccount.BANK:
        digits = re.sub(r"[\s-]", "", account)
        if _BANK_CARD.match(digits):
            return digits
        raise InvalidPayoutAccount(_l("A bank card number has 12 to 30 digits."))
    if kind == PayoutAccount.USDT:
        if _TRON_ADDRESS.match(account) and _tron_checksum_ok(account):
            return account
        raise InvalidPayoutAccount(_l("A USDT-TRC20 address starts with T and has 34 characters; check it for typos."))
    raise InvalidPayoutAccount(_l("Choose Alipay, bank card or USDT-TRC20."))


def _tron_checksum_ok(address: str) -> bool:
    """Base58Check: 0x41 + 20-byte hash + the first 4 bytes of a double SHA-256. Catches
    a mistyped character before money is sent to it."""
    number = 0
    for char in address:
        number = number * 58 + _BASE58.index(char)
    raw = number.to_bytes(25, "big") if number < 1 << 200 else b""
    if len(raw) != 25 or raw[0] != 0x41:
        return False
    return hashlib.sha256(hashlib.sha256(raw[:21]).digest()).digest()[:4] == raw[21:]


def remove_payout_account(merchant_id: int, payout_account_id: int) -> None:
    """Stop offering an account for withdrawals. It is kept (soft-deleted) because past
    withdrawals refer to it."""
    with write_transaction():
        payout = _live_payout_account(merchant_id, payout_account_id)
        payout.deleted_at = clock.now()
        _audit(
            _merchant_user_id(merchant_id),
            "payout_account.removed",
            f"merchant:{merchant_id}",
            f"payout_account:{payout.id}",
        )


def payout_accounts(merchant_id: int) -> list[PayoutAccount]:
    """The merchant's saved payout accounts, oldest first."""
    return list(
        db.session.execute(
            select(PayoutAccount)
            .where(PayoutAccount.merchant_id == merchant_id, PayoutAccount.deleted_at.is_(None))
            .order_by(PayoutAccount.id)
        ).scalars()
    )


def payout_account_number(payout: PayoutAccount) -> str:
    """The full account number, for the operator who pays the withdrawal."""
    return vault().decrypt(payout.account_ciphertext)


def _live_payout_account(merchant_id: int, payout_account_id: int) -> PayoutAccount:
    payout = db.session.get(PayoutAccount, payout_account_id)
    if payout is None or payout.merchant_id != merchant_id or payout.deleted_at is not None:
        raise NotFound()
    return payout


def _merchant_user_id(merchant_id: int) -> int | None:
    return db.session.scalar(select(Merchant.user_id).where(Merchant.id == merchant_id))


# -- withdrawals ------------------------------------------------------------------------


def request_withdrawal(
    merchant_id: int, user_id: int, payout_account_id: int, amount: int, now: datetime | None = None
) -> Withdrawal:
    """Ask for `amount` of the available balance to be paid to a saved account.

    The balance check and the WITHDRAWAL entry that takes the money out of `available`
    happen in one write transaction with the merchant row locked, so two requests at
    once cannot both spend the same balance. `now` is for tests; it defaults to the
    current time.
    """
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < MIN_WITHDRAWAL:
        raise InvalidWithdrawalAmount()
    now = now or clock.now()
    with write_transaction():
        merchant = db.session.execute(
            select(Merchant)
            .where(Merchant.id == merchant_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if merchant is None or merchant.user_id != user_id:
            raise NotFound()
        if merchant.status != Merchant.APPROVED:
            raise PayoutsStopped()
        if not db.session.get(User, user_id).two_factor_enabled:
            raise TwoFactorRequired()
        _live_payout_account(merchant_id, payout_account_id)
        if amount > balance(merchant_id, now).available:
            raise InsufficientBalance()
        withdrawal = Withdrawal(
            merchant_id=merchant_id,
            payout_account_id=payout_account_id,
            amount=amount,
            status=Withdrawal.REQUESTED,
            created_at=now,
        )
        db.session.add(withdrawal)
        db.session.flush()
        db.session.add(
            LedgerEntry(
                merchant_id=merchant_id,
                withdrawal_id=withdrawal.id,
                kind=LedgerEntry.WITHDRAWAL,
                amount=-amount,
                available_at=now,
                created_at=now,
            )
        )
        _audit(
            user_id, "withdrawal.requested", f"withdrawal:{withdrawal.id}", f"merchant:{merchant_id} amount={amount}"
        )
    return withdrawal


def request_withdrawal_confirmed(
    merchant_id: int,
    user_id: int,
    code: str,
    payout_account_id: int,
    amount: int,
    passkey: "passkeys.Proof | None" = None,
) -> Withdrawal:
    """request_withdrawal, asked from the back office: only with a fresh code from the
    merchant's authenticator app (or a recovery code), or a passkey, like adding a
    payout account."""
    if isinstance(amount, bool) or not isinstance(amount, int) or amount < MIN_WITHDRAWAL:
        raise InvalidWithdrawalAmount()
    # What the request would refuse anyway is refused before the code is spent (and
    # checked again, under the merchant's lock, by request_withdrawal).
    _live_payout_account(merchant_id, payout_account_id)
    if amount > balance(merchant_id).available:
        raise InsufficientBalance()
    _confirm_second_factor(merchant_id, user_id, code, TwoFactorRequired, passkey)
    return request_withdrawal(merchant_id, user_id, payout_account_id, amount)


def approve_withdrawal(withdrawal_id: int, operator_id: int, now: datetime | None = None) -> Withdrawal:
    """The operator accepts the request; paying it is the next step."""
    return _decide(withdrawal_id, operator_id, Withdrawal.APPROVED, None, now)


def mark_withdrawal_paid(
    withdrawal_id: int, operator_id: int, now: datetime | None = None, reference: str | None = None
) -> Withdrawal:
    """The operator has sent the money to the payout account; `reference` is the
    payment's reference (bank or Alipay transaction number), kept on the withdrawal."""
    reference = (reference or "").strip()[:64] or None
    return _decide(withdrawal_id, operator_id, Withdrawal.PAID, None, now, reference)


def reject_withdrawal(withdrawal_id: int, operator_id: int, reason: str, now: datetime | None = None) -> Withdrawal:
    """The operator refuses the request, saying why; its amount becomes available again."""
    reason = (reason or "").strip()
    if not reason:
        raise RejectionReasonRequired()
    return _decide(withdrawal_id, operator_id, Withdrawal.REJECTED, reason, now)


def _decide(
    withdrawal_id: int,
    operator_id: int,
    to: str,
    reason: str | None,
    now: datetime | None,
    reference: str | None = None,
) -> Withdrawal:
    now = now or clock.now()
    with write_transaction():
        operator = db.session.get(User, operator_id)
        if operator is None or not operator.is_operator:
            raise NotFound()
        withdrawal = db.session.execute(
            select(Withdrawal)
            .where(Withdrawal.id == withdrawal_id)
            .with_for_update()
            .execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if withdrawal is None:
            raise NotFound()
        if to not in _NEXT_STATUSES[withdrawal.status]:
            raise IllegalWithdrawalTransition()
        merchant = db.session.get(Merchant, withdrawal.merchant_id)
        if to != Withdrawal.REJECTED and merchant.status == Merchant.FROZEN:
            raise PayoutsStopped()
        withdrawal.status = to
        withdrawal.decided_at = now
        if reason is not None:
            withdrawal.reason = reason
        if reference is not None:
            withdrawal.reference = reference
        if to == Withdrawal.REJECTED:
            db.session.add(
                LedgerEntry(
                    merchant_id=withdrawal.merchant_id,
                    withdrawal_id=withdrawal.id,
                    kind=LedgerEntry.WITHDRAWAL_RETURN,
                    amount=withdrawal.amount,
                    available_at=now,
                    created_at=now,
                )
            )
        detail = f"merchant:{withdrawal.merchant_id} amount={withdrawal.amount}"
        _audit(
            operator_id,
            f"withdrawal.{to}",
            f"withdrawal:{withdrawal.id}",
            detail + (f" reason={reason}" if reason else "") + (f" reference={reference}" if reference else ""),
        )
        email = _queue_status_email(withdrawal, merchant)
        tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return withdrawal


def _queue_status_email(withdrawal: Withdrawal, merchant: Merchant):
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    payout = db.session.get(PayoutAccount, withdrawal.payout_account_id)
    with force_locale(locale):
        label = str(WITHDRAWAL_STATUS_LABELS[withdrawal.status])
        subject = _("Withdrawal #%(id)s: %(status)s", id=withdrawal.id, status=label)
    context = {
        "withdrawal_id": withdrawal.id,
        "amount": withdrawal.amount,
        "currency": current_app.config["CURRENCY"],
        "status": withdrawal.status,
        "reason": withdrawal.reason,
        "account_kind": payout.kind,
        "account_hint": payout.account_hint,
        "merchant_name": merchant.name,
    }
    return queue_email(
        EMAIL_WITHDRAWAL_STATUS,
        merchant.user.email,
        subject,
        context,
        locale,
        user_id=merchant.user_id,
        merchant_id=merchant.id,
    )


# -- refunds ----------------------------------------------------------------------------


def refund_order(
    order_id: int,
    merchant_id: int,
    actor_id: int | None,
    allowed_statuses: tuple[str, ...] = (Order.PAID_UNFULFILLED,),
    now: datetime | None = None,
) -> bool:
    """Refund the merchant's whole order (from the back office: a paid order that sold
    out before delivery). Returns True when this call refunded it; an order already
    refunded is left alone. A refund of settled money is refused when the available
    balance cannot cover it (RefundNotCovered)."""
    now = now or clock.now()
    with write_transaction():
        order = _locked_order(order_id)
        if order is None or order.merchant_id != merchant_id:
            raise NotFound()
        if order.status == Order.REFUNDED:
            return False
        if order.status not in allowed_statuses:
            raise OrderNotRefundable()
        refund = apply_refund(order, order.total, actor_id, now)
        tasks.enqueue("payments.tasks.refund_payment", refund.id, job_id=f"refund-{refund.id}")
    return True


def _locked_order(order_id: int) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def returned_fee(fee_taken: int, refunded: int, total: int) -> int:
    """The share of the platform fee given back with a refund of `refunded` out of
    `total`: all of it for a full refund, in proportion (rounded down) for a part."""
    return fee_taken if refunded >= total else fee_taken * refunded // total


def apply_refund(
    order: Order,
    amount: int,
    actor_id: int | None,
    now: datetime,
    complaint_id: int | None = None,
    allow_negative: bool = False,
) -> Refund:
    """Refund `amount` of a locked order inside the caller's write transaction: the order
    becomes refunded (or partially refunded), the merchant is debited, and a Refund
    records how the money reaches the buyer (the caller enqueues "payments.tasks.refund_payment",
    which write_transaction() sends once it has committed).

    The sale the merchant was credited for is taken back in part or whole (REFUND) with
    the matching share of the fee (FEE_RETURN). Those entries settle when the sale does,
    so a refund inside the hold only cancels pending money. A refund of settled money
    must be covered by the available balance unless `allow_negative` (a complaint's
    decision: the balance may go below zero, which blocks withdrawals until sales
    cover it). An order whose settlement is frozen is refunded out of the frozen money.
    """
    if order.status not in (Order.PAID, Order.DELIVERED, Order.PAID_UNFULFILLED):
        raise OrderNotRefundable()
    merchant_id = order.merchant_id
    # Locked like a withdrawal request, so the two cannot both spend the same balance.
    db.session.execute(select(Merchant.id).where(Merchant.id == merchant_id).with_for_update())
    entries = {
        e.kind: e
        for e in db.session.execute(
            select(LedgerEntry).where(
                LedgerEntry.order_id == order.id, LedgerEntry.kind.in_((LedgerEntry.SALE, LedgerEntry.FEE))
            )
        ).scalars()
    }
    sale, fee = entries.get(LedgerEntry.SALE), entries.get(LedgerEntry.FEE)
    fee_back = returned_fee(-fee.amount, amount, order.total) if fee is not None else 0
    if sale is not None:
        settles_at = max(now, sale.available_at)
        takes_available = settles_at <= now and order.id not in frozen_order_ids(merchant_id)
        if takes_available and not allow_negative and amount - fee_back > balance(merchant_id, now).available:
            raise RefundNotCovered()
    was = order.status
    order.mark_refunded(now, amount)
    if sale is not None:
        db.session.add(
            LedgerEntry(
                merchant_id=merchant_id,
                order_id=order.id,
                kind=LedgerEntry.REFUND,
                amount=-amount,
                available_at=settles_at,
                created_at=now,
            )
        )
        if fee_back:
            db.session.add(
                LedgerEntry(
                    merchant_id=merchant_id,
                    order_id=order.id,
                    kind=LedgerEntry.FEE_RETURN,
                    amount=fee_back,
                    available_at=settles_at,
                    created_at=now,
                )
            )
    refund = Refund(
        order_id=order.id,
        merchant_id=merchant_id,
        complaint_id=complaint_id,
        amount=amount,
        gateway=order.gateway,
        status=Refund.PENDING,
        created_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    _audit(
        actor_id,
        "order.refunded",
        f"order:{order.id}",
        f"merchant:{merchant_id} was={was} amount={amount} of={order.total}"
        + (f" complaint:{complaint_id}" if complaint_id else ""),
    )
    return refund


def _audit(actor_id: int | None, action: str, target: str, detail: str = "") -> None:
    audit.record(actor_id, action, target, detail=detail)
