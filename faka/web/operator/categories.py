"""The operator's categories: create, rename, order, hide, delete.

One page lists them in their order; each change is a small form that posts here and
comes back to the page (303), so all of it works without JavaScript."""

from flask import abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length, NumberRange, Optional

from faka.catalog import categories as category_service
from faka.catalog.models import Category
from faka.core.cache import forget_all
from faka.core.errors import DomainError, NotFound
from faka.web.fields import IntegerField
from faka.web.operator import NAV, bp

EXPIRED = _l("The form expired. Please try again.")


class CategoryForm(FlaskForm):
    name = StringField(
        _l("Chinese name"), validators=[DataRequired(_l("Enter the Chinese name.")), Length(max=Category.NAME_MAX)]
    )
    name_en = StringField(
        _l("English name (optional)"),
        validators=[Optional(), Length(max=Category.NAME_MAX)],
        description=_l("Shown on English pages; without it they show the Chinese name."),
    )


class EditForm(CategoryForm):
    position = IntegerField(
        _l("Position"),
        validators=[Optional(), NumberRange(1, 100_000, _l("The position is a whole number from 1 (first)."))],
    )


class DeleteForm(FlaskForm):
    move_to = IntegerField(validators=[Optional()])


def _clear_page_cache() -> None:
    """Show the change on the storefront at once, in every process (faka/core/cache.py)."""
    forget_all()


def _page(error=None, status: int = 200, form: CategoryForm | None = None, open_id: int | None = None):
    return render_template(
        "operator/categories.html",
        rows=category_service.all_categories(),
        form=form or CategoryForm(formdata=None),
        error=error,
        open_id=open_id,
    ), status


def _back(category_id: int | None = None):
    _clear_page_cache()
    anchor = f"category-{category_id}" if category_id is not None else None
    return redirect(url_for("operator.categories", _anchor=anchor), 303)


def _first_error(form: FlaskForm):
    for errors in form.errors.values():
        return errors[0]
    return EXPIRED


@bp.get("/categories")
def categories():
    return _page()


@bp.post("/categories")
def category_create():
    form = CategoryForm()
    if not form.validate_on_submit():
        return _page(_first_error(form), 400, form)
    try:
        category = category_service.create(form.name.data, form.name_en.data, current_user.id)
    except DomainError as exc:
        return _page(exc.message, 400, form)
    return _back(category.id)


def _change(category_id: int, change):
    """Run one change of a category and come back to it; a refused change shows the page
    with the message and that category's forms open."""
    try:
        change()
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _page(exc.message, 400, open_id=category_id)
    return _back(category_id)


@bp.post("/categories/<int:category_id>/edit")
def category_edit(category_id: int):
    form = EditForm()
    if not form.validate_on_submit():
        return _page(_first_error(form), 400, open_id=category_id)

    def edit():
        category_service.rename(category_id, form.name.data, form.name_en.data, current_user.id)
        if form.position.data is not None:
            category_service.set_position(category_id, form.position.data, current_user.id)

    return _change(category_id, edit)


@bp.post("/categories/<int:category_id>/move")
def category_move(category_id: int):
    if not FlaskForm().validate_on_submit():
        return _page(EXPIRED, 400)
    direction = request.form.get("direction", "")
    if direction not in (category_service.UP, category_service.DOWN):
        abort(400)
    return _change(category_id, lambda: category_service.move(category_id, direction, current_user.id))


@bp.post("/categories/<int:category_id>/visibility")
def category_visibility(category_id: int):
    if not FlaskForm().validate_on_submit():
        return _page(EXPIRED, 400)
    hidden = request.form.get("hidden") == "1"
    return _change(category_id, lambda: category_service.set_hidden(category_id, hidden, current_user.id))


@bp.post("/categories/<int:category_id>/delete")
def category_delete(category_id: int):
    form = DeleteForm()
    if not form.validate_on_submit():
        return _page(EXPIRED, 400, open_id=category_id)
    try:
        category_service.delete(category_id, current_user.id, move_to=form.move_to.data)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _page(exc.message, 400, open_id=category_id)
    return _back()


# In the console's navigation right after Moderation: both are about what is on sale.
NAV.insert(
    next((i + 1 for i, (endpoint, _label) in enumerate(NAV) if endpoint == "operator.moderation"), len(NAV)),
    ("operator.categories", _l("Categories")),
)
