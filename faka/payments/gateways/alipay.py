"""Alipay (支付宝) 当面付, 手机网站支付 and 电脑网站支付, signed with RSA2 (SHA256withRSA).

The `mode` setting lists the products the operator has activated (签约) for the app,
comma-separated; each buyer gets the one that suits where they are:

- `precreate` (当面付, the default): `alipay.trade.precreate` returns a `qr_code` link that
  the pay page shows as a QR code; the buyer scans it with the Alipay app.
- `wap` (手机网站支付): the buyer's browser goes to Alipay's gateway with a signed
  `alipay.trade.wap.pay` request (product_code QUICK_WAP_WAY) and comes back to the
  order page after paying.
- `page` (电脑网站支付): the same with `alipay.trade.page.pay` (product_code
  FAST_INSTANT_TRADE_PAY): Alipay's desktop cashier, where the buyer scans a code or
  signs in, then comes back to the order page.

A desktop browser gets `page`, else `precreate`, else `wap`; a phone browser and the
Alipay app's own browser get `wap`, else `precreate`, else `page`. Inside WeChat, QQ and
Weibo, which block Alipay's pages, Alipay is not offered (`method_for` is None, and the pay
page asks the buyer to open it in their browser). For `wap` and `page` the buyer leaves by
a GET to the gateway that carries every signed parameter in its query string, with
`return_url` (the order page), `notify_url` and `timeout_express` (the order's time left).

Settings, copied from the Alipay open platform console (开放平台 → 应用 → 开发设置, 公钥模式):

- `app_id`: the application's APPID.
- `app_private_key`: the application private key (应用私钥, RSA2048), PKCS#8 or PKCS#1,
  as PEM or as the bare base64 the key tool prints. Secret.
- `alipay_public_key`: Alipay's public key (支付宝公钥 — not the application public key),
  as PEM or bare base64.
- `seller_id`: optional; the merchant's PID (2088…). When set, every notification must
  name it.
- `mode`: `precreate` (the default), `wap`, `page`, or several of them comma-separated,
  e.g. `page,wap` (only the products activated for the app: Alipay refuses the others).
  Any other name is a configuration error (AlipayError, from `method_for` too).
- `gateway_url`: the OpenAPI gateway, https://openapi.alipay.com/gateway.do unless set
  (Alipay's sandbox is https://openapi-sandbox.dl.alipaydev.com/gateway.do).

Only the public-key mode is supported, not the certificate mode (公钥证书模式).

Notify URL: `<FAKA_BASE_URL>/pay/alipay/notify`. It is sent with every payment as
`notify_url`, so nothing needs setting in the console. Alipay posts the notification as
a form; it is verified with Alipay's public key over the sorted `key=value` pairs of
every field except `sign` and `sign_type`, then `app_id`, `seller_id` (when set),
`out_trade_no`, `total_amount` and `trade_status` are checked. We answer `success`
(text/plain) when it is accepted and `fail` otherwise; Alipay repeats a notification
until it reads `success`.

Calls to the gateway (precreate, query, refund) carry the common parameters in the
query string and `biz_content` in the form body, as Alipay's own SDKs send them, and
their answers are accepted only when `sign` verifies over the exact JSON text of the
`<method>_response` member.
"""

import base64
import binascii
import json
import re
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode

from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from faka.core import clock
from faka.payments.gateways.base import (
    HTTP_TIMEOUT,
    CannotRefund,
    Gateway,
    GatewayError,
    InvalidNotify,
    Notice,
    OrderRef,
    PaymentStart,
    fen_from_yuan,
    yuan_text,
)
from faka.payments.gateways.clients import ALIPAY, DESKTOP, PHONE

GATEWAY_URL = "https://openapi.alipay.com/gateway.do"
MODES = ("precreate", "wap", "page")
# The product each kind of client is offered, best first, among those the operator activated.
# WeChat, QQ and Weibo block Alipay's pages: they get nothing.
PREFERENCES = {
    DESKTOP: ("page", "precreate", "wap"),
    PHONE: ("wap", "precreate", "page"),
    ALIPAY: ("wap", "precreate", "page"),
}
# What a redirect to Alipay's gateway says, per product.
PAGE_PRODUCTS = {
    "wap": ("alipay.trade.wap.pay", "QUICK_WAP_WAY"),
    "page": ("alipay.trade.page.pay", "FAST_INSTANT_TRADE_PAY"),
}
CURRENCY = "CNY"  # Alipay's domestic trade APIs charge in yuan only
PAID_STATUSES = ("TRADE_SUCCESS", "TRADE_FINISHED")
UNPAID_STATUSES = ("WAIT_BUYER_PAY", "TRADE_CLOSED")
SUCCESS_CODE = "10000"
BUSINESS_FAILED_CODE = "40004"
RETRYABLE_SUB_CODES = ("ACQ.SYSTEM_ERROR",)
MAX_NOTIFY_SIZE = 64 * 1024
MAX_RESPONSE_SIZE = 64 * 1024
BEIJING = timezone(timedelta(hours=8))  # Alipay reads every timestamp as GMT+8
SUBJECT_FORBIDDEN = re.compile(r"[/=&]")  # Alipay refuses these in `subject`
SUBJECT_MAX = 256
TIMEOUT_MAX_MINUTES = 15 * 24 * 60
JSON_SPACE = re.compile(r"[ \t\n\r]*")


class AlipayError(GatewayError):
    """Alipay refused a call, or answered with something we could not verify."""


def request_content(params: Mapping[str, str]) -> str:
    """What a request's `sign` covers: every non-empty parameter but `sign`, sorted by
    name, as `k=v` joined by `&`, values as they are (not URL-encoded)."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def notify_content(params: Mapping[str, str]) -> str:
    """What a notification's `sign` covers: every field but `sign` and `sign_type`,
    sorted by name, as `k=v` joined by `&`, with the URL-decoded values."""
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


def rsa2_sign(content: str, private_key: rsa.RSAPrivateKey) -> str:
    return base64.b64encode(private_key.sign(content.encode(), padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa2_verify(content: str, signature, public_key: rsa.RSAPublicKey) -> bool:
    if not isinstance(signature, str) or not signature:
        return False
    try:
        public_key.verify(
            base64.b64decode(signature, validate=True), content.encode(), padding.PKCS1v15(), hashes.SHA256()
        )
    except (binascii.Error, ValueError, InvalidSignature):
        return False
    return True


def _key_bytes(text: str) -> tuple[bool, bytes]:
    text = text.strip()
    if text.startswith("-----BEGIN"):
        return True, text.encode()
    return False, base64.b64decode("".join(text.split()), validate=True)


def load_private_key(text: str) -> rsa.RSAPrivateKey:
    try:
        pem, data = _key_bytes(text)
        key = (serialization.load_pem_private_key if pem else serialization.load_der_private_key)(data, None)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPrivateKey):
        raise AlipayError("app_private_key is not an RSA private key")
    return key


def load_public_key(text: str) -> rsa.RSAPublicKey:
    try:
        pem, data = _key_bytes(text)
        key = (serialization.load_pem_public_key if pem else serialization.load_der_public_key)(data)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        key = None
    if not isinstance(key, rsa.RSAPublicKey):
        raise AlipayError("alipay_public_key is not an RSA public key")
    return key


def top_level_members(text: str) -> dict[str, tuple[object, str]]:
    """The members of a JSON object, each as (parsed value, its exact source text).

    Alipay signs the `<method>_response` member as the very characters it sent, so the
    text must be cut out of the body, never re-serialised. ValueError for anything but
    one JSON object with unique keys.
    """
    decoder = json.JSONDecoder()
    pos = _skip_space(text, 0)
    if text[pos : pos + 1] != "{":
        raise ValueError("not a JSON object")
    pos = _skip_space(text, pos + 1)
    members: dict[str, tuple[object, str]] = {}
    if text[pos : pos + 1] == "}":
        pos += 1
    else:
        while True:
            key, pos = decoder.raw_decode(text, pos)
            if not isinstance(key, str) or key in members:
                raise ValueError("bad or repeated member name")
            pos = _skip_space(text, pos)
            if text[pos : pos + 1] != ":":
                raise ValueError("missing colon")
            start = _skip_space(text, pos + 1)
            value, pos = decoder.raw_decode(text, start)
            members[key] = (value, text[start:pos])
            pos = _skip_space(text, pos)
            separator = text[pos : pos + 1]
            pos = _skip_space(text, pos + 1)
            if separator == "}":
                break
            if separator != ",":
                raise ValueError("missing comma")
    if _skip_space(text, pos) != len(text):
        raise ValueError("text after the object")
    return members


def _skip_space(text: str, pos: int) -> int:
    """Where the JSON whitespace at `pos` (possibly none) ends."""
    space = JSON_SPACE.match(text, pos)
    return space.end() if space else pos


def clean_subject(subject: str, fallback: str) -> str:
    return " ".join(SUBJECT_FORBIDDEN.sub(" ", subject).split())[:SUBJECT_MAX] or fallback


class AlipayGateway(Gateway):
    name = "alipay"
    settings_fields = ("app_id", "app_private_key", "alipay_public_key", "seller_id", "mode", "gateway_url")
    secret_fields = ("app_private_key",)
    success_body = "success"
    failure_body = "fail"

    # -- paying ---------------------------------------------------------------------------

    def method_for(self, client: str) -> str | None:
        products = self._products()
        return next((product for product in PREFERENCES.get(client, ()) if product in products), None)

    def create_payment(self, order: OrderRef) -> PaymentStart:
        if order.currency != CURRENCY:
            raise AlipayError(f"Alipay charges {CURRENCY} only, not {order.currency}")
        product = self.method_for(order.client)
        if product is None:
            raise AlipayError(f"Alipay cannot take a payment in the {order.client} client")
        biz = {
            "out_trade_no": order.number,
            "total_amount": yuan_text(order.total),
            "subject": clean_subject(order.subject, order.number),
        }
        if order.expires_at is not None:
            biz["timeout_express"] = _timeout_express(order.expires_at)
        if product in PAGE_PRODUCTS:
            method, product_code = PAGE_PRODUCTS[product]
            order_page = order.base_url + order.return_url
            biz["product_code"] = product_code
            if product == "wap":
                biz["quit_url"] = order_page  # where the phone cashier's "back" leads
            params = self._signed_params(method, biz, notify_url=order.notify_url, return_url=order_page)
            return PaymentStart(redirect_url=self._url(params), method=product)
        biz["product_code"] = "FACE_TO_FACE_PAYMENT"
        answer = self._call("alipay.trade.precreate", biz, notify_url=order.notify_url)
        _require_success(answer)
        qr_code = answer.get("qr_code")
        if answer.get("out_trade_no") != order.number or not isinstance(qr_code, str) or not qr_code:
            raise AlipayError("precreate answer is not for this order or has no qr_code")
        return PaymentStart(qr_text=qr_code, method=product)

    def _products(self) -> tuple[str, ...]:
        """The products named by the `mode` setting (precreate when it is empty)."""
        products = tuple(name.strip().lower() for name in (self.settings.get("mode") or "").split(",") if name.strip())
        unknown = [name for name in products if name not in MODES]
        if unknown:
            raise AlipayError(f"unknown Alipay mode {unknown[0][:40]!r}")
        return products or ("precreate",)

    # -- notifications --------------------------------------------------------------------

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        if body is not None and len(body) > MAX_NOTIFY_SIZE:
            raise InvalidNotify("notification too large")
        params = _single_values(form)
        if not params.get("sign"):
            raise InvalidNotify("missing sign")
        if params.get("sign_type") != "RSA2":
            raise InvalidNotify("sign_type is not RSA2")
        app_id = self.settings.get("app_id")
        try:
            public_key = load_public_key(self.settings.get("alipay_public_key", ""))
        except AlipayError as exc:
            raise InvalidNotify("alipay_public_key is missing or invalid") from exc
        if not app_id:
            raise InvalidNotify("app_id is not configured")
        if not rsa2_verify(notify_content(params), params.get("sign"), public_key):
            raise InvalidNotify("bad signature")
        for field in ("app_id", "out_trade_no", "trade_no", "total_amount", "trade_status"):
            if not params.get(field):
                raise InvalidNotify(f"missing {field}")
        if params["app_id"] != app_id:
            raise InvalidNotify("app_id is not ours")
        seller_id = self.settings.get("seller_id")
        if seller_id and params.get("seller_id") != seller_id:
            raise InvalidNotify("seller_id is not ours")
        status = params["trade_status"]
        if status not in PAID_STATUSES + UNPAID_STATUSES:
            raise InvalidNotify("unknown trade_status")
        amount = fen_from_yuan(params["total_amount"])
        # A closed or still-waiting trade is acknowledged (or Alipay repeats it) and changes nothing.
        return Notice(
            order_number=params["out_trade_no"],
            trade_no=params["trade_no"],
            amount=amount,
            currency=CURRENCY,
            paid=status in PAID_STATUSES,
        )

    # -- asking Alipay --------------------------------------------------------------------

    def query(self, order: OrderRef) -> Notice | None:
        answer = self._call("alipay.trade.query", {"out_trade_no": order.number})
        if answer.get("code") == BUSINESS_FAILED_CODE and answer.get("sub_code") == "ACQ.TRADE_NOT_EXIST":
            return None  # a precreated trade exists only once the buyer has scanned it
        _require_success(answer)
        status = answer.get("trade_status")
        if status in UNPAID_STATUSES:
            return None
        if status not in PAID_STATUSES:
            raise AlipayError("query answered an unknown trade_status")
        trade_no = answer.get("trade_no")
        if answer.get("out_trade_no") != order.number or not isinstance(trade_no, str) or not trade_no:
            raise InvalidNotify("query answer is not for this order")
        amount = fen_from_yuan(answer.get("total_amount"))
        if amount != order.total:
            raise InvalidNotify(f"query answer amount {amount} != {order.total}")
        return Notice(order_number=order.number, trade_no=trade_no, amount=amount, currency=CURRENCY, paid=True)

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        trade = {"out_trade_no": order_number, "trade_no": trade_no}
        answer = self._call(
            "alipay.trade.refund", {**trade, "refund_amount": yuan_text(amount), "out_request_no": refund_no}
        )
        code, sub_code = answer.get("code"), answer.get("sub_code")
        if code == BUSINESS_FAILED_CODE and sub_code not in RETRYABLE_SUB_CODES:
            raise CannotRefund(f"Alipay refused the refund: {sub_code}")
        _require_success(answer)
        if answer.get("trade_no") != trade_no or answer.get("out_trade_no") != order_number:
            raise AlipayError("refund answer is not for this trade")
        if answer.get("fund_change") != "Y":
            # Alipay documents fund_change=N as "not moved by this call": a repeated request
            # for a refund already made, or one still in progress. Its refund query tells which.
            confirm = self._call("alipay.trade.fastpay.refund.query", {**trade, "out_request_no": refund_no})
            _require_success(confirm)
            if confirm.get("refund_status") != "REFUND_SUCCESS":
                raise AlipayError(f"refund {refund_no} is not confirmed yet")
        return f"{trade_no}/{refund_no}"

    # -- the OpenAPI gateway --------------------------------------------------------------

    def _signed_params(self, method: str, biz: dict, **extra: str) -> dict[str, str]:
        app_id = self.settings.get("app_id")
        if not app_id:
            raise AlipayError("app_id is not configured")
        params = {
            "app_id": app_id,
            "method": method,
            "format": "JSON",
            "charset": "utf-8",
            "sign_type": "RSA2",
            "timestamp": clock.now().astimezone(BEIJING).strftime("%Y-%m-%d %H:%M:%S"),
            "version": "1.0",
            **{k: v for k, v in extra.items() if v},
            "biz_content": json.dumps(biz, ensure_ascii=False, separators=(",", ":")),
        }
        params["sign"] = rsa2_sign(request_content(params), load_private_key(self.settings.get("app_private_key", "")))
        return params

    def _url(self, params: Mapping[str, str]) -> str:
        base = self.settings.get("gateway_url") or GATEWAY_URL
        return base + ("&" if "?" in base else "?") + urlencode(params)

    def _call(self, method: str, biz: dict, **extra: str) -> dict:
        """POST a signed request; the `<method>_response` object once its signature verifies."""
        params = self._signed_params(method, biz, **extra)
        form = {"biz_content": params.pop("biz_content")}
        response = self.http.post(
            self._url(params),
            data=form,
            timeout=HTTP_TIMEOUT,
            headers={"Content-Type": "application/x-www-form-urlencoded;charset=utf-8"},
        )
        if response.status_code != 200:
            raise AlipayError(f"{method}: HTTP {response.status_code}")
        return self._verified_answer(method, response.content)

    def _verified_answer(self, method: str, raw: bytes) -> dict:
        if len(raw) > MAX_RESPONSE_SIZE:
            raise AlipayError(f"{method}: answer too large")
        try:
            members = top_level_members(raw.decode("utf-8"))
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise AlipayError(f"{method}: answer is not a JSON object") from exc
        key = method.replace(".", "_") + "_response"
        value, text = members.get(key) or members.get("error_response") or (None, "")
        if not isinstance(value, dict):
            raise AlipayError(f"{method}: answer has no {key}")
        signature = members.get("sign", (None, ""))[0]
        if not signature:
            # Alipay leaves some gateway-level errors unsigned; they are errors either way,
            # and an unsigned success is never believed.
            raise AlipayError(f"{method}: unsigned answer {_describe(value)}")
        if not rsa2_verify(text, signature, load_public_key(self.settings.get("alipay_public_key", ""))):
            raise AlipayError(f"{method}: answer signature does not verify")
        return value


def _require_success(answer: dict) -> None:
    if answer.get("code") != SUCCESS_CODE:
        raise AlipayError(f"Alipay answered {_describe(answer)}")


def _describe(answer: dict) -> str:
    return " ".join(str(answer.get(k))[:64] for k in ("code", "sub_code") if answer.get(k))


def _timeout_express(expires_at: datetime) -> str:
    minutes = int((expires_at - clock.now()).total_seconds() // 60)
    return f"{min(max(1, minutes), TIMEOUT_MAX_MINUTES)}m"


def _single_values(form) -> dict[str, str]:
    """The notification's fields; a field sent twice, a non-string value or an
    oversized form is refused."""
    pairs = form.lists() if hasattr(form, "lists") else ((k, [v]) for k, v in form.items())
    params: dict[str, str] = {}
    size = 0
    for key, values in pairs:
        if len(values) != 1:
            raise InvalidNotify("a field is repeated")
        value = values[0]
        if not isinstance(key, str) or not isinstance(value, str):
            raise InvalidNotify("a field is not a string")
        size += len(key) + len(value)
        if size > MAX_NOTIFY_SIZE:
            raise InvalidNotify("notification too large")
        params[key] = value
    return params
