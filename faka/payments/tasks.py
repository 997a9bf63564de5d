"""The payments' background tasks, enqueued by name ("payments.tasks.refund_payment")."""

from faka.payments import notify, refunds
from faka.payments.gateways.base import CannotQuery


def refund_payment(refund_id: int) -> bool:
    return refunds.execute(refund_id)


def check_payment(order_id: int) -> bool:
    """Ask the order's gateway whether it was paid (a payment in flight whose
    notification may have been lost). True when the provider confirmed a payment."""
    try:
        return notify.check_payment(order_id) is not None
    except CannotQuery:
        return False
