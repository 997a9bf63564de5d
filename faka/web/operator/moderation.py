"""Operator console: goods moderation (the queue, decisions, prohibited words)."""

from flask import abort, redirect, render_template, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from faka.catalog import moderation as moderation_service
from faka.core.errors import DomainError, NotFound
from faka.web.operator import NAV, bp


class ActionForm(FlaskForm):
    """A button: only the CSRF token."""


class ReasonForm(FlaskForm):
    reason = TextAreaField(_l("Reason shown to the merchant"))


class WordsForm(FlaskForm):
    words = TextAreaField(
        _l("Prohibited words"),
        description=_l(
            "One per line. Products whose title, description or fixed content contain one wait for moderation."
        ),
    )


def _queue_page(error=None, status=200, words_form=None):
    if words_form is None:
        words_form = WordsForm(formdata=None, words=moderation_service.prohibited_words())
    return render_template(
        "operator/moderation.html",
        items=moderation_service.queue(),
        reasons=moderation_service.REPORT_REASONS,
        error=error,
        words_form=words_form,
    ), status


@bp.get("/moderation")
def moderation():
    return _queue_page()


def _decide(slug: str, decide):
    try:
        product_id = moderation_service.product_id_for(slug)
    except NotFound:
        abort(404)
    if not ActionForm().validate_on_submit():
        return _queue_page(_l("The form expired. Please try again."), 400)
    try:
        decide(product_id)
    except DomainError as exc:
        return _queue_page(exc.message, 400)
    return redirect(url_for("operator.moderation"), 303)


@bp.post("/moderation/products/<slug>/approve")
def moderation_approve(slug: str):
    return _decide(slug, lambda product_id: moderation_service.approve(product_id, current_user.id))


@bp.post("/moderation/products/<slug>/reject")
def moderation_reject(slug: str):
    reason = ReasonForm().reason.data
    return _decide(slug, lambda product_id: moderation_service.reject(product_id, current_user.id, reason))


@bp.post("/moderation/products/<slug>/take-down")
def moderation_take_down(slug: str):
    reason = ReasonForm().reason.data
    return _decide(slug, lambda product_id: moderation_service.take_down(product_id, current_user.id, reason))


@bp.post("/moderation/reports/<int:report_id>/dismiss")
def moderation_dismiss(report_id: int):
    if not ActionForm().validate_on_submit():
        return _queue_page(_l("The form expired. Please try again."), 400)
    try:
        moderation_service.dismiss_report(report_id, current_user.id)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _queue_page(exc.message, 400)
    return redirect(url_for("operator.moderation"), 303)


@bp.route("/moderation/words", methods=["GET", "POST"])
def moderation_words():
    """The queue page with the prohibited words form, which posts here."""
    form = WordsForm()
    if not form.is_submitted():
        return _queue_page()
    if not form.validate_on_submit():
        return _queue_page(_l("The form expired. Please try again."), 400, form)
    try:
        moderation_service.set_prohibited_words(form.words.data or "", current_user.id)
    except DomainError as exc:
        return _queue_page(exc.message, 400, form)
    return redirect(url_for("operator.moderation"), 303)


NAV.append(("operator.moderation", _l("Moderation")))
