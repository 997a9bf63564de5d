"""A fake WeChat Pay API v3 (Native, H5, JSAPI) and the official account's web OAuth.

API v3 (under `api_base`): each request carries `Authorization: WECHATPAY2-SHA256-RSA2048
mchid="…",nonce_str="…",signature="…",timestamp="…",serial_no="…"`, `signature` being
SHA256withRSA with the merchant's API key over `METHOD\\nURL\\ntimestamp\\nnonce\\nbody\\n`
(URL: path and query as sent); the fake verifies it with the merchant's public key and
answers 401 `SIGN_ERROR` when it fails. Every answer is signed with the platform key:
`Wechatpay-Timestamp`, `-Nonce`, `-Serial`, `-Signature` over `timestamp\\nnonce\\nbody\\n`.

- `POST /v3/pay/transactions/native` → `code_url` (`weixin://wxpay/bizpayurl?pr=…`): the
  buyer scans it (`pay_qr`).
- `POST /v3/pay/transactions/h5` → `h5_url`, the middle page (under /wechat-h5), which
  honours the `redirect_url` the merchant appends, checks the `Referer` against the
  merchant's H5 domain and refuses to open inside WeChat, as WeChat's does.
- `POST /v3/pay/transactions/jsapi` → `prepay_id`, for `payer.openid`; the buyer pays in
  WeChat's payment sheet, which `pay_jsapi(params)` plays (it checks `paySign`).
- `GET /v3/pay/transactions/out-trade-no/{no}?mchid=`, `…/id/{transaction_id}?mchid=`,
  `POST …/out-trade-no/{no}/close`, `POST /v3/refund/domestic/refunds`,
  `GET /v3/refund/domestic/refunds/{out_refund_no}`.

Paying POSTs the notification to `notify_url`: `{id, create_time, event_type:
"TRANSACTION.SUCCESS", resource_type: "encrypt-resource", summary, resource: {algorithm:
"AEAD_AES_256_GCM", ciphertext, nonce, associated_data: "transaction", original_type:
"transaction"}}`, the transaction encrypted with the APIv3 key, signed like an answer;
WeChat Pay takes HTTP 200 or 204 as received. (WeChat Pay wants an https `notify_url`;
the fake takes http too, since tests run without TLS.)

OAuth (snsapi_base): `GET <oauth_base>/connect/oauth2/authorize?appid=&redirect_uri=
&response_type=code&scope=snsapi_base&state=` → 302 to `redirect_uri?code=…&state=…`
(only inside WeChat, and only to the official account's authorised domain), and
`GET <sns_base>/sns/oauth2/access_token?appid=&secret=&code=&grant_type=authorization_code`
→ `{"access_token", "expires_in", "refresh_token", "openid", "scope"}`; a code is good
once, for five minutes.
"""

import base64
import json
import re
import secrets
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from flask import Blueprint, redirect, request

from fakes.common import (
    Provider,
    Received,
    key_pair,
    page,
    private_pem,
    public_pem,
    random_digits,
    random_text,
    rsa_sha256_sign,
    rsa_sha256_verifies,
    with_query,
    yuan,
)

SCHEMA = "WECHATPAY2-SHA256-RSA2048"
TIMESTAMP_TOLERANCE = 300
BEIJING = timezone(timedelta(hours=8))
OUT_TRADE_NO = re.compile(r"[0-9A-Za-z_\-|*]{6,32}")
TRADE_TYPES = {"native": "NATIVE", "h5": "MWEB", "jsapi": "JSAPI"}
H5_LIFETIME = 300  # an h5_url works for five minutes
CODE_LIFETIME = 300  # an OAuth code works once, for five minutes
# WeChat documents `state` as a-zA-Z0-9 (at most 128 bytes); "-" and "_" pass too, as faka's
# state (secrets.token_urlsafe) uses them: the fake is lenient there.
STATE = re.compile(r"[A-Za-z0-9_\-]*")
PAID = "get_brand_wcpay_request:ok"
FAILED = "get_brand_wcpay_request:fail"
CANCELLED = "get_brand_wcpay_request:cancel"


def rfc3339(moment: datetime | None = None) -> str:
    return (moment or datetime.now(BEIJING)).astimezone(BEIJING).isoformat(timespec="seconds")


@dataclass
class Transaction:
    kind: str  # native, h5, jsapi
    request: dict  # what the merchant sent
    prepay_id: str
    created: float = field(default_factory=time.time)
    code_url: str = ""
    h5_package: str = ""
    state: str = "NOTPAY"
    transaction_id: str = ""
    success_time: str = ""
    openid: str = ""
    refunds: dict[str, dict] = field(default_factory=dict)  # by out_refund_no

    @property
    def out_trade_no(self) -> str:
        return self.request["out_trade_no"]

    @property
    def total(self) -> int:
        return self.request["amount"]["total"]


@dataclass
class OAuthCode:
    appid: str
    openid: str
    scope: str
    issued: float = field(default_factory=time.time)
    used: bool = False


class Refusal(Exception):
    def __init__(self, status: int, code: str, message: str):
        super().__init__(code)
        self.status, self.code, self.message = status, code, message


class FakeWechatPay(Provider):
    name = "wechat"
    prefix = "/wechat-pay"
    h5_prefix = "/wechat-h5"
    oauth_prefix = "/wechat-open"
    sns_prefix = "/wechat-api"

    def __init__(self):
        super().__init__()
        self.mchid = "19" + random_digits(8)
        self.appid = "wx" + secrets.token_hex(8)
        self.mp_secret = secrets.token_hex(16)  # the official account's AppSecret
        self.merchant_serial = secrets.token_hex(20).upper()
        self.platform_serial = "PUB_KEY_ID_01" + self.mchid + random_digits(20)
        self.apiv3_key = random_text(32)
        self.merchant_key = key_pair("wechat-merchant")
        self.platform_key = key_pair("wechat-platform")
        self.openid = "o" + random_text(27)  # the WeChat user holding the phone
        self.domains: set[str] = set()  # the merchant's H5 payment and OAuth domains (host[:port])
        self.transactions: dict[str, Transaction] = {}  # by out_trade_no
        self.codes: dict[str, OAuthCode] = {}
        self.openids: set[str] = {self.openid}  # openids this official account has handed out

    def settings(self) -> dict[str, str]:
        return {
            "mchid": self.mchid,
            "appid": self.appid,
            "merchant_serial_no": self.merchant_serial,
            "merchant_private_key": private_pem(self.merchant_key),
            "apiv3_key": self.apiv3_key,
            "platform_public_key": public_pem(self.platform_key),
            "platform_serial": self.platform_serial,
            "api_base": self.url,
            "mp_secret": self.mp_secret,
            "oauth_base": self.base_url + self.oauth_prefix,
            "sns_base": self.base_url + self.sns_prefix,
        }

    def allow_domain(self, site_url: str) -> None:
        """Register the merchant's site as its H5 payment domain and OAuth domain."""
        self.domains.add(urlsplit(site_url).netloc)

    def accepts(self, status: int, body: str) -> bool:
        return status in (200, 204)

    # -- what the buyer's WeChat does ---------------------------------------------------------

    def qr_for(self, out_trade_no: str) -> str:
        transaction = self.transactions.get(out_trade_no)
        if transaction is None or not transaction.code_url:
            raise LookupError(f"WeChat Pay issued no code_url for {out_trade_no}")
        return transaction.code_url

    def pay_qr(self, qr_text: str):
        """The buyer scans a Native code_url with WeChat and pays; the notification sent."""
        with self.lock:
            transaction = next((t for t in self.transactions.values() if t.code_url and t.code_url == qr_text), None)
        if transaction is None:
            raise LookupError(f"not a code_url of this fake: {qr_text}")
        return self._pay(transaction, self.openid)

    def pay(self, out_trade_no: str):
        transaction = self.transactions.get(out_trade_no)
        if transaction is None:
            raise LookupError(f"WeChat Pay has no order {out_trade_no}")
        return self._pay(transaction, transaction.openid or self.openid)

    def pay_jsapi(self, params: dict, openid: str | None = None, cancel: bool = False) -> str:
        """WeixinJSBridge.invoke('getBrandWCPayRequest', params, cb) as WeChat runs it: checks the
        parameters and `paySign` (SHA256withRSA over "appId\\ntimeStamp\\nnonceStr\\npackage\\n"
        with the merchant's key), and that the prepay_id is one it issued to this buyer; then the
        buyer pays (or cancels). Returns what the callback's err_msg would say."""
        params = {k: str(v) for k, v in (params or {}).items()}
        openid = openid or self.openid
        problem = self._jsapi_problem(params, openid)
        result = FAILED if problem else CANCELLED if cancel else PAID
        with self.lock:
            self.received.append(
                Received(
                    provider=self.name,
                    action="getBrandWCPayRequest",
                    method="JS",
                    url="",
                    headers={},
                    params=params,
                    body=b"",
                    verified=problem is None,
                    error=problem,
                    answer=result,
                )
            )
        if result == PAID:
            self._pay(self._transaction_of_prepay(params["package"].removeprefix("prepay_id=")), openid)
        return result

    def _jsapi_problem(self, params: dict[str, str], openid: str) -> str | None:
        for name in ("appId", "timeStamp", "nonceStr", "package", "signType", "paySign"):
            if not params.get(name):
                return f"missing {name}"
        if params["appId"] != self.appid:
            return "appId is not the merchant's"
        if params["signType"] != "RSA":
            return "signType is not RSA"
        if not params["timeStamp"].isdigit():
            return "timeStamp is not unix seconds"
        message = f"{params['appId']}\n{params['timeStamp']}\n{params['nonceStr']}\n{params['package']}\n"
        if not rsa_sha256_verifies(self.merchant_key, message.encode(), params["paySign"]):
            return "paySign does not verify"
        if not params["package"].startswith("prepay_id="):
            return "package is not prepay_id=…"
        transaction = self._transaction_of_prepay(params["package"].removeprefix("prepay_id="))
        if transaction is None or transaction.kind != "jsapi":
            return "prepay_id was not issued by this WeChat Pay"
        if transaction.openid != openid:
            return "the order was placed for another WeChat user"
        if transaction.state != "NOTPAY":
            return f"the order is {transaction.state}"
        return None

    def _transaction_of_prepay(self, prepay_id: str) -> Transaction | None:
        with self.lock:
            return next((t for t in self.transactions.values() if t.prepay_id == prepay_id), None)

    def _pay(self, transaction: Transaction, openid: str):
        with self.lock:
            if transaction.state == "NOTPAY":
                transaction.state = "SUCCESS"
                transaction.openid = transaction.openid or openid
                transaction.transaction_id = "42000" + random_digits(23)
                transaction.success_time = rfc3339()
        plain = json.dumps(self._transaction_view(transaction), ensure_ascii=False, separators=(",", ":")).encode()
        nonce = random_text(12)
        ciphertext = AESGCM(self.apiv3_key.encode()).encrypt(nonce.encode(), plain, b"transaction")
        event = {
            "id": str(uuid.uuid4()),
            "create_time": rfc3339(),
            "resource_type": "encrypt-resource",
            "event_type": "TRANSACTION.SUCCESS",
            "summary": "支付成功",
            "resource": {
                "original_type": "transaction",
                "algorithm": "AEAD_AES_256_GCM",
                "ciphertext": base64.b64encode(ciphertext).decode(),
                "associated_data": "transaction",
                "nonce": nonce,
            },
        }
        body = json.dumps(event, ensure_ascii=False, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json", **self._signature_headers(body)}
        return self.notify(
            transaction.out_trade_no, "POST", transaction.request["notify_url"], headers, body, json.loads(plain)
        )

    def _transaction_view(self, transaction: Transaction) -> dict:
        """The transaction as the query API and the notification describe it."""
        view = {
            "appid": transaction.request["appid"],
            "mchid": transaction.request["mchid"],
            "out_trade_no": transaction.out_trade_no,
            "attach": transaction.request.get("attach", ""),
            "trade_state": transaction.state,
            "trade_state_desc": {
                "NOTPAY": "订单未支付",
                "SUCCESS": "支付成功",
                "REFUND": "转入退款",
                "CLOSED": "订单已关闭",
            }[transaction.state],
            "amount": {"total": transaction.total, "currency": "CNY", "payer_currency": "CNY"},
            "promotion_detail": [],
            "scene_info": {"device_id": ""},
        }
        if transaction.transaction_id:
            view.update(
                transaction_id=transaction.transaction_id,
                trade_type=TRADE_TYPES[transaction.kind],
                bank_type="OTHERS",
                success_time=transaction.success_time,
                payer={"openid": transaction.openid},
            )
            view["amount"]["payer_total"] = transaction.total
        return view

    # -- signing -------------------------------------------------------------------------------

    def _signature_headers(self, body: bytes) -> dict[str, str]:
        timestamp, nonce = str(int(time.time())), random_text(32)
        signature = rsa_sha256_sign(self.platform_key, f"{timestamp}\n{nonce}\n".encode() + body + b"\n")
        return {
            "Wechatpay-Timestamp": timestamp,
            "Wechatpay-Nonce": nonce,
            "Wechatpay-Serial": self.platform_serial,
            "Wechatpay-Signature": signature,
            "Wechatpay-Signature-Type": SCHEMA,
        }

    def _answer(
        self,
        action: str,
        params: dict,
        status: int,
        answer: dict | None,
        verified: bool = True,
        error: str | None = None,
    ):
        body = b"" if answer is None else json.dumps(answer, ensure_ascii=False, separators=(",", ":")).encode()
        self.record(action, params, verified=verified, error=error, status=status, answer=body)
        headers = {"Request-ID": str(uuid.uuid4()), **self._signature_headers(body)}
        if answer is not None:
            headers["Content-Type"] = "application/json; charset=utf-8"
        return body, status, headers

    def _check_authorization(self) -> None:
        header = request.headers.get("Authorization", "")
        if not header.startswith(SCHEMA + " "):
            raise Refusal(401, "SIGN_ERROR", "Authorization 头缺失或认证类型不是 " + SCHEMA)
        parts = dict(re.findall(r'(\w+)="([^"]*)"', header[len(SCHEMA) + 1 :]))
        for name in ("mchid", "nonce_str", "signature", "timestamp", "serial_no"):
            if not parts.get(name):
                raise Refusal(401, "SIGN_ERROR", f"Authorization 缺少 {name}")
        if parts["mchid"] != self.mchid:
            raise Refusal(401, "SIGN_ERROR", "商户号不存在")
        if parts["serial_no"].upper() != self.merchant_serial:
            raise Refusal(401, "SIGN_ERROR", "商户证书序列号有误")
        if not parts["timestamp"].isdigit() or abs(time.time() - int(parts["timestamp"])) > TIMESTAMP_TOLERANCE:
            raise Refusal(401, "SIGN_ERROR", "请求时间戳已过期")
        url = request.environ.get("REQUEST_URI") or request.full_path.rstrip("?")
        message = (
            f"{request.method}\n{url}\n{parts['timestamp']}\n{parts['nonce_str']}\n".encode()
            + request.get_data(cache=True)
            + b"\n"
        )
        if not rsa_sha256_verifies(self.merchant_key, message, parts["signature"]):
            raise Refusal(401, "SIGN_ERROR", "签名错误")

    def _api(self, action: str, handle):
        """An API v3 call: authorised, then handled; refusals answered as WeChat Pay does."""
        try:
            params = json.loads(request.get_data(cache=True) or b"{}")
        except ValueError:
            params = None
        try:
            self._check_authorization()
            if not isinstance(params, dict):
                raise Refusal(400, "PARAM_ERROR", "请求体不是 JSON 对象")
            status, answer = handle(params)
        except Refusal as refusal:
            return self._answer(
                action,
                params if isinstance(params, dict) else {},
                refusal.status,
                {"code": refusal.code, "message": refusal.message},
                verified=refusal.code != "SIGN_ERROR",
                error=refusal.code,
            )
        return self._answer(action, params, status, answer)

    # -- the routes -----------------------------------------------------------------------------

    def blueprints(self) -> list[Blueprint]:
        api = Blueprint("wechat_pay", __name__, url_prefix=self.prefix)
        for kind in TRADE_TYPES:
            api.add_url_rule(
                f"/v3/pay/transactions/{kind}",
                f"order_{kind}",
                lambda kind=kind: self._api(f"POST /v3/pay/transactions/{kind}", lambda body: self._place(kind, body)),
                methods=["POST"],
            )
        api.add_url_rule(
            "/v3/pay/transactions/out-trade-no/<out_trade_no>",
            "query",
            lambda out_trade_no: self._api(
                "GET /v3/pay/transactions/out-trade-no", lambda body: self._query(out_trade_no=out_trade_no)
            ),
        )
        api.add_url_rule(
            "/v3/pay/transactions/id/<transaction_id>",
            "query_id",
            lambda transaction_id: self._api(
                "GET /v3/pay/transactions/id", lambda body: self._query(transaction_id=transaction_id)
            ),
        )
        api.add_url_rule(
            "/v3/pay/transactions/out-trade-no/<out_trade_no>/close",
            "close",
            lambda out_trade_no: self._api(
                "POST /v3/pay/transactions/out-trade-no/close", lambda body: self._close(out_trade_no, body)
            ),
            methods=["POST"],
        )
        api.add_url_rule(
            "/v3/refund/domestic/refunds",
            "refund",
            lambda: self._api("POST /v3/refund/domestic/refunds", self._refund),
            methods=["POST"],
        )
        api.add_url_rule(
            "/v3/refund/domestic/refunds/<out_refund_no>",
            "refund_query",
            lambda out_refund_no: self._api(
                "GET /v3/refund/domestic/refunds", lambda body: self._refund_query(out_refund_no)
            ),
        )
        h5 = Blueprint("wechat_h5", __name__, url_prefix=self.h5_prefix)
        h5.add_url_rule("/cgi-bin/mmpayweb-bin/checkmweb", "checkmweb", self._h5_page, methods=["GET", "POST"])
        oauth = Blueprint("wechat_open", __name__, url_prefix=self.oauth_prefix)
        oauth.add_url_rule("/connect/oauth2/authorize", "authorize", self._authorize)
        sns = Blueprint("wechat_api", __name__, url_prefix=self.sns_prefix)
        sns.add_url_rule("/sns/oauth2/access_token", "access_token", self._access_token)
        return [api, h5, oauth, sns]

    # -- placing and asking about orders --------------------------------------------------------------

    def _place(self, kind: str, body: dict) -> tuple[int, dict]:
        self._check_order(kind, body)
        with self.lock:
            existing = self.transactions.get(body["out_trade_no"])
            if existing is not None:
                if existing.state == "SUCCESS":
                    raise Refusal(403, "ORDERPAID", "该订单已支付")
                if existing.kind != kind or existing.request != body:
                    raise Refusal(400, "INVALID_REQUEST", "201 商户订单号重复")
                transaction = existing  # the same order again: the same prepay
            else:
                transaction = Transaction(
                    kind, body, prepay_id="wx" + datetime.now(BEIJING).strftime("%d%H%M%S") + secrets.token_hex(13)
                )
                if kind == "native":
                    transaction.code_url = "weixin://wxpay/bizpayurl?pr=" + random_text(9)
                elif kind == "h5":
                    transaction.h5_package = random_digits(10)
                else:
                    transaction.openid = body["payer"]["openid"]
                self.transactions[transaction.out_trade_no] = transaction
        if kind == "native":
            return 200, {"code_url": transaction.code_url}
        if kind == "h5":
            query = urlencode({"prepay_id": transaction.prepay_id, "package": transaction.h5_package})
            return 200, {"h5_url": f"{self.base_url}{self.h5_prefix}/cgi-bin/mmpayweb-bin/checkmweb?{query}"}
        return 200, {"prepay_id": transaction.prepay_id}

    def _check_order(self, kind: str, body: dict) -> None:
        for name in ("appid", "mchid", "description", "out_trade_no", "notify_url"):
            if not isinstance(body.get(name), str) or not body[name]:
                raise Refusal(400, "PARAM_ERROR", f"输入源“/body/{name}”映射到字段“{name}”必填性规则校验失败")
        if body["mchid"] != self.mchid or body["appid"] != self.appid:
            raise Refusal(400, "APPID_MCHID_NOT_MATCH", "appid和mch_id不匹配")
        if not OUT_TRADE_NO.fullmatch(body["out_trade_no"]):
            raise Refusal(400, "PARAM_ERROR", "out_trade_no 格式不正确")
        if len(body["description"].encode()) > 127:
            raise Refusal(400, "PARAM_ERROR", "description 超过 127 字节")
        if not body["notify_url"].startswith(("https://", "http://")):
            raise Refusal(400, "PARAM_ERROR", "notify_url 格式不正确")
        amount = body.get("amount")
        if not isinstance(amount, dict) or type(amount.get("total")) is not int or amount["total"] <= 0:
            raise Refusal(400, "PARAM_ERROR", "amount.total 必须是正整数（分）")
        if amount.get("currency", "CNY") != "CNY":
            raise Refusal(400, "PARAM_ERROR", "currency 只能是 CNY")
        if "time_expire" in body:
            try:
                datetime.fromisoformat(body["time_expire"])
            except (TypeError, ValueError):
                raise Refusal(400, "PARAM_ERROR", "time_expire 不是 RFC3339 时间") from None
        scene = body.get("scene_info")
        if kind == "h5":
            if (
                not isinstance(scene, dict)
                or not scene.get("payer_client_ip")
                or not isinstance(scene.get("h5_info"), dict)
                or not scene["h5_info"].get("type")
            ):
                raise Refusal(400, "PARAM_ERROR", "H5 下单需要 scene_info.payer_client_ip 与 scene_info.h5_info.type")
        if kind == "jsapi":
            payer = body.get("payer")
            if not isinstance(payer, dict) or not payer.get("openid"):
                raise Refusal(400, "PARAM_ERROR", "JSAPI 下单需要 payer.openid")
            if payer["openid"] not in self.openids:
                raise Refusal(400, "PARAM_ERROR", "openid 与 appid 不匹配")

    def _query(self, out_trade_no: str = "", transaction_id: str = "") -> tuple[int, dict]:
        if request.args.get("mchid") != self.mchid:
            raise Refusal(400, "PARAM_ERROR", "mchid 与请求商户号不一致")
        with self.lock:
            if transaction_id:
                transaction = next((t for t in self.transactions.values() if t.transaction_id == transaction_id), None)
            else:
                transaction = self.transactions.get(out_trade_no)
        if transaction is None:
            raise Refusal(404, "ORDER_NOT_EXIST", "订单不存在")
        return 200, self._transaction_view(transaction)

    def _close(self, out_trade_no: str, body: dict) -> tuple[int, None]:
        if body.get("mchid") != self.mchid:
            raise Refusal(400, "PARAM_ERROR", "mchid 与请求商户号不一致")
        transaction = self.transactions.get(out_trade_no)
        if transaction is None:
            raise Refusal(404, "ORDER_NOT_EXIST", "订单不存在")
        if transaction.state == "SUCCESS":
            raise Refusal(400, "ORDERPAID", "订单已支付")
        transaction.state = "CLOSED"
        return 204, None

    def _refund(self, body: dict) -> tuple[int, dict]:
        out_refund_no, amount = body.get("out_refund_no"), body.get("amount")
        if not isinstance(out_refund_no, str) or not out_refund_no or not isinstance(amount, dict):
            raise Refusal(400, "PARAM_ERROR", "缺少 out_refund_no 或 amount")
        with self.lock:
            transaction = next(
                (
                    t
                    for t in self.transactions.values()
                    if (body.get("transaction_id") and t.transaction_id == body["transaction_id"])
                    or (body.get("out_trade_no") and t.out_trade_no == body["out_trade_no"])
                ),
                None,
            )
            if transaction is None or not transaction.transaction_id:
                raise Refusal(404, "RESOURCE_NOT_EXISTS", "订单不存在")
            if out_refund_no in transaction.refunds:
                return 200, transaction.refunds[out_refund_no]
            refund, total = amount.get("refund"), amount.get("total")
            if total != transaction.total or amount.get("currency", "CNY") != "CNY":
                raise Refusal(400, "PARAM_ERROR", "订单金额或币种与原订单不一致")
            refunded = sum(r["amount"]["refund"] for r in transaction.refunds.values())
            if type(refund) is not int or refund <= 0 or refunded + refund > transaction.total:
                raise Refusal(400, "INVALID_REQUEST", "申请退款金额超过订单可退金额")
            answer = {
                "refund_id": "50" + random_digits(27),
                "out_refund_no": out_refund_no,
                "transaction_id": transaction.transaction_id,
                "out_trade_no": transaction.out_trade_no,
                "channel": "ORIGINAL",
                "user_received_account": "支付用户零钱",
                "create_time": rfc3339(),
                "success_time": rfc3339(),
                "status": "SUCCESS",
                "funds_account": "AVAILABLE",
                "amount": {
                    "total": transaction.total,
                    "refund": refund,
                    "payer_total": transaction.total,
                    "payer_refund": refund,
                    "settlement_refund": refund,
                    "settlement_total": transaction.total,
                    "discount_refund": 0,
                    "currency": "CNY",
                },
            }
            transaction.refunds[out_refund_no] = answer
            transaction.state = "REFUND"
        return 200, answer

    def _refund_query(self, out_refund_no: str) -> tuple[int, dict]:
        with self.lock:
            refund = next(
                (t.refunds[out_refund_no] for t in self.transactions.values() if out_refund_no in t.refunds), None
            )
        if refund is None:
            raise Refusal(404, "RESOURCE_NOT_EXISTS", "退款单不存在")
        return 200, refund

    # -- the H5 middle page ---------------------------------------------------------------------

    def _h5_page(self):
        """GET: the middle page the merchant sends the buyer to (checked as WeChat Pay checks
        it); POST: the buyer paid in the WeChat app it opened, and comes back."""
        params = request.values.to_dict()
        transaction = self._transaction_of_prepay(params.get("prepay_id", ""))
        problem = None  # (what the page says, why: for the record)
        if transaction is None or transaction.kind != "h5" or params.get("package") != transaction.h5_package:
            problem = ("商家参数格式有误，请联系商家解决", "unknown prepay_id or package")
        elif request.method == "GET":
            problem = self._h5_visit_problem(transaction)
        if problem:
            html = page("wechat", "微信支付", error=problem[0])
            self.record("h5 page", params, verified=False, error=f"{problem[0]} ({problem[1]})", answer=html[0])
            return html
        redirect_url = params.get("redirect_url", "")
        if request.method == "POST":
            self.record("h5 pay", params)
            if transaction.state == "NOTPAY":
                self._pay(transaction, self.openid)
            if redirect_url:
                return redirect(redirect_url, 303)
            return page("wechat", "支付成功", amount=f"￥{yuan(transaction.total)}")
        self.record("h5 page", params)
        hidden = {"prepay_id": transaction.prepay_id, "package": transaction.h5_package}
        if redirect_url:
            hidden["redirect_url"] = redirect_url
        return page(
            "wechat",
            "微信支付",
            amount=f"￥{yuan(transaction.total)}",
            facts=[("商品", transaction.request["description"]), ("商户单号", transaction.out_trade_no)],
            form_action=f"{self.h5_prefix}/cgi-bin/mmpayweb-bin/checkmweb",
            hidden=hidden,
            button="确认支付",
        )

    def _h5_visit_problem(self, transaction: Transaction) -> tuple[str, str] | None:
        referer = request.headers.get("Referer", "")
        if "MicroMessenger" in request.headers.get("User-Agent", ""):
            return "请在微信外打开订单，进行支付", "opened inside WeChat"
        if not referer:
            return "商家参数格式有误，请联系商家解决", "no Referer: WeChat Pay checks it against the H5 domain"
        if self.domains and urlsplit(referer).netloc not in self.domains:
            return "商家存在未配置的参数，请联系商家解决", f"Referer {referer} is not the merchant's H5 domain"
        if time.time() - transaction.created > H5_LIFETIME:
            return "支付请求已失效，请重新发起支付", "h5_url older than five minutes"
        return None

    # -- the official account's web OAuth ---------------------------------------------------------

    def _authorize(self):
        params = request.args.to_dict()
        redirect_uri = params.get("redirect_uri", "")
        problem = None
        if "MicroMessenger" not in request.headers.get("User-Agent", ""):
            problem = "请在微信客户端打开链接"
        elif params.get("appid") != self.appid:
            problem = "appid 参数错误，错误码：10016"
        elif not redirect_uri.startswith(("http://", "https://")) or (
            self.domains and urlsplit(redirect_uri).netloc not in self.domains
        ):
            problem = "redirect_uri 域名与后台配置不一致，错误码：10003"
        elif params.get("response_type") != "code":
            problem = "response_type 参数错误，错误码：10004"
        elif params.get("scope") not in ("snsapi_base", "snsapi_userinfo"):
            problem = "scope 参数错误或没有 scope 权限，错误码：10005"
        elif len(params.get("state", "").encode()) > 128 or not STATE.fullmatch(params.get("state", "")):
            problem = "state 参数错误"
        if problem:
            html = page("wechat", "微信网页授权", error=problem)
            self.record("oauth2/authorize", params, verified=False, error=problem, answer=html[0])
            return html
        code = random_text(32)
        with self.lock:
            self.codes[code] = OAuthCode(self.appid, self.openid, params["scope"])
        query = urlencode({"code": code, "state": params.get("state", "")})
        self.record("oauth2/authorize", params, status=302)
        return redirect(with_query(redirect_uri, query), 302)

    def _access_token(self):
        params = request.args.to_dict()
        with self.lock:
            code = self.codes.get(params.get("code", ""))
            if params.get("appid") != self.appid:
                error = (40013, "invalid appid")
            elif params.get("secret") != self.mp_secret:
                error = (40125, "invalid appsecret")
            elif params.get("grant_type") != "authorization_code":
                error = (40002, "invalid grant_type")
            elif code is None or code.appid != self.appid or time.time() - code.issued > CODE_LIFETIME:
                error = (40029, "invalid code")
            elif code.used:
                error = (40163, "code been used")
            else:
                error = None
                code.used = True
        if error:
            answer = {"errcode": error[0], "errmsg": f"{error[1]}, rid: {secrets.token_hex(12)}"}
        else:
            answer = {
                "access_token": random_text(88),
                "expires_in": 7200,
                "refresh_token": random_text(88),
                "openid": code.openid,
                "scope": code.scope,
            }
        body = json.dumps(answer)
        self.record(
            "sns/oauth2/access_token",
            params,
            verified=error is None,
            error=str(error[0]) if error else None,
            answer=body,
        )
        return body, 200, {"Content-Type": "application/json; encoding=utf-8"}
