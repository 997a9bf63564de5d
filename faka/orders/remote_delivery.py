"""Delivery "from my server": the merchant's own server answers each paid order with its keys.

A product of delivery type `remote` has the address of the merchant's server and a
signing secret faka made for it. When such an order is paid, the delivery job
(`deliver_order()` in faka/orders/delivery.py) asks that server for the order's keys:

    POST <the product's server address>
    Content-Type: application/json
    User-Agent: faka-delivery
    Faka-Signature: t=1767225610,v1=<hex HMAC-SHA256 of "{t}.{body}", keyed with the secret>
    Idempotency-Key: dd_<order number>
    Faka-Attempt: 1

    {"id": "dd_<order number>", "type": "order.deliver", "test": false,
     "order": {...}, "product": {...}, "variant": {...}, "answers": [...]}

and the server answers 2xx with `{"keys": ["…", "…"]}`: exactly `quantity` keys, each a
non-empty line of at most MAX_KEY_LENGTH characters. The signature is the webhooks' own
(faka/messaging/webhooks.py `sign`), so one check serves both. docs/dynamic-delivery.md
is the merchant's guide to all of it.

What faka does with the answer:
- Usable keys are stored like stock keys (CardKey rows, encrypted, sold to the order), so
  the order page, the delivery email, refunds, complaints and license checks treat them
  exactly as auto-delivered keys. A key the shop already holds for the product (sold to
  another order, or in stock) is refused like a malformed answer: a key is sold once.
- Anything else (another status, a redirect, a timeout, no JSON, the wrong number of
  keys) is a failed attempt. Each attempt is recorded (RemoteDeliveryAttempt) for the
  merchant's order page. A failed attempt raises RemoteDeliveryFailed so RQ retries the
  job (after 5 and 30 s, faka/core/tasks.py RETRY_INTERVALS); the reconciler, which runs
  the delivery job of every paid order still owed its goods, is the safety net, so an
  attempt starts only once RETRY_WAIT has passed since the one before, however many
  jobs ask.
- After MAX_ATTEMPTS failed attempts the order falls back to the merchant: it is marked
  `manual_fallback_at`, leaves the delivery job's queue for the merchant's, the merchant
  gets the manual-order email, and the buyer's page says the seller is delivering it.

No transaction is held while waiting for the merchant's server. An attempt is claimed
first, under the order's row lock (its number is unique per order, so two jobs cannot
make the same attempt), and settled afterwards under the lock again, where only an
order still paid and waiting takes keys: a job retried after the delivery, or two jobs
at once, deliver once. An attempt left unanswered for IN_FLIGHT (its worker stopped)
counts as failed.

Requests go through the address guard (faka/messaging/outbound.py): no private or
loopback addresses, no redirects, checked when the address is saved and on every
connection. Logs name the order and the failure, never the address, a secret or a key.
"""

import json
import logging
import secrets
import time
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import insert, select

from faka.catalog import checkout_fields, products
from faka.catalog.models import (
    DELIVERY_REMOTE,
    KIND_CHOICE,
    KIND_EMAIL,
    KIND_NUMBER,
    KIND_PHONE,
    CheckoutField,
    Product,
)
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.extensions import db
from faka.inventory import stock
from faka.inventory.keys import MAX_KEY_LENGTH
from faka.inventory.models import CardKey
from faka.messaging import outbound, webhooks
from faka.orders.models import Order, RemoteDeliveryAttempt

log = logging.getLogger(__name__)

SECRET_PREFIX = "ddsec_"
USER_AGENT = "faka-delivery"
IDEMPOTENCY_HEADER = "Idempotency-Key"
ATTEMPT_HEADER = "Faka-Attempt"
TIMEOUT_SECONDS = 10
MAX_ATTEMPTS = 3
# How long after a failed attempt the next may start: a little less than RQ's retry
# intervals (5 s, 30 s), so RQ's retry finds it due; without RQ the reconciler's next run
# makes it (once a minute).
RETRY_WAIT = (timedelta(seconds=4), timedelta(seconds=25))
# An attempt unanswered this long lost its job (a worker stopped while waiting).
IN_FLIGHT = timedelta(seconds=60)
ERROR_LENGTH = 300
RECENT_ATTEMPTS = 20

# What the outcome of an attempt means for the order.
DELIVERED = "delivered"  # its keys are stored: deliver the order
RETRY = "retry"  # failed; another attempt comes
FELL_BACK = "fell_back"  # failed for the last time: the merchant delivers by hand
MOOT = "moot"  # the order stopped waiting meanwhile (delivered by another job, refunded)


class InvalidServerUrl(DomainError):
    message = _l("Enter your server's address: http:// or https://, on the public internet.")


class NotFromServer(DomainError):
    message = _l("This product is not delivered from your server. Choose that delivery in its form first.")


class NoSigningSecret(DomainError):
    message = _l("This product has no signing secret yet: make one first.")


class RemoteDeliveryFailed(Exception):
    """An attempt got no usable answer; raised so the delivery job is retried."""


# -- the product's settings ---------------------------------------------------------------


def checked_url(delivery_type: str, url: str | None) -> str | None:
    """The server address a product form gave, through the address guard; None for a
    product delivered otherwise (or none given: the catalogue asks for one)."""
    if delivery_type != DELIVERY_REMOTE or not (url or "").strip():
        return None
    try:
        return outbound.validate_url(url)
    except outbound.InvalidAddress:
        raise InvalidServerUrl() from None


def ensure_secret(merchant_id: int, slug: str) -> str | None:
    """Give a "from my server" product its signing secret if it has none. Returns the new
    secret, the one time it is shown (it is stored encrypted), or None."""
    with write_transaction():
        product = products.get_product(merchant_id, slug)
        if product.delivery_type != DELIVERY_REMOTE or product.remote_secret_ciphertext is not None:
            return None
        return _new_secret(product)


def rotate_secret(merchant_id: int, slug: str) -> str:
    """Replace the product's signing secret; the old one stops working at once. Returns
    the new one, shown this once."""
    with write_transaction():
        product = products.get_product(merchant_id, slug)
        if product.delivery_type != DELIVERY_REMOTE:
            raise NotFromServer()
        return _new_secret(product)


def _new_secret(product: Product) -> str:
    secret = SECRET_PREFIX + secrets.token_hex(32)
    product.remote_secret_ciphertext = vault().encrypt(secret)
    return secret


# -- the request and the answer ----------------------------------------------------------


@dataclass(frozen=True)
class Reply:
    """What an attempt got: the HTTP status (None without an answer), the keys of a
    usable answer, else what was wrong (never quoting a key)."""

    status_code: int | None
    keys: list[str] | None
    error: str | None
    seconds: float = 0.0


def delivery_id(order: Order) -> str:
    """The request's `id`: the same on every attempt for the order, so the merchant's
    server can answer a retry with the keys it already issued."""
    return f"dd_{order.number}"


def order_request(order: Order) -> dict:
    """The JSON body asking for an order's keys."""
    product = order.product
    return {
        "id": delivery_id(order),
        "type": "order.deliver",
        "test": False,
        "order": {
            "number": order.number,
            "quantity": order.quantity,
            "unit_price": order.unit_price,
            "discount": order.discount,
            "amount": order.total,
            "currency": order.currency,
            "buyer_email": order.email,
            "created_at": _unix(order.created_at),
            "paid_at": _unix(order.paid_at),
        },
        "product": {"id": product.slug, "title": product.title},
        # Which option the buyer chose (面值 ¥50 / ¥100): the server issues keys for it.
        "variant": {"key": order.variant.key, "name": order.variant_name},
        "answers": checkout_fields.webhook_answers(order.id),
    }


def _unix(when: datetime | None) -> int | None:
    return int(when.timestamp()) if when else None


def encode(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False, separators=(",", ":")).encode()


def ask(url: str | None, secret: str | None, body: bytes, quantity: int, attempt: int = 1) -> Reply:
    """POST the request, signed, and read the answer. Holds no transaction."""
    if not url or not secret:
        return Reply(None, None, "no server address or signing secret is set")
    payload = json.loads(body)
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        webhooks.SIGNATURE_HEADER: webhooks.sign(secret, int(clock.now().timestamp()), body),
        IDEMPOTENCY_HEADER: payload["id"],
        ATTEMPT_HEADER: str(attempt),
    }
    started = time.monotonic()
    answer = outbound.post(url, body, headers, timeout=TIMEOUT_SECONDS)
    seconds = time.monotonic() - started
    if not answer.ok:
        return Reply(answer.status, None, answer.error or f"HTTP {answer.status}", seconds)
    keys, error = read_keys(answer.body, quantity)
    return Reply(answer.status, keys, error, seconds)


def read_keys(body: bytes, quantity: int) -> tuple[list[str] | None, str | None]:
    """The keys of an answer body, or what is wrong with it."""
    if len(body) >= outbound.READ_LIMIT:
        return None, f"the answer is longer than {outbound.READ_LIMIT // 1024} KB"
    try:
        data = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        return None, 'the answer is not JSON (expected {"keys": [...]})'
    if not isinstance(data, dict) or not isinstance(data.get("keys"), list):
        return None, 'the answer has no "keys" list'
    if len(data["keys"]) != quantity:
        return None, f"expected {quantity} keys, got {len(data['keys'])}"
    keys = []
    for number, key in enumerate(data["keys"], start=1):
        if not isinstance(key, str) or not key.strip():
            return None, f"key {number} is empty or not a string"
        key = key.strip()
        if len(key) > MAX_KEY_LENGTH:
            return None, f"key {number} is longer than {MAX_KEY_LENGTH} characters"
        if any(ord(ch) < 32 or ord(ch) == 127 for ch in key):
            return None, f"key {number} holds a line break or another control character"
        keys.append(key)
    if len(set(keys)) != len(keys):
        return None, "the same key appears twice in the answer"
    return keys, None


# -- an order's attempts -------------------------------------------------------------------


def awaits_server(order_id: int) -> bool:
    """Whether the order is paid and waiting for its keys from the merchant's server (a
    plain read: the delivery job's first question)."""
    row = db.session.execute(
        select(Order.status, Order.held_at, Order.manual_fallback_at, Product.delivery_type)
        .join(Product, Order.product_id == Product.id)
        .where(Order.id == order_id)
    ).first()
    db.session.rollback()  # end the read: the attempt locks the order in its own transaction
    return (
        row is not None
        and row.status == Order.PAID
        and row.held_at is None
        and row.manual_fallback_at is None
        and row.delivery_type == DELIVERY_REMOTE
    )


@dataclass(frozen=True)
class Attempt:
    """An attempt claimed for an order, with what to send."""

    id: int
    number: int
    order_id: int
    quantity: int
    url: str | None
    secret: str | None
    body: bytes

    def ask(self) -> Reply:
        return ask(self.url, self.secret, self.body, self.quantity, self.number)


def start_attempt(order_id: int) -> Attempt | None:
    """Claim the order's next attempt, if it is due; None when there is nothing to do now
    (the order no longer waits, the next attempt is not due, or another job is waiting
    for an answer)."""
    with write_transaction():
        order = _locked(order_id)
        if not _waiting(order) or order.product.delivery_type != DELIVERY_REMOTE:
            return None
        now = clock.now()
        made = attempts(order.id)
        last = made[-1] if made else None
        if last is not None and last.finished_at is None:
            if now - last.started_at < IN_FLIGHT:
                return None
            last.finished_at, last.error = now, "no answer recorded: the job stopped while waiting"
        if len(made) >= MAX_ATTEMPTS:
            _fall_back(order, now)  # the last attempt was the interrupted one
            return None
        if last is not None and now < last.finished_at + RETRY_WAIT[len(made) - 1]:
            return None
        attempt = RemoteDeliveryAttempt(order_id=order.id, number=len(made) + 1, started_at=now)
        db.session.add(attempt)
        db.session.flush()
        product = order.product
        secret = vault().decrypt(product.remote_secret_ciphertext) if product.remote_secret_ciphertext else None
        return Attempt(
            id=attempt.id,
            number=attempt.number,
            order_id=order.id,
            quantity=order.quantity,
            url=product.remote_url,
            secret=secret,
            body=encode(order_request(order)),
        )


def settle_attempt(order: Order, attempt: Attempt, reply: Reply, now: datetime) -> tuple[str, str | None]:
    """Inside the delivery's write transaction, with the order locked: record what the
    attempt got, store its keys if the order still waits for them, or fall back to the
    merchant after the last failure. Returns the outcome (DELIVERED, RETRY, FELL_BACK,
    MOOT) and what went wrong; on DELIVERED the caller completes the delivery."""
    row = db.session.get(RemoteDeliveryAttempt, attempt.id)
    row.finished_at = now
    row.status_code = reply.status_code
    row.keys_received = len(reply.keys) if reply.keys is not None else None
    if not _waiting(order):
        row.error = reply.error or "not used: the order no longer waited for keys"
        return MOOT, row.error
    error = reply.error or _known_key(order.product_id, reply.keys)
    row.error = error[:ERROR_LENGTH] if error else None
    if error is None:
        _store_keys(order, reply.keys, now)
        return DELIVERED, None
    if attempt.number >= MAX_ATTEMPTS:
        _fall_back(order, now)
        return FELL_BACK, error
    return RETRY, error


def _locked(order_id: int) -> Order | None:
    return db.session.execute(
        select(Order).where(Order.id == order_id).with_for_update().execution_options(populate_existing=True)
    ).scalar_one_or_none()


def _waiting(order: Order | None) -> bool:
    return order is not None and order.status == Order.PAID and not order.is_held and order.manual_fallback_at is None


def _known_key(product_id: int, keys: list[str]) -> str | None:
    """Refuse keys the shop already holds for this product: each key is sold once."""
    v = vault()
    fingerprints = [fp for key in keys for fp in v.all_fingerprints(key)]
    held = db.session.execute(
        select(CardKey.id).where(CardKey.product_id == product_id, CardKey.fingerprint.in_(fingerprints)).limit(1)
    ).first()
    if held is not None:
        return "a key the shop already holds for this product (sold to another order, or in stock)"
    return None


def _store_keys(order: Order, keys: list[str], now: datetime) -> None:
    """The keys become the order's, sold, encrypted like imported stock."""
    stock.release_keys([order.id])  # any it reserved while the product still sold from stock
    v = vault()
    db.session.execute(
        insert(CardKey),
        [
            {
                "product_id": order.product_id,
                "variant_id": order.variant_id,
                "ciphertext": v.encrypt(key),
                "fingerprint": v.fingerprint(key),
                "status": CardKey.SOLD,
                "order_id": order.id,
                "sold_at": now,
                "created_at": now,
            }
            for key in keys
        ],
    )


def _fall_back(order: Order, now: datetime) -> None:
    """The merchant's server failed every attempt: the order joins the merchant's manual
    queue; they are told once this commits."""
    order.manual_fallback_at = now
    tasks.enqueue("orders.tasks.remote_delivery_fell_back", order.id, job_id=f"fallback-{order.id}")
    log.warning(
        "order %s: the merchant's delivery server failed %s attempts; handed to the merchant",
        order.number,
        MAX_ATTEMPTS,
    )


def attempts(order_id: int) -> list[RemoteDeliveryAttempt]:
    """The order's attempts, first first (for its page in the back office)."""
    return list(
        db.session.execute(
            select(RemoteDeliveryAttempt)
            .where(RemoteDeliveryAttempt.order_id == order_id)
            .order_by(RemoteDeliveryAttempt.number)
        ).scalars()
    )


def recent_attempts(merchant_id: int, slug: str) -> list[tuple[RemoteDeliveryAttempt, str]]:
    """The product's latest attempts with their order numbers, newest first."""
    product = products.get_product(merchant_id, slug)
    return [
        (attempt, number)
        for attempt, number in db.session.execute(
            select(RemoteDeliveryAttempt, Order.number)
            .join(Order, RemoteDeliveryAttempt.order_id == Order.id)
            .where(Order.product_id == product.id, Order.merchant_id == merchant_id)
            .order_by(RemoteDeliveryAttempt.started_at.desc(), RemoteDeliveryAttempt.id.desc())
            .limit(RECENT_ATTEMPTS)
        )
    ]


# -- a test request from the back office ---------------------------------------------------

SAMPLE_ANSWERS = {KIND_NUMBER: "100000001", KIND_EMAIL: "buyer@example.com", KIND_PHONE: "13800138000"}


def send_test(merchant_id: int, slug: str) -> Reply:
    """POST a sample order (`"test": true`, the product's smallest quantity) to the
    product's server and say what came back. Nothing is stored."""
    product = products.get_product(merchant_id, slug)
    if product.delivery_type != DELIVERY_REMOTE or not product.remote_url:
        raise NotFromServer()
    if product.remote_secret_ciphertext is None:
        raise NoSigningSecret()
    now = int(clock.now().timestamp())
    variant = product.live_variants[0]  # the first option the buyer sees
    quantity = variant.min_per_order
    payload = {
        "id": f"dd_test_{secrets.token_hex(6)}",
        "type": "order.deliver",
        "test": True,
        "order": {
            "number": f"TEST{now}",
            "quantity": quantity,
            "unit_price": variant.price,
            "discount": 0,
            "amount": variant.price * quantity,
            "currency": current_app.config["CURRENCY"],
            "buyer_email": "buyer@example.com",
            "created_at": now,
            "paid_at": now,
        },
        "product": {"id": product.slug, "title": product.title},
        "variant": {"key": variant.key, "name": variant.name if product.has_choice else None},
        "answers": [_sample_answer(f) for f in product.checkout_fields],
    }
    url, secret = product.remote_url, vault().decrypt(product.remote_secret_ciphertext)
    db.session.rollback()  # hold nothing while waiting on the merchant's server
    return ask(url, secret, encode(payload), quantity)


def _sample_answer(field: CheckoutField) -> dict:
    if field.kind == KIND_CHOICE:
        value = (field.choice_list or ["test"])[0]
    else:
        value = SAMPLE_ANSWERS.get(field.kind, "test")
    return {"key": field.key, "label": field.label, "label_en": field.label_en, "value": value}
