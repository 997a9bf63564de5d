"""The push-channels resource: the back office's push service behind JSON, against a real
local robot (pytest-httpserver standing in for WeCom's and Telegram's servers)."""

import json
from dataclasses import dataclass, field

import pytest
from sqlalchemy import select
from werkzeug import Response

from api.conftest import ApiClient, error_code
from conftest import count
from faka.extensions import db
from faka.messaging import push
from faka.messaging.models import PushChannel, PushMessage

ROBOT_KEY = "shop-robot-key-0001"
WECOM = {"kind": "wecom", "name": "Phone", "settings": {"key": ROBOT_KEY}}
BOT_TOKEN = "123456789:" + "A" * 30 + "tok9"


@pytest.fixture
def app(make_app):
    """The robot listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@dataclass
class Robot:
    """What the providers received, and what the WeCom robot answers next."""

    received: list[dict] = field(default_factory=list)
    answers: list[dict] = field(default_factory=list)

    def wecom(self, request):
        self.received.append({"key": request.args["key"], "text": request.get_json()["text"]["content"]})
        body = self.answers.pop(0) if self.answers else {"errcode": 0, "errmsg": "ok"}
        return Response(json.dumps(body), 200, content_type="application/json")

    def telegram(self, request):
        self.received.append({"path": request.path, **request.get_json()})
        return Response(json.dumps({"ok": True}), 200, content_type="application/json")


@pytest.fixture
def robot(app, httpserver) -> Robot:
    app.config["PUSH_PROVIDER_URLS"] = {kind: httpserver.url_for("/").rstrip("/") for kind in push.KINDS}
    robot = Robot()
    httpserver.expect_request("/cgi-bin/webhook/send", method="POST").respond_with_handler(robot.wecom)
    httpserver.expect_request(f"/bot{BOT_TOKEN}/sendMessage", method="POST").respond_with_handler(robot.telegram)
    return robot


def test_add_a_channel_whose_key_is_never_shown_whole(api, robot):
    answer = api.post("/api/v1/push-channels", json=WECOM)
    assert answer.status_code == 201
    body = answer.get_json()
    assert answer.headers["Location"] == f"/api/v1/push-channels/{body['id']}"
    assert body["settings"] == [{"name": "key", "value": "0001", "secret": True}]
    assert (body["kind"], body["name"], body["language"], body["paused"]) == ("wecom", "Phone", "en", False)
    assert body["events"] == list(push.MERCHANT_EVENTS)
    channel = db.session.get(PushChannel, body["id"])
    assert ROBOT_KEY not in channel.settings_ciphertext
    for read in (api.get(answer.headers["Location"]), api.get("/api/v1/push-channels")):
        assert ROBOT_KEY not in read.get_data(as_text=True)
    chinese = api.post("/api/v1/push-channels", json={**WECOM, "language": "zh_CN", "events": ["order.paid"]})
    assert (chinese.get_json()["language"], chinese.get_json()["events"]) == ("zh_CN", ["order.paid"])


def test_channels_are_refused_with_the_back_offices_messages(api, robot):
    bad_key = api.post("/api/v1/push-channels", json={**WECOM, "settings": {"key": "no"}})
    assert bad_key.status_code == 422
    message = "Paste the robot's webhook address, or the key after ?key= in it."
    assert bad_key.get_json()["error"] == {
        "code": "invalid_push_settings",
        "message": message,
        "fields": {"settings.key": [message]},
    }
    missing = api.post("/api/v1/push-channels", json={**WECOM, "settings": {}})
    assert missing.get_json()["error"]["fields"] == {"settings.key": ["Enter Webhook key."]}
    unknown = api.post("/api/v1/push-channels", json={**WECOM, "settings": {"key": ROBOT_KEY, "token": "x"}})
    assert unknown.status_code == 422 and set(unknown.get_json()["error"]["fields"]) == {"settings.token"}
    nameless = api.post("/api/v1/push-channels", json={**WECOM, "name": "   "})
    assert nameless.get_json()["error"]["message"] == "Name the channel, in up to 60 characters."
    kind = api.post("/api/v1/push-channels", json={**WECOM, "kind": "pager", "events": ["gateway.failing"]})
    assert set(kind.get_json()["error"]["fields"]) == {"kind", "events.0"}
    assert count(PushChannel) == 0
    for _ in range(push.MAX_CHANNELS):
        api.post("/api/v1/push-channels", json=WECOM)
    eleventh = api.post("/api/v1/push-channels", json=WECOM)
    assert eleventh.status_code == 422 and error_code(eleventh) == "too_many_channels"


def test_a_test_message_is_sent_now_and_answers_what_the_provider_said(api, robot):
    channel = api.post("/api/v1/push-channels", json=WECOM).get_json()
    sent = api.post(f"/api/v1/push-channels/{channel['id']}/test")
    assert sent.status_code == 200
    assert (sent.get_json()["event"], sent.get_json()["status"], sent.get_json()["http_status"]) == (
        "test",
        "sent",
        200,
    )
    assert robot.received[-1]["key"] == ROBOT_KEY and '"Phone" works' in robot.received[-1]["text"]

    robot.answers.append({"errcode": 93000, "errmsg": "invalid webhook url"})
    failed = api.post(f"/api/v1/push-channels/{channel['id']}/test").get_json()
    assert (failed["status"], failed["provider_code"]) == ("failed", "93000")
    log = api.get(f"/api/v1/push-channels/{channel['id']}/messages?limit=1").get_json()
    assert [m["status"] for m in log["items"]] == ["sent"] and log["next_cursor"]
    rest = api.get(f"/api/v1/push-channels/{channel['id']}/messages?cursor={log['next_cursor']}").get_json()
    assert [m["id"] for m in rest["items"]] == [failed["id"]]
    only_failed = api.get(f"/api/v1/push-channels/{channel['id']}/messages?status=failed").get_json()["items"]
    assert [m["provider_code"] for m in only_failed] == ["93000"]


def test_a_change_keeps_the_settings_it_does_not_send(api, robot):
    made = api.post(
        "/api/v1/push-channels",
        json={"kind": "telegram", "name": "Bot", "settings": {"bot_token": BOT_TOKEN, "chat_id": "-1001"}},
    ).get_json()
    changed = api.patch(
        f"/api/v1/push-channels/{made['id']}",
        json={"name": "Shop group", "settings": {"chat_id": "-1002"}, "events": ["order.paid"], "language": "zh_CN"},
    )
    assert changed.status_code == 200
    body = changed.get_json()
    assert (body["name"], body["events"], body["language"]) == ("Shop group", ["order.paid"], "zh_CN")
    assert body["settings"] == [
        {"name": "bot_token", "value": "tok9", "secret": True},
        {"name": "chat_id", "value": "-1002", "secret": False},
    ]
    api.post(f"/api/v1/push-channels/{made['id']}/test")
    assert robot.received[-1]["chat_id"] == -1002  # sent with the bot token it kept
    refused = api.patch(f"/api/v1/push-channels/{made['id']}", json={"settings": {"chat_id": "me"}})
    assert error_code(refused) == "invalid_push_settings"
    assert "settings.chat_id" in refused.get_json()["error"]["fields"]


def test_a_paused_channel_gets_no_events_until_resumed(api, robot, product, place, pay):
    channel = api.post("/api/v1/push-channels", json={**WECOM, "events": ["order.paid"]}).get_json()
    paused = api.patch(f"/api/v1/push-channels/{channel['id']}", json={"paused": True})
    assert (paused.get_json()["paused"], paused.get_json()["paused_reason"]) == (True, "owner")
    pay(place(product))
    assert robot.received == []
    resumed = api.patch(f"/api/v1/push-channels/{channel['id']}", json={"paused": False})
    assert resumed.get_json()["paused"] is False
    pay(place(product))
    assert [r["text"].split("\n")[0] for r in robot.received] == ["New order paid: ¥10.00"]


def test_delete_a_channel_with_its_log(api, robot):
    channel = api.post("/api/v1/push-channels", json=WECOM).get_json()
    api.post(f"/api/v1/push-channels/{channel['id']}/test")
    assert api.delete(f"/api/v1/push-channels/{channel['id']}").status_code == 204
    assert count(PushChannel) == count(PushMessage) == 0
    assert api.get(f"/api/v1/push-channels/{channel['id']}").status_code == 404


def test_another_owners_channel_is_404_like_a_missing_one(api, robot, other_merchant):
    theirs = push.create_channel(
        other_merchant.id, "wecom", "FOREIGN-CHANNEL", {"key": "their-key-7c1e"}, ["order.paid"]
    )
    platform = push.create_channel(None, "wecom", "Ops group", {"key": "ops-key-0002"}, ["gateway.failing"])
    for channel in (theirs, platform):
        answers = [
            api.get(f"/api/v1/push-channels/{channel.id}"),
            api.patch(f"/api/v1/push-channels/{channel.id}", json={"paused": True}),
            api.post(f"/api/v1/push-channels/{channel.id}/test"),
            api.get(f"/api/v1/push-channels/{channel.id}/messages"),
            api.delete(f"/api/v1/push-channels/{channel.id}"),
        ]
        assert {a.status_code for a in answers} == {404}
    assert api.get("/api/v1/push-channels").get_json() == {"items": []}
    assert robot.received == [] and count(PushChannel) == 2
    assert db.session.execute(select(PushChannel.paused_at)).scalars().all() == [None, None]


def test_push_channels_need_the_webhooks_scope(client, make_key, robot):
    reader = ApiClient(client, make_key(scopes=["webhooks:read"]))
    assert reader.get("/api/v1/push-channels").status_code == 200
    assert error_code(reader.post("/api/v1/push-channels", json=WECOM)) == "insufficient_scope"
    other = ApiClient(client, make_key(scopes=["orders:write"]))
    assert error_code(other.get("/api/v1/push-channels")) == "insufficient_scope"
    assert count(PushChannel) == 0
