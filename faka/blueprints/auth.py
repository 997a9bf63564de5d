"""Back-office accounts: login (with the two-factor step), sign-up, email verification,
password reset, and two-factor set-up. Buyers never log in."""
import time

from flask import Blueprint, flash, redirect, render_template, request, session, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user, login_required, login_user, logout_user
from flask_wtf import FlaskForm
from wtforms import PasswordField, StringField
from wtforms.validators import DataRequired, Length

from faka import device
from faka.blueprints.access import REAUTH_AT
from faka.blueprints.forms import (
    LoginForm, PasswordResetForm, PasswordResetRequestForm, SignupForm, TwoFactorCodeForm,
)
from faka.extensions import db, limiter, login_manager
from faka.i18n import current_language
from faka.models import User
from faka.services import accounts, captcha, risk, twofactor
from faka.services.errors import DomainError

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
LANGUAGE = "lang"  # faka/i18n.py keeps the visitor's chosen language here

LOGIN_FAILED = _l("Wrong email or password, or the account is locked for a while after repeated failures.")


@login_manager.user_loader
def load_user(user_id: str):
    return db.session.get(User, int(user_id)) if user_id.isdigit() else None


def _safe_next(target: str | None) -> str | None:
    # Only local paths: never an open redirect.
    if target and target.startswith("/") and not target.startswith("//") and "\\" not in target:
        return target
    return None


def _home_for(user) -> str:
    return url_for("operator.dashboard") if user.is_operator else url_for("merchant.dashboard")


def _clear_auth_state() -> None:
    # Whatever a previous user of this browser left half-done goes with them.
    for key in (PENDING_2FA, SETUP_SECRET, NEW_RECOVERY_CODES, REAUTH_AT):
        session.pop(key, None)


def _finish_login(user, next_url: str | None):
    # A new session for the logged-in user: nothing stored before the login survives
    # (a planted session id or value, the CSRF token), except the language chosen.
    language = session.get(LANGUAGE)
    session.clear()
    if language:
        session[LANGUAGE] = language
    login_user(user)
    accounts.record_sign_in(user.id, request.remote_addr, device.device_hash())
    # A permanent session is re-signed on every request and refused once older than
    # PERMANENT_SESSION_LIFETIME: back-office logins end after that much inactivity.
    session.permanent = True
    if twofactor.needs_setup(user):
        return redirect(url_for("auth.two_factor_setup"), 303)
    return redirect(_safe_next(next_url) or _home_for(user), 303)


def _form_status() -> int:
    return 400 if request.method == "POST" else 200


# -- login ------------------------------------------------------------------------------

@bp.route("/login", methods=["GET", "POST"])
@limiter.limit("20 per minute", methods=["POST"])
def login():
    form = LoginForm()
    error = None
    if request.method == "POST":
        session.pop(PENDING_2FA, None)  # a new attempt starts from the password again
    if form.validate_on_submit():
        try:
            user = accounts.authenticate(
                form.email.data, form.password.data, request.remote_addr, device.device_hash(),
                captcha_solved=captcha.solved(request.form, request.remote_addr, device.device_hash()))
        except risk.Refused as exc:
            return render_template("auth/login.html", form=form, error=exc.message,
                                   captcha_needed=isinstance(exc, risk.CaptchaRequired)), \
                403 if isinstance(exc, risk.Blocked) else 400
        if user is not None and user.totp_enabled:
            # The password was right; the session is not logged in until the code is.
            session[PENDING_2FA] = {"uid": user.id, "until": int(time.time()) + PENDING_2FA_SECONDS,
                                    "next": _safe_next(request.args.get("next"))}
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
@limiter.limit("20 per minute", methods=["POST"])
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
    return render_template("auth/two_factor.html", form=form, error=error), _form_status()


# -- re-authentication before secrets are shown ----------------------------------------

class ReauthForm(FlaskForm):
    password = PasswordField(_l("Your password"), validators=[DataRequired(_l("Enter your password.")), Length(max=128)])
    code = StringField(_l("Code from your authenticator app"), validators=[Length(max=32)],
                       description=_l("Or one of your recovery codes."))


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
            accounts.reauthenticate(current_user.id, form.password.data, form.code.data, request.remote_addr,
                                    device.device_hash())
        except twofactor.AccountLocked as exc:
            # Someone guessing at an open session: the session ends with the lock.
            logout_user()
            _clear_auth_state()
            flash(exc.message, "error")
            return redirect(url_for("auth.login"), 303)
        except DomainError as exc:
            error = exc.message
        else:
            session[REAUTH_AT] = int(time.time())
            return redirect(next_url or _home_for(current_user), 303)
    return render_template("auth/reauth.html", form=form, error=error, next_url=next_url,
                           two_factor=current_user.totp_enabled), _form_status()


@bp.post("/logout")
def logout():
    logout_user()
    _clear_auth_state()
    return redirect(url_for("catalog.home"), 303)


# -- sign-up and email verification -----------------------------------------------------

@bp.route("/signup", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def signup():
    if not accounts.registration_open():
        return render_template("auth/signup.html", form=None, error=accounts.RegistrationClosed.message), 403
    form = SignupForm()
    error = None
    if form.validate_on_submit():
        try:
            user = accounts.sign_up(form.email.data, form.password.data, form.shop_name.data, current_language())
        except DomainError as exc:
            error = exc.message
        else:
            if user is None:
                # The email has an account; its owner was told by email. Same answer as a sign-up.
                return redirect(url_for("auth.signup_sent"), 303)
            _clear_auth_state()
            login_user(user)
            flash(_("Your shop is open for set-up. We sent a link to %(email)s: open it to confirm your email.",
                    email=user.email), "info")
            return redirect(url_for("merchant.dashboard"), 303)
    return render_template("auth/signup.html", form=form, error=error), _form_status()


@bp.get("/signup/sent")
def signup_sent():
    return render_template("auth/verify_sent.html", title=_("Check your inbox"),
                           message=_("We sent you an email. Open the link in it to continue."))


@bp.get("/verify/<token>")
def verify_email(token: str):
    try:
        accounts.verify_email(token)
    except accounts.InvalidLink as exc:
        return render_template("auth/verify_sent.html", title=_("Link not valid"), message=exc.message, error=True), 400
    flash(_("Your email address is confirmed."), "info")
    if current_user.is_authenticated:
        return redirect(_home_for(current_user), 303)
    return redirect(url_for("auth.login"), 303)


@bp.post("/verify/resend")
@limiter.limit("5 per hour")
@login_required
def resend_verification():
    if accounts.resend_verification(current_user.id, current_language()):
        flash(_("We sent a new confirmation link to %(email)s.", email=current_user.email), "info")
    return redirect(_home_for(current_user), 303)


# -- password reset ---------------------------------------------------------------------

@bp.route("/reset", methods=["GET", "POST"])
@limiter.limit("10 per hour", methods=["POST"])
def reset_request():
    form = PasswordResetRequestForm()
    if form.validate_on_submit():
        accounts.request_password_reset(form.email.data, current_language())
        return redirect(url_for("auth.reset_sent"), 303)
    return render_template("auth/reset_request.html", form=form), _form_status()


@bp.get("/reset/sent")
def reset_sent():
    return render_template(
        "auth/verify_sent.html", title=_("Check your inbox"),
        message=_("If that email has an account, a link to choose a new password is on its way. It works for one hour, once."),
    )


@bp.route("/reset/<token>", methods=["GET", "POST"])
@limiter.limit("20 per hour", methods=["POST"])
def reset(token: str):
    try:
        accounts.check_reset_token(token)
    except accounts.InvalidLink as exc:
        return render_template("auth/verify_sent.html", title=_("Link not valid"), message=exc.message, error=True,
                               retry=True), 400
    form = PasswordResetForm()
    error = None
    if form.validate_on_submit():
        try:
            accounts.reset_password(token, form.password.data)
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
    return render_template("auth/two_factor_manage.html", form=TwoFactorCodeForm(),
                           codes_left=twofactor.recovery_codes_left(current_user))


@bp.route("/account/2fa/setup", methods=["GET", "POST"])
@login_required
def two_factor_setup():
    if current_user.totp_enabled:
        return redirect(url_for("auth.two_factor"), 303)
    pending = session.get(SETUP_SECRET)
    secret = twofactor.unseal(pending.get("secret")) if isinstance(pending, dict) and pending.get("uid") == current_user.id else None
    if secret is None:
        # Kept across reloads, so a code scanned once stays valid until confirmed.
        secret = twofactor.new_secret()
        session[SETUP_SECRET] = {"uid": current_user.id, "secret": twofactor.seal(secret)}
    form = TwoFactorCodeForm()
    error = None
    if form.validate_on_submit():
        try:
            codes = twofactor.enable(current_user.id, secret, form.code.data)
        except DomainError as exc:
            error = exc.message
        else:
            session.pop(SETUP_SECRET, None)
            session[NEW_RECOVERY_CODES] = twofactor.seal(" ".join(codes))
            return redirect(url_for("auth.recovery_codes"), 303)
    uri = twofactor.provisioning_uri(secret, current_user.email)
    return render_template(
        "auth/two_factor_setup.html", form=form, error=error, secret=secret,
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
    return render_template("auth/two_factor_manage.html", form=form, error=error,
                           codes_left=twofactor.recovery_codes_left(current_user)), 400
