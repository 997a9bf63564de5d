"""Back-office accounts: login (with the two-factor step), sign-up, email verification,
password reset, two-factor set-up, and the list of signed-in devices. Buyers never log in."""

import re
import time
from datetime import timedelta
from urllib.parse import unquote, urlsplit

import ua_parser
from flask import Blueprint, current_app, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import ngettext
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from itsdangerous import BadSignature, URLSafeTimedSerializer
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from faka.accounts import login as account_login
from faka.accounts import passkeys, twofactor, users
from faka.accounts import sessions as account_sessions
from faka.accounts.reauth import reauthenticate
from faka.core.errors import DomainError
from faka.extensions import limiter, login_manager
from faka.risk import captcha, engine
from faka.web import device
from faka.web.access import REAUTH_AT
from faka.web.forms import LoginForm, PasswordResetForm, PasswordResetRequestForm, SignupForm, TwoFactorCodeForm
from faka.web.i18n import current_language

bp = Blueprint("auth", __name__)

login_manager.login_view = "auth.login"
login_manager.login_message = _l("Please log in to continue.")

# Session keys. A password-checked user waiting for the second step, for a few minutes:
PENDING_2FA = "auth_pending_2fa"
PENDING_2FA_SECONDS = 300
# A TOTP secret shown on the set-up page and not confirmed yet (encrypted), and the
# recovery codes made when it was confirmed, until the page that shows them once.
SETUP_SECRET = "auth_totp_setup"
NEW_RECOVERY_CODES = "auth_recovery_codes"
LANGUAGE = "lang"  # faka/web/i18n.py keeps the visitor's chosen language here
# The id of this browser's row in user_sessions (faka/accounts/users.py): without a live
# row the session is not logged in, whatever else the cookie says.
SESSION_ID = "auth_session"

LOGIN_FAILED = _l("Wrong email or password, or the account is locked for a while after repeated failures.")

# Browsers that have logged in to an account: its wrong passwords from there are counted
# apart from those of the address (faka/accounts/users.py, authenticate). A signed list of
# accounts.known_device_tag values, newest first.
KNOWN_DEVICES_COOKIE = "faka_known"
KNOWN_DEVICES_SALT = "faka.known-devices"
KNOWN_DEVICES_MAX_AGE = timedelta(days=180)
KNOWN_DEVICES_KEPT = 5


def _login_limit() -> str:
    return current_app.config["RATELIMIT_LOGIN"]


@login_manager.user_loader
def load_user(user_id: str):
    if not user_id.isdigit():
        return None
    return account_sessions.session_user(int(user_id), session.get(SESSION_ID))


@bp.before_app_request
def forget_ended_session():
    """Check a logged-in session first thing (before a view opens a transaction), and
    forget one the server has ended (logged out elsewhere, revoked, expired): a copy of
    its cookie is as logged out as the browser that ended it."""
    if "_user_id" in session and not current_user.is_authenticated:
        _fresh_session()


# Characters a browser drops from a URL or reads as a slash (tab, newline, other
# controls, backslash): a `next` holding any of them is refused, not cleaned.
_UNSAFE_IN_NEXT = re.compile(r"[\x00-\x1f\x7f\\]")
MAX_NEXT = 2048


def _safe_next(target: str | None) -> str | None:
    """`target` when a browser would read it as a path on this site, else None: never
    an open redirect. Refused: anything not starting with one `/`, a scheme or a host,
    control characters and backslashes, and the same once percent-decoded (%2f, %5c,
    %09), since a proxy or a later redirect may decode it."""
    if not isinstance(target, str) or not target or len(target) > MAX_NEXT:
        return None
    seen = target
    for _round in range(3):
        if _UNSAFE_IN_NEXT.search(seen) or not seen.startswith("/") or seen.startswith("//"):
            return None
        parts = urlsplit(seen)
        if parts.scheme or parts.netloc:
            return None
        decoded = unquote(seen)
        if decoded == seen:
            return target
        seen = decoded
    return None  # still encoded after three rounds: no link of ours looks like that


def _home_for(user) -> str:
    return url_for("operator.dashboard") if user.is_operator else url_for("merchant.dashboard")


def _fresh_session() -> None:
    # Nothing stored before survives (a planted value, the CSRF token, a half-done login
    # or set-up), except the language chosen.
    language = session.get(LANGUAGE)
    session.clear()
    if language:
        session[LANGUAGE] = language


def _device_summary() -> str | None:
    """The browser, system and device of this request, for the sessions page."""
    parsed = ua_parser.parse(request.user_agent.string[:512])  # a real one is far shorter
    parts = []
    if parsed.user_agent is not None:
        parts.append(" ".join(filter(None, (parsed.user_agent.family, parsed.user_agent.major))))
    if parsed.os is not None:
        parts.append(parsed.os.family)
    if parsed.device is not None and parsed.device.family != "Other":
        parts.append(parsed.device.family)
    return " · ".join(parts) or None


def _known_devices_serializer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt=KNOWN_DEVICES_SALT)


def _known_devices() -> list[str]:
    value = request.cookies.get(KNOWN_DEVICES_COOKIE, "")
    if not value or len(value) > 1000:
        return []
    try:
        tags = _known_devices_serializer().loads(value, max_age=int(KNOWN_DEVICES_MAX_AGE.total_seconds()))
    except BadSignature:  # also SignatureExpired
        return []
    return [tag for tag in tags if isinstance(tag, str)][:KNOWN_DEVICES_KEPT] if isinstance(tags, list) else []


def _remember_device(response, user):
    tag = account_login.known_device_tag(user.id, device.device_hash())
    tags = [tag] + [known for known in _known_devices() if known != tag]
    response.set_cookie(
        KNOWN_DEVICES_COOKIE,
        _known_devices_serializer().dumps(tags[:KNOWN_DEVICES_KEPT]),
        max_age=int(KNOWN_DEVICES_MAX_AGE.total_seconds()),
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    return response


def _finish_login(user, next_url: str | None):
    # A new session for the logged-in user, with its own row in user_sessions.
    _fresh_session()
    login_user(user)
    session[SESSION_ID] = account_login.record_sign_in(
        user.id, request.remote_addr, device.device_hash(), _device_summary()
    )
    # A permanent session is re-signed on every request and refused once older than
    # PERMANENT_SESSION_LIFETIME: back-office logins end after that much inactivity.
    session.permanent = True
    if twofactor.needs_setup(user):
        return _remember_device(redirect(url_for("auth.two_factor_setup"), 303), user)
    return _remember_device(redirect(_safe_next(next_url) or _home_for(user), 303), user)


def _log_out() -> None:
    account_sessions.end_session(session.get(SESSION_ID))
    logout_user()
    _fresh_session()


def _form_status() -> int:
    return 400 if request.method == "POST" else 200


# -- login ------------------------------------------------------------------------------


@bp.route("/login", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login():
    form = LoginForm()
    error = None
    if request.method == "POST":
        session.pop(PENDING_2FA, None)  # a new attempt starts from the password again
    if form.validate_on_submit():
        try:
            user = account_login.authenticate(
                form.email.data,
                form.password.data,
                request.remote_addr,
                device.device_hash(),
                captcha_solved=captcha.solved(request.form, request.remote_addr, device.device_hash()),
                known_devices=frozenset(_known_devices()),
            )
        except engine.Refused as exc:
            return render_template(
                "auth/login.html", form=form, error=exc.message, captcha_needed=isinstance(exc, engine.CaptchaRequired)
            ), 403 if isinstance(exc, engine.Blocked) else 400
        except account_login.LoginCaptchaRequired as exc:
            return render_template("auth/login.html", form=form, error=exc.message, captcha_needed=True), 400
        except account_login.LoginThrottled as exc:
            return (
                render_template("auth/login.html", form=form, error=exc.message, captcha_needed=True),
                429,
                {"Retry-After": str(exc.seconds)},
            )
        if user is not None and user.two_factor_enabled:
            # The password was right; the session is not logged in until the code (or passkey) is.
            session[PENDING_2FA] = {
                "uid": user.id,
                "until": int(time.time()) + PENDING_2FA_SECONDS,
                "next": _safe_next(request.args.get("next")),
            }
            return redirect(url_for("auth.login_2fa"), 303)
        if user is not None:
            return _finish_login(user, request.args.get("next"))
        error = LOGIN_FAILED
    return render_template("auth/login.html", form=form, error=error), _form_status()


def _pending_user_id() -> int | None:
    pending = session.get(PENDING_2FA)
    if not isinstance(pending, dict) or pending.get("until", 0) < time.time():
        session.pop(PENDING_2FA, None)
        return None
    return pending.get("uid")


@bp.route("/login/2fa", methods=["GET", "POST"])
@limiter.limit(_login_limit, methods=["POST"])
def login_2fa():
    user_id = _pending_user_id()
    if user_id is None:
        return redirect(url_for("auth.login"), 303)
    next_url = session[PENDING_2FA].get("next")
    form = TwoFactorCodeForm()
    error = None
    if form.validate_on_submit():
        try:
            user = twofactor.verify_login(user_id, form.code.data)
        except twofactor.AccountLocked as exc:
            session.pop(PENDING_2FA, None)
            error = exc.message
        except DomainError as exc:
            error = exc.message
        else:
            return _finish_login(user, next_url)
    totp, passkey = passkeys.second_factors(user_id)
    return render_template("auth/two_factor.html", form=form, error=error, totp=totp, passkey=passkey), _form_status()


# -- re-authentication before secrets are shown ----------------------------------------


class ReauthForm(FlaskForm):
    password = PasswordField(
        _l("Your password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)]
    )
    code = StringField(
        _l("Code from your authenticator app"),
        validators=[Length(max=32)],
        description=_l("Or one of your recovery codes."),
    )


@bp.route("/reauth", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
@login_required
def reauth():
    """Confirm the password (and the second factor) again before buyers' or stock keys
    are shown; good for a few minutes (access.fresh_login_required)."""
    form = ReauthForm()
    next_url = _safe_next(request.args.get("next"))
    error = None
    if form.validate_on_submit():
        try:
            reauthenticate(
                current_user.id, form.password.data, form.code.data, request.remote_addr, device.device_hash()
            )
        except twofactor.AccountLocked as exc:
            # Someone guessing at an open session: the session ends with the lock.
            _log_out()
            flash(exc.message, "error")
            return redirect(url_for("auth.login"), 303)
        except DomainError as exc:
            error = exc.message
        else:
            session[REAUTH_AT] = int(time.time())
            return redirect(next_url or _home_for(current_user), 303)
    return render_template(
        "auth/reauth.html",
        form=form,
        error=error,
        next_url=next_url,
        two_factor=current_user.two_factor_enabled,
        passkey=bool(current_user.passkeys),
    ), _form_status()


@bp.post("/logout")
def logout():
    _log_out()
    return redirect(url_for("catalog.home"), 303)


# -- sign-up and email verification -----------------------------------------------------


@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def signup():
    if not users.registration_open():
        return render_template("auth/signup.html", form=None, error=users.RegistrationClosed.message), 403
    form = SignupForm()
    error = None
    if form.validate_on_submit():
        try:
            users.sign_up(form.email.data, form.password.data, form.shop_name.data, current_language())
        except DomainError as exc:
            error = exc.message
        else:
            # The same answer whether the shop was opened or the email already has an
            # account (whose owner is told by email): the page reveals nothing. The new
            # merchant logs in once the address is confirmed, or right away.
            return redirect(url_for("auth.signup_sent"), 303)
    return render_template("auth/signup.html", form=form, error=error), _form_status()


@bp.get("/signup/sent")
def signup_sent():
    return render_template(
        "auth/verify_sent.html",
        title=_("Check your inbox"),
        message=_("We sent you an email. Open the link in it to continue."),
    )


@bp.get("/verify/<token>")
def verify_email(token: str):
    try:
        users.verify_email(token)
    except users.InvalidLink as exc:
        return render_template("auth/verify_sent.html", title=_("Link not valid"), message=exc.message, error=True), 400
    flash(_("Your email address is confirmed."), "info")
    if current_user.is_authenticated:
        return redirect(_home_for(current_user), 303)
    return redirect(url_for("auth.login"), 303)


@bp.post("/verify/resend")
@limiter.limit("5 per hour")
@login_required
def resend_verification():
    if users.resend_verification(current_user.id, current_language()):
        flash(_("We sent a new confirmation link to %(email)s.", email=current_user.email), "info")
    return redirect(_home_for(current_user), 303)


# -- password reset ---------------------------------------------------------------------


@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def reset_request():
    form = PasswordResetRequestForm()
    if form.validate_on_submit():
        users.request_password_reset(form.email.data, current_language())
        return redirect(url_for("auth.reset_sent"), 303)
    return render_template("auth/reset_request.html", form=form), _form_status()


@bp.get("/reset/sent")
def reset_sent():
    return render_template(
        "auth/verify_sent.html",
        title=_("Check your inbox"),
        message=_(
            "If that email has an account, a link to choose a new password is on its way. It works for one hour, once."
        ),
    )


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def reset(token: str):
    try:
        users.check_reset_token(token)
    except users.InvalidLink as exc:
        return render_template(
            "auth/verify_sent.html", title=_("Link not valid"), message=exc.message, error=True, retry=True
        ), 400
    form = PasswordResetForm()
    error = None
    if form.validate_on_submit():
        try:
            users.reset_password(token, form.password.data)
        except DomainError as exc:
            error = exc.message
        else:
            flash(_("Your password is changed. Log in with the new one."), "info")
            return redirect(url_for("auth.login"), 303)
    return render_template("auth/reset.html", form=form, error=error), _form_status()


# -- two-factor authentication ----------------------------------------------------------


@bp.get("/account/2fa")
@login_required
def two_factor():
    return render_template(
        "auth/two_factor_manage.html",
        form=TwoFactorCodeForm(),
        codes_left=twofactor.recovery_codes_left(current_user),
        passkey_count=len(current_user.passkeys),
    )


# -- signed-in devices ------------------------------------------------------------------


@bp.get("/account/sessions")
@login_required
def sessions():
    return render_template(
        "auth/sessions.html", sessions=account_sessions.active_sessions(current_user.id, session.get(SESSION_ID))
    )


@bp.post("/account/sessions/<int:session_id>/revoke")
@login_required
def revoke_session(session_id: int):
    try:
        account_sessions.revoke_session(current_user.id, session_id)
    except DomainError as exc:
        flash(exc.message, "error")
    else:
        flash(_("That device is signed out."), "info")
    return redirect(url_for("auth.sessions"), 303)


@bp.post("/account/sessions/others/revoke")
@login_required
def revoke_other_sessions():
    ended, session[SESSION_ID] = account_sessions.sign_out_other_sessions(
        current_user.id, session.get(SESSION_ID), request.remote_addr, _device_summary()
    )
    flash(ngettext("%(num)s other device is signed out.", "%(num)s other devices are signed out.", ended), "info")
    return redirect(url_for("auth.sessions"), 303)


@bp.route("/account/2fa/setup", methods=["GET", "POST"])
@login_required
def two_factor_setup():
    if current_user.totp_enabled:
        return redirect(url_for("auth.two_factor"), 303)
    pending = session.get(SETUP_SECRET)
    secret = (
        twofactor.unseal(pending.get("secret"))
        if isinstance(pending, dict) and pending.get("uid") == current_user.id
        else None
    )
    if secret is None:
        # Kept across reloads, so a code scanned once stays valid until confirmed.
        secret = twofactor.new_secret()
        session[SETUP_SECRET] = {"uid": current_user.id, "secret": twofactor.seal(secret)}
    form = TwoFactorCodeForm()
    error = None
    if form.validate_on_submit():
        try:
            codes, session[SESSION_ID] = twofactor.enable(
                current_user.id, secret, form.code.data, session.get(SESSION_ID), request.remote_addr, _device_summary()
            )
        except DomainError as exc:
            error = exc.message
        else:
            session.pop(SETUP_SECRET, None)
            session[NEW_RECOVERY_CODES] = twofactor.seal(" ".join(codes))
            return redirect(url_for("auth.recovery_codes"), 303)
    uri = twofactor.provisioning_uri(secret, current_user.email)
    return render_template(
        "auth/two_factor_setup.html",
        form=form,
        error=error,
        secret=secret,
        qr=twofactor.qr_svg(uri, title=_("QR code for your authenticator app")),
        required=twofactor.needs_setup(current_user),
    ), _form_status()


@bp.get("/account/2fa/recovery-codes")
@login_required
def recovery_codes():
    sealed = session.pop(NEW_RECOVERY_CODES, None)
    codes = (twofactor.unseal(sealed) or "").split()
    if not codes:
        # Shown once only: afterwards there is nothing to show.
        return redirect(url_for("auth.two_factor"), 303)
    response = render_template("auth/recovery_codes.html", codes=codes)
    return response, 200, {"Cache-Control": "no-store"}


@bp.post("/account/2fa/disable")
@limiter.limit("10 per hour")
@login_required
def two_factor_disable():
    form = TwoFactorCodeForm()
    error = None
    if form.validate_on_submit():
        try:
            twofactor.disable(current_user.id, form.code.data)
        except DomainError as exc:
            error = exc.message
        else:
            flash(_("Two-factor authentication is off."), "info")
            return redirect(url_for("auth.two_factor"), 303)
    return render_template(
        "auth/two_factor_manage.html",
        form=form,
        error=error,
        codes_left=twofactor.recovery_codes_left(current_user),
        passkey_count=len(current_user.passkeys),
    ), 400
