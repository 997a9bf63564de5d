"""The complaint center for buyers: open a complaint from the order page, follow its
thread, answer the merchant's offer, escalate or withdraw. The order token is the key.

The thread, its message form and the evidence images look and behave the same for the
buyer, the merchant and the operator, so the pieces they share live here too: each role
passes its own links (`ThreadLinks`) and the service loader that checked its access."""

from collections.abc import Callable
from dataclasses import dataclass

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_limiter.util import get_remote_address
from flask_wtf import FlaskForm
from flask_wtf.file import MultipleFileField
from wtforms import RadioField, TextAreaField

from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.errors import DomainError, NotFound
from faka.core.uploads import MAX_UPLOAD_BYTES
from faka.extensions import limiter
from faka.orders import checkout
from faka.risk import engine
from faka.web import device
from faka.web.htmx import wants_partial
from faka.web.limits import token_misses
from faka.web.security import image_response
from faka.web.uploads import UploadLimit, accepts_upload, user_key

# What one complaint post may carry: its images, and its text beside them.
EVIDENCE_UPLOAD = UploadLimit(files=workflow.MAX_IMAGES, file_bytes=MAX_UPLOAD_BYTES)

bp = Blueprint("complaints", __name__)

HTMX_STOP_POLLING = 286


# -- shared by the three roles ------------------------------------------------------------


class ComplaintForm(FlaskForm):
    reason = RadioField(_l("What is wrong?"), choices=list(workflow.REASON_LABELS.items()))
    description = TextAreaField(
        _l("What happened?"),
        description=_l("What you expected, what you got, what the error says. Up to 4,000 characters."),
    )
    images = MultipleFileField(
        _l("Evidence images (optional)"),
        description=_l(
            "Up to 5 screenshots (PNG, JPEG or WebP, at most 5 MB and 25 megapixels each, 60 megapixels "
            "together): the order, the error, your chat with the seller. Only you, the seller and the "
            "platform can see them."
        ),
    )


class MessageForm(FlaskForm):
    body = TextAreaField(_l("Your message"))
    images = MultipleFileField(
        _l("Images (optional)"),
        description=_l(
            "Up to 5 PNG, JPEG or WebP images, at most 5 MB and 25 megapixels each, 60 megapixels together."
        ),
    )


@dataclass(frozen=True)
class ThreadLinks:
    """Where one role's thread polls, posts and finds its evidence images (and, for the
    buyer, the answer buttons)."""

    thread: str
    message: str
    evidence: Callable[[str], str]
    accept: str | None = None
    escalate: str | None = None
    withdraw: str | None = None


def _party_post_limit() -> str:
    return current_app.config["RATELIMIT_COMPLAINT_REPLY"]


# A merchant's or an operator's complaint posts (messages with images, offers), per user
# across all their cases.
party_posts = limiter.shared_limit(_party_post_limit, scope="complaint-party", key_func=user_key, methods=["POST"])


def uploaded_images(field_name: str) -> list[bytes]:
    """The chosen files, each read to one byte past the size limit so the service can
    refuse an oversized one without the whole file in memory."""
    return [upload.read(MAX_UPLOAD_BYTES + 1) for upload in request.files.getlist(field_name) if upload.filename]


def loaded_or_404(load, *args) -> Complaint:
    try:
        return load(*args)
    except NotFound:
        abort(404)


def thread_response(
    context: dict, status: int | None = None, message_form: MessageForm | None = None, message_error=None
):
    """The thread partial (with a fresh or failed message form swapped in out of band
    when a message was posted); 286 once the complaint is over, so polling stops."""
    complaint = context["complaint"]
    if message_form is None:
        body = render_template("complaints/_thread.html", **context)
    else:
        body = render_template(
            "complaints/_thread_update.html", message_form=message_form, message_error=message_error, **context
        )
    if status is None:
        status = 200 if complaint.is_active else HTMX_STOP_POLLING
    return _private(make_response(body, status))


def message_refused(context: dict, full_page):
    """The answer to a message posted to a complaint that takes none any more, given
    before the post's images are read (see faka/web/uploads.py); None if it does."""
    try:
        workflow.check_can_post(context["complaint"])
    except DomainError as exc:
        return _message_answer(context, full_page, None, MessageForm(formdata=None), exc.message)
    return None


def post_message(context: dict, author: str, user_id: int | None, full_page, done_url: str):
    """Add the posted message to the thread. HTMX gets the thread back (and the form,
    emptied or with the error); a plain form post is redirected, or gets the page again
    with the error."""
    form = MessageForm()
    error = None
    try:
        workflow.post_message(
            context["complaint"].id, author, user_id, form.body.data, uploaded_images(form.images.name)
        )
    except DomainError as exc:
        error = exc.message
    return _message_answer(context, full_page, done_url, form, error)


def _message_answer(context: dict, full_page, done_url: str | None, form: MessageForm, error):
    if wants_partial():
        if error is None:
            return thread_response(context, 200, MessageForm(formdata=None))
        return thread_response(context, 400, form, error)
    if error is None:
        return redirect(done_url, 303)
    return full_page(400, message_form=form, message_error=error)


def evidence_response(complaint: Complaint, name: str):
    """An evidence image, served privately: never cached by a proxy, never sniffed."""
    try:
        stored = workflow.evidence_file(complaint, name)
    except NotFound:
        abort(404)
    return image_response(stored)


def _private(response):
    response.headers["Cache-Control"] = "private, no-store"
    return response


# -- the buyer ------------------------------------------------------------------------------


def _post_limit() -> str:
    return current_app.config["RATELIMIT_COMPLAINT"]


def _buyer_key() -> str:
    # Per order as well as per address: buyers behind one carrier-grade NAT share an address.
    return f"{get_remote_address()}/{request.view_args.get('token', '')}"


# One budget for all of a buyer's complaint posts (opening, messages, answers): each can
# carry images, and spreading them over the routes must not multiply it.
buyer_posts = limiter.shared_limit(_post_limit, scope="complaint-buyer", key_func=_buyer_key, methods=["POST"])


def _links(token: str, ref: str) -> ThreadLinks:
    return ThreadLinks(
        thread=url_for("complaints.thread", token=token, ref=ref),
        message=url_for("complaints.message", token=token, ref=ref),
        evidence=lambda name: url_for("complaints.evidence", token=token, ref=ref, name=name),
        accept=url_for("complaints.accept", token=token, ref=ref),
        escalate=url_for("complaints.escalate", token=token, ref=ref),
        withdraw=url_for("complaints.withdraw", token=token, ref=ref),
    )


def _context(token: str, complaint: Complaint, **extra) -> dict:
    return {
        "complaint": complaint,
        "order": complaint.order,
        "viewer": "buyer",
        "links": _links(token, complaint.ref),
        "can_escalate": workflow.can_escalate(complaint),
        **extra,
    }


def _page(token: str, complaint: Complaint, status: int = 200, **extra):
    extra.setdefault("message_form", MessageForm(formdata=None))
    return _private(
        make_response(render_template("complaints/buyer.html", **_context(token, complaint, **extra)), status)
    )


def _open_page(order, panel: workflow.OrderPanel, form: ComplaintForm, error: DomainError | None):
    status = 403 if isinstance(error, engine.Blocked) else 400 if error else 200
    return render_template(
        "complaints/open.html", order=order, panel=panel, form=form, error=error.message if error else None
    ), status


def _opening_refused(token: str):
    # An unknown order (a 404) or one that cannot get a complaint now is answered before
    # the evidence is read.
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    try:
        workflow.check_can_open(order)
    except DomainError as exc:
        return _open_page(order, workflow.order_panel(order), ComplaintForm(formdata=None), exc)
    return None


@bp.route("/order/<token>/complaint", methods=["GET", "POST"])
@buyer_posts
@token_misses
@accepts_upload(EVIDENCE_UPLOAD, refused=_opening_refused)
def start(token: str):
    """The form that opens a complaint (or the reason it cannot be opened now)."""
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    form = ComplaintForm()
    error = None
    if request.method == "POST":
        try:
            complaint = workflow.open_complaint(
                token,
                form.reason.data,
                form.description.data,
                uploaded_images(form.images.name),
                ip=request.remote_addr,
                device_hash=device.device_hash(),
            )
        except NotFound:
            abort(404)
        except DomainError as exc:
            error = exc
        else:
            return redirect(url_for("complaints.show", token=token, ref=complaint.ref), 303)
    panel = workflow.order_panel(order)
    if request.method == "GET" and panel.active is not None:
        return redirect(url_for("complaints.show", token=token, ref=panel.active.ref), 303)
    return _open_page(order, panel, form, error)


@bp.get("/order/<token>/complaint/<ref>")
@token_misses
def show(token: str, ref: str):
    return _page(token, loaded_or_404(workflow.complaint_for_buyer, token, ref))


@bp.get("/order/<token>/complaint/<ref>/thread")
@token_misses
def thread(token: str, ref: str):
    return thread_response(_context(token, loaded_or_404(workflow.complaint_for_buyer, token, ref)))


def _message_refused(token: str, ref: str):
    complaint = loaded_or_404(workflow.complaint_for_buyer, token, ref)
    return message_refused(_context(token, complaint), lambda status, **extra: _page(token, complaint, status, **extra))


@bp.post("/order/<token>/complaint/<ref>/message")
@buyer_posts
@accepts_upload(EVIDENCE_UPLOAD, refused=_message_refused)
def message(token: str, ref: str):
    complaint = loaded_or_404(workflow.complaint_for_buyer, token, ref)
    return post_message(
        _context(token, complaint),
        "buyer",
        None,
        lambda status, **extra: _page(token, complaint, status, **extra),
        url_for("complaints.show", token=token, ref=ref, _anchor="thread"),
    )


def _answer(token: str, ref: str, step):
    complaint = loaded_or_404(workflow.complaint_for_buyer, token, ref)
    try:
        step(complaint.id)
    except DomainError as exc:
        return _page(token, complaint, 400, action_error=exc.message)
    return redirect(url_for("complaints.show", token=token, ref=ref), 303)


@bp.post("/order/<token>/complaint/<ref>/accept")
@buyer_posts
def accept(token: str, ref: str):
    return _answer(token, ref, workflow.accept_offer)


@bp.post("/order/<token>/complaint/<ref>/escalate")
@buyer_posts
def escalate(token: str, ref: str):
    return _answer(token, ref, workflow.escalate)


@bp.post("/order/<token>/complaint/<ref>/withdraw")
@buyer_posts
def withdraw(token: str, ref: str):
    return _answer(token, ref, workflow.withdraw)


@bp.get("/order/<token>/complaint/<ref>/evidence/<name>")
@token_misses
def evidence(token: str, ref: str, name: str):
    return evidence_response(loaded_or_404(workflow.complaint_for_buyer, token, ref), name)
