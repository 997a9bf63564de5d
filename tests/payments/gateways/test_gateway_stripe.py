"""Stripe Checkout: webhooks verified to the letter, and the outbound API over real HTTP
against a fake Stripe.

Webhook signatures here are computed by the test from Stripe's documentation
(`Stripe-Signature: t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload" with the endpoint
secret>`), never by calling the gateway under test.
"""

import hashlib
import hmac
import json
import re
import secrets
import time
from datetime import timedelta

import pytest
import stripe
from flask import current_app
from sqlalchemy import select
from werkzeug import Response

from conftest import assert_nothing_paid, count, key_texts, reload
from faka.core import clock
from faka.core.errors import InvalidNotify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway, get_gateway
from faka.payments.gateways.base import CannotRefund, OrderRef
from faka.payments.gateways.stripe_checkout import StripeGateway, StripeGatewayError
from faka.payments.models import PaymentNotice
from faka.payments.notify import order_ref

SECRET_KEY = "sk_test_" + secrets.token_hex(12)
WEBHOOK_SECRET = "whsec_" + secrets.token_hex(16)
NOTIFY = "/pay/stripe/notify"


@pytest.fixture
def stripe_gateway(app, httpserver):
    configure_gateway(
        "stripe",
        {"secret_key": SECRET_KEY, "webhook_secret": WEBHOOK_SECRET, "api_base": httpserver.url_for("/")},
        enabled=True,
    )
    return get_gateway("stripe")


@pytest.fixture
def place_stripe(app, stripe_gateway):
    def place(product, quantity=1):
        with current_app.test_request_context():
            return checkout.place_order(product.slug, quantity, "buyer@example.com", "secret-1", gateway="stripe")

    return place


# -- Stripe's side, from its documentation --------------------------------------------------


def signature(payload: bytes, timestamp: int, secret: str = WEBHOOK_SECRET) -> str:
    return hmac.new(secret.encode(), f"{timestamp}.".encode() + payload, hashlib.sha256).hexdigest()


def stripe_signature(payload: bytes, *, age: int = 0, secrets_: tuple[str, ...] = (WEBHOOK_SECRET,)) -> str:
    timestamp = int(time.time()) - age
    return ",".join([f"t={timestamp}"] + [f"v1={signature(payload, timestamp, s)}" for s in secrets_])


def session(order, **changes) -> dict:
    value = {
        "id": "cs_test_" + secrets.token_hex(12),
        "object": "checkout.session",
        "amount_subtotal": order.total,
        "amount_total": order.total,
        "client_reference_id": order.number,
        "currency": order.currency.lower(),
        "livemode": False,
        "metadata": {"order_number": order.number},
        "mode": "payment",
        "payment_intent": "pi_" + secrets.token_hex(12),
        "payment_status": "paid",
        "status": "complete",
        "url": None,
    }
    value.update(changes)
    return value


def event(data_object, event_type="checkout.session.completed") -> dict:
    return {
        "id": "evt_" + secrets.token_hex(12),
        "object": "event",
        "api_version": "2026-10-28.endive",
        "created": int(time.time()),
        "data": {"object": data_object},
        "livemode": False,
        "pending_webhooks": 1,
        "type": event_type,
    }


def webhook(order, event_type="checkout.session.completed", **changes) -> bytes:
    return json.dumps(event(session(order, **changes), event_type)).encode()


def post(client, payload: bytes, header: str | None = None):
    headers = {"Stripe-Signature": stripe_signature(payload) if header is None else header}
    return client.post(NOTIFY, data=payload, headers=headers, content_type="application/json")


def assert_refused(response, order):
    assert response.status_code == 400 and response.get_json() == {"received": False}
    assert_nothing_paid(order)


# -- webhooks -------------------------------------------------------------------------------


def test_signed_webhook_pays_and_delivers(client, product, place_stripe):
    order = place_stripe(product, 2)
    response = post(client, webhook(order))
    assert response.status_code == 200 and response.get_json() == {"received": True}
    assert reload(order).status == Order.DELIVERED
    page = client.get(f"/order/{order.token}")
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page.text)
    assert sorted(shown) == sorted(key_texts(order)) and len(shown) == 2


def test_the_payment_intent_is_the_trade_number(client, product, place_stripe):
    order = place_stripe(product)
    assert post(client, webhook(order, payment_intent="pi_3Nf4c2")).status_code == 200
    notice = db.session.execute(select(PaymentNotice)).scalar_one()
    assert (notice.trade_no, notice.amount, notice.currency) == ("pi_3Nf4c2", order.total, order.currency)


def test_any_matching_v1_signature_is_accepted(client, product, place_stripe):
    # While an endpoint secret is rolled, Stripe signs with the old and the new secret.
    order = place_stripe(product)
    payload = webhook(order)
    header = stripe_signature(payload, secrets_=("whsec_old" + secrets.token_hex(8), WEBHOOK_SECRET))
    assert post(client, payload, header).status_code == 200
    assert reload(order).status == Order.DELIVERED


def test_a_delayed_payment_succeeding_pays(client, product, place_stripe):
    order = place_stripe(product)
    assert post(client, webhook(order, payment_status="unpaid")).status_code == 200
    assert_nothing_paid(order)
    assert post(client, webhook(order, "checkout.session.async_payment_succeeded")).status_code == 200
    assert reload(order).status == Order.DELIVERED


def test_replayed_webhook_delivers_once(client, product, place_stripe):
    order = place_stripe(product, 2)
    payload = webhook(order)
    header = stripe_signature(payload)
    for _ in range(3):
        response = post(client, payload, header)
        assert response.status_code == 200 and response.get_json() == {"received": True}
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2


@pytest.mark.parametrize(
    "event_type, changes",
    [
        ("checkout.session.completed", {"payment_status": "unpaid"}),
        ("checkout.session.async_payment_failed", {"payment_status": "unpaid"}),
        ("checkout.session.expired", {"payment_status": "unpaid", "status": "expired", "payment_intent": None}),
    ],
    ids=["completed-unpaid", "async-failed", "expired"],
)
def test_checkout_sessions_without_a_payment_are_answered_and_change_nothing(
    client, product, place_stripe, event_type, changes
):
    order = place_stripe(product)
    response = post(client, webhook(order, event_type, **changes))
    assert response.status_code == 200 and response.get_json() == {"received": True}
    assert_nothing_paid(order)


@pytest.mark.parametrize(
    "make",
    [
        lambda order: (webhook(order), stripe_signature(webhook(order), secrets_=("whsec_forged",))),
        lambda order: (lambda p: (p, stripe_signature(p, age=301)))(webhook(order)),
        lambda order: (webhook(order, amount_total=order.total - 1), None),
        lambda order: (webhook(order, amount_total=order.total + 100), None),
        lambda order: (webhook(order, currency="usd"), None),
        lambda order: (webhook(order, metadata={"order_number": "20260101000000000000"}), None),
        lambda order: (
            webhook(
                order, client_reference_id="20260101000000000000", metadata={"order_number": "20260101000000000000"}
            ),
            None,
        ),
        lambda order: (webhook(order, mode="subscription"), None),
    ],
    ids=[
        "forged-signature",
        "stale-timestamp",
        "tampered-amount-low",
        "tampered-amount-high",
        "wrong-currency",
        "metadata-names-another-order",
        "unknown-order",
        "not-a-payment",
    ],
)
def test_bad_webhook_changes_nothing(client, product, place_stripe, make):
    order = place_stripe(product)
    assert_refused(post(client, *make(order)), order)


def test_body_changed_after_signing_is_refused(client, product, place_stripe):
    order = place_stripe(product)
    header = stripe_signature(webhook(order))
    assert_refused(post(client, webhook(order, amount_total=1), header), order)


def test_other_event_types_are_acknowledged_and_change_nothing(client, product, place_stripe):
    # Answered 200 so that Stripe stops resending them; logged as ignored.
    from faka.payments.models import NotifyLog

    order = place_stripe(product)
    intent = {
        "id": "pi_" + secrets.token_hex(8),
        "object": "payment_intent",
        "amount": order.total,
        "currency": "cny",
        "metadata": {"order_number": order.number},
        "status": "succeeded",
    }
    response = post(client, json.dumps(event(intent, "payment_intent.succeeded")).encode())
    assert response.status_code == 200 and response.get_json() == {"received": True}
    assert_nothing_paid(order)
    assert count(NotifyLog, NotifyLog.outcome == "ignored") == 1


def test_webhook_for_an_order_placed_with_another_gateway_is_refused(client, product, place, stripe_gateway):
    order = place(product)  # a sandbox order
    assert_refused(post(client, webhook(order)), order)


def _event_with_session(order, **replace):
    value = session(order)
    for key, new in replace.items():
        if new is KeyError:
            del value[key]
        else:
            value[key] = new
    return json.dumps(event(value)).encode()


@pytest.mark.parametrize(
    "make",
    [
        lambda order: (webhook(order), ""),
        lambda order: (webhook(order), "t=abc,v1=00"),
        lambda order: (webhook(order), f"t={int(time.time())}"),
        lambda order: (b"not json", None),
        lambda order: (b"[1, 2]", None),
        lambda order: (b"\xff\xfe{}", None),
        lambda order: (json.dumps({"type": "checkout.session.completed"}).encode(), None),
        lambda order: (json.dumps({"type": 42, "data": {"object": session(order)}}).encode(), None),
        lambda order: (json.dumps(event(["not", "an", "object"])).encode(), None),
        lambda order: (_event_with_session(order, object="payment_intent"), None),
        lambda order: (_event_with_session(order, amount_total=str(order.total)), None),
        lambda order: (_event_with_session(order, amount_total=True), None),
        lambda order: (_event_with_session(order, amount_total=float(order.total)), None),
        lambda order: (_event_with_session(order, amount_total=KeyError), None),
        lambda order: (_event_with_session(order, currency=None), None),
        lambda order: (_event_with_session(order, client_reference_id=int(order.number)), None),
        lambda order: (_event_with_session(order, client_reference_id=KeyError), None),
        lambda order: (_event_with_session(order, metadata=KeyError), None),
        lambda order: (_event_with_session(order, payment_status=KeyError), None),
        lambda order: (_event_with_session(order, payment_intent=None), None),
        lambda order: (_event_with_session(order, payment_intent={"id": "pi_x"}), None),
        lambda order: (webhook(order)[:-1] + b', "padding": "' + b"x" * 70_000 + b'"}', None),
    ],
    ids=[
        "no-signature",
        "garbled-signature",
        "no-v1",
        "invalid-json",
        "json-list",
        "not-utf8",
        "no-data",
        "type-not-string",
        "object-not-object",
        "not-a-session",
        "amount-as-string",
        "amount-as-bool",
        "amount-as-float",
        "no-amount",
        "no-currency",
        "order-number-as-int",
        "no-order-number",
        "no-metadata",
        "no-payment-status",
        "paid-without-payment-intent",
        "payment-intent-expanded",
        "huge-body",
    ],
)
def test_malformed_webhook_changes_nothing(client, product, place_stripe, make):
    order = place_stripe(product)
    assert_refused(post(client, *make(order)), order)


def test_failure_answer_needs_no_settings():
    answer = StripeGateway({}).answer(False)
    assert answer.status == 400 and answer.content_type == "application/json"


# -- the API, over HTTP ---------------------------------------------------------------------


def stripe_json(payload, status=200) -> Response:
    return Response(
        json.dumps(payload),
        status=status,
        content_type="application/json",
        headers={"Request-Id": "req_" + secrets.token_hex(8)},
    )


def ref(order):
    with current_app.test_request_context():
        return order_ref(order)


def assert_authenticated(request):
    assert request.headers["Authorization"] == f"Bearer {SECRET_KEY}"


def test_create_payment_makes_a_checkout_session_and_redirects_to_it(product, place_stripe, stripe_gateway, httpserver):
    order = place_stripe(product, 2)
    url = "https://checkout.stripe.com/c/pay/cs_test_" + secrets.token_hex(8)
    httpserver.expect_request("/v1/checkout/sessions", method="POST").respond_with_response(
        stripe_json({"id": "cs_test_a1", "object": "checkout.session", "url": url})
    )
    start = stripe_gateway.create_payment(ref(order))
    assert start.redirect_url == url
    ((request, _),) = httpserver.log
    assert_authenticated(request)
    form = request.form
    assert form["mode"] == "payment"
    assert form["client_reference_id"] == order.number
    assert form["metadata[order_number]"] == order.number
    assert form["payment_intent_data[metadata][order_number]"] == order.number
    assert form["line_items[0][quantity]"] == "1"
    assert form["line_items[0][price_data][unit_amount]"] == str(order.total)
    assert form["line_items[0][price_data][currency]"] == "cny"
    assert form["line_items[0][price_data][product_data][name]"] == "Test product"
    assert form["adaptive_pricing[enabled]"] == "false"
    assert form["success_url"] == f"http://localhost/order/{order.token}"
    lifetime = int(form["expires_at"]) - clock.now().timestamp()
    assert timedelta(minutes=30).total_seconds() < lifetime < timedelta(hours=24).total_seconds()


def test_create_payment_refuses_currencies_not_counted_in_hundredths(stripe_gateway, httpserver):
    order = OrderRef(
        number="20260101123456789012",
        token="t",
        total=1000,
        currency="JPY",
        subject="x",
        notify_url="http://localhost/pay/stripe/notify",
        return_url="/order/t",
    )
    with pytest.raises(StripeGatewayError):
        stripe_gateway.create_payment(order)
    assert httpserver.log == []


@pytest.mark.parametrize(
    "response",
    [
        stripe_json({"error": {"type": "invalid_request_error", "message": "bad"}}, status=400),
        stripe_json({"error": {"type": "api_error", "message": "down"}}, status=500),
        stripe_json({"id": "cs_test_a1", "object": "checkout.session", "url": None}),
    ],
    ids=["refused", "provider-error", "no-url"],
)
def test_create_payment_failures_raise_a_gateway_error(product, place_stripe, stripe_gateway, httpserver, response):
    # A GatewayError: the pay page offers to try again or pay another way, never an error page.
    order = place_stripe(product)
    httpserver.expect_request("/v1/checkout/sessions", method="POST").respond_with_response(response)
    with pytest.raises(StripeGatewayError) as raised:
        stripe_gateway.create_payment(ref(order))
    assert stripe_gateway.settings["secret_key"] not in str(raised.value)


def intent(order, **changes) -> dict:
    value = {
        "id": "pi_" + secrets.token_hex(12),
        "object": "payment_intent",
        "amount": order.total,
        "amount_received": order.total,
        "currency": order.currency.lower(),
        "metadata": {"order_number": order.number},
        "status": "succeeded",
    }
    value.update(changes)
    return value


def search_result(*intents) -> Response:
    return stripe_json(
        {
            "object": "search_result",
            "data": list(intents),
            "has_more": False,
            "next_page": None,
            "url": "/v1/payment_intents/search",
        }
    )


def test_query_finds_a_paid_order(product, place_stripe, stripe_gateway, httpserver):
    order = place_stripe(product)
    paid = intent(order)
    httpserver.expect_request("/v1/payment_intents/search", method="GET").respond_with_response(search_result(paid))
    notice = stripe_gateway.query(ref(order))
    assert (notice.order_number, notice.trade_no, notice.amount, notice.currency, notice.paid) == (
        order.number,
        paid["id"],
        order.total,
        order.currency,
        True,
    )
    ((request, _),) = httpserver.log
    assert_authenticated(request)
    assert request.args["query"] == f"metadata['order_number']:'{order.number}' AND status:'succeeded'"


def test_query_of_an_unpaid_order_is_none(product, place_stripe, stripe_gateway, httpserver):
    order = place_stripe(product)
    httpserver.expect_request("/v1/payment_intents/search").respond_with_response(
        search_result(intent(order, status="requires_payment_method", amount_received=0))
    )
    assert stripe_gateway.query(ref(order)) is None


@pytest.mark.parametrize(
    "make, error",
    [
        (
            lambda order: stripe_json({"error": {"type": "api_error", "message": "down"}}, status=500),
            stripe.StripeError,
        ),
        (lambda order: search_result(intent(order, metadata={"order_number": "20260101000000000000"})), InvalidNotify),
        (lambda order: search_result(intent(order, amount_received=1)), InvalidNotify),
        (lambda order: search_result(intent(order, currency="usd")), InvalidNotify),
        (lambda order: search_result(intent(order, amount_received="1000")), InvalidNotify),
    ],
    ids=["provider-error", "other-order", "wrong-amount", "wrong-currency", "amount-as-string"],
)
def test_query_refuses_errors_and_answers_that_are_not_ours(
    product, place_stripe, stripe_gateway, httpserver, make, error
):
    order = place_stripe(product)
    httpserver.expect_request("/v1/payment_intents/search").respond_with_response(make(order))
    with pytest.raises(error):
        stripe_gateway.query(ref(order))


def test_refund_refunds_the_payment_intent_once(stripe_gateway, httpserver):
    httpserver.expect_request("/v1/refunds", method="POST").respond_with_response(
        stripe_json(
            {"id": "re_3Nf4", "object": "refund", "amount": 500, "payment_intent": "pi_3Nf4", "status": "succeeded"}
        )
    )
    assert stripe_gateway.refund("20260101123456789012", "pi_3Nf4", 500, "R7") == "re_3Nf4"
    ((request, _),) = httpserver.log
    assert_authenticated(request)
    assert request.form["payment_intent"] == "pi_3Nf4" and request.form["amount"] == "500"
    assert request.form["metadata[refund_no]"] == "R7"
    assert request.headers["Idempotency-Key"] == "faka-refund-20260101123456789012-R7"


@pytest.mark.parametrize(
    "response, error",
    [
        (
            stripe_json(
                {
                    "error": {
                        "type": "invalid_request_error",
                        "code": "charge_already_refunded",
                        "message": "already refunded",
                    }
                },
                status=400,
            ),
            CannotRefund,
        ),
        (stripe_json({"id": "re_1", "object": "refund", "status": "failed"}), CannotRefund),
        (stripe_json({"error": {"type": "api_error", "message": "down"}}, status=500), stripe.StripeError),
        (stripe_json({"object": "refund", "status": "pending"}), StripeGatewayError),
    ],
    ids=["refused", "failed", "provider-error", "no-id"],
)
def test_refund_failures(stripe_gateway, httpserver, response, error):
    httpserver.expect_request("/v1/refunds", method="POST").respond_with_response(response)
    with pytest.raises(error):
        stripe_gateway.refund("20260101123456789012", "pi_3Nf4", 500, "R7")
