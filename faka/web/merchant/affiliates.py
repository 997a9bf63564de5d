"""Affiliate links (推广) in the back office: the account's promoter page (its links and
figures), and the merchant's products opted into the programme with their commission."""

from decimal import Decimal
from urllib.parse import parse_qsl, urlencode, urlsplit

from flask import current_app, g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import BooleanField, StringField
from wtforms.validators import InputRequired, Length, NumberRange, ValidationError

from faka.core.errors import DomainError, NotFound
from faka.growth import affiliates, promoter_stats
from faka.ledger import shares
from faka.platform import settings
from faka.web.fields import DecimalField
from faka.web.htmx import wants_partial
from faka.web.merchant import bp, render, scoped
from faka.web.shop.referral import COOKIE

MAX_PERCENT = Decimal(shares.MAX_COMMISSION_BP) / 100
# Links into the back office, sign-in or payment pages make no sense to share.
NOT_SHARED = ("/merchant", "/operator", "/api/", "/pay/", "/login", "/logout", "/static/")


class CommissionForm(FlaskForm):
    rate = DecimalField(
        _l("Commission (%)"),
        validators=[
            InputRequired(_l("Enter the commission in percent.")),
            NumberRange(Decimal("0.01"), MAX_PERCENT, _l("The commission must be from 0.01 %% to %(max)s %%.")),
        ],
    )
    active = BooleanField(_l("Promoters earn it"))

    def validate_rate(self, field):
        if field.data is not None and (field.data * 100) % 1:
            raise ValidationError(_l("Give the commission with at most two decimals, such as 7.5."))

    @property
    def commission_bp(self) -> int:
        return int(self.rate.data * 100)


class LinkForm(FlaskForm):
    url = StringField(_l("Page of this site"), validators=[InputRequired(_l("Paste a page address.")), Length(1, 500)])


# -- the promoter ------------------------------------------------------------------------


def _site_base() -> str:
    return current_app.config["BASE_URL"].rstrip("/")


def referral_link(url: str, code: str) -> str | None:
    """`url` (a product, shop or other shop page of this site, or its path) with the
    promoter's `?ref=`; None when it is no shop page of this site."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    hosts = {urlsplit(_site_base()).netloc.lower(), request.host.lower()}
    if parts.scheme not in ("", "http", "https") or (parts.netloc and parts.netloc.lower() not in hosts):
        return None
    if parts.scheme and not parts.netloc:
        return None
    path = parts.path or "/"
    if not path.startswith("/") or path.startswith("//") or path.startswith(NOT_SHARED):
        return None
    query = [(k, v) for k, v in parse_qsl(parts.query, keep_blank_values=True) if k != "ref"] + [("ref", code)]
    return f"{_site_base()}{path}?{urlencode(query)}"


def _promoter_page(status: int = 200, **context):
    promoter = affiliates.promoter_of(g.merchant.id)
    if promoter is not None:
        context.setdefault("link_form", LinkForm(meta={"csrf": False}, formdata=None))
        context.update(
            home_link=referral_link("/", promoter.code),
            figures=promoter_stats.daily_figures(promoter.id, g.merchant.id),
            recent=promoter_stats.recent_orders(promoter.id, g.merchant.id),
        )
    return render(
        "merchant/promoter.html",
        status,
        promoter=promoter,
        programme_open=settings.programme_enabled("affiliate"),
        days=affiliates.REFERRAL_DAYS,
        cookie=COOKIE,
        join_form=FlaskForm(),
        **context,
    )


@bp.get("/promoter")
def promoter_page():
    return _promoter_page()


@bp.post("/promoter")
def promoter_join():
    form = FlaskForm()
    if not form.validate_on_submit():
        return _promoter_page(400, error=_l("The form expired. Please try again."))
    try:
        affiliates.become_promoter(g.merchant.id, current_user.id)
    except DomainError as exc:
        return _promoter_page(400, error=exc.message)
    return redirect(url_for("merchant.promoter_page"), 303)


@bp.get("/promoter/link")
def promoter_link():
    """Turn a page address into the promoter's link: the box on the promoter page
    (HTMX swaps the answer in; without JavaScript the whole page comes back)."""
    promoter = affiliates.promoter_of(g.merchant.id)
    if promoter is None:
        return redirect(url_for("merchant.promoter_page"), 303)
    form = LinkForm(request.args, meta={"csrf": False})
    made, status = None, 200
    if form.validate():
        made = referral_link(form.url.data, promoter.code)
        if made is None:
            form.url.errors.append(_l("Give the address of a product, shop or other page of this site."))
    if form.errors:
        status = 400
    if wants_partial():
        return render("merchant/_promoter_link.html", status, promoter=promoter, link_form=form, made_link=made)
    return _promoter_page(status, link_form=form, made_link=made)


# -- the merchant: products opted in -----------------------------------------------------


def _affiliate_page(status: int = 200, forms: dict | None = None, **context):
    rows = affiliates.merchant_opt_ins(g.merchant.id)
    forms = forms or {}
    for row in rows:
        if row.product.slug not in forms:
            forms[row.product.slug] = CommissionForm(
                formdata=None,
                rate=(Decimal(row.terms.commission_bp) / 100) if row.terms else None,
                active=row.on if row.terms else True,
            )
    return render(
        "merchant/affiliate.html",
        status,
        rows=rows,
        forms=forms,
        programme_open=settings.programme_enabled("affiliate"),
        max_percent=MAX_PERCENT,
        **context,
    )


@bp.get("/affiliate")
def affiliate_products():
    return _affiliate_page()


@bp.post("/affiliate/<slug>")
@scoped
def affiliate_set(slug: str):
    form = CommissionForm()
    if form.validate_on_submit():
        try:
            affiliates.set_commission(g.merchant.id, current_user.id, slug, form.commission_bp, form.active.data)
        except NotFound:
            raise
        except DomainError as exc:
            return _affiliate_page(400, forms={slug: form}, error=exc.message)
        return redirect(url_for("merchant.affiliate_products", _anchor=f"p-{slug}"), 303)
    return _affiliate_page(400, forms={slug: form}, error_slug=slug)
