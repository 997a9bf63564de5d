"""The merchant's checkout fields: what a product asks the buyer (the game UID to top up,
the server, the account).

One page per product lists its fields, each with its buttons (edit, up, down, remove),
and the form to add one; a field's own page edits it. Plain forms, so everything works
without JavaScript: a change answers 303 back to the list, or the form again with what is
wrong (400), nothing having changed.
"""

from flask import abort, g, redirect, request, url_for

from faka.catalog import checkout_fields
from faka.core.errors import DomainError, NotFound
from faka.web.forms import error_under_input
from faka.web.merchant import bp, render, scoped
from faka.web.merchant.forms import CheckoutFieldForm


def _draft(form: CheckoutFieldForm) -> checkout_fields.FieldDraft:
    return checkout_fields.FieldDraft(
        label=form.label.data or "",
        label_en=form.label_en.data,
        kind=form.kind.data,
        required=form.required.data,
        choices=form.choices.data,
        pattern=form.pattern.data,
        pattern_message=form.pattern_message.data,
        pattern_message_en=form.pattern_message_en.data,
        help_text=form.help_text.data,
        help_text_en=form.help_text_en.data,
    )


def _list_page(slug: str, form: CheckoutFieldForm, status: int = 200, error: str | None = None):
    product, fields = checkout_fields.product_fields(g.merchant.id, slug)
    return render(
        "merchant/fields.html",
        status,
        product=product,
        fields=fields,
        form=form,
        error=error,
        editing=None,
        max_fields=checkout_fields.MAX_FIELDS,
    )


@bp.route("/products/<slug>/fields", methods=["GET", "POST"])
@scoped
def product_fields(slug: str):
    form = CheckoutFieldForm()
    if request.method == "GET":
        return _list_page(slug, form)
    error = None
    if form.validate_on_submit():
        try:
            checkout_fields.add_field(g.merchant.id, slug, _draft(form))
        except NotFound:
            raise
        except DomainError as exc:
            error = error_under_input(form, exc)
        else:
            return redirect(url_for("merchant.product_fields", slug=slug), 303)
    return _list_page(slug, form, 400, error)


@bp.route("/products/<slug>/fields/<key>", methods=["GET", "POST"])
@scoped
def product_field_edit(slug: str, key: str):
    product, field = checkout_fields.get_field(g.merchant.id, slug, key)
    form = CheckoutFieldForm(obj=field) if request.method == "GET" else CheckoutFieldForm()
    error, status = None, 200
    if request.method == "POST":
        status = 400
        if form.validate_on_submit():
            try:
                checkout_fields.update_field(g.merchant.id, slug, key, _draft(form))
            except NotFound:
                raise
            except DomainError as exc:
                error = error_under_input(form, exc)
            else:
                return redirect(url_for("merchant.product_fields", slug=slug, _anchor=f"field-{key}"), 303)
    return render(
        "merchant/fields.html",
        status,
        product=product,
        fields=None,
        form=form,
        error=error,
        editing=field,
        max_fields=checkout_fields.MAX_FIELDS,
    )


@bp.post("/products/<slug>/fields/<key>/delete")
@scoped
def product_field_delete(slug: str, key: str):
    checkout_fields.remove_field(g.merchant.id, slug, key)
    return redirect(url_for("merchant.product_fields", slug=slug), 303)


@bp.post("/products/<slug>/fields/<key>/move")
@scoped
def product_field_move(slug: str, key: str):
    direction = request.form.get("direction", "")
    if direction not in (checkout_fields.UP, checkout_fields.DOWN):
        abort(400)
    checkout_fields.move_field(g.merchant.id, slug, key, direction)
    return redirect(url_for("merchant.product_fields", slug=slug, _anchor=f"field-{key}"), 303)
