"""Orders: list them with the back office's filters, read one with its timeline, deliver
a manual order (what the merchant types, as on the order's page) and send the delivery
email again. The same services as the back office (faka/orders/merchant_orders.py,
faka/orders/delivery.py).

What an order's answer shows is what the back office shows: the buyer's email and
checkout answers masked in lists and whole on one order; the goods never (the back
office's order page does not show them either), only how many keys were sold to it."""

from flask import g
from flask_babel import gettext as _

from faka.catalog.models import DELIVERY_MANUAL
from faka.core import tasks
from faka.core.text import mask_email
from faka.orders import delivery, merchant_orders
from faka.orders.models import Order
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "orders",
    __name__,
    description="Your orders, as on the back office's order pages. An order's id is its number. Lists show the "
    "buyer's email and answers masked, one order shows them whole; delivered keys are never shown, only counted.",
)


def order_answer(order: Order, answers, keys_delivered: int, whole: bool) -> dict:
    """An order as the API shows it: `whole` for one order's page, else as lists show it."""
    product = order.product
    return {
        "number": order.number,
        "status": order.status,
        "product": {"id": product.slug, "title": product.title, "delivery_type": product.delivery_type},
        "variant": {"key": order.variant.key, "name": order.variant_name},
        "quantity": order.quantity,
        "unit_price": order.unit_price,
        "discount": order.discount,
        "total": order.total,
        "refunded_amount": order.refunded_amount,
        "currency": order.currency,
        "coupon_id": order.coupon_id,
        "email": (order.email if whole else mask_email(order.email)) or None,
        "answers": [
            {"field": a.key, "label": a.label, "value": (a if whole else a.masked()).value} for a in answers or ()
        ],
        "risk_flags": (order.risk_flags or "").split(),
        "held": order.is_held,
        "awaiting_delivery": _awaits_merchant(order),
        "keys_delivered": keys_delivered,
        "content_delivered": order.delivery_ciphertext is not None,
        "created_at": order.created_at,
        "expires_at": order.expires_at,
        "paid_at": order.paid_at,
        "delivered_at": order.delivered_at,
        "refunded_at": order.refunded_at,
        "cancelled_at": order.cancelled_at,
    }


def _awaits_merchant(order: Order) -> bool:
    by_hand = order.product.delivery_type == DELIVERY_MANUAL or order.manual_fallback_at is not None
    return order.status == Order.PAID and by_hand and not order.is_held


def _one_order(order: Order) -> dict:
    answer = order_answer(
        order,
        merchant_orders.buyer_answers(order),
        merchant_orders.delivered_key_counts([order.id]).get(order.id, 0),
        whole=True,
    )
    answer["timeline"] = [{"what": e.what, "at": e.when} for e in merchant_orders.timeline(order)]
    return answer


@bp.get("/orders")
@requires("orders:read")
@bp.arguments(s.OrderFilterArgsSchema, location="query")
@bp.response(200, s.OrderPageSchema)
def list_orders(args):
    """List your orders

    Oldest first. Filters combine: a status, a product, a time range (`created_from` inclusive, `created_to`
    exclusive), the buyer's whole email address, an order number.
    """
    query = merchant_orders.api_query(
        g.merchant.id,
        status=args["status"],
        product_slug=args["product"],
        created_from=args["created_from"],
        created_to=args["created_to"],
        email=args["email"],
        number=args["number"],
    )
    page = page_of_query(query, Order.id, args["cursor"], args["limit"])
    orders = page["items"]
    answers = merchant_orders.masked_answers(orders)
    keys = merchant_orders.delivered_key_counts([o.id for o in orders])
    page["items"] = [order_answer(o, answers.get(o.id), keys.get(o.id, 0), whole=False) for o in orders]
    return page


@bp.get("/orders/<number>")
@requires("orders:read")
@bp.response(200, s.OrderDetailSchema)
def get_order(number):
    """Read an order

    With the buyer's email and checkout answers whole, and its timeline.
    """
    return _one_order(merchant_orders.get_order(g.merchant.id, number))


@bp.post("/orders/<number>/deliver")
@requires("orders:write")
@idempotent
@bp.arguments(s.ManualDeliverySchema)
@bp.response(200, s.OrderDetailSchema)
def deliver_order(data, number):
    """Deliver an order by hand

    For a paid order of a manual-delivery product, or one your delivery server failed to deliver
    (`awaiting_delivery`): what you send becomes the delivery, shown on the buyer's order page and emailed to
    them, and the order is delivered and credited as any other. Not for an order held for the platform's review.
    """
    if not data["content"].strip():
        message = _("Enter what to deliver.")
        raise ApiError(422, "invalid", message, {"content": [message]})
    delivery.deliver_manually(g.merchant.id, number, data["content"])
    return _one_order(merchant_orders.get_order(g.merchant.id, number))


@bp.post("/orders/<number>/resend")
@requires("orders:write")
@idempotent
@bp.response(202, s.OrderDetailSchema)
def resend_email(number):
    """Send the delivery email again

    For a delivered order with an email address (say, the buyer lost the first). It is queued at once.
    """
    email_id = merchant_orders.resend_delivery_email(g.merchant.id, number)
    if email_id is None:
        raise ApiError(
            422,
            "not_resendable",
            _("Only a delivered order with an email address has a delivery email to send again."),
        )
    tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}-resend")
    return _one_order(merchant_orders.get_order(g.merchant.id, number)), 202
