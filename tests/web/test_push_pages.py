"""The push channel pages: the merchant's (/merchant/push) and the operator's
(/operator/push), against a local provider."""

import json
import re
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import select
from werkzeug import Response

from conftest import count, csrf_from, logged_in_session, login, no_horizontal_scroll, reload
from faka.accounts import users
from faka.core.db import write_transaction
from faka.extensions import db
from faka.messaging import push
from faka.messaging.models import PushChannel, PushMessage

TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs"
WECOM_KEY = "693a91f6-7fff-4bc4-97a0-0ec2sifa5aaa"
SHOTS = Path("/tmp/shots_push")


@pytest.fixture
def app(make_app, httpserver):
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    app.config["PUSH_PROVIDER_URLS"] = {kind: httpserver.url_for("/").rstrip("/") for kind in push.KINDS}
    with app.app_context():
        yield app


class Provider:
    """The local provider: what it received, and the WeCom answer it gives next."""

    def __init__(self, httpserver):
        self.received = []
        self.answers = []
        httpserver.expect_request(re.compile(".*"), method="POST").respond_with_handler(self.answer)

    def answer(self, request):
        self.received.append((request.path, request.get_json()))
        body = self.answers.pop(0) if self.answers else {"errcode": 0, "errmsg": "ok", "ok": True}
        return Response(json.dumps(body), 200, content_type="application/json")


@pytest.fixture
def provider(app, httpserver):
    return Provider(httpserver)


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


@pytest.fixture
def shop(client, merchant):
    login(client, merchant.user)
    return english(client)


@pytest.fixture
def desk(app, operator):
    client = english(app.test_client())
    login(client, operator)
    return client


def post(client, url, data, page=None):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **data})


def text(response) -> str:
    return unescape(response.get_data(as_text=True))


def wecom(merchant, **changes) -> PushChannel:
    values = {"name": "Shop group", "settings": {"key": WECOM_KEY}, "events": ["order.paid", "stock.low"]}
    values.update(changes)
    return push.create_channel(merchant.id, "wecom", values["name"], values["settings"], values["events"], "en")


# -- adding a channel ----------------------------------------------------------------------------


def test_merchant_adds_a_telegram_channel_and_its_token_is_never_shown(shop, merchant, provider):
    page = text(shop.get("/merchant/push"))
    assert "No push channels yet." in page
    for kind in push.KINDS:
        assert f'href="/merchant/push/new/{kind}"' in page
    form = text(shop.get("/merchant/push/new/telegram"))
    assert 'name="bot_token"' in form and 'name="chat_id"' in form
    assert 'name="device_key"' not in form and 'name="secret"' not in form  # only this kind's fields
    assert "Merchant waiting for review" not in form and "Sold out" in form  # a merchant's events only

    response = post(
        shop,
        "/merchant/push/new/telegram",
        {"name": "My phone", "bot_token": TOKEN, "chat_id": "-1001234567890", "events": ["order.paid"], "locale": "en"},
    )
    assert response.status_code == 303
    (channel,) = push.list_channels(merchant.id)
    assert response.headers["Location"] == f"/merchant/push/{channel.id}"
    assert (channel.kind, channel.name, channel.events, channel.locale) == ("telegram", "My phone", "order.paid", "en")
    page = text(shop.get(f"/merchant/push/{channel.id}"))
    assert TOKEN not in page and "AAEhBOweik" not in page
    assert "Saved, ends in …K-bs. Leave empty to keep it." in page
    assert 'value="-1001234567890"' in page  # the chat ID is no secret
    assert "My phone" in text(shop.get("/merchant/push")) and "Active" in text(shop.get("/merchant/push"))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "Phone", "bot_token": "nope", "chat_id": "42", "events": ["order.paid"]}, "Paste the token"),
        ({"name": "Phone", "bot_token": TOKEN, "chat_id": "", "events": ["order.paid"]}, "Enter Chat ID."),
        ({"name": "Phone", "bot_token": TOKEN, "chat_id": "42"}, "Choose at least one event from the list."),
        ({"name": "", "bot_token": TOKEN, "chat_id": "42", "events": ["order.paid"]}, "Name the channel."),
        ({"name": "Phone", "bot_token": TOKEN, "chat_id": "42", "events": ["merchant.review"]}, "valid choice"),
        (
            {"name": "Phone", "bot_token": TOKEN, "chat_id": "42", "events": ["order.paid"], "locale": "fr"},
            "Not a valid choice",
        ),
    ],
)
def test_bad_input_is_refused_with_a_message_and_changes_nothing(shop, data, message):
    response = post(shop, "/merchant/push/new/telegram", {"locale": "en", **data})
    assert response.status_code == 400 and message in text(response)
    assert TOKEN not in text(response)  # a secret is not sent back, even to its owner
    assert count(PushChannel) == 0


def test_posts_need_the_csrf_token(shop, merchant):
    channel = wecom(merchant)
    response = shop.post(
        "/merchant/push/new/wecom", data={"name": "x", "key": WECOM_KEY, "events": ["order.paid"], "locale": "en"}
    )
    assert response.status_code == 400 and count(PushChannel) == 1
    for action in ("test", "pause", "delete"):
        assert shop.post(f"/merchant/push/{channel.id}/{action}").status_code == 400
    assert reload(channel).paused_at is None and count(PushMessage) == 0


def test_an_unknown_kind_is_not_found(shop):
    assert shop.get("/merchant/push/new/pigeon").status_code == 404


# -- a channel's page ---------------------------------------------------------------------------------


def test_send_a_test_shows_whether_it_arrived(shop, merchant, provider):
    channel = wecom(merchant)
    response = post(shop, f"/merchant/push/{channel.id}/test", {}, page=f"/merchant/push/{channel.id}")
    assert response.status_code == 303
    page = text(shop.get(response.headers["Location"]))
    assert "The test message was delivered. Check your phone." in page
    assert provider.received[0][1]["text"]["content"].startswith("Test message from faka")

    provider.answers = [{"errcode": 93000, "errmsg": "invalid webhook url"}]
    response = post(shop, f"/merchant/push/{channel.id}/test", {}, page=f"/merchant/push/{channel.id}")
    page = text(shop.get(response.headers["Location"]))
    assert "The test message was not delivered: 93000 invalid webhook url" in page
    assert "Test message" in page and "Failed" in page and "Sent" in page  # the log


def test_edit_keeps_a_secret_left_empty(shop, merchant, provider):
    channel = wecom(merchant)
    url = f"/merchant/push/{channel.id}"
    response = post(shop, url, {"name": "Renamed", "key": "", "events": ["stock.out", "order.paid"], "locale": "zh_CN"})
    assert response.status_code == 303
    channel = reload(channel)
    assert (channel.name, channel.events, channel.locale) == ("Renamed", "order.paid,stock.out", "zh_CN")
    assert push.setting_hints(channel)[0].shown == WECOM_KEY[-4:]

    response = post(shop, url, {"name": "Renamed", "key": "bad key!", "events": ["order.paid"], "locale": "en"})
    assert response.status_code == 400 and "Paste the robot" in text(response)
    assert reload(channel).locale == "zh_CN"  # nothing changed


def test_pause_resume_and_delete(shop, merchant):
    channel = wecom(merchant)
    url = f"/merchant/push/{channel.id}"
    page = text(shop.get(url))
    assert 'hx-confirm="Delete this push channel and its log?"' in page
    assert post(shop, f"{url}/pause", {}, page=url).status_code == 303
    assert reload(channel).paused_reason == PushChannel.PAUSED_BY_OWNER
    assert "You paused this channel on" in text(shop.get(url))
    assert post(shop, f"{url}/resume", {}, page=url).status_code == 303
    assert reload(channel).paused_at is None
    response = post(shop, f"{url}/delete", {}, page=url)
    assert response.status_code == 303 and response.headers["Location"] == "/merchant/push"
    assert count(PushChannel) == 0


def test_a_paused_channel_says_why(shop, merchant, provider):
    channel = wecom(merchant, events=["order.paid"])
    provider.answers = [{"errcode": 93000, "errmsg": "invalid webhook url"}] * push.PAUSE_AFTER
    for _ in range(push.PAUSE_AFTER):
        with write_transaction():
            push.emit(
                push.ORDER_PAID,
                merchant.id,
                {"number": "1", "product": "x", "quantity": 1, "total": "¥1.00", "buyer": ""},
            )
    page = text(shop.get(f"/merchant/push/{channel.id}"))
    assert "Paused after failures" in page
    assert "5 messages in a row could not be delivered" in page and "The last error: 93000 invalid webhook url" in page
    assert "a test that goes through resumes the channel" in page


def test_the_log_is_paged(shop, merchant):
    channel = wecom(merchant)
    db.session.add_all(
        PushMessage(channel_id=channel.id, event="order.paid", title=f"Order {i:02d}", text="", status="sent")
        for i in range(push.LOG_PAGE_SIZE + 5)
    )
    db.session.commit()
    first = text(shop.get(f"/merchant/push/{channel.id}"))
    assert "Order 24" in first and "Order 05" in first and "Order 04" not in first
    assert f'href="/merchant/push/{channel.id}?page=2"' in first
    second = text(shop.get(f"/merchant/push/{channel.id}?page=2"))
    assert "Order 04" in second and "Order 00" in second and "Order 05" not in second


def test_another_owners_channel_is_not_found(shop, merchant, client):
    theirs = users.create_merchant("other@shop.test", "merchant-pass-3", "Other Shop", approved=True)
    other = wecom(theirs)
    platform = push.create_channel(None, "wecom", "Ops", {"key": WECOM_KEY}, ["gateway.failing"])
    token = csrf_from(shop.get("/merchant/push").text)
    for channel in (other, platform):
        url = f"/merchant/push/{channel.id}"
        assert shop.get(url).status_code == 404
        for action in ("", "/test", "/pause", "/resume", "/delete"):
            response = shop.post(url + action, data={"csrf_token": token, "name": "Mine", "key": WECOM_KEY})
            assert response.status_code == 404
    assert count(PushChannel) == 2 and count(PushMessage) == 0
    assert {c.name for c in db.session.scalars(select(PushChannel))} == {"Shop group", "Ops"}


def test_the_back_office_navigation_links_the_page(shop):
    assert 'href="/merchant/push"' in text(shop.get("/merchant/"))


# -- the operator's channels ---------------------------------------------------------------------------


def test_operator_adds_a_platform_channel(desk, merchant, provider):
    wecom(merchant)  # a merchant's channel is not the platform's
    page = text(desk.get("/operator/push"))
    assert "No push channels yet." in page and 'href="/operator/push"' in page  # in the console's navigation
    form = text(desk.get("/operator/push/new/wecom"))
    assert "Merchant waiting for review" in form and "Payment gateway failing" in form and "Sold out" not in form
    response = post(
        desk,
        "/operator/push/new/wecom",
        {"name": "Ops group", "key": WECOM_KEY, "events": ["merchant.review", "gateway.failing"], "locale": "en"},
    )
    assert response.status_code == 303
    (channel,) = push.list_channels(None)
    assert channel.merchant_id is None and channel.events == "merchant.review,gateway.failing"
    response = post(desk, f"/operator/push/{channel.id}/test", {}, page=f"/operator/push/{channel.id}")
    assert "The test message was delivered." in text(desk.get(response.headers["Location"]))
    mine = push.list_channels(merchant.id)[0]
    assert desk.get(f"/operator/push/{mine.id}").status_code == 404


def test_operator_pages_refuse_a_merchant(shop):
    assert shop.get("/operator/push").status_code == 403


# -- a phone ------------------------------------------------------------------------------------------


def test_the_push_pages_fit_a_phone(live_server, chromium, merchant, httpserver):
    from playwright.sync_api import expect

    app, base = live_server
    app.config.update(
        WEBHOOK_ALLOW_PRIVATE=True,
        PUSH_PROVIDER_URLS={kind: httpserver.url_for("/").rstrip("/") for kind in push.KINDS},
    )
    Provider(httpserver)
    context = chromium.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    cookie = app.session_interface.get_signing_serializer(app).dumps({**logged_in_session(merchant.user), "lang": "en"})
    page.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])
    page.goto(f"{base}/merchant/push")
    page.click("text=DingTalk robot")
    page.fill("#push-access_token", "https://oapi.dingtalk.com/robot/send?access_token=" + "a1" * 32)
    page.fill("#push-secret", "SEC" + "b2" * 32)
    page.fill("#name", "店铺群")
    page.click("text=Add channel")
    expect(page.locator("h1")).to_have_text("店铺群")
    page.click("text=Send a test")
    expect(page.locator(".notice")).to_contain_text("The test message was delivered")
    assert no_horizontal_scroll(page)
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / "merchant-push-channel-360.png"), full_page=True)
    page.goto(f"{base}/merchant/push")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(SHOTS / "merchant-push-360.png"), full_page=True)
    assert errors == []
    context.close()
