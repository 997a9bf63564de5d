"""The interface every payment gateway implements.

A gateway turns an order into something the buyer can pay (a provider page to go to, a
QR code text, WeChat's in-app payment sheet, or a form on this site), chosen for where the
buyer is (`method_for`, see faka/payments/gateways/clients.py), verifies the notifications its
servers send us, tells us what to answer them, asks the provider about a payment where the
provider has a query API, and refunds where it can. It never touches the database: the payments service does that
with what `verify_notify` and `query` return. Calls to the provider go through
`self.http` (a requests.Session), so tests can point a gateway at a local fake provider
by its API base-URL setting.
"""

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime

from faka.core.errors import InvalidNotify
from faka.payments.gateways.clients import DESKTOP


@dataclass(frozen=True)
class PaymentStart:
    """How the buyer pays: go to `redirect_url` (the provider's page), or scan `qr_text`,
    or open WeChat's payment sheet with `jsapi` (the `getBrandWCPayRequest` parameters),
    or post `form_fields` to `form_action`.

    The buyer leaves the site only by a GET navigation from faka's own pay page (a link,
    which faka.js follows at once): the page's CSP (`form-action 'self'`) refuses a form
    that posts, or a redirect chain from a form that ends, on another site. So
    `redirect_url` carries everything in its query string, and `form_action` is a path
    on this site (the sandbox)."""

    redirect_url: str | None = None
    qr_text: str | None = None
    form_action: str | None = None
    form_fields: dict[str, str] = field(default_factory=dict)
    reference: str | None = None  # the provider's id for this payment, kept on the order
    method: str = ""  # what Gateway.method_for chose, e.g. "wap" or "native"
    jsapi: dict[str, str] | None = None


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
    notify_url: str  # absolute
    return_url: str  # the order page's path on this site
    base_url: str = ""  # the site's public address: base_url + return_url is absolute
    expires_at: datetime | None = None  # the order's payment deadline (UTC)
    client_ip: str | None = None
    client: str = DESKTOP  # where the buyer pays from: one of faka.payments.gateways.clients.KINDS
    payer: str | None = None  # the buyer's id at the provider, where it asked first (WeChat's openid)


@dataclass(frozen=True)
class NotifyAnswer:
    """What we answer the provider's notification, exactly as it documents."""

    body: str = ""
    status: int = 200
    content_type: str = "text/plain"


HTTP_TIMEOUT = 10  # seconds for any call to a provider
_YUAN = re.compile(r"[0-9]+(\.[0-9]{1,2})?")


def yuan_text(amount: int) -> str:
    """Fen as the yuan string providers speak: 1234 -> "12.34"."""
    return f"{amount // 100}.{amount % 100:02d}"


def fen_from_yuan(text) -> int:
    """A provider's yuan string as fen, exactly: "12", "12.3" and "12.34" only; anything
    else (more decimals, signs, exponents, full-width digits, not a string) raises
    InvalidNotify. No float is involved."""
    if not isinstance(text, str) or not _YUAN.fullmatch(text):
        raise InvalidNotify("amount is not a yuan amount with at most two decimals")
    whole, _, cents = text.partition(".")
    return int(whole) * 100 + int(cents.ljust(2, "0"))


class Gateway:
    name: str = ""
    # Settings the operator (or `flask gateway-config`) may set; all are encrypted at rest,
    # and `secret_fields` are never shown again once saved (the console masks them).
    settings_fields: tuple[str, ...] = ()
    secret_fields: tuple[str, ...] = ()
    success_body = "success"
    failure_body = "fail"

    def __init__(self, settings: Mapping[str, str], http=None):
        self.settings = dict(settings)
        self._http = http

    @property
    def http(self):
        """The requests.Session for calls to the provider (created on first use)."""
        if self._http is None:
            import requests  # on first use: a shop whose gateways never call out never loads it

            self._http = requests.Session()
        return self._http

    def method_for(self, client: str) -> str | None:
        """How this gateway takes a payment from a buyer in `client` (one of
        faka.payments.gateways.clients.KINDS): a short name (PaymentStart.method), or None where it
        cannot work at all, for which the pay page shows the "open in your browser"
        guidance. create_payment uses the method this returns for `order.client`."""
        return "redirect"

    def payer_sign_in_url(self, order: OrderRef, callback_url: str, state: str) -> str | None:
        """The provider's page the buyer must visit before paying, to tell us who they are
        (WeChat JSAPI needs the buyer's openid, which the official account's OAuth gives),
        or None when the method needs no such step or `order.payer` is already known. The
        provider sends the buyer back to `callback_url` with `state` and what
        `payer_from_callback` reads."""
        return None

    def payer_from_callback(self, args: Mapping[str, str]) -> str:
        """The buyer's id at the provider, from the query string it sent the buyer back
        with (after checking it with the provider). Raises GatewayError when it fails."""
        raise GatewayError(f"{self.name} asks no payer to sign in")

    def create_payment(self, order: OrderRef) -> PaymentStart:
        raise NotImplementedError

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        """Return the verified notice, or raise InvalidNotify (with the reason, for the
        notify log; never a secret)."""
        raise NotImplementedError

    def answer(self, accepted: bool) -> NotifyAnswer:
        """The body the provider expects for an accepted (or refused) notification."""
        if accepted:
            return NotifyAnswer(self.success_body)
        return NotifyAnswer(self.failure_body, status=400)

    def query(self, order: OrderRef) -> Notice | None:
        """Ask the provider whether the order was paid: the payment as a Notice (verified
        like a notification: our order, amount, merchant/app id), or None while unpaid.
        Raises CannotQuery when the provider has no query API; other errors propagate."""
        raise CannotQuery(f"{self.name} has no query API")

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        """Refund `amount` of the payment `trade_no` back to the buyer; `refund_no` is our
        id for this refund, so a repeated call is not a second refund. Returns the
        gateway's reference for the refund, or raises CannotRefund when this gateway has
        no refund API (the operator then pays the buyer back by hand); any other error
        is temporary and the call is retried."""
        raise CannotRefund(f"{self.name} cannot refund automatically")


class CannotRefund(Exception):
    """The gateway has no way to refund automatically."""


class CannotQuery(Exception):
    """The gateway has no API to ask about a payment."""


class IgnoredNotify(Exception):
    """An authentic notification about nothing we track (another event type, a payment
    still waiting): answered with the success body, so the provider stops resending it,
    and nothing changes. Its message says what it was, for the notify log."""


class GatewayError(Exception):
    """The provider refused a call or could not be reached (temporary as far as we know:
    the buyer may try again, a job retries). Its message is for the log, never a secret."""


__all__ = [
    "CannotQuery",
    "CannotRefund",
    "Gateway",
    "GatewayError",
    "IgnoredNotify",
    "HTTP_TIMEOUT",
    "InvalidNotify",
    "Notice",
    "NotifyAnswer",
    "OrderRef",
    "PaymentStart",
    "fen_from_yuan",
    "yuan_text",
]
