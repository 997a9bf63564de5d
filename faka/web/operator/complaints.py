"""The complaint desk: escalated cases to decide, and refunds to pay out by hand."""

from flask import abort, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import RadioField, StringField, TextAreaField
from wtforms.validators import DataRequired, Length, Optional

from faka.catalog import checkout_fields
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.errors import DomainError, NotFound
from faka.payments import refunds
from faka.payments.models import Refund
from faka.web.access import fresh_login_required
from faka.web.fields import DecimalField
from faka.web.merchant.forms import yuan_to_fen
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number
from faka.web.shop.complaints import (
    EVIDENCE_UPLOAD,
    MessageForm,
    ThreadLinks,
    evidence_response,
    loaded_or_404,
    message_refused,
    party_posts,
    post_message,
    thread_response,
)
from faka.web.uploads import accepts_upload

QUEUE_FILTER_LABELS = {
    "escalated": _l("Waiting for a decision"),
    "active": _l("In progress"),
    "all": _l("All"),
    **{s: label for s, label in workflow.STATUS_LABELS.items() if s != Complaint.ESCALATED},
}
REFUND_FILTER_LABELS = {**Refund.STATUS_LABELS, "all": _l("All")}
REFUND, REJECT = "refund", "reject"


class DecideForm(FlaskForm):
    outcome = RadioField(
        _p("complaint", "Decision"), choices=[(REFUND, _l("Refund the buyer")), (REJECT, _l("Reject the complaint"))]
    )
    amount = DecimalField(_l("Refund (yuan)"), places=2, validators=[Optional()])
    reason = TextAreaField(_l("Reason"), description=_l("Both parties read it. Say what the evidence showed."))


class PaidForm(FlaskForm):
    reference = StringField(
        _l("Payment reference"),
        validators=[
            DataRequired(_l("Enter the payment's reference.")),
            Length(max=64, message=_l("The reference is at most 64 characters.")),
        ],
    )


# -- the desk ------------------------------------------------------------------------------------


def _queue_filters() -> dict:
    status = request.args.get("status", "escalated")
    reason = request.args.get("reason", "")
    return {
        "status": status if status in workflow.QUEUE_FILTERS else "escalated",
        "reason": reason if reason in Complaint.REASONS else "",
        "merchant": request.args.get("merchant", "").strip()[:12],
        "order": request.args.get("order", "").strip()[:24],
    }


@bp.get("/complaints")
def complaint_queue():
    filters = _queue_filters()
    merchant_id = int(filters["merchant"]) if filters["merchant"].isdigit() else None
    found = workflow.complaint_queue(
        filters["status"], filters["reason"] or None, merchant_id, filters["order"] or None, page_number()
    )
    return render_template(
        "operator/complaints.html",
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        filters=filters,
        status_filters=QUEUE_FILTER_LABELS,
        reasons=workflow.REASON_LABELS,
    )


def _complaint(ref: str) -> Complaint:
    return loaded_or_404(workflow.complaint_for_operator, ref)


def _context(complaint: Complaint) -> dict:
    ref = complaint.ref
    links = ThreadLinks(
        thread=url_for("operator.complaint_case_thread", ref=ref),
        message=url_for("operator.complaint_message", ref=ref),
        evidence=lambda name: url_for("operator.complaint_evidence", ref=ref, name=name),
    )
    return {"complaint": complaint, "order": complaint.order, "viewer": "operator", "links": links}


def _case_page(complaint: Complaint, status: int = 200, **extra):
    extra.setdefault("message_form", MessageForm(formdata=None))
    extra.setdefault("decide_form", DecideForm(formdata=None))
    body = render_template(
        "operator/complaint.html",
        case=workflow.case_file(complaint),
        refund_labels=Refund.STATUS_LABELS,
        answers=checkout_fields.order_answers(complaint.order_id),
        **_context(complaint),
        **extra,
    )
    response = make_response(body, status)
    response.headers["Cache-Control"] = "private, no-store"  # may hold revealed keys
    return response


@bp.get("/complaints/<ref>")
def complaint_case(ref: str):
    return _case_page(_complaint(ref))


@bp.get("/complaints/<ref>/thread")
def complaint_case_thread(ref: str):
    return thread_response(_context(_complaint(ref)))


def _message_refused(ref: str):
    complaint = _complaint(ref)
    return message_refused(_context(complaint), lambda status, **extra: _case_page(complaint, status, **extra))


@bp.post("/complaints/<ref>/message")
@party_posts
@accepts_upload(EVIDENCE_UPLOAD, refused=_message_refused)
def complaint_message(ref: str):
    complaint = _complaint(ref)
    return post_message(
        _context(complaint),
        "operator",
        current_user.id,
        lambda status, **extra: _case_page(complaint, status, **extra),
        url_for("operator.complaint_case", ref=ref, _anchor="thread"),
    )


@bp.post("/complaints/<ref>/reveal")
@fresh_login_required(back_to=lambda ref: url_for("operator.complaint_case", ref=ref))
def complaint_reveal(ref: str):
    """The delivered goods in plain text, for checking a "the key does not work" claim:
    only within minutes of re-entering the password and code, and every reveal is audited."""
    complaint = _complaint(ref)
    if not FlaskForm().validate():
        abort(400)
    try:
        revealed = workflow.reveal_keys(complaint.id, current_user.id)
    except NotFound:
        abort(404)
    return _case_page(complaint, revealed=revealed)


@bp.post("/complaints/<ref>/decide")
def complaint_decide(ref: str):
    complaint = _complaint(ref)
    form = DecideForm()
    try:
        workflow.decide(complaint.id, current_user.id, _refund_asked(form), form.reason.data or "")
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _case_page(complaint, 400, decide_form=form, decide_error=exc.message)
    return redirect(url_for("operator.complaint_case", ref=ref), 303)


def _refund_asked(form: DecideForm) -> int | None:
    """The refund the form asks for, in fen; None to reject."""
    if form.outcome.data == REJECT:
        return None
    if form.outcome.data != REFUND:
        raise DomainError(_l("Choose to refund the buyer or to reject the complaint."))
    if not form.validate() or form.amount.data is None:
        raise workflow.InvalidRefundAmount()
    return yuan_to_fen(form.amount.data)


@bp.get("/complaints/<ref>/evidence/<name>")
def complaint_evidence(ref: str, name: str):
    return evidence_response(_complaint(ref), name)


# -- refunds to pay by hand -------------------------------------------------------------------------


def _refund_filter() -> str:
    status = request.args.get("status", Refund.MANUAL)
    return status if status in REFUND_FILTER_LABELS else Refund.MANUAL


def _refund_page(status: int = 200, **extra):
    refund_status = _refund_filter()
    found = refunds.refunds(refund_status, page_number())
    return render_template(
        "operator/refunds.html",
        rows=found.items,
        total=found.total,
        page=found.page,
        status=refund_status,
        pages=found.pages,
        filters=REFUND_FILTER_LABELS,
        labels=Refund.STATUS_LABELS,
        form=PaidForm(formdata=None),
        **extra,
    ), status


@bp.get("/refunds")
def refund_list():
    return _refund_page()


@bp.post("/refunds/<int:refund_id>/paid")
def refund_paid(refund_id: int):
    form = PaidForm()
    if not form.validate():
        return _refund_page(400, error=next(iter(form.errors.values()))[0], error_refund_id=refund_id)
    try:
        refunds.mark_paid(refund_id, current_user.id, form.reference.data)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _refund_page(400, error=exc.message, error_refund_id=refund_id)
    return redirect(url_for("operator.refund_list", status=_refund_filter()), 303)


NAV.append(("operator.complaint_queue", _l("Complaints")))
NAV.append(("operator.refund_list", _l("Refunds")))
