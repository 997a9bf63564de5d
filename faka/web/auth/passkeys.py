"""Passkeys: the account's list (add, rename, remove), and the JSON steps of each WebAuthn
ceremony that faka/static/js/passkeys.js drives: signing in without a password, the
second step of a login, /reauth, and confirming a payout account or a withdrawal (that
one is checked by the money views, merchant.py, with `confirmation_proof`).

Each ceremony is two POSTs: `.../options` starts it (the challenge waits in the session
for five minutes, for this purpose and this user only), the second answers it and is
told where to go next ({"redirect": url}) or what went wrong ({"error": message}). Every
POST carries the CSRF token (X-CSRFToken). Without JavaScript or WebAuthn, or on an
address where browsers refuse WebAuthn, no passkey button shows and the password and
code forms work as before."""

import json
import time

from flask import Blueprint, flash, has_request_context, jsonify, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required
from flask_wtf import FlaskForm
from wtforms import StringField
from wtforms.validators import DataRequired, Length

from faka.accounts import passkeys, twofactor
from faka.core.errors import DomainError
from faka.extensions import limiter
from faka.risk import engine
from faka.web import device
from faka.web.access import REAUTH_AT, fresh_login_required, recently_reauthenticated
from faka.web.auth.views import (
    NEW_RECOVERY_CODES,
    PENDING_2FA,
    SESSION_ID,
    _device_summary,
    _finish_login,
    _home_for,
    _log_out,
    _login_limit,
    _pending_user_id,
    _safe_next,
)

bp = Blueprint("passkeys", __name__)

REAUTH_SECONDS = 300  # as access.fresh_login_required
CEREMONY_LIMIT = "30 per minute"
SIGN_IN = "sign-in"
LOGIN_2FA = "login-2fa"
REAUTH = "reauth"
REGISTER = "register"
CONFIRM = "confirm"


class PasskeyNameForm(FlaskForm):
    name = StringField(
        _l("Name"),
        validators=[
            DataRequired(_l("Give the passkey a name of 1 to 60 characters.")),
            Length(max=passkeys.MAX_NAME, message=_l("Use at most 60 characters.")),
        ],
        description=_l("So you can tell your passkeys apart, for example “work laptop”."),
    )


# -- the ceremony's two halves --------------------------------------------------------------


def _session_key(purpose: str) -> str:
    return f"passkey_{purpose}"


def _start(purpose: str, ceremony: passkeys.Ceremony, user_id: int | None):
    session[_session_key(purpose)] = {"c": passkeys.b64url(ceremony.challenge), "uid": user_id, "t": int(time.time())}
    return jsonify(ceremony.options), 200, {"Cache-Control": "no-store"}


def _proof(purpose: str, user_id: int | None, response) -> passkeys.Proof:
    """The browser's answer with the challenge this session was given for `purpose` and
    `user_id`, which is spent from the session either way."""
    kept = session.pop(_session_key(purpose), None)
    if not isinstance(kept, dict) or kept.get("uid") != user_id or not isinstance(kept.get("c"), str):
        raise passkeys.ChallengeExpired()
    try:
        challenge = passkeys._unb64url(kept["c"])
    except ValueError:
        raise passkeys.ChallengeExpired() from None
    issued = kept.get("t")
    return passkeys.Proof(
        response, challenge, issued if isinstance(issued, int) else 0, request.remote_addr, device.device_hash()
    )


def _answer() -> tuple[object, dict]:
    """The credential the browser sent, and the rest of the JSON body."""
    if (request.content_length or 0) > passkeys.MAX_RESPONSE:
        raise passkeys.PasskeyRefused("request too large")
    body = request.get_json(silent=True)
    if not isinstance(body, dict) or not isinstance(body.get("credential"), dict):
        raise passkeys.PasskeyRefused("no credential in the request")
    return body["credential"], body


def _error(message, status: int = 400, redirect_to: str | None = None):
    """{"error": message}; with `redirect_to`, the script goes there and the page it
    opens shows the message."""
    if redirect_to is None:
        return jsonify(error=str(message)), status, {"Cache-Control": "no-store"}
    flash(str(message), "error")
    return jsonify(error=str(message), redirect=redirect_to), status, {"Cache-Control": "no-store"}


def _go(target: str):
    return jsonify(redirect=target), 200, {"Cache-Control": "no-store"}


def _as_json(response):
    """A redirect (with the cookies it sets) as {"redirect": url}: the script navigates."""
    target = response.headers.pop("Location")
    response.status_code = 200
    response.set_data(json.dumps({"redirect": target}))
    response.mimetype = "application/json"
    response.headers["Cache-Control"] = "no-store"
    return response


def _unavailable():
    return None if passkeys.available(request.host) else _error(passkeys.PasskeysUnavailable.message, 404)


# -- signing in without a password ----------------------------------------------------------


@bp.post("/login/passkey/options")
@limiter.limit(_login_limit)
def sign_in_options():
    return _unavailable() or _start(SIGN_IN, passkeys.authentication_options(), None)


@bp.post("/login/passkey")
@limiter.limit(_login_limit)
def sign_in():
    if (refused := _unavailable()) is not None:
        return refused
    try:
        credential, _body = _answer()
        user = passkeys.sign_in(_proof(SIGN_IN, None, credential), request.remote_addr, device.device_hash())
    except engine.Refused as exc:
        return _error(exc.message, 403 if isinstance(exc, engine.Blocked) else 400)
    except DomainError as exc:
        return _error(exc.message)
    return _as_json(_finish_login(user, request.args.get("next")))


# -- the second step of a login -------------------------------------------------------------


@bp.post("/login/2fa/passkey/options")
@limiter.limit(_login_limit)
def second_factor_options():
    user_id = _pending_user_id()
    if user_id is None:
        return _error(_("Log in again: the password step expired."), 400, redirect_to=url_for("auth.login"))
    return _unavailable() or _start(LOGIN_2FA, passkeys.authentication_options(user_id), user_id)


@bp.post("/login/2fa/passkey")
@limiter.limit(_login_limit)
def second_factor():
    user_id = _pending_user_id()
    if user_id is None:
        return _error(_("Log in again: the password step expired."), 400, redirect_to=url_for("auth.login"))
    if (refused := _unavailable()) is not None:
        return refused
    next_url = session[PENDING_2FA].get("next")
    try:
        credential, _body = _answer()
        user = passkeys.verify_second_factor(
            user_id, _proof(LOGIN_2FA, user_id, credential), request.remote_addr, device.device_hash(), "login"
        )
    except twofactor.AccountLocked as exc:
        session.pop(PENDING_2FA, None)
        return _error(exc.message, 400, redirect_to=url_for("auth.login"))
    except DomainError as exc:
        return _error(exc.message)
    return _as_json(_finish_login(user, next_url))


# -- re-authentication ----------------------------------------------------------------------


@bp.post("/reauth/passkey/options")
@limiter.limit(CEREMONY_LIMIT)
@login_required
def reauth_options():
    return _unavailable() or _start(REAUTH, passkeys.authentication_options(current_user.id), current_user.id)


@bp.post("/reauth/passkey")
@limiter.limit("20 per minute")
@login_required
def reauth():
    if (refused := _unavailable()) is not None:
        return refused
    try:
        credential, _body = _answer()
        passkeys.verify_second_factor(
            current_user.id,
            _proof(REAUTH, current_user.id, credential),
            request.remote_addr,
            device.device_hash(),
            "re-authentication",
        )
    except twofactor.AccountLocked as exc:
        # Someone guessing at an open session: the session ends with the lock (as /reauth).
        _log_out()
        return _error(exc.message, 400, redirect_to=url_for("auth.login"))
    except DomainError as exc:
        return _error(exc.message)
    session[REAUTH_AT] = int(time.time())
    return _go(_safe_next(request.args.get("next")) or _home_for(current_user))


# -- confirming a payout account or a withdrawal ------------------------------------------


@bp.post("/account/passkeys/confirm/options")
@limiter.limit(CEREMONY_LIMIT)
@login_required
def confirm_options():
    return _unavailable() or _start(CONFIRM, passkeys.authentication_options(current_user.id), current_user.id)


def confirmation_proof(response: str | None) -> passkeys.Proof | None:
    """For a form confirmed with a passkey instead of a code (its hidden field holds the
    assertion, as JSON): the proof to check, with the challenge of confirm_options, which
    is spent here. None when the form carries no assertion."""
    if not response:
        return None
    return _proof(CONFIRM, current_user.id, response)


# -- the account's passkeys -----------------------------------------------------------------


def _manage_page(status: int = 200, error=None, form=None, editing: int | None = None):
    if error is None and form is not None and form.errors:
        error = next(iter(form.errors.values()))[0]
    return render_template(
        "auth/passkeys.html",
        passkeys=passkeys.user_passkeys(current_user.id),
        available=passkeys.available(request.host),
        error=error,
        form=form or PasskeyNameForm(formdata=None),
        editing=editing,
        codes_left=twofactor.recovery_codes_left(current_user),
    ), status


@bp.get("/account/passkeys")
@login_required
def manage():
    return _manage_page()


@bp.get("/account/passkeys/add")
@login_required
@fresh_login_required()
def add():
    form = PasskeyNameForm(formdata=None, name=_device_summary() or _("Passkey"))
    return render_template(
        "auth/passkey_add.html",
        form=form,
        available=passkeys.available(request.host),
        first=not current_user.two_factor_enabled,
    )


def _reauth_first():
    return _error(_("Confirm it is you first."), 403, redirect_to=url_for("auth.reauth", next=url_for("passkeys.add")))


@bp.post("/account/passkeys/add/options")
@limiter.limit(CEREMONY_LIMIT)
@login_required
def add_options():
    if not recently_reauthenticated(REAUTH_SECONDS):
        return _reauth_first()
    if (refused := _unavailable()) is not None:
        return refused
    try:
        ceremony = passkeys.registration_options(current_user.id)
    except DomainError as exc:
        return _error(exc.message)
    return _start(REGISTER, ceremony, current_user.id)


@bp.post("/account/passkeys/add")
@limiter.limit(CEREMONY_LIMIT)
@login_required
def add_verify():
    if not recently_reauthenticated(REAUTH_SECONDS):
        return _reauth_first()
    if (refused := _unavailable()) is not None:
        return refused
    try:
        credential, body = _answer()
        name = body.get("name") if isinstance(body.get("name"), str) else None
        registered = passkeys.register(
            current_user.id,
            _proof(REGISTER, current_user.id, credential),
            name,
            _device_summary(),
            session.get(SESSION_ID),
            request.remote_addr,
            _device_summary(),
        )
    except passkeys.PasskeyRefused:
        return _error(passkeys.RegistrationFailed.message)
    except DomainError as exc:
        return _error(exc.message)
    if registered.session_id is not None:
        session[SESSION_ID] = registered.session_id
    if registered.recovery_codes:
        session[NEW_RECOVERY_CODES] = twofactor.seal(" ".join(registered.recovery_codes))
        return _go(url_for("auth.recovery_codes"))
    flash(_("Passkey added."), "info")
    return _go(url_for("passkeys.manage"))


def _back_to_list(**_kwargs) -> str:
    return url_for("passkeys.manage")


@bp.post("/account/passkeys/<int:passkey_id>/rename")
@limiter.limit(CEREMONY_LIMIT)
@login_required
@fresh_login_required(back_to=_back_to_list)
def rename(passkey_id: int):
    form = PasskeyNameForm()
    if not form.validate_on_submit():
        return _manage_page(400, form=form, editing=passkey_id)
    try:
        passkeys.rename(current_user.id, passkey_id, form.name.data)
    except DomainError as exc:
        return _manage_page(400, error=exc.message, form=form, editing=passkey_id)
    flash(_("Passkey renamed."), "info")
    return redirect(url_for("passkeys.manage"), 303)


@bp.post("/account/passkeys/<int:passkey_id>/remove")
@limiter.limit(CEREMONY_LIMIT)
@login_required
@fresh_login_required(back_to=_back_to_list)
def remove(passkey_id: int):
    try:
        still_on = passkeys.remove(current_user.id, passkey_id)
    except DomainError as exc:
        return _manage_page(400, error=exc.message)
    flash(
        _("Passkey removed.")
        if still_on
        else _("Passkey removed. Two-factor authentication is off: logging in needs only your password."),
        "info",
    )
    return redirect(url_for("passkeys.manage"), 303)


@bp.app_context_processor
def passkey_config():
    """`passkeys_here`: whether this page's address allows passkeys at all (else no
    passkey button is drawn)."""

    def passkeys_here() -> bool:
        return has_request_context() and passkeys.available(request.host)

    return {"passkeys_here": passkeys_here}
