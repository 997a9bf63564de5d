"""易支付 / EPay: the 彩虹易支付 protocol, signed with MD5 (the classic interface) or RSA (its V2
interface), chosen by the `sign_type` setting.

Settings, copied from the provider's merchant console (商户后台 → API 信息):

- `api_url`: the provider's 接口地址, e.g. `https://pay.example.com/`. Every 易支付 provider runs its
  own server, so there is no default.
- `pid`: 商户ID.
- `sign_type`: `MD5` (the default) or `RSA` (V2).
- `key`: 商户密钥, for MD5.
- `merchant_private_key`: 商户私钥, for RSA (PEM, or the bare base64 the console shows).
- `platform_public_key`: 平台公钥, for RSA (PEM or bare base64).
- `pay_type`: optional 支付方式 to go straight to (`alipay`, `wxpay`, `qqpay`, ...); empty lets the
  buyer choose on the provider's cashier page.

Where the buyer is (`method_for`): a desktop or phone browser is redirected (`redirect`). Inside
WeChat, QQ and Weibo 易支付 is not offered: their in-app browsers block the Alipay and WeChat Pay
pages a 易支付 cashier sends the buyer on to, so the pay page asks the buyer to open it in their
browser instead. Inside the Alipay app it is offered only when `pay_type` is `alipay` (the app
cannot open any other way of paying).

Notify URL: `<FAKA_BASE_URL>/pay/epay/notify`, sent with every payment (nothing to set at the
provider). The provider calls it with the query parameters `pid`, `trade_no`, `out_trade_no`, `type`,
`name`, `money`, `trade_status` (also `param`, `buyer`, `api_trade_no`; with RSA `timestamp`), `sign`
and `sign_type`, and expects the plain-text body `success`; any other answer makes it call again.
Only `trade_status=TRADE_SUCCESS` pays an order.

Signing: the parameters other than `sign` and `sign_type` whose value is not empty, sorted by name
and joined as `k=v&k=v` (values as they are, not URL-encoded). MD5: `sign` is the lower-case hex MD5
of that string followed directly by the key. RSA: `sign` is the base64 SHA256withRSA signature of it
with the merchant private key; the platform signs its notifications and API answers the same way
with its own key, and each carries a unix `timestamp` that must be within five minutes of ours.

Calls: the buyer is redirected to `submit.php` (MD5) or `api/pay/submit` (RSA). An order's payment is
queried with `api.php?act=order` (MD5: the key travels in the query string, as that API documents,
and its answer is not signed; the newest 彩虹 builds switched that form off and refuse it) or
`api/pay/query` (RSA: a signed answer). Only the V2 interface documents a refund (`api/pay/refund`);
with MD5 the operator pays refunds back by hand. Choose RSA where the provider offers it.
"""

import base64
import hashlib
import hmac
import json
import re
from collections.abc import Mapping
from urllib.parse import urlencode

import requests
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from faka.core import clock
from faka.payments.gateways.base import (
    HTTP_TIMEOUT,
    CannotRefund,
    Gateway,
    GatewayError,
    IgnoredNotify,
    InvalidNotify,
    Notice,
    OrderRef,
    PaymentStart,
    fen_from_yuan,
    yuan_text,
)
from faka.payments.gateways.clients import ALIPAY, DESKTOP, PHONE

CURRENCY = "CNY"  # 易支付 takes yuan only
MAX_NOTIFY_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 256 * 1024
TIMESTAMP_TOLERANCE = 300  # seconds either way, as the V2 SDK checks
_PHP_BLANK = " \t\n\r\0\x0b"  # what PHP's trim() removes


class EpayError(GatewayError):
    """The provider could not be reached, refused a call, answered something we cannot trust, or
    the gateway is not set up."""


def sign_content(fields: Mapping[str, str], skip_blank: bool = False) -> str:
    """The string both sides sign. The V2 SDK also leaves out values that are only
    whitespace (`skip_blank`); the MD5 interface leaves out only empty ones."""
    return "&".join(
        f"{name}={value}"
        for name, value in sorted(fields.items())
        if name not in ("sign", "sign_type") and (value.strip(_PHP_BLANK) if skip_blank else value) != ""
    )


def md5_sign(fields: Mapping[str, str], key: str) -> str:
    return hashlib.md5((sign_content(fields) + key).encode()).hexdigest()


class _Number(str):
    """A JSON number kept as the literal the provider wrote, so it is signed as the provider signed
    it and money never passes through a float."""


def _refuse_constant(name: str):
    raise ValueError(f"JSON constant {name} is not allowed")


def _php_text(value) -> str | None:
    """A JSON value as PHP turns it into the string it signs (None: the SDK leaves it out)."""
    if value is None or value is False or isinstance(value, (dict, list)):
        return None
    if value is True:
        return "1"
    if isinstance(value, _Number) and re.fullmatch(r"-?\d+\.\d+", value):
        return value.rstrip("0").rstrip(".")  # PHP prints 1.50 as 1.5 and 2.0 as 2
    if isinstance(value, _Number) and not re.fullmatch(r"-?\d+", value):
        raise EpayError("answer has a number in a form we cannot sign")
    return value


def _text(value) -> str:
    """A string or number field of an answer as text ("" for anything else)."""
    return value if isinstance(value, str) else ""


class EpayGateway(Gateway):
    name = "epay"
    settings_fields = ("api_url", "pid", "sign_type", "key", "merchant_private_key", "platform_public_key", "pay_type")
    secret_fields = ("key", "merchant_private_key")

    @property
    def uses_rsa(self) -> bool:
        return self.settings.get("sign_type", "").strip().upper() == "RSA"

    # -- paying ---------------------------------------------------------------------------

    def method_for(self, client: str) -> str | None:
        if client in (DESKTOP, PHONE):
            return "redirect"
        if client == ALIPAY and self.settings.get("pay_type", "").strip() == "alipay":
            return "redirect"
        return None  # WeChat, QQ and Weibo block the pages the cashier sends the buyer to

    def create_payment(self, order: OrderRef) -> PaymentStart:
        if order.currency != CURRENCY:
            raise EpayError(f"易支付 takes {CURRENCY} only, order {order.number} is in {order.currency}")
        method = self.method_for(order.client)
        if method is None:
            raise EpayError(f"易支付 cannot take a payment in the {order.client} client")
        fields = {
            "type": self.settings.get("pay_type", "").strip(),
            "out_trade_no": order.number,
            "notify_url": order.notify_url,
            "return_url": order.base_url + order.return_url,
            "name": order.subject,
            "money": yuan_text(order.total),
        }
        submit_url = self._api_url("api/pay/submit" if self.uses_rsa else "submit.php")
        return PaymentStart(redirect_url=submit_url + "?" + urlencode(self._signed(fields)), method=method)

    # -- notifications --------------------------------------------------------------------

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        fields = _notify_fields(form, body)
        self._check_signature(fields)
        pid = self.settings.get("pid", "")
        if fields.get("pid") != pid:
            raise InvalidNotify("pid is not our merchant id")
        if fields.get("trade_status") != "TRADE_SUCCESS":
            raise IgnoredNotify(f"trade_status {fields.get('trade_status', '')[:40]!r}")
        order_number, trade_no = fields.get("out_trade_no", ""), fields.get("trade_no", "")
        if not order_number or not trade_no:
            raise InvalidNotify("missing out_trade_no or trade_no")
        return Notice(
            order_number=order_number,
            trade_no=trade_no,
            amount=fen_from_yuan(fields.get("money", "")),
            currency=CURRENCY,
            paid=True,
        )

    def _check_signature(self, fields: dict[str, str]) -> None:
        given = fields.get("sign", "")
        if not given:
            raise InvalidNotify("unsigned")
        if self.uses_rsa:
            if fields.get("sign_type") != "RSA":
                raise InvalidNotify("sign_type is not RSA")
            try:
                public_key = self._platform_public_key()
            except EpayError as exc:
                raise InvalidNotify(str(exc)) from None
            if not _fresh(fields.get("timestamp", "")):
                raise InvalidNotify("stale or missing timestamp")
            if not _rsa_verifies(public_key, sign_content(fields, skip_blank=True), given):
                raise InvalidNotify("bad signature")
            return
        key = self.settings.get("key", "")
        if not key:
            raise InvalidNotify("no merchant key configured")
        if fields.get("sign_type") != "MD5":
            raise InvalidNotify("sign_type is not MD5")
        # The documented digest is lower-case hex; some providers print it upper-case.
        if not hmac.compare_digest(given.lower().encode(), md5_sign(fields, key).encode()):
            raise InvalidNotify("bad signature")

    # -- asking the provider --------------------------------------------------------------

    def query(self, order: OrderRef) -> Notice | None:
        pid = self.settings.get("pid", "")
        if self.uses_rsa:
            answer = self._call("api/pay/query", {"out_trade_no": order.number})
        else:
            answer = self._read(
                self._request(
                    "get",
                    "api.php",
                    params={
                        "act": "order",
                        "pid": pid,
                        "key": self.settings.get("key", ""),
                        "out_trade_no": order.number,
                    },
                )
            )
            if _text(answer.get("code")) == "-1":
                return None  # 订单号不存在: the buyer never reached the provider's pay page
            if _text(answer.get("code")) != "1":
                raise EpayError(f"易支付 refused the query: {_text(answer.get('msg'))[:200]}")
        if _text(answer.get("pid")) != pid or _text(answer.get("out_trade_no")) != order.number:
            raise InvalidNotify("query answer is for another merchant or order")
        if _text(answer.get("status")) != "1":
            return None  # 0 unpaid; 2 refunded, 3 frozen: nothing to deliver
        amount = fen_from_yuan(_text(answer.get("money")))
        if amount != order.total or order.currency != CURRENCY:
            raise InvalidNotify(f"query answer: paid {amount} {CURRENCY}, order is {order.total} {order.currency}")
        trade_no = _text(answer.get("trade_no"))
        if not trade_no:
            raise InvalidNotify("query answer has no trade_no")
        return Notice(order_number=order.number, trade_no=trade_no, amount=amount, currency=CURRENCY, paid=True)

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        if not self.uses_rsa:
            raise CannotRefund("易支付 (MD5) documents no refund API")
        answer = self._call(
            "api/pay/refund", {"trade_no": trade_no, "money": yuan_text(amount), "out_refund_no": refund_no}
        )
        money = _text(answer.get("money"))
        if money and fen_from_yuan(money) != amount:
            raise EpayError(f"易支付 refunded {money} instead of {yuan_text(amount)}")
        return _text(answer.get("refund_no")) or refund_no

    def _call(self, path: str, fields: dict[str, str]) -> dict:
        """A V2 API call: signed form fields in, a signed JSON answer with code 0 out."""
        answer = self._read(self._request("post", path, data=self._signed(fields)))
        if _text(answer.get("code")) != "0":
            raise EpayError(f"易支付 refused {path}: {_text(answer.get('msg'))[:200]}")
        signed = {name: text for name, value in answer.items() if (text := _php_text(value)) is not None}
        if signed.get("sign_type", "RSA") != "RSA" or not _fresh(signed.get("timestamp", "")):
            raise EpayError(f"易支付 answer to {path} is stale or not RSA-signed")
        if not _rsa_verifies(
            self._platform_public_key(), sign_content(signed, skip_blank=True), signed.get("sign", "")
        ):
            raise EpayError(f"易支付 answer to {path} has a bad signature")
        return answer

    def _request(self, method: str, path: str, **kwargs) -> requests.Response:
        try:
            return self.http.request(method, self._api_url(path), timeout=HTTP_TIMEOUT, stream=True, **kwargs)
        except requests.RequestException as exc:
            # The exception's text holds the URL, and the MD5 query URL holds the key.
            raise EpayError(f"易支付 {path} unreachable: {type(exc).__name__}") from None

    @staticmethod
    def _read(response: requests.Response) -> dict:
        with response:
            if response.status_code != 200:
                raise EpayError(f"易支付 answered HTTP {response.status_code}")
            raw = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
        if len(raw) > MAX_ANSWER_BYTES:
            raise EpayError("易支付 answer too large")
        try:
            answer = json.loads(
                raw.decode("utf-8-sig"), parse_int=_Number, parse_float=_Number, parse_constant=_refuse_constant
            )
        except ValueError:
            raise EpayError("易支付 answer is not JSON") from None
        if not isinstance(answer, dict):
            raise EpayError("易支付 answer is not a JSON object")
        return answer

    # -- keys and signing -----------------------------------------------------------------

    def _api_url(self, path: str) -> str:
        base = self.settings.get("api_url", "").strip()
        if not base.startswith(("https://", "http://")):
            raise EpayError("api_url is not set to the provider's http(s) address")
        return base.rstrip("/") + "/" + path

    def _signed(self, fields: dict[str, str]) -> dict[str, str]:
        signed = {name: value for name, value in fields.items() if value != ""}
        signed["pid"] = self.settings.get("pid", "")
        if not signed["pid"]:
            raise EpayError("pid is not set")
        if self.uses_rsa:
            signed["timestamp"] = str(int(clock.now().timestamp()))
            signature = self._merchant_private_key().sign(
                sign_content(signed, skip_blank=True).encode(), padding.PKCS1v15(), hashes.SHA256()
            )
            signed["sign"], signed["sign_type"] = base64.b64encode(signature).decode(), "RSA"
        else:
            key = self.settings.get("key", "")
            if not key:
                raise EpayError("key is not set")
            signed["sign"], signed["sign_type"] = md5_sign(signed, key), "MD5"
        return signed

    def _merchant_private_key(self) -> rsa.RSAPrivateKey:
        key = _load_key(self.settings.get("merchant_private_key", ""), private=True)
        if not isinstance(key, rsa.RSAPrivateKey):
            raise EpayError("merchant_private_key is not a usable RSA private key")
        return key

    def _platform_public_key(self) -> rsa.RSAPublicKey:
        key = _load_key(self.settings.get("platform_public_key", ""), private=False)
        if not isinstance(key, rsa.RSAPublicKey):
            raise EpayError("platform_public_key is not a usable RSA public key")
        return key


def _load_key(text: str, private: bool):
    """A key as PEM (also squeezed onto one line by a form field) or as the bare base64 DER the
    易支付 console shows; None when it is not a usable key."""
    der_base64 = "".join(re.sub(r"-----(BEGIN|END)[A-Z ]*-----", "", text).split())
    try:
        der = base64.b64decode(der_base64, validate=True)
        if private:
            return serialization.load_der_private_key(der, password=None)
        return serialization.load_der_public_key(der)
    except (ValueError, TypeError, UnsupportedAlgorithm):
        return None


def _rsa_verifies(public_key: rsa.RSAPublicKey, content: str, sign: str) -> bool:
    try:
        public_key.verify(base64.b64decode(sign, validate=True), content.encode(), padding.PKCS1v15(), hashes.SHA256())
    except (ValueError, InvalidSignature):
        return False
    return True


def _fresh(timestamp: str) -> bool:
    if not re.fullmatch(r"\d{1,12}", timestamp):
        return False
    return abs(clock.now().timestamp() - int(timestamp)) <= TIMESTAMP_TOLERANCE


def _notify_fields(form: Mapping[str, str], body: bytes) -> dict[str, str]:
    """The notification's parameters, each exactly one string, within a sane size."""
    if len(body) > MAX_NOTIFY_BYTES:
        raise InvalidNotify("body too large")
    fields, size = {}, 0
    for name in form:
        values = form.getlist(name) if hasattr(form, "getlist") else [form[name]]
        if not isinstance(name, str) or not all(isinstance(value, str) for value in values):
            raise InvalidNotify("parameter that is not a string")
        if len(values) != 1:
            raise InvalidNotify(f"repeated parameter {name[:40]!r}")
        size += len(name) + len(values[0])
        if size > MAX_NOTIFY_BYTES:
            raise InvalidNotify("parameters too large")
        fields[name] = values[0]
    return fields
