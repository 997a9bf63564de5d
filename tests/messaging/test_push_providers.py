"""Each push provider's protocol, against a local server that checks the request exactly as
the provider documents it: URL, method, headers, body and, for DingTalk and Feishu, the
signature, computed here from the documented algorithm with a fixed clock."""

import base64
import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from urllib.parse import quote_plus

import pytest

from conftest import reload
from faka.messaging import push
from faka.messaging.models import PushChannel, PushMessage
from faka.platform.settings import set_setting

NOW = datetime(2026, 5, 4, 3, 2, 1, 234567, tzinfo=UTC)
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
TEXT = 'Test message from faka\nThe push channel "Phone" works.'
TITLE, BODY = TEXT.split("\n")

TELEGRAM_TOKEN = "123456789:AAEhBOweik6ad9r_QXMENQjcrGbqCr4K-bs"
BARK_KEY = "ynJ5Ft4atkMkWeo2PAvFhF"
WECOM_KEY = "693a91f6-7xxx-4bc4-97a0-0ec2sifa5aaa".replace("x", "f")
DINGTALK_TOKEN = "3a6f9c8e2b1d4f7a9c0e5b8d2f1a4c7e9b0d3f6a8c1e4b7d0f2a5c8e1b4d7f0a"
DINGTALK_SECRET = "SEC1f2e3d4c5b6a79880716253443526170819a8b7c6d5e4f3a2b1c0d9e8f7a6b5c"
FEISHU_HOOK = "2f5e6b1a-7c3d-4e8f-9a0b-1c2d3e4f5a6b"
FEISHU_SECRET = "mKQp3Jd8sVx2LrT9aWcZ4e"
SENDKEY = "SCT123456TAbCdEfGhIjKlMnOpQrStUv"
PUSHPLUS_TOKEN = "be8652e98bd04139a13e1bffcd6d0f71"


@pytest.fixture
def app(make_app):
    """The local provider listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@pytest.fixture
def provider(app, httpserver, frozen_clock):
    """Every provider's base URL pointed at one local server, the clock at NOW."""
    base = httpserver.url_for("/").rstrip("/")
    app.config["PUSH_PROVIDER_URLS"] = {kind: base for kind in push.KINDS}
    frozen_clock.now = NOW
    return httpserver


def faka_log(caplog) -> str:
    """What faka logged (the local server logs the paths it was asked for, tokens and all)."""
    return "\n".join(r.getMessage() for r in caplog.records if r.name.startswith("faka"))


def channel(merchant, kind, settings) -> PushChannel:
    return push.create_channel(merchant.id, kind, "Phone", settings, ["order.paid"], "en")


def sent_test(merchant, kind, settings) -> PushMessage:
    sent = push.send_test(channel(merchant, kind, settings).id, merchant.id)
    return reload(sent)


def test_telegram_send_message(merchant, provider):
    provider.expect_oneshot_request(
        f"/bot{TELEGRAM_TOKEN}/sendMessage",
        method="POST",
        headers={"Content-Type": "application/json"},
        json={"chat_id": -1001234567890, "text": TEXT},
    ).respond_with_json({"ok": True, "result": {"message_id": 42}})
    message = sent_test(merchant, "telegram", {"bot_token": TELEGRAM_TOKEN, "chat_id": "-1001234567890"})
    provider.check_assertions()
    assert (message.status, message.attempts, message.http_status) == ("sent", 1, 200)


def test_telegram_to_a_channel_by_its_name(merchant, provider):
    provider.expect_oneshot_request(
        f"/bot{TELEGRAM_TOKEN}/sendMessage", method="POST", json={"chat_id": "@fakashop", "text": TEXT}
    ).respond_with_json({"ok": True, "result": {}})
    assert sent_test(merchant, "telegram", {"bot_token": TELEGRAM_TOKEN, "chat_id": "@fakashop"}).status == "sent"
    provider.check_assertions()


def test_bark_push_with_the_device_key_in_the_body(merchant, provider):
    provider.expect_oneshot_request(
        "/push",
        method="POST",
        headers={"Content-Type": "application/json; charset=utf-8"},
        json={"device_key": BARK_KEY, "title": TITLE, "body": BODY, "group": "faka"},
    ).respond_with_json({"code": 200, "message": "success", "timestamp": 1777863721})
    # The key as the app shows it: its test URL.
    message = sent_test(merchant, "bark", {"device_key": f"https://api.day.app/{BARK_KEY}/test"})
    provider.check_assertions()
    assert message.status == "sent" and message.provider_code == "200"


def test_bark_on_a_self_hosted_server(merchant, provider, httpserver):
    own = httpserver.url_for("/bark").rstrip("/")
    provider.expect_oneshot_request(
        "/bark/push", method="POST", json={"device_key": BARK_KEY, "title": TITLE, "body": BODY, "group": "faka"}
    ).respond_with_json({"code": 200, "message": "success"})
    assert sent_test(merchant, "bark", {"device_key": BARK_KEY, "server": own}).status == "sent"
    provider.check_assertions()


def test_wecom_group_robot(merchant, provider):
    provider.expect_oneshot_request(
        "/cgi-bin/webhook/send",
        method="POST",
        query_string=f"key={WECOM_KEY}",
        headers={"Content-Type": "application/json"},
        json={"msgtype": "text", "text": {"content": TEXT}},
    ).respond_with_json({"errcode": 0, "errmsg": "ok"})
    pasted = f"https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key={WECOM_KEY}"
    message = sent_test(merchant, "wecom", {"key": pasted})
    provider.check_assertions()
    assert (message.status, message.provider_code) == ("sent", "0")


def test_dingtalk_robot_signs_the_millisecond_timestamp(merchant, provider):
    # The documented algorithm: timestamp (ms) + "\n" + secret, HMAC-SHA256 keyed with the
    # secret, Base64, URL-encoded.
    timestamp = (NOW - EPOCH) // timedelta(milliseconds=1)
    assert timestamp == 1777863721234
    digest = hmac.new(DINGTALK_SECRET.encode(), f"{timestamp}\n{DINGTALK_SECRET}".encode(), hashlib.sha256).digest()
    sign = quote_plus(base64.b64encode(digest).decode())
    provider.expect_oneshot_request(
        "/robot/send",
        method="POST",
        query_string=f"access_token={DINGTALK_TOKEN}&timestamp={timestamp}&sign={sign}",
        headers={"Content-Type": "application/json"},
        json={"msgtype": "text", "text": {"content": TEXT}},
    ).respond_with_json({"errcode": 0, "errmsg": "ok"})
    pasted = f"https://oapi.dingtalk.com/robot/send?access_token={DINGTALK_TOKEN}"
    message = sent_test(merchant, "dingtalk", {"access_token": pasted, "secret": DINGTALK_SECRET})
    provider.check_assertions()
    assert message.status == "sent"


def test_feishu_robot_signs_the_second_timestamp_in_the_body(merchant, provider):
    # The documented algorithm: HMAC-SHA256 of an empty message keyed with
    # timestamp (s) + "\n" + secret, Base64; both in the JSON body.
    timestamp = int((NOW - EPOCH).total_seconds())
    assert timestamp == 1777863721
    sign = base64.b64encode(hmac.new(f"{timestamp}\n{FEISHU_SECRET}".encode(), b"", hashlib.sha256).digest()).decode()
    provider.expect_oneshot_request(
        f"/open-apis/bot/v2/hook/{FEISHU_HOOK}",
        method="POST",
        headers={"Content-Type": "application/json"},
        json={"timestamp": str(timestamp), "sign": sign, "msg_type": "text", "content": {"text": TEXT}},
    ).respond_with_json({"code": 0, "data": {}, "msg": "success"})
    pasted = f"https://open.feishu.cn/open-apis/bot/v2/hook/{FEISHU_HOOK}"
    message = sent_test(merchant, "feishu", {"hook": pasted, "secret": FEISHU_SECRET})
    provider.check_assertions()
    assert message.status == "sent"


def test_feishu_older_answer_counts_too(merchant, provider):
    provider.expect_oneshot_request(f"/open-apis/bot/v2/hook/{FEISHU_HOOK}", method="POST").respond_with_json(
        {"Extra": None, "StatusCode": 0, "StatusMessage": "success"}
    )
    assert sent_test(merchant, "feishu", {"hook": FEISHU_HOOK, "secret": FEISHU_SECRET}).status == "sent"


def test_serverchan_turbo(merchant, provider):
    provider.expect_oneshot_request(
        f"/{SENDKEY}.send",
        method="POST",
        headers={"Content-Type": "application/json;charset=utf-8"},
        json={"title": TITLE, "desp": BODY},
    ).respond_with_json({"code": 0, "message": "", "data": {"pushid": "1", "readkey": "x"}})
    message = sent_test(merchant, "serverchan", {"sendkey": SENDKEY})
    provider.check_assertions()
    assert message.status == "sent"


def test_serverchan_title_is_cut_at_32_characters(merchant, provider):
    provider.expect_oneshot_request(f"/{SENDKEY}.send", method="POST").respond_with_json({"code": 0})
    set_setting("site_name", "The Very Long Name Of A Game Card Shop")
    assert sent_test(merchant, "serverchan", {"sendkey": SENDKEY}).status == "sent"
    (request, _response), *_ = provider.log
    assert json.loads(request.data)["title"] == "Test message from The Very Long "


def test_pushplus(merchant, provider):
    provider.expect_oneshot_request(
        "/send",
        method="POST",
        headers={"Content-Type": "application/json"},
        json={"token": PUSHPLUS_TOKEN, "title": TITLE, "content": BODY, "template": "txt"},
    ).respond_with_json({"code": 200, "msg": "请求成功", "data": "075074e3c17e449e9a0cb79cc6f3fc83"})
    message = sent_test(merchant, "pushplus", {"token": PUSHPLUS_TOKEN})
    provider.check_assertions()
    assert (message.status, message.provider_code) == ("sent", "200")


def test_bodies_are_utf8_json_as_sent(merchant, provider):
    """Chinese text goes as UTF-8, not \\u escapes, and the request is the documented one."""
    provider.expect_oneshot_request("/cgi-bin/webhook/send", method="POST").respond_with_json({"errcode": 0})
    created = push.create_channel(merchant.id, "wecom", "店铺群", {"key": WECOM_KEY}, ["order.paid"], "zh_CN")
    push.send_test(created.id, merchant.id)
    (request, _response), *_ = provider.log
    assert "店铺群".encode() in request.data and b"\\u" not in request.data


# -- the provider says no ---------------------------------------------------------------------

REFUSALS = [
    pytest.param(
        "telegram",
        {"bot_token": TELEGRAM_TOKEN, "chat_id": "42"},
        f"/bot{TELEGRAM_TOKEN}/sendMessage",
        401,
        {"ok": False, "error_code": 401, "description": "Unauthorized"},
        "401",
        id="telegram",
    ),
    pytest.param(
        "bark",
        {"device_key": BARK_KEY},
        "/push",
        400,
        {"code": 400, "message": "failed to get device token", "timestamp": 1},
        "400",
        id="bark",
    ),
    pytest.param(
        "wecom",
        {"key": WECOM_KEY},
        "/cgi-bin/webhook/send",
        200,
        {"errcode": 93000, "errmsg": "invalid webhook url, hint: [1672896843453163088463381]"},
        "93000",
        id="wecom",
    ),
    pytest.param(
        "dingtalk",
        {"access_token": DINGTALK_TOKEN, "secret": DINGTALK_SECRET},
        "/robot/send",
        200,
        {"errcode": 310000, "errmsg": "sign not match"},
        "310000",
        id="dingtalk",
    ),
    pytest.param(
        "feishu",
        {"hook": FEISHU_HOOK, "secret": FEISHU_SECRET},
        f"/open-apis/bot/v2/hook/{FEISHU_HOOK}",
        200,
        {"code": 19021, "data": {}, "msg": "sign match fail or timestamp is not within one hour from current time"},
        "19021",
        id="feishu",
    ),
    pytest.param(
        "serverchan",
        {"sendkey": SENDKEY},
        f"/{SENDKEY}.send",
        200,
        {"code": 40001, "message": "bad pushtoken"},
        "40001",
        id="serverchan",
    ),
    pytest.param(
        "pushplus",
        {"token": PUSHPLUS_TOKEN},
        "/send",
        200,
        {"code": 903, "msg": "无效的用户令牌", "data": None},
        "903",
        id="pushplus",
    ),
]


@pytest.mark.parametrize(("kind", "settings", "path", "status", "answer", "code"), REFUSALS)
def test_a_refusal_fails_the_message_with_the_providers_code(
    merchant, provider, caplog, kind, settings, path, status, answer, code
):
    provider.expect_oneshot_request(path, method="POST").respond_with_json(answer, status=status)
    message = sent_test(merchant, kind, settings)
    provider.check_assertions()
    assert (message.status, message.attempts, message.http_status, message.provider_code) == (
        "failed",
        1,
        status,
        code,
    )
    assert code in message.last_error
    for secret in settings.values():
        assert secret not in message.last_error and secret not in faka_log(caplog)


def test_an_answer_that_is_not_json_is_a_failure(merchant, provider):
    provider.expect_oneshot_request("/send", method="POST").respond_with_data("<html>gateway</html>", status=200)
    message = sent_test(merchant, "pushplus", {"token": PUSHPLUS_TOKEN})
    assert message.status == "failed" and "unreadable answer" in message.last_error


# -- settings -----------------------------------------------------------------------------------

BAD_SETTINGS = [
    ("telegram", {"bot_token": "not a token", "chat_id": "42"}, "bot_token"),
    ("telegram", {"bot_token": TELEGRAM_TOKEN, "chat_id": "my group"}, "chat_id"),
    ("telegram", {"bot_token": TELEGRAM_TOKEN}, "chat_id"),
    ("bark", {"device_key": "k"}, "device_key"),
    ("bark", {"device_key": BARK_KEY, "server": "ftp://bark.example.com"}, "server"),
    ("wecom", {"key": "https://qyapi.weixin.qq.com/cgi-bin/webhook/send"}, "key"),
    ("dingtalk", {"access_token": DINGTALK_TOKEN, "secret": "no-sec-prefix-secret"}, "secret"),
    ("dingtalk", {"access_token": DINGTALK_TOKEN}, "secret"),
    ("feishu", {"hook": FEISHU_HOOK, "secret": ""}, "secret"),
    ("serverchan", {"sendkey": "sctp123t4567890abcdef"}, "sendkey"),
    ("pushplus", {"token": "short"}, "token"),
]


@pytest.mark.parametrize(("kind", "settings", "field"), BAD_SETTINGS)
def test_bad_settings_are_refused_naming_the_field(merchant, provider, kind, settings, field):
    with pytest.raises(push.InvalidPushSettings) as refused:
        channel(merchant, kind, settings)
    assert refused.value.field == field and str(refused.value.message)
    assert push.list_channels(merchant.id) == []
