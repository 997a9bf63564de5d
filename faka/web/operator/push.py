"""The platform's push channels (/operator/push): where operators hear of a merchant to
review, a held order, a failing gateway or a complaint escalated to them. The pages are
the merchant's (faka/web/merchant/push.py) with the platform as the owner."""

from functools import wraps

from flask import abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l

from faka.core.errors import NotFound
from faka.extensions import db
from faka.messaging import push
from faka.web.merchant.push import channel_context, channel_form, known_kind, list_context, new_context, save
from faka.web.operator import NAV, bp

NAV.append(("operator.push_channels", _l("Push channels")))
PLATFORM = None  # the owner of the platform's channels


def _found(view):
    """A channel that is not the platform's (a merchant's, or none) is a 404."""

    @wraps(view)
    def wrapped(*args, **kwargs):
        try:
            return view(*args, **kwargs)
        except NotFound:
            abort(404)

    return wrapped


@bp.get("/push")
def push_channels():
    return render_template("operator/push.html", **list_context(PLATFORM))


@bp.route("/push/new/<kind>", methods=["GET", "POST"])
@_found
def push_new(kind: str):
    kind = known_kind(kind)
    form = channel_form(PLATFORM)
    channel, error, field_errors = save(PLATFORM, kind, form) if request.method == "POST" else (None, None, {})
    if channel is not None:
        return redirect(url_for("operator.push_channel", channel_id=channel.id), 303)
    status = 400 if request.method == "POST" else 200
    return render_template("operator/push_new.html", **new_context(PLATFORM, kind, form, error, field_errors)), status


@bp.route("/push/<int:channel_id>", methods=["GET", "POST"])
@_found
def push_channel(channel_id: int):
    if request.method == "POST":
        channel = push.get_channel(channel_id, PLATFORM)
        form = channel_form(PLATFORM, channel)
        saved, error, field_errors = save(PLATFORM, channel.kind, form, channel_id)
        if saved is not None:
            return redirect(url_for("operator.push_channel", channel_id=channel_id), 303)
        db.session.rollback()  # show the channel as saved, not as the refused form left it
        context = channel_context(channel_id, PLATFORM, form, error, field_errors)
        return render_template("operator/push_channel.html", **context), 400
    return render_template("operator/push_channel.html", **channel_context(channel_id, PLATFORM))


@bp.post("/push/<int:channel_id>/test")
@_found
def push_test(channel_id: int):
    message = push.send_test(channel_id, PLATFORM)
    return redirect(url_for("operator.push_channel", channel_id=channel_id, test=message.id), 303)


@bp.post("/push/<int:channel_id>/pause")
@_found
def push_pause(channel_id: int):
    push.pause_channel(channel_id, PLATFORM)
    return redirect(url_for("operator.push_channel", channel_id=channel_id), 303)


@bp.post("/push/<int:channel_id>/resume")
@_found
def push_resume(channel_id: int):
    push.resume_channel(channel_id, PLATFORM)
    return redirect(url_for("operator.push_channel", channel_id=channel_id), 303)


@bp.post("/push/<int:channel_id>/delete")
@_found
def push_delete(channel_id: int):
    push.delete_channel(channel_id, PLATFORM)
    return redirect(url_for("operator.push_channels"), 303)
