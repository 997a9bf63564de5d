"""The orders' background tasks, enqueued by name ("orders.tasks.deliver_order")."""

from faka.orders import delivery


def deliver_order(order_id: int) -> bool:
    return delivery.deliver_order(order_id)
