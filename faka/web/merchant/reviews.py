"""The merchant's reviews: what buyers said, and the one reply each review may get."""

from flask import abort, g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from faka.core.errors import DomainError, NotFound
from faka.reviews import reviews
from faka.web.merchant import bp, render, scoped
from faka.web.pagination import page_number


class ReplyForm(FlaskForm):
    text = TextAreaField(
        _l("Your reply"),
        description=_l("Shown under the review to every buyer. One reply per review; it cannot be changed later."),
    )


def _list_args() -> dict:
    only = request.args.get("only", "all")
    return {"only": only if only in reviews.MERCHANT_FILTERS else "all", "page": page_number()}


def _list_page(status: int = 200, **context):
    args = _list_args()
    found = reviews.merchant_reviews(g.merchant.id, args["only"], args["page"])
    return render(
        "merchant/reviews.html",
        status,
        rows=found.items,
        total=found.total,
        only=args["only"],
        page=found.page,
        pages=found.pages,
        form=ReplyForm(formdata=None),
        **context,
    )


@bp.get("/reviews")
def review_list():
    return _list_page()


@bp.post("/reviews/<int:review_id>/reply")
@scoped
def review_reply(review_id: int):
    form = ReplyForm()
    try:
        reviews.reply(g.merchant.id, review_id, form.text.data)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _list_page(400, error=exc.message, error_review_id=review_id, reply_text=form.text.data)
    return redirect(url_for("merchant.review_list", **_list_args(), _anchor=f"review-{review_id}"), 303)
