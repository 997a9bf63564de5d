"""A fake Stripe: Checkout Sessions, PaymentIntents (retrieve, search), Refunds, the hosted
Checkout page and signed webhooks.

The API (under `api_base`) takes form-encoded bodies with bracketed keys
(`line_items[0][price_data][unit_amount]=1000`, as the official SDKs send them) and
`Authorization: Bearer sk_…`; a wrong key is answered 401, a bad parameter 400, both with
Stripe's `{"error": {"type": "invalid_request_error", "code", "message", "param"}}`. An
`Idempotency-Key` replays the first answer to a POST.

The session's `url` is the hosted page (under /stripe-checkout). Paying there (test card
4242 4242 4242 4242; 4000 0000 0000 0002 is declined) makes a PaymentIntent, sends the
event `checkout.session.completed` to the webhook endpoint with `Stripe-Signature:
t=<unix time>,v1=<hex HMAC-SHA256 of "t.payload" keyed with the whole whsec_ secret>`
(any 2xx is "received"), then sends the buyer to `success_url`.
"""

import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field

from flask import Blueprint, redirect, request

from fakes.common import Provider, page, random_text

API_VERSION = "2025-03-31.basil"
SESSION_MIN_LIFE, SESSION_MAX_LIFE = 30 * 60, 24 * 60 * 60
SESSION_PARAMS = {
    "mode",
    "client_reference_id",
    "metadata",
    "payment_intent_data",
    "line_items",
    "adaptive_pricing",
    "expires_at",
    "success_url",
    "cancel_url",
    "customer_email",
    "locale",
    "payment_method_types",
    "currency",
    "ui_mode",
    "submit_type",
    "billing_address_collection",
}
DECLINED_CARD = "4000000000000002"
SEARCH_CLAUSE = re.compile(
    r"\s*(?P<field>metadata\['(?P<key>(?:[^'\\]|\\.)*)'\]|[a-z_]+)\s*(?P<op>:|>=|<=|>|<)\s*"
    r"(?P<value>'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?[0-9]+)\s*(?P<join>AND|OR)?"
)


class StripeError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        code: str | None = None,
        param: str | None = None,
        kind: str = "invalid_request_error",
    ):
        super().__init__(message)
        self.status = status
        self.error = {"type": kind, "message": message}
        if code:
            self.error["code"] = code
            self.error["doc_url"] = f"https://stripe.com/docs/error-codes/{code.replace('_', '-')}"
        if param:
            self.error["param"] = param


def nested_form(pairs) -> dict:
    """Stripe's form encoding (`a[b][0][c]=v`) as nested dicts and lists."""
    root: dict = {}
    for key, value in pairs:
        path = [key.split("[", 1)[0], *re.findall(r"\[([^\]]*)\]", key)]
        node = root
        for part in path[:-1]:
            node = node.setdefault(part, {})
        node[path[-1]] = value
    return _lists(root)


def _lists(node):
    if isinstance(node, dict):
        if node and all(k.isdigit() for k in node):
            return [_lists(node[k]) for k in sorted(node, key=int)]
        return {k: _lists(v) for k, v in node.items()}
    return node


def _int(value, param: str) -> int:
    if not isinstance(value, str) or not re.fullmatch(r"-?[0-9]+", value):
        raise StripeError(400, f"Invalid integer: {value}", "parameter_invalid_integer", param)
    return int(value)


def _unquote(text: str) -> str:
    return re.sub(r"\\(.)", r"\1", text[1:-1]) if text[:1] in "'\"" else text


def _luhn(number: str) -> bool:
    digits = [int(d) for d in number][::-1]
    return sum(d if i % 2 == 0 else (d * 2 - 9 if d > 4 else d * 2) for i, d in enumerate(digits)) % 10 == 0


@dataclass
class Checkout:
    session: dict
    payment_intent_metadata: dict = field(default_factory=dict)


class FakeStripe(Provider):
    name = "stripe"
    prefix = "/stripe"
    page_prefix = "/stripe-checkout"

    def __init__(self):
        super().__init__()
        self.secret_key = "sk_test_" + random_text(99)
        self.webhook_secret = "whsec_" + random_text(32)
        self.webhook_url = ""  # the merchant's webhook endpoint, as set in the Dashboard
        self.search_delay = 0.0  # seconds before search finds a new PaymentIntent (about 60 at Stripe)
        self.sessions: dict[str, Checkout] = {}
        self.payment_intents: dict[str, dict] = {}
        self.refunds: dict[str, dict] = {}
        self.idempotent: dict[tuple[str, str], tuple[str, int, bytes]] = {}

    def settings(self) -> dict[str, str]:
        return {"secret_key": self.secret_key, "webhook_secret": self.webhook_secret, "api_base": self.url}

    def accepts(self, status: int, body: str) -> bool:
        return 200 <= status < 300

    def session_for(self, order_number: str) -> dict:
        """The newest Checkout Session whose client_reference_id is the merchant's order."""
        with self.lock:
            found = [c.session for c in self.sessions.values() if c.session["client_reference_id"] == order_number]
        if not found:
            raise LookupError(f"Stripe has no Checkout Session for {order_number}")
        return max(found, key=lambda s: s["created"])

    def pay(self, order_number: str, email: str = "buyer@example.com"):
        """Pay the order's newest session with the test card; the webhook sent."""
        return self._complete(self.sessions[self.session_for(order_number)["id"]], email)

    def expire(self, session_id: str):
        """Let an open session expire, as Stripe does at expires_at; the webhook sent."""
        checkout = self.sessions[session_id]
        with self.lock:
            checkout.session.update(status="expired", url=None)
        return self._send_event("checkout.session.expired", checkout.session)

    # -- the API -------------------------------------------------------------------------

    def blueprints(self) -> list:
        api = Blueprint("stripe", __name__, url_prefix=self.prefix)
        api.add_url_rule(
            "/v1/checkout/sessions",
            "create_session",
            lambda: self._api("POST /v1/checkout/sessions", self._create_session),
            methods=["POST"],
        )
        api.add_url_rule(
            "/v1/checkout/sessions/<sid>",
            "get_session",
            lambda sid: self._api(
                "GET /v1/checkout/sessions/:id", lambda p: self._get(self.sessions, sid, "checkout.session")
            ),
        )
        api.add_url_rule(
            "/v1/payment_intents/search",
            "search_intents",
            lambda: self._api("GET /v1/payment_intents/search", self._search_intents),
        )
        api.add_url_rule(
            "/v1/payment_intents/<pid>",
            "get_intent",
            lambda pid: self._api(
                "GET /v1/payment_intents/:id", lambda p: self._get(self.payment_intents, pid, "payment_intent")
            ),
        )
        api.add_url_rule(
            "/v1/refunds", "create_refund", lambda: self._api("POST /v1/refunds", self._create_refund), methods=["POST"]
        )
        api.add_url_rule(
            "/v1/refunds/<rid>",
            "get_refund",
            lambda rid: self._api("GET /v1/refunds/:id", lambda p: self._get(self.refunds, rid, "refund")),
        )
        hosted = Blueprint("stripe_checkout", __name__, url_prefix=self.page_prefix)
        hosted.add_url_rule("/c/pay/<sid>", "page", self._page, methods=["GET", "POST"])
        return [api, hosted]

    def _api(self, action: str, handle):
        params = nested_form(request.values.items(multi=True))
        key = request.headers.get("Idempotency-Key") if request.method == "POST" else None
        fingerprint = json.dumps(params, sort_keys=True)
        headers = {
            "Request-Id": "req_" + random_text(14),
            "Stripe-Version": API_VERSION,
            "Content-Type": "application/json",
        }
        try:
            self._authenticate()
            if key and (action, key) in self.idempotent:
                first, status, body = self.idempotent[(action, key)]
                if first != fingerprint:
                    raise StripeError(
                        400,
                        "Keys for idempotent requests can only be used with the same parameters "
                        "they were first used with.",
                        kind="idempotency_error",
                    )
                self.record(action, params, status=status, answer=body)
                return body, status, {**headers, "Idempotent-Replayed": "true"}
            status, answer = 200, handle(params)
        except StripeError as error:
            status, answer = error.status, {"error": error.error}
        body = json.dumps(answer, indent=2).encode()
        if key and status < 500:
            self.idempotent[(action, key)] = (fingerprint, status, body)
        self.record(
            action,
            params,
            verified=status != 401,
            error=answer.get("error", {}).get("code") or answer.get("error", {}).get("type"),
            status=status,
            answer=body,
        )
        return body, status, headers

    def _authenticate(self) -> None:
        header = request.headers.get("Authorization", "")
        if not header:
            raise StripeError(
                401,
                "You did not provide an API key. You need to provide your API key in the "
                "Authorization header, using Bearer auth (e.g. 'Authorization: Bearer "
                "YOUR_SECRET_KEY').",
            )
        key = header.removeprefix("Bearer ").strip()
        if not hmac.compare_digest(key.encode(), self.secret_key.encode()):
            shown = key[:8] + "*" * 8 + key[-4:] if len(key) > 12 else "****"
            raise StripeError(401, f"Invalid API Key provided: {shown}")

    @staticmethod
    def _get(objects: dict, object_id: str, kind: str) -> dict:
        found = objects.get(object_id)
        if found is None:
            raise StripeError(404, f"No such {kind}: '{object_id}'", "resource_missing", "id")
        return found.session if isinstance(found, Checkout) else found

    def _create_session(self, params: dict) -> dict:
        for name in params:
            if name not in SESSION_PARAMS and name not in ("expand",):
                raise StripeError(400, f"Received unknown parameter: {name}", "parameter_unknown", name)
        if params.get("mode") != "payment":
            raise StripeError(
                400,
                "This fake Stripe makes Checkout Sessions in mode=payment only.",
                "parameter_invalid_empty" if not params.get("mode") else "parameter_unknown",
                "mode",
            )
        items = params.get("line_items")
        if not isinstance(items, list) or not items:
            raise StripeError(400, "Missing required param: line_items.", "parameter_missing", "line_items")
        total, currency = 0, None
        for i, item in enumerate(items):
            price = item.get("price_data") if isinstance(item, dict) else None
            if not isinstance(price, dict):
                raise StripeError(
                    400,
                    f"Missing required param: line_items[{i}][price_data].",
                    "parameter_missing",
                    f"line_items[{i}][price_data]",
                )
            quantity = _int(item.get("quantity"), f"line_items[{i}][quantity]")
            amount = _int(price.get("unit_amount"), f"line_items[{i}][price_data][unit_amount]")
            product = price.get("product_data")
            if not isinstance(product, dict) or not product.get("name"):
                raise StripeError(
                    400,
                    f"Missing required param: line_items[{i}][price_data][product_data][name].",
                    "parameter_missing",
                    f"line_items[{i}][price_data][product_data][name]",
                )
            if quantity < 1 or amount < 0:
                raise StripeError(
                    400, "Invalid quantity or unit_amount.", "parameter_invalid_integer", f"line_items[{i}]"
                )
            item_currency = price.get("currency", "")
            if currency not in (None, item_currency) or not re.fullmatch(r"[a-z]{3}", item_currency):
                raise StripeError(
                    400,
                    "All line items must be in one lower-case ISO currency.",
                    "parameter_invalid",
                    f"line_items[{i}][price_data][currency]",
                )
            currency, total = price["currency"], total + quantity * amount
        if not params.get("success_url"):
            raise StripeError(400, "Missing required param: success_url.", "parameter_missing", "success_url")
        now = int(time.time())
        expires_at = _int(params["expires_at"], "expires_at") if "expires_at" in params else now + SESSION_MAX_LIFE
        if expires_at < now + SESSION_MIN_LIFE:
            raise StripeError(
                400,
                "The `expires_at` timestamp must be at least 30 minutes from Checkout Session creation.",
                "parameter_invalid_integer",
                "expires_at",
            )
        if expires_at > now + SESSION_MAX_LIFE:
            raise StripeError(
                400,
                "The `expires_at` timestamp must be less than 24 hours from Checkout Session creation.",
                "parameter_invalid_integer",
                "expires_at",
            )
        session_id = "cs_test_" + random_text(58)
        session = {
            "id": session_id,
            "object": "checkout.session",
            "adaptive_pricing": {"enabled": params.get("adaptive_pricing", {}).get("enabled") == "true"},
            "amount_subtotal": total,
            "amount_total": total,
            "cancel_url": params.get("cancel_url"),
            "client_reference_id": params.get("client_reference_id"),
            "created": now,
            "currency": currency,
            "customer": None,
            "customer_details": None,
            "customer_email": params.get("customer_email"),
            "expires_at": expires_at,
            "livemode": False,
            "locale": params.get("locale"),
            "metadata": params.get("metadata", {}),
            "mode": "payment",
            "payment_intent": None,
            "payment_method_types": ["card"],
            "payment_status": "unpaid",
            "status": "open",
            "success_url": params["success_url"],
            "ui_mode": "hosted",
            "url": f"{self.base_url}{self.page_prefix}/c/pay/{session_id}",
        }
        intent_data = params.get("payment_intent_data", {})
        with self.lock:
            self.sessions[session_id] = Checkout(session, intent_data.get("metadata", {}))
        return session

    def _search_intents(self, params: dict) -> dict:
        query = params.get("query", "")
        if not query:
            raise StripeError(400, "Missing required param: query.", "parameter_missing", "query")
        clauses, joins, pos = [], set(), 0
        while pos < len(query):
            match = SEARCH_CLAUSE.match(query, pos)
            if match is None or match.end() == pos:
                raise StripeError(400, f"Invalid search query at position {pos}.", "parameter_invalid", "query")
            if match["field"] not in ("amount", "currency", "customer", "status") and match["key"] is None:
                raise StripeError(
                    400,
                    f"Field '{match['field']}' is not a valid search field for payment_intents.",
                    "parameter_invalid",
                    "query",
                )
            clauses.append(match)
            if match["join"]:
                joins.add(match["join"])
            pos = match.end()
        if len(joins) > 1:
            raise StripeError(400, "A search query cannot mix AND and OR.", "parameter_invalid", "query")
        limit = _int(params.get("limit", "10"), "limit")
        cutoff = time.time() - self.search_delay
        with self.lock:
            intents = [pi for pi in self.payment_intents.values() if pi["created"] <= cutoff]
        test = all if joins != {"OR"} else any
        found = [pi for pi in intents if test(self._matches(pi, clause) for clause in clauses)]
        found.sort(key=lambda pi: pi["created"], reverse=True)
        return {
            "object": "search_result",
            "url": "/v1/payment_intents/search",
            "has_more": len(found) > limit,
            "next_page": None,
            "data": found[:limit],
        }

    @staticmethod
    def _matches(intent: dict, clause) -> bool:
        value = _unquote(clause["value"])
        if clause["key"] is not None:
            actual = intent["metadata"].get(re.sub(r"\\(.)", r"\1", clause["key"]))
        else:
            actual = intent.get(clause["field"])
        if clause["op"] == ":":
            return actual is not None and str(actual) == value
        if not isinstance(actual, int) or not re.fullmatch(r"-?[0-9]+", value):
            return False
        return {
            ">": actual > int(value),
            "<": actual < int(value),
            ">=": actual >= int(value),
            "<=": actual <= int(value),
        }[clause["op"]]

    def _create_refund(self, params: dict) -> dict:
        intent_id = params.get("payment_intent")
        if not intent_id:
            raise StripeError(400, "Missing required param: payment_intent.", "parameter_missing", "payment_intent")
        with self.lock:
            intent = self.payment_intents.get(intent_id)
            if intent is None:
                raise StripeError(400, f"No such payment_intent: '{intent_id}'", "resource_missing", "payment_intent")
            if intent["status"] != "succeeded":
                raise StripeError(
                    400,
                    "This PaymentIntent has no successful charge to refund.",
                    "payment_intent_unexpected_state",
                    "payment_intent",
                )
            refunded = sum(r["amount"] for r in self.refunds.values() if r["payment_intent"] == intent_id)
            left = intent["amount_received"] - refunded
            amount = _int(params["amount"], "amount") if "amount" in params else left
            if left == 0:
                raise StripeError(
                    400, f"Charge {intent['latest_charge']} has already been refunded.", "charge_already_refunded"
                )
            if amount <= 0 or amount > left:
                raise StripeError(
                    400,
                    f"Refund amount ({amount}) is greater than unrefunded amount on charge ({left})",
                    "amount_too_large",
                    "amount",
                )
            refund = {
                "id": "re_" + random_text(24),
                "object": "refund",
                "amount": amount,
                "balance_transaction": "txn_" + random_text(24),
                "charge": intent["latest_charge"],
                "created": int(time.time()),
                "currency": intent["currency"],
                "metadata": params.get("metadata", {}),
                "payment_intent": intent_id,
                "reason": None,
                "status": "succeeded",
            }
            self.refunds[refund["id"]] = refund
        return refund

    # -- the hosted Checkout page ------------------------------------------------------------

    def _page(self, sid: str):
        checkout = self.sessions.get(sid)
        if checkout is None:
            return page(
                "stripe",
                "Something went wrong",
                status=404,
                lang="en",
                error="The page you were looking for could not be found.",
            )
        session = checkout.session
        if session["status"] != "open" or session["expires_at"] < time.time():
            self.record("checkout page", request.form.to_dict(), verified=False, error="session_inactive")
            return page(
                "stripe",
                "This Checkout Session is no longer active",
                lang="en",
                error="This Checkout Session is no longer active.",
            )
        form = request.form.to_dict()
        error = None
        if request.method == "POST":
            card = re.sub(r"[\s-]", "", form.get("cardnumber", ""))
            if card == DECLINED_CARD:
                error = "Your card was declined."
            elif not card.isdigit() or not 12 <= len(card) <= 19 or not _luhn(card):
                error = "Your card number is invalid."
            self.record("checkout pay", form, verified=error is None, error=error)
            if error is None:
                self._complete(checkout, form.get("email") or "buyer@example.com")
                return redirect(session["success_url"].replace("{CHECKOUT_SESSION_ID}", sid), 303)
        else:
            self.record("checkout page", {})
        name = session["metadata"].get("order_number") or session["client_reference_id"] or sid
        links = [(session["cancel_url"], "← Back")] if session.get("cancel_url") else []
        return page(
            "stripe",
            "Pay",
            lang="en",
            error=error,
            amount=self._money(session),
            facts=[("Order", name)],
            form_action=f"{self.page_prefix}/c/pay/{sid}",
            inputs=[
                {"name": "email", "label": "Email", "value": form.get("email", "buyer@example.com")},
                {
                    "name": "cardnumber",
                    "label": "Card information",
                    "value": form.get("cardnumber", "4242 4242 4242 4242"),
                },
                {"name": "exp", "label": "MM / YY", "value": form.get("exp", "12 / 34")},
                {"name": "cvc", "label": "CVC", "value": form.get("cvc", "123")},
            ],
            button="Pay",
            links=links,
        )

    @staticmethod
    def _money(session: dict) -> str:
        amount = session["amount_total"]
        return f"{session['currency'].upper()} {amount // 100}.{amount % 100:02d}"

    def _complete(self, checkout: Checkout, email: str):
        session = checkout.session
        with self.lock:
            if session["payment_status"] != "paid":
                now = int(time.time())
                intent = {
                    "id": "pi_" + random_text(24),
                    "object": "payment_intent",
                    "amount": session["amount_total"],
                    "amount_capturable": 0,
                    "amount_received": session["amount_total"],
                    "currency": session["currency"],
                    "created": now,
                    "customer": None,
                    "description": None,
                    "latest_charge": "ch_" + random_text(24),
                    "livemode": False,
                    "metadata": dict(checkout.payment_intent_metadata),
                    "payment_method": "pm_" + random_text(24),
                    "payment_method_types": ["card"],
                    "status": "succeeded",
                }
                self.payment_intents[intent["id"]] = intent
                session.update(
                    payment_intent=intent["id"],
                    payment_status="paid",
                    status="complete",
                    url=None,
                    customer_details={
                        "email": email,
                        "name": None,
                        "phone": None,
                        "address": None,
                        "tax_exempt": "none",
                        "tax_ids": [],
                    },
                )
        return self._send_event("checkout.session.completed", session)

    def _send_event(self, event_type: str, data_object: dict):
        event = {
            "id": "evt_" + random_text(24),
            "object": "event",
            "api_version": API_VERSION,
            "created": int(time.time()),
            "data": {"object": data_object},
            "livemode": False,
            "pending_webhooks": 1,
            "request": {"id": None, "idempotency_key": None},
            "type": event_type,
        }
        payload = json.dumps(event, indent=2).encode()
        timestamp = str(int(time.time()))
        signature = hmac.new(
            self.webhook_secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256
        ).hexdigest()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Stripe-Signature": f"t={timestamp},v1={signature}",
            "User-Agent": "Stripe/1.0 (+https://stripe.com/docs/webhooks)",
        }
        return self.notify(
            data_object.get("client_reference_id") or "", "POST", self.webhook_url, headers, payload, event
        )
