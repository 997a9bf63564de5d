"""The buyer's order page, its live status, and finding orders again."""
from flask import Blueprint, abort, current_app, make_response, render_template, request

from faka.blueprints.forms import LookupForm
from faka.extensions import limiter
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
    order = _order_or_404(token)
    response = make_response(render_template("orders/_status.html", order=order, items=delivered_items(order)))
    if order.is_final:
        response.status_code = HTMX_STOP_POLLING
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
