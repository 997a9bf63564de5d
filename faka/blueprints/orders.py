"""The buyer's order page, its live status, and finding orders again."""
from flask import Blueprint, abort, current_app, make_response, render_template, request

from faka.blueprints.forms import LookupForm
from faka.extensions import limiter
from faka.i18n import current_language
from faka.services import checkout, orders
from faka.services.delivery import delivered_items
from faka.services.errors import LookupFailed

bp = Blueprint("orders", __name__)

HTMX_STOP_POLLING = 286


def _order_or_404(token: str):
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    return order


@bp.get("/order/<token>")
def show(token: str):
    order = _order_or_404(token)
    return render_template("orders/show.html", order=order, items=delivered_items(order))


@bp.get("/order/<token>/status")
def status(token: str):
    # A final order's widget no longer changes, so its last rendering is kept briefly for
    # the polls still in flight; a pending one is read fresh every time.
    cache = current_app.extensions["faka_pagecache"]
    ttl = current_app.config["FINAL_STATUS_CACHE_SECONDS"]
    key = ("status", token, current_language())
    body = cache.get(key) if ttl > 0 else None
    if body is None:
        order = orders.order_status(token)
        if order is None:
            abort(404)
        body = render_template("orders/_status.html", order=order, items=delivered_items(order))
        if not order.is_final:
            return _no_store(make_response(body))
        if ttl > 0:
            cache.set(key, body, ttl)
    return _no_store(make_response(body, HTMX_STOP_POLLING))


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
    if form.validate_on_submit():
        query = form.query.data.strip()
        try:
            if "@" in query:
                found = orders.find_by_email(query, form.query_password.data)
            else:
                found = [orders.find_by_number(query, form.query_password.data)]
        except LookupFailed as exc:
            error = exc
    status = 400 if request.method == "POST" and found is None else 200
    return render_template("orders/lookup.html", form=form, found=found, error=error), status
