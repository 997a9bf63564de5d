"""The buyer's order page, its live status, finding orders again, and reviewing one."""

from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import TextAreaField

from faka.catalog import checkout_fields
from faka.complaints import workflow
from faka.core.errors import DomainError, NotFound
from faka.extensions import limiter
from faka.inventory.keys import delivered_items
from faka.orders import checkout, status_signal
from faka.orders import lookup as orders
from faka.orders.models import Order
from faka.payments import notify
from faka.reviews import reviews
from faka.risk import captcha, engine
from faka.web import device
from faka.web.fields import IntegerField
from faka.web.forms import LookupForm
from faka.web.i18n import current_language
from faka.web.limits import token_misses

bp = Blueprint("orders", __name__)

HTMX_STOP_POLLING = 286


def _order_or_404(token: str):
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    return order


def _panels(order) -> dict:
    """The order page's review and complaint panels (templates/orders/_panels.html)."""
    return {"review_panel": reviews.order_panel(order), "complaint_panel": workflow.order_panel(order)}


@bp.get("/order/<token>")
@token_misses
def show(token: str):
    order = _order_or_404(token)
    page = render_template(
        "orders/show.html",
        order=order,
        items=delivered_items(order),
        extra_payments=notify.extra_payments(order.id),
        answers=checkout_fields.order_answers(order.id),
        **_panels(order),
    )
    return _private(make_response(page))


@bp.get("/order/<token>/keys.txt")
@token_misses
def keys_txt(token: str):
    """The delivered goods as a text file, one item a line, named after the order number."""
    order = _order_or_404(token)
    items = delivered_items(order)
    if not items:
        abort(404)
    response = make_response("\n".join(items) + "\n")
    response.mimetype = "text/plain"  # Flask adds charset=utf-8
    response.headers["Content-Disposition"] = f'attachment; filename="{order.number}.txt"'
    return _no_store(response)


@bp.get("/order/<token>/status")
def status(token: str):
    """The polled widget. Its content depends only on the order's state, so the state is
    read fresh (unless the database says the order has not changed since the last read,
    see faka/orders/status_signal.py) and the rendering is reused until the state
    changes; a final order's widget never changes, so polls still in flight are answered
    from memory."""
    cache = current_app.extensions["faka_pagecache"]
    ttl = current_app.config["STATUS_CACHE_SECONDS"]
    language = current_language()
    final_key = ("status-final", token, language)
    body = cache.get(final_key) if ttl > 0 else None
    if body is not None:
        return _no_store(make_response(body, HTMX_STOP_POLLING))
    order = status_signal.current(token, orders.order_status)
    if order is None:
        abort(404)
    waiting = (order.status, order.is_held, order.manual_fallback_at is not None)
    key = final_key if order.is_final else ("status", token, *waiting, language)
    body = cache.get(key) if ttl > 0 else None
    if body is None:
        body = render_template(
            "orders/_poll.html", order=order, items=orders.status_items(order), **_final_panels(order)
        )
        if ttl > 0:
            cache.set(key, body, ttl)
    return _no_store(make_response(body, HTMX_STOP_POLLING if order.is_final else 200))


def _final_panels(status) -> dict:
    """The panels the answer that ends the polling brings along out of band (what the page
    would show if reloaded: e.g. the review form once delivered). Rendered once per final
    order and language, and cached with the widget: nothing in them depends on the
    visitor (the poll has no session; the review form sends the page's CSRF header)."""
    if not status.is_final or status.status in Order.UNPAID_CLOSED:
        return {}
    order = checkout.order_by_token(status.token)
    return _panels(order) if order is not None else {}


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _private(response):
    # The page shows a buyer's keys, or links to them: for this browser only, kept nowhere.
    response.headers["Cache-Control"] = "private, no-store"
    return response


def _lookup_limit():
    return current_app.config["RATELIMIT_LOOKUP"]


def _this_browsers_orders() -> list:
    # A browser without the cookie placed no order here: do not look (device_hash() would
    # make up a new id for it).
    if device.COOKIE not in request.cookies:
        return []
    return orders.placed_in_browser(device.device_hash())


@bp.route("/lookup", methods=["GET", "POST"])
@limiter.limit(_lookup_limit, methods=["POST"])
def lookup():
    """Find an order by number or email and its secret; the orders placed in this browser
    are listed without one."""
    form = LookupForm()
    found = None
    error = None
    captcha_needed = False
    if form.validate_on_submit():
        try:
            found = orders.lookup(
                form.query.data,
                form.query_password.data,
                request.remote_addr,
                device.device_hash(),
                captcha_solved=captcha.solved(request.form, request.remote_addr, device.device_hash()),
            )
        except engine.CaptchaRequired as exc:
            error, captcha_needed = exc, True
        except DomainError as exc:
            error = exc
    status = 400 if request.method == "POST" and found is None else 200
    if isinstance(error, engine.Blocked):
        status = 403
    page = render_template(
        "orders/lookup.html",
        form=form,
        found=found,
        error=error,
        captcha_needed=captcha_needed,
        browser_orders=_this_browsers_orders(),
        browser_orders_days=orders.BROWSER_ORDERS_DAYS,
    )
    return _private(make_response(page, status))


class ReviewForm(FlaskForm):
    rating = IntegerField(_l("Rating"))
    text = TextAreaField(
        _l("Your review (optional)"), description=_l("What worked, what did not. Plain text, up to 1000 characters.")
    )


def _review_limit():
    return current_app.config["RATELIMIT_COMPLAINT"]


@bp.route("/order/<token>/review", methods=["GET", "POST"])
@limiter.limit(_review_limit, methods=["POST"])
@token_misses
def review(token: str):
    """Write the order's review, or change it within a day of writing it."""
    order = _order_or_404(token)
    panel = reviews.order_panel(order)
    form = ReviewForm()
    error = None
    if panel is None:
        error = reviews.NotReviewable.message
    elif not panel.can_edit:
        error = reviews.ReviewLocked.message
    elif form.validate_on_submit():
        try:
            reviews.submit_review(
                token, form.rating.data, form.text.data, ip=request.remote_addr, device_hash=device.device_hash()
            )
        except NotFound:
            abort(404)
        except engine.Blocked as exc:
            return render_template(
                "orders/review.html", order=order, review_panel=panel, form=form, error=exc.message
            ), 403
        except DomainError as exc:
            error = exc.message
        else:
            return redirect(url_for("orders.show", token=token, _anchor="review"), 303)
    elif form.is_submitted():
        error = reviews.InvalidRating.message
    elif panel.review:
        form.rating.data, form.text.data = panel.review.rating, panel.review.body
    status = 400 if error and (request.method == "POST" or panel is None) else 200
    return render_template("orders/review.html", order=order, review_panel=panel, form=form, error=error), status
