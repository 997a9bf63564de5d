"""WeChat Pay API v3: Native (扫码支付), H5 (手机浏览器) and JSAPI (微信内网页, 公众号支付).

Implemented from WeChat Pay's API v3 documentation with `cryptography`: the
`wechatpayv3` SDK hard-codes the API host, calls `requests` directly without our
session, and downloads platform certificates from its constructor.

How the buyer pays depends on where they are (`method_for`) and on the `methods` setting
(the products activated for the merchant number):

- A desktop browser: `native` (a QR code the buyer scans with WeChat).
- A phone browser: `h5` when enabled, else `native` (the QR code, for another device).
- WeChat's own browser (phone or PC client): `jsapi` when enabled, else nothing (the H5
  page refuses to open inside WeChat).
- QQ, Weibo and the Alipay app: nothing (they do not open WeChat Pay). Where nothing is
  offered, the pay page asks the buyer to open the page in their browser.

A method that is not listed in `methods` is never used: with `methods=jsapi` a desktop
buyer is not offered WeChat Pay at all.

Native: `POST /v3/pay/transactions/native` → `code_url`, shown as a QR code.

H5: `POST /v3/pay/transactions/h5` with `scene_info: {payer_client_ip, h5_info: {type:
"Wap"}}` (the buyer's IP is required) → `h5_url`; the buyer is redirected to it with
`&redirect_url=<the url-encoded order page>` appended, where WeChat sends them after paying.
The site's domain must be set as the H5 支付域名 in the merchant platform.

JSAPI: WeChat needs the buyer's openid for the official account whose AppID is `appid`,
so the buyer first passes through the account's silent OAuth (网页授权, `snsapi_base`):
`payer_sign_in_url` is `<oauth_base>/connect/oauth2/authorize?appid=…&redirect_uri=…&
response_type=code&scope=snsapi_base&state=…#wechat_redirect` (WeChat documents `state` as
a-zA-Z0-9, at most 128 bytes), and WeChat sends the buyer back to the callback with `code`
and `state`. `payer_from_callback` exchanges the code with `GET <sns_base>/sns/oauth2/
access_token?appid=…&secret=<mp_secret>&code=…&grant_type=authorization_code` for the
`openid` (the secret travels in that URL, as the API documents: keep the `urllib3` logger
above DEBUG). Then `POST /v3/pay/transactions/jsapi` with `payer: {openid}` → `prepay_id`,
and the pay page calls `WeixinJSBridge.invoke("getBrandWCPayRequest", …)` with `appId`,
`timeStamp`, `nonceStr`, `package` (`prepay_id=…`), `signType` (`RSA`) and `paySign`: the
base64 SHA256withRSA signature, with the merchant private key, of
`appId\\ntimeStamp\\nnonceStr\\npackage\\n` (JSAPI调起支付签名). The site's pay page
directory must be set as a JSAPI 支付授权目录, and its domain as the official account's
网页授权域名.

Every answer of the three order calls is verified like any other API answer (the platform
signature over `timestamp\\nnonce\\nbody\\n`, its serial and its age).

Settings, from the merchant platform (pay.weixin.qq.com):

- `mchid`: 商户号.
- `appid`: the AppID bound to that merchant number (账户中心 → AppID账号管理).
- `merchant_serial_no`: 商户API证书序列号 (账户中心 → API安全 → API证书).
- `merchant_private_key` (secret): the whole text of `apiclient_key.pem`.
- `apiv3_key` (secret): APIv3密钥, the 32 characters set under API安全.
- `platform_public_key`: 微信支付公钥 (`pub_key.pem`, API安全 → 微信支付公钥); a
  platform certificate PEM (`wechatpay_*.pem`) is accepted too.
- `platform_serial`: 微信支付公钥ID (`PUB_KEY_ID_...`), or that certificate's serial
  number. Notifications and API answers signed under another serial are refused.
- `api_base`: `https://api.mch.weixin.qq.com` (the backup host is
  `https://api2.mch.weixin.qq.com`).
- `methods`: the products to use, comma-separated among `native`, `h5` and `jsapi`
  (产品中心 → 我的产品: only the activated ones); `native` when empty, as before.
- `mp_secret` (secret): for `jsapi`, the official account's AppSecret (公众号 → 设置与开发 →
  基本配置 → 开发者密码), whose AppID is `appid`.
- `oauth_base`: `https://open.weixin.qq.com` (the OAuth page the buyer is sent to).
- `sns_base`: `https://api.weixin.qq.com` (where the OAuth code is exchanged).

Notify URL: `<FAKA_BASE_URL>/pay/wechat/notify` is sent with every order as
`notify_url`, so nothing is configured for it in the console; it must be HTTPS and
reachable from the internet. The notification's signature (`Wechatpay-Signature` over
`timestamp\\nnonce\\nbody\\n`, SHA256withRSA with the platform key), its timestamp (at
most 5 minutes off), the AES-256-GCM `resource` (APIv3 key) and the merchant number,
AppID, order number, amount and currency inside are checked. Answer: HTTP 204 with no
body when accepted; HTTP 400 with `{"code": "FAIL", "message": "..."}` when refused,
which WeChat Pay sends again later. Orders are in CNY only.
"""

import base64
import json
import re
import secrets
from collections.abc import Mapping
from datetime import UTC
from typing import Any, NotRequired, TypedDict
from urllib.parse import quote, urlencode, urlsplit

import requests
from cryptography.exceptions import InvalidSignature, InvalidTag
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from cryptography.hazmat.primitives.asymmetric.types import PublicKeyTypes
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from cryptography.x509 import load_pem_x509_certificate

from faka.core import clock
from faka.core.text import is_text
from faka.payments.gateways.base import (
    HTTP_TIMEOUT,
    CannotRefund,
    Gateway,
    GatewayError,
    InvalidNotify,
    Notice,
    NotifyAnswer,
    OrderRef,
    PaymentStart,
)
from faka.payments.gateways.clients import DESKTOP, PHONE, WECHAT

API_BASE = "https://api.mch.weixin.qq.com"
OAUTH_BASE = "https://open.weixin.qq.com"
SNS_BASE = "https://api.weixin.qq.com"
METHODS = ("native", "h5", "jsapi")
SCHEMA = "WECHATPAY2-SHA256-RSA2048"
MAX_BODY = 64 * 1024
TIMESTAMP_TOLERANCE = 300  # seconds between WeChat Pay's clock and ours
DESCRIPTION_BYTES = 127
PEM_ARMOUR = re.compile(r"-----BEGIN (?P<label>[A-Z0-9 ]+)-----(?P<body>[^-]*)-----END (?P=label)-----")
# Refund errors worth trying again later; any other refusal needs a person.
RETRYABLE_REFUND_CODES = {"SYSTEM_ERROR", "FREQUENCY_LIMITED", "NOT_ENOUGH"}


class WechatPayError(GatewayError):
    """WeChat Pay refused a call, or answered something that cannot be trusted."""


class _Amount(TypedDict):
    total: int  # fen
    currency: str


class _SceneInfo(TypedDict):
    payer_client_ip: str
    h5_info: NotRequired[dict[str, str]]


class _OrderRequest(TypedDict):
    """The body of POST /v3/pay/transactions/{native,h5,jsapi}."""

    appid: str
    mchid: str
    description: str
    out_trade_no: str
    notify_url: str
    amount: _Amount
    time_expire: NotRequired[str]
    scene_info: NotRequired[_SceneInfo]
    payer: NotRequired[dict[str, str]]  # jsapi: {"openid": ...}


class WechatGateway(Gateway):
    name = "wechat"
    settings_fields = (
        "mchid",
        "appid",
        "merchant_serial_no",
        "merchant_private_key",
        "apiv3_key",
        "platform_public_key",
        "platform_serial",
        "api_base",
        "methods",
        "mp_secret",
        "oauth_base",
        "sns_base",
    )
    secret_fields = ("merchant_private_key", "apiv3_key", "mp_secret")

    def answer(self, accepted: bool) -> NotifyAnswer:
        if accepted:
            return NotifyAnswer("", status=204)
        body = json.dumps({"code": "FAIL", "message": "notification rejected"})
        return NotifyAnswer(body, status=400, content_type="application/json")

    # -- paying ----------------------------------------------------------------------

    def method_for(self, client: str) -> str | None:
        enabled = self._methods()
        wanted: tuple[str, ...]
        if client == WECHAT:
            wanted = ("jsapi",)
        elif client == PHONE:
            wanted = ("h5", "native")
        elif client == DESKTOP:
            wanted = ("native",)
        else:
            wanted = ()  # QQ, Weibo and the Alipay app do not open WeChat Pay
        return next((method for method in wanted if method in enabled), None)

    def payer_sign_in_url(self, order: OrderRef, callback_url: str, state: str) -> str | None:
        if order.payer or self.method_for(order.client) != "jsapi":
            return None
        query = urlencode(
            {
                "appid": self._setting("appid"),
                "redirect_uri": callback_url,
                "response_type": "code",
                "scope": "snsapi_base",
                "state": state,
            },
            quote_via=quote,
        )
        return f"{self._base('oauth_base', OAUTH_BASE)}/connect/oauth2/authorize?{query}#wechat_redirect"

    def payer_from_callback(self, args: Mapping[str, str]) -> str:
        code = args.get("code")
        if not is_text(code):
            raise WechatPayError("WeChat sent the buyer back without a code (sign-in refused or cancelled)")
        secret = self._setting("mp_secret")
        try:
            response = self.http.get(
                f"{self._base('sns_base', SNS_BASE)}/sns/oauth2/access_token",
                params={
                    "appid": self._setting("appid"),
                    "secret": secret,
                    "code": code,
                    "grant_type": "authorization_code",
                },
                timeout=HTTP_TIMEOUT,
            )
        except requests.RequestException as exc:
            # The exception's text holds the URL, and the URL holds the secret.
            raise WechatPayError(f"WeChat OAuth unreachable: {type(exc).__name__}") from None
        if response.status_code != 200:
            raise WechatPayError(f"WeChat OAuth answered HTTP {response.status_code}")
        if len(response.content) > MAX_BODY:
            raise WechatPayError("WeChat OAuth answer too large")
        try:
            answer = _json_object(response.content)
        except InvalidNotify:
            raise WechatPayError("WeChat OAuth answer is not a JSON object") from None
        if answer.get("errcode"):
            message = str(answer.get("errmsg", "")).replace(secret, "••••")[:120]
            raise WechatPayError(f"WeChat OAuth refused the code: errcode {str(answer['errcode'])[:12]} {message}")
        if answer.get("is_snapshotuser") == 1:
            raise WechatPayError("WeChat OAuth answered a snapshot-page visitor, who cannot pay")
        openid = answer.get("openid")
        if not is_text(openid) or len(openid) > 128:
            raise WechatPayError("WeChat OAuth answer has no openid")
        return openid

    def create_payment(self, order: OrderRef) -> PaymentStart:
        if order.currency != "CNY":
            raise WechatPayError(f"WeChat Pay charges CNY only, not {order.currency}")
        method = self.method_for(order.client)
        if method is None:
            raise WechatPayError(f"WeChat Pay cannot take a payment in the {order.client} client")
        request: _OrderRequest = {
            "appid": self._setting("appid"),
            "mchid": self._setting("mchid"),
            "description": _clip(order.subject, DESCRIPTION_BYTES),
            "out_trade_no": order.number,
            "notify_url": order.notify_url,
            "amount": {"total": order.total, "currency": "CNY"},
        }
        if order.expires_at is not None:
            request["time_expire"] = order.expires_at.astimezone(UTC).isoformat(timespec="seconds")
        if order.client_ip:
            request["scene_info"] = {"payer_client_ip": order.client_ip}
        if method == "h5":
            if not order.client_ip:
                raise WechatPayError("H5 payment needs the buyer's IP address")
            request["scene_info"] = {"payer_client_ip": order.client_ip, "h5_info": {"type": "Wap"}}
            h5_url = self._place_order("h5", request, "h5_url")
            if not h5_url.startswith(("https://", "http://")):
                raise WechatPayError("h5 order answer's h5_url is not a web address")
            back = quote(order.base_url + order.return_url, safe="")
            return PaymentStart(redirect_url=f"{h5_url}{'&' if '?' in h5_url else '?'}redirect_url={back}", method="h5")
        if method == "jsapi":
            if not order.payer:
                raise WechatPayError("JSAPI payment needs the buyer's openid (payer_sign_in_url first)")
            request["payer"] = {"openid": order.payer}
            prepay_id = self._place_order("jsapi", request, "prepay_id")
            return PaymentStart(method="jsapi", jsapi=self._bridge_request(prepay_id))
        return PaymentStart(qr_text=self._place_order("native", request, "code_url"), method="native")

    def _place_order(self, method: str, request: _OrderRequest, field: str) -> str:
        """Place the order with the method's API; the answer's `field` (signature verified)."""
        status, answer = self._call("POST", f"/v3/pay/transactions/{method}", request)
        if status >= 300:
            raise WechatPayError(f"{method} order refused: {status} {_error_code(answer)}")
        value = answer.get(field)
        if not is_text(value):
            raise WechatPayError(f"{method} order answer has no {field}")
        return value

    def _bridge_request(self, prepay_id: str) -> dict[str, str]:
        """The getBrandWCPayRequest parameters, signed as JSAPI调起支付 documents."""
        params = {
            "appId": self._setting("appid"),
            "timeStamp": str(int(clock.now().timestamp())),
            "nonceStr": secrets.token_hex(16),
            "package": f"prepay_id={prepay_id}",
            "signType": "RSA",
        }
        message = "".join(f"{params[name]}\n" for name in ("appId", "timeStamp", "nonceStr", "package"))
        params["paySign"] = self._merchant_signature(message.encode())
        return params

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        if len(body) > MAX_BODY:
            raise InvalidNotify("body too large")
        problem = self._signature_problem(headers, body)
        if problem:
            raise InvalidNotify(problem)
        event = _json_object(body)
        if event.get("event_type") != "TRANSACTION.SUCCESS":
            raise InvalidNotify("not a TRANSACTION.SUCCESS notification")
        if event.get("resource_type") != "encrypt-resource":
            raise InvalidNotify("resource is not encrypted")
        transaction = self._decrypt(event.get("resource"))
        self._check_ours(transaction)
        if transaction.get("trade_state") != "SUCCESS":
            raise InvalidNotify("trade_state is not SUCCESS")
        return _payment(transaction)

    def query(self, order: OrderRef) -> Notice | None:
        transaction = self._transaction(order.number)
        if transaction is None or transaction.get("trade_state") != "SUCCESS":
            return None
        notice = _payment(transaction)
        if notice.amount != order.total or notice.currency != order.currency:
            raise InvalidNotify(f"paid {notice.amount} {notice.currency}, order is {order.total} {order.currency}")
        return notice

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        # The refund API wants the payment's original total, which only WeChat Pay knows for sure.
        transaction = self._transaction(order_number)
        if transaction is None or transaction.get("trade_state") not in ("SUCCESS", "REFUND"):
            raise CannotRefund("WeChat Pay does not show this order as paid")
        paid = _payment(transaction)
        if paid.trade_no != trade_no:
            raise CannotRefund("WeChat Pay shows another payment for this order")
        request = {
            "transaction_id": trade_no,
            "out_refund_no": refund_no,
            "amount": {"refund": amount, "total": paid.amount, "currency": paid.currency},
        }
        status, answer = self._call("POST", "/v3/refund/domestic/refunds", request)
        if status >= 500:
            raise WechatPayError(f"refund failed: {status}")
        if status >= 300:
            code = _error_code(answer)
            if code in RETRYABLE_REFUND_CODES:
                raise WechatPayError(f"refund failed for now: {code}")
            raise CannotRefund(f"WeChat Pay refused the refund: {code}")
        refund_id, refund_status = answer.get("refund_id"), answer.get("status")
        if answer.get("out_refund_no") != refund_no or not is_text(refund_id):
            raise WechatPayError("refund answer is about another refund")
        if refund_status in ("CLOSED", "ABNORMAL"):
            raise CannotRefund(f"WeChat Pay refund {refund_id} is {refund_status}")
        return refund_id

    # -- the pieces ----------------------------------------------------------------------

    def _setting(self, name: str) -> str:
        value = self.settings.get(name, "").strip()
        if not value:
            raise WechatPayError(f"setting {name} is empty")
        return value

    def _base(self, name: str, default: str) -> str:
        return self.settings.get(name, "").strip().rstrip("/") or default

    def _methods(self) -> tuple[str, ...]:
        """The methods named by the `methods` setting (native when it is empty)."""
        methods = tuple(name.strip().lower() for name in self.settings.get("methods", "").split(",") if name.strip())
        unknown = [name for name in methods if name not in METHODS]
        if unknown:
            raise WechatPayError(f"unknown WeChat Pay method {unknown[0][:40]!r}")
        return methods or ("native",)

    def _transaction(self, order_number: str) -> dict[str, Any] | None:
        """Our order as WeChat Pay's query API describes it (None when it has never heard
        of it), verified to be ours."""
        path = (
            f"/v3/pay/transactions/out-trade-no/{quote(order_number, safe='')}"
            f"?mchid={quote(self._setting('mchid'), safe='')}"
        )
        status, answer = self._call("GET", path)
        if status == 404 and _error_code(answer) == "ORDER_NOT_EXIST":
            return None
        if status >= 300:
            raise WechatPayError(f"order query refused: {status} {_error_code(answer)}")
        self._check_ours(answer)
        if answer["out_trade_no"] != order_number:
            raise InvalidNotify("answer is about another order")
        return answer

    def _check_ours(self, transaction: dict[str, Any]) -> None:
        if transaction.get("mchid") != self._setting("mchid"):
            raise InvalidNotify("wrong mchid")
        if transaction.get("appid") != self._setting("appid"):
            raise InvalidNotify("wrong appid")
        if not is_text(transaction.get("out_trade_no")):
            raise InvalidNotify("missing out_trade_no")

    def _decrypt(self, resource: Any) -> dict[str, Any]:
        if not isinstance(resource, dict) or resource.get("algorithm") != "AEAD_AES_256_GCM":
            raise InvalidNotify("resource is not AEAD_AES_256_GCM")
        if resource.get("original_type", "transaction") != "transaction":
            raise InvalidNotify("resource is not a transaction")
        ciphertext, nonce = resource.get("ciphertext"), resource.get("nonce")
        associated_data = resource.get("associated_data", "")
        if not is_text(ciphertext) or not is_text(nonce) or not isinstance(associated_data, str):
            raise InvalidNotify("resource fields missing")
        key = self.settings.get("apiv3_key", "").encode()
        if len(key) != 32:
            raise InvalidNotify("apiv3_key is not 32 bytes")
        try:
            plain = AESGCM(key).decrypt(
                nonce.encode(), base64.b64decode(ciphertext, validate=True), associated_data.encode()
            )
        except (InvalidTag, ValueError) as exc:
            raise InvalidNotify("resource does not decrypt") from exc
        return _json_object(plain)

    def _signature_problem(self, headers: Mapping[str, str], body: bytes) -> str | None:
        """Why the WeChat Pay signature on this notification or answer does not hold, or None."""
        serial = headers.get("Wechatpay-Serial")
        timestamp = headers.get("Wechatpay-Timestamp")
        nonce = headers.get("Wechatpay-Nonce")
        signature = headers.get("Wechatpay-Signature")
        if not serial or not timestamp or not nonce or not signature:
            return "missing Wechatpay-* signature headers"
        if serial.strip().upper() != self.settings.get("platform_serial", "").strip().upper():
            return "signed under an unknown Wechatpay-Serial"
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
            return "bad Wechatpay-Timestamp"
        if abs(clock.now().timestamp() - int(timestamp)) > TIMESTAMP_TOLERANCE:
            return "Wechatpay-Timestamp more than 5 minutes off"
        try:
            key = self._platform_key()
        except ValueError:
            return "platform_public_key is not a PEM public key or certificate"
        try:
            key.verify(
                base64.b64decode(signature, validate=True),
                f"{timestamp}\n{nonce}\n".encode() + body + b"\n",
                padding.PKCS1v15(),
                hashes.SHA256(),
            )
        except (InvalidSignature, ValueError):
            return "bad signature"
        return None

    def _platform_key(self) -> rsa.RSAPublicKey:
        pem = _pem(self.settings.get("platform_public_key", ""), "PUBLIC KEY")
        key: PublicKeyTypes
        if b"CERTIFICATE" in pem:
            key = load_pem_x509_certificate(pem).public_key()
        else:
            key = serialization.load_pem_public_key(pem)
        if not isinstance(key, rsa.RSAPublicKey):
            raise ValueError("not an RSA key")
        return key

    def _call(self, method: str, path: str, payload: Mapping[str, object] | None = None) -> tuple[int, dict[str, Any]]:
        """Send a signed API v3 request; return the status and the JSON answer, whose
        signature is verified whenever the call succeeded."""
        body = b"" if payload is None else json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()
        url = self.settings.get("api_base", "").strip().rstrip("/") or API_BASE
        url += path
        headers = {"Accept": "application/json", "Authorization": self._authorization(method, url, body)}
        if payload is not None:
            headers["Content-Type"] = "application/json"
        response = self.http.request(method, url, data=body or None, headers=headers, timeout=HTTP_TIMEOUT)
        if response.status_code >= 300:
            try:
                return response.status_code, _json_object(response.content)
            except InvalidNotify:
                return response.status_code, {}
        problem = self._signature_problem(response.headers, response.content)
        if problem:
            raise WechatPayError(f"answer refused: {problem}")
        try:
            return response.status_code, _json_object(response.content) if response.content else {}
        except InvalidNotify as exc:
            raise WechatPayError(f"answer refused: {exc}") from exc

    def _authorization(self, method: str, url: str, body: bytes) -> str:
        parts = urlsplit(url)
        signed_url = parts.path + (f"?{parts.query}" if parts.query else "")
        timestamp = str(int(clock.now().timestamp()))
        nonce = secrets.token_hex(16)
        message = f"{method}\n{signed_url}\n{timestamp}\n{nonce}\n".encode() + body + b"\n"
        signature = self._merchant_signature(message)
        return (
            f'{SCHEMA} mchid="{self._setting("mchid")}",nonce_str="{nonce}",signature="{signature}",'
            f'timestamp="{timestamp}",serial_no="{self._setting("merchant_serial_no")}"'
        )

    def _merchant_signature(self, message: bytes) -> str:
        """Base64 SHA256withRSA of `message` with the merchant's API private key."""
        try:
            key = serialization.load_pem_private_key(
                _pem(self._setting("merchant_private_key"), "PRIVATE KEY"), password=None
            )
        except ValueError as exc:
            raise WechatPayError("merchant_private_key is not a PEM private key") from exc
        if not isinstance(key, rsa.RSAPrivateKey):
            raise WechatPayError("merchant_private_key is not an RSA key")
        return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def _payment(transaction: dict[str, Any]) -> Notice:
    """A paid transaction (already shown to be ours) as a Notice."""
    trade_no, amount = transaction.get("transaction_id"), transaction.get("amount")
    if not is_text(trade_no) or not isinstance(amount, dict):
        raise InvalidNotify("missing transaction_id or amount")
    total, currency = amount.get("total"), amount.get("currency")
    if type(total) is not int or total < 0 or not is_text(currency):
        raise InvalidNotify("bad amount")
    return Notice(
        order_number=transaction["out_trade_no"], trade_no=trade_no, amount=total, currency=currency, paid=True
    )


def _pem(text: str, label: str) -> bytes:
    """PEM text as cryptography reads it, also when pasted into a one-line field (its line
    breaks lost) or without its BEGIN/END lines (then `label` names what it is)."""
    match = PEM_ARMOUR.search(text)
    if match:
        label, text = match["label"], match["body"]
    body = "".join(text.split())
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return "\n".join([f"-----BEGIN {label}-----", *lines, f"-----END {label}-----", ""]).encode()


def _json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError) as exc:
        raise InvalidNotify("body is not JSON") from exc
    if not isinstance(value, dict):
        raise InvalidNotify("body is not a JSON object")
    return value


def _error_code(answer: dict[str, Any]) -> str:
    code = answer.get("code")
    return code[:64] if isinstance(code, str) else "no error code"


def _clip(text: str, limit: int) -> str:
    """At most `limit` bytes of UTF-8, cut on a character boundary."""
    return text.encode()[:limit].decode(errors="ignore")
