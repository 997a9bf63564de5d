"""Operator decisions on merchants: review of the qualification, freezing, and terms; and
help with the shop owner's login (two-factor reset, a password-reset link).

Each decision is one write transaction that changes the merchant, records an audit event
with the fields before and after, and (where the merchant should know) queues a
`merchant_review` email, sent after the commit.
"""

from dataclasses import dataclass

from flask import current_app
from flask_babel import force_locale
from flask_babel import lazy_gettext as _l
from sqlalchemy import func, or_, select
from sqlalchemy.orm import joinedload

from faka.accounts import passkeys, sessions, users
from faka.accounts.models import Merchant, User
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.messaging.mail import queue_email, queue_owner_email
from faka.orders.models import Order
from faka.platform import audit

EMAIL_MERCHANT_REVIEW = "merchant_review"
EMAIL_TWO_FACTOR_RESET = "two_factor_reset"
MAX_FEE_RATE_BP = 5000
MAX_HOLD_DAYS = 60
MAX_REASON = 2000

# The subject of the email each decision sends.
_SUBJECTS = {
    "approved": _l("Your shop has been approved"),
    "rejected": _l("Your shop's qualification was rejected"),
    "info_requested": _l("More information needed for your shop"),
    "frozen": _l("Your shop has been frozen"),
    "unfrozen": _l("Your shop is open again"),
}


class IllegalTransition(DomainError):
    message = _l("That decision is not possible in the merchant's current state.")


class ReasonRequired(DomainError):
    message = _l("Enter a reason.")


class InvalidTerms(DomainError):
    message = _l("The fee rate must be 0 to 5000 basis points and the hold 0 to 60 days.")


def approve(operator_id: int, merchant_id: int) -> Merchant:
    """Pending with a submission → approved: its goods go on sale."""
    return _decide(operator_id, merchant_id, "approved", _is_submitted, Merchant.APPROVED)


def reject(operator_id: int, merchant_id: int, reason: str) -> Merchant:
    """Pending with a submission → rejected, with the reason the merchant sees."""
    return _decide(operator_id, merchant_id, "rejected", _is_submitted, Merchant.REJECTED, clean_reason(reason))


def request_info(operator_id: int, merchant_id: int, reason: str) -> Merchant:
    """Pending with a submission → pending without one: the merchant keeps its details,
    sees the reason and may submit again."""
    return _decide(operator_id, merchant_id, "info_requested", _is_submitted, Merchant.PENDING, clean_reason(reason))


def freeze(operator_id: int, merchant_id: int, reason: str) -> Merchant:
    """Approved → frozen: its goods leave the storefront and withdrawals stop; orders
    already paid are still delivered."""
    return _decide(
        operator_id,
        merchant_id,
        "frozen",
        lambda m: m.status == Merchant.APPROVED,
        Merchant.FROZEN,
        clean_reason(reason),
    )


def unfreeze(operator_id: int, merchant_id: int) -> Merchant:
    """Frozen → approved."""
    return _decide(operator_id, merchant_id, "unfrozen", lambda m: m.status == Merchant.FROZEN, Merchant.APPROVED)


def set_terms(operator_id: int, merchant_id: int, fee_rate_bp: int, hold_days: int) -> Merchant:
    """The platform fee and the settlement hold applied to the merchant's next sales."""
    if any(isinstance(v, bool) or not isinstance(v, int) for v in (fee_rate_bp, hold_days)) or not (
        0 <= fee_rate_bp <= MAX_FEE_RATE_BP and 0 <= hold_days <= MAX_HOLD_DAYS
    ):
        raise InvalidTerms()
    with write_transaction():
        merchant = _locked(merchant_id)
        before = {"fee_rate_bp": merchant.fee_rate_bp, "hold_days": merchant.hold_days}
        merchant.fee_rate_bp = fee_rate_bp
        merchant.hold_days = hold_days
        after = {"fee_rate_bp": fee_rate_bp, "hold_days": hold_days}
        if before != after:
            audit.record(operator_id, "merchant.terms", _target(merchant), before=before, after=after)
    return merchant


# -- the shop owner's login ------------------------------------------------------------------


class OperatorAccount(DomainError):
    message = _l(
        "This shop belongs to an operator account: operators manage their own password and two-factor authentication."
    )


class TwoFactorOff(DomainError):
    message = _l("This merchant does not use two-factor authentication: there is nothing to reset.")


def reset_two_factor(operator_id: int, merchant_id: int) -> int:
    """Turn off the shop owner's two-factor authentication (the authenticator app and
    every passkey), for one who lost the phone and the recovery codes: the next login asks for the password alone (and a lock left
    by wrong codes is lifted); they may set it up again. The owner is told by email (it
    waits in the outbox without SMTP). Returns that email's id."""
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with write_transaction():
        merchant = _locked(merchant_id)
        user = db.session.get(User, merchant.user_id, with_for_update=True)
        if user.is_operator:
            raise OperatorAccount()
        if not user.two_factor_enabled:
            raise TwoFactorOff()
        user.totp_secret = None
        user.recovery_codes = None
        passkeys.remove_all(user.id)
        user.failed_logins = 0
        user.locked_until = None
        sessions.end_all_sessions(user.id)  # the owner logs in again; no older session outlives the reset
        audit.record(
            operator_id,
            "merchant.2fa_reset",
            _target(merchant),
            before={"two_factor": True},
            after={"two_factor": False},
            detail=f"user:{user.id}",
        )
        with force_locale(locale):
            subject = str(_l("Two-factor authentication was turned off on your account"))
        base_url = current_app.config["BASE_URL"].rstrip("/")
        email = queue_email(
            EMAIL_TWO_FACTOR_RESET,
            user.email,
            subject,
            {"merchant_name": merchant.name, "setup_url": f"{base_url}/account/2fa"},
            locale,
            user_id=user.id,
            merchant_id=merchant.id,
        )
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return email.id


def send_password_reset(operator_id: int, merchant_id: int) -> int:
    """Email the shop owner a password-reset link, the same as the login page's "forgot
    password" sends (valid for an hour, spent by its first use). Without SMTP it waits in
    the outbox, where the operator can read it and pass it on. Returns the email's id."""
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with write_transaction():
        merchant = _locked(merchant_id)
        user = db.session.get(User, merchant.user_id)
        if user.is_operator:
            raise OperatorAccount()
        email = users.queue_password_reset(user, locale)
        audit.record(operator_id, "merchant.password_reset_sent", _target(merchant), detail=f"user:{user.id}")
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return email.id


def _is_submitted(merchant: Merchant) -> bool:
    return merchant.status == Merchant.PENDING and merchant.submitted_at is not None


def clean_reason(reason: str | None) -> str:
    """A decision's reason, trimmed; ReasonRequired when it is empty or too long."""
    reason = (reason or "").strip()
    if not reason:
        raise ReasonRequired()
    if len(reason) > MAX_REASON:
        raise ReasonRequired(_l("Keep the reason under 2000 characters."))
    return reason


def _target(merchant: Merchant) -> str:
    return f"merchant:{merchant.id}"


def _locked(merchant_id: int) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id, with_for_update=True)
    if merchant is None:
        raise NotFound()
    return merchant


def _state(merchant: Merchant) -> dict:
    return {
        "status": merchant.status,
        "submitted_at": merchant.submitted_at.isoformat() if merchant.submitted_at else None,
        "rejection_reason": merchant.rejection_reason,
    }


def _decide(
    operator_id: int, merchant_id: int, decision: str, allowed, to_status: str, reason: str | None = None
) -> Merchant:
    with write_transaction():
        merchant = _locked(merchant_id)
        if not allowed(merchant):
            raise IllegalTransition()
        before = _state(merchant)
        merchant.status = to_status
        merchant.reviewed_at = clock.now()
        if decision in ("rejected", "info_requested"):
            merchant.rejection_reason = reason
        elif decision == "approved":
            merchant.rejection_reason = None
        if decision == "info_requested":
            merchant.submitted_at = None
        audit.record(
            operator_id,
            f"merchant.{decision}",
            _target(merchant),
            before=before,
            after=_state(merchant),
            detail=reason or "",
        )
        email = _queue_email(merchant, decision, reason)
    tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
    return merchant


def _queue_email(merchant: Merchant, decision: str, reason: str | None):
    context = {"merchant_name": merchant.name, "decision": decision, "reason": reason or ""}
    return queue_owner_email(EMAIL_MERCHANT_REVIEW, merchant, _SUBJECTS[decision], context)


# -- reading: the queue, the list and per-merchant figures ---------------------------------

PER_PAGE = 50
STATUSES = (Merchant.PENDING, Merchant.APPROVED, Merchant.REJECTED, Merchant.FROZEN)
STATUS_LABELS = {
    Merchant.PENDING: _l("Awaiting approval"),
    Merchant.APPROVED: _l("Approved"),
    Merchant.REJECTED: _l("Rejected"),
    Merchant.FROZEN: _l("Frozen"),
}


@dataclass(frozen=True)
class MerchantFigures:
    delivered: int = 0
    sales: int = 0
    refunded: int = 0

    @property
    def refund_rate(self) -> float:
        finished = self.delivered + self.refunded
        return self.refunded / finished if finished else 0.0


def review_queue() -> list[Merchant]:
    """Merchants waiting for a decision on their qualification, oldest submission first."""
    return list(
        db.session.execute(
            select(Merchant)
            .options(joinedload(Merchant.user))
            .where(Merchant.status == Merchant.PENDING, Merchant.submitted_at.is_not(None))
            .order_by(Merchant.submitted_at, Merchant.id)
        ).scalars()
    )


def search_merchants(status: str | None = None, text: str | None = None, page: int = 1) -> Page:
    """One page of merchants, newest first, filtered by status and by name or login email;
    counted."""
    query = select(Merchant).join(User, User.id == Merchant.user_id)
    if status:
        query = query.where(Merchant.status == status)
    text = (text or "").strip().lower()
    if text:
        pattern = "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"
        query = query.where(
            or_(func.lower(Merchant.name).like(pattern, escape="\\"), func.lower(User.email).like(pattern, escape="\\"))
        )
    query = query.options(joinedload(Merchant.user))
    return paginate(query.order_by(Merchant.created_at.desc(), Merchant.id.desc()), page, PER_PAGE)


def figures(merchant_ids: list[int]) -> dict[int, MerchantFigures]:
    """Delivered orders, their sales and refunds of each merchant, in one grouped query."""
    if not merchant_ids:
        return {}
    rows = db.session.execute(
        select(Order.merchant_id, Order.status, func.count(), func.coalesce(func.sum(Order.total), 0))
        .where(Order.merchant_id.in_(merchant_ids), Order.status.in_((Order.DELIVERED, Order.REFUNDED)))
        .group_by(Order.merchant_id, Order.status)
    ).all()
    counts: dict[int, dict] = {}
    for merchant_id, status, count, total in rows:
        entry = counts.setdefault(merchant_id, {"delivered": 0, "sales": 0, "refunded": 0})
        if status == Order.DELIVERED:
            entry["delivered"] = count
            entry["sales"] = int(total)
        else:
            entry["refunded"] = count
    return {mid: MerchantFigures(**counts.get(mid, {})) for mid in merchant_ids}


def get_merchant(merchant_id: int) -> Merchant:
    merchant = db.session.get(Merchant, merchant_id)
    if merchant is None:
        raise NotFound()
    return merchant
