"""USDT-TRC20 through an epusdt-compatible service: callbacks verified to the letter, and the
create-transaction call over real HTTP against a local fake epusdt (pytest-httpserver).

Every signature here is computed by the test itself from the documented algorithm: the non-empty
parameters but signature, sorted, joined k=v&k=v, followed by the API token, MD5 in lower-case hex;
JSON numbers enter as epusdt (Go) prints them.
"""

import hashlib
import json
import re
import secrets

import pytest
from flask import current_app

from conftest import assert_nothing_paid, assert_pay_page_unavailable, count, key_texts, provider_link, reload
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway, get_gateway
from faka.payments.gateways.base import CannotQuery, CannotRefund
from faka.payments.gateways.usdt import UsdtError, sign
from faka.payments.models import PaymentNotice
from faka.payments.notify import order_ref

TOKEN = "epusdt-api-token-" + "t" * 15


def go_text(value) -> str:
    """A callback value as epusdt prints it when signing (Go's shortest float format)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    text = repr(float(value))
    return text[:-2] if text.endswith(".0") else text


def signature_of(payload: dict, token: str = TOKEN) -> str:
    pairs = sorted((k, go_text(v)) for k, v in payload.items() if k != "signature" and v not in ("", None))
    return hashlib.md5(("&".join(f"{k}={v}" for k, v in pairs) + token).encode()).hexdigest()


def place_usdt(product, quantity: int = 1) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(product.slug, quantity, "buyer@example.com", "secret-1", gateway="usdt")


def callback(order, **changes) -> dict:
    """What epusdt posts once `order` is paid, signed."""
    payload = {
        "trade_id": "2022032716483805922" + str(secrets.randbelow(10**5)),
        "order_id": f"{order.number}-{secrets.token_hex(3)}",
        "amount": order.total / 100,  # epusdt sends a JSON number of yuan
        "actual_amount": 1.3812,
        "token": "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK",
        "block_transaction_id": secrets.token_hex(32),
        "status": 2,
    }
    payload.update(changes)
    payload["signature"] = signature_of(payload)
    return payload


def post(client, payload):
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return client.post("/pay/usdt/notify", data=body, content_type="application/json")


def assert_refused(response, order):
    assert response.status_code == 400 and response.text == "fail"
    assert_nothing_paid(order)


@pytest.fixture
def usdt(app, httpserver):
    configure_gateway("usdt", {"api_url": httpserver.url_for("/"), "api_token": TOKEN}, enabled=True)
    return httpserver


# -- signing ------------------------------------------------------------------------------


def test_signature_matches_published_vector():
    # The worked example in epusdt's wiki/API.md.
    fields = {
        "order_id": "20220201030210321",
        "amount": "42",
        "notify_url": "http://example.com/notify",
        "redirect_url": "http://example.com/redirect",
        "signature": "",
    }
    assert sign(fields, "epusdt_password_xasddawqe") == "1cd4b52df5587cfb1968b0c0c6e156cd"


# -- callbacks ----------------------------------------------------------------------------


def test_signed_callback_pays_and_delivers(client, product, usdt):
    order = place_usdt(product, 2)
    response = post(client, callback(order))
    assert response.status_code == 200 and response.text == "ok"
    assert reload(order).status == Order.DELIVERED
    page = client.get(f"/order/{order.token}").text
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page)
    assert sorted(shown) == sorted(key_texts(order))


def test_amounts_print_as_epusdt_prints_them(client, make_product, usdt):
    order = place_usdt(make_product(keys=1, price=2850))
    body = callback(order)  # amount 28.5, signed as "amount=28.5"
    raw = json.dumps(body).replace('"amount": 28.5', '"amount": 28.50').encode()
    assert b'"amount": 28.50' in raw
    assert post(client, raw).text == "ok"
    assert reload(order).status == Order.DELIVERED


def test_replayed_callback_delivers_once(client, product, usdt):
    order = place_usdt(product, 2)
    payload = callback(order)
    for _ in range(3):
        response = post(client, payload)
        assert response.status_code == 200 and response.text == "ok"
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda p: p.update(signature="0" * 32),
        lambda p: p.update(signature=signature_of(p, token="someone-elses-token")),
        lambda p: p.update(amount=0.01),
        lambda p: p.update(status=1),
        lambda p: p.update(order_id="20260101000000000000" + p["order_id"][-7:]),
        lambda p: p.update(extra="added-after-signing"),
        lambda p: p.pop("signature"),
        lambda p: p.update(signature="é" * 32),
    ],
    ids=[
        "forged",
        "other-token",
        "tampered-amount",
        "tampered-status",
        "tampered-order",
        "added-field",
        "unsigned",
        "non-ascii-signature",
    ],
)
def test_tampered_callback_changes_nothing(client, product, usdt, tamper):
    order = place_usdt(product)
    payload = callback(order)
    tamper(payload)
    assert_refused(post(client, payload), order)


@pytest.mark.parametrize(
    "change",
    [
        {"amount": 0.01},
        {"amount": 9999},
        {"amount": 10.001},
        {"amount": -10},
        {"order_id": "20260101000000000000-abcdef"},
        {"order_id": "not-ours"},
    ],
    ids=["amount-low", "amount-high", "three-decimals", "negative", "unknown-order", "foreign-order-id"],
)
def test_correctly_signed_but_mismatched_callback_changes_nothing(client, product, usdt, change):
    order = place_usdt(product)
    assert_refused(post(client, callback(order, **change)), order)


def test_order_number_without_attempt_suffix_is_refused(client, product, usdt):
    order = place_usdt(product)
    assert_refused(post(client, callback(order, order_id=order.number)), order)


def test_waiting_or_expired_status_changes_nothing(client, product, usdt):
    order = place_usdt(product)
    for status in (1, 3):
        response = post(client, callback(order, status=status))
        assert response.status_code == 200 and response.text == "ok"
    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0


def test_callback_for_an_order_placed_with_another_gateway_changes_nothing(client, product, place, usdt):
    order = place(product)  # the sandbox
    assert_refused(post(client, callback(order)), order)


@pytest.mark.parametrize(
    "body",
    [
        lambda order: b"",
        lambda order: b"{not json",
        lambda order: b"\xff\xfe",
        lambda order: b"[]",
        lambda order: json.dumps({k: v for k, v in callback(order).items() if k != "trade_id"}).encode(),
        lambda order: json.dumps({k: v for k, v in callback(order).items() if k != "amount"}).encode(),
        lambda order: json.dumps(callback(order, block_transaction_id="")).encode(),
        lambda order: json.dumps(callback(order, order_id=int(order.number))).encode(),
        lambda order: json.dumps(callback(order, trade_id=["x"])).encode(),
        lambda order: json.dumps(callback(order, amount=str(order.total / 100))).encode(),
        lambda order: json.dumps(callback(order, status="2")).encode(),
        lambda order: json.dumps(callback(order, status=True)).encode(),
        lambda order: json.dumps(callback(order, note={"a": 1})).encode(),
        lambda order: json.dumps(callback(order)).replace('"amount": 10.0', '"amount": 1e1').encode(),
        lambda order: json.dumps(callback(order)).replace('"actual_amount": 1.3812', '"actual_amount": NaN').encode(),
        lambda order: json.dumps(callback(order))[:-1].encode() + b', "amount": 0.01}',
        lambda order: json.dumps(callback(order, padding="x" * 70_000)).encode(),
    ],
    ids=[
        "empty",
        "invalid-json",
        "not-utf8",
        "not-object",
        "missing-trade-id",
        "missing-amount",
        "empty-block-id",
        "order-id-number",
        "trade-id-list",
        "amount-string",
        "status-string",
        "status-bool",
        "nested-object",
        "exponent",
        "nan",
        "repeated-key",
        "huge",
    ],
)
def test_malformed_callback_changes_nothing(client, product, usdt, body):
    order = place_usdt(product)
    assert_refused(post(client, body(order)), order)


def test_form_encoded_callback_is_refused(client, product, usdt):
    order = place_usdt(product)
    payload = callback(order)
    assert_refused(client.post("/pay/usdt/notify", data={k: str(v) for k, v in payload.items()}), order)


def test_unconfigured_token_refuses_even_a_token_less_signature(client, product, usdt):
    order = place_usdt(product)
    configure_gateway("usdt", {"api_token": ""})
    payload = callback(order)
    payload["signature"] = signature_of(payload, token="")
    assert_refused(post(client, payload), order)


# -- creating the transaction -------------------------------------------------------------


def epusdt_answer(request, **changes) -> dict:
    sent = json.loads(request.get_data())
    data = {
        "trade_id": "202203271648380592218340",
        "order_id": sent["order_id"],
        "amount": sent["amount"],
        "actual_amount": 1.3812,
        "token": "TNEns8t9jbWENbStkQdVQtHMGpbsYsQjZK",
        "expiration_time": 1648381192,
        "payment_url": "https://usdt.example.com/pay/checkout-counter/202203271648380592218340",
    }
    data.update(changes)
    return {"status_code": 200, "message": "success", "data": data, "request_id": "b1344d70"}


def respond(server, make):
    from werkzeug import Response

    server.expect_request("/api/v1/order/create-transaction", method="POST").respond_with_handler(
        lambda request: Response(json.dumps(make(request)), content_type="application/json")
    )


@pytest.mark.parametrize("price, amount", [(1000, 10), (1250, 12.5), (1234, 12.34), (5, 0.05)])
def test_payment_creates_a_signed_transaction_and_redirects_to_its_checkout(client, make_product, usdt, price, amount):
    order = place_usdt(make_product(keys=1, price=price))
    respond(usdt, epusdt_answer)
    assert provider_link(client, order) == "https://usdt.example.com/pay/checkout-counter/202203271648380592218340"
    request = usdt.log[0][0]
    assert request.headers["Content-Type"] == "application/json"
    sent = json.loads(request.get_data())
    assert sent["amount"] == amount and not isinstance(sent["amount"], str)
    assert re.fullmatch(rf"{order.number}-[0-9a-f]{{6}}", sent["order_id"]) and len(sent["order_id"]) <= 32
    assert sent["notify_url"] == "http://localhost/pay/usdt/notify"
    assert sent["redirect_url"] == f"http://localhost/order/{order.token}"
    assert sent["signature"] == signature_of(sent)
    assert reload(order).payment_ref == "202203271648380592218340"


def test_each_attempt_is_a_new_transaction(client, product, usdt):
    order = place_usdt(product)
    respond(usdt, epusdt_answer)
    respond(usdt, epusdt_answer)
    provider_link(client, order)
    provider_link(client, order)
    first, second = (json.loads(request.get_data())["order_id"] for request, _ in usdt.log)
    assert first != second


@pytest.mark.parametrize(
    "make",
    [
        lambda request: {"status_code": 10002, "message": "支付交易已存在，请勿重复创建", "data": None},
        lambda request: {"status_code": 401, "message": "签名认证错误"},
        lambda request: epusdt_answer(request, order_id="20260101000000000000-abcdef"),
        lambda request: epusdt_answer(request, amount=0.01),
        lambda request: epusdt_answer(request, payment_url="javascript:alert(1)"),
        lambda request: epusdt_answer(request, payment_url=None),
        lambda request: "not json",
    ],
    ids=["already-exists", "bad-signature", "other-order", "other-amount", "script-url", "no-url", "not-json"],
)
def test_refused_or_foreign_answers_raise(app, product, usdt, make):
    order = place_usdt(product)
    respond(usdt, make)
    with app.test_request_context(), pytest.raises(UsdtError):
        get_gateway("usdt").create_payment(order_ref(order))


def test_buyer_is_offered_another_way_when_epusdt_cannot_take_the_payment(client, product, usdt):
    order = place_usdt(product)
    respond(usdt, lambda request: {"status_code": 10003, "message": "无可用钱包地址，无法发起支付", "data": None})
    assert_pay_page_unavailable(client, order)


def test_answer_with_amount_as_string_is_accepted(app, make_product, usdt):
    # BEpusdt answers the amount as a string.
    order = place_usdt(make_product(keys=1, price=2888))
    respond(usdt, lambda request: epusdt_answer(request, amount="28.88"))
    with app.test_request_context():
        assert get_gateway("usdt").create_payment(order_ref(order)).redirect_url.startswith("https://")


@pytest.mark.parametrize("settings", [{"api_url": ""}, {"api_token": ""}], ids=["no-url", "no-token"])
def test_misconfigured_gateway_cannot_start_a_payment(client, product, usdt, settings):
    order = place_usdt(product)
    configure_gateway("usdt", settings)
    assert_pay_page_unavailable(client, order)


def test_orders_in_another_currency_are_not_sent(client, product, usdt):
    order = place_usdt(product)
    order.currency = "USD"
    db.session.commit()
    assert_pay_page_unavailable(client, order)


def test_no_query_and_no_refund(app, product, usdt):
    order = place_usdt(product)
    gateway = get_gateway("usdt")
    with app.test_request_context(), pytest.raises(CannotQuery):
        gateway.query(order_ref(order))
    with pytest.raises(CannotRefund):
        gateway.refund(order.number, "202203271648380592218340", order.total, "R1")
