"""A fake 彩虹易支付 (EPay): the classic MD5 interface and the RSA V2 interface.

MD5: the merchant sends the buyer to `submit.php` with `pid type out_trade_no notify_url
return_url name money sign sign_type=MD5`; `sign` is the lower-case hex MD5 of the
non-empty parameters but sign/sign_type, sorted, joined `k=v&…`, followed by the key.
`api.php?act=order&pid=&key=&out_trade_no=` answers an order as JSON (not signed).

RSA (V2): `api/pay/submit`, `api/pay/query`, `api/pay/refund` carry a unix `timestamp`
and `sign` = base64 SHA256withRSA of the same string (values that are only whitespace
left out too) with the merchant's private key; the platform signs its answers and
notifications with its own key.

Paying (the cashier's form) calls `notify_url` with GET and the signed `pid trade_no
out_trade_no type name money trade_status=TRADE_SUCCESS (param) (timestamp) sign
sign_type`, expects the body `success`, then sends the buyer to `return_url` with the same
signed query string.
"""

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from urllib.parse import urlencode

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
)

PAY_TYPES = {"alipay": "支付宝", "wxpay": "微信支付", "qqpay": "QQ钱包"}
MONEY = re.compile(r"[0-9]+(\.[0-9]{1,2})?")
TIMESTAMP_TOLERANCE = 300
PHP_BLANK = " \t\n\r\0\x0b"


def sign_content(fields: dict[str, str], skip_blank: bool = False) -> str:
    return "&".join(
        f"{k}={v}"
        for k, v in sorted(fields.items())
        if k not in ("sign", "sign_type") and (v.strip(PHP_BLANK) if skip_blank else v) != ""
    )


@dataclass
class Trade:
    trade_no: str
    out_trade_no: str
    pid: str
    pay_type: str  # "" until the buyer chooses on the cashier page
    name: str
    money: str
    notify_url: str
    return_url: str
    param: str
    rsa: bool  # came through the V2 interface
    status: int = 0  # 0 unpaid, 1 paid, 2 refunded
    addtime: str = field(default_factory=lambda: datetime.now().strftime("%Y-%m-%d %H:%M:%S"))
    endtime: str = ""
    refunds: dict[str, dict] = field(default_factory=dict)  # out_refund_no -> answer


class FakeEpay(Provider):
    name = "epay"
    prefix = "/epay"

    def __init__(self):
        super().__init__()
        self.pid = "10" + random_digits(3)
        self.key = random_text(32)
        self.merchant_key = key_pair("epay-merchant")
        self.platform_key = key_pair("epay-platform")
        self.trades: dict[str, Trade] = {}  # by trade_no

    def settings(self) -> dict[str, str]:
        return {
            "api_url": self.url + "/",
            "pid": self.pid,
            "key": self.key,
            "sign_type": "MD5",
            "merchant_private_key": private_pem(self.merchant_key),
            "platform_public_key": public_pem(self.platform_key),
        }

    def accepts(self, status: int, body: str) -> bool:
        return status == 200 and body.strip() == "success"

    def trade_for(self, out_trade_no: str) -> Trade | None:
        with self.lock:
            return next((t for t in self.trades.values() if t.out_trade_no == out_trade_no), None)

    def pay(self, out_trade_no: str, pay_type: str = "alipay"):
        """Pay the merchant's order as a buyer on the cashier page would; the notification."""
        trade = self.trade_for(out_trade_no)
        if trade is None:
            raise LookupError(f"易支付 has no order {out_trade_no}")
        return self._pay(trade, pay_type)

    # -- the routes -----------------------------------------------------------------------

    def blueprints(self) -> list[Blueprint]:
        bp = Blueprint("epay", __name__, url_prefix=self.prefix)
        bp.add_url_rule("/submit.php", "submit", lambda: self._submit(rsa=False), methods=["GET", "POST"])
        bp.add_url_rule("/api/pay/submit", "submit_v2", lambda: self._submit(rsa=True), methods=["GET", "POST"])
        bp.add_url_rule("/cashier/<trade_no>", "cashier", self._cashier_pay, methods=["POST"])
        bp.add_url_rule("/api.php", "api", self._api_php, methods=["GET", "POST"])
        bp.add_url_rule("/api/pay/query", "query_v2", self._query_v2, methods=["POST"])
        bp.add_url_rule("/api/pay/refund", "refund_v2", self._refund_v2, methods=["POST"])
        return [bp]

    def _submit(self, rsa: bool):
        params = request_params()
        action = "api/pay/submit" if rsa else "submit.php"
        problem = self._signature_problem(params, rsa) or self._order_problem(params)
        if problem:
            html = page("epay", "站点提示信息", error=problem)
            self.record(action, params, verified=False, error=problem, answer=html[0])
            return html
        with self.lock:
            trade = self.trade_for(params["out_trade_no"])
            if trade is not None and trade.status != 0:
                self.record(action, params, verified=False, error="该订单已完成支付")
                return page("epay", "站点提示信息", error="该订单已完成支付，请勿重复支付")
            if trade is None or trade.money != params["money"]:
                trade = Trade(
                    trade_no=datetime.now().strftime("%Y%m%d%H%M%S") + random_digits(5),
                    out_trade_no=params["out_trade_no"],
                    pid=self.pid,
                    pay_type=params.get("type", ""),
                    name=params["name"],
                    money=params["money"],
                    notify_url=params["notify_url"],
                    return_url=params.get("return_url", ""),
                    param=params.get("param", ""),
                    rsa=rsa,
                )
                self.trades = {k: t for k, t in self.trades.items() if t.out_trade_no != trade.out_trade_no}
                self.trades[trade.trade_no] = trade
        self.record(action, params)
        chosen = trade.pay_type
        inputs = (
            []
            if chosen
            else [{"name": "type", "label": "支付方式", "value": "alipay", "choices": list(PAY_TYPES.items())}]
        )
        return page(
            "epay",
            "收银台",
            amount=f"￥{trade.money}",
            facts=[
                ("商品名称", trade.name),
                ("商户订单号", trade.out_trade_no),
                ("订单号", trade.trade_no),
                ("支付方式", PAY_TYPES.get(chosen, "请选择")),
            ],
            form_action=f"{self.prefix}/cashier/{trade.trade_no}",
            inputs=inputs,
            button="确认支付",
        )

    def _signature_problem(self, params: dict[str, str], rsa: bool) -> str | None:
        if params.get("pid") != self.pid:
            return "商户ID不存在"
        sign = params.get("sign", "")
        if not sign:
            return "签名不能为空"
        if rsa:
            if params.get("sign_type") != "RSA":
                return "签名类型不支持"
            timestamp = params.get("timestamp", "")
            if not timestamp.isdigit() or abs(time.time() - int(timestamp)) > TIMESTAMP_TOLERANCE:
                return "时间戳无效"
            if not rsa_sha256_verifies(self.merchant_key, sign_content(params, skip_blank=True).encode(), sign):
                return "签名校验失败"
            return None
        expected = hashlib.md5((sign_content(params) + self.key).encode()).hexdigest()
        if not hmac.compare_digest(sign.encode(), expected.encode()):
            return "签名校验失败！"
        return None

    @staticmethod
    def _order_problem(params: dict[str, str]) -> str | None:
        for name in ("out_trade_no", "notify_url", "name", "money"):
            if not params.get(name):
                return f"{name} 不能为空"
        if not MONEY.fullmatch(params["money"]) or fen(params["money"]) <= 0:
            return "金额不合法"
        if params.get("type") and params["type"] not in PAY_TYPES:
            return "支付方式(type)不存在"
        return None

    def _cashier_pay(self, trade_no: str):
        trade = self.trades.get(trade_no) or abort(404)
        self.record("cashier pay", request.form.to_dict())
        if trade.status == 0:
            self._pay(trade, trade.pay_type or request.form.get("type", "alipay"))
        if not trade.return_url:
            return page("epay", "支付成功", amount=f"￥{trade.money}")
        return redirect(with_query(trade.return_url, urlencode(self._notice(trade))), 303)

    def _pay(self, trade: Trade, pay_type: str):
        with self.lock:
            if trade.status == 0:
                trade.pay_type = trade.pay_type or pay_type
                trade.status = 1
                trade.endtime = datetime.now().strftime("%Y-%m-%d %H:%M:%S")
        fields = self._notice(trade)
        url = with_query(trade.notify_url, urlencode(fields))
        return self.notify(trade.out_trade_no, "GET", url, {}, b"", fields)

    def _notice(self, trade: Trade) -> dict[str, str]:
        fields = {
            "pid": trade.pid,
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "type": trade.pay_type,
            "name": trade.name,
            "money": trade.money,
            "trade_status": "TRADE_SUCCESS",
        }
        if trade.param:
            fields["param"] = trade.param
        if trade.rsa:
            fields["timestamp"] = str(int(time.time()))
            fields["sign"] = rsa_sha256_sign(self.platform_key, sign_content(fields, skip_blank=True).encode())
            fields["sign_type"] = "RSA"
        else:
            fields["sign"] = hashlib.md5((sign_content(fields) + self.key).encode()).hexdigest()
            fields["sign_type"] = "MD5"
        return fields

    # -- the APIs -------------------------------------------------------------------------

    def _answer(self, action: str, params: dict, answer: dict, verified: bool = True, error: str | None = None):
        body = json.dumps(answer, ensure_ascii=False)
        self.record(action, params, verified=verified, error=error, answer=body)
        return body, 200, {"Content-Type": "application/json; charset=utf-8"}

    def _api_php(self):
        params = request_params()
        action = f"api.php?act={params.get('act', '')}"
        if params.get("act") != "order":
            return self._answer(action, params, {"code": -5, "msg": "No Act!"}, verified=False, error="-5")
        if params.get("pid") != self.pid or not hmac.compare_digest(params.get("key", "").encode(), self.key.encode()):
            return self._answer(action, params, {"code": -2, "msg": "KEY校验失败"}, verified=False, error="-2")
        trade = (
            self.trades.get(params.get("trade_no", ""))
            if params.get("trade_no")
            else self.trade_for(params.get("out_trade_no", ""))
        )
        if trade is None:
            return self._answer(action, params, {"code": -1, "msg": "订单号不存在"})
        return self._answer(action, params, {"code": 1, "msg": "查询订单号成功！", **self._order_fields(trade)})

    @staticmethod
    def _order_fields(trade: Trade) -> dict:
        return {
            "trade_no": trade.trade_no,
            "out_trade_no": trade.out_trade_no,
            "api_trade_no": "",
            "type": trade.pay_type,
            "pid": int(trade.pid),
            "addtime": trade.addtime,
            "endtime": trade.endtime,
            "name": trade.name,
            "money": trade.money,
            "param": trade.param,
            "buyer": "",
            "status": trade.status,
        }

    def _signed_answer(self, answer: dict) -> dict:
        """A V2 answer: every scalar as PHP prints it, signed with the platform key."""
        answer = dict(answer, timestamp=str(int(time.time())))
        as_text = {k: str(v) for k, v in answer.items() if v is not None and not isinstance(v, (dict, list, bool))}
        answer["sign"] = rsa_sha256_sign(self.platform_key, sign_content(as_text, skip_blank=True).encode())
        answer["sign_type"] = "RSA"
        return answer

    def _v2_refusal(self, params: dict) -> str | None:
        return self._signature_problem(params, rsa=True)

    def _query_v2(self):
        params = request.form.to_dict()
        problem = self._v2_refusal(params)
        if problem:
            return self._answer("api/pay/query", params, {"code": -1, "msg": problem}, verified=False, error=problem)
        trade = (
            self.trades.get(params.get("trade_no", ""))
            if params.get("trade_no")
            else self.trade_for(params.get("out_trade_no", ""))
        )
        if trade is None:
            return self._answer("api/pay/query", params, {"code": -1, "msg": "订单不存在"})
        return self._answer("api/pay/query", params, self._signed_answer({"code": 0, **self._order_fields(trade)}))

    def _refund_v2(self):
        params = request.form.to_dict()
        problem = self._v2_refusal(params)
        if problem:
            return self._answer("api/pay/refund", params, {"code": -1, "msg": problem}, verified=False, error=problem)
        trade = (
            self.trades.get(params.get("trade_no", ""))
            if params.get("trade_no")
            else self.trade_for(params.get("out_trade_no", ""))
        )
        if trade is None or trade.status == 0:
            return self._answer("api/pay/refund", params, {"code": -1, "msg": "订单不存在或未支付"})
        money, refund_no = params.get("money", ""), params.get("out_refund_no", "")
        with self.lock:
            if refund_no and refund_no in trade.refunds:  # the same refund again: the same answer
                return self._answer("api/pay/refund", params, self._signed_answer(trade.refunds[refund_no]))
            refunded = sum(fen(answer["money"]) for answer in trade.refunds.values())
            if not MONEY.fullmatch(money) or fen(money) <= 0 or refunded + fen(money) > fen(trade.money):
                return self._answer("api/pay/refund", params, {"code": -1, "msg": "退款金额不合法"})
            answer = {
                "code": 0,
                "msg": "退款成功",
                "refund_no": "RF" + random_digits(16),
                "out_refund_no": refund_no,
                "trade_no": trade.trade_no,
                "money": money,
                "reducemoney": money,
            }
            trade.refunds[refund_no or answer["refund_no"]] = answer
            trade.status = 2
        return self._answer("api/pay/refund", params, self._signed_answer(answer))
