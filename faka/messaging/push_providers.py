"""The push providers: one small class each, sending a message exactly as the provider
documents it, and reading its answer.

| kind | request |
| --- | --- |
| telegram | POST {base}/bot<token>/sendMessage, JSON {"chat_id", "text"}; answer {"ok": true} |
| bark | POST {base or own server}/push, JSON {"device_key", "title", "body", "group", "url"}; answer {"code": 200} |
| wecom (企业微信 group robot) | POST {base}/cgi-bin/webhook/send?key=<key>, JSON {"msgtype": "text", "text": {"content"}}; answer {"errcode": 0} |
| dingtalk (钉钉 robot, signed) | POST {base}/robot/send?access_token=<token>&timestamp=<ms>&sign=<sign>, JSON as WeCom's; answer {"errcode": 0} |
| feishu (飞书 robot, signed) | POST {base}/open-apis/bot/v2/hook/<hook>, JSON {"timestamp", "sign", "msg_type": "text", "content": {"text"}}; answer {"code": 0} |
| serverchan (Server酱 Turbo) | POST {base}/<SendKey>.send, JSON {"title", "desp"}; answer {"code": 0} |
| pushplus | POST {base}/send, JSON {"token", "title", "content", "template": "txt"}; answer {"code": 200} |

The bases come from config PUSH_PROVIDER_URLS. The signatures:
- DingTalk: the string `timestamp + "\\n" + secret` (timestamp in milliseconds), HMAC-SHA256
  keyed with the secret, Base64, then URL-encoded, as the `timestamp` and `sign` query
  parameters.
- Feishu: HMAC-SHA256 of an empty message keyed with `timestamp + "\\n" + secret`
  (timestamp in seconds), Base64, as `timestamp` (a string) and `sign` in the JSON body.

Most providers answer HTTP 200 with an error code in their JSON; every provider's answer is
read for its own success code, and anything else is a failure recording that code. A
failure that trying again may cure (no answer, HTTP 429 or 5xx, a provider's "too fast"
code) is retried; any other (a wrong key, a removed robot) is not.
"""

import base64
import hashlib
import hmac
import json
import re
from dataclasses import dataclass
from typing import Any, ClassVar
from urllib.parse import parse_qs, quote, quote_plus, urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString

from faka.core import clock
from faka.core.errors import DomainError
from faka.messaging import outbound

MAX_SETTING = 200


class InvalidPushSettings(DomainError):
    """A channel's setting is missing or malformed; `field` names it."""

    message = _l("Check the channel's settings.")

    def __init__(self, field: str, message: str | LazyString | None = None) -> None:
        super().__init__(message)
        self.field = field


@dataclass(frozen=True)
class Field:
    """One setting a kind of channel asks for."""

    name: str
    label: LazyString
    secret: bool  # stored encrypted and never shown back, only its last four characters
    required: bool = True
    pattern: str | None = None  # the whole (cleaned) value must match
    invalid: LazyString | None = None  # what to say when it does not
    placeholder: str = ""


@dataclass(frozen=True)
class PushRequest:
    url: str
    body: bytes
    headers: dict[str, str]


@dataclass(frozen=True)
class Outcome:
    """What the provider said: sent or not, its own code (as text), the failure (never
    holding a secret) and whether trying again may help."""

    sent: bool
    code: str | None = None
    error: str | None = None
    retry: bool = False


def _json(value: Any) -> bytes:
    return json.dumps(value, ensure_ascii=False, separators=(",", ":")).encode()


JSON_HEADERS = {"Content-Type": "application/json", "User-Agent": "faka-push"}


class Provider:
    """The interface. `normalise` checks and cleans the owner's settings (raising
    InvalidPushSettings); `request` builds the HTTP request for one message; `outcome`
    reads the provider's answer."""

    kind: ClassVar[str]
    label: ClassVar[LazyString]
    fields: ClassVar[tuple[Field, ...]]
    # The provider's codes that mean "too many messages, try later".
    retry_codes: ClassVar[frozenset[str]] = frozenset()
    # Where the title goes: its own field (Bark, Server酱, PushPlus) or the text's first line.
    separate_title: ClassVar[bool] = False

    def base_url(self) -> str:
        return current_app.config["PUSH_PROVIDER_URLS"][self.kind].rstrip("/")

    def normalise(self, settings: dict[str, Any]) -> dict[str, str]:
        cleaned = {}
        for field in self.fields:
            value = self.clean(field.name, str(settings.get(field.name) or "").strip())
            if not value:
                if field.required:
                    raise InvalidPushSettings(field.name, _l("Enter %(field)s.", field=field.label))
                continue
            if len(value) > MAX_SETTING or (field.pattern and not re.fullmatch(field.pattern, value)):
                raise InvalidPushSettings(
                    field.name, field.invalid or _l("%(field)s does not look right.", field=field.label)
                )
            cleaned[field.name] = value
        return cleaned

    def clean(self, name: str, value: str) -> str:
        """A value as the provider wants it (a kind may take a pasted webhook address)."""
        return value

    def request(self, settings: dict[str, str], title: str, text: str, link: str | None) -> PushRequest:
        raise NotImplementedError

    def outcome(self, answer: outbound.Answer) -> Outcome:
        raise NotImplementedError

    # -- shared pieces --

    @staticmethod
    def one_text(title: str, text: str, link: str | None) -> str:
        return "\n".join(part for part in (title, text, link) if part)

    @staticmethod
    def body_text(text: str, link: str | None) -> str:
        return "\n".join(part for part in (text, link) if part)

    def read_code(self, answer: outbound.Answer, key: str, success: Any) -> Outcome:
        """The outcome of an answer whose JSON has `key` == `success` when sent."""
        data = _answer_json(answer)
        if data is None:
            return self.http_outcome(answer, None, "unreadable answer")
        code = data.get(key)
        if answer.ok and code == success:
            return Outcome(True, str(code))
        message = str(data.get("errmsg") or data.get("msg") or data.get("message") or data.get("description") or "")
        return self.http_outcome(answer, None if code is None else str(code), message)

    def http_outcome(self, answer: outbound.Answer, code: str | None, message: str) -> Outcome:
        repeated = code is not None and code == str(answer.status)  # Telegram's error_code is the HTTP status
        error = (
            " ".join(part for part in (answer.error, None if repeated else code, message[:200]) if part) or "refused"
        )
        transient = answer.status is None or answer.status == 429 or answer.status >= 500
        return Outcome(False, code, error, retry=transient or code in self.retry_codes)


def _answer_json(answer: outbound.Answer) -> dict | None:
    try:
        data = json.loads(answer.body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError):  # nesting deep enough to exhaust the stack
        return None
    return data if isinstance(data, dict) else None


def _query_value(value: str, name: str) -> str:
    """The `name` query parameter of a pasted webhook address, or the value itself."""
    if "://" in value:
        found = parse_qs(urlsplit(value).query).get(name)
        return found[0].strip() if found else ""
    return value


class Telegram(Provider):
    kind = "telegram"
    label = _l("Telegram bot")
    fields = (
        Field(
            "bot_token",
            _l("Bot token"),
            secret=True,
            pattern=r"\d{3,15}:[A-Za-z0-9_-]{20,80}",
            invalid=_l("Paste the token @BotFather gave you, like 123456789:AAE…"),
            placeholder="123456789:AAE…",
        ),
        Field(
            "chat_id",
            _l("Chat ID"),
            secret=False,
            pattern=r"-?\d{1,20}|@[A-Za-z][A-Za-z0-9_]{4,31}",
            invalid=_l("Enter a numeric chat ID (a group's starts with -100) or a channel's @name."),
            placeholder="-1001234567890",
        ),
    )
    retry_codes = frozenset({"429"})

    def request(self, settings, title, text, link):
        chat_id: int | str = settings["chat_id"]
        if re.fullmatch(r"-?\d+", settings["chat_id"]):
            chat_id = int(settings["chat_id"])
        body = {"chat_id": chat_id, "text": self.one_text(title, text, link)}
        return PushRequest(f"{self.base_url()}/bot{settings['bot_token']}/sendMessage", _json(body), JSON_HEADERS)

    def outcome(self, answer):
        data = _answer_json(answer)
        if data is None:
            return self.http_outcome(answer, None, "unreadable answer")
        if answer.ok and data.get("ok") is True:
            return Outcome(True)
        code = data.get("error_code")
        return self.http_outcome(answer, None if code is None else str(code), str(data.get("description") or ""))


class Bark(Provider):
    kind = "bark"
    label = _l("Bark (iPhone)")
    separate_title = True
    fields = (
        Field(
            "device_key",
            _l("Device key"),
            secret=True,
            pattern=r"[A-Za-z0-9_-]{8,64}",
            invalid=_l("Paste the key from the Bark app's test URL (https://api.day.app/<key>/…)."),
        ),
        Field(
            "server",
            _l("Own Bark server (optional)"),
            secret=False,
            required=False,
            placeholder="https://bark.example.com",
        ),
    )

    def clean(self, name, value):
        if name == "device_key" and "://" in value:
            path = [part for part in urlsplit(value).path.split("/") if part]
            return path[0] if path else ""
        if name == "server" and value:
            try:
                return outbound.validate_url(value).rstrip("/")
            except outbound.InvalidAddress as exc:
                raise InvalidPushSettings(name, exc.message) from None
        return value

    def request(self, settings, title, text, link):
        body: dict[str, Any] = {
            "device_key": settings["device_key"],
            "title": title,
            "body": text,
            "group": "faka",
        }
        if link:
            body["url"] = link
        base = settings.get("server") or self.base_url()
        return PushRequest(
            f"{base}/push", _json(body), {**JSON_HEADERS, "Content-Type": "application/json; charset=utf-8"}
        )

    def outcome(self, answer):
        return self.read_code(answer, "code", 200)


class WeCom(Provider):
    kind = "wecom"
    label = _l("WeCom group robot (企业微信)")
    fields = (
        Field(
            "key",
            _l("Webhook key"),
            secret=True,
            pattern=r"[A-Za-z0-9-]{8,64}",
            invalid=_l("Paste the robot's webhook address, or the key after ?key= in it."),
            placeholder="https://qyapi.weixin.qq.com/cgi-bin/webhook/send?key=…",
        ),
    )
    retry_codes = frozenset({"-1", "45009"})  # system busy; too many messages
    MAX_BYTES = 2048

    def clean(self, name, value):
        return _query_value(value, "key")

    def request(self, settings, title, text, link):
        content = self.one_text(title, text, link).encode()[: self.MAX_BYTES].decode("utf-8", "ignore")
        body = {"msgtype": "text", "text": {"content": content}}
        return PushRequest(
            f"{self.base_url()}/cgi-bin/webhook/send?key={quote(settings['key'])}", _json(body), JSON_HEADERS
        )

    def outcome(self, answer):
        return self.read_code(answer, "errcode", 0)


def dingtalk_sign(timestamp_ms: int, secret: str) -> str:
    """DingTalk's `sign`: Base64 of HMAC-SHA256(key=secret, msg=timestamp "\\n" secret), not
    yet URL-encoded."""
    digest = hmac.new(secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class DingTalk(Provider):
    kind = "dingtalk"
    label = _l("DingTalk robot (钉钉)")
    fields = (
        Field(
            "access_token",
            _l("Access token"),
            secret=True,
            pattern=r"[A-Za-z0-9]{16,128}",
            invalid=_l("Paste the robot's webhook address, or the access_token in it."),
            placeholder="https://oapi.dingtalk.com/robot/send?access_token=…",
        ),
        Field(
            "secret",
            _l("Signing secret (加签)"),
            secret=True,
            pattern=r"SEC[A-Za-z0-9]{16,128}",
            invalid=_l("Paste the secret shown under 加签, starting with SEC."),
            placeholder="SEC…",
        ),
    )
    retry_codes = frozenset({"-1", "130101", "410100"})  # busy; sent too fast; rate limited

    def clean(self, name, value):
        return _query_value(value, "access_token") if name == "access_token" else value

    def request(self, settings, title, text, link):
        timestamp = int(clock.now().timestamp() * 1000)
        sign = quote_plus(dingtalk_sign(timestamp, settings["secret"]))
        url = (
            f"{self.base_url()}/robot/send?access_token={quote(settings['access_token'])}"
            f"&timestamp={timestamp}&sign={sign}"
        )
        body = {"msgtype": "text", "text": {"content": self.one_text(title, text, link)}}
        return PushRequest(url, _json(body), JSON_HEADERS)

    def outcome(self, answer):
        return self.read_code(answer, "errcode", 0)


def feishu_sign(timestamp_s: int, secret: str) -> str:
    """Feishu's `sign`: Base64 of HMAC-SHA256 keyed with timestamp "\\n" secret over an
    empty message."""
    digest = hmac.new(f"{timestamp_s}\n{secret}".encode(), b"", hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


class Feishu(Provider):
    kind = "feishu"
    label = _l("Feishu robot (飞书)")
    fields = (
        Field(
            "hook",
            _l("Webhook address"),
            secret=True,
            pattern=r"[A-Za-z0-9-]{8,64}",
            invalid=_l("Paste the robot's webhook address (…/open-apis/bot/v2/hook/…)."),
            placeholder="https://open.feishu.cn/open-apis/bot/v2/hook/…",
        ),
        Field(
            "secret",
            _l("Signing secret (签名校验)"),
            secret=True,
            pattern=r"[A-Za-z0-9]{8,128}",
            invalid=_l("Paste the secret shown under 签名校验."),
        ),
    )
    retry_codes = frozenset({"11232"})  # frequency limited

    def clean(self, name, value):
        if name == "hook" and "://" in value:
            return urlsplit(value).path.rstrip("/").rpartition("/hook/")[2]
        return value

    def request(self, settings, title, text, link):
        timestamp = int(clock.now().timestamp())
        body = {
            "timestamp": str(timestamp),
            "sign": feishu_sign(timestamp, settings["secret"]),
            "msg_type": "text",
            "content": {"text": self.one_text(title, text, link)},
        }
        return PushRequest(
            f"{self.base_url()}/open-apis/bot/v2/hook/{quote(settings['hook'])}", _json(body), JSON_HEADERS
        )

    def outcome(self, answer):
        data = _answer_json(answer)
        if data is not None and "code" not in data and "StatusCode" in data:  # the robot's older answer
            data = {"code": data["StatusCode"], "msg": data.get("StatusMessage")}
            answer = answer._replace(body=_json(data))
        return self.read_code(answer, "code", 0)


class ServerChan(Provider):
    kind = "serverchan"
    label = _l("Server酱 (WeChat)")
    separate_title = True
    fields = (
        Field(
            "sendkey",
            _l("SendKey"),
            secret=True,
            pattern=r"SCT[A-Za-z0-9]{8,80}",
            invalid=_l("Paste your Server酱 Turbo SendKey, starting with SCT."),
            placeholder="SCT…",
        ),
    )
    MAX_TITLE = 32  # Server酱 cuts the title at 32 characters

    def request(self, settings, title, text, link):
        body = {"title": title[: self.MAX_TITLE], "desp": self.body_text(text, link)}
        return PushRequest(
            f"{self.base_url()}/{quote(settings['sendkey'])}.send",
            _json(body),
            {**JSON_HEADERS, "Content-Type": "application/json;charset=utf-8"},
        )

    def outcome(self, answer):
        return self.read_code(answer, "code", 0)


class PushPlus(Provider):
    kind = "pushplus"
    label = _l("PushPlus (WeChat)")
    separate_title = True
    fields = (
        Field(
            "token",
            _l("Token"),
            secret=True,
            pattern=r"[A-Za-z0-9]{16,64}",
            invalid=_l("Paste your PushPlus token (32 letters and digits)."),
        ),
    )
    retry_codes = frozenset({"999"})  # the service's own failure

    def request(self, settings, title, text, link):
        body = {"token": settings["token"], "title": title, "content": self.body_text(text, link), "template": "txt"}
        return PushRequest(f"{self.base_url()}/send", _json(body), JSON_HEADERS)

    def outcome(self, answer):
        return self.read_code(answer, "code", 200)


PROVIDERS: dict[str, Provider] = {
    provider.kind: provider
    for provider in (Telegram(), Bark(), WeCom(), DingTalk(), Feishu(), ServerChan(), PushPlus())
}
KINDS = tuple(PROVIDERS)
