"""Resale (分销) in the back office: a merchant's terms (which variants sub-stores may
resell, at which floor price), and a reseller's side of it (its sub-store's identity and
status, the catalogue it picks from, its items, its orders and their complaints).

Every account has both sides: a merchant may resell other merchants' goods, and a reseller
is an account like any other (faka/growth/resale.py holds the rules). Plain forms: a change
answers 303 back to its page, or the page again with what is wrong (400), nothing changed.
"""

from decimal import Decimal

from flask import abort, g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from flask_wtf.file import FileField
from wtforms import BooleanField, HiddenField, StringField, TextAreaField
from wtforms.validators import DataRequired, InputRequired, Length, NumberRange, Optional

from faka.core.errors import DomainError, NotFound
from faka.core.uploads import MAX_UPLOAD_BYTES
from faka.growth import resale
from faka.growth.models import SubStore
from faka.platform import settings
from faka.web.fields import DecimalField
from faka.web.forms import error_under_input
from faka.web.merchant import bp, render, scoped
from faka.web.merchant.forms import MAX_PRICE, ProductForm, yuan_to_fen
from faka.web.pagination import page_number
from faka.web.security import image_response
from faka.web.shop.complaints import ThreadLinks, evidence_response, loaded_or_404, thread_response
from faka.web.uploads import UploadLimit, accepts_upload, back_office_uploads

LOGO_UPLOAD = UploadLimit(files=1, file_bytes=MAX_UPLOAD_BYTES)
PRICE_RANGE = NumberRange(Decimal("0.01"), MAX_PRICE, _l("The price must be between 0.01 and 1,000,000."))


class TermsForm(FlaskForm):
    active = BooleanField(_l("Sub-stores may resell it"))
    floor = DecimalField(
        _l("Floor price (yuan)"),
        places=2,
        validators=[
            Optional(),
            NumberRange(Decimal("0.01"), MAX_PRICE, _l("The floor price must be between 0.01 and 1,000,000.")),
        ],
    )
    # 8.505 is refused as on the product form, never rounded.
    validate_floor = ProductForm.validate_price


class SubStoreForm(FlaskForm):
    code = StringField(
        _l("Address"),
        validators=[DataRequired(_l("Choose the sub-store's address.")), Length(max=40)],
        description=_l(
            "3 to 20 lower-case letters, digits or hyphens, for example my-shop: your store is then at /s/my-shop."
        ),
    )
    name = StringField(
        _l("Store name"), validators=[DataRequired(_l("Give the sub-store a name.")), Length(max=resale.NAME_MAX)]
    )
    announcement = TextAreaField(
        _l("Announcement (optional)"),
        validators=[Optional(), Length(max=resale.ANNOUNCEMENT_MAX)],
        description=_l("Shown at the top of your store."),
    )
    contact = StringField(
        _l("Contact (optional)"),
        validators=[Optional(), Length(max=resale.CONTACT_MAX)],
        description=_l("How buyers reach you: QQ, WeChat, email or a group."),
    )
    domain = StringField(
        _l("Own domain (optional)"),
        validators=[Optional(), Length(max=resale.DOMAIN_MAX)],
        description=_l(
            "For example shop.example.com, pointed at this platform: buyers then find your store there too."
        ),
    )
    logo = FileField(_l("Logo (optional)"), description=_l("A PNG, JPEG or WebP image of at most 5 MB."))
    remove_logo = BooleanField(_l("Remove the logo"))


class ItemPriceForm(FlaskForm):
    price = DecimalField(
        _l("Your price (yuan)"), places=2, validators=[InputRequired(_l("Enter a price.")), PRICE_RANGE]
    )
    validate_price = ProductForm.validate_price  # at most two decimals, as on the product form


class AddItemForm(ItemPriceForm):
    variant = HiddenField(validators=[DataRequired()])


def _fen(value: Decimal | None) -> int | None:
    return None if value is None else yuan_to_fen(value)


def _first_error(form: FlaskForm) -> str:
    return next(iter(form.errors.values()))[0]


# -- the merchant's terms --------------------------------------------------------------------


def _terms_page(status: int = 200, failed: str | None = None, form: TermsForm | None = None, error=None):
    """The merchant's variants with their terms; `failed` names the variant whose posted
    form (`form`) was refused, shown as posted with `error`."""
    return render(
        "merchant/resale.html",
        status,
        rows=resale.merchant_terms(g.merchant.id),
        failed=failed,
        failed_form=form,
        error=error,
        programme_open=settings.programme_enabled("resale"),
    )


@bp.get("/resale")
def resale_terms():
    return _terms_page()


@bp.post("/resale/<variant_key>")
@scoped
def resale_terms_save(variant_key: str):
    form = TermsForm()
    if not form.validate_on_submit():
        resale.own_variant(g.merchant.id, variant_key)  # another merchant's: a 404 before anything is shown
        return _terms_page(400, variant_key, form, _first_error(form))
    try:
        resale.set_terms(g.merchant.id, current_user.id, variant_key, form.active.data, _fen(form.floor.data))
    except NotFound:
        raise
    except DomainError as exc:
        return _terms_page(400, variant_key, form, exc.message)
    return redirect(url_for("merchant.resale_terms", _anchor=f"terms-{variant_key}"), 303)


# -- the reseller's sub-store ----------------------------------------------------------------


def _closed_reason() -> str | None:
    """Why this account cannot open or change a sub-store now, or None."""
    if not settings.programme_enabled("resale"):
        return str(resale.ResaleClosed.message)
    if g.merchant.status != g.merchant.APPROVED:
        return str(resale.NotApproved.message)
    return None


def _substore_form(substore: SubStore | None) -> SubStoreForm:
    if request.method == "POST":
        return SubStoreForm()
    form = SubStoreForm(formdata=None, obj=substore)
    if substore is not None:
        form.domain.data = substore.pending_domain or substore.domain or ""  # what the reseller asked for
    return form


def _substore_page(form: SubStoreForm, status: int = 200, error=None):
    return render(
        "merchant/substore.html",
        status,
        substore=resale.my_substore(g.merchant.id),
        form=form,
        error=error,
        closed=_closed_reason(),
    )


def _substore_refused():
    # Closed programme or an account not approved: said before the logo is read.
    reason = _closed_reason()
    if reason is not None:
        return _substore_page(_substore_form(resale.my_substore(g.merchant.id)), 400, reason)
    return None


@bp.route("/substore", methods=["GET", "POST"])
@back_office_uploads
@accepts_upload(LOGO_UPLOAD, refused=_substore_refused)
def substore_home():
    substore = resale.my_substore(g.merchant.id)
    form = _substore_form(substore)
    if request.method == "GET":
        return _substore_page(form)
    error = None
    if form.validate_on_submit():
        upload = request.files.get(form.logo.name)
        # One byte over the limit is enough to refuse the file; the rest is never read.
        data = upload.read(MAX_UPLOAD_BYTES + 1) if upload and upload.filename else None
        identity = resale.Identity(
            code=form.code.data,
            name=form.name.data,
            announcement=form.announcement.data or "",
            contact=form.contact.data or "",
            domain=form.domain.data or "",
        )
        try:
            resale.save_substore(g.merchant.id, current_user.id, identity, data, bool(form.remove_logo.data))
        except DomainError as exc:
            error = error_under_input(form, exc)
        else:
            return redirect(url_for("merchant.substore_home", saved=1), 303)
    return _substore_page(form, 400, error)


@bp.post("/substore/apply-again")
def substore_apply_again():
    try:
        resale.apply_again(g.merchant.id, current_user.id)
    except DomainError as exc:
        return _substore_page(_substore_form(resale.my_substore(g.merchant.id)), 400, exc.message)
    return redirect(url_for("merchant.substore_home"), 303)


@bp.get("/substore/logo/<name>")
@scoped
def substore_logo(name: str):
    return image_response(resale.logo_file(g.merchant.id, name))


# -- the catalogue and the reseller's items --------------------------------------------------


def _catalogue_page(status: int = 200, failed: str | None = None, form: FlaskForm | None = None, error=None):
    found = resale.resale_catalogue(g.merchant.id, page_number())
    return render(
        "merchant/substore_catalogue.html",
        status,
        substore=resale.my_substore(g.merchant.id),
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        failed=failed,
        failed_form=form,
        error=error,
    )


@bp.get("/substore/catalogue")
def substore_catalogue():
    return _catalogue_page()


@bp.post("/substore/items")
def substore_item_add():
    form = AddItemForm()
    key = (form.variant.data or "")[:16]
    if not form.validate_on_submit():
        return _catalogue_page(400, key, form, _first_error(form))
    try:
        resale.add_item(g.merchant.id, key, _fen(form.price.data))
    except DomainError as exc:
        return _catalogue_page(400, key, form, exc.message)
    return _back_to_item(key)


def _items_page(status: int = 200, failed: str | None = None, form: FlaskForm | None = None, error=None):
    return render(
        "merchant/substore_items.html",
        status,
        substore=resale.my_substore(g.merchant.id),
        rows=resale.my_items(g.merchant.id),
        failed=failed,
        failed_form=form,
        error=error,
    )


@bp.get("/substore/items")
def substore_items():
    return _items_page()


def _back_to_item(key: str):
    return redirect(url_for("merchant.substore_items", _anchor=f"item-{key}"), 303)


@bp.post("/substore/items/<variant_key>/price")
@scoped
def substore_item_price(variant_key: str):
    form = ItemPriceForm()
    if not form.validate_on_submit():
        return _items_page(400, variant_key, form, _first_error(form))
    try:
        resale.set_item_price(g.merchant.id, variant_key, _fen(form.price.data))
    except NotFound:
        raise
    except DomainError as exc:
        return _items_page(400, variant_key, form, exc.message)
    return _back_to_item(variant_key)


@bp.post("/substore/items/<variant_key>/visibility")
@scoped
def substore_item_visibility(variant_key: str):
    try:
        resale.set_item_hidden(g.merchant.id, variant_key, request.form.get("hidden") == "1")
    except resale.NoSubStore:
        abort(404)
    return _back_to_item(variant_key)


@bp.post("/substore/items/<variant_key>/move")
@scoped
def substore_item_move(variant_key: str):
    direction = request.form.get("direction", "")
    if direction not in (resale.UP, resale.DOWN):
        abort(400)
    try:
        resale.move_item(g.merchant.id, variant_key, direction)
    except resale.NoSubStore:
        abort(404)
    return _back_to_item(variant_key)


@bp.post("/substore/items/<variant_key>/delete")
@scoped
def substore_item_remove(variant_key: str):
    try:
        resale.remove_item(g.merchant.id, variant_key)
    except resale.NoSubStore:
        abort(404)
    return redirect(url_for("merchant.substore_items"), 303)


# -- the reseller's orders and their complaints -------------------------------------------------


@bp.get("/substore/orders")
def substore_orders():
    found = resale.substore_orders(g.merchant.id, page_number())
    return render(
        "merchant/substore_orders.html",
        substore=resale.my_substore(g.merchant.id),
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
    )


def _reseller_complaint(ref: str):
    return loaded_or_404(resale.complaint_for_reseller, g.merchant.id, ref)


def _thread_context(complaint) -> dict:
    ref = complaint.ref
    links = ThreadLinks(
        thread=url_for("merchant.substore_complaint_thread", ref=ref),
        message="",  # the reseller follows the case; it cannot post in it
        evidence=lambda name: url_for("merchant.substore_complaint_evidence", ref=ref, name=name),
    )
    return {"complaint": complaint, "order": complaint.order, "viewer": "reseller", "links": links}


@bp.get("/substore/complaints/<ref>")
def substore_complaint(ref: str):
    complaint = _reseller_complaint(ref)
    return render("merchant/substore_complaint.html", **_thread_context(complaint))


@bp.get("/substore/complaints/<ref>/thread")
def substore_complaint_thread(ref: str):
    return thread_response(_thread_context(_reseller_complaint(ref)))


@bp.get("/substore/complaints/<ref>/evidence/<name>")
def substore_complaint_evidence(ref: str, name: str):
    return evidence_response(_reseller_complaint(ref), name)
