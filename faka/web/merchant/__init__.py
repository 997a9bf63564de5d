"""The merchant back office. Every view works on the logged-in merchant's own objects:
loaders in the contexts (faka/<context>/) take the merchant id and answer NotFound for anyone else's."""

from datetime import datetime, time, timedelta
from decimal import Decimal
from functools import wraps
from zoneinfo import ZoneInfo

from flask import (
    Blueprint,
    Response,
    abort,
    current_app,
    g,
    redirect,
    render_template,
    request,
    stream_with_context,
    url_for,
)
from flask_babel import gettext as _
from flask_login import current_user
from flask_wtf import FlaskForm

from faka.accounts import onboarding
from faka.catalog import products, variants
from faka.catalog.models import Product, ProductVariant
from faka.complaints import workflow
from faka.core import tasks
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import page_count
from faka.core.text import markdown
from faka.core.uploads import MAX_UPLOAD_BYTES, stored_image
from faka.extensions import db
from faka.inventory import keys as key_service
from faka.inventory import licenses
from faka.ledger import balances, payouts
from faka.messaging import notifications, restock, webhooks
from faka.ops import first_run
from faka.orders import coupons, delivery, merchant_orders, remote_delivery
from faka.orders.models import Order
from faka.payments import refunds
from faka.platform import analytics
from faka.web import charts
from faka.web.access import fresh_login_required, merchant_required
from faka.web.auth import passkeys
from faka.web.htmx import wants_partial
from faka.web.merchant.forms import (
    BuyerBlacklistForm,
    CouponForm,
    KeyImportForm,
    ManualDeliveryForm,
    NewVariantForm,
    OrderFilterForm,
    PayoutAccountForm,
    ProductForm,
    QualificationForm,
    VoidKeysForm,
    WebhookForm,
    WithdrawalForm,
    yuan_to_fen,
)
from faka.web.pagination import page_number
from faka.web.security import image_response
from faka.web.templating import category_name, order_status_label
from faka.web.uploads import UploadLimit, accepts_upload, back_office_uploads

bp = Blueprint("merchant", __name__, url_prefix="/merchant")

MAX_KEY_FILE_BYTES = 20 * 1024 * 1024
LICENCE_UPLOAD = UploadLimit(files=1, file_bytes=MAX_UPLOAD_BYTES)
KEY_FILE_UPLOAD = UploadLimit(files=1, file_bytes=MAX_KEY_FILE_BYTES)


@bp.before_request
@merchant_required
def load_merchant():
    g.merchant = onboarding.merchant_for_user(current_user.id)
    if g.merchant is None:
        abort(403)


def scoped(view):
    """Turn a service's NotFound (another merchant's object, or none) into a 404."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except NotFound:
            abort(404)

    return wrapped


def render(template: str, status: int = 200, **context):
    # The navigation shows how many complaints wait for the merchant's first answer.
    return render_template(
        template, merchant=g.merchant, complaints_waiting=workflow.count_needing_answer(g.merchant.id), **context
    ), status


# -- dashboard and onboarding -----------------------------------------------------------


@bp.get("/")
def dashboard():
    # Until the first sale the figures would all be zero: the checklist of what is left to do instead.
    setup = first_run.merchant_setup(g.merchant.id)
    if not setup.first_sale:
        return render("merchant/dashboard.html", setup=setup)
    figures = analytics.dashboard(g.merchant.id)
    return render(
        "merchant/dashboard.html",
        setup=setup,
        figures=figures,
        chart=charts.daily_sales_chart(figures.daily_sales, figures.currency),
        balance=balances.balance(g.merchant.id),
    )


def _qualification_page(form: QualificationForm, error=None, status: int = 200):
    return render(
        "merchant/qualification.html", status, form=form, error=error, masked_id=onboarding.masked_id_number(g.merchant)
    )


def _qualification_refused():
    # A qualification approved or under review is said so before the licence image is read.
    try:
        onboarding.check_can_submit(g.merchant.id)
    except DomainError as exc:
        return _qualification_page(QualificationForm(formdata=None), exc.message, 400)
    return None


@bp.route("/qualification", methods=["GET", "POST"])
@back_office_uploads
@accepts_upload(LICENCE_UPLOAD, refused=_qualification_refused)
def qualification():
    m = g.merchant
    form = QualificationForm(obj=None if request.method == "POST" else m)
    error = None
    if form.validate_on_submit():
        upload = request.files.get(form.licence_image.name)
        # One byte over the limit is enough to refuse the file; the rest is never read.
        data = upload.read(MAX_UPLOAD_BYTES + 1) if upload and upload.filename else None
        details = onboarding.Qualification(
            form.legal_name.data, form.entity_type.data, form.id_number.data, form.contact.data
        )
        try:
            onboarding.submit_qualification(m.id, details, data)
        except DomainError as exc:
            error = exc.message
        else:
            return redirect(url_for("merchant.dashboard"), 303)
    elif request.method == "GET":
        form.id_number.data = ""
    return _qualification_page(form, error, 400 if request.method == "POST" else 200)


@bp.get("/qualification/licence")
def licence_image():
    stored = stored_image(g.merchant.licence_image)
    if stored is None:
        abort(404)
    return image_response(stored)


# -- products ---------------------------------------------------------------------------


def _product_form(product=None, submitted: bool | None = None) -> ProductForm:
    """The product form: from the request when `submitted` (default: a POST), else as
    the product is. A product with several variants has no price, limits, tiers or
    low-stock inputs: each variant has its own (faka/web/merchant/variants.py)."""
    submitted = request.method == "POST" if submitted is None else submitted
    form = ProductForm() if submitted else ProductForm(formdata=None, obj=product)
    form.category_id.choices = [
        (c.id, _("%(name)s (hidden by the platform)", name=category_name(c)) if c.hidden else category_name(c))
        for c in products.categories(current_id=product.category_id if product else None)
    ]
    if product and product.has_choice:
        for name in (*variants.VARIANT_FIELDS, "tiers"):
            delattr(form, name)
    elif not submitted and product:
        variant = product.live_variants[0]
        form.price.data = Decimal(variant.price) / 100
        form.min_per_order.data = variant.min_per_order
        form.max_per_order.data = variant.max_per_order
        form.low_stock_threshold.data = variant.low_stock_threshold
        form.tiers.data = variants.format_tiers(variant)
    if not submitted:
        form.fixed_content.data = ""
    return form


def _draft(form: ProductForm, product=None) -> products.ProductDraft:
    if "price" in form:  # a product with several variants has no such inputs
        figures = {
            "price": yuan_to_fen(form.price.data),
            "min_per_order": form.min_per_order.data,
            "max_per_order": form.max_per_order.data,
            "low_stock_threshold": form.low_stock_threshold.data,
            "tiers": products.parse_tiers(form.tiers.data or ""),
        }
    else:
        # Several variants: save_product leaves their figures alone; the first one's pass its checks.
        first = product.live_variants[0]
        figures = {name: getattr(first, name) for name in variants.VARIANT_FIELDS}
        figures["tiers"] = [(t.min_quantity, t.unit_price) for t in first.tiers]
    return products.ProductDraft(
        title=form.title.data,
        category_id=form.category_id.data,
        description_md=form.description_md.data or "",
        delivery_type=form.delivery_type.data,
        fixed_content=form.fixed_content.data or None,
        remote_url=remote_delivery.checked_url(form.delivery_type.data, form.remote_url.data),
        manual_promise_hours=form.manual_promise_hours.data,
        reusable_key=form.reusable_key.data,
        require_query_password=form.require_query_password.data,
        require_email=form.require_email.data,
        refund_policy=form.refund_policy.data or "",
        visible=form.visible.data,
        risk_captcha_at=form.risk_captcha_at.data,
        risk_hold_at=form.risk_hold_at.data,
        license_checks=form.license_checks.data,
        activation_limit=form.activation_limit.data,
        position=form.position.data,
        **figures,
    )


@bp.route("/products/new", methods=["GET", "POST"])
def product_new():
    return _edit_product(None)


@bp.route("/products/<slug>/edit", methods=["GET", "POST"])
@scoped
def product_edit(slug: str):
    return _edit_product(products.get_product(g.merchant.id, slug))


def product_page(product, form: ProductForm, status: int = 200, **context):
    """The product form, and for a saved product its variants with the form to add one."""
    if product is not None:
        context.setdefault("variant_form", NewVariantForm(formdata=None, prefix="variant"))
        context.setdefault("variant_rows", variants.variant_rows(product))
    context.setdefault("error", None)
    context.setdefault("risk_error", False)
    return render("merchant/product_form.html", status, form=form, product=product, **context)


def _edit_product(product):
    form = _product_form(product)
    status = 400 if request.method == "POST" else 200
    if not form.category_id.choices:
        # A new install has no category until the operator creates one: say so, save nothing.
        return product_page(product, form, status, no_categories=True)
    if form.validate_on_submit():
        try:
            saved = products.save_product(g.merchant.id, _draft(form, product), slug=product.slug if product else None)
        except DomainError as exc:
            return product_page(
                product, form, status, error=exc.message, risk_error=isinstance(exc, products.LaxerThanSite)
            )
        # A product that now delivers from the merchant's server gets its signing
        # secret, shown this once on the server's page.
        secret = remote_delivery.ensure_secret(g.merchant.id, saved.slug)
        if secret is not None:
            return delivery_server.server_page(saved, secret=secret)
        return redirect(
            url_for("merchant.product_keys", slug=saved.slug) if product is None else url_for("merchant.product_list"),
            303,
        )
    return product_page(product, form, status)


@bp.post("/products/preview")
def product_preview():

    return render_template("merchant/_preview.html", html=markdown(request.form.get("description_md", "")[:20000]))


@bp.get("/products")
def product_list():
    return render(
        "merchant/products.html",
        rows=products.merchant_products(g.merchant.id),
        waiting=restock.waiting_counts(g.merchant.id),  # buyers waiting for a back-in-stock email
    )


@bp.post("/products/<slug>/visibility")
@scoped
def product_visibility(slug: str):
    products.set_visible(g.merchant.id, slug, request.form.get("visible") == "1")
    return redirect(url_for("merchant.product_list"), 303)


@bp.post("/products/<slug>/delete")
@scoped
def product_delete(slug: str):
    products.delete_product(g.merchant.id, slug)
    return redirect(url_for("merchant.product_list"), 303)


@bp.post("/products/<slug>/move")
@scoped
def product_move(slug: str):
    """One place up or down in the list (and the shop); the list comes back at that product."""
    try:
        products.move_product(g.merchant.id, slug, request.form.get("direction", ""))
    except products.InvalidProduct:
        abort(400)
    return redirect(url_for("merchant.product_list", _anchor=f"product-{slug}"), 303)


# -- keys -------------------------------------------------------------------------------


def _own_product(slug: str) -> None:
    products.get_product(g.merchant.id, slug)  # another merchant's: a 404 before the key file is read


def _keys_page(product, status: int = 200, **context):
    """A product's keys: its stock (each variant's, when it has several), the import, the
    void and the export. The variant in `?variant=` is the one the forms start on."""
    chosen = request.values.get("variant") or ""
    context.setdefault("form", KeyImportForm(formdata=None, variant=chosen))
    context.setdefault("void_form", VoidKeysForm(formdata=None, variant=chosen))
    for form in (context["form"], context["void_form"]):
        form.variant.choices = [("", _("Choose a variant"))] + [(v.key, v.name) for v in product.live_variants]
    context.setdefault("report", None)
    context.setdefault("error", None)
    return render(
        "merchant/keys.html",
        status,
        product=product,
        chosen=chosen,
        variant_rows=variants.variant_rows(product),
        stock=key_service.stock_by_status(product.id),
        **context,
    )


@bp.route("/products/<slug>/keys", methods=["GET", "POST"])
@scoped
@back_office_uploads
@accepts_upload(KEY_FILE_UPLOAD, refused=_own_product)
def product_keys(slug: str):
    product = products.get_product(g.merchant.id, slug)
    if request.method == "GET":
        return _keys_page(product)
    form = KeyImportForm()
    if not form.validate_on_submit():
        return _keys_page(product, 400, form=form, error=_("The import could not be read."))
    try:
        variant = variants.pick(product, form.variant.data)
    except DomainError as exc:
        return _keys_page(product, 400, form=form, error=exc.message)
    text, error = _import_text(form)
    if error is None and not text.strip():
        error = _("Paste keys or choose a file.")
    if error is not None:
        return _keys_page(product, 400, form=form, error=error)
    if len(key_service.split_keys(text, form.separator.data)) > key_service.JOB_THRESHOLD_LINES:
        try:
            job = key_service.start_import(g.merchant.id, variant, text, form.separator.data)
        except DomainError as exc:  # the storage failed: nothing was queued
            return _keys_page(product, 400, form=form, error=exc.message)
        tasks.enqueue("inventory.tasks.import_keys", job.id, job_id=f"import-{job.id}")
        return redirect(url_for("merchant.key_import", public_id=job.public_id), 303)
    try:
        report = key_service.import_keys(variant, text, form.separator.data)
    except DomainError as exc:  # the variant was deleted meanwhile
        return _keys_page(product, 400, form=form, error=exc.message)
    return _keys_page(product, form=form, report=report, imported_to=variant)


def _import_text(form: KeyImportForm) -> tuple[str, str | None]:
    upload = request.files.get(form.keys_file.name)
    if upload and upload.filename:
        data = upload.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            return "", _("The file is larger than 20 MB; split it into smaller files.")
        try:
            return data.decode("utf-8-sig"), None
        except UnicodeDecodeError:
            try:
                return data.decode("gb18030"), None
            except UnicodeDecodeError:
                return "", _("The file is not text (UTF-8 or GBK).")
    return form.keys.data or "", None


@bp.get("/imports/<public_id>")
@scoped
def key_import(public_id: str):
    job = key_service.get_import(g.merchant.id, public_id)
    product = db.session.get(Product, job.product_id)
    variant = db.session.get(ProductVariant, job.variant_id)
    if wants_partial():
        response = current_app.make_response(
            render_template("merchant/_import_progress.html", job=job, product=product, variant=variant)
        )
        if job.status in ("done", "failed"):
            response.status_code = 286
        return response
    return render("merchant/import.html", job=job, product=product, variant=variant)


@bp.post("/products/<slug>/keys/void")
@scoped
def product_keys_void(slug: str):
    product = products.get_product(g.merchant.id, slug)
    form = VoidKeysForm()
    if not form.validate_on_submit():
        return _keys_page(product, 400, void_form=form, void_error=_("Paste the keys to void."))
    try:
        variant = variants.pick(product, form.variant.data)
    except DomainError as exc:
        return _keys_page(product, 400, void_form=form, void_error=exc.message)
    voided = key_service.void_keys(variant, form.keys.data)
    return _keys_page(product, voided=voided, voided_from=variant)


@bp.post("/products/<slug>/keys/export")
@fresh_login_required(back_to=lambda slug: url_for("merchant.product_keys", slug=slug))
@scoped
def product_keys_export(slug: str):
    product = products.get_product(g.merchant.id, slug)
    if not FlaskForm().validate():
        abort(400)
    try:
        variant = variants.pick(product, request.form.get("variant"))
    except DomainError as exc:
        return _keys_page(product, 400, export_error=exc.message)
    body = "\n".join(key_service.export_unsold_keys(variant, current_user.id)) + "\n"
    response = Response(body, mimetype="text/plain")
    name = f"keys-{product.slug}-{variant.key}.txt" if product.has_choice else f"keys-{product.slug}.txt"
    response.headers["Content-Disposition"] = f'attachment; filename="{name}"'
    response.headers["Cache-Control"] = "no-store"
    return response


# -- orders -----------------------------------------------------------------------------


def _order_filter() -> tuple[OrderFilterForm, merchant_orders.OrderFilter]:
    form = OrderFilterForm(request.args)
    form.status.choices = [("", _("Any status"))] + [
        (s, order_status_label(s))
        for s in (
            Order.PENDING,
            Order.PAID,
            Order.DELIVERED,
            Order.EXPIRED,
            Order.CANCELLED,
            Order.PAID_UNFULFILLED,
            Order.REFUNDED,
            Order.PARTIALLY_REFUNDED,
        )
    ]
    form.product.choices = [("", _("Any product"))] + [
        (p.slug, p.title) for p in products.product_choices(g.merchant.id)
    ]
    if not form.validate():
        return form, merchant_orders.OrderFilter()
    return form, merchant_orders.OrderFilter(
        status=form.status.data or None,
        product_slug=form.product.data or None,
        since=form.since.data,
        until=form.until.data,
        email=form.email.data or None,
        number=form.number.data or None,
        flagged=bool(form.flagged.data),
    )


def _site_tz():
    return ZoneInfo(current_app.config["BABEL_DEFAULT_TIMEZONE"])


@bp.get("/orders")
def order_list():
    form, order_filter = _order_filter()
    found = merchant_orders.search(g.merchant.id, order_filter, page_number(), tz=_site_tz())
    template = "merchant/_order_rows.html" if wants_partial() else "merchant/orders.html"
    return render(
        template,
        form=form,
        orders=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        query=request.args.to_dict(flat=True),
        answers=merchant_orders.masked_answers(found.items),
    )


@bp.get("/orders.csv")
def order_export():
    _form, order_filter = _order_filter()
    # Streamed: the request's context (and its database session) stays open while it is sent.
    rows = merchant_orders.export_csv(g.merchant.id, order_filter, tz=_site_tz())
    response = Response(stream_with_context(rows), mimetype="text/csv")
    response.headers["Content-Disposition"] = 'attachment; filename="orders.csv"'
    return response


def _order_page(order, status: int = 200, **context):
    context.setdefault("delivery_form", ManualDeliveryForm(formdata=None))
    context.setdefault("blacklist_form", BuyerBlacklistForm(formdata=None))
    return render(
        "merchant/order.html",
        status,
        order=order,
        events=merchant_orders.timeline(order),
        blacklisted=merchant_orders.buyer_blacklist_entries(g.merchant.id, order),
        answers=merchant_orders.buyer_answers(order),
        server_attempts=remote_delivery.attempts(order.id),
        key_seats=licenses.order_seats(g.merchant.id, order.id),
        **context,
    )


@bp.get("/orders/<number>")
@scoped
def order_detail(number: str):
    return _order_page(merchant_orders.get_order(g.merchant.id, number))


@bp.post("/orders/<number>/resend")
@scoped
def order_resend(number: str):
    email_id = merchant_orders.resend_delivery_email(g.merchant.id, number)
    if email_id is not None:
        tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}-resend")
    return redirect(url_for("merchant.order_detail", number=number), 303)


@bp.post("/orders/<number>/deliver")
@scoped
def order_deliver(number: str):
    form = ManualDeliveryForm()
    order = merchant_orders.get_order(g.merchant.id, number)
    error = None
    if form.validate_on_submit():
        try:
            delivery.deliver_manually(g.merchant.id, number, form.content.data)
        except DomainError as exc:
            error = exc.message
        else:
            return redirect(url_for("merchant.order_detail", number=number), 303)
    return _order_page(order, 400, delivery_form=form, error=error)


@bp.post("/orders/<number>/refund")
@scoped
def order_refund(number: str):
    order = merchant_orders.get_order(g.merchant.id, number)
    try:
        refunded = refunds.refund_order(order.id, g.merchant.id, current_user.id)
    except DomainError as exc:
        return _order_page(order, 400, error=exc.message)
    if refunded:
        notifications.order_refunded(order.id)
    return redirect(url_for("merchant.order_detail", number=number), 303)


@bp.post("/orders/<number>/blacklist")
@scoped
def order_blacklist(number: str):
    """Blacklist the order's buyer (email or browser) for this shop; the value comes
    from the order, never from the form."""
    form = BuyerBlacklistForm()
    order = merchant_orders.get_order(g.merchant.id, number)
    if not form.validate_on_submit():
        return _order_page(order, 400, blacklist_form=form, blacklist_error=next(iter(form.errors.values()))[0])
    try:
        merchant_orders.blacklist_buyer(g.merchant.id, number, form.kind.data, form.reason.data, current_user.id)
    except DomainError as exc:
        return _order_page(order, 400, blacklist_form=form, blacklist_error=exc.message)
    return redirect(url_for("merchant.order_detail", number=number, _anchor="buyer"), 303)


# -- money ------------------------------------------------------------------------------


def _withdrawal_form() -> WithdrawalForm:
    form = WithdrawalForm()
    form.payout_account_id.choices = [
        (a.id, f"{payouts.PAYOUT_KIND_LABELS.get(a.kind, a.kind)} · {a.holder} · …{a.account_hint}")
        for a in payouts.payout_accounts(g.merchant.id)
    ]
    return form


def _money_page(status: int = 200, **context):
    kind = request.args.get("kind") or None
    page = page_number()
    entries, total = balances.ledger(g.merchant.id, kind=kind if kind in balances.LEDGER_KINDS else None, page=page)
    context.setdefault("account_form", PayoutAccountForm(formdata=None))
    context.setdefault("withdrawal_form", _withdrawal_form())
    return render(
        "merchant/money.html",
        status,
        balance=balances.balance(g.merchant.id),
        entries=entries,
        total=total,
        page=page,
        pages=page_count(total, balances.LEDGER_PER_PAGE),
        kind=kind,
        kinds=balances.LEDGER_KINDS,
        accounts=payouts.payout_accounts(g.merchant.id),
        two_factor=current_user.two_factor_enabled,
        passkey=bool(current_user.passkeys),
        **context,
    )


@bp.get("/money")
def money_overview():
    return _money_page()


@bp.post("/money/accounts")
def payout_account_add():
    form = PayoutAccountForm()
    if form.validate_on_submit():
        try:
            payouts.add_payout_account_confirmed(
                g.merchant.id,
                current_user.id,
                form.code.data,
                form.kind.data,
                form.holder.data,
                form.account.data,
                passkey=passkeys.confirmation_proof(form.passkey.data),
            )
        except DomainError as exc:
            return _money_page(400, account_form=form, error=exc.message)
        return redirect(url_for("merchant.money_overview"), 303)
    return _money_page(400, account_form=form)


@bp.post("/money/accounts/<int:account_id>/delete")
@scoped
def payout_account_remove(account_id: int):
    payouts.remove_payout_account(g.merchant.id, account_id)
    return redirect(url_for("merchant.money_overview"), 303)


@bp.post("/money/withdrawals")
def withdrawal_request():
    form = _withdrawal_form()
    if form.validate_on_submit():
        try:
            payouts.request_withdrawal_confirmed(
                g.merchant.id,
                current_user.id,
                form.code.data,
                form.payout_account_id.data,
                yuan_to_fen(form.amount.data),
                passkey=passkeys.confirmation_proof(form.passkey.data),
            )
        except DomainError as exc:
            return _money_page(400, withdrawal_form=form, error=exc.message)
        return redirect(url_for("merchant.money_overview"), 303)
    return _money_page(400, withdrawal_form=form)


# -- coupons ----------------------------------------------------------------------------


def _coupon_form() -> CouponForm:
    form = CouponForm()
    form.product_id.choices = [(0, _("All my products"))] + [
        (p.id, p.title) for p in products.product_choices(g.merchant.id)
    ]
    return form


@bp.route("/coupons", methods=["GET", "POST"])
def coupon_list():
    form = _coupon_form()
    error = None
    if form.validate_on_submit():
        value = yuan_to_fen(form.value.data)  # percent: 10.00 % -> 1000 basis points; fixed: yuan -> fen
        expires_at = None
        if form.expires_on.data:
            expires_at = datetime.combine(form.expires_on.data + timedelta(days=1), time.min, _site_tz())
        try:
            coupons.create_coupon(
                g.merchant.id,
                form.code.data,
                form.kind.data,
                value,
                product_id=form.product_id.data or None,
                min_amount=yuan_to_fen(form.min_amount.data or Decimal("0")),
                usage_limit=form.usage_limit.data,
                expires_at=expires_at,
            )
        except DomainError as exc:
            error = exc.message
        else:
            return redirect(url_for("merchant.coupon_list"), 303)
    status = 400 if request.method == "POST" else 200
    return render("merchant/coupons.html", status, form=form, error=error, coupons=coupons.list_coupons(g.merchant.id))


@bp.post("/coupons/<int:coupon_id>/deactivate")
@scoped
def coupon_deactivate(coupon_id: int):
    coupons.deactivate_coupon(coupon_id, g.merchant.id)
    return redirect(url_for("merchant.coupon_list"), 303)


# -- webhooks ---------------------------------------------------------------------------


@bp.route("/webhooks", methods=["GET", "POST"])
def webhook_list():
    form = WebhookForm()
    error, secret = None, None
    if form.validate_on_submit():
        try:
            _endpoint, secret = webhooks.create_endpoint(g.merchant.id, form.url.data, form.events.data)
        except DomainError as exc:
            error = exc.message
    elif request.method == "GET":
        form.events.data = list(webhooks.EVENTS)
    status = 400 if request.method == "POST" and secret is None else 200
    return render(
        "merchant/webhooks.html",
        status,
        form=form,
        error=error,
        secret=secret,
        endpoints=webhooks.endpoints(g.merchant.id),
    )


@bp.get("/webhooks/<int:endpoint_id>")
@scoped
def webhook_detail(endpoint_id: int):
    endpoint = webhooks.get_endpoint(endpoint_id, g.merchant.id)
    log = webhooks.delivery_log(endpoint_id, g.merchant.id, page_number())
    return render("merchant/webhook.html", endpoint=endpoint, log=log, secret=None)


@bp.post("/webhooks/<int:endpoint_id>/test")
@scoped
def webhook_test(endpoint_id: int):
    webhooks.send_test(endpoint_id, g.merchant.id)
    return redirect(url_for("merchant.webhook_detail", endpoint_id=endpoint_id), 303)


@bp.post("/webhooks/<int:endpoint_id>/rotate")
@scoped
def webhook_rotate(endpoint_id: int):
    secret = webhooks.rotate_secret(endpoint_id, g.merchant.id)
    endpoint = webhooks.get_endpoint(endpoint_id, g.merchant.id)
    return render(
        "merchant/webhook.html", endpoint=endpoint, log=webhooks.delivery_log(endpoint_id, g.merchant.id), secret=secret
    )


@bp.post("/webhooks/<int:endpoint_id>/delete")
@scoped
def webhook_delete(endpoint_id: int):
    webhooks.delete_endpoint(endpoint_id, g.merchant.id)
    return redirect(url_for("merchant.webhook_list"), 303)


# The blacklist, complaints, reviews, product images and checkout fields have their own
# modules, which attach their views to `bp`.
from faka.web.merchant import blacklist, complaints as merchant_complaints, reviews  # noqa: E402,F401,I001
from faka.web.merchant import fields, images  # noqa: E402,F401,I001
from faka.web.merchant import activations  # noqa: E402,F401,I001
from faka.web.merchant import delivery_server  # noqa: E402,F401,I001
from faka.web.merchant import push as merchant_push  # noqa: E402,F401,I001
from faka.web.merchant import api_keys as merchant_api_keys  # noqa: E402,F401,I001
from faka.web.merchant import product_variants  # noqa: E402,F401,I001
from faka.web.merchant import affiliates as merchant_affiliates  # noqa: E402,F401,I001
from faka.web.merchant import resale as merchant_resale  # noqa: E402,F401,I001
