"""Push channels in the merchant's back office (/merchant/push). The operator's console
shows the platform's channels with the same pieces (faka/web/operator/push.py): the
form, and `list_context`, `new_context`, `channel_context` and `save` here, each taking
the owner (a merchant id, or None for the platform)."""

from flask import g, redirect, request, url_for
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import SelectField, SelectMultipleField, StringField
from wtforms.validators import DataRequired, Length
from wtforms.widgets import CheckboxInput, ListWidget

from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.messaging import push
from faka.messaging.models import PushChannel, PushMessage
from faka.web.i18n import current_language
from faka.web.merchant import bp, render, scoped
from faka.web.pagination import page_number

LANGUAGE_CHOICES = [("zh_CN", "简体中文", {"lang": "zh-CN"}), ("en", "English", {"lang": "en"})]


class ChannelForm(FlaskForm):
    """The fields every kind shares; a kind's own settings (tokens, keys) are read by the
    provider's field names and checked by the service."""

    name = StringField(
        _l("Name"),
        validators=[DataRequired(_l("Name the channel.")), Length(max=push.MAX_NAME)],
        description=_l('For you, e.g. "My phone" or "Shop group".'),
    )
    events = SelectMultipleField(
        _l("Events"), choices=[], widget=ListWidget(prefix_label=False), option_widget=CheckboxInput()
    )
    locale = SelectField(_l("Language of the messages"), choices=LANGUAGE_CHOICES)


def channel_form(merchant_id: int | None, channel: PushChannel | None = None) -> ChannelForm:
    """The form, filled from the request when posted, else from the channel (or with every
    event ticked for a new one)."""
    if request.method == "POST":
        form = ChannelForm()
    else:
        form = ChannelForm(formdata=None, obj=channel)
        if channel is not None:
            form.events.data = [e for e in channel.events.split(",") if e]
        else:
            form.events.data = list(push.events_for(merchant_id))
            form.locale.data = current_language()  # the language the owner reads the back office in
    form.events.choices = [(e, push.EVENT_LABELS[e]) for e in push.events_for(merchant_id)]
    return form


def save(merchant_id: int | None, kind: str, form: ChannelForm, channel_id: int | None = None):
    """Create (or, with channel_id, update) a channel from the posted form. Returns
    (channel or None, error, field_errors); NotFound goes on up."""
    if not form.validate_on_submit():
        return None, None, {}
    settings = {field.name: request.form.get(field.name, "") for field in push.PROVIDERS[kind].fields}
    try:
        if channel_id is None:
            channel = push.create_channel(
                merchant_id, kind, form.name.data, settings, form.events.data, form.locale.data
            )
        else:
            channel = push.update_channel(
                channel_id, merchant_id, form.name.data, settings, form.events.data, form.locale.data
            )
    except NotFound:
        raise
    except push.InvalidPushSettings as exc:
        return None, None, {exc.field: exc.message}
    except DomainError as exc:
        return None, exc.message, {}
    return channel, None, {}


def _posted_values(kind: str) -> dict:
    """What was typed into the kind's fields, to show again after a refusal; never a secret."""
    if request.method != "POST":
        return {}
    return {f.name: request.form.get(f.name, "") for f in push.PROVIDERS[kind].fields if not f.secret}


def list_context(merchant_id: int | None) -> dict:
    return {"channels": push.list_channels(merchant_id), **labels()}


def new_context(merchant_id: int | None, kind: str, form: ChannelForm, error=None, field_errors=None) -> dict:
    return {
        "kind": kind,
        "provider": push.PROVIDERS[kind],
        "form": form,
        "error": error,
        "field_errors": field_errors or {},
        "values": _posted_values(kind),
        "hints": {},
        **labels(),
    }


def channel_context(
    channel_id: int, merchant_id: int | None, form: ChannelForm | None = None, error=None, field_errors=None
) -> dict:
    """What a channel's page shows: its state (and why it paused), a test's result, its
    saved settings as hints, the edit form and a page of its log."""
    channel = push.get_channel(channel_id, merchant_id)
    log = push.channel_log(channel_id, merchant_id, page_number())
    saved = push.setting_hints(channel)
    values = {h.name: h.shown for h in saved if not h.secret}
    values.update(_posted_values(channel.kind))
    return {
        "channel": channel,
        "kind": channel.kind,
        "provider": push.PROVIDERS[channel.kind],
        "saved": saved,
        "hints": {h.name: h.shown for h in saved if h.secret},
        "values": values,
        "form": form or channel_form(merchant_id, channel),
        "error": error,
        "field_errors": field_errors or {},
        "log": log,
        "failure": push.last_failure(channel) if channel.paused_reason == PushChannel.PAUSED_AFTER_FAILURES else None,
        "tested": _tested(channel),
        **labels(),
    }


def _tested(channel: PushChannel) -> PushMessage | None:
    """The test message a "send a test" just sent, named by ?test=, if it is this channel's."""
    raw = request.args.get("test", "")
    if not (raw.isascii() and raw.isdigit()) or len(raw) > 12:
        return None
    message = db.session.get(PushMessage, int(raw))
    return message if message is not None and message.channel_id == channel.id and message.event == push.TEST else None


def labels() -> dict:
    return {
        "kinds": push.KINDS,
        "kind_labels": push.KIND_LABELS,
        "event_labels": push.EVENT_LABELS,
        "status_labels": push.STATUS_LABELS,
        "pause_after": push.PAUSE_AFTER,
    }


def known_kind(kind: str) -> str:
    if kind not in push.PROVIDERS:
        raise NotFound()
    return kind


# -- the merchant's pages -------------------------------------------------------------------


@bp.get("/push")
def push_channels():
    return render("merchant/push.html", **list_context(g.merchant.id))


@bp.route("/push/new/<kind>", methods=["GET", "POST"])
@scoped
def push_new(kind: str):
    kind = known_kind(kind)
    form = channel_form(g.merchant.id)
    channel, error, field_errors = save(g.merchant.id, kind, form) if request.method == "POST" else (None, None, {})
    if channel is not None:
        return redirect(url_for("merchant.push_channel", channel_id=channel.id), 303)
    status = 400 if request.method == "POST" else 200
    return render("merchant/push_new.html", status, **new_context(g.merchant.id, kind, form, error, field_errors))


@bp.route("/push/<int:channel_id>", methods=["GET", "POST"])
@scoped
def push_channel(channel_id: int):
    if request.method == "POST":
        channel = push.get_channel(channel_id, g.merchant.id)
        form = channel_form(g.merchant.id, channel)
        saved, error, field_errors = save(g.merchant.id, channel.kind, form, channel_id)
        if saved is not None:
            return redirect(url_for("merchant.push_channel", channel_id=channel_id), 303)
        db.session.rollback()  # show the channel as saved, not as the refused form left it
        context = channel_context(channel_id, g.merchant.id, form, error, field_errors)
        return render("merchant/push_channel.html", 400, **context)
    return render("merchant/push_channel.html", **channel_context(channel_id, g.merchant.id))


@bp.post("/push/<int:channel_id>/test")
@scoped
def push_test(channel_id: int):
    message = push.send_test(channel_id, g.merchant.id)
    return redirect(url_for("merchant.push_channel", channel_id=channel_id, test=message.id), 303)


@bp.post("/push/<int:channel_id>/pause")
@scoped
def push_pause(channel_id: int):
    push.pause_channel(channel_id, g.merchant.id)
    return redirect(url_for("merchant.push_channel", channel_id=channel_id), 303)


@bp.post("/push/<int:channel_id>/resume")
@scoped
def push_resume(channel_id: int):
    push.resume_channel(channel_id, g.merchant.id)
    return redirect(url_for("merchant.push_channel", channel_id=channel_id), 303)


@bp.post("/push/<int:channel_id>/delete")
@scoped
def push_delete(channel_id: int):
    push.delete_channel(channel_id, g.merchant.id)
    return redirect(url_for("merchant.push_channels"), 303)
