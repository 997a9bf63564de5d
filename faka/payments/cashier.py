"""The pay page: how this buyer, where they are, pays this order.

The buyer leaves the site for a provider only from faka's own pay page, by following a
link (faka.js follows it at once on a phone; a desktop buyer clicks it or scans the page
onto a phone). Nothing answers a form with a redirect to another site: htmx cannot
follow one, and the CSP's `form-action 'self'` makes browsers refuse a form whose
redirects end elsewhere. So `prepare` never redirects: it says what the page shows.
"""

import logging
from dataclasses import dataclass, field, replace

from flask import current_app

from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import GATEWAY_NAMES, enabled_gateways, get_gateway
from faka.payments.gateways.base import GatewayError, PaymentStart
from faka.payments.gateways.clients import IN_APP, PHONES

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Cashier:
    """What the pay page shows. Exactly one of: `guidance` (this gateway cannot work where
    the buyer is: in an in-app browser, or on this kind of device), `sign_in_url` (the provider must learn who pays first), or
    `payment` (go to `payment.redirect_url`, scan `payment.qr_text`, open WeChat's sheet
    with `payment.jsapi`, or post the sandbox form)."""

    order: Order
    gateway: str
    label: str  # the way of paying's short name ("Alipay")
    client: str
    payment: PaymentStart | None = None
    sign_in_url: str | None = None
    guidance: bool = False
    alternatives: list[tuple[str, str]] = field(default_factory=list)  # other ways that work here
    can_check: bool = False

    @property
    def leave_url(self) -> str | None:
        """The provider page the buyer goes to next, if any."""
        return self.sign_in_url or (self.payment.redirect_url if self.payment else None)

    @property
    def leaves_at_once(self) -> bool:
        """Follow the link without a tap: on a phone the provider's page is the only way
        on. A desktop buyer first sees the page, which also offers to continue on a phone."""
        return self.leave_url is not None and self.client in PHONES

    @property
    def on_desktop(self) -> bool:
        return self.client not in PHONES

    @property
    def in_app(self) -> bool:
        return self.client in IN_APP


def prepare(order: Order, client: str, payer: str | None, sign_in_callback: str, state: str) -> Cashier:
    """Start (or restart) the order's payment for a buyer in `client`. Provider errors
    propagate (GatewayError, requests' errors): the page then offers to try again."""
    gateway = get_gateway(order.gateway)
    cashier = Cashier(
        order=order,
        gateway=order.gateway,
        label=str(GATEWAY_NAMES.get(order.gateway, order.gateway)),
        client=client,
        alternatives=ways_to_pay(client, besides=order.gateway),
    )
    if gateway.method_for(client) is None:
        return replace(cashier, guidance=True)
    sign_in_url = gateway.payer_sign_in_url(
        notify.order_ref(order, client=client, payer=payer), sign_in_callback, state
    )
    if sign_in_url:
        return replace(cashier, sign_in_url=sign_in_url)
    payment = notify.start_payment(order, client=client, payer=payer)
    return replace(cashier, payment=payment, can_check=notify.can_check(order))


def ways_to_pay(client: str, besides: str | None = None) -> list[tuple[str, str]]:
    """The enabled gateways (name, label) that can take a payment from `client`. A gateway
    whose settings name a way of paying it does not know is left out (and logged), so one
    mistake in the console does not break every pay page."""
    ways = []
    for name, label in enabled_gateways():
        if name == besides:
            continue
        try:
            works = get_gateway(name).method_for(client) is not None
        except GatewayError as exc:
            log.error("gateway %s is misconfigured: %s", name, exc)
            works = False
        if works:
            ways.append((name, label))
    return ways


def absolute_url(endpoint: str, **values) -> str:
    """A page's address as the public sees it (FAKA_BASE_URL), for providers and QR codes."""
    return current_app.config["BASE_URL"].rstrip("/") + current_app.url_map.bind("").build(endpoint, values)
