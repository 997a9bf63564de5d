"""Outgoing webhooks: signed JSON events POSTed to URLs a merchant configures.

How a merchant verifies a webhook
---------------------------------
Each event is a POST with a JSON body

    {"id": "whd_3f9c…", "type": "order.paid", "created": 1767225600, "data": {…}}

and the headers

    Content-Type: application/json
    User-Agent: faka-webhooks
    Faka-Signature: t=1767225610,v1=5257a869e7ecebeda32affa62cdca3fa51cad7e77a0e56ff536d0ce8e108d8bd

`t` is the Unix time of this attempt. `v1` is the hex HMAC-SHA256 of the string
`"{t}.{body}"` — `t`, a full stop, then the raw request body exactly as received (before
any JSON parsing) — keyed with the endpoint's whole secret (`whsec_…`, as UTF-8). To
verify, recompute it and compare in constant time, and reject a `t` far from your clock
(five minutes, say) so an old request cannot be replayed. In Python:

    expected = hmac.new(secret.encode(), f"{t}.".encode() + raw_body, hashlib.sha256).hexdigest()
    valid = hmac.compare_digest(expected, v1) and abs(time.time() - int(t)) < 300

Delivery is at least once: a retry carries the same body and `id` (with a new `t`), so
skip ids you have already handled, and do not rely on the order in which events arrive.
Answer with any 2xx within 10 seconds. Anything else — another status, a redirect, a
timeout — is a failed attempt, retried with backoff; after MAX_ATTEMPTS attempts the
delivery is marked failed. The delivery log shows every delivery with its status, attempts
and last response code. Rotating the secret takes effect at once for the next attempt.

Safety: endpoints go through the address guard of faka/messaging/outbound.py: no private,
loopback or link-local addresses, checked when the URL is saved and on every connection;
no environment proxy, no redirects followed.

At rest: a delivery's payload holds the buyer's email and checkout answers (a game UID,
an account), so it is stored encrypted like the rest of the buyer's secrets (and rotated
with them); rows written before that, plain JSON, are still sent as they are.
"""

import hashlib
import hmac
import json
import logging
import secrets

from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from sqlalchemy import delete, func, select

from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.messaging import outbound
from faka.messaging.models import EVENTS, WebhookDelivery, WebhookEndpoint

log = logging.getLogger(__name__)

PING = "ping"  # the event `send_test` sends; not subscribable
# What the back office calls each event (the event's own name is shown beside it as code,
# since the receiver's code matches on it).
EVENT_LABELS = {
    "order.paid": _l("Order paid"),
    "order.delivered": _l("Order delivered"),
    "order.refunded": _l("Order refunded"),
    "stock.low": _l("Stock running low"),
    "complaint.opened": _l("Complaint opened"),
    PING: _l("Test event"),
}
DELIVERY_STATUS_LABELS = {
    WebhookDelivery.PENDING: _l("Queued"),
    WebhookDelivery.DELIVERED: _p("webhook", "Delivered"),
    WebhookDelivery.FAILED: _l("Failed"),
}
SECRET_PREFIX = "whsec_"
SIGNATURE_HEADER = "Faka-Signature"
USER_AGENT = "faka-webhooks"
TIMEOUT_SECONDS = 10
MAX_ENDPOINTS = 5
LOG_PAGE_SIZE = 20
RETRY_AFTER, MAX_ATTEMPTS = outbound.RETRY_AFTER, outbound.MAX_ATTEMPTS


class InvalidWebhookUrl(DomainError):
    message = _l("Enter an http:// or https:// address on the public internet.")


class InvalidWebhookEvents(DomainError):
    message = _l("Choose at least one event from the list.")


class TooManyEndpoints(DomainError):
    message = _l("You already have the maximum number of webhook endpoints.")


class WebhookFailed(Exception):
    """An attempt did not get a 2xx answer; raised so the job is retried."""


# -- endpoints --------------------------------------------------------------------------


def create_endpoint(merchant_id: int, url: str, events) -> tuple[WebhookEndpoint, str]:
    """Add an endpoint. Returns it with its secret in plain text: the only time the
    secret is shown; it is stored encrypted."""
    url = validate_url(url)
    events = _validate_events(events)
    with write_transaction():
        count = db.session.scalar(
            select(func.count()).select_from(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id)
        )
        if count >= MAX_ENDPOINTS:
            raise TooManyEndpoints()
        secret = _new_secret()
        endpoint = WebhookEndpoint(
            merchant_id=merchant_id, url=url, events=events, enabled=True, secret_ciphertext=vault().encrypt(secret)
        )
        db.session.add(endpoint)
    return endpoint, secret


def update_endpoint(
    endpoint_id: int, merchant_id: int, url: str | None = None, events=None, enabled: bool | None = None
) -> WebhookEndpoint:
    """Change an endpoint's URL, events or enabled flag (None leaves a field as it is)."""
    url = validate_url(url) if url is not None else None
    events = _validate_events(events) if events is not None else None
    with write_transaction():
        endpoint = _owned_endpoint(endpoint_id, merchant_id)
        if url is not None:
            endpoint.url = url
        if events is not None:
            endpoint.events = events
        if enabled is not None:
            endpoint.enabled = enabled
    return endpoint


def rotate_secret(endpoint_id: int, merchant_id: int) -> str:
    """Replace the endpoint's secret; returns the new one, shown this once."""
    with write_transaction():
        endpoint = _owned_endpoint(endpoint_id, merchant_id)
        secret = _new_secret()
        endpoint.secret_ciphertext = vault().encrypt(secret)
    return secret


def delete_endpoint(endpoint_id: int, merchant_id: int) -> None:
    """Remove the endpoint and its delivery log; deliveries still owed are dropped."""
    with write_transaction():
        endpoint = _owned_endpoint(endpoint_id, merchant_id)
        db.session.execute(delete(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id))
        db.session.delete(endpoint)


def endpoints(merchant_id: int) -> list[WebhookEndpoint]:
    return list(
        db.session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id).order_by(WebhookEndpoint.id)
        ).scalars()
    )


def get_endpoint(endpoint_id: int, merchant_id: int) -> WebhookEndpoint:
    return _owned_endpoint(endpoint_id, merchant_id)


def _owned_endpoint(endpoint_id: int, merchant_id: int) -> WebhookEndpoint:
    endpoint = db.session.execute(
        select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id, WebhookEndpoint.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if endpoint is None:
        raise NotFound()
    return endpoint


def _new_secret() -> str:
    return SECRET_PREFIX + secrets.token_hex(32)


def _validate_events(events) -> str:
    if isinstance(events, str):
        events = events.split(",")
    chosen = {e.strip() for e in events or () if e.strip()}
    if not chosen or not chosen <= set(EVENTS):
        raise InvalidWebhookEvents()
    return ",".join(e for e in EVENTS if e in chosen)


def validate_url(url: str) -> str:
    """The URL, stripped, if it is one we may POST to; else InvalidWebhookUrl."""
    try:
        return outbound.validate_url(url)
    except outbound.InvalidAddress:
        raise InvalidWebhookUrl() from None


# -- events -----------------------------------------------------------------------------


def emit(merchant_id: int, event: str, data: dict) -> list[int]:
    """Record `event` for each of the merchant's enabled endpoints subscribed to it,
    inside the caller's transaction. Returns the delivery ids, for the caller to pass
    to `enqueue_deliveries` inside its write_transaction() (which sends them once it has
    committed) or after it commits."""
    if event not in EVENTS:
        raise ValueError(f"unknown webhook event {event}")
    subscribed = [
        e
        for e in db.session.execute(
            select(WebhookEndpoint).where(WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.enabled.is_(True))
        ).scalars()
        if event in e.events.split(",")
    ]
    deliveries = [_new_delivery(endpoint.id, event, data) for endpoint in subscribed]
    db.session.flush()
    return [d.id for d in deliveries]


def has_subscribers(merchant_id: int, event: str) -> bool:
    """Whether any enabled endpoint of the merchant takes this event (a cheap read, so
    callers can skip a write transaction when nobody listens)."""
    return any(
        event in events.split(",")
        for events in db.session.execute(
            select(WebhookEndpoint.events).where(
                WebhookEndpoint.merchant_id == merchant_id, WebhookEndpoint.enabled.is_(True)
            )
        ).scalars()
    )


def enqueue_deliveries(delivery_ids: list[int]) -> None:
    for delivery_id in delivery_ids:
        tasks.enqueue("messaging.tasks.send_webhook", delivery_id, job_id=f"webhook-{delivery_id}")


def send_test(endpoint_id: int, merchant_id: int) -> int:
    """Queue a `ping` event to the endpoint (enabled or not); returns the delivery id."""
    with write_transaction():
        endpoint = _owned_endpoint(endpoint_id, merchant_id)
        delivery_id = _new_delivery(endpoint.id, PING, {"endpoint_id": endpoint.id}).id
        enqueue_deliveries([delivery_id])
    return delivery_id


def _new_delivery(endpoint_id: int, event: str, data: dict) -> WebhookDelivery:
    now = clock.now()
    payload = {"id": "whd_" + secrets.token_hex(12), "type": event, "created": int(now.timestamp()), "data": data}
    body = json.dumps(payload, ensure_ascii=False, separators=(",", ":"))
    delivery = WebhookDelivery(
        endpoint_id=endpoint_id,
        event=event,
        payload=vault().encrypt(body),
        status=WebhookDelivery.PENDING,
        attempts=0,
        created_at=now,
    )
    db.session.add(delivery)
    db.session.flush()
    return delivery


def public_id(delivery: WebhookDelivery) -> str:
    """The `id` the receiver sees, for the delivery log."""
    return json.loads(_body(delivery.payload))["id"]


def _body(payload: str) -> str:
    """The JSON body of a stored payload: encrypted, or plain JSON from before it was."""
    return payload if payload.startswith("{") else vault().decrypt(payload)


def delivery_log(endpoint_id: int, merchant_id: int, page: int = 1) -> Page:
    """One page of the endpoint's deliveries, newest first, LOG_PAGE_SIZE per page, not
    counted."""
    endpoint = _owned_endpoint(endpoint_id, merchant_id)
    query = (
        select(WebhookDelivery)
        .where(WebhookDelivery.endpoint_id == endpoint.id)
        .order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id.desc())
    )
    return paginate(query, page, LOG_PAGE_SIZE, count=False)


def deliveries_query(endpoint_id: int, merchant_id: int, status: str | None = None):
    """The endpoint's deliveries (one entity, for the API's cursor pages), optionally of
    one status; NotFound for another merchant's endpoint."""
    endpoint = _owned_endpoint(endpoint_id, merchant_id)
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint.id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    return query


def get_delivery(delivery_id: int, merchant_id: int) -> WebhookDelivery:
    """A delivery of one of the merchant's endpoints, or NotFound."""
    delivery = db.session.execute(
        select(WebhookDelivery)
        .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(WebhookDelivery.id == delivery_id, WebhookEndpoint.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if delivery is None:
        raise NotFound()
    return delivery


def due_delivery_ids(now) -> list[int]:
    """Pending deliveries whose next attempt is due by RETRY_AFTER (for the reconciler)."""
    return outbound.due_ids(WebhookDelivery, now)


# -- sending ----------------------------------------------------------------------------


def sign(secret: str, timestamp: int, body: bytes) -> str:
    """The Faka-Signature header value for this body at this time."""
    digest = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={timestamp},v1={digest}"


def deliver(delivery_id: int) -> bool:
    """Make one attempt at a pending delivery (the send_webhook job).

    Returns True when it was delivered now, False when there was nothing to do (already
    delivered, failed, or its endpoint is gone). Raises WebhookFailed when the endpoint
    did not answer 2xx, so RQ retries; the attempt, response code and error are recorded
    first, and after MAX_ATTEMPTS the delivery is marked failed.
    """
    row = db.session.execute(
        select(WebhookDelivery, WebhookEndpoint)
        .join(WebhookEndpoint, WebhookDelivery.endpoint_id == WebhookEndpoint.id)
        .where(WebhookDelivery.id == delivery_id)
    ).first()
    if row is None or row[0].status != WebhookDelivery.PENDING:
        db.session.rollback()  # end the job's read: the worker's session outlives it
        return False
    delivery, endpoint = row
    if not endpoint.enabled and delivery.event != PING:
        _record(delivery_id, None, "endpoint disabled", give_up=True)
        return False
    url, body = endpoint.url, _body(delivery.payload).encode()
    secret = vault().decrypt(endpoint.secret_ciphertext)
    db.session.rollback()  # hold no transaction while waiting on the merchant's server

    code, error = _post(url, body, secret)
    delivered = code is not None and 200 <= code < 300
    _record(delivery_id, code, None if delivered else error)
    if not delivered:
        raise WebhookFailed(f"webhook delivery {delivery_id}: {error}")
    return True


def _post(url: str, body: bytes, secret: str) -> tuple[int | None, str | None]:
    """POST the body; returns (HTTP status or None, error text or None)."""
    headers = {
        "Content-Type": "application/json",
        "User-Agent": USER_AGENT,
        SIGNATURE_HEADER: sign(secret, int(clock.now().timestamp()), body),
    }
    answer = outbound.post(url, body, headers, timeout=TIMEOUT_SECONDS)
    return answer.status, answer.error


def _record(delivery_id: int, code: int | None, error: str | None, give_up: bool = False) -> None:
    with write_transaction():
        delivery = db.session.get(WebhookDelivery, delivery_id)
        if delivery is None or delivery.status != WebhookDelivery.PENDING:
            return  # deleted, or a concurrent attempt already settled it
        delivery.response_code = code
        if error is None:
            delivery.attempts += 1
            delivery.status = WebhookDelivery.DELIVERED
            delivery.delivered_at = clock.now()
            delivery.last_error = None
        else:
            if not give_up:
                delivery.attempts += 1
            delivery.last_error = error[:500]
            if give_up or delivery.attempts >= MAX_ATTEMPTS:
                delivery.status = WebhookDelivery.FAILED
        event, endpoint_id, attempts, status = delivery.event, delivery.endpoint_id, delivery.attempts, delivery.status
    if error is not None:
        log.warning(
            "webhook delivery %s (%s) to endpoint %s: attempt %s failed (%s), now %s",
            delivery_id,
            event,
            endpoint_id,
            attempts,
            error,
            status,
        )
