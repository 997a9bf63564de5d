"""Operator console: the growth programmes (faka/growth/programmes.py): their settings,
the review of sub-stores, freezing sub-stores and promoters, and their fee rates."""

from collections.abc import Callable
from dataclasses import dataclass
from decimal import Decimal

from flask import abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, TextAreaField
from wtforms.validators import InputRequired, Length, NumberRange, Optional, ValidationError

from faka.core.cache import forget_all
from faka.core.errors import DomainError, NotFound
from faka.growth import programmes
from faka.growth.models import Promoter, SubStore
from faka.platform import settings
from faka.web.fields import DecimalField
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number

MAX_PERCENT = programmes.MAX_FEE_RATE_BP // 100


def _two_decimals(_form, field):
    if field.data is not None and (field.data * 100) % 1:
        raise ValidationError(_l("Give the fee rate with at most two decimals, such as 2.5."))


def _percent_field(label, required: bool):
    first = InputRequired(_l("Enter the fee rate.")) if required else Optional()
    return DecimalField(
        label,
        places=None,
        validators=[
            first,
            NumberRange(0, MAX_PERCENT, _l("The fee rate must be %(min)s%% to %(max)s%%.")),
            _two_decimals,
        ],
    )


def _bp(value: Decimal | None) -> int | None:
    return None if value is None else int(value * 100)


def _percent(bp: int | None) -> Decimal | None:
    # "2.5", "10": no trailing zeros, no exponent.
    return None if bp is None else Decimal(f"{(Decimal(bp) / 100).normalize():f}")


class ProgrammesForm(FlaskForm):
    resale_enabled = BooleanField(_l("Reseller sub-stores open"))
    resale_fee = _percent_field(_l("Default fee on resellers' margins (%)"), required=True)
    affiliate_enabled = BooleanField(_l("Affiliate links open"))
    affiliate_fee = _percent_field(_l("Default fee on promoters' commissions (%)"), required=True)


class ReasonForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason"),
        validators=[
            InputRequired(_l("Enter a reason.")),
            Length(1, programmes.MAX_REASON, _l("Keep the reason under 2000 characters.")),
        ],
    )


class FeeForm(FlaskForm):
    # Empty, or the "default" button: the programme's default rate.
    fee_rate = _percent_field(_l("Fee rate (%)"), required=False)


def _first_error(form) -> str:
    for errors in form.errors.values():
        if errors:
            return str(errors[0])
    return str(_l("Check the form."))


def _clear_page_cache() -> None:
    """Show the change on the storefront at once, in every process (faka/core/cache.py)."""
    forget_all()


# -- what a sub-store's and a promoter's pages share ----------------------------------------------


@dataclass(frozen=True)
class _Kind:
    """A sub-store's or a promoter's page in the console: their decisions and fee rates are
    handled alike."""

    find: Callable[[str], object]  # the record of this code, or 404
    page: Callable[..., tuple[str, int]]  # its page again: (code, error=, reason_form=, fee_form=, status=)
    endpoint: str  # its page, where a decision or a fee sends the operator back
    set_fee: Callable[[int, str, int | None], object]
    on_storefront: bool  # its decisions change what buyers see: clear the page cache


def _decision(kind: _Kind, code: str, decide, with_reason: bool):
    kind.find(code)
    form = ReasonForm()
    args = ()
    if with_reason:  # (the CSRF token is checked for every POST by CSRFProtect)
        if not form.validate():
            return kind.page(code, error=_first_error(form), reason_form=form, status=400)
        args = (form.reason.data,)
    try:
        decide(current_user.id, code, *args)
    except DomainError as exc:
        return kind.page(code, error=str(exc.message), reason_form=form, status=400)
    if kind.on_storefront:
        _clear_page_cache()
    return redirect(url_for(kind.endpoint, code=code), 303)


def _fee(kind: _Kind, code: str):
    kind.find(code)
    form = FeeForm()
    if "default" in request.form:
        form.fee_rate.data = None
    elif not form.validate() or form.fee_rate.data is None:
        error = _first_error(form) if form.errors else str(_l("Enter the fee rate."))
        return kind.page(code, error=error, fee_form=form, status=400)
    try:
        kind.set_fee(current_user.id, code, _bp(form.fee_rate.data))
    except DomainError as exc:
        return kind.page(code, error=str(exc.message), fee_form=form, status=400)
    return redirect(url_for(kind.endpoint, code=code), 303)


# -- settings -----------------------------------------------------------------------------------


def _settings_page(form: ProgrammesForm, errors: dict | None = None, status: int = 200):
    return render_template(
        "operator/growth_settings.html",
        form=form,
        errors=errors or {},
        saved=request.args.get("saved") == "1",
    ), status


@bp.get("/growth/settings")
def growth_settings():
    current = settings.site_settings()
    form = ProgrammesForm(
        formdata=None,
        data={
            "resale_enabled": current["resale_enabled"] == "1",
            "affiliate_enabled": current["affiliate_enabled"] == "1",
            "resale_fee": _percent(settings.programme_fee_bp("resale")),
            "affiliate_fee": _percent(settings.programme_fee_bp("affiliate")),
        },
    )
    return _settings_page(form)


@bp.post("/growth/settings")
def growth_settings_save():
    form = ProgrammesForm()
    if not form.validate():
        return _settings_page(form, status=400)
    values = {
        "resale_enabled": "1" if form.resale_enabled.data else "0",
        "affiliate_enabled": "1" if form.affiliate_enabled.data else "0",
        "resale_fee_bp": str(_bp(form.resale_fee.data)),
        "affiliate_fee_bp": str(_bp(form.affiliate_fee.data)),
    }
    try:
        if programmes.save_programmes(current_user.id, values):
            _clear_page_cache()
    except programmes.InvalidProgrammeSettings as exc:
        return _settings_page(form, {key: str(message) for key, message in exc.errors.items()}, 400)
    return redirect(url_for("operator.growth_settings", saved=1), 303)


# -- sub-stores ---------------------------------------------------------------------------------


@bp.get("/growth/substores")
def growth_substores():
    status = request.args.get("status", "")
    status = status if status in SubStore.STATUSES else ""
    found = programmes.search_substores(status or None, page_number())
    return render_template(
        "operator/growth_substores.html",
        queue=programmes.substore_queue(),
        substores=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        status=status,
        statuses=SubStore.STATUSES,
        labels=programmes.SUBSTORE_STATUS_LABELS,
        resale_enabled=settings.programme_enabled("resale"),
    )


def _substore_or_404(code: str) -> SubStore:
    try:
        return programmes.get_substore(code)
    except NotFound:
        abort(404)


def _substore_page(code: str, error=None, reason_form=None, fee_form=None, status: int = 200):
    substore = _substore_or_404(code)
    return render_template(
        "operator/growth_substore.html",
        substore=substore,
        labels=programmes.SUBSTORE_STATUS_LABELS,
        default_fee_bp=settings.programme_fee_bp("resale"),
        reason_form=reason_form or ReasonForm(formdata=None),
        fee_form=fee_form or FeeForm(formdata=None, data={"fee_rate": _percent(substore.fee_rate_bp)}),
        error=error,
    ), status


@bp.get("/growth/substores/<code>")
def growth_substore(code: str):
    return _substore_page(code)


_SUBSTORE = _Kind(
    find=_substore_or_404,
    page=_substore_page,
    endpoint="operator.growth_substore",
    set_fee=programmes.set_substore_fee,
    on_storefront=True,
)


@bp.post("/growth/substores/<code>/approve")
def growth_substore_approve(code: str):
    return _decision(_SUBSTORE, code, programmes.approve_substore, with_reason=False)


@bp.post("/growth/substores/<code>/reject")
def growth_substore_reject(code: str):
    return _decision(_SUBSTORE, code, programmes.reject_substore, with_reason=True)


@bp.post("/growth/substores/<code>/freeze")
def growth_substore_freeze(code: str):
    return _decision(_SUBSTORE, code, programmes.freeze_substore, with_reason=True)


@bp.post("/growth/substores/<code>/unfreeze")
def growth_substore_unfreeze(code: str):
    return _decision(_SUBSTORE, code, programmes.unfreeze_substore, with_reason=False)


@bp.post("/growth/substores/<code>/domain/approve")
def growth_substore_domain_approve(code: str):
    return _decision(_SUBSTORE, code, programmes.approve_domain, with_reason=False)


@bp.post("/growth/substores/<code>/domain/refuse")
def growth_substore_domain_refuse(code: str):
    return _decision(_SUBSTORE, code, programmes.refuse_domain, with_reason=True)


@bp.post("/growth/substores/<code>/fee")
def growth_substore_fee(code: str):
    return _fee(_SUBSTORE, code)


# -- promoters ----------------------------------------------------------------------------------


@bp.get("/growth/promoters")
def growth_promoters():
    status = request.args.get("status", "")
    status = status if status in programmes.PROMOTER_STATUS_LABELS else ""
    found = programmes.search_promoters(status or None, page_number())
    return render_template(
        "operator/growth_promoters.html",
        promoters=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        status=status,
        labels=programmes.PROMOTER_STATUS_LABELS,
        affiliate_enabled=settings.programme_enabled("affiliate"),
    )


def _promoter_or_404(code: str) -> Promoter:
    try:
        return programmes.get_promoter(code)
    except NotFound:
        abort(404)


def _promoter_page(code: str, error=None, reason_form=None, fee_form=None, status: int = 200):
    promoter = _promoter_or_404(code)
    return render_template(
        "operator/growth_promoter.html",
        promoter=promoter,
        labels=programmes.PROMOTER_STATUS_LABELS,
        default_fee_bp=settings.programme_fee_bp("affiliate"),
        reason_form=reason_form or ReasonForm(formdata=None),
        fee_form=fee_form or FeeForm(formdata=None, data={"fee_rate": _percent(promoter.fee_rate_bp)}),
        error=error,
    ), status


@bp.get("/growth/promoters/<code>")
def growth_promoter(code: str):
    return _promoter_page(code)


_PROMOTER = _Kind(
    find=_promoter_or_404,
    page=_promoter_page,
    endpoint="operator.growth_promoter",
    set_fee=programmes.set_promoter_fee,
    on_storefront=False,
)


@bp.post("/growth/promoters/<code>/freeze")
def growth_promoter_freeze(code: str):
    return _decision(_PROMOTER, code, programmes.freeze_promoter, with_reason=True)


@bp.post("/growth/promoters/<code>/unfreeze")
def growth_promoter_unfreeze(code: str):
    return _decision(_PROMOTER, code, programmes.unfreeze_promoter, with_reason=False)


@bp.post("/growth/promoters/<code>/fee")
def growth_promoter_fee(code: str):
    return _fee(_PROMOTER, code)


NAV.append(("operator.growth_substores", _l("Sub-stores")))
NAV.append(("operator.growth_promoters", _l("Promoters")))
NAV.append(("operator.growth_settings", _l("Growth programmes")))
