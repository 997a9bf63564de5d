"""The orders' background tasks, enqueued by name ("orders.tasks.deliver_order")."""

from faka.messaging import notifications
from faka.orders import delivery


def deliver_order(order_id: int) -> bool:
    return delivery.deliver_order(order_id)


def remote_delivery_fell_back(order_id: int) -> None:
    """A "from my server" order went to the merchant's manual queue: tell them."""
    notifications.remote_delivery_failed(order_id)
