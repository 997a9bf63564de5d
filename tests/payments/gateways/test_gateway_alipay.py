"""Alipay (RSA2): notifications verified with Alipay's public key, requests signed with
the application key, Alipay's answers verified before they are believed.

Every signature here is computed in the test from Alipay's documented algorithm
(SHA256withRSA, PKCS#1 v1.5, base64) with key pairs made for the test: one for the
application, one standing in for Alipay, and one for a forger. A local fake Alipay
(pytest-httpserver) answers precreate, query and refund over real HTTP.
"""

import base64
import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import parse_qsl, urlsplit

import pytest
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import current_app
from werkzeug.datastructures import MultiDict
from werkzeug.wrappers import Response

from conftest import assert_nothing_paid, count, csrf_from, provider_link, reload
from faka.core.errors import InvalidNotify
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway, get_gateway
from faka.payments.gateways.alipay import AlipayError, AlipayGateway
from faka.payments.gateways.base import CannotRefund
from faka.payments.gateways.clients import ALIPAY, DESKTOP, PHONE, QQ, WECHAT, WEIBO
from faka.payments.models import PaymentNotice
from faka.payments.notify import order_ref

APP_ID = "2021000123456789"
SELLER_ID = "2088102177846880"
QR_CODE = "https://qr.alipay.com/bax03431ljhokirwl38f00a7"
BEIJING = timezone(timedelta(hours=8))

APP_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ALIPAY_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)
FORGER_KEY = rsa.generate_private_key(public_exponent=65537, key_size=2048)


def bare_base64(der: bytes) -> str:
    """A key as Alipay's key tool prints it: base64 of the DER, no PEM armour."""
    return base64.b64encode(der).decode()


APP_PRIVATE_PKCS8 = bare_base64(
    APP_KEY.private_bytes(serialization.Encoding.DER, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
)
ALIPAY_PUBLIC = bare_base64(
    ALIPAY_KEY.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
)


def rsa2(content: str, key) -> str:
    return base64.b64encode(key.sign(content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_valid(content: str, signature: str, public_key) -> bool:
    try:
        public_key.verify(base64.b64decode(signature), content.encode("utf-8"), padding.PKCS1v15(), hashes.SHA256())
    except Exception:  # noqa: BLE001 - any failure means "does not verify"
        return False
    return True


def notify_sign(fields: dict, key=ALIPAY_KEY) -> str:
    """Alipay's notify signature: all fields but sign and sign_type, sorted, k=v joined by &."""
    content = "&".join(f"{k}={v}" for k, v in sorted(fields.items()) if k not in ("sign", "sign_type"))
    return rsa2(content, key)


def request_signature_valid(params: dict) -> bool:
    """Alipay's request signature: all non-empty parameters but sign, sorted, k=v joined by &,
    verified with the application's public key."""
    content = "&".join(f"{k}={v}" for k, v in sorted(params.items()) if k != "sign" and v != "")
    return rsa2_valid(content, params["sign"], APP_KEY.public_key())


def yuan(fen: int) -> str:
    return f"{fen // 100}.{fen % 100:02d}"


def notification(order, key=ALIPAY_KEY, **changes) -> dict:
    """A TRADE_SUCCESS notification as Alipay posts it, with `changes` made before signing."""
    amount = yuan(order.total)
    fields = {
        "gmt_create": "2026-05-01 12:00:00",
        "charset": "utf-8",
        "seller_email": "shop@example.com",
        "subject": "测试商品 Test product",
        "sign_type": "RSA2",
        "buyer_id": "2088102169481075",
        "invoice_amount": amount,
        "notify_id": "2026050100222120000012345678901234",
        "fund_bill_list": json.dumps([{"amount": amount, "fundChannel": "ALIPAYACCOUNT"}]),
        "notify_type": "trade_status_sync",
        "trade_status": "TRADE_SUCCESS",
        "receipt_amount": amount,
        "buyer_pay_amount": amount,
        "app_id": APP_ID,
        "auth_app_id": APP_ID,
        "seller_id": SELLER_ID,
        "gmt_payment": "2026-05-01 12:00:05",
        "notify_time": "2026-05-01 12:00:06",
        "version": "1.0",
        "out_trade_no": order.number,
        "total_amount": amount,
        "trade_no": "2026050122001481071234567890",
        "buyer_logon_id": "158****1562",
        "point_amount": "0.00",
    }
    fields.update(changes)
    fields["sign"] = notify_sign(fields, key)
    return fields


def assert_nothing_changed(response, order):
    assert response.status_code == 400 and response.text == "fail"
    assert_nothing_paid(order)


@pytest.fixture
def alipay(app, httpserver):
    configure_gateway(
        "alipay",
        {
            "app_id": APP_ID,
            "app_private_key": APP_PRIVATE_PKCS8,
            "alipay_public_key": ALIPAY_PUBLIC,
            "seller_id": SELLER_ID,
            "mode": "precreate",
            "gateway_url": httpserver.url_for("/gateway.do"),
        },
        enabled=True,
    )
    return httpserver


@pytest.fixture
def order(alipay, product):
    with current_app.test_request_context():
        return checkout.place_order(product.slug, 1, "buyer@example.com", "secret-1", gateway="alipay")


def ref(order):
    with current_app.test_request_context():
        return order_ref(order)


# -- notifications ------------------------------------------------------------------------


def test_signed_notification_pays_and_delivers_the_order(client, order):
    response = client.post("/pay/alipay/notify", data=notification(order))
    assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    page = client.get(f"/order/{order.token}")
    assert 'class="card-key"' in page.text and f"KEY-{order.product_id}-" in page.text


def test_finished_trade_notification_pays_too(client, order):
    response = client.post("/pay/alipay/notify", data=notification(order, trade_status="TRADE_FINISHED"))
    assert response.text == "success"
    assert reload(order).status == Order.DELIVERED


def test_replayed_notification_delivers_once(client, order):
    fields = notification(order)
    for _ in range(3):
        response = client.post("/pay/alipay/notify", data=fields)
        assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.DELIVERED
    assert count(PaymentNotice) == 1
    assert len(reload(order).keys) == 1


@pytest.mark.parametrize("status", ["WAIT_BUYER_PAY", "TRADE_CLOSED"])
def test_unpaid_trade_notification_is_acknowledged_and_changes_nothing(client, order, status):
    response = client.post("/pay/alipay/notify", data=notification(order, trade_status=status))
    assert response.status_code == 200 and response.text == "success"
    assert reload(order).status == Order.PENDING
    assert count(PaymentNotice) == 0


def test_forged_notification_is_refused(client, order):
    fields = notification(order, key=FORGER_KEY)
    assert_nothing_changed(client.post("/pay/alipay/notify", data=fields), order)


@pytest.mark.parametrize(
    "after_signing",
    [
        {"total_amount": "0.01"},
        {"out_trade_no": "20260101000000000000"},
        {"trade_no": "2026050122001481070000000000"},
        {"sign_type": "RSA"},
        {"sign": ""},
        {"sign": "not base64!"},
    ],
    ids=["tampered-amount", "tampered-order", "tampered-trade-no", "rsa1-sign-type", "empty-sign", "garbled-sign"],
)
def test_tampered_notification_is_refused(client, order, after_signing):
    fields = {**notification(order), **after_signing}
    assert_nothing_changed(client.post("/pay/alipay/notify", data=fields), order)


@pytest.mark.parametrize(
    "signed_change",
    [
        {"app_id": "2021000999999999"},
        {"seller_id": "2088000000000000"},
        {"total_amount": "9.99"},
        {"total_amount": "10.001"},
        {"total_amount": "1e1"},
        {"total_amount": "１０.00"},
        {"trade_status": "TRADE_PENDING"},
        {"out_trade_no": "20260101000000000000"},
        {"trade_no": ""},
    ],
    ids=[
        "wrong-app-id",
        "wrong-seller-id",
        "wrong-amount",
        "three-decimals",
        "exponent",
        "fullwidth-digits",
        "unknown-status",
        "unknown-order",
        "no-trade-no",
    ],
)
def test_correctly_signed_but_wrong_notification_is_refused(client, order, signed_change):
    assert_nothing_changed(client.post("/pay/alipay/notify", data=notification(order, **signed_change)), order)


def test_amount_written_without_decimals_is_the_same_amount(client, order):
    response = client.post("/pay/alipay/notify", data=notification(order, total_amount="10"))
    assert response.text == "success" and reload(order).status == Order.DELIVERED


def test_missing_seller_id_is_refused_when_one_is_configured(client, order):
    fields = notification(order)
    del fields["seller_id"]
    fields["sign"] = notify_sign(fields)
    assert_nothing_changed(client.post("/pay/alipay/notify", data=fields), order)


def test_seller_id_is_not_required_when_none_is_configured(client, order):
    configure_gateway("alipay", {"seller_id": ""})
    fields = notification(order, seller_id="2088000000000000")
    assert client.post("/pay/alipay/notify", data=fields).text == "success"
    assert reload(order).status == Order.DELIVERED


@pytest.mark.parametrize("field", ["app_id", "out_trade_no", "trade_no", "total_amount", "trade_status"])
def test_notification_missing_a_field_is_refused(client, order, field):
    fields = notification(order)
    del fields[field]
    fields["sign"] = notify_sign(fields)
    assert_nothing_changed(client.post("/pay/alipay/notify", data=fields), order)


def test_notification_for_an_order_placed_with_another_gateway_is_refused(client, alipay, product, place):
    sandbox_order = place(product)
    assert_nothing_changed(client.post("/pay/alipay/notify", data=notification(sandbox_order)), sandbox_order)


def test_malformed_notifications_are_refused(client, order):
    fields = notification(order)
    as_json = {k: (int(float(v) * 100) if k == "total_amount" else v) for k, v in fields.items()}
    bodies = [
        dict(data=json.dumps(as_json), content_type="application/json"),  # non-string JSON values
        dict(data=json.dumps(fields), content_type="application/json"),  # JSON, not the documented form
        dict(data="{not json", content_type="application/json"),
        dict(data=b"", content_type="application/x-www-form-urlencoded"),
        dict(data={**fields, "body": "x" * 100_000}),  # huge body
        dict(data=MultiDict(list(fields.items()) + [("total_amount", "0.01")])),  # a field sent twice
    ]
    for body in bodies:
        assert_nothing_changed(client.post("/pay/alipay/notify", **body), order)


def test_unconfigured_gateway_refuses_every_notification(order):
    gateway = AlipayGateway({})
    with pytest.raises(InvalidNotify):
        gateway.verify_notify(notification(order), {}, b"")
    answer = gateway.answer(False)
    assert answer.body == "fail" and answer.content_type == "text/plain"
    assert gateway.answer(True).body == "success"


def test_keys_in_pem_and_pkcs1_work_too(client, order):
    configure_gateway(
        "alipay",
        {
            "app_private_key": APP_KEY.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
            ).decode(),
            "alipay_public_key": ALIPAY_KEY.public_key()
            .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
            .decode(),
        },
    )
    assert client.post("/pay/alipay/notify", data=notification(order)).text == "success"
    start = get_gateway("alipay")._signed_params("alipay.trade.query", {"out_trade_no": order.number})
    assert request_signature_valid(start)


# -- the fake Alipay ----------------------------------------------------------------------


def signed_answer(method: str, inner, key=ALIPAY_KEY) -> str:
    """An answer as Alipay writes it: `sign` covers the exact text of the response member."""
    text = inner if isinstance(inner, str) else json.dumps(inner, ensure_ascii=False)
    name = method.replace(".", "_") + "_response"
    return f'{{"{name}":{text},"sign":"{rsa2(text, key)}"}}'


def fake_alipay(httpserver, answers: dict, key=ALIPAY_KEY) -> list[dict]:
    """Answer each method with its signed answer; return the parameters of every request
    received (query string and form body together)."""
    received = []

    def handler(request):
        params = dict(request.args)
        params.update(request.form)
        received.append(params)
        answer = answers[params["method"]]
        if isinstance(answer, Response):
            return answer
        return Response(signed_answer(params["method"], answer, key), content_type="text/html;charset=utf-8")

    httpserver.expect_request("/gateway.do", method="POST").respond_with_handler(handler)
    return received


def assert_common_params(params: dict, method: str):
    assert request_signature_valid(params), "request signature does not verify with the app public key"
    assert params["app_id"] == APP_ID and params["method"] == method
    assert (params["format"], params["charset"], params["sign_type"], params["version"]) == (
        "JSON",
        "utf-8",
        "RSA2",
        "1.0",
    )
    sent_at = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
    assert abs(sent_at - datetime.now(UTC)) < timedelta(minutes=1)


# -- creating payments --------------------------------------------------------------------


def test_precreate_is_signed_and_its_qr_code_is_shown(order, alipay):
    # Alipay escapes slashes; the signature covers the text exactly as sent.
    inner = '{{"code":"10000", "msg":"Success","out_trade_no":"{}","qr_code":"{}"}}'.format(
        order.number, QR_CODE.replace("/", "\\/")
    )
    received = fake_alipay(alipay, {"alipay.trade.precreate": inner})
    start = get_gateway("alipay").create_payment(ref(order))
    assert start.qr_text == QR_CODE and start.redirect_url is None
    (params,) = received
    assert_common_params(params, "alipay.trade.precreate")
    assert params["notify_url"] == "http://localhost/pay/alipay/notify"
    biz = json.loads(params["biz_content"])
    assert biz["out_trade_no"] == order.number and biz["total_amount"] == "10.00"
    assert biz["subject"] == "Test product" and biz["product_code"] == "FACE_TO_FACE_PAYMENT"
    assert 1 <= int(biz["timeout_express"].removesuffix("m")) <= 15


def test_pay_page_shows_the_alipay_qr_code(client, order, alipay):
    fake_alipay(
        alipay,
        {
            "alipay.trade.precreate": {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": order.number,
                "qr_code": QR_CODE,
            }
        },
    )
    page = client.get(f"/pay/{order.token}?lang=en")
    assert page.status_code == 200
    assert '<figure class="qr">' in page.text and "<svg" in page.text
    assert "I have paid" in page.text


def test_subject_loses_the_characters_alipay_refuses(order, alipay):
    received = fake_alipay(
        alipay,
        {
            "alipay.trade.precreate": {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": order.number,
                "qr_code": QR_CODE,
            }
        },
    )
    get_gateway("alipay").create_payment(replace(ref(order), subject="Win 11 / Pro & Home = 正版"))
    assert json.loads(received[0]["biz_content"])["subject"] == "Win 11 Pro Home 正版"


def test_wap_mode_sends_the_buyer_to_alipay_with_a_signed_request(client, order, alipay):
    configure_gateway("alipay", {"mode": "wap"})
    location = provider_link(client, order)
    assert location.startswith(alipay.url_for("/gateway.do") + "?")
    params = dict(parse_qsl(urlsplit(location).query, keep_blank_values=True))
    assert_common_params(params, "alipay.trade.wap.pay")
    order_page = f"http://localhost/order/{order.token}"
    assert params["return_url"] == order_page and params["notify_url"] == "http://localhost/pay/alipay/notify"
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == "QUICK_WAP_WAY" and biz["quit_url"] == order_page
    assert biz["out_trade_no"] == order.number and biz["total_amount"] == "10.00"
    assert len(alipay.log) == 0  # the buyer's browser calls Alipay, not us


PAGE_PAY_PARAMS = {
    "app_id",
    "method",
    "format",
    "charset",
    "sign_type",
    "timestamp",
    "version",
    "notify_url",
    "return_url",
    "biz_content",
    "sign",
}


def test_page_pay_sends_a_desktop_buyer_to_alipay_by_get_with_everything_signed(order, alipay):
    configure_gateway("alipay", {"mode": "precreate,wap,page"})
    start = get_gateway("alipay").create_payment(replace(ref(order), client=DESKTOP))
    assert start.method == "page" and start.qr_text is None and start.form_action is None
    assert start.redirect_url.startswith(alipay.url_for("/gateway.do") + "?")
    assert len(alipay.log) == 0  # Alipay hears of it from the buyer's browser, not from us
    # The buyer's browser follows the link: one GET whose query string is the whole signed request.
    alipay.expect_request("/gateway.do", method="GET").respond_with_data("支付宝收银台")
    assert requests.get(start.redirect_url, timeout=5).text == "支付宝收银台"
    ((request, _),) = alipay.log
    params = dict(request.args)
    assert set(params) == PAGE_PAY_PARAMS and request.get_data() == b""
    assert_common_params(params, "alipay.trade.page.pay")
    order_page = f"http://localhost/order/{order.token}"
    assert params["return_url"] == order_page and params["notify_url"] == "http://localhost/pay/alipay/notify"
    biz = json.loads(params["biz_content"])
    assert set(biz) == {"out_trade_no", "total_amount", "subject", "timeout_express", "product_code"}
    assert biz["product_code"] == "FAST_INSTANT_TRADE_PAY"
    assert biz["out_trade_no"] == order.number and biz["total_amount"] == "10.00" and biz["subject"] == "Test product"
    assert 1 <= int(biz["timeout_express"].removesuffix("m")) <= 15


def test_page_pay_signature_covers_every_parameter(order, alipay):
    configure_gateway("alipay", {"mode": "page"})
    start = get_gateway("alipay").create_payment(replace(ref(order), client=DESKTOP))
    params = dict(parse_qsl(urlsplit(start.redirect_url).query, keep_blank_values=True))
    assert request_signature_valid(params)
    for name in ("biz_content", "return_url", "notify_url", "timestamp"):
        tampered = {**params, name: params[name].replace("1", "2", 1) + "x"}
        assert not request_signature_valid(tampered), name


@pytest.mark.parametrize("client", [PHONE, ALIPAY], ids=["phone", "alipay-app"])
def test_phone_buyers_get_the_phone_cashier_when_it_is_activated(order, alipay, client):
    configure_gateway("alipay", {"mode": "page,precreate,wap"})
    start = get_gateway("alipay").create_payment(replace(ref(order), client=client))
    assert start.method == "wap"
    params = dict(parse_qsl(urlsplit(start.redirect_url).query, keep_blank_values=True))
    assert_common_params(params, "alipay.trade.wap.pay")
    biz = json.loads(params["biz_content"])
    assert biz["product_code"] == "QUICK_WAP_WAY" and biz["quit_url"] == f"http://localhost/order/{order.token}"


@pytest.mark.parametrize("client", [DESKTOP, PHONE, ALIPAY], ids=["desktop", "phone", "alipay-app"])
def test_precreate_serves_every_buyer_when_it_is_the_only_product(order, alipay, client):
    received = fake_alipay(
        alipay,
        {
            "alipay.trade.precreate": {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": order.number,
                "qr_code": QR_CODE,
            }
        },
    )
    start = get_gateway("alipay").create_payment(replace(ref(order), client=client))
    assert (start.method, start.qr_text, start.redirect_url) == ("precreate", QR_CODE, None)
    assert [p["method"] for p in received] == ["alipay.trade.precreate"]


def test_desktop_buyer_gets_the_qr_code_when_page_pay_is_not_activated(order, alipay):
    configure_gateway("alipay", {"mode": "wap,precreate"})
    fake_alipay(
        alipay,
        {
            "alipay.trade.precreate": {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": order.number,
                "qr_code": QR_CODE,
            }
        },
    )
    start = get_gateway("alipay").create_payment(replace(ref(order), client=DESKTOP))
    assert start.method == "precreate" and start.qr_text == QR_CODE


@pytest.mark.parametrize("client", [WECHAT, QQ, WEIBO])
def test_alipay_is_refused_inside_apps_that_block_it(order, alipay, client):
    configure_gateway("alipay", {"mode": "precreate,wap,page"})
    gateway = get_gateway("alipay")
    assert gateway.method_for(client) is None
    with pytest.raises(AlipayError):
        gateway.create_payment(replace(ref(order), client=client))
    assert len(alipay.log) == 0


@pytest.mark.parametrize("mode", ["qr", "page,pc"])
def test_unknown_mode_is_refused_before_calling_alipay(order, alipay, mode):
    configure_gateway("alipay", {"mode": mode})
    with pytest.raises(AlipayError, match="mode"):
        get_gateway("alipay").create_payment(ref(order))
    assert len(alipay.log) == 0


def unbelievable_precreate_answers(order) -> dict:
    """Precreate answers that must not be believed, each as (answer, signing key)."""
    good = {"code": "10000", "msg": "Success", "out_trade_no": order.number, "qr_code": QR_CODE}
    signed = signed_answer("alipay.trade.precreate", good)
    return {
        "forged": (good, FORGER_KEY),
        "tampered": (
            Response(signed.replace("bax03431", "bax99999"), content_type="text/html;charset=utf-8"),
            ALIPAY_KEY,
        ),
        "unsigned": (
            Response(json.dumps({"alipay_trade_precreate_response": good}), content_type="application/json"),
            ALIPAY_KEY,
        ),
        "business-failed": (
            {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "ACQ.TOTAL_FEE_EXCEED",
                "sub_msg": "订单金额超过限额",
            },
            ALIPAY_KEY,
        ),
        "other-order": ({**good, "out_trade_no": "20260101000000000000"}, ALIPAY_KEY),
        "no-qr-code": ({**good, "qr_code": ""}, ALIPAY_KEY),
        "http-error": (Response("busy", status=502), ALIPAY_KEY),
        "not-json": (Response("<html>gateway</html>", content_type="text/html"), ALIPAY_KEY),
        "two-answers": (
            Response(
                signed[:-1] + ',"alipay_trade_precreate_response":{"code":"10000"}}',
                content_type="text/html;charset=utf-8",
            ),
            ALIPAY_KEY,
        ),
    }


@pytest.mark.parametrize(
    "case",
    [
        "forged",
        "tampered",
        "unsigned",
        "business-failed",
        "other-order",
        "no-qr-code",
        "http-error",
        "not-json",
        "two-answers",
    ],
)
def test_precreate_answer_that_cannot_be_believed_is_refused(order, alipay, case):
    answer, key = unbelievable_precreate_answers(order)[case]
    fake_alipay(alipay, {"alipay.trade.precreate": answer}, key=key)
    with pytest.raises(AlipayError):
        get_gateway("alipay").create_payment(ref(order))


def test_non_cny_orders_are_not_sent_to_alipay(order, alipay):
    with pytest.raises(AlipayError):
        get_gateway("alipay").create_payment(replace(ref(order), currency="USD"))
    assert len(alipay.log) == 0


# -- asking about a payment ---------------------------------------------------------------


def trade(order, **changes) -> dict:
    answer = {
        "code": "10000",
        "msg": "Success",
        "trade_no": "2026050122001481071234567890",
        "out_trade_no": order.number,
        "buyer_logon_id": "158****1562",
        "trade_status": "TRADE_SUCCESS",
        "total_amount": yuan(order.total),
        "receipt_amount": yuan(order.total),
    }
    answer.update(changes)
    return answer


def test_query_of_a_paid_trade_returns_the_payment(order, alipay):
    received = fake_alipay(alipay, {"alipay.trade.query": trade(order)})
    notice = get_gateway("alipay").query(ref(order))
    assert notice.paid and notice.order_number == order.number and notice.amount == order.total
    assert notice.trade_no == "2026050122001481071234567890" and notice.currency == "CNY"
    (params,) = received
    assert_common_params(params, "alipay.trade.query")
    assert json.loads(params["biz_content"]) == {"out_trade_no": order.number}


def test_i_have_paid_asks_alipay_and_delivers_once(client, order, alipay):
    received = fake_alipay(
        alipay,
        {
            "alipay.trade.precreate": {
                "code": "10000",
                "msg": "Success",
                "out_trade_no": order.number,
                "qr_code": QR_CODE,
            },
            "alipay.trade.query": trade(order),
        },
    )
    token = csrf_from(client.get(f"/pay/{order.token}").text)
    response = client.post(f"/pay/{order.token}/check", data={"csrf_token": token})
    assert response.status_code == 303 and response.headers["Location"].endswith(f"/order/{order.token}")
    assert reload(order).status == Order.DELIVERED
    assert [p["method"] for p in received] == ["alipay.trade.precreate", "alipay.trade.query"]
    # Alipay's notification for the same trade arrives afterwards: acknowledged, nothing more.
    notified = client.post("/pay/alipay/notify", data=notification(order))
    assert notified.text == "success"
    assert count(PaymentNotice) == 1 and len(reload(order).keys) == 1


@pytest.mark.parametrize(
    "answer",
    [
        {"trade_status": "WAIT_BUYER_PAY"},
        {"trade_status": "TRADE_CLOSED"},
        {"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.TRADE_NOT_EXIST", "trade_status": None},
    ],
    ids=["waiting", "closed", "not-scanned-yet"],
)
def test_query_of_an_unpaid_trade_returns_nothing(order, alipay, answer):
    fake_alipay(alipay, {"alipay.trade.query": {k: v for k, v in trade(order, **answer).items() if v is not None}})
    assert get_gateway("alipay").query(ref(order)) is None


@pytest.mark.parametrize(
    "answer, error",
    [
        ({"code": "20000", "msg": "Service Currently Unavailable", "sub_code": "isp.unknow-error"}, AlipayError),
        ({"total_amount": "0.01"}, InvalidNotify),
        ({"out_trade_no": "20260101000000000000"}, InvalidNotify),
        ({"trade_status": "TRADE_UNKNOWN"}, AlipayError),
    ],
    ids=["provider-error", "wrong-amount", "other-order", "unknown-status"],
)
def test_query_answer_that_does_not_match_raises(order, alipay, answer, error):
    fake_alipay(alipay, {"alipay.trade.query": trade(order, **answer)})
    with pytest.raises(error):
        get_gateway("alipay").query(ref(order))


def test_query_answer_with_a_bad_signature_is_refused(order, alipay):
    fake_alipay(alipay, {"alipay.trade.query": trade(order)}, key=FORGER_KEY)
    with pytest.raises(AlipayError, match="signature"):
        get_gateway("alipay").query(ref(order))


# -- refunds ------------------------------------------------------------------------------

TRADE_NO = "2026050122001481071234567890"


def refund_answer(order, **changes) -> dict:
    answer = {
        "code": "10000",
        "msg": "Success",
        "trade_no": TRADE_NO,
        "out_trade_no": order.number,
        "buyer_logon_id": "158****1562",
        "fund_change": "Y",
        "refund_fee": "5.00",
        "gmt_refund_pay": "2026-05-02 10:00:00",
    }
    answer.update(changes)
    return answer


def test_refund_is_signed_and_returns_a_reference(order, alipay):
    received = fake_alipay(alipay, {"alipay.trade.refund": refund_answer(order)})
    reference = get_gateway("alipay").refund(order.number, TRADE_NO, 500, "R7")
    assert reference == f"{TRADE_NO}/R7"
    (params,) = received
    assert_common_params(params, "alipay.trade.refund")
    assert json.loads(params["biz_content"]) == {
        "out_trade_no": order.number,
        "trade_no": TRADE_NO,
        "refund_amount": "5.00",
        "out_request_no": "R7",
    }


def test_refund_without_fund_change_is_confirmed_by_the_refund_query(order, alipay):
    received = fake_alipay(
        alipay,
        {
            "alipay.trade.refund": refund_answer(order, fund_change="N"),
            "alipay.trade.fastpay.refund.query": {
                "code": "10000",
                "msg": "Success",
                "trade_no": TRADE_NO,
                "out_trade_no": order.number,
                "out_request_no": "R7",
                "refund_amount": "5.00",
                "refund_status": "REFUND_SUCCESS",
            },
        },
    )
    assert get_gateway("alipay").refund(order.number, TRADE_NO, 500, "R7") == f"{TRADE_NO}/R7"
    assert [p["method"] for p in received] == ["alipay.trade.refund", "alipay.trade.fastpay.refund.query"]
    assert_common_params(received[1], "alipay.trade.fastpay.refund.query")
    assert json.loads(received[1]["biz_content"])["out_request_no"] == "R7"


def test_unconfirmed_refund_is_retried_later(order, alipay):
    fake_alipay(
        alipay,
        {
            "alipay.trade.refund": refund_answer(order, fund_change="N"),
            "alipay.trade.fastpay.refund.query": {"code": "10000", "msg": "Success", "out_request_no": "R7"},
        },
    )
    with pytest.raises(AlipayError):
        get_gateway("alipay").refund(order.number, TRADE_NO, 500, "R7")


def test_refund_refused_by_alipay_goes_to_the_operator(order, alipay):
    fake_alipay(
        alipay,
        {
            "alipay.trade.refund": {
                "code": "40004",
                "msg": "Business Failed",
                "sub_code": "ACQ.TRADE_STATUS_ERROR",
                "sub_msg": "交易状态不合法",
            }
        },
    )
    with pytest.raises(CannotRefund, match="ACQ.TRADE_STATUS_ERROR"):
        get_gateway("alipay").refund(order.number, TRADE_NO, 500, "R7")


@pytest.mark.parametrize(
    "answer, key",
    [
        ({"code": "40004", "msg": "Business Failed", "sub_code": "ACQ.SYSTEM_ERROR"}, ALIPAY_KEY),
        ({"code": "20000", "msg": "Service Currently Unavailable"}, ALIPAY_KEY),
        (None, FORGER_KEY),
    ],
    ids=["system-error", "unavailable", "bad-signature"],
)
def test_refund_that_may_succeed_later_raises_for_a_retry(order, alipay, answer, key):
    fake_alipay(alipay, {"alipay.trade.refund": answer or refund_answer(order)}, key=key)
    with pytest.raises(AlipayError):
        get_gateway("alipay").refund(order.number, TRADE_NO, 500, "R7")
