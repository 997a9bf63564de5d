"""USDT (TRC-20) through an epusdt-compatible service (epusdt, BEpusdt, ...) that the operator runs.

Settings:

- `api_url`: the address of the epusdt service, e.g. `https://usdt.example.com/` (self-hosted, so
  there is no default).
- `api_token`: its API token (epusdt's `api_auth_token` in `.env`; BEpusdt's 对接令牌).

epusdt takes the amount in CNY and converts it to USDT at its own rate, so this gateway takes CNY
orders only. Each payment creates a transaction with `POST <api_url>/api/v1/order/create-transaction`
(JSON `order_id`, `amount`, `notify_url`, `redirect_url`, `signature`) and sends the buyer to the
`payment_url` it answers. epusdt refuses a second transaction for the same `order_id`, even an expired
one, so each attempt sends `<order number>-<6 hex digits>`; a buyer who pays two attempts has paid
twice, which the payments service records for a refund.

Notify URL: `<FAKA_BASE_URL>/pay/usdt/notify`, sent with every transaction (nothing to set in epusdt).
epusdt POSTs the JSON `trade_id`, `order_id`, `amount` (CNY), `actual_amount` (USDT), `token` (the
receiving wallet), `block_transaction_id`, `signature` and `status` (2 = paid) once the transfer is on
chain, and expects the body `ok`; anything else makes it try again (up to 5 times).

Signature: the parameters other than `signature` whose value is not empty, sorted by name, joined as
`k=v&k=v`, followed directly by the API token; the lower-case hex MD5 of that. JSON numbers take part
as epusdt prints them (`100`, `28.88`, `2`).

The buyer is redirected to the payment page wherever they are (method `redirect`): it only shows
the wallet address and the amount to send, which any browser, in-app ones too, can display.

There is no query (epusdt has no signed status API) and no refund (an on-chain payment is paid back
by hand).
"""

import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Mapping
from typing import TypeGuard

import requests

from faka.payments.gateways.base import (
    HTTP_TIMEOUT,
    Gateway,
    GatewayError,
    IgnoredNotify,
    InvalidNotify,
    Notice,
    OrderRef,
    PaymentStart,
    fen_from_yuan,
)

CURRENCY = "CNY"
PAID = "2"
MAX_NOTIFY_BYTES = 64 * 1024
MAX_ANSWER_BYTES = 256 * 1024
TEXT_FIELDS = ("trade_id", "order_id", "token", "block_transaction_id", "signature")
NUMBER_FIELDS = ("amount", "actual_amount", "status")
_ORDER_ID = re.compile(r"(.+)-[0-9a-f]{6}")


class UsdtError(GatewayError):
    """The epusdt service could not be reached, refused a call, answered something we cannot
    trust, or the gateway is not set up."""


class _Number(str):
    """A JSON number kept as the literal the service wrote: signed as written, never a float."""


def number_text(literal: str) -> str:
    """A JSON number as epusdt (Go, strconv 'f' -1) prints it when signing: no exponent, no
    trailing zeros after the point."""
    if not re.fullmatch(r"-?\d+(\.\d+)?", literal):
        raise ValueError("not a plain decimal number")
    return literal.rstrip("0").rstrip(".") if "." in literal else literal


def sign(fields: Mapping[str, str], token: str) -> str:
    content = "&".join(
        f"{name}={value}" for name, value in sorted(fields.items()) if name != "signature" and value != ""
    )
    return hashlib.md5((content + token).encode()).hexdigest()


def amount_text(amount: int) -> str:
    """Fen as the yuan number epusdt reads and signs: 1000 -> 10, 1250 -> 12.5, 1234 -> 12.34."""
    return number_text(f"{amount // 100}.{amount % 100:02d}")


def _refuse_constant(name: str):
    raise ValueError(f"JSON constant {name} is not allowed")


def _unique(pairs):
    names = [name for name, _ in pairs]
    if len(set(names)) != len(names):
        raise ValueError("repeated JSON key")
    return dict(pairs)


def _load(text: str):
    return json.loads(
        text, parse_int=_Number, parse_float=_Number, parse_constant=_refuse_constant, object_pairs_hook=_unique
    )


def _is_text(value: object) -> TypeGuard[str]:
    """A string in the answer, not a number _load() kept as its text."""
    return isinstance(value, str) and not isinstance(value, _Number)


class UsdtGateway(Gateway):
    name = "usdt"
    settings_fields = ("api_url", "api_token")
    secret_fields = ("api_token",)
    success_body = "ok"

    def method_for(self, client: str) -> str | None:
        return "redirect"

    def create_payment(self, order: OrderRef) -> PaymentStart:
        token = self.settings.get("api_token", "")
        base = self.settings.get("api_url", "").strip()
        if order.currency != CURRENCY:
            raise UsdtError(f"epusdt takes {CURRENCY} only, order {order.number} is in {order.currency}")
        if not token or not base.startswith(("https://", "http://")):
            raise UsdtError("api_url or api_token is not set")
        fields = {
            "order_id": f"{order.number}-{secrets.token_hex(3)}",
            "amount": amount_text(order.total),
            "notify_url": order.notify_url,
            "redirect_url": order.base_url + order.return_url,
        }
        fields["signature"] = sign(fields, token)
        # amount is a JSON number, written exactly as it was signed.
        body = (
            "{"
            + ",".join(
                f"{json.dumps(name)}:{value if name == 'amount' else json.dumps(value)}"
                for name, value in fields.items()
            )
            + "}"
        )
        try:
            response = self.http.post(
                base.rstrip("/") + "/api/v1/order/create-transaction",
                data=body.encode(),
                headers={"Content-Type": "application/json"},
                timeout=HTTP_TIMEOUT,
                stream=True,
            )
        except requests.RequestException as exc:
            raise UsdtError(f"epusdt unreachable: {type(exc).__name__}") from None
        answer = _read(response)
        if answer.get("status_code") != "200" or not isinstance(answer.get("data"), dict):
            message = answer.get("message") if _is_text(answer.get("message")) else ""
            raise UsdtError(f"epusdt refused the transaction: {answer.get('status_code')!s:.10} {message:.200}")
        data = answer["data"]
        amount = data.get("amount")
        try:
            same_amount = isinstance(amount, str) and number_text(amount) == fields["amount"]
        except ValueError:
            same_amount = False
        if data.get("order_id") != fields["order_id"] or not same_amount:
            raise UsdtError("epusdt answered for another order or amount")
        payment_url = data.get("payment_url")
        if not _is_text(payment_url) or not payment_url.startswith(("https://", "http://")):
            raise UsdtError("epusdt answered no payment_url")
        trade_id = data.get("trade_id")
        return PaymentStart(
            redirect_url=payment_url, reference=trade_id if _is_text(trade_id) else None, method="redirect"
        )

    def verify_notify(self, form: Mapping[str, str], headers: Mapping[str, str], body: bytes) -> Notice:
        token = self.settings.get("api_token", "")
        if not token:
            raise InvalidNotify("no api token configured")
        if len(body) > MAX_NOTIFY_BYTES:
            raise InvalidNotify("body too large")
        try:
            payload = _load(body.decode("utf-8"))
        except ValueError:
            raise InvalidNotify("body is not a JSON object with unique keys") from None
        if not isinstance(payload, dict):
            raise InvalidNotify("body is not a JSON object")
        for name in TEXT_FIELDS:
            if not _is_text(payload.get(name)) or not payload[name]:
                raise InvalidNotify(f"{name} missing or not a string")
        for name in NUMBER_FIELDS:
            if not isinstance(payload.get(name), _Number):
                raise InvalidNotify(f"{name} missing or not a number")
        signed = {}
        for name, value in payload.items():
            if isinstance(value, _Number):
                try:
                    signed[name] = number_text(value)
                except ValueError:
                    raise InvalidNotify(f"{name[:40]!r} is a number epusdt does not write") from None
            elif _is_text(value):
                signed[name] = value
            elif value is not None:  # epusdt signs only strings and numbers, and skips nulls
                raise InvalidNotify(f"{name[:40]!r} is neither a string nor a number")
        try:
            authentic = hmac.compare_digest(payload["signature"].encode(), sign(signed, token).encode())
        except UnicodeEncodeError:  # a lone surrogate ("\ud800" in the JSON): no text epusdt signed
            authentic = False
        if not authentic:
            raise InvalidNotify("bad signature")
        if signed["status"] != PAID:
            raise IgnoredNotify(f"status {signed['status'][:10]}")
        match = _ORDER_ID.fullmatch(payload["order_id"])
        if match is None:
            raise InvalidNotify("order_id is not one of ours")
        return Notice(
            order_number=match.group(1),
            trade_no=payload["trade_id"],
            amount=fen_from_yuan(signed["amount"]),
            currency=CURRENCY,
            paid=True,
        )


def _read(response: requests.Response) -> dict:
    with response:
        raw = response.raw.read(MAX_ANSWER_BYTES + 1, decode_content=True)
    if len(raw) > MAX_ANSWER_BYTES:
        raise UsdtError("epusdt answer too large")
    try:
        answer = _load(raw.decode("utf-8-sig"))
    except ValueError:
        raise UsdtError(f"epusdt answered HTTP {response.status_code} without JSON") from None
    if not isinstance(answer, dict):
        raise UsdtError("epusdt answer is not a JSON object")
    return answer
