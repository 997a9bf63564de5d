"""Operator console: the withdrawal queue, the platform's fee ledger, and reconciliation."""

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

from flask import abort, current_app, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField, TextAreaField
from wtforms.validators import DataRequired, Length

from faka.core import tasks
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import page_count
from faka.growth import programmes
from faka.ledger import payouts, settlement
from faka.ledger.models import Withdrawal
from faka.platform.analytics import DEFAULT_TIMEZONE
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number


class PaidForm(FlaskForm):
    reference = StringField(
        _l("Payment reference"),
        validators=[
            DataRequired(_l("Enter the payment's reference.")),
            Length(max=64, message=_l("The reference is at most 64 characters.")),
        ],
    )


class RejectForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            DataRequired(_l("Give a reason for the rejection.")),
            Length(max=500, message=_l("The reason is at most 500 characters.")),
        ],
    )


QUEUE_FILTER_LABELS = {
    settlement.QUEUE_OPEN: _l("Open"),
    Withdrawal.REQUESTED: _l("Requested"),
    Withdrawal.APPROVED: _l("Approved"),
    Withdrawal.PAID: _p("withdrawal", "Paid"),
    Withdrawal.REJECTED: _l("Rejected"),
    "all": _l("All"),
}


def _queue_filter() -> str:
    status = request.args.get("status", settlement.QUEUE_OPEN)
    return status if status in settlement.QUEUE_FILTERS else settlement.QUEUE_OPEN


def _render_queue(code: int = 200, error: str | None = None, revealed: dict | None = None):
    status, page = _queue_filter(), page_number()
    rows, total = settlement.withdrawal_queue(status, page)
    return render_template(
        "operator/withdrawals.html",
        rows=rows,
        total=total,
        status=status,
        page=page,
        pages=page_count(total, settlement.PER_PAGE),
        filters=QUEUE_FILTER_LABELS,
        error=error,
        revealed=revealed or {},
        status_labels=payouts.WITHDRAWAL_STATUS_LABELS,
        paid_form=PaidForm(formdata=None),
        reject_form=RejectForm(formdata=None),
        roles=programmes.account_roles(sorted({row.withdrawal.merchant_id for row in rows})),
    ), code


def _back_to_queue():
    return redirect(url_for("operator.withdrawals", status=_queue_filter()), 303)


@bp.get("/withdrawals")
def withdrawals():
    return _render_queue()


@bp.post("/withdrawals/<int:withdrawal_id>/approve")
def withdrawal_approve(withdrawal_id: int):
    return _decide(lambda: payouts.approve_withdrawal(withdrawal_id, current_user.id))


@bp.post("/withdrawals/<int:withdrawal_id>/paid")
def withdrawal_paid(withdrawal_id: int):
    form = PaidForm()
    if not form.validate():
        return _render_queue(400, _first_error(form))
    return _decide(lambda: payouts.mark_withdrawal_paid(withdrawal_id, current_user.id, reference=form.reference.data))


@bp.post("/withdrawals/<int:withdrawal_id>/reject")
def withdrawal_reject(withdrawal_id: int):
    form = RejectForm()
    if not form.validate():
        return _render_queue(400, _first_error(form))
    return _decide(lambda: payouts.reject_withdrawal(withdrawal_id, current_user.id, form.reason.data))


@bp.post("/withdrawals/<int:withdrawal_id>/reveal")
def withdrawal_reveal(withdrawal_id: int):
    """Show one payout account number in full, for paying it; the look is audited."""
    if not FlaskForm().validate():
        abort(400)
    try:
        number = settlement.reveal_payout_account(withdrawal_id, current_user.id)
    except NotFound:
        abort(404)
    return _render_queue(revealed={withdrawal_id: number})


def _decide(decision):
    try:
        decision()
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _render_queue(400, str(exc.message))
    return _back_to_queue()


def _first_error(form: FlaskForm) -> str:
    for messages in form.errors.values():
        if messages:
            return str(messages[0])
    return _("The request could not be completed.")


@bp.get("/ledger")
def platform_ledger():
    since, until = _day_arg("since"), _day_arg("until")
    if until is not None:
        until += timedelta(days=1)  # the form's "until" day is included
    book = settlement.platform_ledger(since, until, page_number())
    return render_template(
        "operator/platform_ledger.html",
        book=book,
        since=request.args.get("since", ""),
        until=request.args.get("until", ""),
    )


def _day_arg(name: str) -> datetime | None:
    value = request.args.get(name, "").strip()
    if not value:
        return None
    try:
        day = datetime.strptime(value, "%Y-%m-%d").date()
    except ValueError:
        abort(400)
    # Local days, like the per-day table.
    tz = ZoneInfo(current_app.config.get("BABEL_DEFAULT_TIMEZONE") or DEFAULT_TIMEZONE)
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


@bp.get("/reconciliation")
def reconciliation():
    return render_template("operator/reconciliation.html", report=settlement.books_report())


@bp.post("/reconciliation/check")
def reconciliation_check():
    """Check every order again now (a job: on a big shop it takes a while)."""
    if not FlaskForm().validate():
        abort(400)
    tasks.enqueue(settlement.CHECK_TASK)
    flash(_("The full check of the books has started; this page shows its result once it has finished."), "info")
    return redirect(url_for("operator.reconciliation"), 303)


NAV.append(("operator.withdrawals", _l("Withdrawals")))
NAV.append(("operator.platform_ledger", _l("Platform ledger")))
NAV.append(("operator.reconciliation", _l("Reconciliation")))
