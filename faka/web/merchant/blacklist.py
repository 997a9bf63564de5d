"""The merchant's own blacklist: email addresses, domains and IP addresses that may not buy
this shop's products (other shops are not affected). Buyers' browsers are added from an
order's page (merchant.order_blacklist), never typed."""

from flask import g, redirect, url_for
from flask_login import current_user

from faka.core.errors import DomainError
from faka.risk import blacklist
from faka.web.merchant import bp, render, scoped
from faka.web.merchant.forms import BlacklistForm


def _page(status: int = 200, **context):
    context.setdefault("form", BlacklistForm(formdata=None))
    return render("merchant/blacklist.html", status, entries=blacklist.entries(merchant_id=g.merchant.id), **context)


@bp.get("/blacklist")
def blacklist_list():
    return _page()


@bp.post("/blacklist")
def blacklist_add():
    form = BlacklistForm()
    if not form.validate_on_submit():
        return _page(400, form=form)
    try:
        blacklist.add(
            form.kind.data, form.value.data, form.reason.data, actor_id=current_user.id, merchant_id=g.merchant.id
        )
    except DomainError as exc:
        return _page(400, form=form, error=exc.message)
    return redirect(url_for("merchant.blacklist_list"), 303)


@bp.post("/blacklist/<int:entry_id>/delete")
@scoped
def blacklist_remove(entry_id: int):
    blacklist.remove(entry_id, actor_id=current_user.id, merchant_id=g.merchant.id)
    return redirect(url_for("merchant.blacklist_list"), 303)
