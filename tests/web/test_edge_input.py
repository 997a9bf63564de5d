"""Hostile input at the edge: issue 17's security review, and what tests/slow/test_fuzz_routes.py
found. Each answer is a 400 (or a 404 for a URL that names nothing) with a message, never a
500, and nothing changes.

faka/web/request_guard.py strips control characters, refuses text that is not UTF-8 and
bounds `?page=` and `<int:>` path parameters; faka/web/fields.py refuses numbers a
person would not type; the gateways compare signatures as bytes; an email subject is
always one line."""

import json
import time
from datetime import timedelta

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from sqlalchemy import select

from conftest import assert_nothing_paid, count, csrf_from, login, reload, signed_notify
from faka.catalog import search
from faka.catalog.models import Category, Product
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.extensions import db
from faka.messaging.models import OutboxEmail
from faka.orders.models import Coupon, Order
from faka.payments.gateways import configure_gateway

# What the security review sent to every decimal field: none is a number a person types.
NOT_NUMBERS = (
    "sNaN",
    "NaN",
    "-NaN",
    "Infinity",
    "-Infinity",
    "1e999",
    "-1e999",
    "1e-999",
    "9" * 400,
    "0." + "0" * 398 + "1",
    "1E+2",
)
INVALID_UTF8 = b"\xff\xfe\xc3\x28"


def english(client):
    client.get("/?lang=en")
    return client


def logged_in(app, user):
    client = english(app.test_client())
    login(client, user)
    return client


def post(client, url, data, page=None, **kwargs):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def product_form(category_id, **changes):
    form = {
        "title": "Steam 充值卡",
        "category_id": category_id,
        "price": "48.00",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
    }
    form.update(changes)
    return form


@pytest.fixture
def seller(app, merchant):
    return logged_in(app, merchant.user)


@pytest.fixture
def desk(app, operator):
    return logged_in(app, operator)


@pytest.fixture
def delivered(product, place, pay) -> Order:
    order = place(product)
    assert pay(order).text == "success"
    return reload(order)


# -- ?page= ------------------------------------------------------------------------------------

PAGES_THAT_CANNOT_BE = (str(10**100), "9" * 400, "0", "-1", "1e3", "abc")


def test_public_review_lists_refuse_a_page_that_cannot_be(client, product):
    english(client)
    for url in (f"/p/{product.slug}/reviews", f"/shop/{product.merchant.public_id}/reviews"):
        for page in PAGES_THAT_CANNOT_BE:
            response = client.get(url, query_string={"page": page})
            assert response.status_code == 400, (url, page)
            assert "There is no such page number." in response.text
        assert client.get(url, query_string={"page": "2"}).status_code == 200  # past the last: an empty page


BACK_OFFICE_LISTS = {
    "merchant": ("/merchant/orders", "/merchant/money", "/merchant/complaints", "/merchant/reviews"),
    "operator": (
        "/operator/payments",
        "/operator/merchants",
        "/operator/withdrawals",
        "/operator/complaints",
        "/operator/audit",
        "/operator/risk",
        "/operator/blacklist",
        "/operator/reviews",
        "/operator/refunds",
        "/operator/ledger",
        "/operator/security",
    ),
}


def test_back_office_lists_refuse_a_huge_page(seller, desk):
    for who, urls in BACK_OFFICE_LISTS.items():
        client = seller if who == "merchant" else desk
        for url in urls:
            response = client.get(url, query_string={"page": str(10**100)})
            assert response.status_code == 400, url
            assert "There is no such page number." in response.text
            assert client.get(url, query_string={"page": "1"}).status_code == 200, url


# -- decimal fields ------------------------------------------------------------------------------


def test_the_price_takes_only_a_plain_number(seller, category):
    for value in NOT_NUMBERS:
        response = post(seller, "/merchant/products/new", product_form(category.id, price=value))
        assert response.status_code == 400, value
        assert "Enter a number, such as 12.50." in response.text or "That number is too large." in response.text
    assert count(Product) == 0
    assert post(seller, "/merchant/products/new", product_form(category.id, price="-0")).status_code == 400
    assert post(seller, "/merchant/products/new", product_form(category.id, price="１２.５")).status_code == 303


@pytest.mark.parametrize("field", ["value", "min_amount"])
def test_a_coupon_takes_only_plain_numbers(seller, field):
    coupon = {"code": "SPRING", "kind": "fixed", "value": "5.00", "product_id": "0", "min_amount": "10.00"}
    for value in NOT_NUMBERS:
        response = post(seller, "/merchant/coupons", {**coupon, field: value})
        assert response.status_code == 400, value
    assert count(Coupon) == 0


@pytest.fixture
def escalated(delivered) -> Complaint:
    complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "卡密无效")
    return workflow.escalate(complaint.id, now=complaint.deadline_at + timedelta(minutes=1))


def test_a_refund_offer_takes_only_a_plain_number(make_app, merchant, delivered):
    seller = logged_in(make_app(RATELIMIT_COMPLAINT_REPLY="1000 per minute"), merchant.user)
    complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "卡密无效")
    url = f"/merchant/complaints/{complaint.ref}"
    for value in NOT_NUMBERS:
        response = post(seller, f"{url}/offer/refund", {"amount": value, "note": ""}, page=url)
        assert response.status_code == 400, value
    assert reload(complaint).status == Complaint.OPEN


def test_the_operators_refund_decision_takes_only_a_plain_number(desk, escalated):
    url = f"/operator/complaints/{escalated.ref}"
    for value in NOT_NUMBERS:
        response = post(desk, f"{url}/decide", {"outcome": "refund", "amount": value, "reason": "证据充分"}, page=url)
        assert response.status_code == 400, value
    assert reload(escalated).status == Complaint.ESCALATED


def test_a_fee_rate_takes_only_a_plain_number(desk, merchant):
    url = f"/operator/merchants/{merchant.id}"
    fee_rate_bp = merchant.fee_rate_bp
    for value in NOT_NUMBERS:
        response = post(desk, f"{url}/terms", {"fee_rate": value, "hold_days": "3"}, page=url)
        assert response.status_code == 400, value
    assert reload(merchant).fee_rate_bp == fee_rate_bp


# -- whole numbers -------------------------------------------------------------------------------


def test_a_whole_number_of_400_digits_is_refused(seller, category):
    for field in (
        "min_per_order",
        "max_per_order",
        "low_stock_threshold",
        "manual_promise_hours",
        "position",
        "risk_captcha_at",
        "risk_hold_at",
    ):
        response = post(seller, "/merchant/products/new", product_form(category.id, **{field: "9" * 400}))
        assert response.status_code == 400, field
        assert "That number is too large." in response.text
    assert count(Product) == 0


def test_a_quantity_of_400_digits_buys_nothing(client, product):
    english(client)
    page = client.get(f"/p/{product.slug}")
    response = client.post(
        f"/p/{product.slug}/buy", data={"csrf_token": csrf_from(page.text), "quantity": "9" * 400, "gateway": "sandbox"}
    )
    assert response.status_code == 400
    assert count(Order) == 0


def test_moving_products_to_a_huge_category_id_is_refused(desk, product):
    category = db.session.get(Category, product.category_id)
    response = post(
        desk, f"/operator/categories/{category.id}/delete", {"move_to": "9" * 30}, page="/operator/categories"
    )
    assert response.status_code == 400
    assert count(Category) == 1 and reload(product).category_id == category.id


# -- ids in paths -------------------------------------------------------------------------------

IDS_IN_PATHS = (
    ("operator", "GET", "/operator/merchants/{huge}"),
    ("operator", "POST", "/operator/withdrawals/{huge}/reveal"),
    ("operator", "POST", "/operator/risk/held/{huge}/release"),
    ("operator", "POST", "/operator/reviews/{huge}/hide"),
    ("merchant", "GET", "/merchant/webhooks/{huge}"),
    ("merchant", "POST", "/merchant/coupons/{huge}/deactivate"),
)


def test_an_id_no_database_can_hold_names_nothing(seller, desk):
    tokens = {
        "merchant": csrf_from(seller.get("/merchant/coupons").text),
        "operator": csrf_from(desk.get("/operator/categories").text),
    }
    for who, method, url in IDS_IN_PATHS:
        client = seller if who == "merchant" else desk
        for huge in (str(2**31), str(2**63), "9" * 400, "9" * 5000):
            response = client.open(url.format(huge=huge), method=method, data={"csrf_token": tokens[who]})
            assert response.status_code == 404, (url, huge)


# -- text that is no text -------------------------------------------------------------------------


def test_a_query_string_that_is_not_utf8_is_refused(client, product):
    english(client)
    for query in (b"page=" + INVALID_UTF8, b"q=%FF%FE", b"lang=%C3%28"):
        response = client.get(f"/p/{product.slug}/reviews", environ_overrides={"QUERY_STRING": query.decode("latin-1")})
        assert response.status_code == 400, query
        assert "not valid UTF-8" in response.text
    for url in ("/", "/lookup", "/terms"):
        assert client.get(url, environ_overrides={"QUERY_STRING": "x=\xff"}).status_code == 400


def test_a_form_that_is_not_utf8_is_refused_and_changes_nothing(seller, category):
    token = csrf_from(seller.get("/merchant/products/new").text)
    body = (
        f"csrf_token={token}&category_id={category.id}&price=1&delivery_type=auto&min_per_order=1"
        f"&max_per_order=1&manual_promise_hours=1&low_stock_threshold=0&title=".encode()
        + INVALID_UTF8
    )
    response = seller.post("/merchant/products/new", data=body, content_type="application/x-www-form-urlencoded")
    assert response.status_code == 400 and "not valid UTF-8" in response.text
    fields = {
        "csrf_token": token.encode(),
        **{k: str(v).encode() for k, v in product_form(category.id).items()},
        "title": INVALID_UTF8,
    }
    body = (
        b"".join(
            b'--B\r\nContent-Disposition: form-data; name="%s"\r\n\r\n%s\r\n' % (k.encode(), v)
            for k, v in fields.items()
        )
        + b"--B--\r\n"
    )
    response = seller.post("/merchant/products/new", data=body, content_type="multipart/form-data; boundary=B")
    assert response.status_code == 400 and "not valid UTF-8" in response.text
    assert count(Product) == 0


def test_control_characters_are_removed_and_line_breaks_kept_only_in_multiline_fields(seller, category):
    response = post(
        seller,
        "/merchant/products/new",
        product_form(
            category.id,
            title="Steam\r\nBcc: victim@example.com\x00\x1b[2J\u2028卡\t密",
            description_md="第一行\r\n第二行\x00\x07\n\t缩进",
        ),
    )
    assert response.status_code == 303
    product = db.session.execute(select(Product)).scalar_one()
    assert product.title == "SteamBcc: victim@example.com[2J卡 密"
    assert product.description_md == "第一行\r\n第二行\n\t缩进"


def test_a_control_character_in_a_search_finds_nothing_rather_than_failing(desk, seller):
    # PostgreSQL refuses a NUL in any string it is sent: the edge removes it first.
    assert desk.get("/operator/payments", query_string={"order": "\x00F2026"}).status_code == 200
    assert seller.get("/merchant/orders", query_string={"number": "\x00", "email": "a\x00@b.c"}).status_code == 200


def test_a_path_with_a_control_character_names_nothing(client, product):
    # PostgreSQL refuses a NUL in a query: such a slug or id was a 500 there.
    for url in ("/p/%00", f"/p/{product.slug}%00", "/order/%00abc", "/order/abc%0A/status", "/shop/%7F%00/reviews"):
        assert client.get(url).status_code == 404, url


# -- payment notifications ---------------------------------------------------------------------


def _rsa_public_pem() -> str:
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def _notify(client, gateway, order, sign):
    """A notification for `order` whose signature is `sign`, as each gateway sends one."""
    if gateway == "sandbox":
        return client.post("/pay/sandbox/notify", data=signed_notify(order, sign=sign))
    if gateway == "epay":
        return client.post(
            "/pay/epay/notify",
            data={
                "pid": "1001",
                "trade_no": "E1",
                "out_trade_no": order.number,
                "type": "alipay",
                "name": "x",
                "money": "10.00",
                "trade_status": "TRADE_SUCCESS",
                "sign": sign,
                "sign_type": "MD5",
            },
        )
    if gateway == "alipay":
        return client.post(
            "/pay/alipay/notify",
            data={
                "app_id": "2021",
                "out_trade_no": order.number,
                "trade_no": "A1",
                "total_amount": "10.00",
                "trade_status": "TRADE_SUCCESS",
                "sign": sign,
                "sign_type": "RSA2",
            },
        )
    if gateway == "stripe":
        return client.post(
            "/pay/stripe/notify",
            data=b'{"type": "checkout.session.completed"}',
            content_type="application/json",
            headers={"Stripe-Signature": f"t={int(time.time())},v1={sign}"},
        )
    if gateway == "wechat":
        return client.post(
            "/pay/wechat/notify",
            data=b'{"event_type": "TRANSACTION.SUCCESS"}',
            content_type="application/json",
            headers={
                "Wechatpay-Serial": "SERIAL1",
                "Wechatpay-Timestamp": str(int(time.time())),
                "Wechatpay-Nonce": "n",
                "Wechatpay-Signature": sign,
            },
        )
    payload = {
        "trade_id": "T1",
        "order_id": f"{order.number}-abcdef",
        "amount": 10,
        "actual_amount": 1.4,
        "token": "TNEns8t9",
        "block_transaction_id": "b1",
        "status": 2,
    }
    body = json.dumps(payload)[:-1] + ', "signature": "' + sign + '"}'
    return client.post("/pay/usdt/notify", data=body.encode("utf-8", "surrogatepass"), content_type="application/json")


GATEWAY_SETTINGS = {
    "epay": lambda: {"api_url": "http://127.0.0.1:9/", "pid": "1001", "key": "epay-key", "sign_type": "MD5"},
    "alipay": lambda: {"app_id": "2021", "alipay_public_key": _rsa_public_pem()},
    "stripe": lambda: {"secret_key": "sk_test_x", "webhook_secret": "whsec_test"},
    "wechat": lambda: {"platform_serial": "SERIAL1", "platform_public_key": _rsa_public_pem()},
    "usdt": lambda: {"api_url": "http://127.0.0.1:9/", "api_token": "usdt-token"},
}
# Non-ASCII signatures: Chinese, Latin-1 (all an HTTP header can carry) and, in JSON, a lone surrogate.
SIGNS = {"stripe": ("é" * 64, "ÿ"), "wechat": ("é" * 64,), "usdt": ("签名", "\\ud800" * 8)}


@pytest.mark.parametrize("gateway", ["sandbox", "epay", "alipay", "stripe", "wechat", "usdt"])
def test_a_non_ascii_signature_is_a_failed_signature(client, product, place, gateway):
    if gateway != "sandbox":
        configure_gateway(gateway, GATEWAY_SETTINGS[gateway](), enabled=True)
    order = place(product)
    for sign in SIGNS.get(gateway, ("签名" * 16, "é" * 64, "\u202e" + "0" * 63)):
        response = _notify(client, gateway, order, sign)
        assert response.status_code == 400, sign
    assert_nothing_paid(order)


# -- emails ---------------------------------------------------------------------------------------


def test_an_old_title_with_a_line_break_still_gets_its_delivery_email_sent(make_app, smtp, make_product, place):
    shop = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    # As a row written before titles were one line: the edge would strip the break today.
    product = make_product(keys=2, title="Steam 充值卡\r\nBcc: victim@example.com")
    order = place(product, email="buyer@example.com")
    response = shop.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    assert response.status_code in (200, 303)
    assert reload(order).status == Order.DELIVERED
    (message,) = smtp.messages
    assert message["To"] == "buyer@example.com" and message["Bcc"] is None
    assert "Steam 充值卡 Bcc: victim@example.com" in message["Subject"]
    assert "\n" not in message["Subject"]
    email = db.session.execute(select(OutboxEmail).where(OutboxEmail.order_id == order.id)).scalar_one()
    assert email.status == OutboxEmail.SENT


def test_a_notification_holding_a_nul_is_refused(client, product, place):
    # PostgreSQL cannot store a NUL in the notify log: such a notification was a 500 there.
    order = place(product)
    for data in ({**signed_notify(order), "order_no": order.number + "\x00"}, {**signed_notify(order), "sign": "\x00"}):
        assert client.post("/pay/sandbox/notify", data=data).status_code == 400
    response = client.post("/pay/sandbox/notify", data=b'{"order_no": "\x00"}', content_type="application/json")
    assert response.status_code == 400
    assert_nothing_paid(order)


# -- the error page itself ------------------------------------------------------------------------


def test_a_failed_database_write_still_gets_the_error_page(client, monkeypatch):
    def failing_write(*_):
        db.session.add(Category(name=None))  # NOT NULL: the flush fails, the session must be rolled back
        db.session.flush()

    monkeypatch.setattr(search, "find_products", failing_write)
    response = english(client).get("/")
    assert response.status_code == 500
    assert "Our fault, not yours." in response.text
