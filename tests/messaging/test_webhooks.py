"""Merchant webhooks and notification emails, against a real HTTP server and SMTP server."""

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass
from datetime import timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from flask import current_app
from sqlalchemy import func, select

from conftest import key_texts, reload, run_worker, signed_notify
from faka.accounts import users
from faka.catalog.models import DELIVERY_MANUAL
from faka.core.errors import DomainError, NotFound
from faka.core.types import utcnow
from faka.extensions import db
from faka.messaging import notifications, webhooks
from faka.messaging.models import OutboxEmail, WebhookDelivery, WebhookEndpoint
from faka.ops.reconcile import reconcile
from faka.orders.models import Order

ALL_EVENTS = ["order.paid", "order.delivered", "order.refunded", "stock.low", "complaint.opened"]


@pytest.fixture
def app(make_app):
    """The tests' receiver listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@dataclass
class Received:
    method: str
    path: str
    headers: dict
    body: bytes

    @property
    def event(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """What a merchant's server saw; `status` is what it answers."""

    def __init__(self):
        self.requests: list[Received] = []
        self.status = 200
        self.url = ""

    def events(self, type_: str | None = None) -> list[dict]:
        return [r.event for r in self.requests if type_ is None or r.event["type"] == type_]


@pytest.fixture
def receiver():
    received = Receiver()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):
            body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
            headers = {k.lower(): v for k, v in self.headers.items()}
            received.requests.append(Received(self.command, self.path, headers, body))
            self.send_response(received.status)
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    received.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/faka"
    yield received
    server.shutdown()
    server.server_close()


def assert_signed(request: Received, secret: str) -> None:
    """Verify the signature exactly as the module docstring tells merchants to."""
    fields = dict(part.split("=", 1) for part in request.headers["faka-signature"].split(","))
    expected = hmac.new(secret.encode(), f"{fields['t']}.".encode() + request.body, hashlib.sha256).hexdigest()
    assert hmac.compare_digest(expected, fields["v1"])
    assert abs(time.time() - int(fields["t"])) < 300


def deliveries(*where) -> list[WebhookDelivery]:
    db.session.commit()
    return list(db.session.execute(select(WebhookDelivery).where(*where).order_by(WebhookDelivery.id)).scalars())


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def backdate(model, by: timedelta) -> None:
    """Move every row's created_at into the past, as if time had passed."""
    db.session.commit()
    for row in db.session.execute(select(model)).scalars():
        row.created_at -= by
    db.session.commit()


def age_deliveries(by: timedelta) -> None:
    backdate(WebhookDelivery, by)


# -- events reach the merchant's server -------------------------------------------------


def test_paid_order_posts_signed_order_paid_and_order_delivered(product, merchant, place, pay, receiver):
    endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    assert secret.startswith("whsec_") and len(secret) == 6 + 64
    assert secret not in reload(endpoint).secret_ciphertext
    order = place(product, 2)
    pay(order)
    assert reload(order).status == Order.DELIVERED

    assert sorted(e["type"] for e in receiver.events()) == ["order.delivered", "order.paid"]
    for request in receiver.requests:
        assert request.method == "POST" and request.path == "/hooks/faka"
        assert request.headers["content-type"] == "application/json"
        assert request.headers["user-agent"] == "faka-webhooks"
        assert_signed(request, secret)
        event = request.event
        assert event["id"].startswith("whd_") and isinstance(event["created"], int)
        assert event["data"]["order"]["number"] == order.number
        assert event["data"]["order"]["total"] == order.total
        assert event["data"]["product"]["slug"] == product.slug
        for key in key_texts(order):
            assert key not in request.body.decode()  # the goods never leave in a webhook
    assert receiver.events("order.delivered")[0]["data"]["order"]["status"] == "delivered"
    assert [(d.status, d.attempts, d.response_code) for d in deliveries()] == [("delivered", 1, 200)] * 2


def test_signature_does_not_verify_with_another_secret(product, merchant, place, pay, receiver):
    _endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid"])
    pay(place(product))
    (request,) = receiver.requests
    with pytest.raises(AssertionError):
        assert_signed(request, secret[:-1] + ("0" if secret[-1] != "0" else "1"))
    tampered = Received(
        request.method, request.path, request.headers, request.body.replace(b"order.paid", b"order.pain")
    )
    with pytest.raises(AssertionError):
        assert_signed(tampered, secret)


def test_only_subscribed_enabled_endpoints_receive_events(product, merchant, place, pay, receiver):
    webhooks.create_endpoint(merchant.id, receiver.url, ["stock.low"])
    disabled, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    webhooks.update_endpoint(disabled.id, merchant.id, enabled=False)
    pay(place(product))
    assert receiver.requests == []
    assert count(WebhookDelivery) == 0


def test_refunded_order_posts_order_refunded(product, merchant, place, pay, receiver):
    _endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.refunded"])
    order = place(product)
    pay(order)
    order = reload(order)
    order.mark_refunded(utcnow())
    db.session.commit()
    notifications.order_refunded(order.id)
    (event,) = receiver.events()
    assert event["type"] == "order.refunded" and event["data"]["order"]["status"] == "refunded"
    assert_signed(receiver.requests[0], secret)


# -- failures, retries, the log ---------------------------------------------------------


def test_failed_delivery_is_recorded_and_retried_by_the_reconciler(product, merchant, place, pay, receiver, caplog):
    _endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid", "order.delivered"])
    receiver.status = 500
    order = place(product)
    assert pay(order).text == "success"  # the merchant's server cannot fail the gateway's answer
    assert reload(order).status == Order.DELIVERED
    assert len(receiver.requests) == 2
    rows = deliveries()
    assert [(d.status, d.attempts, d.response_code, d.last_error) for d in rows] == [
        ("pending", 1, 500, "HTTP 500")
    ] * 2
    assert secret not in caplog.text and receiver.url not in caplog.text and '"data"' not in caplog.text

    assert reconcile().webhooks == 0  # the next attempt is not due yet: it backs off
    assert len(receiver.requests) == 2

    receiver.status = 200
    age_deliveries(timedelta(minutes=2))
    assert reconcile().webhooks == 2
    assert [(d.status, d.attempts, d.response_code, d.last_error) for d in deliveries()] == [
        ("delivered", 2, 200, None)
    ] * 2
    ids = {e["id"] for e in receiver.events()}
    assert len(ids) == 2  # the retry carried the same event id as the first attempt
    for request in receiver.requests:
        assert_signed(request, secret)

    reconcile()
    assert webhooks.deliver(rows[0].id) is False  # delivered: never sent again
    assert len(receiver.requests) == 4


def test_delivery_gives_up_after_six_attempts(merchant, receiver):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    receiver.status = 404
    delivery_id = webhooks.send_test(endpoint.id, merchant.id)
    for _ in range(10):
        age_deliveries(timedelta(hours=7))
        reconcile()
    (delivery,) = deliveries()
    assert delivery.id == delivery_id
    assert (delivery.status, delivery.attempts, delivery.response_code) == ("failed", webhooks.MAX_ATTEMPTS, 404)
    assert len(receiver.requests) == webhooks.MAX_ATTEMPTS


def test_unreachable_endpoint_records_the_error(merchant, receiver):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    webhooks.update_endpoint(endpoint.id, merchant.id, url="http://127.0.0.1:1/nothing-listens")
    webhooks.send_test(endpoint.id, merchant.id)
    (delivery,) = deliveries()
    assert delivery.status == "pending" and delivery.attempts == 1 and delivery.response_code is None
    assert "refused" in delivery.last_error.lower()


def test_send_test_posts_a_signed_ping_and_logs_it(merchant, receiver):
    endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid"])
    delivery_id = webhooks.send_test(endpoint.id, merchant.id)
    (request,) = receiver.requests
    assert request.event["type"] == "ping" and request.event["data"] == {"endpoint_id": endpoint.id}
    assert_signed(request, secret)
    log = webhooks.delivery_log(endpoint.id, merchant.id)
    assert [(d.id, d.event, d.status, d.response_code) for d in log.items] == [(delivery_id, "ping", "delivered", 200)]
    assert webhooks.public_id(log.items[0]) == request.event["id"]


def test_delivery_log_pages_newest_first(merchant, receiver):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    ids = [webhooks.send_test(endpoint.id, merchant.id) for _ in range(webhooks.LOG_PAGE_SIZE + 1)]
    first, second = (
        webhooks.delivery_log(endpoint.id, merchant.id, 1),
        webhooks.delivery_log(endpoint.id, merchant.id, 2),
    )
    assert [d.id for d in first.items] == ids[::-1][: webhooks.LOG_PAGE_SIZE] and first.has_next
    assert [d.id for d in second.items] == [ids[0]] and not second.has_next


def test_rotated_secret_signs_from_then_on(merchant, receiver):
    endpoint, old = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    new = webhooks.rotate_secret(endpoint.id, merchant.id)
    assert new != old and new.startswith("whsec_")
    webhooks.send_test(endpoint.id, merchant.id)
    assert_signed(receiver.requests[0], new)
    with pytest.raises(AssertionError):
        assert_signed(receiver.requests[0], old)


def test_deleted_endpoint_takes_its_log_and_owed_deliveries(merchant, receiver):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    receiver.status = 503
    delivery_id = webhooks.send_test(endpoint.id, merchant.id)
    webhooks.delete_endpoint(endpoint.id, merchant.id)
    assert count(WebhookEndpoint) == 0 and count(WebhookDelivery) == 0
    assert webhooks.deliver(delivery_id) is False


# -- scoping and validation -------------------------------------------------------------


@pytest.mark.parametrize(
    "action",
    [
        lambda e, m: webhooks.update_endpoint(e, m, url="http://127.0.0.1:9/stolen"),
        lambda e, m: webhooks.update_endpoint(e, m, enabled=False),
        lambda e, m: webhooks.rotate_secret(e, m),
        lambda e, m: webhooks.delete_endpoint(e, m),
        lambda e, m: webhooks.send_test(e, m),
        lambda e, m: webhooks.delivery_log(e, m),
        lambda e, m: webhooks.get_endpoint(e, m),
    ],
    ids=["update-url", "disable", "rotate", "delete", "send-test", "log", "get"],
)
def test_another_merchants_endpoint_is_not_found(merchant, receiver, action):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    before = reload(endpoint)
    url, secret_ciphertext = before.url, before.secret_ciphertext
    other = users.create_merchant("other@shop.test", "merchant-pass-2", "Other Shop", approved=True)
    with pytest.raises(NotFound):
        action(endpoint.id, other.id)
    after = reload(endpoint)
    assert (after.url, after.secret_ciphertext, after.enabled) == (url, secret_ciphertext, True)
    assert count(WebhookDelivery) == 0 and receiver.requests == []
    assert webhooks.endpoints(other.id) == []


@pytest.mark.parametrize(
    "url, events",
    [
        ("ftp://example.com/hook", ALL_EVENTS),
        ("example.com/hook", ALL_EVENTS),
        ("http://user:password@example.com/hook", ALL_EVENTS),
        ("http://example.com:http/hook", ALL_EVENTS),
        ("https://example.com/" + "x" * 500, ALL_EVENTS),
        ("https://example.com/hook", ["order.nope"]),
        ("https://example.com/hook", []),
        ("https://example.com/hook", ["ping"]),
    ],
    ids=["ftp", "no-scheme", "credentials", "bad-port", "too-long", "unknown-event", "no-event", "ping-event"],
)
def test_invalid_endpoint_changes_nothing(merchant, receiver, url, events):
    with pytest.raises(DomainError):
        webhooks.create_endpoint(merchant.id, url, events)
    assert count(WebhookEndpoint) == 0
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid"])
    with pytest.raises(DomainError):
        webhooks.update_endpoint(endpoint.id, merchant.id, url=url, events=events)
    after = reload(endpoint)
    assert (after.url, after.events) == (receiver.url, "order.paid")


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://localhost/hook",
        "http://api.localhost/hook",
        "http://10.1.2.3/hook",
        "http://192.168.1.1/hook",
        "http://169.254.169.254/latest/meta-data",
        "http://[::1]/hook",
        "http://[::ffff:127.0.0.1]/hook",
        "http://0.0.0.0/hook",
    ],
)
def test_private_hosts_are_refused_unless_allowed(merchant, url):
    current_app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    with pytest.raises(webhooks.InvalidWebhookUrl):
        webhooks.create_endpoint(merchant.id, url, ALL_EVENTS)
    assert count(WebhookEndpoint) == 0


def test_private_address_is_refused_again_when_sending(merchant, receiver):
    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    current_app.config["WEBHOOK_ALLOW_PRIVATE"] = False  # e.g. the name now resolves to 127.0.0.1
    webhooks.send_test(endpoint.id, merchant.id)
    assert receiver.requests == []
    (delivery,) = deliveries()
    assert delivery.status == "pending" and delivery.attempts == 1 and "not public" in delivery.last_error


def test_too_many_endpoints_are_refused(merchant, receiver):
    for _ in range(webhooks.MAX_ENDPOINTS):
        webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    with pytest.raises(webhooks.TooManyEndpoints):
        webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    assert count(WebhookEndpoint) == webhooks.MAX_ENDPOINTS


# -- emails to the merchant -------------------------------------------------------------


@pytest.mark.parametrize("notify_email", ["orders@shop.test", None])
def test_paid_manual_order_emails_the_merchant(app, make_product, merchant, place, pay, smtp, receiver, notify_email):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    merchant = reload(merchant)
    merchant.notify_email = notify_email
    db.session.commit()
    webhooks.create_endpoint(merchant.id, receiver.url, ALL_EVENTS)
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="代充服务", manual_promise_hours=6)
    order = place(product)
    pay(order)
    assert reload(order).status == Order.PAID  # the merchant delivers it by hand
    assert [e["type"] for e in receiver.events()] == ["order.paid"]
    (message,) = smtp.messages
    assert message["To"] == (notify_email or reload(merchant).user.email)
    assert order.number in message["Subject"]
    body = message.get_body(("plain",)).get_content()
    assert order.number in body and "代充服务" in body and "6" in body and "¥10.00" in body


def test_auto_order_sends_no_merchant_email(app, product, place, pay, smtp):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    pay(place(product))
    assert [m["To"] for m in smtp.messages] == ["buyer@example.com"]


def test_low_stock_alerts_once_a_day(app, make_product, merchant, place, pay, smtp, receiver):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    webhooks.create_endpoint(merchant.id, receiver.url, ["stock.low"])
    product = make_product(keys=5, low_stock_threshold=3, title="Steam 卡")
    merchant_address = reload(merchant).user.email

    def merchant_mail():
        return [m for m in smtp.messages if m["To"] == merchant_address]

    pay(place(product))  # 4 left
    assert merchant_mail() == [] and receiver.requests == []
    pay(place(product))  # 3 left: at the threshold
    (alert,) = merchant_mail()
    assert "Steam 卡" in alert["Subject"]
    assert "3" in alert.get_body(("plain",)).get_content()
    (event,) = receiver.events("stock.low")
    assert (event["data"]["available"], event["data"]["threshold"], event["data"]["product"]["id"]) == (
        3,
        3,
        product.id,
    )

    pay(place(product))  # 2 left: still low, but alerted within 24 h
    assert len(merchant_mail()) == 1 and len(receiver.events("stock.low")) == 1

    other = make_product(keys=1, low_stock_threshold=1, title="Other 卡")
    pay(place(other))  # another product of the same merchant alerts on its own
    assert len(merchant_mail()) == 2

    backdate(OutboxEmail, timedelta(hours=25))
    pay(place(product))  # 1 left, a day later: alerts again
    assert len(merchant_mail()) == 3
    assert receiver.events("stock.low")[-1]["data"]["available"] == 1
    assert count(OutboxEmail, OutboxEmail.kind == "merchant_low_stock") == 3


def test_low_stock_threshold_zero_never_alerts(make_product, merchant, place, pay, receiver):
    webhooks.create_endpoint(merchant.id, receiver.url, ["stock.low"])
    product = make_product(keys=1)
    pay(place(product))
    assert receiver.requests == []
    assert count(OutboxEmail, OutboxEmail.kind == "merchant_low_stock") == 0


# -- a real RQ worker -------------------------------------------------------------------


def test_rq_worker_delivers_webhooks_and_schedules_retries(rq_app, make_product, merchant, place, receiver):
    from rq.job import Job, JobStatus

    rq_app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    _endpoint, secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid", "order.delivered"])
    order = place(make_product(keys=3))
    assert rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    assert receiver.requests == []  # queued, not sent in the request
    run_worker(rq_app)
    run_worker(rq_app)
    assert reload(order).status == Order.DELIVERED
    assert sorted(e["type"] for e in receiver.events()) == ["order.delivered", "order.paid"]
    for request in receiver.requests:
        assert_signed(request, secret)
    assert [d.status for d in deliveries()] == ["delivered", "delivered"]

    receiver.status = 500
    endpoint_id = deliveries()[0].endpoint_id
    with rq_app.app_context():
        delivery_id = webhooks.send_test(endpoint_id, merchant.id)
    assert len(receiver.requests) == 2
    run_worker(rq_app)
    (failed,) = deliveries(WebhookDelivery.id == delivery_id)
    assert (failed.status, failed.attempts, failed.response_code) == ("pending", 1, 500)
    job = Job.fetch(f"webhook-{delivery_id}", connection=rq_app.extensions["faka_jobs"].redis)
    assert job.get_status() == JobStatus.SCHEDULED  # RQ retries it with backoff
