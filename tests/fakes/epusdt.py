"""A fake epusdt (USDT-TRC20 payments a merchant runs for itself).

`POST /api/v1/order/create-transaction` takes JSON `order_id amount notify_url
redirect_url signature`; `signature` is the lower-case hex MD5 of the non-empty
parameters but `signature`, sorted, `k=v&…`, followed by the API token, numbers written
as Go prints a float64 (`42`, `28.88`). Every answer is HTTP 200 with `{"status_code",
"message", "data", "request_id"}`; a bad signature is status_code 401 签名认证错误, a second
transaction for the same order_id 10002.

`payment_url` is the checkout counter (`/pay/checkout-counter/<trade_id>`). When the
transfer "arrives" (the counter's form, or `pay(trade_id)`), epusdt POSTs the JSON
`trade_id order_id amount actual_amount token block_transaction_id signature status=2`
to `notify_url`, expects the body `ok`, and the counter sends the buyer to `redirect_url`.
"""

import hashlib
import hmac
import json
import secrets
import time
import uuid
from dataclasses import dataclass
from datetime import datetime
from decimal import ROUND_HALF_UP, Decimal

from flask import Blueprint, redirect, request

from fakes.common import Provider, page, random_digits, random_text

BASE58 = "123456789ABCDEFGHJKLMNPQRSTUVWXYZabcdefghijkmnopqrstuvwxyz"
EXPIRY = 10 * 60  # epusdt's default order lifetime
ERRORS = {
    400: "系统错误",
    401: "签名认证错误",
    10002: "支付交易已存在，请勿重复创建",
    10004: "支付金额有误, 无法满足最小支付单位",
    10008: "订单不存在",
    10009: "无法解析请求参数",
}


def go_number(value: float) -> str:
    """A float64 as Go's strconv.FormatFloat(v, 'f', -1, 64): shortest, no exponent."""
    text = format(Decimal(repr(float(value))), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def signature(fields: dict, token: str) -> str:
    parts = []
    for name, value in fields.items():
        if name == "signature" or value is None:
            continue
        if isinstance(value, (bool, dict, list)):
            raise ValueError(f"epusdt cannot sign {name}")  # Go's signer refuses anything else
        text = go_number(value) if isinstance(value, (int, float)) else str(value)
        if text != "":
            parts.append(f"{name}={text}")
    return hashlib.md5(("&".join(sorted(parts)) + token).encode()).hexdigest()


@dataclass
class Transaction:
    trade_id: str
    order_id: str
    amount: float  # CNY
    actual_amount: float  # USDT
    token: str  # the receiving wallet
    notify_url: str
    redirect_url: str
    expiration_time: int
    status: int = 1  # 1 waiting, 2 paid, 3 expired
    block_transaction_id: str = ""


class FakeEpusdt(Provider):
    name = "usdt"
    prefix = "/epusdt"

    def __init__(self):
        super().__init__()
        self.api_token = random_text(24)
        self.rate = Decimal("7.2")  # CNY per USDT
        self.wallet = "T" + "".join(secrets.choice(BASE58) for _ in range(33))
        self.transactions: dict[str, Transaction] = {}  # by trade_id

    def settings(self) -> dict[str, str]:
        return {"api_url": self.url + "/", "api_token": self.api_token}

    def accepts(self, status: int, body: str) -> bool:
        return status == 200 and body == "ok"

    def transaction_for(self, order_number: str) -> Transaction:
        """The newest transaction of the merchant's order (order_id is "<number>-<6 hex>")."""
        with self.lock:
            found = [
                t
                for t in self.transactions.values()
                if t.order_id == order_number or t.order_id.rsplit("-", 1)[0] == order_number
            ]
        if not found:
            raise LookupError(f"epusdt has no transaction for {order_number}")
        return found[-1]

    def pay(self, order_number_or_trade_id: str):
        """The buyer's USDT transfer arrives on chain; the notification sent."""
        transaction = self.transactions.get(order_number_or_trade_id) or self.transaction_for(order_number_or_trade_id)
        return self._pay(transaction)

    def blueprints(self) -> list[Blueprint]:
        bp = Blueprint("epusdt", __name__, url_prefix=self.prefix)
        bp.add_url_rule("/api/v1/order/create-transaction", "create", self._create, methods=["POST"])
        bp.add_url_rule("/pay/checkout-counter/<trade_id>", "counter", self._counter, methods=["GET", "POST"])
        bp.add_url_rule("/pay/check-status/<trade_id>", "status", self._check_status)
        return [bp]

    def _answer(self, action: str, params, code: int, data=None):
        answer = {
            "status_code": code,
            "message": "success" if code == 200 else ERRORS[code],
            "data": data,
            "request_id": str(uuid.uuid4()),
        }
        body = _json(answer)
        self.record(
            action,
            params if isinstance(params, dict) else {},
            verified=code != 401,
            error=None if code == 200 else str(code),
            answer=body,
        )
        return body, 200, {"Content-Type": "application/json; charset=UTF-8"}

    def _create(self):
        action = "create-transaction"
        try:
            # Go reads every JSON number of the request as a float64.
            params = json.loads(request.get_data(cache=True), parse_int=float)
        except ValueError:
            params = None
        if not isinstance(params, dict) or not isinstance(params.get("signature"), str):
            return self._answer(action, params, 401)
        try:
            expected = signature(params, self.api_token)
        except (TypeError, ValueError):
            return self._answer(action, params, 401)
        if not hmac.compare_digest(params["signature"].encode(), expected.encode()):
            return self._answer(action, params, 401)
        amount = params.get("amount")
        if (
            not isinstance(params.get("order_id"), str)
            or not params["order_id"]
            or not isinstance(params.get("notify_url"), str)
            or not params["notify_url"]
        ):
            return self._answer(action, params, 10009)
        if not isinstance(amount, float) or amount < 0.01:
            return self._answer(action, params, 10004)
        with self.lock:
            if any(t.order_id == params["order_id"] for t in self.transactions.values()):
                return self._answer(action, params, 10002)
            actual = (Decimal(repr(amount)) / self.rate).quantize(Decimal("0.0001"), ROUND_HALF_UP)
            transaction = Transaction(
                trade_id=datetime.now().strftime("%Y%m%d") + str(int(time.time())) + random_digits(8),
                order_id=params["order_id"],
                amount=amount,
                actual_amount=float(actual),
                token=self.wallet,
                notify_url=params["notify_url"],
                redirect_url=params.get("redirect_url") or "",
                expiration_time=int(time.time()) + EXPIRY,
            )
            self.transactions[transaction.trade_id] = transaction
        return self._answer(
            action,
            params,
            200,
            {
                "trade_id": transaction.trade_id,
                "order_id": transaction.order_id,
                "amount": transaction.amount,
                "actual_amount": transaction.actual_amount,
                "token": transaction.token,
                "expiration_time": transaction.expiration_time,
                "payment_url": f"{self.url}/pay/checkout-counter/{transaction.trade_id}",
            },
        )

    def _counter(self, trade_id: str):
        transaction = self.transactions.get(trade_id)
        if transaction is not None and transaction.status == 1 and time.time() > transaction.expiration_time:
            transaction.status = 3
        if transaction is None or transaction.status == 3:
            self.record("checkout-counter", request.form.to_dict(), verified=False, error="10008")
            return page("usdt", "USDT 收银台", status=404, error="订单不存在或已过期")
        if request.method == "POST":
            self.record("checkout-counter pay", request.form.to_dict())
            if transaction.status == 1:
                self._pay(transaction)
            if transaction.redirect_url:
                return redirect(transaction.redirect_url, 303)
            return page("usdt", "支付成功", amount=f"{go_number(transaction.actual_amount)} USDT")
        self.record("checkout-counter", {})
        return page(
            "usdt",
            "USDT-TRC20 收银台",
            amount=f"{go_number(transaction.actual_amount)} USDT",
            facts=[
                ("订单号", transaction.order_id),
                ("金额 (CNY)", go_number(transaction.amount)),
                ("收款地址 (TRC20)", transaction.token),
                ("过期时间", datetime.fromtimestamp(transaction.expiration_time).strftime("%H:%M:%S")),
            ],
            form_action=f"{self.prefix}/pay/checkout-counter/{trade_id}",
            button="我已转账",
        )

    def _check_status(self, trade_id: str):
        transaction = self.transactions.get(trade_id)
        if transaction is None:
            return self._answer("check-status", {}, 10008)
        return self._answer("check-status", {}, 200, {"trade_id": trade_id, "status": transaction.status})

    def _pay(self, transaction: Transaction):
        with self.lock:
            if transaction.status == 1:
                transaction.status = 2
                transaction.block_transaction_id = secrets.token_hex(32)
        fields = {
            "trade_id": transaction.trade_id,
            "order_id": transaction.order_id,
            "amount": transaction.amount,
            "actual_amount": transaction.actual_amount,
            "token": transaction.token,
            "block_transaction_id": transaction.block_transaction_id,
            "status": transaction.status,
        }
        fields["signature"] = signature(fields, self.api_token)
        return self.notify(
            transaction.order_id.rsplit("-", 1)[0],
            "POST",
            transaction.notify_url,
            {"Content-Type": "application/json"},
            _json(fields).encode(),
            fields,
        )


def _json(value) -> str:
    """JSON as Go's encoder writes it: a float64 with no fraction has no ".0"."""
    if isinstance(value, dict):
        return "{" + ",".join(f"{json.dumps(k)}:{_json(v)}" for k, v in value.items()) + "}"
    if isinstance(value, float):
        return go_number(value)
    return json.dumps(value, ensure_ascii=False)
