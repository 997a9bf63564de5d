"""Operator console: merchants (review queue, decisions, terms, help with their login) and
the audit log."""

from datetime import UTC, datetime, time, timedelta
from decimal import Decimal

from flask import Response, abort, redirect, render_template, request, stream_with_context, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from faka.accounts import review
from faka.accounts.onboarding import masked_id_number
from faka.core.errors import DomainError, NotFound
from faka.core.uploads import stored_image
from faka.messaging import mail
from faka.platform import audit
from faka.web.access import fresh_login_required
from faka.web.fields import DecimalField, IntegerField
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number
from faka.web.security import image_response


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"), validators=[InputRequired(_l("Enter a reason.")), Length(1, review.MAX_REASON)]
    )


class TermsForm(FlaskForm):
    # In percent, as the console shows rates; stored in basis points (2.5 -> 250).
    fee_rate = DecimalField(
        _l("Fee rate (%)"),
        validators=[
            InputRequired(_l("Enter the fee rate.")),
            NumberRange(0, review.MAX_FEE_RATE_BP // 100, _l("The fee rate must be %(min)s%% to %(max)s%%.")),
        ],
    )
    hold_days = IntegerField(
        _l("Settlement hold (days)"),
        validators=[
            InputRequired(_l("Enter the hold in days.")),
            NumberRange(0, review.MAX_HOLD_DAYS, _l("The hold must be 0 to 60 days.")),
        ],
    )

    def validate_fee_rate(self, field):
        if field.data is not None and (field.data * 100) % 1:
            raise ValidationError(_l("Give the fee rate with at most two decimals, such as 2.5."))

    @property
    def fee_rate_bp(self) -> int:
        return int(self.fee_rate.data * 100)


@bp.get("/merchants")
def merchants():
    status = request.args.get("status", "")
    status = status if status in review.STATUSES else ""
    text = request.args.get("q", "").strip()
    queue = review.review_queue()
    found = review.search_merchants(status or None, text, page_number())
    figures = review.figures(sorted({m.id for m in queue} | {m.id for m in found.items}))
    return render_template(
        "operator/merchants.html",
        queue=queue,
        merchants=found.items,
        figures=figures,
        total=found.total,
        page=found.page,
        pages=found.pages,
        status=status,
        q=text,
        statuses=review.STATUSES,
    )


def _merchant_or_404(merchant_id: int):
    try:
        return review.get_merchant(merchant_id)
    except NotFound:
        abort(404)


def _detail(merchant_id: int, error=None, reason_form=None, terms_form=None, status: int = 200):
    merchant = _merchant_or_404(merchant_id)
    if terms_form is None:
        terms_form = TermsForm(
            formdata=None,
            data={"fee_rate": (Decimal(merchant.fee_rate_bp) / 100).normalize(), "hold_days": merchant.hold_days},
        )
    events = audit.search(target=f"merchant:{merchant.id}").items
    return render_template(
        "operator/merchant.html",
        merchant=merchant,
        masked_id=masked_id_number(merchant),
        figures=review.figures([merchant.id])[merchant.id],
        reason_form=reason_form or ReasonForm(formdata=None),
        terms_form=terms_form,
        error=error,
        events=events,
        login_help=_login_help(),
        smtp_configured=mail.smtp_configured(),
    ), status


@bp.get("/merchants/<int:merchant_id>")
def merchant_detail(merchant_id: int):
    return _detail(merchant_id)


@bp.get("/merchants/<int:merchant_id>/licence")
def merchant_licence(merchant_id: int):
    merchant = _merchant_or_404(merchant_id)
    stored = stored_image(merchant.licence_image)
    if stored is None:
        abort(404)
    return image_response(stored)


def _decided(merchant_id: int, decide, with_reason: bool):
    _merchant_or_404(merchant_id)
    form = ReasonForm()
    args = ()
    if with_reason:  # (the CSRF token is checked for every POST by CSRFProtect)
        if not form.validate_on_submit():
            return _detail(merchant_id, error=_first_error(form), reason_form=form, status=400)
        args = (form.reason.data,)
    try:
        decide(current_user.id, merchant_id, *args)
    except DomainError as exc:
        return _detail(merchant_id, error=exc.message, reason_form=form, status=400)
    return redirect(url_for("operator.merchant_detail", merchant_id=merchant_id), 303)


def _first_error(form) -> str:
    for errors in form.errors.values():
        if errors:
            return errors[0]
    return str(_l("Check the form."))


@bp.post("/merchants/<int:merchant_id>/approve")
def merchant_approve(merchant_id: int):
    return _decided(merchant_id, review.approve, with_reason=False)


@bp.post("/merchants/<int:merchant_id>/reject")
def merchant_reject(merchant_id: int):
    return _decided(merchant_id, review.reject, with_reason=True)


@bp.post("/merchants/<int:merchant_id>/request-info")
def merchant_request_info(merchant_id: int):
    return _decided(merchant_id, review.request_info, with_reason=True)


@bp.post("/merchants/<int:merchant_id>/freeze")
def merchant_freeze(merchant_id: int):
    return _decided(merchant_id, review.freeze, with_reason=True)


@bp.post("/merchants/<int:merchant_id>/unfreeze")
def merchant_unfreeze(merchant_id: int):
    return _decided(merchant_id, review.unfreeze, with_reason=False)


@bp.post("/merchants/<int:merchant_id>/terms")
def merchant_terms(merchant_id: int):
    _merchant_or_404(merchant_id)
    form = TermsForm()
    if not form.validate_on_submit():
        return _detail(merchant_id, error=_first_error(form), terms_form=form, status=400)
    try:
        review.set_terms(current_user.id, merchant_id, form.fee_rate_bp, form.hold_days.data)
    except DomainError as exc:
        return _detail(merchant_id, error=exc.message, terms_form=form, status=400)
    return redirect(url_for("operator.merchant_detail", merchant_id=merchant_id), 303)


# -- help with the shop owner's login ----------------------------------------------------

LOGIN_HELP = ("2fa_reset", "reset_link")


def _login_help() -> tuple[str, int | None] | None:
    """What the last login-help action did, from the redirect after it: (what, email id)."""
    done = request.args.get("done")
    return (done, request.args.get("email", type=int)) if done in LOGIN_HELP else None


def _login_help_action(merchant_id: int, action, done: str):
    _merchant_or_404(merchant_id)  # (the CSRF token is checked for every POST by CSRFProtect)
    try:
        email_id = action(current_user.id, merchant_id)
    except DomainError as exc:
        return _detail(merchant_id, error=exc.message, status=400)
    return redirect(
        url_for("operator.merchant_detail", merchant_id=merchant_id, done=done, email=email_id, _anchor="login-help"),
        303,
    )


@bp.post("/merchants/<int:merchant_id>/reset-2fa")
@fresh_login_required(
    back_to=lambda merchant_id: url_for("operator.merchant_detail", merchant_id=merchant_id, _anchor="login-help")
)
def merchant_reset_2fa(merchant_id: int):
    return _login_help_action(merchant_id, review.reset_two_factor, "2fa_reset")


@bp.post("/merchants/<int:merchant_id>/send-reset-link")
@fresh_login_required(
    back_to=lambda merchant_id: url_for("operator.merchant_detail", merchant_id=merchant_id, _anchor="login-help")
)
def merchant_send_reset_link(merchant_id: int):
    return _login_help_action(merchant_id, review.send_password_reset, "reset_link")


# -- audit log ----------------------------------------------------------------------------


def _audit_filters() -> dict:
    """The filters of the audit page from the query string; dates are whole UTC days."""
    args = request.args
    actor = args.get("actor", "").strip()
    return {
        "action": args.get("action", "").strip() or None,
        "actor_id": int(actor) if actor.isdigit() else None,
        "target": args.get("target", "").strip() or None,
        "since": _day(args.get("since")),
        "until": _day(args.get("until"), next_day=True),
    }


def _day(value: str | None, next_day: bool = False) -> datetime | None:
    try:
        day = datetime.strptime((value or "").strip(), "%Y-%m-%d").date()
    except ValueError:
        return None
    if next_day:
        day += timedelta(days=1)
    return datetime.combine(day, time.min, UTC)


@bp.get("/audit")
def audit_log():
    found = audit.search(**_audit_filters(), page=page_number())
    query = {k: request.args.get(k, "") for k in ("action", "actor", "target", "since", "until")}
    return render_template(
        "operator/audit.html", events=found.items, total=found.total, page=found.page, pages=found.pages, query=query
    )


@bp.get("/audit.csv")
def audit_csv():
    # Streamed: the request's context (and its database session) stays open while it is sent.
    body = audit.export_csv(**_audit_filters())
    return Response(
        stream_with_context(body),
        mimetype="text/csv",
        headers={"Content-Disposition": "attachment; filename=audit.csv", "Cache-Control": "private, no-store"},
    )


NAV.append(("operator.merchants", _l("Merchants")))
NAV.append(("operator.audit_log", _l("Audit log")))
