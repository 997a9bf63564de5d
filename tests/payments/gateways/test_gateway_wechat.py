"""WeChat Pay API v3 Native: notifications verified to the letter, and the outbound API
over real HTTP against a fake WeChat Pay.

Every signature and ciphertext here is made by the test itself from WeChat Pay's
documentation (SHA256withRSA over "timestamp\\nnonce\\nbody\\n" with the platform key,
requests signed over "METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n" with the merchant key,
AES-256-GCM with the APIv3 key), never by calling the gateway under test.
"""

import base64
import json
import re
import secrets
import time
import traceback
from dataclasses import replace
from urllib.parse import parse_qs, parse_qsl, quote, urlsplit

import pytest
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import current_app
from werkzeug import Response

from conftest import assert_nothing_paid, count, free_port, key_texts, reload
from faka.core.errors import InvalidNotify
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway, get_gateway
from faka.payments.gateways.base import CannotRefund
from faka.payments.gateways.clients import ALIPAY, DESKTOP, PHONE, QQ, WECHAT, WEIBO
from faka.payments.gateways.wechat import WechatGateway, WechatPayError
from faka.payments.models import PaymentNotice
from faka.payments.notify import order_ref

MCHID = "1900009191"
APPID = "wxd678efh567hg6787"
MERCHANT_SERIAL = "3775B6A45ACD588826D15E583A95F5DD12345678"
PLATFORM_SERIAL = "PUB_KEY_ID_0119000091912025010100000000000001"
APIV3_KEY = "0123456789abcdefghijklmnopqrstuv"  # 32 characters, as the console demands
NOTIFY = "/pay/wechat/notify"
FAIL = {"code": "FAIL", "message": "notification rejected"}


def _pem_private(key) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def _pem_public(key) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


@pytest.fixture(scope="module")
def keys():
    """The merchant's API key pair and WeChat Pay's platform key pair (plus a stranger's)."""
    make = lambda: rsa.generate_private_key(public_exponent=65537, key_size=2048)  # noqa: E731
    return {"merchant": make(), "platform": make(), "stranger": make()}


@pytest.fixture
def wechat(app, keys, httpserver):
    configure_gateway(
        "wechat",
        {
            "mchid": MCHID,
            "appid": APPID,
            "merchant_serial_no": MERCHANT_SERIAL,
            "merchant_private_key": _pem_private(keys["merchant"]),
            "apiv3_key": APIV3_KEY,
            "platform_public_key": _pem_public(keys["platform"]),
            "platform_serial": PLATFORM_SERIAL,
            "api_base": httpserver.url_for("/"),
        },
        enabled=True,
    )
    return get_gateway("wechat")


@pytest.fixture
def place_wechat(app, wechat):
    def place(product, quantity=1):
        with current_app.test_request_context():
            return checkout.place_order(product.slug, quantity, "buyer@example.com", "secret-1", gateway="wechat")

    return place


# -- WeChat Pay's side, from its documentation ----------------------------------------------


def platform_signature(key, timestamp: str, nonce: str, body: bytes) -> str:
    message = f"{timestamp}\n{nonce}\n".encode() + body + b"\n"
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def signed_headers(keys, body: bytes, *, age=0, serial=PLATFORM_SERIAL, signer="platform") -> dict:
    timestamp = str(int(time.time()) - age)
    nonce = secrets.token_hex(16)
    return {
        "Wechatpay-Serial": serial,
        "Wechatpay-Timestamp": timestamp,
        "Wechatpay-Nonce": nonce,
        "Wechatpay-Signature": platform_signature(keys[signer], timestamp, nonce, body),
        "Wechatpay-Signature-Type": "WECHATPAY2-SHA256-RSA2048",
    }


def transaction(order, **changes) -> dict:
    value = {
        "mchid": MCHID,
        "appid": APPID,
        "out_trade_no": order.number,
        "transaction_id": "4200000" + secrets.token_hex(10),
        "trade_type": "NATIVE",
        "trade_state": "SUCCESS",
        "trade_state_desc": "支付成功",
        "bank_type": "OTHERS",
        "success_time": "2026-01-01T10:00:00+08:00",
        "payer": {"openid": "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"},
        "amount": {"total": order.total, "payer_total": order.total, "currency": "CNY", "payer_currency": "CNY"},
    }
    value.update(changes)
    return value


def encrypted_event(plain: bytes, *, key=APIV3_KEY, associated_data="transaction", **changes) -> dict:
    nonce = secrets.token_hex(6)  # WeChat Pay's resource nonces are 12 characters
    ciphertext = AESGCM(key.encode()).encrypt(nonce.encode(), plain, associated_data.encode())
    event = {
        "id": "EV-" + secrets.token_hex(8),
        "create_time": "2026-01-01T10:00:01+08:00",
        "resource_type": "encrypt-resource",
        "event_type": "TRANSACTION.SUCCESS",
        "summary": "支付成功",
        "resource": {
            "original_type": "transaction",
            "algorithm": "AEAD_AES_256_GCM",
            "ciphertext": base64.b64encode(ciphertext).decode(),
            "associated_data": associated_data,
            "nonce": nonce,
        },
    }
    event.update(changes)
    return event


def notification(keys, order, *, header_changes=None, event_changes=None, **transaction_changes):
    """The body and headers WeChat Pay would send for the order's payment."""
    plain = json.dumps(transaction(order, **transaction_changes), ensure_ascii=False).encode()
    body = json.dumps(encrypted_event(plain, **(event_changes or {})), ensure_ascii=False).encode()
    return body, signed_headers(keys, body, **(header_changes or {}))


def post(client, body: bytes, headers: dict):
    return client.post(NOTIFY, data=body, headers=headers, content_type="application/json")


def assert_refused(response, order):
    assert response.status_code == 400
    assert response.is_json and response.get_json() == FAIL
    assert_nothing_paid(order)


# -- notifications --------------------------------------------------------------------------


def test_signed_notify_pays_and_delivers(client, keys, product, place_wechat):
    order = place_wechat(product, 2)
    response = post(client, *notification(keys, order))
    assert response.status_code == 204 and response.data == b""
    assert reload(order).status == Order.DELIVERED
    page = client.get(f"/order/{order.token}")
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page.text)
    assert sorted(shown) == sorted(key_texts(order)) and len(shown) == 2


def test_replayed_notify_delivers_once(client, keys, product, place_wechat):
    order = place_wechat(product, 2)
    body, headers = notification(keys, order)
    for _ in range(3):
        response = post(client, body, headers)
        assert response.status_code == 204 and response.data == b""
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2


@pytest.mark.parametrize(
    "change",
    [
        {"header_changes": {"signer": "stranger"}},
        {"header_changes": {"serial": "PUB_KEY_ID_0000000000000000000000000000000000"}},
        {"header_changes": {"age": 302}},
        {"header_changes": {"age": -302}},
        {"amount": {"total": 1, "payer_total": 1, "currency": "CNY", "payer_currency": "CNY"}},
        {"amount": {"total": 1000, "payer_total": 1000, "currency": "USD", "payer_currency": "USD"}},
        {"mchid": "1900000001"},
        {"appid": "wx0000000000000000"},
        {"trade_state": "NOTPAY"},
        {"out_trade_no": "20260101000000000000"},
        {"event_changes": {"key": "vutsrqponmlkjihgfedcba9876543210"}},
        {"event_changes": {"event_type": "REFUND.SUCCESS"}},
    ],
    ids=[
        "forged-signature",
        "unknown-serial",
        "stale-timestamp",
        "future-timestamp",
        "tampered-amount",
        "wrong-currency",
        "wrong-mchid",
        "wrong-appid",
        "not-paid",
        "unknown-order",
        "wrong-apiv3-key",
        "other-event-type",
    ],
)
def test_bad_notify_changes_nothing(client, keys, product, place_wechat, change):
    order = place_wechat(product)
    assert_refused(post(client, *notification(keys, order, **change)), order)


def test_body_changed_after_signing_is_refused(client, keys, product, place_wechat):
    order = place_wechat(product)
    body, headers = notification(keys, order)
    forged_body, _ = notification(keys, order, amount={"total": 1, "currency": "CNY"})
    assert_refused(post(client, forged_body, headers), order)
    assert_refused(post(client, body.replace(b"}", b" }", 1), headers), order)


def test_resource_with_tampered_associated_data_is_refused(client, keys, product, place_wechat):
    order = place_wechat(product)
    event = encrypted_event(json.dumps(transaction(order)).encode())
    event["resource"]["associated_data"] = "certificate"
    body = json.dumps(event).encode()
    assert_refused(post(client, body, signed_headers(keys, body)), order)


def test_notify_for_an_order_placed_with_another_gateway_is_refused(client, keys, product, place, wechat):
    order = place(product)  # a sandbox order
    assert_refused(post(client, *notification(keys, order)), order)


def _signed(keys, body: bytes):
    return body, signed_headers(keys, body)


def _event_with_plain(keys, plain: bytes, **changes):
    return _signed(keys, json.dumps(encrypted_event(plain, **changes)).encode())


@pytest.mark.parametrize(
    "make",
    [
        lambda keys, order: (b"{}", {}),  # no signature headers at all
        lambda keys, order: _signed(keys, b"not json"),
        lambda keys, order: _signed(keys, b"[1, 2, 3]"),
        lambda keys, order: _signed(
            keys, json.dumps({"event_type": "TRANSACTION.SUCCESS", "resource_type": "encrypt-resource"}).encode()
        ),
        lambda keys, order: _signed(keys, json.dumps({**encrypted_event(b"{}"), "resource": "text"}).encode()),
        lambda keys, order: _signed(
            keys, json.dumps(encrypted_event(b"{}")).encode().replace(b'"ciphertext": "', b'"ciphertext": "%%')
        ),
        lambda keys, order: _event_with_plain(keys, b"not json"),
        lambda keys, order: _event_with_plain(
            keys, json.dumps(transaction(order, amount={"total": str(order.total), "currency": "CNY"})).encode()
        ),
        lambda keys, order: _event_with_plain(keys, json.dumps(transaction(order, amount=order.total)).encode()),
        lambda keys, order: _event_with_plain(
            keys, json.dumps(transaction(order, amount={"total": True, "currency": "CNY"})).encode()
        ),
        lambda keys, order: _event_with_plain(keys, json.dumps(transaction(order, transaction_id=42)).encode()),
        lambda keys, order: _event_with_plain(keys, json.dumps(transaction(order, out_trade_no=None)).encode()),
        lambda keys, order: _event_with_plain(
            keys, json.dumps({k: v for k, v in transaction(order).items() if k != "amount"}).encode()
        ),
        lambda keys, order: _signed(
            keys,
            json.dumps({**encrypted_event(json.dumps(transaction(order)).encode()), "padding": "x" * 70_000}).encode(),
        ),
    ],
    ids=[
        "no-headers",
        "invalid-json",
        "json-list",
        "no-resource",
        "resource-not-object",
        "ciphertext-not-base64",
        "plain-not-json",
        "amount-as-string",
        "amount-not-object",
        "amount-as-bool",
        "transaction-id-number",
        "no-order-number",
        "no-amount",
        "huge-body",
    ],
)
def test_malformed_notify_changes_nothing(client, keys, product, place_wechat, make):
    order = place_wechat(product)
    assert_refused(post(client, *make(keys, order)), order)


def test_failure_answer_needs_no_settings():
    answer = WechatGateway({}).answer(False)
    assert answer.status == 400 and json.loads(answer.body) == FAIL and answer.content_type == "application/json"


# -- the API, over HTTP ---------------------------------------------------------------------


def signed_response(keys, payload, status=200, signer="platform", serial=PLATFORM_SERIAL) -> Response:
    body = json.dumps(payload).encode()
    return Response(
        body,
        status=status,
        content_type="application/json",
        headers=signed_headers(keys, body, signer=signer, serial=serial),
    )


AUTHORIZATION = re.compile(
    r'^WECHATPAY2-SHA256-RSA2048 mchid="(?P<mchid>[^"]+)",nonce_str="(?P<nonce>[^"]+)",'
    r'signature="(?P<signature>[^"]+)",timestamp="(?P<timestamp>\d+)",'
    r'serial_no="(?P<serial>[^"]+)"$'
)


def assert_signed_by_merchant(keys, request):
    """The request carries a valid merchant signature, checked as WeChat Pay checks it."""
    match = AUTHORIZATION.match(request.headers["Authorization"])
    assert match, request.headers["Authorization"]
    assert match["mchid"] == MCHID and match["serial"] == MERCHANT_SERIAL
    assert abs(int(match["timestamp"]) - time.time()) < 60
    url = request.path + (f"?{request.query_string.decode()}" if request.query_string else "")
    message = f"{request.method}\n{url}\n{match['timestamp']}\n{match['nonce']}\n".encode() + request.get_data() + b"\n"
    try:
        keys["merchant"].public_key().verify(
            base64.b64decode(match["signature"]), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        pytest.fail("request signature does not verify with the merchant public key")


def ref(order):
    with current_app.test_request_context():
        return order_ref(order)


def test_create_payment_sends_a_signed_native_order_and_returns_the_code_url(
    keys, product, place_wechat, wechat, httpserver
):
    order = place_wechat(product, 2)
    code_url = "weixin://wxpay/bizpayurl?pr=" + secrets.token_urlsafe(8)
    httpserver.expect_request("/v3/pay/transactions/native", method="POST").respond_with_response(
        signed_response(keys, {"code_url": code_url})
    )
    start = wechat.create_payment(ref(order))
    assert start.qr_text == code_url and start.redirect_url is None
    ((request, _),) = httpserver.log
    assert_signed_by_merchant(keys, request)
    sent = json.loads(request.get_data())
    assert sent["appid"] == APPID and sent["mchid"] == MCHID and sent["out_trade_no"] == order.number
    assert sent["amount"] == {"total": order.total, "currency": "CNY"}
    assert sent["notify_url"] == "http://localhost/pay/wechat/notify"
    assert sent["description"] == "Test product"
    assert sent["time_expire"].endswith("+00:00")


@pytest.mark.parametrize(
    "answer",
    [
        lambda keys: signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=x"}, signer="stranger"),
        lambda keys: signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=x"}, serial="OTHER"),
        lambda keys: Response(
            json.dumps({"code_url": "weixin://wxpay/bizpayurl?pr=x"}), content_type="application/json"
        ),
        lambda keys: signed_response(keys, {"code": "PARAM_ERROR", "message": "bad"}, status=400),
        lambda keys: signed_response(keys, {"prepay_id": "x"}),
    ],
    ids=["forged-answer", "unknown-serial", "unsigned-answer", "refused", "no-code-url"],
)
def test_create_payment_refuses_an_untrusted_or_failed_answer(keys, product, place_wechat, wechat, httpserver, answer):
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/native", method="POST").respond_with_response(answer(keys))
    with pytest.raises(WechatPayError):
        wechat.create_payment(ref(order))


def _expect_query(httpserver, order, response):
    httpserver.expect_request(
        f"/v3/pay/transactions/out-trade-no/{order.number}", method="GET", query_string={"mchid": MCHID}
    ).respond_with_response(response)


def test_query_finds_a_paid_order(keys, product, place_wechat, wechat, httpserver):
    order = place_wechat(product)
    paid = transaction(order)
    _expect_query(httpserver, order, signed_response(keys, paid))
    notice = wechat.query(ref(order))
    assert (notice.order_number, notice.trade_no, notice.amount, notice.currency, notice.paid) == (
        order.number,
        paid["transaction_id"],
        order.total,
        "CNY",
        True,
    )
    ((request, _),) = httpserver.log
    assert request.get_data() == b""
    assert_signed_by_merchant(keys, request)


@pytest.mark.parametrize(
    "response",
    [
        lambda keys, order: signed_response(
            keys,
            {
                k: v
                for k, v in transaction(order, trade_state="NOTPAY").items()
                if k not in ("transaction_id", "payer", "success_time")
            },
        ),
        lambda keys, order: signed_response(keys, {"code": "ORDER_NOT_EXIST", "message": "订单不存在"}, status=404),
    ],
    ids=["not-paid", "never-created"],
)
def test_query_of_an_unpaid_order_is_none(keys, product, place_wechat, wechat, httpserver, response):
    order = place_wechat(product)
    _expect_query(httpserver, order, response(keys, order))
    assert wechat.query(ref(order)) is None


@pytest.mark.parametrize(
    "response, error",
    [
        (
            lambda keys, order: signed_response(keys, {"code": "SYSTEM_ERROR", "message": "系统错误"}, status=500),
            WechatPayError,
        ),
        (lambda keys, order: signed_response(keys, transaction(order), signer="stranger"), WechatPayError),
        (lambda keys, order: signed_response(keys, transaction(order, mchid="1900000001")), InvalidNotify),
        (lambda keys, order: signed_response(keys, transaction(order, appid="wx0000000000000000")), InvalidNotify),
        (
            lambda keys, order: signed_response(keys, transaction(order, amount={"total": 1, "currency": "CNY"})),
            InvalidNotify,
        ),
        (
            lambda keys, order: signed_response(keys, transaction(order, out_trade_no="20260101000000000000")),
            InvalidNotify,
        ),
    ],
    ids=["provider-error", "forged-answer", "wrong-mchid", "wrong-appid", "wrong-amount", "other-order"],
)
def test_query_refuses_errors_and_answers_that_are_not_ours(
    keys, product, place_wechat, wechat, httpserver, response, error
):
    order = place_wechat(product)
    _expect_query(httpserver, order, response(keys, order))
    with pytest.raises(error):
        wechat.query(ref(order))


def test_refund_sends_a_signed_refund_for_the_paid_transaction(keys, product, place_wechat, wechat, httpserver):
    order = place_wechat(product, 2)
    paid = transaction(order)
    _expect_query(httpserver, order, signed_response(keys, paid))
    httpserver.expect_request("/v3/refund/domestic/refunds", method="POST").respond_with_response(
        signed_response(
            keys,
            {
                "refund_id": "50000000382019052709732678859",
                "out_refund_no": "R7",
                "status": "PROCESSING",
                "transaction_id": paid["transaction_id"],
                "out_trade_no": order.number,
                "amount": {"refund": 500, "total": order.total, "currency": "CNY"},
            },
        )
    )
    reference = wechat.refund(order.number, paid["transaction_id"], 500, "R7")
    assert reference == "50000000382019052709732678859"
    (_, _), (request, _) = httpserver.log
    assert request.path == "/v3/refund/domestic/refunds"
    assert_signed_by_merchant(keys, request)
    assert json.loads(request.get_data()) == {
        "transaction_id": paid["transaction_id"],
        "out_refund_no": "R7",
        "amount": {"refund": 500, "total": order.total, "currency": "CNY"},
    }


@pytest.mark.parametrize(
    "refund_answer, error",
    [
        (
            lambda keys: signed_response(keys, {"code": "INVALID_REQUEST", "message": "订单已全额退款"}, status=400),
            CannotRefund,
        ),
        (lambda keys: signed_response(keys, {"code": "NOT_ENOUGH", "message": "余额不足"}, status=403), WechatPayError),
        (
            lambda keys: signed_response(keys, {"code": "SYSTEM_ERROR", "message": "系统超时"}, status=500),
            WechatPayError,
        ),
        (
            lambda keys: signed_response(keys, {"refund_id": "5000", "out_refund_no": "R7", "status": "ABNORMAL"}),
            CannotRefund,
        ),
        (
            lambda keys: signed_response(
                keys, {"refund_id": "5000", "out_refund_no": "R7", "status": "SUCCESS"}, signer="stranger"
            ),
            WechatPayError,
        ),
    ],
    ids=["refused", "no-balance-yet", "provider-error", "abnormal", "forged-answer"],
)
def test_refund_failures(keys, product, place_wechat, wechat, httpserver, refund_answer, error):
    order = place_wechat(product)
    paid = transaction(order)
    _expect_query(httpserver, order, signed_response(keys, paid))
    httpserver.expect_request("/v3/refund/domestic/refunds", method="POST").respond_with_response(refund_answer(keys))
    with pytest.raises(error):
        wechat.refund(order.number, paid["transaction_id"], order.total, "R7")


def test_refund_of_a_payment_wechat_pay_does_not_know_is_refused(keys, product, place_wechat, wechat, httpserver):
    order = place_wechat(product)
    _expect_query(httpserver, order, signed_response(keys, transaction(order)))
    with pytest.raises(CannotRefund):
        wechat.refund(order.number, "4200000000000000000000000000", order.total, "R7")
    assert len(httpserver.log) == 1  # no refund was asked for


def test_keys_pasted_into_one_line_fields_still_work(client, keys, product, place_wechat, httpserver):
    # The console's inputs drop line breaks, and the WeChat Pay public key is often copied without its armour.
    public_body = "".join(_pem_public(keys["platform"]).splitlines()[1:-1])
    configure_gateway(
        "wechat",
        {"merchant_private_key": _pem_private(keys["merchant"]).replace("\n", ""), "platform_public_key": public_body},
    )
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/native", method="POST").respond_with_response(
        signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=one-line"})
    )
    assert get_gateway("wechat").create_payment(ref(order)).qr_text == "weixin://wxpay/bizpayurl?pr=one-line"
    ((request, _),) = httpserver.log
    assert_signed_by_merchant(keys, request)
    assert post(client, *notification(keys, order)).status_code == 204
    assert reload(order).status == Order.DELIVERED


# -- where the buyer is: H5 in phone browsers, JSAPI inside WeChat ----------------------------

MP_SECRET = "0f1e2d3c4b5a69788796a5b4c3d2e1f0"  # the official account's AppSecret: 32 hex characters
OPENID = "oUpF8uMuAJO_M2pxb1Q9zNjWeS6o"
BUYER_IP = "203.0.113.7"
H5_URL = (
    "https://wx.tenpay.com/cgi-bin/mmpayweb-bin/checkmweb?prepay_id=wx20161110163838f231619da20804912345"
    "&package=1037687096"
)
PREPAY_ID = "wx201410272009395522657a690389285100"
CALLBACK = "https://shop.example.com/pay/3f2a9c/payer"


@pytest.fixture
def wechat_everywhere(wechat, httpserver):
    """WeChat Pay with Native, H5 and JSAPI activated, and the official account's OAuth
    exchange answered by the fake provider."""
    configure_gateway(
        "wechat", {"methods": "native,h5,jsapi", "mp_secret": MP_SECRET, "sns_base": httpserver.url_for("/")}
    )
    return get_gateway("wechat")


def test_phone_browser_pays_with_h5_and_comes_back_to_the_order_page(
    keys, product, place_wechat, wechat_everywhere, httpserver
):
    order = place_wechat(product, 2)
    httpserver.expect_request("/v3/pay/transactions/h5", method="POST").respond_with_response(
        signed_response(keys, {"h5_url": H5_URL})
    )
    start = wechat_everywhere.create_payment(replace(ref(order), client=PHONE, client_ip=BUYER_IP))
    order_page = f"http://localhost/order/{order.token}"
    assert start.method == "h5" and start.qr_text is None and start.jsapi is None
    assert start.redirect_url == H5_URL + "&redirect_url=" + quote(order_page, safe="")
    query = parse_qs(urlsplit(start.redirect_url).query)
    assert query["redirect_url"] == [order_page] and query["prepay_id"] == ["wx20161110163838f231619da20804912345"]
    ((request, _),) = httpserver.log
    assert_signed_by_merchant(keys, request)
    sent = json.loads(request.get_data())
    assert sent["scene_info"] == {"payer_client_ip": BUYER_IP, "h5_info": {"type": "Wap"}}
    assert sent["appid"] == APPID and sent["mchid"] == MCHID and sent["out_trade_no"] == order.number
    assert sent["amount"] == {"total": order.total, "currency": "CNY"}
    assert sent["notify_url"] == "http://localhost/pay/wechat/notify" and "payer" not in sent


def test_h5_needs_the_buyers_ip(product, place_wechat, wechat_everywhere, httpserver):
    order = place_wechat(product)
    with pytest.raises(WechatPayError, match="IP"):
        wechat_everywhere.create_payment(replace(ref(order), client=PHONE, client_ip=None))
    assert len(httpserver.log) == 0


@pytest.mark.parametrize(
    "answer",
    [
        lambda keys: signed_response(keys, {"h5_url": H5_URL}, signer="stranger"),
        lambda keys: Response(json.dumps({"h5_url": H5_URL}), content_type="application/json"),
        lambda keys: signed_response(keys, {"code": "NO_AUTH", "message": "商户号该产品权限未开通"}, status=403),
        lambda keys: signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=x"}),
        lambda keys: signed_response(keys, {"h5_url": "javascript:alert(1)"}),
    ],
    ids=["forged-answer", "unsigned-answer", "not-activated", "no-h5-url", "not-a-web-address"],
)
def test_h5_refuses_an_untrusted_or_failed_answer(keys, product, place_wechat, wechat_everywhere, httpserver, answer):
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/h5", method="POST").respond_with_response(answer(keys))
    with pytest.raises(WechatPayError):
        wechat_everywhere.create_payment(replace(ref(order), client=PHONE, client_ip=BUYER_IP))


def test_phone_browser_gets_the_native_qr_code_without_h5(keys, product, place_wechat, wechat, httpserver):
    configure_gateway("wechat", {"methods": "native,jsapi"})
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/native", method="POST").respond_with_response(
        signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=phone"})
    )
    start = get_gateway("wechat").create_payment(replace(ref(order), client=PHONE, client_ip=BUYER_IP))
    assert (start.method, start.qr_text, start.redirect_url) == ("native", "weixin://wxpay/bizpayurl?pr=phone", None)


def test_desktop_still_gets_the_native_qr_code(keys, product, place_wechat, wechat_everywhere, httpserver):
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/native", method="POST").respond_with_response(
        signed_response(keys, {"code_url": "weixin://wxpay/bizpayurl?pr=desk"})
    )
    start = wechat_everywhere.create_payment(replace(ref(order), client=DESKTOP, client_ip=BUYER_IP))
    assert (start.method, start.qr_text) == ("native", "weixin://wxpay/bizpayurl?pr=desk")
    ((request, _),) = httpserver.log
    assert json.loads(request.get_data())["scene_info"] == {"payer_client_ip": BUYER_IP}


# JSAPI, step 1: the official account's silent OAuth tells us the buyer's openid.


def test_wechat_buyer_is_sent_to_the_official_accounts_silent_sign_in(product, place_wechat, wechat_everywhere):
    order = place_wechat(product)
    url = wechat_everywhere.payer_sign_in_url(replace(ref(order), client=WECHAT), CALLBACK, "s7Tq2")
    parts = urlsplit(url)
    assert (parts.scheme, parts.netloc, parts.path) == ("https", "open.weixin.qq.com", "/connect/oauth2/authorize")
    assert parts.fragment == "wechat_redirect"
    # WeChat reads the parameters in its documented order, the callback url-encoded.
    assert parse_qsl(parts.query) == [
        ("appid", APPID),
        ("redirect_uri", CALLBACK),
        ("response_type", "code"),
        ("scope", "snsapi_base"),
        ("state", "s7Tq2"),
    ]
    assert f"redirect_uri={quote(CALLBACK, safe='')}&" in parts.query


def test_oauth_base_setting_moves_the_sign_in_page(product, place_wechat, wechat_everywhere):
    configure_gateway("wechat", {"oauth_base": "https://oauth.example.net/"})
    order = place_wechat(product)
    url = get_gateway("wechat").payer_sign_in_url(replace(ref(order), client=WECHAT), CALLBACK, "s")
    assert url.startswith("https://oauth.example.net/connect/oauth2/authorize?appid=")


@pytest.mark.parametrize(
    "client, payer, methods",
    [
        (WECHAT, OPENID, "native,h5,jsapi"),
        (PHONE, None, "native,h5,jsapi"),
        (DESKTOP, None, "native,h5,jsapi"),
        (WECHAT, None, "native,h5"),
    ],
    ids=["openid-known", "phone-browser", "desktop", "jsapi-not-enabled"],
)
def test_no_sign_in_where_jsapi_is_not_used_or_the_buyer_is_known(
    product, place_wechat, wechat_everywhere, client, payer, methods
):
    configure_gateway("wechat", {"methods": methods})
    order = place_wechat(product)
    assert (
        get_gateway("wechat").payer_sign_in_url(replace(ref(order), client=client, payer=payer), CALLBACK, "s") is None
    )


def _expect_code_exchange(httpserver, code="061Ab2ll2Cd3Ef0Gh1Ij2Kl3Mn4Op5Qr"):
    return httpserver.expect_request(
        "/sns/oauth2/access_token",
        method="GET",
        query_string={"appid": APPID, "secret": MP_SECRET, "code": code, "grant_type": "authorization_code"},
    )


def test_the_code_is_exchanged_for_the_buyers_openid(wechat_everywhere, httpserver):
    _expect_code_exchange(httpserver).respond_with_json(
        {
            "access_token": "ACCESS_TOKEN_" + secrets.token_hex(8),
            "expires_in": 7200,
            "refresh_token": "REFRESH_TOKEN_" + secrets.token_hex(8),
            "openid": OPENID,
            "scope": "snsapi_base",
        }
    )
    openid = wechat_everywhere.payer_from_callback({"code": "061Ab2ll2Cd3Ef0Gh1Ij2Kl3Mn4Op5Qr", "state": "s"})
    assert openid == OPENID
    assert len(httpserver.log) == 1


def _unreachable(httpserver):
    configure_gateway("wechat", {"sns_base": f"http://127.0.0.1:{free_port()}"})


@pytest.mark.parametrize(
    "answer",
    [
        lambda server: _expect_code_exchange(server).respond_with_json({"errcode": 40029, "errmsg": "invalid code"}),
        lambda server: _expect_code_exchange(server).respond_with_json(
            {"errcode": 40125, "errmsg": f"invalid appsecret {MP_SECRET}, rid: 6593cd7b-4f2c1a7e"}
        ),
        lambda server: _expect_code_exchange(server).respond_with_data(
            f"upstream error for secret={MP_SECRET}", status=502
        ),
        lambda server: _expect_code_exchange(server).respond_with_json({"access_token": "T", "scope": "snsapi_base"}),
        lambda server: _expect_code_exchange(server).respond_with_json(
            {"access_token": "T", "openid": OPENID, "scope": "snsapi_userinfo", "is_snapshotuser": 1}
        ),
        lambda server: _expect_code_exchange(server).respond_with_data("<html>busy</html>", content_type="text/html"),
        _unreachable,
    ],
    ids=[
        "invalid-code",
        "wrong-secret-echoed",
        "http-error",
        "no-openid",
        "snapshot-visitor",
        "not-json",
        "unreachable",
    ],
)
def test_a_failed_code_exchange_raises_without_the_secret(wechat_everywhere, httpserver, answer):
    answer(httpserver)
    with pytest.raises(WechatPayError) as raised:
        get_gateway("wechat").payer_from_callback({"code": "061Ab2ll2Cd3Ef0Gh1Ij2Kl3Mn4Op5Qr", "state": "s"})
    # Neither the message nor the traceback a log would print holds the AppSecret.
    assert MP_SECRET not in str(raised.value)
    assert MP_SECRET not in "".join(traceback.format_exception(raised.value))


def test_a_callback_without_code_asks_nothing(wechat_everywhere, httpserver):
    with pytest.raises(WechatPayError, match="code"):
        wechat_everywhere.payer_from_callback({"state": "s"})
    assert len(httpserver.log) == 0


# JSAPI, step 2: the order, and the signed parameters of WeChat's payment sheet.


def test_wechat_buyer_pays_in_the_payment_sheet_with_signed_parameters(
    keys, product, place_wechat, wechat_everywhere, httpserver
):
    order = place_wechat(product, 2)
    httpserver.expect_request("/v3/pay/transactions/jsapi", method="POST").respond_with_response(
        signed_response(keys, {"prepay_id": PREPAY_ID})
    )
    start = wechat_everywhere.create_payment(replace(ref(order), client=WECHAT, payer=OPENID, client_ip=BUYER_IP))
    assert start.method == "jsapi" and start.redirect_url is None and start.qr_text is None
    ((request, _),) = httpserver.log
    assert_signed_by_merchant(keys, request)
    sent = json.loads(request.get_data())
    assert sent["payer"] == {"openid": OPENID}
    assert sent["appid"] == APPID and sent["mchid"] == MCHID and sent["out_trade_no"] == order.number
    assert sent["amount"] == {"total": order.total, "currency": "CNY"}

    sheet = start.jsapi
    assert set(sheet) == {"appId", "timeStamp", "nonceStr", "package", "signType", "paySign"}
    assert all(isinstance(value, str) for value in sheet.values())
    assert sheet["appId"] == APPID and sheet["package"] == f"prepay_id={PREPAY_ID}" and sheet["signType"] == "RSA"
    assert sheet["timeStamp"].isdigit() and abs(int(sheet["timeStamp"]) - time.time()) < 60
    assert 1 <= len(sheet["nonceStr"]) <= 32
    # JSAPI调起支付: SHA256withRSA over four lines, each ending in \n, with the merchant key.
    message = f"{sheet['appId']}\n{sheet['timeStamp']}\n{sheet['nonceStr']}\n{sheet['package']}\n".encode()
    try:
        keys["merchant"].public_key().verify(
            base64.b64decode(sheet["paySign"], validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except InvalidSignature:
        pytest.fail("paySign does not verify with the merchant public key")


def test_every_payment_sheet_has_its_own_nonce(keys, product, place_wechat, wechat_everywhere, httpserver):
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/jsapi", method="POST").respond_with_response(
        signed_response(keys, {"prepay_id": PREPAY_ID})
    )
    sheets = [
        wechat_everywhere.create_payment(replace(ref(order), client=WECHAT, payer=OPENID)).jsapi for _ in range(2)
    ]
    assert sheets[0]["nonceStr"] != sheets[1]["nonceStr"] and sheets[0]["paySign"] != sheets[1]["paySign"]


def test_jsapi_needs_the_buyers_openid(product, place_wechat, wechat_everywhere, httpserver):
    order = place_wechat(product)
    with pytest.raises(WechatPayError, match="openid"):
        wechat_everywhere.create_payment(replace(ref(order), client=WECHAT, payer=None))
    assert len(httpserver.log) == 0


@pytest.mark.parametrize(
    "answer",
    [
        lambda keys: signed_response(keys, {"prepay_id": PREPAY_ID}, signer="stranger"),
        lambda keys: signed_response(keys, {"prepay_id": PREPAY_ID}, serial="OTHER"),
        lambda keys: Response(json.dumps({"prepay_id": PREPAY_ID}), content_type="application/json"),
        lambda keys: signed_response(keys, {"code": "PARAM_ERROR", "message": "appid和openid不匹配"}, status=400),
        lambda keys: signed_response(keys, {"h5_url": H5_URL}),
    ],
    ids=["forged-answer", "unknown-serial", "unsigned-answer", "refused", "no-prepay-id"],
)
def test_jsapi_refuses_an_untrusted_or_failed_answer(
    keys, product, place_wechat, wechat_everywhere, httpserver, answer
):
    order = place_wechat(product)
    httpserver.expect_request("/v3/pay/transactions/jsapi", method="POST").respond_with_response(answer(keys))
    with pytest.raises(WechatPayError):
        wechat_everywhere.create_payment(replace(ref(order), client=WECHAT, payer=OPENID))


@pytest.mark.parametrize(
    "client, methods",
    [
        (QQ, "native,h5,jsapi"),
        (WEIBO, "native,h5,jsapi"),
        (ALIPAY, "native,h5,jsapi"),
        (WECHAT, "native,h5"),
        (DESKTOP, "h5,jsapi"),
    ],
    ids=["qq", "weibo", "alipay-app", "wechat-without-jsapi", "desktop-without-native"],
)
def test_wechat_pay_is_refused_where_it_cannot_work(product, place_wechat, wechat, httpserver, client, methods):
    configure_gateway("wechat", {"methods": methods, "mp_secret": MP_SECRET})
    order = place_wechat(product)
    gateway = get_gateway("wechat")
    assert gateway.method_for(client) is None
    with pytest.raises(WechatPayError):
        gateway.create_payment(replace(ref(order), client=client, payer=OPENID, client_ip=BUYER_IP))
    assert len(httpserver.log) == 0
