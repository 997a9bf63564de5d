"""Webhook endpoints: list, add (the signing secret in that answer only), change, make a
new secret, delete, send a test, and the delivery log. The same service as the back
office's webhook pages (faka/messaging/webhooks.py): the address guard, at most five
endpoints, the same messages. How a receiver checks a signature: docs/merchants.md."""

from flask import g, url_for

from faka.messaging import webhooks
from faka.messaging.models import EVENTS, WebhookDelivery, WebhookEndpoint
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "webhooks",
    __name__,
    description="Addresses of yours that receive signed JSON events (order paid, delivered, refunded, stock low, "
    f"complaint opened), at most {webhooks.MAX_ENDPOINTS}. The signing secret is shown once, in the answer that "
    "makes it (adding an endpoint, or a new secret).",
)

LOCATION = {"Location": {"description": "The endpoint's address in this API.", "schema": {"type": "string"}}}


def endpoint_answer(endpoint: WebhookEndpoint, secret: str | None = None) -> dict:
    answer = {
        "id": endpoint.id,
        "url": endpoint.url,
        "events": [e for e in endpoint.events.split(",") if e],
        "enabled": endpoint.enabled,
        "created_at": endpoint.created_at,
    }
    if secret is not None:
        answer["secret"] = secret
    return answer


def delivery_answer(delivery: WebhookDelivery) -> dict:
    return {
        "id": webhooks.public_id(delivery),
        "event": delivery.event,
        "status": delivery.status,
        "attempts": delivery.attempts,
        "response_code": delivery.response_code,
        "last_error": delivery.last_error,
        "created_at": delivery.created_at,
        "delivered_at": delivery.delivered_at,
    }


@bp.get("/webhooks")
@requires("webhooks:read")
@bp.response(200, s.WebhookListSchema)
def list_webhooks():
    """List your webhook endpoints"""
    return {"items": [endpoint_answer(e) for e in webhooks.endpoints(g.merchant.id)]}


@bp.post("/webhooks")
@requires("webhooks:write")
@idempotent
@bp.arguments(s.WebhookCreateSchema)
@bp.response(201, s.WebhookWithSecretSchema, headers=LOCATION)
def create_webhook(data):
    """Add a webhook endpoint

    The answer holds its signing secret (`secret`), shown this once: keep it to check each event's
    `Faka-Signature`. (With an Idempotency-Key, a retry gets the same answer, kept encrypted for 24 hours.)
    """
    endpoint, secret = webhooks.create_endpoint(g.merchant.id, data["url"], data.get("events", list(EVENTS)))
    return endpoint_answer(endpoint, secret), 201, {"Location": url_for(".get_webhook", endpoint_id=endpoint.id)}


@bp.get("/webhooks/<endpoint_id>", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:read")
@bp.response(200, s.WebhookSchema)
def get_webhook(endpoint_id):
    """Read a webhook endpoint"""
    endpoint_id = s.row_id(endpoint_id)
    return endpoint_answer(webhooks.get_endpoint(endpoint_id, g.merchant.id))


@bp.patch("/webhooks/<endpoint_id>", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:write")
@bp.arguments(s.WebhookUpdateSchema)
@bp.response(200, s.WebhookSchema)
def update_webhook(data, endpoint_id):
    """Change a webhook endpoint

    Send only what changes: `url`, `events`, `enabled` (a disabled endpoint is sent nothing but tests).
    """
    endpoint_id = s.row_id(endpoint_id)
    endpoint = webhooks.update_endpoint(
        endpoint_id, g.merchant.id, url=data.get("url"), events=data.get("events"), enabled=data.get("enabled")
    )
    return endpoint_answer(endpoint)


@bp.post("/webhooks/<endpoint_id>/secret", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:write")
@idempotent
@bp.response(200, s.WebhookWithSecretSchema)
def rotate_secret(endpoint_id):
    """Make a new signing secret

    The old one stops working at once, for the next attempt of every event. The answer holds the new one, shown this
    once.
    """
    endpoint_id = s.row_id(endpoint_id)
    secret = webhooks.rotate_secret(endpoint_id, g.merchant.id)
    return endpoint_answer(webhooks.get_endpoint(endpoint_id, g.merchant.id), secret)


@bp.delete("/webhooks/<endpoint_id>", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:write")
@bp.response(204)
def delete_webhook(endpoint_id):
    """Delete a webhook endpoint

    With its delivery log; events still owed to it are dropped.
    """
    endpoint_id = s.row_id(endpoint_id)
    webhooks.delete_endpoint(endpoint_id, g.merchant.id)
    return ""


@bp.post("/webhooks/<endpoint_id>/test", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:write")
@idempotent
@bp.response(202, s.DeliverySchema)
def send_test(endpoint_id):
    """Send a test event

    A `ping` event, signed like the others, sent even to a disabled endpoint. It is queued: follow it in the
    delivery log.
    """
    endpoint_id = s.row_id(endpoint_id)
    delivery_id = webhooks.send_test(endpoint_id, g.merchant.id)
    return delivery_answer(webhooks.get_delivery(delivery_id, g.merchant.id)), 202


@bp.get("/webhooks/<endpoint_id>/deliveries", parameters=s.id_parameter("endpoint_id"))
@requires("webhooks:read")
@bp.arguments(s.DeliveryArgsSchema, location="query")
@bp.response(200, s.DeliveryPageSchema)
def list_deliveries(args, endpoint_id):
    """List an endpoint's deliveries

    Oldest first: each event sent or owed to the endpoint, with its attempts and your endpoint's last answer.
    """
    endpoint_id = s.row_id(endpoint_id)
    query = webhooks.deliveries_query(endpoint_id, g.merchant.id, args["status"])
    page = page_of_query(query, WebhookDelivery.id, args["cursor"], args["limit"])
    page["items"] = [delivery_answer(d) for d in page["items"]]
    return page
