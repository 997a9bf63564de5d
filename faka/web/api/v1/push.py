"""Push channels: list, add, change (pause and resume too), delete, send a test, and the
message log. The same service as the back office's push pages (faka/messaging/push.py):
a kind's settings checked by its provider and stored encrypted, at most ten channels, the
same messages. A channel's tokens never come back: the answers show a secret setting by
its last four characters, as its back-office page does. Under the `webhooks` scope (both
send the shop's events out)."""

from flask import g, url_for
from flask_babel import gettext as _

from faka.messaging import push
from faka.messaging.models import PushChannel, PushMessage
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "push-channels",
    __name__,
    description="Short messages to your phone or group chat when something happens in your shop: a Telegram bot, "
    "Bark, a WeCom, DingTalk or Feishu robot, Server酱 or PushPlus (the kinds and their settings: the push docs). "
    f"At most {push.MAX_CHANNELS}. Tokens and keys are stored encrypted and shown only by their last four "
    "characters. Needs the `webhooks` scope.",
)

LOCATION = {"Location": {"description": "The channel's address in this API.", "schema": {"type": "string"}}}


def channel_answer(channel: PushChannel) -> dict:
    return {
        "id": channel.id,
        "kind": channel.kind,
        "name": channel.name,
        "events": [e for e in channel.events.split(",") if e],
        "language": channel.locale,
        "settings": [{"name": h.name, "value": h.shown, "secret": h.secret} for h in push.setting_hints(channel)],
        "paused": channel.paused,
        "paused_reason": channel.paused_reason,
        "paused_at": channel.paused_at,
        "consecutive_failures": channel.consecutive_failures,
        "last_sent_at": channel.last_sent_at,
        "created_at": channel.created_at,
    }


def message_answer(message: PushMessage) -> dict:
    return {
        "id": message.id,
        "event": message.event,
        "title": message.title,
        "text": message.text,
        "status": message.status,
        "attempts": message.attempts,
        "http_status": message.http_status,
        "provider_code": message.provider_code,
        "last_error": message.last_error,
        "created_at": message.created_at,
        "sent_at": message.sent_at,
    }


def _known_settings(kind: str, settings: dict) -> dict:
    """The settings, refused (422, each unknown name) unless the kind asks for them all."""
    names = {field.name for field in push.PROVIDERS[kind].fields}
    unknown = sorted(name for name in settings if name not in names)
    if unknown:
        message = _("Not a setting of this kind of channel.")
        raise ApiError(422, "invalid", message, {f"settings.{name}": [message] for name in unknown})
    return settings


def _settings_refused(exc: push.InvalidPushSettings) -> ApiError:
    return ApiError(422, "invalid_push_settings", exc.message, {f"settings.{exc.field}": [str(exc.message)]})


@bp.get("/push-channels")
@requires("webhooks:read")
@bp.response(200, s.PushChannelListSchema)
def list_channels():
    """List your push channels"""
    return {"items": [channel_answer(c) for c in push.list_channels(g.merchant.id)]}


@bp.post("/push-channels")
@requires("webhooks:write")
@idempotent
@bp.arguments(s.PushChannelCreateSchema)
@bp.response(201, s.PushChannelSchema, headers=LOCATION)
def create_channel(data):
    """Add a push channel

    `settings` are the kind's (a WeCom robot's `key`, a Telegram bot's `bot_token` and `chat_id` ...), checked as
    the back office checks them. Send a test to see that it works.
    """
    kind = data["kind"]
    language = data.get("language") or (g.api_key.language if g.api_key.language in s.PUSH_LANGUAGES else None)
    try:
        channel = push.create_channel(
            g.merchant.id,
            kind,
            data["name"],
            _known_settings(kind, data["settings"]),
            data.get("events", list(push.MERCHANT_EVENTS)),
            language,
        )
    except push.InvalidPushSettings as exc:
        raise _settings_refused(exc) from None
    return channel_answer(channel), 201, {"Location": url_for(".get_channel", channel_id=channel.id)}


@bp.get("/push-channels/<channel_id>", parameters=s.id_parameter("channel_id"))
@requires("webhooks:read")
@bp.response(200, s.PushChannelSchema)
def get_channel(channel_id):
    """Read a push channel

    Whether it is paused, and why: `failures` when it paused itself after messages failed in a row (a test that
    goes through resumes it), `owner` when you paused it.
    """
    channel_id = s.row_id(channel_id)
    return channel_answer(push.get_channel(channel_id, g.merchant.id))


@bp.patch("/push-channels/<channel_id>", parameters=s.id_parameter("channel_id"))
@requires("webhooks:write")
@bp.arguments(s.PushChannelUpdateSchema)
@bp.response(200, s.PushChannelSchema)
def update_channel(data, channel_id):
    """Change, pause or resume a push channel

    Send only what changes. In `settings`, a setting left out stays as it is (a secret sent empty too); `paused`
    true pauses the channel (what is queued is dropped), false resumes it.
    """
    channel_id = s.row_id(channel_id)
    channel = push.get_channel(channel_id, g.merchant.id)
    settings = data.get("settings")
    if settings is not None:
        kept = {hint.name: hint.shown for hint in push.setting_hints(channel) if not hint.secret}
        settings = {**kept, **_known_settings(channel.kind, settings)}
    if any(data.get(name) is not None for name in ("name", "events", "language")) or settings is not None:
        try:
            push.update_channel(
                channel_id,
                g.merchant.id,
                name=data.get("name"),
                settings=settings,
                events=data.get("events"),
                locale=data.get("language"),
            )
        except push.InvalidPushSettings as exc:
            raise _settings_refused(exc) from None
    if data.get("paused") is True:
        push.pause_channel(channel_id, g.merchant.id)
    elif data.get("paused") is False:
        push.resume_channel(channel_id, g.merchant.id)
    return channel_answer(push.get_channel(channel_id, g.merchant.id))


@bp.delete("/push-channels/<channel_id>", parameters=s.id_parameter("channel_id"))
@requires("webhooks:write")
@bp.response(204)
def delete_channel(channel_id):
    """Delete a push channel

    With its message log; what is queued for it is dropped.
    """
    channel_id = s.row_id(channel_id)
    push.delete_channel(channel_id, g.merchant.id)
    return ""


@bp.post("/push-channels/<channel_id>/test", parameters=s.id_parameter("channel_id"))
@requires("webhooks:write")
@idempotent
@bp.response(200, s.PushMessageSchema)
def send_test(channel_id):
    """Send a test message

    Sent now, paused or not, and answered with what the provider said (`status` sent or failed, its code and
    error). It is not retried, and a failed test does not count towards pausing the channel.
    """
    channel_id = s.row_id(channel_id)
    return message_answer(push.send_test(channel_id, g.merchant.id))


@bp.get("/push-channels/<channel_id>/messages", parameters=s.id_parameter("channel_id"))
@requires("webhooks:read")
@bp.arguments(s.PushMessageArgsSchema, location="query")
@bp.response(200, s.PushMessagePageSchema)
def list_messages(args, channel_id):
    """List a channel's messages

    Oldest first, with each one's attempts and the provider's last answer.
    """
    channel_id = s.row_id(channel_id)
    query = push.messages_query(channel_id, g.merchant.id, args["status"])
    page = page_of_query(query, PushMessage.id, args["cursor"], args["limit"])
    page["items"] = [message_answer(m) for m in page["items"]]
    return page
