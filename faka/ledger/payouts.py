"""Where a merchant's money leaves: payout accounts, and withdrawals decided by an
operator.

A withdrawal takes its amount out of `available` from the moment it is requested (a
WITHDRAWAL entry), so two requests can never spend the same money; a rejection puts it
back with a WITHDRAWAL_RETURN entry.
"""

import hashlib
import re
from datetime import datetime

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.accounts import passkeys, twofactor
from faka.accounts.models import Merchant, User
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.growth.models import Promoter, SubStore
from faka.ledger.balances import balance
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.messaging import push
from faka.messaging.mail import queue_email
from faka.platform import audit

PAYOUT_KIND_LABELS = {
    PayoutAccount.ALIPAY: _l("Alipay"),
    PayoutAccount.BANK: _l("Bank card"),
    PayoutAccount.USDT: _l("USDT (TRC20)"),
}
MIN_WITHDRAWAL = 100  # fen
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


def _role_statuses(account: Merchant) -> tuple[str, str | None, str | None]:
    """The account's status as a merchant, as a sub-store's owner and as a promoter
    (None: it has no such role), in one statement."""
    store = select(SubStore.status).where(SubStore.merchant_id == account.id).scalar_subquery()
    promoter = select(Promoter.status).where(Promoter.merchant_id == account.id).scalar_subquery()
    store_status, promoter_status = db.session.execute(select(store, promoter)).one()
    return account.status, store_status, promoter_status


def payouts_frozen(account: Merchant) -> bool:
    """The operator froze the account as a merchant, or its sub-store, or its promoter
    role: no money leaves it (what it sold still delivers)."""
    return _frozen(*_role_statuses(account))


def _frozen(merchant: str, store: str | None, promoter: str | None) -> bool:
    return merchant == Merchant.FROZEN or store == SubStore.FROZEN or promoter == Promoter.FROZEN


def may_withdraw(account: Merchant) -> bool:
    """An approved merchant, the owner of an approved sub-store and an active promoter
    may withdraw, unless any of those roles is frozen."""
    statuses = _role_statuses(account)
    merchant, store, promoter = statuses
    if _frozen(*statuses):
        return False
    return merchant == Merchant.APPROVED or store == SubStore.APPROVED or promoter == Promoter.ACTIVE


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
        if not may_withdraw(merchant):
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
        if to != Withdrawal.REJECTED and payouts_frozen(merchant):
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
        push.withdrawal_event(withdrawal, current_app.config["CURRENCY"])
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


def _audit(actor_id: int | None, action: str, target: str, detail: str = "") -> None:
    audit.record(actor_id, action, target, detail=detail)
