"""Stripe Checkout: the buyer pays on a Checkout Session page hosted by Stripe.

Uses Stripe's official `stripe` package: its client takes our API base address and our
requests session, and its webhook check is Stripe's own (`Stripe-Signature`:
`t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload" with the endpoint secret>`, any of
several `v1` values may match, at most 300 seconds old).

Settings, from the Stripe Dashboard (Developers):

- `secret_key` (secret): API keys → Secret key (`sk_live_...`), or a restricted key
  that may write Checkout Sessions and Refunds and read PaymentIntents.
- `webhook_secret` (secret): Webhooks → the endpoint below → Signing secret (`whsec_...`).
- `api_base`: `https://api.stripe.com`.

Webhook endpoint: add `<FAKA_BASE_URL>/pay/stripe/notify` with the events
`checkout.session.completed` and `checkout.session.async_payment_succeeded` (also
`checkout.session.async_payment_failed` and `checkout.session.expired` if you like:
they are accepted and change nothing). Select no other events: they are refused with
HTTP 400, and Stripe keeps resending refused events for three days. The order number is
the session's `client_reference_id` and `metadata[order_number]`; the payment's
PaymentIntent id is the trade number shown in faka. Answer: HTTP 200
`{"received": true}` when accepted, HTTP 400 when refused.

The buyer is redirected to the Checkout Session's page wherever they are (method
`redirect`, also inside in-app browsers: no app is known to block it).

The site currency must be one Stripe charges in hundredths (CNY, USD, EUR, HKD, ...):
faka's prices are in minor units of two decimals.
"""

import json
from collections.abc import Mapping
from datetime import timedelta
from typing import Any

import stripe

from faka.core import clock
from faka.core.text import is_text
from faka.payments.gateways.base import (
    HTTP_TIMEOUT,
    CannotRefund,
    Gateway,
    GatewayError,
    IgnoredNotify,
    InvalidNotify,
    Notice,
    NotifyAnswer,
    OrderRef,
    PaymentStart,
)

API_BASE = "https://api.stripe.com"
MAX_BODY = 64 * 1024
TOLERANCE = 300  # seconds a signed webhook stays valid
PAID_EVENTS = ("checkout.session.completed", "checkout.session.async_payment_succeeded")
# Stripe counts these currencies in whole units or thousandths, not hundredths.
NOT_HUNDREDTHS = frozenset(
    "BIF CLP DJF GNF JPY KMF KRW MGA PYG RWF UGX VND VUV XAF XOF XPF BHD JOD KWD OMR TND".split()
)
# Stripe lets a Checkout Session live between 30 minutes and 24 hours.
SESSION_MIN_LIFE = timedelta(minutes=31)
SESSION_MAX_LIFE = timedelta(hours=23)


class StripeGatewayError(GatewayError):
    """Stripe answered something that cannot be trusted, or the gateway is not set up."""


class StripeGateway(Gateway):
    name = "stripe"
    settings_fields = ("secret_key", "webhook_secret", "api_base")
    secret_fields = ("secret_key", "webhook_secret")

    def answer(self, accepted: bool) -> NotifyAnswer:
        if accepted:
            return NotifyAnswer(json.dumps({"received": True}), content_type="application/json")
        return NotifyAnswer(json.dumps({"received": False}), status=400, content_type="application/json")

    def method_for(self, client: str) -> str | None:
        return "redirect"

    def create_payment(self, order: OrderRef) -> PaymentStart:
        if order.currency.upper() in NOT_HUNDREDTHS:
            raise StripeGatewayError(f"Stripe does not count {order.currency} in hundredths")
        now = clock.now()
        expires_at = min(max(order.expires_at or now, now + SESSION_MIN_LIFE), now + SESSION_MAX_LIFE)
        back = order.base_url + order.return_url
        try:
            session = self._create_session(order, expires_at, back)
        except stripe.StripeError as exc:
            # A wrong key, a refused parameter, Stripe unreachable: the buyer is offered
            # another try or another way to pay (GatewayError), never an error page.
            raise StripeGatewayError(
                f"Stripe refused the Checkout Session: {type(exc).__name__} "
                f"{exc.code or exc.http_status or ''}".rstrip()
            ) from None
        url = session.get("url")
        if not isinstance(url, str) or not url.startswith(("https://", "http://")):
            raise StripeGatewayError("Checkout Session has no url")
        return PaymentStart(redirect_url=url, method="redirect")

    def _create_session(self, order: OrderRef, expires_at, back: str) -> dict:
        return (
            self._client()
            .v1.checkout.sessions.create(
                params={
                    "mode": "payment",
                    "client_reference_id": order.number,
                    "metadata": {"order_number": order.number},
                    "payment_intent_data": {"metadata": {"order_number": order.number}},
                    "line_items": [
                        {
                            "quantity": 1,
                            "price_data": {
                                "currency": order.currency.lower(),
                                "unit_amount": order.total,
                                "product_data": {"name": order.subject[:250] or order.number},
                            },
                        }
                    ],
                    # Stripe must charge exactly the order's amount in the order's currency.
                    "adaptive_pricing": {"enabled": False},
                    "expires_at": int(expires_at.timestamp()),
                    "success_url": back,
                    "cancel_url": back,
                }
            )
            .to_dict()
        )

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        if len(body) > MAX_BODY:
            raise InvalidNotify("body too large")
        secret = self.settings.get("webhook_secret", "").strip()
        if not secret:
            raise InvalidNotify("webhook_secret is not set")
        header = headers.get("Stripe-Signature")
        if header is not None and not header.isascii():
            # stripe compares signatures with hmac.compare_digest on str, a TypeError for
            # non-ASCII text: such a signature is simply not Stripe's.
            raise InvalidNotify("bad or missing Stripe-Signature")
        try:
            payload = body.decode("utf-8")
            stripe.WebhookSignature.verify_header(payload, header, secret, TOLERANCE)
        except UnicodeDecodeError as exc:
            raise InvalidNotify("body is not UTF-8") from exc
        except stripe.SignatureVerificationError as exc:
            reason = "stale timestamp" if "tolerance" in str(exc) else "bad or missing Stripe-Signature"
            raise InvalidNotify(reason) from exc
        event = _json_object(payload)
        event_type = event.get("type")
        if not isinstance(event_type, str):
            raise InvalidNotify("event without a type")
        if not event_type.startswith("checkout.session."):
            raise IgnoredNotify(f"event type {event_type[:60]} is not handled")
        data = event.get("data")
        session = data.get("object") if isinstance(data, dict) else None
        if not isinstance(session, dict) or session.get("object") != "checkout.session":
            raise InvalidNotify("event carries no Checkout Session")
        return _session_notice(session, paid_event=event_type in PAID_EVENTS)

    def query(self, order: OrderRef) -> Notice | None:
        # Stripe finds PaymentIntents by metadata with its search API; what it finds may
        # lag a payment by about a minute, which is fine for catching a lost webhook.
        number = order.number.replace("\\", "\\\\").replace("'", "\\'")
        found = (
            self._client()
            .v1.payment_intents.search(
                params={"query": f"metadata['order_number']:'{number}' AND status:'succeeded'", "limit": 10}
            )
            .to_dict()
        )
        intents = found.get("data")
        if not isinstance(intents, list):
            raise StripeGatewayError("search answer has no data")
        for intent in intents:
            if isinstance(intent, dict) and intent.get("status") == "succeeded":
                notice = _intent_notice(intent)
                if notice.order_number != order.number:
                    raise InvalidNotify("search found another order's payment")
                if notice.amount != order.total or notice.currency != order.currency:
                    raise InvalidNotify(
                        f"paid {notice.amount} {notice.currency}, order is {order.total} {order.currency}"
                    )
                return notice
        return None

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        try:
            refund = (
                self._client()
                .v1.refunds.create(
                    params={
                        "payment_intent": trade_no,
                        "amount": amount,
                        "metadata": {"order_number": order_number, "refund_no": refund_no},
                    },
                    # The same refund number is the same refund, however often it is sent.
                    options={"idempotency_key": f"faka-refund-{order_number}-{refund_no}"},
                )
                .to_dict()
            )
        except stripe.InvalidRequestError as exc:
            raise CannotRefund(f"Stripe refused the refund: {exc.code or exc.http_status}") from exc
        refund_id, status = refund.get("id"), refund.get("status")
        if not isinstance(refund_id, str) or not refund_id:
            raise StripeGatewayError("refund answer has no id")
        if status in ("failed", "canceled"):
            raise CannotRefund(f"Stripe refund {refund_id} {status}")
        return refund_id

    def _client(self) -> stripe.StripeClient:
        key = self.settings.get("secret_key", "").strip()
        if not key:
            raise StripeGatewayError("setting secret_key is empty")
        return stripe.StripeClient(
            key,
            base_addresses={"api": self.settings.get("api_base", "").strip().rstrip("/") or API_BASE},
            http_client=stripe.RequestsClient(timeout=HTTP_TIMEOUT, session=self.http),
            # Refunds are retried by faka's own job, and a buyer waiting to pay should not wait for retries.
            max_network_retries=0,
        )


def _session_notice(session: dict[str, Any], paid_event: bool) -> Notice:
    order_number = session.get("client_reference_id")
    metadata = session.get("metadata")
    if not is_text(order_number) or not isinstance(metadata, dict) or metadata.get("order_number") != order_number:
        raise InvalidNotify("client_reference_id and metadata order_number differ")
    if session.get("mode") != "payment":
        raise InvalidNotify("not a payment session")
    amount, currency, status = session.get("amount_total"), session.get("currency"), session.get("payment_status")
    if type(amount) is not int or amount < 0 or not is_text(currency) or not isinstance(status, str):
        raise InvalidNotify("bad amount_total, currency or payment_status")
    paid = paid_event and status == "paid"
    trade_no = session.get("payment_intent") if paid else session.get("id")
    if not is_text(trade_no):
        raise InvalidNotify("missing payment_intent" if paid else "missing session id")
    return Notice(order_number=order_number, trade_no=trade_no, amount=amount, currency=currency.upper(), paid=paid)


def _intent_notice(intent: dict[str, Any]) -> Notice:
    metadata = intent.get("metadata")
    order_number = metadata.get("order_number") if isinstance(metadata, dict) else None
    trade_no, amount, currency = intent.get("id"), intent.get("amount_received"), intent.get("currency")
    if not is_text(order_number) or not is_text(trade_no):
        raise InvalidNotify("PaymentIntent without id or order number")
    if type(amount) is not int or amount < 0 or not is_text(currency):
        raise InvalidNotify("bad amount_received or currency")
    return Notice(order_number=order_number, trade_no=trade_no, amount=amount, currency=currency.upper(), paid=True)


def _json_object(payload: str) -> dict[str, Any]:
    try:
        value = json.loads(payload)
    except ValueError as exc:
        raise InvalidNotify("body is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidNotify("body is not a JSON object")
    return value
