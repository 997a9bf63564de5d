"""The webhooks resource: the back office's webhook service behind JSON, against a real
local receiver (pytest-httpserver) that checks each signature as a merchant would."""

import hashlib
import hmac
import json

import pytest
from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import count, reload
from faka.accounts.models import ApiIdempotencyKey
from faka.extensions import db
from faka.messaging import webhooks
from faka.messaging.models import EVENTS, WebhookDelivery, WebhookEndpoint


@pytest.fixture
def app(make_app):
    """The receiver listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@pytest.fixture
def hook(httpserver) -> str:
    httpserver.expect_request("/hook", method="POST").respond_with_data("ok")
    return httpserver.url_for("/hook")


def signed_by(secret: str, request) -> bool:
    """The receiver's check, written from the documentation, not from faka's code."""
    parts = dict(part.split("=", 1) for part in request.headers["Faka-Signature"].split(","))
    expected = hmac.new(secret.encode(), f"{parts['t']}.".encode() + request.get_data(), hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected, parts["v1"])


def test_add_an_endpoint_whose_secret_is_shown_once(api, hook):
    answer = api.post("/api/v1/webhooks", json={"url": hook, "events": ["order.paid", "stock.low"]})
    assert answer.status_code == 201
    body = answer.get_json()
    assert body["secret"].startswith("whsec_") and body["events"] == ["order.paid", "stock.low"]
    assert answer.headers["Location"] == f"/api/v1/webhooks/{body['id']}"
    endpoint = db.session.get(WebhookEndpoint, body["id"])
    assert body["secret"] not in endpoint.secret_ciphertext
    read, listed = api.get(answer.headers["Location"]), api.get("/api/v1/webhooks")
    assert "secret" not in read.get_json() and body["secret"] not in read.get_data(as_text=True)
    assert [e["url"] for e in listed.get_json()["items"]] == [hook]
    assert body["secret"] not in listed.get_data(as_text=True)
    every = api.post("/api/v1/webhooks", json={"url": hook}).get_json()
    assert every["events"] == list(EVENTS)


def test_a_replayed_create_answers_the_same_secret_kept_encrypted(api, hook):
    headers = {"Idempotency-Key": "hook-1"}
    first = api.post("/api/v1/webhooks", json={"url": hook}, headers=headers)
    again = api.post("/api/v1/webhooks", json={"url": hook}, headers=headers)
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.get_json()["secret"] == first.get_json()["secret"]
    assert count(WebhookEndpoint) == 1
    kept = db.session.execute(select(ApiIdempotencyKey.response_ciphertext)).scalar_one()
    assert first.get_json()["secret"] not in kept


def test_endpoints_are_refused_with_the_back_offices_messages(api, app, hook):
    ftp = api.post("/api/v1/webhooks", json={"url": "ftp://example.com/x"})
    assert ftp.status_code == 422
    assert ftp.get_json()["error"] == {
        "code": "invalid_webhook_url",
        "message": "Enter an http:// or https:// address on the public internet.",
    }
    unknown_event = api.post("/api/v1/webhooks", json={"url": hook, "events": ["order.lost"]})
    assert unknown_event.status_code == 422 and "events.0" in unknown_event.get_json()["error"]["fields"]
    none = api.post("/api/v1/webhooks", json={"url": hook, "events": []})
    assert none.status_code == 422 and "events" in none.get_json()["error"]["fields"]
    app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    private = api.post("/api/v1/webhooks", json={"url": hook})
    assert error_code(private) == "invalid_webhook_url"
    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    for _ in range(webhooks.MAX_ENDPOINTS):
        assert api.post("/api/v1/webhooks", json={"url": hook}).status_code == 201
    sixth = api.post("/api/v1/webhooks", json={"url": hook})
    assert sixth.status_code == 422 and error_code(sixth) == "too_many_endpoints"
    assert count(WebhookEndpoint) == webhooks.MAX_ENDPOINTS


def test_a_test_event_reaches_the_endpoint_signed_and_shows_in_the_log(api, httpserver, hook):
    made = api.post("/api/v1/webhooks", json={"url": hook}).get_json()
    sent = api.post(f"/api/v1/webhooks/{made['id']}/test")
    assert sent.status_code == 202
    delivery = sent.get_json()
    assert delivery["event"] == "ping" and delivery["id"].startswith("whd_")
    (request, _response) = httpserver.log[-1]
    assert json.loads(request.get_data())["id"] == delivery["id"]
    assert signed_by(made["secret"], request)

    log = api.get(f"/api/v1/webhooks/{made['id']}/deliveries").get_json()
    assert [(d["id"], d["status"], d["response_code"]) for d in log["items"]] == [(delivery["id"], "delivered", 200)]
    assert api.get(f"/api/v1/webhooks/{made['id']}/deliveries?status=failed").get_json()["items"] == []


def test_a_new_secret_signs_the_next_event(api, httpserver, hook):
    made = api.post("/api/v1/webhooks", json={"url": hook}).get_json()
    rotated = api.post(f"/api/v1/webhooks/{made['id']}/secret")
    assert rotated.status_code == 200
    secret = rotated.get_json()["secret"]
    assert secret.startswith("whsec_") and secret != made["secret"]
    api.post(f"/api/v1/webhooks/{made['id']}/test")
    (request, _response) = httpserver.log[-1]
    assert signed_by(secret, request) and not signed_by(made["secret"], request)


def test_change_an_endpoint_and_a_disabled_one_gets_no_events(api, hook, product, place, pay):
    made = api.post("/api/v1/webhooks", json={"url": hook}).get_json()
    changed = api.patch(f"/api/v1/webhooks/{made['id']}", json={"enabled": False, "events": ["order.paid"]})
    assert changed.status_code == 200
    assert (changed.get_json()["enabled"], changed.get_json()["events"]) == (False, ["order.paid"])
    pay(place(product))
    assert count(WebhookDelivery) == 0
    bad = api.patch(f"/api/v1/webhooks/{made['id']}", json={"url": "not a url"})
    assert error_code(bad) == "invalid_webhook_url"
    assert reload(db.session.get(WebhookEndpoint, made["id"])).url == hook
    api.patch(f"/api/v1/webhooks/{made['id']}", json={"enabled": True})
    pay(place(product))
    assert [d.event for d in db.session.execute(select(WebhookDelivery)).scalars()] == ["order.paid"]


def test_delete_an_endpoint_with_its_log(api, hook):
    made = api.post("/api/v1/webhooks", json={"url": hook}).get_json()
    api.post(f"/api/v1/webhooks/{made['id']}/test")
    assert api.delete(f"/api/v1/webhooks/{made['id']}").status_code == 204
    assert count(WebhookEndpoint) == count(WebhookDelivery) == 0
    assert api.get(f"/api/v1/webhooks/{made['id']}").status_code == 404


def test_another_merchants_endpoint_is_404_like_a_missing_one(api, other_merchant, hook):
    theirs, _secret = webhooks.create_endpoint(other_merchant.id, hook + "/foreign", list(EVENTS))
    answers = [
        api.get(f"/api/v1/webhooks/{theirs.id}"),
        api.patch(f"/api/v1/webhooks/{theirs.id}", json={"enabled": False}),
        api.post(f"/api/v1/webhooks/{theirs.id}/secret"),
        api.post(f"/api/v1/webhooks/{theirs.id}/test"),
        api.get(f"/api/v1/webhooks/{theirs.id}/deliveries"),
        api.delete(f"/api/v1/webhooks/{theirs.id}"),
        api.get("/api/v1/webhooks/999999"),
    ]
    assert {a.status_code for a in answers} == {404}
    assert reload(theirs).enabled is True and count(WebhookDelivery) == 0
    assert api.get("/api/v1/webhooks").get_json() == {"items": []}


def test_writes_need_the_webhooks_write_scope(client, make_key, hook):
    reader = ApiClient(client, make_key(scopes=["webhooks:read"]))
    assert reader.get("/api/v1/webhooks").status_code == 200
    refused = reader.post("/api/v1/webhooks", json={"url": hook})
    assert refused.status_code == 403 and error_code(refused) == "insufficient_scope"
    assert count(WebhookEndpoint) == 0
