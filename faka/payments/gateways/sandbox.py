"""The sandbox gateway: a local pay page for demos and tests.

Its pay page is a plain HTML form whose fields are a notification signed exactly as a
real gateway would sign one (HMAC-SHA256 with the sandbox secret over the sorted
`key=value` pairs joined by `&`). Submitting it posts to /pay/sandbox/notify, so the
whole verification path runs for real. It works the same wherever the buyer is (method
`form`): the form posts to this site, which every in-app browser allows.
"""

import hashlib
import hmac
import secrets
from collections.abc import Mapping
from urllib.parse import urlsplit

from faka.payments.gateways.base import Gateway, InvalidNotify, Notice, OrderRef, PaymentStart

SIGNED_FIELDS = ("order_no", "trade_no", "amount", "currency", "status", "return_url")


def sign(fields: Mapping[str, str], secret: str) -> str:
    message = "&".join(f"{k}={fields[k]}" for k in sorted(fields) if k != "sign" and fields[k] != "")
    return hmac.new(secret.encode(), message.encode(), hashlib.sha256).hexdigest()


class SandboxGateway(Gateway):
    name = "sandbox"
    settings_fields = ("secret",)
    secret_fields = ("secret",)

    @staticmethod
    def default_settings() -> dict[str, str]:
        return {"secret": secrets.token_hex(32)}

    def method_for(self, client: str) -> str | None:
        return "form"

    def create_payment(self, order: OrderRef) -> PaymentStart:
        fields = {
            "order_no": order.number,
            "trade_no": "SBX" + secrets.token_hex(12),
            "amount": str(order.total),
            "currency": order.currency,
            "status": "paid",
            "return_url": order.return_url,
        }
        fields["sign"] = sign(fields, self.settings["secret"])
        # The buyer's own browser posts this form, so it goes to our notify path on
        # whatever host the buyer is using.
        return PaymentStart(form_action=urlsplit(order.notify_url).path, form_fields=fields, method="form")

    def verify_notify(self, form, headers, body) -> Notice:
        fields = {k: form.get(k, "") for k in SIGNED_FIELDS}
        given = form.get("sign", "")
        # Bytes: compare_digest refuses str with non-ASCII characters (a TypeError), and a
        # forged sign may hold any.
        if not given or not hmac.compare_digest(given.encode(), sign(fields, self.settings["secret"]).encode()):
            raise InvalidNotify("bad signature")
        try:
            amount = int(fields["amount"])
        except ValueError as exc:
            raise InvalidNotify("bad amount") from exc
        if not fields["order_no"] or not fields["trade_no"]:
            raise InvalidNotify("missing order or trade number")
        return Notice(
            order_number=fields["order_no"],
            trade_no=fields["trade_no"],
            amount=amount,
            currency=fields["currency"],
            paid=fields["status"] == "paid",
            return_url=fields["return_url"] or None,
        )

    def refund(self, order_number: str, trade_no: str, amount: int, refund_no: str) -> str:
        # The sandbox's money is make-believe: a refund always succeeds, and the same
        # refund number always gets the same reference.
        digest = hmac.new(
            self.settings["secret"].encode(), f"refund:{trade_no}:{refund_no}:{amount}".encode(), hashlib.sha256
        ).hexdigest()
        return "SBXR" + digest[:20]
