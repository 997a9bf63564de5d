"""A product's variants (规格) in the back office: the list and the form to add one on the
product's edit page, a page to edit one, and delete, up and down buttons
(faka/catalog/variants.py holds the rules).

Plain forms, so everything works without JavaScript: a change answers 303 back to the
product's edit page, or the form again with what is wrong (400), nothing having changed.
"""

from decimal import Decimal

from flask import abort, g, redirect, request, url_for

from faka.catalog import products, variants
from faka.core.errors import DomainError, NotFound
from faka.web.forms import error_under_input
from faka.web.merchant import _product_form, bp, product_page, scoped
from faka.web.merchant import render as render_page
from faka.web.merchant.forms import NewVariantForm, VariantForm, yuan_to_fen


def _draft(form: VariantForm) -> variants.VariantDraft:
    return variants.VariantDraft(
        name=form.name.data or "",
        name_en=form.name_en.data,
        price=yuan_to_fen(form.price.data),
        min_per_order=form.min_per_order.data,
        max_per_order=form.max_per_order.data,
        tiers=products.parse_tiers(form.tiers.data or ""),
        low_stock_threshold=form.low_stock_threshold.data,
    )


def _anchor(key: str | None = None) -> str:
    return f"variant-{key}" if key else "variants"


@bp.post("/products/<slug>/variants")
@scoped
def variant_add(slug: str):
    product = products.get_product(g.merchant.id, slug)
    form = NewVariantForm(prefix="variant")
    error = None
    if form.validate_on_submit():
        try:
            variant = variants.add_variant(
                g.merchant.id,
                slug,
                _draft(form),
                first_name=form.first_name.data,
                first_name_en=form.first_name_en.data,
            )
        except NotFound:
            raise
        except DomainError as exc:
            error = error_under_input(form, exc)
        else:
            return redirect(url_for("merchant.product_edit", slug=slug, _anchor=_anchor(variant.key)), 303)
    # The product's own form is shown as the product is: only the variant's form was sent.
    return product_page(product, _product_form(product, submitted=False), 400, variant_form=form, variant_error=error)


@bp.route("/products/<slug>/variants/<key>", methods=["GET", "POST"])
@scoped
def variant_edit(slug: str, key: str):
    product, variant = variants.get_variant(g.merchant.id, slug, key)
    if request.method == "GET":
        form = VariantForm(formdata=None, obj=variant)
        form.price.data = Decimal(variant.price) / 100
        form.tiers.data = variants.format_tiers(variant)
        return _edit_page(product, variant, form)
    form = VariantForm()
    error = None
    if form.validate_on_submit():
        try:
            variants.update_variant(g.merchant.id, slug, key, _draft(form))
        except NotFound:
            raise
        except DomainError as exc:
            error = error_under_input(form, exc)
        else:
            return redirect(url_for("merchant.product_edit", slug=slug, _anchor=_anchor(key)), 303)
    return _edit_page(product, variant, form, 400, error)


def _edit_page(product, variant, form: VariantForm, status: int = 200, error=None):
    return render_page("merchant/variant.html", status, product=product, variant=variant, form=form, error=error)


@bp.post("/products/<slug>/variants/<key>/delete")
@scoped
def variant_delete(slug: str, key: str):
    try:
        variants.delete_variant(g.merchant.id, slug, key)
    except variants.LastVariant as exc:
        product = products.get_product(g.merchant.id, slug)
        return product_page(product, _product_form(product, submitted=False), 400, variants_error=exc.message)
    return redirect(url_for("merchant.product_edit", slug=slug, _anchor=_anchor()), 303)


@bp.post("/products/<slug>/variants/<key>/move")
@scoped
def variant_move(slug: str, key: str):
    direction = request.form.get("direction", "")
    if direction not in (variants.UP, variants.DOWN):
        abort(400)
    variants.move_variant(g.merchant.id, slug, key, direction)
    return redirect(url_for("merchant.product_edit", slug=slug, _anchor=_anchor(key)), 303)
