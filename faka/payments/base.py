"""The interface every payment gateway implements.

A gateway turns an order into something the buyer can pay (a redirect URL, a QR code
text or a form to post), verifies the notifications its servers send us, tells us what
to answer them, and refunds where it can. It never touches the database: the payments
service does that with what `verify_notify` returns.
"""
from dataclasses import dataclass, field
from typing import Mapping

from faka.services.errors import InvalidNotify


@dataclass(frozen=True)
class PaymentStart:
    """How to send the buyer to pay: follow `redirect_url`, or show `qr_text` as a QR code,
    or post `form_fields` to `form_action`."""

    redirect_url: str | None = None
    qr_text: str | None = None
    form_action: str | None = None
    form_fields: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Notice:
    """A verified notification: the gateway says `trade_no` paid `amount` for `order_number`."""

    order_number: str
    trade_no: str
    amount: int  # minor units
    currency: str
    paid: bool  # False for "still waiting" style notifications, which change nothing
    return_url: str | None = None


@dataclass(frozen=True)
class OrderRef:
    """What a gateway needs to know about an order to charge it."""

    number: str
    token: str
    total: int
    currency: str
    subject: str
    notify_url: str
    return_url: str


class Gateway:
    name: str = ""
    # Settings the operator (or `flask gateway-config`) may set; secrets are encrypted at rest.
    settings_fields: tuple[str, ...] = ()
    success_body = "success"
    failure_body = "fail"

    def __init__(self, settings: Mapping[str, str]):
        self.settings = dict(settings)

    def create_payment(self, order: OrderRef) -> PaymentStart:
        raise NotImplementedError

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        """Return the verified notice, or raise InvalidNotify."""
        raise NotImplementedError

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        """Refund `amount` of the payment `trade_no` back to the buyer; `refund_no` is our
        id for this refund, so a repeated call is not a second refund. Returns the
        gateway's reference for the refund, or raises CannotRefund when this gateway has
        no refund API (the operator then pays the buyer back by hand); any other error
        is temporary and the call is retried."""
        raise CannotRefund(f"{self.name} cannot refund automatically")


class CannotRefund(Exception):
    """The gateway has no way to refund automatically."""


__all__ = ["CannotRefund", "Gateway", "InvalidNotify", "Notice", "OrderRef", "PaymentStart"]
