"""The buyer's order page, its live status, finding orders again, and reviewing one."""
from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import IntegerField, TextAreaField

from faka import device, order_changes
from faka.blueprints.forms import LookupForm
from faka.blueprints.limits import token_misses
from faka.extensions import limiter
from faka.i18n import current_language
from faka.services import captcha, checkout, complaints, orders, reviews, risk
from faka.services.delivery import delivered_items
from faka.services.errors import DomainError, NotFound

bp = Blueprint("orders", __name__)

HTMX_STOP_POLLING = 286


def _order_or_404(token: str):
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    return order


@bp.get("/order/<token>")
@token_misses
def show(token: str):
    order = _order_or_404(token)
    return render_template("orders/show.html", order=order, items=delivered_items(order),
                           review_panel=reviews.order_panel(order), complaint_panel=complaints.order_panel(order))


@bp.get("/order/<token>/status")
def status(token: str):
    """The polled widget. Its content depends only on the order's state, so the state is
    read fresh (unless the database says the order has not changed since the last read,
    see faka/order_changes.py) and the rendering is reused until the state
    changes; a final order's widget never changes, so polls still in flight are answered
    from memory."""
    cache = current_app.extensions["faka_pagecache"]
    ttl = current_app.config["STATUS_CACHE_SECONDS"]
    language = current_language()
    final_key = ("status-final", token, language)
    body = cache.get(final_key) if ttl > 0 else None
    if body is not None:
        return _no_store(make_response(body, HTMX_STOP_POLLING))
    order = order_changes.current(token, orders.order_status)
    if order is None:
        abort(404)
    key = final_key if order.is_final else ("status", token, order.status, order.is_held, language)
    body = cache.get(key) if ttl > 0 else None
    if body is None:
        body = render_template("orders/_status.html", order=order, items=orders.status_items(order))
        if ttl > 0:
            cache.set(key, body, ttl)
    return _no_store(make_response(body, HTMX_STOP_POLLING if order.is_final else 200))


def _no_store(response):
    response.headers["Cache-Control"] = "no-store"
    return response


def _lookup_limit():
    return current_app.config["RATELIMIT_LOOKUP"]


@bp.route("/lookup", methods=["GET", "POST"])
@limiter.limit(_lookup_limit, methods=["POST"])
def lookup():
    form = LookupForm()
    found = None
    error = None
    captcha_needed = False
    if form.validate_on_submit():
        try:
            found = orders.lookup(
                form.query.data, form.query_password.data, request.remote_addr, device.device_hash(),
                captcha_solved=captcha.solved(request.form, request.remote_addr, device.device_hash()))
        except risk.CaptchaRequired as exc:
            error, captcha_needed = exc, True
        except DomainError as exc:
            error = exc
    status = 400 if request.method == "POST" and found is None else 200
    if isinstance(error, risk.Blocked):
        status = 403
    return render_template("orders/lookup.html", form=form, found=found, error=error,
                           captcha_needed=captcha_needed), status


class ReviewForm(FlaskForm):
    rating = IntegerField(_l("Rating"))
    text = TextAreaField(_l("Your review (optional)"),
                         description=_l("What worked, what did not. Plain text, up to 1000 characters."))


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
            reviews.submit_review(token, form.rating.data, form.text.data, ip=request.remote_addr,
                                  device_hash=device.device_hash())
        except NotFound:
            abort(404)
        except risk.Blocked as exc:
            return render_template("orders/review.html", order=order, review_panel=panel, form=form,
                                   error=exc.message), 403
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
