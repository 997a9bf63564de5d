"""易支付 / EPay: notifications verified to the letter, with MD5 and with RSA (V2), and the provider's
API (submit, query, refund) over real HTTP against a local fake provider (pytest-httpserver).

Every signature here is computed by the test itself from the documented algorithm: the non-empty
parameters but sign and sign_type, sorted, joined k=v&k=v; MD5 of that plus the key, or a
SHA256withRSA signature of it with a key pair generated here.
"""

import base64
import hashlib
import re
import secrets
import time
from dataclasses import replace
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import current_app

from conftest import (
    assert_nothing_paid,
    assert_pay_page_unavailable,
    count,
    free_port,
    key_texts,
    provider_link,
    reload,
    signed_notify,
)
from faka.core.errors import InvalidNotify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import configure_gateway, get_gateway
from faka.payments.gateways.base import CannotRefund
from faka.payments.gateways.clients import ALIPAY, DESKTOP, PHONE, QQ, WECHAT, WEIBO
from faka.payments.gateways.epay import EpayError, md5_sign
from faka.payments.models import PaymentNotice
from faka.payments.notify import order_ref

PID = "1001"
KEY = "epay-merchant-key-" + "k" * 14


def content(fields: dict) -> str:
    return "&".join(
        f"{k}={fields[k]}" for k in sorted(fields) if k not in ("sign", "sign_type") and fields[k] not in ("", None)
    )


def md5_of(fields: dict, key: str = KEY) -> str:
    return hashlib.md5((content(fields) + key).encode()).hexdigest()


def rsa_of(fields: dict, private_key) -> str:
    return base64.b64encode(private_key.sign(content(fields).encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_verifies(fields: dict, public_key) -> bool:
    try:
        public_key.verify(
            base64.b64decode(fields["sign"]), content(fields).encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except Exception:  # noqa: BLE001 - any failure means "does not verify"
        return False
    return True


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def place_epay(product, quantity: int = 1) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(product.slug, quantity, "buyer@example.com", "secret-1", gateway="epay")


def paid_notice(order, **changes) -> dict:
    """What the provider sends when `order` is paid (before signing)."""
    fields = {
        "pid": PID,
        "trade_no": "2024" + secrets.token_hex(8),
        "out_trade_no": order.number,
        "type": "alipay",
        "name": "Test product",
        "money": yuan(order.total),
        "trade_status": "TRADE_SUCCESS",
        "param": "",
    }
    fields.update(changes)
    return fields


def md5_notice(order, **changes) -> dict:
    fields = paid_notice(order, **changes)
    fields["sign"], fields["sign_type"] = md5_of(fields), "MD5"
    return fields


def rsa_notice(order, private_key, timestamp=None, **changes) -> dict:
    fields = paid_notice(order, timestamp=str(int(time.time()) if timestamp is None else timestamp), **changes)
    fields["sign"], fields["sign_type"] = rsa_of(fields, private_key), "RSA"
    return fields


def assert_refused(response, order):
    assert response.status_code == 400 and response.text == "fail"
    assert_nothing_paid(order)


@pytest.fixture
def md5_epay(app, httpserver):
    configure_gateway(
        "epay", {"api_url": httpserver.url_for("/"), "pid": PID, "key": KEY, "sign_type": "MD5"}, enabled=True
    )
    return httpserver


@pytest.fixture(scope="module")
def platform_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture(scope="module")
def merchant_key():
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


@pytest.fixture
def rsa_epay(app, httpserver, platform_key, merchant_key):
    # The console shows the merchant key as bare base64; the platform key is pasted as PEM here.
    bare_private = base64.b64encode(
        merchant_key.private_bytes(
            serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    ).decode()
    platform_pem = (
        platform_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    configure_gateway(
        "epay",
        {
            "api_url": httpserver.url_for("/"),
            "pid": PID,
            "sign_type": "RSA",
            "merchant_private_key": bare_private,
            "platform_public_key": platform_pem,
        },
        enabled=True,
    )
    return httpserver


# -- signing ------------------------------------------------------------------------------


def test_md5_signature_matches_published_vector():
    # The worked example of an EPay-compatible interface's documentation (GMWalletApp/epusdt wiki/API.md).
    fields = {
        "money": "100",
        "name": "VIP",
        "notify_url": "https://merchant.example/notify",
        "out_trade_no": "ORD202605230001",
        "pid": "1000",
        "return_url": "https://merchant.example/return",
        "type": "alipay",
        "sign_type": "MD5",
        "param": "",
    }
    assert md5_sign(fields, "epusdt_secret_key") == "b865b0acbb2b01554c35a1bd33351452"


# -- MD5 notifications --------------------------------------------------------------------


def test_signed_notify_pays_and_delivers(client, product, md5_epay):
    order = place_epay(product, 2)
    response = client.post("/pay/epay/notify", data=md5_notice(order))
    assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    page = client.get(f"/order/{order.token}").text
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page)
    assert sorted(shown) == sorted(key_texts(order))


def test_notify_by_get_as_the_provider_sends_it(client, product, md5_epay):
    order = place_epay(product)
    response = client.get("/pay/epay/notify", query_string=md5_notice(order))
    assert response.status_code == 200 and response.get_data(as_text=True) == "success"
    assert reload(order).status == Order.DELIVERED


def test_replayed_notify_delivers_once(client, product, md5_epay):
    order = place_epay(product, 2)
    fields = md5_notice(order)
    for _ in range(3):
        response = client.post("/pay/epay/notify", data=fields)
        assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 2


@pytest.mark.parametrize(
    "tamper",
    [
        lambda f: f.update(sign="0" * 32),
        lambda f: f.update(sign=md5_of(f, key="someone-elses-key")),
        lambda f: f.update(money="0.01"),
        lambda f: f.update(out_trade_no="20260101000000000000"),
        lambda f: f.update(extra="added-after-signing"),
        lambda f: f.pop("sign"),
        lambda f: f.update(sign_type="RSA"),
        lambda f: f.update(sign="é" * 32),
    ],
    ids=[
        "forged",
        "other-key",
        "tampered-money",
        "tampered-order",
        "added-field",
        "unsigned",
        "sign-type",
        "non-ascii-sign",
    ],
)
def test_tampered_notify_changes_nothing(client, product, md5_epay, tamper):
    order = place_epay(product)
    fields = md5_notice(order)
    tamper(fields)
    assert_refused(client.post("/pay/epay/notify", data=fields), order)


@pytest.mark.parametrize(
    "change",
    [
        {"money": "0.01"},
        {"money": "9999.00"},
        {"money": "10.001"},
        {"money": "1e3"},
        {"money": "-10.00"},
        {"pid": "1002"},
        {"pid": ""},
        {"out_trade_no": "20260101000000000000"},
        {"trade_no": ""},
    ],
    ids=[
        "money-low",
        "money-high",
        "three-decimals",
        "exponent",
        "negative",
        "other-merchant",
        "no-merchant",
        "unknown-order",
        "no-trade-no",
    ],
)
def test_correctly_signed_but_mismatched_notify_changes_nothing(client, product, md5_epay, change):
    order = place_epay(product)
    assert_refused(client.post("/pay/epay/notify", data=md5_notice(order, **change)), order)


def test_money_without_cents_is_the_same_amount(client, make_product, md5_epay):
    order = place_epay(make_product(keys=2, price=1000))
    response = client.post("/pay/epay/notify", data=md5_notice(order, money="10"))
    assert response.text == "success"
    assert reload(order).status == Order.DELIVERED


def test_unfinished_trade_status_changes_nothing(client, product, md5_epay):
    order = place_epay(product)
    response = client.post("/pay/epay/notify", data=md5_notice(order, trade_status="WAIT_BUYER_PAY"))
    assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0


def test_notify_for_an_order_placed_with_another_gateway_changes_nothing(client, product, place, md5_epay):
    order = place(product)  # the sandbox
    assert_refused(client.post("/pay/epay/notify", data=md5_notice(order)), order)
    # and the sandbox's own notify for an epay order is refused the same way
    epay_order = place_epay(product)
    response = client.post("/pay/sandbox/notify", data=signed_notify(epay_order))
    assert response.status_code == 400
    assert reload(epay_order).status == Order.PENDING


@pytest.mark.parametrize(
    "body",
    [
        lambda order: {},
        lambda order: {"sign": "x", "sign_type": "MD5"},
        lambda order: {k: v for k, v in md5_notice(order).items() if k != "money"},
        lambda order: md5_notice(order) | {"param": "x" * 70_000},
        lambda order: [*md5_notice(order).items(), ("money", "0.01")],
    ],
    ids=["empty", "sign-only", "missing-money", "huge", "repeated-field"],
)
def test_malformed_notify_changes_nothing(client, product, md5_epay, body):
    order = place_epay(product)
    data = body(order)
    if isinstance(data, list):  # a repeated parameter: the first and the last copy differ
        from werkzeug.datastructures import MultiDict

        data = MultiDict(data)
    assert_refused(client.post("/pay/epay/notify", data=data), order)


def test_json_body_is_refused(client, product, md5_epay):
    order = place_epay(product)
    assert_refused(client.post("/pay/epay/notify", json=md5_notice(order)), order)


def test_non_string_values_are_refused(app, product, md5_epay):
    order = place_epay(product)
    fields = md5_notice(order)
    fields["money"] = 10.0
    with pytest.raises(InvalidNotify):
        get_gateway("epay").verify_notify(fields, {}, b"")


def test_unconfigured_gateway_refuses_everything(client, product, md5_epay):
    order = place_epay(product)
    configure_gateway("epay", {"key": ""})
    assert_refused(client.post("/pay/epay/notify", data=md5_notice(order)), order)
    # an empty key must not turn into "anyone can sign"
    fields = paid_notice(order)
    fields["sign"], fields["sign_type"] = md5_of(fields, key=""), "MD5"
    assert_refused(client.post("/pay/epay/notify", data=fields), order)


# -- RSA (V2) notifications ---------------------------------------------------------------


def test_rsa_signed_notify_pays_and_delivers(client, product, rsa_epay, platform_key):
    order = place_epay(product)
    fields = rsa_notice(order, platform_key)
    for _ in range(2):
        response = client.post("/pay/epay/notify", data=fields)
        assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert key_texts(order)[0] in client.get(f"/order/{order.token}").text


@pytest.mark.parametrize(
    "make",
    [
        lambda order, key: rsa_notice(order, key, timestamp=int(time.time()) - 400),
        lambda order, key: rsa_notice(order, key, timestamp=int(time.time()) + 400),
        lambda order, key: rsa_notice(order, key, timestamp="soon"),
        lambda order, key: {k: v for k, v in rsa_notice(order, key).items() if k != "timestamp"},
        lambda order, key: rsa_notice(order, rsa.generate_private_key(public_exponent=65537, key_size=2048)),
        lambda order, key: rsa_notice(order, key) | {"money": "0.01"},
        lambda order, key: rsa_notice(order, key, money="0.01"),
        lambda order, key: rsa_notice(order, key, pid="1002"),
        lambda order, key: rsa_notice(order, key) | {"sign": "not base64!"},
        lambda order, key: md5_notice(order),
    ],
    ids=[
        "stale",
        "future",
        "bad-timestamp",
        "no-timestamp",
        "other-key",
        "tampered-money",
        "wrong-money",
        "other-merchant",
        "garbage-sign",
        "md5-signed",
    ],
)
def test_bad_rsa_notify_changes_nothing(client, product, rsa_epay, platform_key, make):
    order = place_epay(product)
    assert_refused(client.post("/pay/epay/notify", data=make(order, platform_key)), order)


@pytest.mark.parametrize("form", ["pem", "one-line-pem", "bare-base64", "pkcs1-pem"])
def test_keys_are_read_in_the_forms_operators_paste(client, product, rsa_epay, platform_key, merchant_key, form):
    public_pem = (
        platform_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    private_pem = merchant_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    if form == "one-line-pem":
        public_pem, private_pem = public_pem.replace("\n", " "), private_pem.replace("\n", " ")
    elif form == "bare-base64":
        public_pem, private_pem = ("".join(k.splitlines()[1:-1]) for k in (public_pem, private_pem))
    elif form == "pkcs1-pem":
        private_pem = merchant_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
        ).decode()
    configure_gateway("epay", {"platform_public_key": public_pem, "merchant_private_key": private_pem})
    order = place_epay(product)
    query = dict(parse_qsl(urlsplit(provider_link(client, order)).query))
    assert rsa_verifies(query, merchant_key.public_key())
    assert client.post("/pay/epay/notify", data=rsa_notice(order, platform_key)).text == "success"


def test_rsa_notify_with_unusable_platform_key_is_refused(client, product, rsa_epay, platform_key):
    order = place_epay(product)
    configure_gateway("epay", {"platform_public_key": "not a key"})
    assert_refused(client.post("/pay/epay/notify", data=rsa_notice(order, platform_key)), order)


# -- sending the buyer to pay -------------------------------------------------------------


def test_md5_payment_redirects_to_a_signed_submit_url(client, product, md5_epay):
    order = place_epay(product, 2)
    location = provider_link(client, order)
    assert location.startswith(md5_epay.url_for("/submit.php") + "?")
    md5_epay.expect_request("/submit.php", method="GET").respond_with_data("收银台")
    assert requests.get(location, timeout=5).text == "收银台"
    received = dict(md5_epay.log[0][0].args)
    assert received == {
        "pid": PID,
        "out_trade_no": order.number,
        "money": yuan(order.total),
        "name": "Test product",
        "notify_url": "http://localhost/pay/epay/notify",
        "return_url": f"http://localhost/order/{order.token}",
        "sign_type": "MD5",
        "sign": md5_of(received),
    }


def test_pay_type_setting_goes_straight_to_that_method(client, product, md5_epay):
    configure_gateway("epay", {"pay_type": "wxpay"})
    order = place_epay(product)
    query = dict(parse_qsl(urlsplit(provider_link(client, order)).query))
    assert query["type"] == "wxpay" and query["sign"] == md5_of(query)


def test_rsa_payment_redirects_to_a_signed_v2_submit_url(client, product, rsa_epay, merchant_key):
    order = place_epay(product)
    location = provider_link(client, order)
    assert location.startswith(rsa_epay.url_for("/api/pay/submit") + "?")
    rsa_epay.expect_request("/api/pay/submit").respond_with_data("ok")
    requests.get(location, timeout=5)
    received = dict(rsa_epay.log[0][0].args)
    assert received["sign_type"] == "RSA" and received["out_trade_no"] == order.number
    assert abs(int(received["timestamp"]) - time.time()) < 60
    assert rsa_verifies(received, merchant_key.public_key())


def start_in(order, client):
    with current_app.test_request_context():
        return get_gateway("epay").create_payment(replace(order_ref(order), client=client))


@pytest.mark.parametrize("client", [DESKTOP, PHONE])
def test_browsers_are_redirected_to_the_cashier(product, md5_epay, client):
    order = place_epay(product)
    start = start_in(order, client)
    assert start.method == "redirect" and start.redirect_url.startswith(md5_epay.url_for("/submit.php") + "?")


def test_alipay_app_buyer_goes_straight_to_alipay_when_pay_type_is_alipay(product, md5_epay):
    configure_gateway("epay", {"pay_type": "alipay"})
    order = place_epay(product)
    start = start_in(order, ALIPAY)
    assert start.method == "redirect"
    query = dict(parse_qsl(urlsplit(start.redirect_url).query))
    assert query["type"] == "alipay" and query["out_trade_no"] == order.number and query["sign"] == md5_of(query)


@pytest.mark.parametrize(
    "pay_type, client",
    [
        ("", WECHAT),
        ("", QQ),
        ("", WEIBO),
        ("", ALIPAY),
        ("alipay", WECHAT),
        ("alipay", QQ),
        ("alipay", WEIBO),
        ("wxpay", ALIPAY),
        ("qqpay", ALIPAY),
    ],
    ids=[
        "any-wechat",
        "any-qq",
        "any-weibo",
        "any-alipay-app",
        "alipay-wechat",
        "alipay-qq",
        "alipay-weibo",
        "wxpay-alipay-app",
        "qqpay-alipay-app",
    ],
)
def test_in_app_browsers_that_block_the_cashier_get_nothing(product, md5_epay, pay_type, client):
    configure_gateway("epay", {"pay_type": pay_type})
    order = place_epay(product)
    assert get_gateway("epay").method_for(client) is None
    with pytest.raises(EpayError):
        start_in(order, client)


@pytest.mark.parametrize(
    "settings",
    [
        {"api_url": ""},
        {"api_url": "ftp://pay.example.com/"},
        {"key": ""},
        {"pid": ""},
        {"sign_type": "RSA", "merchant_private_key": "not a key"},
    ],
    ids=["no-api-url", "not-http", "no-key", "no-pid", "unusable-rsa-key"],
)
def test_misconfigured_gateway_cannot_start_a_payment(client, product, md5_epay, settings):
    order = place_epay(product)
    configure_gateway("epay", settings)
    assert_pay_page_unavailable(client, order)


def test_orders_in_another_currency_are_not_sent_to_epay(client, product, md5_epay):
    order = place_epay(product)
    order.currency = "USD"
    db.session.commit()
    assert_pay_page_unavailable(client, order)


# -- asking the provider (MD5: api.php?act=order) -----------------------------------------


def v1_answer(order, **changes) -> dict:
    answer = {
        "code": 1,
        "msg": "查询订单号成功！",
        "trade_no": "2024071519404366151",
        "out_trade_no": order.number,
        "api_trade_no": "",
        "type": "alipay",
        "pid": int(PID),
        "addtime": "2024-07-15 19:40:43",
        "endtime": "2024-07-15 19:41:02",
        "name": "Test product",
        "money": yuan(order.total),
        "status": 1,
        "param": "",
        "buyer": "",
    }
    answer.update(changes)
    return answer


def expect_v1_query(server, order, answer):
    server.expect_request(
        "/api.php", method="GET", query_string={"act": "order", "pid": PID, "key": KEY, "out_trade_no": order.number}
    ).respond_with_json(answer)


def test_md5_query_reports_a_paid_order(app, product, md5_epay):
    order = place_epay(product)
    expect_v1_query(md5_epay, order, v1_answer(order))
    with app.test_request_context():
        notice = get_gateway("epay").query(order_ref(order))
    assert (notice.order_number, notice.trade_no, notice.amount, notice.currency, notice.paid) == (
        order.number,
        "2024071519404366151",
        order.total,
        "CNY",
        True,
    )


def test_lost_notification_is_recovered_by_asking_the_provider(client, product, md5_epay):
    order = place_epay(product)
    provider_link(client, order)  # the buyer went to pay
    expect_v1_query(md5_epay, order, v1_answer(order))
    notify.check_payment(order.id)  # what the reconciler and the "I have paid" button do
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1


@pytest.mark.parametrize("answer", [{"status": 0}, {"code": -1, "msg": "订单号不存在"}], ids=["unpaid", "unknown"])
def test_md5_query_of_an_unpaid_or_unknown_order_is_none(app, product, md5_epay, answer):
    order = place_epay(product)
    expect_v1_query(md5_epay, order, v1_answer(order, **answer) if "status" in answer else answer)
    with app.test_request_context():
        assert get_gateway("epay").query(order_ref(order)) is None


@pytest.mark.parametrize(
    "answer, error",
    [
        ({"code": -2, "msg": "KEY校验失败"}, EpayError),
        ({"code": -3, "msg": "旧查询接口已升级为签名模式"}, EpayError),
        ("<html>系统发生错误</html>", EpayError),
        ({"pid": 1002}, InvalidNotify),
        ({"out_trade_no": "20260101000000000000"}, InvalidNotify),
        ({"money": "0.01"}, InvalidNotify),
        ({"money": "10.005"}, InvalidNotify),
    ],
    ids=["wrong-key", "query-switched-off", "not-json", "other-merchant", "other-order", "other-amount", "bad-money"],
)
def test_md5_query_refuses_errors_and_foreign_answers(app, product, md5_epay, answer, error):
    order = place_epay(product)
    if isinstance(answer, dict) and "code" not in answer:
        answer = v1_answer(order, **answer)
    if isinstance(answer, dict):
        expect_v1_query(md5_epay, order, answer)
    else:
        md5_epay.expect_request("/api.php").respond_with_data(answer, content_type="text/html")
    with app.test_request_context(), pytest.raises(error) as raised:
        get_gateway("epay").query(order_ref(order))
    assert KEY not in str(raised.value)


def test_unreachable_provider_error_does_not_leak_the_key(app, product, md5_epay):
    order = place_epay(product)
    configure_gateway("epay", {"api_url": f"http://127.0.0.1:{free_port()}/"})
    with app.test_request_context(), pytest.raises(EpayError) as raised:
        get_gateway("epay").query(order_ref(order))
    assert KEY not in str(raised.value) and raised.value.__cause__ is None


def test_console_connection_test_asks_about_an_unknown_order(app, md5_epay):
    md5_epay.expect_request("/api.php", method="GET").respond_with_json({"code": -1, "msg": "订单号不存在"})
    with app.test_request_context("/?lang=en"):
        assert "the settings work" in notify.test_gateway("epay")
    assert md5_epay.log[0][0].args["key"] == KEY and md5_epay.log[0][0].args["out_trade_no"].startswith("FAKATEST")


def test_console_connection_test_reports_a_wrong_key_without_showing_it(app, md5_epay):
    md5_epay.expect_request("/api.php", method="GET").respond_with_json({"code": -2, "msg": "KEY校验失败"})
    with app.test_request_context("/?lang=en"), pytest.raises(notify.GatewayTestFailed) as failed:
        notify.test_gateway("epay")
    assert "KEY校验失败" in str(failed.value.message) and KEY not in str(failed.value.message)


def test_md5_refund_is_done_by_hand(app, md5_epay):
    with pytest.raises(CannotRefund):
        get_gateway("epay").refund("20260101000000000000", "2024071519404366151", 1000, "R1")


# -- asking the provider (RSA: api/pay/query, api/pay/refund) -----------------------------


def signed_answer(platform_key, answer: dict, timestamp=None) -> dict:
    """A V2 answer signed as the platform signs: PHP prints the integers as digits."""
    answer = dict(answer, timestamp=str(int(time.time()) if timestamp is None else timestamp))
    answer["sign"], answer["sign_type"] = rsa_of({k: str(v) for k, v in answer.items()}, platform_key), "RSA"
    return answer


def v2_answer(order, **changes) -> dict:
    answer = {
        "code": 0,
        "trade_no": "2024071519404366151",
        "out_trade_no": order.number,
        "api_trade_no": "",
        "type": "alipay",
        "pid": int(PID),
        "addtime": "2024-07-15 19:40:43",
        "endtime": "",
        "name": "Test product",
        "money": yuan(order.total),
        "status": 1,
        "param": "",
        "buyer": "",
    }
    answer.update(changes)
    return answer


def test_rsa_query_sends_a_signed_request_and_checks_the_signed_answer(
    app, product, rsa_epay, platform_key, merchant_key
):
    order = place_epay(product)
    rsa_epay.expect_request("/api/pay/query", method="POST").respond_with_json(
        signed_answer(platform_key, v2_answer(order))
    )
    with app.test_request_context():
        notice = get_gateway("epay").query(order_ref(order))
    assert notice.paid and notice.amount == order.total and notice.trade_no == "2024071519404366151"
    sent = dict(rsa_epay.log[0][0].form)
    assert sent["out_trade_no"] == order.number and sent["pid"] == PID and sent["sign_type"] == "RSA"
    assert rsa_verifies(sent, merchant_key.public_key())


@pytest.mark.parametrize(
    "make, outcome",
    [
        (lambda order, key: signed_answer(key, v2_answer(order, status=0)), None),
        (lambda order, key: signed_answer(key, v2_answer(order, status=2)), None),
        (lambda order, key: {"code": -1, "msg": "订单不存在"}, EpayError),
        (lambda order, key: signed_answer(key, v2_answer(order)) | {"money": "0.01"}, EpayError),
        (lambda order, key: signed_answer(key, v2_answer(order), timestamp=int(time.time()) - 600), EpayError),
        (lambda order, key: v2_answer(order), EpayError),
        (
            lambda order, key: signed_answer(
                rsa.generate_private_key(public_exponent=65537, key_size=2048), v2_answer(order)
            ),
            EpayError,
        ),
        (lambda order, key: signed_answer(key, v2_answer(order, pid=1002)), InvalidNotify),
        (lambda order, key: signed_answer(key, v2_answer(order, money="0.01")), InvalidNotify),
    ],
    ids=[
        "unpaid",
        "refunded",
        "provider-error",
        "tampered",
        "stale",
        "unsigned",
        "other-key",
        "other-merchant",
        "other-amount",
    ],
)
def test_rsa_query_outcomes(app, product, rsa_epay, platform_key, make, outcome):
    order = place_epay(product)
    rsa_epay.expect_request("/api/pay/query", method="POST").respond_with_json(make(order, platform_key))
    with app.test_request_context():
        if outcome is None:
            assert get_gateway("epay").query(order_ref(order)) is None
        else:
            with pytest.raises(outcome):
                get_gateway("epay").query(order_ref(order))


def test_rsa_refund_is_signed_and_returns_the_providers_refund_number(app, rsa_epay, platform_key, merchant_key):
    rsa_epay.expect_request("/api/pay/refund", method="POST").respond_with_json(
        signed_answer(
            platform_key,
            {
                "code": 0,
                "msg": "退款成功",
                "refund_no": "RF2024071600001",
                "out_refund_no": "R7",
                "trade_no": "2024071519404366151",
                "money": "12.50",
                "reducemoney": "12.50",
            },
        )
    )
    reference = get_gateway("epay").refund("20260101000000000000", "2024071519404366151", 1250, "R7")
    assert reference == "RF2024071600001"
    sent = dict(rsa_epay.log[0][0].form)
    assert {k: sent[k] for k in ("trade_no", "money", "out_refund_no", "pid")} == {
        "trade_no": "2024071519404366151",
        "money": "12.50",
        "out_refund_no": "R7",
        "pid": PID,
    }
    assert rsa_verifies(sent, merchant_key.public_key())


@pytest.mark.parametrize(
    "answer",
    [
        lambda key: {"code": -1, "msg": "余额不足"},
        lambda key: signed_answer(key, {"code": 0, "refund_no": "RF1", "money": "12.50"}) | {"refund_no": "RF2"},
        lambda key: signed_answer(key, {"code": 0, "refund_no": "RF1", "money": "1.00"}),
    ],
    ids=["refused", "bad-signature", "other-amount"],
)
def test_rsa_refund_failures_raise_to_be_retried(app, rsa_epay, platform_key, answer):
    rsa_epay.expect_request("/api/pay/refund", method="POST").respond_with_json(answer(platform_key))
    with pytest.raises(EpayError):
        get_gateway("epay").refund("20260101000000000000", "2024071519404366151", 1250, "R7")
