"""Delivery "from my server": a real HTTP server (pytest-httpserver) plays the merchant's
delivery server, checks faka's signature the way docs/dynamic-delivery.md tells merchants
to, and answers keys; faka delivers them, retries, and hands the order to the merchant
when the server fails."""

import hashlib
import hmac
import json
import os
import re
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from markupsafe import escape
from sqlalchemy import select
from werkzeug import Response

from conftest import csrf_from, free_port, key_texts, login, reload, run_together, run_worker, signed_notify
from faka.catalog.models import DELIVERY_REMOTE, CheckoutField, Product
from faka.catalog.variants import product_with_one_variant
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.messaging.mail import EMAIL_ORDER_DELIVERED
from faka.messaging.models import OutboxEmail
from faka.messaging.notifications import EMAIL_MANUAL_ORDER
from faka.ops.reconcile import reconcile
from faka.orders import checkout, delivery, remote_delivery
from faka.orders.models import Order, RemoteDeliveryAttempt
from faka.payments import refunds
from faka.payments.models import Refund

DOCS = Path(__file__).resolve().parents[2] / "docs" / "dynamic-delivery.md"


@pytest.fixture
def app(make_app):
    """The merchant's server listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


def signature_is_valid(headers, body: bytes, secret: str) -> bool:
    """The check docs/dynamic-delivery.md gives merchants, written out again here."""
    try:
        fields = dict(part.split("=", 1) for part in headers.get("Faka-Signature", "").split(","))
        t, v1 = int(fields["t"]), fields["v1"]
    except (KeyError, ValueError):
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, v1) and abs(time.time() - t) < 300


class MerchantServer:
    """The merchant's delivery server: refuses a bad signature with 401, else answers
    what `answer(request_json)` returns (by default, `quantity` keys named after the
    order). `requests` holds (headers, parsed body) of every signed request."""

    def __init__(self, httpserver):
        self.url = httpserver.url_for("/faka/deliver")
        self.secret = ""
        self.requests: list[tuple[dict, dict]] = []
        self.refused = 0
        self.answer = self.keys_for
        httpserver.expect_request("/faka/deliver", method="POST").respond_with_handler(self._handle)

    @staticmethod
    def keys_for(request: dict) -> Response:
        number, quantity = request["order"]["number"], request["order"]["quantity"]
        return json_response({"keys": [f"LIC-{number}-{n}" for n in range(1, quantity + 1)]})

    def _handle(self, request) -> Response:
        body = request.get_data()
        if not signature_is_valid(request.headers, body, self.secret):
            self.refused += 1
            return json_response({"error": "invalid signature"}, 401)
        payload = json.loads(body)
        self.requests.append((dict(request.headers), payload))
        return self.answer(payload)


def json_response(payload, status: int = 200) -> Response:
    return Response(json.dumps(payload), status=status, content_type="application/json")


@pytest.fixture
def server(httpserver) -> MerchantServer:
    return MerchantServer(httpserver)


@pytest.fixture
def server_product(make_product, merchant, server):
    """A "from my server" product pointed at `server`, which knows its secret."""

    def make(**fields) -> Product:
        fields.setdefault("title", "Pro licence, 1 year")
        product = make_product(keys=0, delivery_type=DELIVERY_REMOTE, remote_url=server.url, **fields)
        server.secret = remote_delivery.ensure_secret(merchant.id, product.slug)
        return product

    return make


@pytest.fixture
def mail(app, smtp):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    return smtp


@pytest.fixture
def merchant_client(app, merchant):
    client = app.test_client()
    login(client, merchant.user)
    return client


def attempts_of(order: Order) -> list[RemoteDeliveryAttempt]:
    db.session.commit()
    return remote_delivery.attempts(order.id)


def sold_keys(order: Order) -> list[CardKey]:
    db.session.commit()
    return list(db.session.execute(select(CardKey).where(CardKey.order_id == order.id).order_by(CardKey.id)).scalars())


def emails(kind: str) -> list[OutboxEmail]:
    db.session.commit()
    return list(db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == kind)).scalars())


# -- the keys the server answers are delivered -------------------------------------------


def test_paid_order_delivers_the_keys_the_merchants_server_answers(
    app, server, server_product, place, pay, mail, client, merchant_client
):
    product = server_product()
    field = CheckoutField(key="uidfield01", product_id=product.id, label="机器码", label_en="Machine code")
    db.session.add(field)
    db.session.commit()
    with app.test_request_context():
        order = checkout.place_order(
            product.slug, 2, "buyer@example.com", "secret-1", answers={"uidfield01": "AB12-CD34"}
        )
    assert pay(order).status_code == 200

    order = reload(order)
    expected = [f"LIC-{order.number}-1", f"LIC-{order.number}-2"]
    assert order.status == Order.DELIVERED
    # One signed request with everything the merchant's server needs.
    ((headers, request),) = server.requests
    assert headers["Content-Type"] == "application/json" and headers["User-Agent"] == "faka-delivery"
    assert headers["Idempotency-Key"] == request["id"] == f"dd_{order.number}"
    assert headers["Faka-Attempt"] == "1"
    assert request["type"] == "order.deliver" and request["test"] is False
    assert request["order"] == {
        "number": order.number,
        "quantity": 2,
        "unit_price": 1000,
        "discount": 0,
        "amount": 2000,
        "currency": order.currency,
        "buyer_email": "buyer@example.com",
        "created_at": int(order.created_at.timestamp()),
        "paid_at": int(order.paid_at.timestamp()),
    }
    assert request["product"] == {"id": product.slug, "title": "Pro licence, 1 year"}
    assert request["answers"] == [
        {"key": "uidfield01", "label": "机器码", "label_en": "Machine code", "value": "AB12-CD34"}
    ]

    # Stored like stock keys: the order's, sold, encrypted.
    keys = sold_keys(order)
    assert [k.status for k in keys] == [CardKey.SOLD, CardKey.SOLD]
    assert [vault().decrypt(k.ciphertext) for k in keys] == expected
    assert all(plain not in k.ciphertext for k, plain in zip(keys, expected))
    assert key_texts(order) == expected

    # The buyer's page and the delivery email show them; the merchant is credited.
    page = client.get(f"/order/{order.token}?lang=en").text
    assert "Delivered" in page and all(k in page for k in expected)
    (message,) = [m for m in mail.messages if m["To"] == "buyer@example.com"]
    assert all(k in message.get_body(("plain",)).get_content() for k in expected)
    db.session.commit()
    assert db.session.scalar(select(LedgerEntry.amount).where(LedgerEntry.kind == LedgerEntry.SALE)) == 2000

    # The merchant's order page shows the attempt.
    (attempt,) = attempts_of(order)
    assert (attempt.status_code, attempt.error, attempt.keys_received) == (200, None, 2)
    merchant_page = merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text
    assert "Your delivery server" in merchant_page and "Keys delivered: 2" in merchant_page
    assert "Deliver by hand" not in merchant_page


def test_a_retried_job_after_the_delivery_changes_nothing(app, server, server_product, place, pay):
    order = place(server_product())
    pay(order)
    assert reload(order).status == Order.DELIVERED
    keys_before = key_texts(order)

    assert delivery.deliver_order(order.id) is False
    reconcile()
    assert pay(order).status_code == 200  # the provider sends its notification again

    assert len(server.requests) == 1
    assert key_texts(order) == keys_before and len(attempts_of(order)) == 1
    db.session.commit()
    assert len(db.session.scalars(select(LedgerEntry).where(LedgerEntry.kind == LedgerEntry.SALE)).all()) == 1
    assert len(emails(EMAIL_ORDER_DELIVERED)) == 1


def test_two_jobs_at_once_ask_the_server_once_and_deliver_once(app, server, server_product, place, pay, frozen_clock):
    product = server_product()
    order = place(product)
    server.answer = lambda request: json_response({"error": "busy"}, 503)
    pay(order)  # the first attempt fails: the order waits, paid
    assert reload(order).status == Order.PAID

    def slow_keys(request):
        time.sleep(0.5)  # both jobs are running by the time the server answers
        return MerchantServer.keys_for(request)

    server.answer = slow_keys
    frozen_clock.advance(seconds=5)
    results, errors = run_together(app, 2, lambda i: delivery.deliver_order(order.id))

    assert errors == [] and sorted(results) == [False, True]
    assert len(server.requests) == 2  # the failed first attempt, then one for both jobs
    assert reload(order).status == Order.DELIVERED
    assert key_texts(order) == [f"LIC-{order.number}-1"]
    assert [(a.number, a.error is None) for a in attempts_of(order)] == [(1, False), (2, True)]


def test_rq_retries_a_failed_attempt_and_the_retry_delivers(rq_app, server, server_product, place, frozen_clock):
    from rq.job import Job, JobStatus
    from rq.registry import ScheduledJobRegistry

    rq_app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    runner = rq_app.extensions["faka_jobs"]
    order = place(server_product())
    server.answer = lambda request: json_response({"error": "busy"}, 503)
    assert rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    assert server.requests == []  # queued, not asked in the notification's request
    run_worker(rq_app)
    (failed,) = attempts_of(order)
    assert failed.status_code == 503 and reload(order).status == Order.PAID
    job = Job.fetch(f"deliver-{order.id}", connection=runner.redis)
    assert job.get_status() == JobStatus.SCHEDULED  # RQ retries it with backoff

    # Its time comes (RQ's scheduler moves it to the queue); the server answers now.
    server.answer = MerchantServer.keys_for
    frozen_clock.advance(seconds=5)
    ScheduledJobRegistry(queue=runner.queue()).remove(job)
    runner.queue().enqueue_job(job)
    run_worker(rq_app)
    assert reload(order).status == Order.DELIVERED
    assert key_texts(order) == [f"LIC-{order.number}-1"]
    assert [a.status_code for a in attempts_of(order)] == [503, 200]


# -- failed attempts, retries and the fall-back to the merchant ---------------------------


def wait_until(condition, seconds: float = 10) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < deadline, "waited in vain"
        time.sleep(0.05)


def hang(request):
    time.sleep(1.5)
    return MerchantServer.keys_for(request)


FAILURES = {
    "server error": (lambda request: json_response({"error": "database down"}, 500), "HTTP 500"),
    "wrong count": (lambda request: json_response({"keys": ["ONLY-ONE"]}), "expected 2 keys, got 1"),
    "not json": (lambda request: Response("OK", content_type="text/plain"), "the answer is not JSON"),
    "redirect": (lambda request: Response("", 302, headers={"Location": "https://elsewhere.example/"}), "HTTP 302"),
    "timeout": (hang, "timed out"),
}


@pytest.mark.parametrize("failure", FAILURES)
def test_a_failing_server_is_retried_then_the_order_falls_back_to_the_merchant(
    app, failure, server, server_product, place, pay, mail, client, merchant_client, merchant, frozen_clock, monkeypatch
):
    answer, error = FAILURES[failure]
    monkeypatch.setattr(remote_delivery, "TIMEOUT_SECONDS", 0.5)
    server.answer = answer
    product = server_product(manual_promise_hours=6)
    order = place(product, quantity=2)

    pay(order)  # attempt 1, at once
    assert [a.number for a in attempts_of(order)] == [1]
    reconcile()  # too soon for attempt 2: nothing sent
    assert len(attempts_of(order)) == 1
    frozen_clock.advance(seconds=5)
    reconcile()  # attempt 2
    frozen_clock.advance(seconds=10)
    reconcile()  # too soon for attempt 3
    assert len(attempts_of(order)) == 2
    frozen_clock.advance(seconds=20)
    reconcile()  # attempt 3, the last
    frozen_clock.advance(minutes=5)
    reconcile()  # the order is the merchant's now: no more attempts

    made = attempts_of(order)
    assert len(made) == 3
    wait_until(lambda: len(server.requests) == 3)  # a server that timed out reads them late
    assert all(error in a.error and a.finished_at is not None for a in made)
    # Every attempt carried the same request, so the server can answer a retry as the first.
    assert len({json.dumps(body, sort_keys=True) for _headers, body in server.requests}) == 1
    assert [h["Faka-Attempt"] for h, _body in server.requests] == ["1", "2", "3"]

    order = reload(order)
    assert order.status == Order.PAID and order.manual_fallback_at is not None
    assert sold_keys(order) == []
    # The merchant is asked to deliver it by hand, as for a manual product, and told why.
    (email,) = emails(EMAIL_MANUAL_ORDER)
    assert json.loads(vault().decrypt(email.payload_ciphertext))["server_failed"] is True
    (message,) = [m for m in mail.messages if m["To"] == reload(merchant).user.email]
    assert order.number in message["Subject"]
    # The buyer is told the seller is handling it.
    page = client.get(f"/order/{order.token}?lang=en").text
    assert "the seller is handling your delivery and will deliver within 6 hours" in page
    status = client.get(f"/order/{order.token}/status?lang=en")
    assert "handling your delivery" in status.text and "every 30s" in status.text
    # The merchant sees why, and delivers it by hand.
    merchant_page = merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text
    assert "Your server did not deliver this order" in merchant_page and "Deliver by hand" in merchant_page
    assert merchant_page.count(escape(error)) >= 3
    token = csrf_from(merchant_page)
    delivered = merchant_client.post(
        f"/merchant/orders/{order.number}/deliver",
        data={"csrf_token": token, "content": "LIC-BY-HAND-1\nLIC-BY-HAND-2"},
    )
    assert delivered.status_code == 303
    assert reload(order).status == Order.DELIVERED
    assert "LIC-BY-HAND-1" in client.get(f"/order/{order.token}?lang=en").text


def test_keys_the_shop_already_holds_are_refused(app, server, server_product, place, pay, frozen_clock):
    product = server_product()
    first = place(product)
    pay(first)
    assert reload(first).status == Order.DELIVERED
    # The server answers the first order's key again for another order.
    key = key_texts(first)[0]
    server.answer = lambda request: json_response({"keys": [key]})
    second = place(product)
    pay(second)
    (attempt,) = attempts_of(second)
    assert "already holds" in attempt.error and attempt.status_code == 200
    assert reload(second).status == Order.PAID and sold_keys(second) == []
    assert key not in attempt.error


def test_a_server_answer_that_comes_after_the_order_was_refunded_is_not_used(
    app, server, server_product, place, pay, merchant
):
    order = place(server_product())
    server.answer = lambda request: json_response({"error": "busy"}, 503)
    pay(order)
    # Another attempt is on its way when the order stops waiting (refunded meanwhile).
    server.answer = MerchantServer.keys_for
    claimed = _claim_now(order)
    with app.test_request_context():
        refunds.refund_order(order.id, merchant.id, None, allowed_statuses=(Order.PAID,))
    reply = claimed.ask()
    assert reply.error is None and reply.keys == [f"LIC-{order.number}-1"]
    with write_transaction():
        locked = db.session.get(Order, order.id)
        outcome, error = remote_delivery.settle_attempt(locked, claimed, reply, locked.paid_at)
    assert outcome == remote_delivery.MOOT and "no longer waited" in error
    assert reload(order).status == Order.REFUNDED and sold_keys(order) == []
    assert attempts_of(order)[-1].error == error


def _claim_now(order: Order) -> remote_delivery.Attempt:
    """The order's next attempt, claimed as its job would (its wait cut short)."""
    db.session.commit()
    for row in remote_delivery.attempts(order.id):
        row.finished_at = row.finished_at.replace(year=row.finished_at.year - 1)
    db.session.commit()
    claimed = remote_delivery.start_attempt(order.id)
    assert claimed is not None
    return claimed


# -- the address guard ----------------------------------------------------------------------


def test_the_address_guard_refuses_a_private_address(
    app, server, server_product, place, pay, merchant_client, category
):
    product = server_product()
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False

    # Saving one is refused, with a message, and nothing is saved.
    form_page = merchant_client.get("/merchant/products/new?lang=en").text
    refused = merchant_client.post(
        "/merchant/products/new",
        data={**product_form(category), "remote_url": server.url, "csrf_token": csrf_from(form_page)},
    )
    assert refused.status_code == 400 and "on the public internet" in refused.text
    db.session.commit()
    assert db.session.scalars(select(Product.title)).all() == ["Pro licence, 1 year"]

    # An address saved before (or a name pointed at a private address since) is refused
    # when connecting: nothing reaches the server, the attempt says why.
    order = place(product)
    pay(order)
    (attempt,) = attempts_of(order)
    assert attempt.status_code is None and "not public" in attempt.error
    assert server.requests == [] and server.refused == 0
    assert reload(order).status == Order.PAID


# -- refunds and complaints work as for stock keys ------------------------------------------


def test_an_order_delivered_from_the_server_is_refunded_through_a_complaint(
    app, server, server_product, place, pay, merchant, client
):
    order = place(server_product())
    pay(order)
    order = reload(order)
    assert order.status == Order.DELIVERED
    with app.test_request_context():
        complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "The licence is refused by the app.")
        assert workflow.masked_goods(reload(order)) == ["••••" + f"LIC-{order.number}-1"[-4:]]
        workflow.offer_refund(complaint.id, merchant.user.id, order.total)
        workflow.accept_offer(complaint.id)

    order = reload(order)
    assert order.status == Order.REFUNDED and order.refunded_amount == order.total
    db.session.commit()
    refund = db.session.scalars(select(Refund).where(Refund.order_id == order.id)).one()
    assert refund.amount == order.total
    # A refund does not take back what the buyer has: the key stays on their page.
    assert f"LIC-{order.number}-1" in client.get(f"/order/{order.token}?lang=en").text


# -- the merchant's pages -------------------------------------------------------------------


def product_form(category, **changes) -> dict:
    form = {
        "title": "Pro licence, 1 year",
        "category_id": category.id,
        "price": "10.00",
        "delivery_type": DELIVERY_REMOTE,
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
        "description_md": "",
        "refund_policy": "",
    }
    form.update(changes)
    return form


def test_merchant_sets_up_a_server_product_tests_it_and_makes_a_new_secret(
    app, server, merchant_client, merchant, category
):
    page = merchant_client.get("/merchant/products/new?lang=en").text
    assert "From my server" in page
    # Without an address: refused, nothing saved.
    missing = merchant_client.post(
        "/merchant/products/new", data={**product_form(category), "csrf_token": csrf_from(page)}
    )
    assert missing.status_code == 400 and "Enter the address of your server" in missing.text
    db.session.commit()
    assert db.session.scalars(select(Product)).all() == []

    saved = merchant_client.post(
        "/merchant/products/new", data={**product_form(category, remote_url=server.url), "csrf_token": csrf_from(page)}
    )
    # The signing secret, shown once, stored only encrypted.
    assert saved.status_code == 200
    secret = re.search(r'id="server-secret">(ddsec_[0-9a-f]{64})<', saved.text).group(1)
    db.session.commit()
    product = db.session.scalars(select(Product)).one()
    assert product.remote_url == server.url and product.delivery_type == DELIVERY_REMOTE
    assert secret not in product.remote_secret_ciphertext
    assert vault().decrypt(product.remote_secret_ciphertext) == secret
    server_page = merchant_client.get(f"/merchant/products/{product.slug}/server").text
    assert secret not in server_page and "Set (shown only when it is made)" in server_page
    edit = merchant_client.get(f"/merchant/products/{product.slug}/edit").text
    assert f"/merchant/products/{product.slug}/server" in edit and secret not in edit

    # A test request: signed with that secret, marked test, nothing stored.
    server.secret = secret
    tested = merchant_client.post(
        f"/merchant/products/{product.slug}/server/test", data={"csrf_token": csrf_from(server_page)}
    )
    assert tested.status_code == 200
    assert "It works: your server answered HTTP 200 with the right number of keys (1)" in tested.text
    ((headers, request),) = server.requests
    assert request["test"] is True and request["id"].startswith("dd_test_")
    assert request["order"]["quantity"] == 1 and request["product"]["id"] == product.slug
    db.session.commit()
    assert db.session.scalars(select(CardKey)).all() == [] and db.session.scalars(select(Order)).all() == []
    assert db.session.scalars(select(RemoteDeliveryAttempt)).all() == []

    # A wrong answer is shown as such.
    server.answer = lambda request: json_response({"keys": []})
    tested = merchant_client.post(
        f"/merchant/products/{product.slug}/server/test", data={"csrf_token": csrf_from(server_page)}
    )
    assert "It did not work" in tested.text and "expected 1 keys, got 0" in tested.text

    # A new secret: shown once; the server still holding the old one refuses the test.
    rotated = merchant_client.post(
        f"/merchant/products/{product.slug}/server/secret", data={"csrf_token": csrf_from(server_page)}
    )
    new_secret = re.search(r'id="server-secret">(ddsec_[0-9a-f]{64})<', rotated.text).group(1)
    assert new_secret != secret
    server.answer = MerchantServer.keys_for
    refused = merchant_client.post(
        f"/merchant/products/{product.slug}/server/test", data={"csrf_token": csrf_from(server_page)}
    )
    assert "HTTP 401" in refused.text and server.refused == 1
    server.secret = new_secret
    accepted = merchant_client.post(
        f"/merchant/products/{product.slug}/server/test", data={"csrf_token": csrf_from(server_page)}
    )
    assert "answered HTTP 200" in accepted.text


def test_server_pages_are_the_merchants_own_and_need_the_csrf_token(
    app, server, server_product, merchant_client, category
):
    from faka.accounts import users

    other = users.create_merchant("other@shop.test", "merchant-pass-1", "Other Shop", approved=True)
    theirs = product_with_one_variant(
        slug="0123456789abcdef",
        merchant_id=other.id,
        category_id=category.id,
        title="Theirs",
        price=100,
        delivery_type=DELIVERY_REMOTE,
        remote_url=server.url,
    )
    db.session.add(theirs)
    db.session.commit()
    token = csrf_from(merchant_client.get("/merchant/products/new").text)
    assert merchant_client.get(f"/merchant/products/{theirs.slug}/server").status_code == 404
    for action in ("test", "secret"):
        assert (
            merchant_client.post(
                f"/merchant/products/{theirs.slug}/server/{action}", data={"csrf_token": token}
            ).status_code
            == 404
        )
    assert reload(theirs).remote_secret_ciphertext is None and server.requests == []

    mine = server_product()
    secret_before = reload(mine).remote_secret_ciphertext
    assert merchant_client.post(f"/merchant/products/{mine.slug}/server/secret").status_code == 400
    assert merchant_client.post(f"/merchant/products/{mine.slug}/server/test").status_code == 400
    assert reload(mine).remote_secret_ciphertext == secret_before and server.requests == []


# -- the documented example server ----------------------------------------------------------


def example_server_code() -> str:
    text = DOCS.read_text(encoding="utf-8")
    section = text.split("## A minimal server", 1)[1]
    return re.search(r"```python\n(.*?)```", section, re.S).group(1)


@pytest.fixture
def example_server(tmp_path):
    """The example server of docs/dynamic-delivery.md, run as written, on a free port."""
    code = tmp_path / "delivery_server.py"
    code.write_text(example_server_code(), encoding="utf-8")
    port, secret = free_port(), "ddsec_" + "ab" * 32
    env = {**os.environ, "FAKA_DELIVERY_SECRET": secret, "HOST": "127.0.0.1", "PORT": str(port)}
    process = subprocess.Popen([sys.executable, str(code)], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 10
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            break
        except OSError:
            assert process.poll() is None, process.stderr.read().decode()
            assert time.monotonic() < deadline, "the example server did not start"
            time.sleep(0.05)
    yield f"http://127.0.0.1:{port}/", secret
    process.terminate()
    process.wait(timeout=10)


def test_the_documented_example_server_delivers_and_answers_a_retry_with_the_same_keys(
    app, example_server, make_product, merchant, place, pay
):
    url, secret = example_server
    product = make_product(keys=0, delivery_type=DELIVERY_REMOTE, remote_url=url)
    product.remote_secret_ciphertext = vault().encrypt(secret)
    db.session.commit()
    order = place(product, quantity=2)
    pay(order)

    order = reload(order)
    keys = key_texts(order)
    assert order.status == Order.DELIVERED
    assert len(keys) == 2 and all(re.fullmatch(r"LIC-[0-9A-F]{16}", k) for k in keys) and keys[0] != keys[1]
    # A retry (same id) gets the same keys again; a test request gets test keys.
    body = remote_delivery.encode(remote_delivery.order_request(order))
    assert remote_delivery.ask(url, secret, body, 2).keys == keys
    with app.test_request_context():
        assert remote_delivery.send_test(merchant.id, product.slug).keys == ["TEST-1"]
    # The wrong secret is refused.
    refused = remote_delivery.ask(url, "ddsec_wrong", body, 2)
    assert refused.status_code == 401 and refused.keys is None
