"""The merchant's complaints: the list, a case's thread, answers and offers."""

from decimal import Decimal

from flask import g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField
from wtforms.validators import InputRequired, NumberRange

from faka.complaints import workflow
from faka.core.errors import DomainError
from faka.web.fields import DecimalField, IntegerField
from faka.web.merchant import bp, render
from faka.web.merchant.forms import MAX_PRICE, yuan_to_fen
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

FILTER_LABELS = {"active": _l("In progress"), "all": _l("All"), **workflow.STATUS_LABELS}


class RefundOfferForm(FlaskForm):
    amount = DecimalField(
        _l("Refund (yuan)"), places=2, validators=[InputRequired(), NumberRange(Decimal("0.01"), MAX_PRICE)]
    )
    note = TextAreaField(_l("Note to the buyer (optional)"))


class ReplacementOfferForm(FlaskForm):
    quantity = IntegerField(_l("Number of new keys"), validators=[InputRequired(), NumberRange(1, 1000)])
    note = TextAreaField(_l("Note to the buyer (optional)"))


@bp.get("/complaints")
def complaint_list():
    status = request.args.get("status", "active")
    if status not in workflow.MERCHANT_FILTERS:
        status = "active"
    found = workflow.merchant_complaints(g.merchant.id, status, page_number())
    return render(
        "merchant/complaints.html",
        rows=found.items,
        total=found.total,
        shown=status,
        page=found.page,
        pages=found.pages,
        filters=FILTER_LABELS,
    )


def _complaint(ref: str):
    return loaded_or_404(workflow.complaint_for_merchant, g.merchant.id, ref)


def _context(complaint) -> dict:
    ref = complaint.ref
    links = ThreadLinks(
        thread=url_for("merchant.complaint_thread", ref=ref),
        message=url_for("merchant.complaint_message", ref=ref),
        evidence=lambda name: url_for("merchant.complaint_evidence", ref=ref, name=name),
    )
    return {"complaint": complaint, "order": complaint.order, "viewer": "merchant", "links": links}


def _case_page(complaint, status: int = 200, **extra):
    extra.setdefault("message_form", MessageForm(formdata=None))
    extra.setdefault("refund_form", RefundOfferForm(formdata=None))
    extra.setdefault("replacement_form", ReplacementOfferForm(formdata=None))
    return render("merchant/complaint.html", status, **_context(complaint), **extra)


@bp.get("/complaints/<ref>")
def complaint_detail(ref: str):
    return _case_page(_complaint(ref))


@bp.get("/complaints/<ref>/thread")
def complaint_thread(ref: str):
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
        "merchant",
        current_user.id,
        lambda status, **extra: _case_page(complaint, status, **extra),
        url_for("merchant.complaint_detail", ref=ref, _anchor="thread"),
    )


@bp.post("/complaints/<ref>/offer/refund")
@party_posts
def complaint_offer_refund(ref: str):
    complaint = _complaint(ref)
    form = RefundOfferForm()
    return _offer(
        complaint,
        "refund",
        form,
        lambda: workflow.offer_refund(
            complaint.id, current_user.id, yuan_to_fen(form.amount.data), form.note.data or ""
        ),
        workflow.InvalidRefundAmount.message,
        refund_form=form,
    )


@bp.post("/complaints/<ref>/offer/replacement")
@party_posts
def complaint_offer_replacement(ref: str):
    complaint = _complaint(ref)
    form = ReplacementOfferForm()
    return _offer(
        complaint,
        "replacement",
        form,
        lambda: workflow.offer_replacement(complaint.id, current_user.id, form.quantity.data, form.note.data or ""),
        workflow.ReplacementNotPossible.message,
        replacement_form=form,
    )


def _offer(complaint, kind: str, form: FlaskForm, make_offer, invalid_message, **forms):
    error = None
    if not form.validate_on_submit():
        error = invalid_message
    else:
        try:
            make_offer()
        except DomainError as exc:
            error = exc.message
    if error is None:
        return redirect(url_for("merchant.complaint_detail", ref=complaint.ref, _anchor="thread"), 303)
    return _case_page(complaint, 400, offer_error=error, offer_kind=kind, **forms)


@bp.get("/complaints/<ref>/evidence/<name>")
def complaint_evidence(ref: str, name: str):
    return evidence_response(_complaint(ref), name)
