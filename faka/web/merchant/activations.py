"""The seats (activations) of an order's keys, on the order's page: the merchant frees one
for a buyer who can no longer reach the installation that holds it (docs/licenses.md).
The CSRF token is checked for every POST by faka/web/security.py."""

from flask import g, redirect, url_for
from flask_login import current_user

from faka.inventory import licenses
from faka.orders import merchant_orders
from faka.web.merchant import bp, scoped


@bp.post("/orders/<number>/activations/<int:activation_id>/deactivate")
@scoped
def order_activation_end(number: str, activation_id: int):
    order = merchant_orders.get_order(g.merchant.id, number)
    licenses.end_seat(g.merchant.id, order.id, activation_id, current_user.id)
    return redirect(url_for("merchant.order_detail", number=number, _anchor="activations"), 303)
