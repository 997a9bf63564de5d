"""Review moderation: hiding a review that should not count, with the reason."""

from flask import abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from faka.core.errors import DomainError, NotFound
from faka.reviews import reviews
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number

SUSPICION_LABELS = {
    reviews.SELF_PURCHASE: _l("Self-purchase: ordered from an IP address or browser the shop owner signed in from"),
    reviews.DEVICE_MANY_ORDERS: _l("One browser paid for many of this shop's orders in 30 days"),
    reviews.DEVICE_MANY_REVIEWS: _l("One browser already wrote several reviews of this shop"),
    reviews.REVIEW_BURST: _l("Part of a burst of reviews of this shop within an hour"),
}


class HideForm(FlaskForm):
    reason = TextAreaField(
        _l("Reason for hiding"), description=_l("Recorded in the audit log and shown to the merchant.")
    )


def _filters() -> dict:
    only = request.args.get("only", "all")
    return {
        "only": only if only in reviews.OPERATOR_FILTERS else "all",
        "shop": request.args.get("shop", "").strip()[:16],
        "page": page_number(),
    }


def _list_page(status: int = 200, **context):
    filters = _filters()
    found = reviews.operator_reviews(filters["only"], filters["shop"] or None, filters["page"])
    return render_template(
        "operator/reviews.html",
        rows=found.items,
        total=found.total,
        pages=found.pages,
        shops=reviews.reviewed_merchants(),
        labels=SUSPICION_LABELS,
        form=HideForm(formdata=None),
        **filters,
        **context,
    ), status


@bp.get("/reviews")
def review_list():
    return _list_page()


def _decided(review_id: int, decide):
    try:
        decide()
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _list_page(400, error=exc.message, error_review_id=review_id)
    return redirect(url_for("operator.review_list", **_filters(), _anchor=f"review-{review_id}"), 303)


@bp.post("/reviews/<int:review_id>/hide")
def review_hide(review_id: int):
    reason = HideForm().reason.data
    return _decided(review_id, lambda: reviews.hide(review_id, current_user.id, reason))


@bp.post("/reviews/<int:review_id>/unhide")
def review_unhide(review_id: int):
    return _decided(review_id, lambda: reviews.unhide(review_id, current_user.id))


NAV.append(("operator.review_list", _l("Reviews")))
