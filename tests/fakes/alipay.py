"""A fake Alipay OpenAPI gateway (`gateway.do`), RSA2 in public-key mode.

Every request is signed by the app: `sign` = base64 SHA256withRSA, with the app private
key, over the non-empty parameters but `sign` (sign_type included), sorted, `k=v&…`; the
fake verifies it with the app public key. Answers to API calls are
`{"<method>_response": {...}, "sign": "..."}`, `sign` covering the exact text of the
response member, signed with Alipay's private key; gateway-level errors (bad signature,
unknown app) are an unsigned `error_response`.

- `alipay.trade.wap.pay` / `alipay.trade.page.pay` (GET, or a POSTed form): the cashier
  page. Paying there POSTs the signed notification to `notify_url` (form fields, `sign`
  over every field but sign/sign_type, sorted), expects `success`, and sends the buyer
  to `return_url` with the signed synchronous-return parameters.
- `alipay.trade.precreate` (POST): answers a `qr_code` (a page on this fake). The trade
  exists for `alipay.trade.query` only once scanned (`scan_qr` / `pay_qr`).
- `alipay.trade.query`, `alipay.trade.refund`, `alipay.trade.fastpay.refund.query`,
  `alipay.trade.close`.
"""

import json
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from urllib.parse import urlencode, urlsplit

from flask import Blueprint, abort, redirect, request

from fakes.common import (
    Provider,
    fen,
    key_pair,
    page,
    private_pem,
    public_pem,
    random_digits,
    random_text,
    request_params,
    rsa_sha256_sign,
    rsa_sha256_verifies,
    with_query,
    yuan,
)

BEIJING = timezone(timedelta(hours=8))
PAGE_METHODS = {"alipay.trade.wap.pay": "QUICK_WAP_WAY", "alipay.trade.page.pay": "FAST_INSTANT_TRADE_PAY"}
API_METHODS = (
    "alipay.trade.precreate",
    "alipay.trade.query",
    "alipay.trade.refund",
    "alipay.trade.fastpay.refund.query",
    "alipay.trade.close",
)
AMOUNT = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
TIMESTAMP_TOLERANCE = timedelta(minutes=15)
SIGNATURE_ERROR = "验签出错，建议检查签名字符串或签名私钥与应用公钥是否匹配"


def now_text() -> str:
    return datetime.now(BEIJING).strftime("%Y-%m-%d %H:%M:%S")


def request_content(params: dict[str, str]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k != "sign" and params[k] != "")


def notify_content(params: dict[str, str]) -> str:
    return "&".join(f"{k}={params[k]}" for k in sorted(params) if k not in ("sign", "sign_type"))


class GatewayRefusal(Exception):
    def __init__(self, code: str, msg: str, sub_code: str, sub_msg: str):
        super().__init__(sub_code)
        self.answer = {"code": code, "msg": msg, "sub_code": sub_code, "sub_msg": sub_msg}


@dataclass
class Trade:
    out_trade_no: str
    total_amount: str
    subject: str
    method: str
    notify_url: str
    return_url: str = ""
    quit_url: str = ""
    status: str = "CREATED"  # precreated, not scanned: the query API does not know it yet
    trade_no: str = ""
    qr_code: str = ""
    token: str = field(default_factory=lambda: random_text(24))
    gmt_create: str = field(default_factory=now_text)
    gmt_payment: str = ""
    refunds: dict[str, str] = field(default_factory=dict)  # out_request_no -> amount


class FakeAlipay(Provider):
    name = "alipay"
    prefix = "/alipay"

    def __init__(self):
        super().__init__()
        self.app_id = "2021000" + random_digits(9)
        self.seller_id = "2088" + random_digits(12)
        self.app_key = key_pair("alipay-app")
        self.alipay_key = key_pair("alipay")
        self.buyer_id = "2088" + random_digits(12)
        self.buyer_logon_id = "buy***@example.com"
        self.trades: dict[str, Trade] = {}  # by out_trade_no

    def settings(self) -> dict[str, str]:
        return {
            "app_id": self.app_id,
            "app_private_key": private_pem(self.app_key),
            "alipay_public_key": public_pem(self.alipay_key),
            "seller_id": self.seller_id,
            "gateway_url": self.url + "/gateway.do",
        }

    def accepts(self, status: int, body: str) -> bool:
        return status == 200 and body.strip() == "success"

    # -- what the buyer's Alipay app does ---------------------------------------------------

    def qr_for(self, out_trade_no: str) -> str:
        """The qr_code precreate answered for the merchant's order."""
        trade = self.trades.get(out_trade_no)
        if trade is None or not trade.qr_code:
            raise LookupError(f"Alipay precreated no QR code for {out_trade_no}")
        return trade.qr_code

    def scan_qr(self, qr_text: str) -> Trade:
        """The buyer scans the code: the trade now exists, waiting for the buyer to pay."""
        trade = self._trade_of_qr(qr_text)
        self._open(trade)
        return trade

    def pay_qr(self, qr_text: str):
        """The buyer scans the code and pays in the app; the notification sent."""
        return self._pay(self.scan_qr(qr_text))

    def pay(self, out_trade_no: str):
        trade = self.trades.get(out_trade_no)
        if trade is None:
            raise LookupError(f"Alipay has no trade {out_trade_no}")
        self._open(trade)
        return self._pay(trade)

    def _trade_of_qr(self, qr_text: str) -> Trade:
        code = urlsplit(qr_text).path.rsplit("/", 1)[-1]
        with self.lock:
            trade = next((t for t in self.trades.values() if t.qr_code and t.qr_code.endswith("/qr/" + code)), None)
        if trade is None:
            raise LookupError(f"not an Alipay QR code of this fake: {qr_text}")
        return trade

    def _open(self, trade: Trade) -> None:
        with self.lock:
            if trade.status == "CREATED":
                trade.status = "WAIT_BUYER_PAY"
                trade.trade_no = datetime.now(BEIJING).strftime("%Y%m%d") + "22001" + random_digits(15)

    def _pay(self, trade: Trade):
        with self.lock:
            if trade.status == "WAIT_BUYER_PAY":
                trade.status, trade.gmt_payment = "TRADE_SUCCESS", now_text()
        fields = {
            "gmt_create": trade.gmt_create,
            "charset": "utf-8",
            "subject": trade.subject,
            "buyer_id": self.buyer_id,
            "buyer_logon_id": self.buyer_logon_id,
            "invoice_amount": trade.total_amount,
            "notify_id": random_text(34).lower(),
            "notify_type": "trade_status_sync",
            "notify_time": now_text(),
            "fund_bill_list": json.dumps(
                [{"amount": trade.total_amount, "fundChannel": "ALIPAYACCOUNT"}], separators=(",", ":")
            ),
            "trade_status": "TRADE_SUCCESS",
            "receipt_amount": trade.total_amount,
            "buyer_pay_amount": trade.total_amount,
            "point_amount": "0.00",
            "app_id": self.app_id,
            "auth_app_id": self.app_id,
            "seller_id": self.seller_id,
            "gmt_payment": trade.gmt_payment,
            "version": "1.0",
            "out_trade_no": trade.out_trade_no,
            "total_amount": trade.total_amount,
            "trade_no": trade.trade_no,
            "sign_type": "RSA2",
        }
        fields["sign"] = rsa_sha256_sign(self.alipay_key, notify_content(fields).encode())
        return self.notify(
            trade.out_trade_no,
            "POST",
            trade.notify_url,
            {"Content-Type": "application/x-www-form-urlencoded; charset=utf-8"},
            urlencode(fields).encode(),
            fields,
        )

    def return_params(self, trade: Trade) -> dict[str, str]:
        """What the buyer's browser brings back to `return_url` (the synchronous return)."""
        fields = {
            "charset": "utf-8",
            "out_trade_no": trade.out_trade_no,
            "method": trade.method + ".return",
            "total_amount": trade.total_amount,
            "trade_no": trade.trade_no,
            "auth_app_id": self.app_id,
            "version": "1.0",
            "app_id": self.app_id,
            "seller_id": self.seller_id,
            "timestamp": now_text(),
            "sign_type": "RSA2",
        }
        fields["sign"] = rsa_sha256_sign(self.alipay_key, notify_content(fields).encode())
        return fields

    # -- the routes -----------------------------------------------------------------------

    def blueprints(self) -> list[Blueprint]:
        bp = Blueprint("alipay", __name__, url_prefix=self.prefix)
        bp.add_url_rule("/gateway.do", "gateway", self._gateway, methods=["GET", "POST"])
        bp.add_url_rule("/cashier/<token>", "cashier", self._cashier_pay, methods=["POST"])
        bp.add_url_rule("/qr/<code>", "qr", self._qr_page, methods=["GET", "POST"])
        return [bp]

    def _gateway(self):
        params = request_params()
        method = params.get("method", "")
        try:
            self._check_common(params)
            biz = self._biz_content(params)
        except GatewayRefusal as refusal:
            if method in PAGE_METHODS:
                return self._error_page(method, params, refusal.answer)
            body = json.dumps({"error_response": refusal.answer}, ensure_ascii=False)
            self.record(method or "gateway.do", params, verified=False, error=refusal.answer["sub_code"], answer=body)
            return body, 200, {"Content-Type": "text/html;charset=utf-8"}
        if method in PAGE_METHODS:
            return self._cashier(method, params, biz)
        answer = getattr(self, "_" + method.removeprefix("alipay.trade.").replace(".", "_"))(params, biz)
        text = json.dumps(answer, ensure_ascii=False, separators=(",", ":")).replace("/", "\\/")
        name = method.replace(".", "_") + "_response"
        body = f'{{"{name}":{text},"sign":"{rsa_sha256_sign(self.alipay_key, text.encode())}"}}'
        self.record(method, params, error=answer.get("sub_code"), answer=body)
        return body, 200, {"Content-Type": "text/html;charset=utf-8"}

    def _check_common(self, params: dict[str, str]) -> None:
        for name in ("method", "app_id", "sign_type", "sign", "timestamp", "version"):
            if not params.get(name):
                raise GatewayRefusal(
                    "40001", "Missing Required Arguments", f"isv.missing-{name.replace('_', '-')}", f"缺少{name}参数"
                )
        method = params["method"]
        if method not in PAGE_METHODS and method not in API_METHODS:
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-method", "不存在的方法名")
        if params["app_id"] != self.app_id:
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-app-id", "无效的AppID参数")
        if params["sign_type"] != "RSA2":
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-signature-type", "无效的签名类型参数")
        if params.get("charset", "utf-8").lower() != "utf-8":
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-charset", "字符集错误")
        try:
            sent_at = datetime.strptime(params["timestamp"], "%Y-%m-%d %H:%M:%S").replace(tzinfo=BEIJING)
        except ValueError:
            sent_at = None
        if sent_at is None or abs(datetime.now(BEIJING) - sent_at) > TIMESTAMP_TOLERANCE:
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-timestamp", "非法的时间戳参数")
        if not rsa_sha256_verifies(self.app_key, request_content(params).encode(), params["sign"]):
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-signature", SIGNATURE_ERROR)

    @staticmethod
    def _biz_content(params: dict[str, str]) -> dict:
        try:
            biz = json.loads(params.get("biz_content") or "")
        except ValueError:
            biz = None
        if not isinstance(biz, dict):
            raise GatewayRefusal("40002", "Invalid Arguments", "isv.invalid-parameter", "biz_content 不是 JSON 对象")
        return biz

    def _error_page(self, method: str, params: dict, answer: dict):
        html = page(
            "alipay",
            "支付宝 - 网上支付 安全快速！",
            error=f"错误代码 {answer['sub_code'].removeprefix('isv.')} 错误原因: {answer['sub_msg']}",
        )
        self.record(method, params, verified=False, error=answer["sub_code"], answer=html[0])
        return html

    @staticmethod
    def _order_problem(biz: dict) -> str | None:
        for name in ("out_trade_no", "total_amount", "subject"):
            if not isinstance(biz.get(name), str) or not biz[name]:
                return f"缺少参数 {name}"
        if not AMOUNT.fullmatch(biz["total_amount"]) or not 1 <= fen(biz["total_amount"]) <= 10_000_000_000:
            return "total_amount 金额不合法"
        return None

    def _cashier(self, method: str, params: dict, biz: dict):
        problem = self._order_problem(biz)
        if not problem and biz.get("product_code", PAGE_METHODS[method]) != PAGE_METHODS[method]:
            problem = "product_code 与接口不符"
        if problem:
            return self._error_page(method, params, {"sub_code": "isv.invalid-parameter", "sub_msg": problem})
        with self.lock:
            trade = self.trades.get(biz["out_trade_no"])
            if trade is not None and trade.status == "TRADE_SUCCESS":
                return self._error_page(
                    method, params, {"sub_code": "ACQ.TRADE_HAS_SUCCESS", "sub_msg": "交易已被支付"}
                )
            if trade is None or trade.total_amount != biz["total_amount"] or trade.status == "TRADE_CLOSED":
                trade = Trade(
                    biz["out_trade_no"], biz["total_amount"], biz["subject"], method, params.get("notify_url", "")
                )
                self.trades[trade.out_trade_no] = trade
            trade.method, trade.notify_url = method, params.get("notify_url", "")
            trade.return_url, trade.quit_url = params.get("return_url", ""), biz.get("quit_url", "")
        self._open(trade)
        self.record(method, params)
        links = [(trade.quit_url, "返回商家")] if trade.quit_url else []
        return page(
            "alipay",
            "支付宝 收银台",
            amount=f"￥{trade.total_amount}",
            facts=[("商品", trade.subject), ("收款方", "faka 测试商户"), ("订单号", trade.out_trade_no)],
            form_action=f"{self.prefix}/cashier/{trade.token}",
            button="确认付款",
            links=links,
        )

    def _cashier_pay(self, token: str):
        trade = next((t for t in self.trades.values() if t.token == token), None) or abort(404)
        self.record("cashier pay", request.form.to_dict())
        if trade.status == "WAIT_BUYER_PAY":
            self._pay(trade)
        if trade.status != "TRADE_SUCCESS":
            return page("alipay", "支付宝", error="交易已关闭")
        if not trade.return_url:
            return page("alipay", "支付成功", amount=f"￥{trade.total_amount}")
        return redirect(with_query(trade.return_url, urlencode(self.return_params(trade))), 303)

    def _qr_page(self, code: str):
        """The qr_code link, as the Alipay app shows it after scanning."""
        try:
            trade = self._trade_of_qr(self.url + "/qr/" + code)
        except LookupError:
            abort(404)
        if request.method == "POST":
            self.record("qr pay", request.form.to_dict())
            self._open(trade)
            if trade.status == "WAIT_BUYER_PAY":
                self._pay(trade)
            return page(
                "alipay",
                "支付成功" if trade.status == "TRADE_SUCCESS" else "交易已关闭",
                amount=f"￥{trade.total_amount}",
            )
        self.record("qr", {})
        self._open(trade)
        return page(
            "alipay",
            "支付宝 扫码付款",
            amount=f"￥{trade.total_amount}",
            facts=[("商品", trade.subject), ("订单号", trade.out_trade_no)],
            form_action=f"{self.prefix}/qr/{code}",
            button="确认付款",
        )

    # -- the API methods ----------------------------------------------------------------------

    @staticmethod
    def _business_failed(sub_code: str, sub_msg: str) -> dict:
        return {"code": "40004", "msg": "Business Failed", "sub_code": sub_code, "sub_msg": sub_msg}

    def _known_trade(self, biz: dict) -> Trade | None:
        """The trade the query names by out_trade_no or trade_no, once the buyer has reached it."""
        with self.lock:
            if biz.get("trade_no"):
                trade = next((t for t in self.trades.values() if t.trade_no == biz["trade_no"]), None)
            else:
                trade = self.trades.get(biz.get("out_trade_no", ""))
        return None if trade is None or trade.status == "CREATED" else trade

    def _precreate(self, params: dict, biz: dict) -> dict:
        problem = self._order_problem(biz)
        if problem:
            return {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-parameter",
                "sub_msg": problem,
            }
        if biz.get("product_code", "FACE_TO_FACE_PAYMENT") != "FACE_TO_FACE_PAYMENT":
            return self._business_failed("ACQ.PRODUCT_CODE_ERROR", "产品码错误")
        with self.lock:
            trade = self.trades.get(biz["out_trade_no"])
            if trade is not None and trade.status == "TRADE_SUCCESS":
                return self._business_failed("ACQ.TRADE_HAS_SUCCESS", "交易已被支付")
            if trade is not None and trade.total_amount != biz["total_amount"]:
                return self._business_failed("ACQ.CONTEXT_INCONSISTENT", "交易信息被篡改")
            if trade is None or not trade.qr_code:
                trade = Trade(
                    biz["out_trade_no"],
                    biz["total_amount"],
                    biz["subject"],
                    params["method"],
                    params.get("notify_url", ""),
                )
                trade.qr_code = f"{self.url}/qr/bax0{random_text(20).lower()}"
                self.trades[trade.out_trade_no] = trade
            trade.notify_url = params.get("notify_url", "") or trade.notify_url
        return {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no, "qr_code": trade.qr_code}

    def _query(self, params: dict, biz: dict) -> dict:
        trade = self._known_trade(biz)
        if trade is None:
            return self._business_failed("ACQ.TRADE_NOT_EXIST", "交易不存在")
        paid = trade.status in ("TRADE_SUCCESS", "TRADE_FINISHED") or (
            trade.status == "TRADE_CLOSED" and trade.gmt_payment
        )
        answer = {
            "code": "10000",
            "msg": "Success",
            "buyer_logon_id": self.buyer_logon_id,
            "buyer_pay_amount": trade.total_amount if paid else "0.00",
            "buyer_user_id": self.buyer_id,
            "invoice_amount": trade.total_amount if paid else "0.00",
            "out_trade_no": trade.out_trade_no,
            "point_amount": "0.00",
            "receipt_amount": trade.total_amount if paid else "0.00",
            "total_amount": trade.total_amount,
            "trade_no": trade.trade_no,
            "trade_status": trade.status,
        }
        if trade.gmt_payment:
            answer["send_pay_date"] = trade.gmt_payment
        return answer

    def _refund(self, params: dict, biz: dict) -> dict:
        trade = self._known_trade(biz)
        if trade is None:
            return self._business_failed("ACQ.TRADE_NOT_EXIST", "交易不存在")
        amount = biz.get("refund_amount")
        if not isinstance(amount, str) or not AMOUNT.fullmatch(amount) or fen(amount) <= 0:
            return {
                "code": "40002",
                "msg": "Invalid Arguments",
                "sub_code": "isv.invalid-parameter",
                "sub_msg": "refund_amount 不合法",
            }
        request_no = biz.get("out_request_no") or trade.out_trade_no
        with self.lock:
            again = request_no in trade.refunds
            if not again:
                if trade.status != "TRADE_SUCCESS":
                    return self._business_failed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
                refunded = sum(fen(a) for a in trade.refunds.values())
                if refunded + fen(amount) > fen(trade.total_amount):
                    return self._business_failed("ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", "退款金额超限")
                trade.refunds[request_no] = amount
                if refunded + fen(amount) == fen(trade.total_amount):
                    trade.status = "TRADE_CLOSED"
            total_refunded = yuan(sum(fen(a) for a in trade.refunds.values()))
        return {
            "code": "10000",
            "msg": "Success",
            "buyer_logon_id": self.buyer_logon_id,
            "buyer_user_id": self.buyer_id,
            "fund_change": "N" if again else "Y",
            "out_trade_no": trade.out_trade_no,
            "refund_fee": total_refunded,
            "send_back_fee": trade.refunds[request_no],
            "trade_no": trade.trade_no,
        }

    def _fastpay_refund_query(self, params: dict, biz: dict) -> dict:
        trade = self._known_trade(biz)
        request_no = biz.get("out_request_no", "")
        if trade is None or request_no not in trade.refunds:
            return {"code": "10000", "msg": "Success"}  # Alipay answers an unknown refund with no details
        return {
            "code": "10000",
            "msg": "Success",
            "out_request_no": request_no,
            "out_trade_no": trade.out_trade_no,
            "refund_amount": trade.refunds[request_no],
            "refund_status": "REFUND_SUCCESS",
            "total_amount": trade.total_amount,
            "trade_no": trade.trade_no,
        }

    def _close(self, params: dict, biz: dict) -> dict:
        trade = self._known_trade(biz)
        if trade is None:
            return self._business_failed("ACQ.TRADE_NOT_EXIST", "交易不存在")
        if trade.status != "WAIT_BUYER_PAY":
            return self._business_failed("ACQ.TRADE_STATUS_ERROR", "交易状态不合法")
        trade.status = "TRADE_CLOSED"
        return {"code": "10000", "msg": "Success", "out_trade_no": trade.out_trade_no, "trade_no": trade.trade_no}
