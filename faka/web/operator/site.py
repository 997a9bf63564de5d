"""Operator console: site settings and payment gateways.

SMTP is set here (saved settings, the password encrypted) or else by the environment
(MAIL_SERVER, MAIL_PORT, ...); the page shows what is in force, never the password, and
can send a test email."""

import re
import smtplib

from flask import abort, current_app, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_login import current_user

from faka.core.cache import forget_all
from faka.core.crypto import vault
from faka.core.errors import DomainError
from faka.core.uploads import MAX_UPLOAD_BYTES, delete_images, store_image
from faka.extensions import db
from faka.messaging import mail
from faka.payments import notify
from faka.payments.gateways import GATEWAY_LABELS, GATEWAYS, configure_gateway, gateway_settings, shown_settings
from faka.platform import audit, contact
from faka.platform import settings as site_config
from faka.web.operator import NAV, bp
from faka.web.shop.catalog import POLICY_PAGES
from faka.web.uploads import UploadLimit, accepts_upload, back_office_uploads

# The settings this page edits, in the order shown, and how each is entered.
TEXT_FIELDS = ("site_name", "icp_number")
CONTACT_FIELDS = contact.CONTACT_KEYS
TEXTAREA_FIELDS = ("announcement", "terms", "refund_policy", "privacy_policy")
NUMBER_FIELDS = ("order_ttl_minutes", "complaint_window_days", "merchant_reply_hours", "buyer_reply_days")
RISK_FIELDS = site_config.RISK_THRESHOLDS
EDITABLE = (
    *TEXT_FIELDS,
    *CONTACT_FIELDS,
    *TEXTAREA_FIELDS,
    *NUMBER_FIELDS,
    *RISK_FIELDS,
    "open_registration",
    "require_terms_consent",
    "default_language",
)
CHECKBOXES = ("open_registration", "require_terms_consent")
LABELS = {
    "site_name": _l("Site name"),
    "icp_number": _l("ICP licence number (shown in the footer, linking to the official lookup)"),
    "contact_qq": _l("QQ number"),
    "contact_wechat": _l("WeChat ID"),
    "contact_telegram": _l("Telegram (@username or t.me link)"),
    "contact_email": _l("Contact email"),
    "contact_note": _l("Other contact, or a note (e.g. working hours)"),
    "require_terms_consent": _l("Buyers must tick a box agreeing to the terms of service before ordering"),
    "announcement": _l("Announcement"),
    "terms": _l("Terms of service"),
    "refund_policy": _l("Refund policy"),
    "privacy_policy": _l("Privacy policy"),
    "order_ttl_minutes": _l("Minutes an order waits for payment"),
    "complaint_window_days": _l("Days a buyer may complain after delivery"),
    "merchant_reply_hours": _l("Hours a merchant has to reply to a complaint"),
    "buyer_reply_days": _l("Days a buyer has to answer the merchant before the complaint closes"),
    "open_registration": _l("Open merchant registration"),
    "default_language": _l("Default language"),
    "risk_flag_at": _l("Flag at score"),
    "risk_captcha_at": _l("Captcha at score"),
    "risk_hold_at": _l("Hold delivery at score"),
    "risk_block_at": _l("Block at score"),
}
# What each risk threshold does once a request's rules add up to it (faka/risk/engine.py).
RISK_HINTS = {
    "risk_flag_at": _l("The request goes through and shows on the risk monitor and the merchant's order."),
    "risk_captcha_at": _l("The visitor's browser must solve a proof-of-work check before checkout, lookup or login."),
    "risk_hold_at": _l("The order is taken and paid, but its goods wait until you release it on the risk monitor."),
    "risk_block_at": _l("The request is refused and nothing changes. Each threshold must be above the one before."),
}
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
LOGO_UPLOAD = UploadLimit(files=1, file_bytes=MAX_UPLOAD_BYTES)


def _clear_page_cache() -> None:
    """Show the change on the storefront at once, in every process (faka/core/cache.py)."""
    forget_all()


def _mail_config() -> list[tuple[object, object]]:
    """The SMTP settings in force, without the password."""
    cfg = mail.smtp_config()
    return [
        (_l("In force from"), _l("this console") if cfg.source == "console" else _l("the environment (MAIL_*)")),
        (_l("Server"), cfg.server or _l("not configured")),
        (_l("Port"), cfg.port),
        (_l("STARTTLS"), _l("yes") if cfg.use_tls else _l("no")),
        (_l("SSL"), _l("yes") if cfg.use_ssl else _l("no")),
        (_l("Sender"), cfg.sender),
        (_l("User name"), cfg.username or "—"),
    ]


@bp.post("/settings/logo")
@back_office_uploads
@accepts_upload(LOGO_UPLOAD)
def logo_settings():
    current = _current_values()
    upload = request.files.get("logo")
    if request.form.get("remove"):
        name = ""
    else:
        try:
            name = store_image(upload.read(MAX_UPLOAD_BYTES + 1) if upload and upload.filename else b"")
        except DomainError as exc:
            return _settings_page(current, {"logo": exc.message}, 400)
    try:
        audit.record(
            current_user.id, "site.logo", "settings", before={"logo": current.get("logo")}, after={"logo": name}
        )
        site_config.set_setting("logo", name, commit=False)
        db.session.commit()
    except BaseException:
        db.session.rollback()
        delete_images([name])
        raise
    if current.get("logo") != name:
        delete_images([current.get("logo")])  # nothing else names the logo's file
    _clear_page_cache()
    return redirect(url_for("operator.site_settings", saved=1), 303)


SMTP_FIELDS = ("smtp_server", "smtp_port", "smtp_security", "smtp_username", "smtp_sender")


@bp.post("/settings/smtp")
def smtp_settings():
    current = _current_values()
    submitted = {key: request.form.get(key, "").strip() for key in SMTP_FIELDS}
    errors = site_config.validate(submitted)
    if errors:
        return _settings_page({**current, **submitted}, errors, 400)
    changed = {key: value for key, value in submitted.items() if value != current.get(key)}
    password = request.form.get("smtp_password", "")
    if password:  # empty keeps the stored password
        site_config.set_setting("smtp_password", vault().encrypt(password), commit=False)
    if changed or password:
        audit.record(
            current_user.id,
            "site.smtp",
            "settings",
            before={key: current.get(key) for key in changed},
            after={**changed, **({"smtp_password": "(changed)"} if password else {})},
        )
        for key, value in changed.items():
            site_config.set_setting(key, value, commit=False)
        db.session.commit()
    return redirect(url_for("operator.site_settings", smtp_saved=1), 303)


def _with_old_contact(values: dict) -> dict:
    """The single free-text contact of older sites, offered in the note field while no
    new contact is set; saving the form moves it there (site_settings)."""
    if values.get("contact") and not any(values.get(key) for key in CONTACT_FIELDS):
        return {**values, "contact_note": values["contact"]}
    return values


def _settings_page(values: dict, errors: dict | None = None, status: int = 200, mail_error=None, mail_to=""):
    return render_template(
        "operator/settings.html",
        values=_with_old_contact(values),
        contact_fields=CONTACT_FIELDS,
        policy_pages=POLICY_PAGES,
        errors=errors or {},
        labels=LABELS,
        text_fields=TEXT_FIELDS,
        textarea_fields=TEXTAREA_FIELDS,
        number_fields=NUMBER_FIELDS,
        risk_fields=RISK_FIELDS,
        risk_hints=RISK_HINTS,
        ranges=site_config.INT_RANGES,
        max_lengths=site_config.MAX_LENGTHS,
        mail_config=_mail_config(),
        smtp_configured=mail.smtp_configured(),
        mail_error=mail_error,
        mail_to=mail_to,
        test_sent=request.args.get("test_email") == "sent",
        saved=request.args.get("saved") == "1",
        smtp_saved=request.args.get("smtp_saved") == "1",
    ), status


def _current_values() -> dict[str, str]:
    values = site_config.site_settings()
    values["order_ttl_minutes"] = str(site_config.order_ttl_minutes())
    db.session.rollback()
    return values


@bp.route("/settings", methods=["GET", "POST"])
def site_settings():
    current = _current_values()
    if request.method == "GET":
        return _settings_page(current)
    submitted = {key: request.form.get(key, "").strip() for key in EDITABLE if key not in CHECKBOXES}
    for key in TEXTAREA_FIELDS:  # keep the text as typed, only normalising line ends
        submitted[key] = request.form.get(key, "").replace("\r\n", "\n").strip()
    submitted["open_registration"] = "1" if request.form.get("open_registration") else "0"
    submitted["require_terms_consent"] = "1" if request.form.get("require_terms_consent") == "1" else "0"
    submitted["contact"] = ""  # the old single contact: the form showed it in the note field
    errors = site_config.validate(submitted)
    if errors:
        return _settings_page({**current, **submitted}, errors, 400)
    changed = {key: value for key, value in submitted.items() if value != current.get(key)}
    if changed:
        for key, value in changed.items():
            site_config.set_setting(key, value, commit=False)
        audit.record(
            current_user.id,
            "site.settings",
            "settings",
            before={key: current.get(key) for key in changed},
            after=changed,
        )
        db.session.commit()
        _clear_page_cache()
    return redirect(url_for("operator.site_settings", saved=1), 303)


@bp.post("/settings/test-email")
def send_test_email():
    to_addr = request.form.get("to_addr", "").strip()
    if not EMAIL_RE.match(to_addr) or len(to_addr) > 254:
        return _settings_page(
            _current_values(), status=400, mail_error=_("Enter a valid email address."), mail_to=to_addr
        )
    try:
        mail.send_test_email(to_addr)
    except mail.MailNotConfigured:
        return _settings_page(
            _current_values(), status=400, mail_to=to_addr, mail_error=_("SMTP is not configured (MAIL_SERVER).")
        )
    except (OSError, smtplib.SMTPException) as exc:
        return _settings_page(
            _current_values(),
            status=502,
            mail_to=to_addr,
            mail_error=_("Sending failed: %(error)s", error=f"{type(exc).__name__}: {exc}"[:300]),
        )
    audit.record(current_user.id, "site.test_email", to_addr)
    db.session.commit()
    return redirect(url_for("operator.site_settings", test_email="sent"), 303)


# -- payment gateways -----------------------------------------------------------------------


def _gateway_rows() -> list[dict]:
    rows = []
    for name in GATEWAYS:
        row, fields = shown_settings(name)
        rows.append(
            {
                "name": name,
                "label": GATEWAY_LABELS.get(name, name),
                "enabled": bool(row and row.enabled),
                "fields": fields,
                "notify_url": current_app.config["BASE_URL"].rstrip("/") + url_for("pay.notify", gateway=name),
                "can_test": notify.can_query(name),
            }
        )
    db.session.rollback()
    return rows


@bp.get("/gateways")
def gateways():
    return render_template("operator/gateways.html", gateways=_gateway_rows(), saved=request.args.get("saved"))


@bp.post("/gateways/<name>")
def gateway_update(name: str):
    cls = GATEWAYS.get(name)
    if cls is None:
        abort(404)
    enabled = bool(request.form.get("enabled"))
    # An empty input keeps the stored value; settings are secrets, so only names are audited.
    values = {field: request.form.get(field, "").strip() for field in cls.settings_fields}
    values = {field: value for field, value in values.items() if value}
    too_long = [field for field, value in values.items() if len(value) > 2000]
    if too_long:
        return render_template(
            "operator/gateways.html",
            gateways=_gateway_rows(),
            error=_("A setting is too long: %(fields)s.", fields=", ".join(too_long)),
        ), 400
    row, _current = gateway_settings(name)
    was_enabled = bool(row and row.enabled)
    audit.record(
        current_user.id,
        "gateway.update",
        f"gateway:{name}",
        before={"enabled": was_enabled},
        after={"enabled": enabled, "changed_fields": sorted(values)},
    )
    configure_gateway(name, values, enabled=enabled)  # commits the change and its audit event
    _clear_page_cache()
    return redirect(url_for("operator.gateways", saved=name), 303)


@bp.post("/gateways/<name>/test")
def gateway_test(name: str):
    """Ask the provider about an order number that does not exist: an answer that
    verifies proves the credentials, the keys and the network path."""
    if name not in GATEWAYS:
        abort(404)
    try:
        result = notify.test_gateway(name)
    except DomainError as exc:
        result = str(exc.message)
    audit.record(current_user.id, "gateway.tested", f"gateway:{name}", detail=result[:200])
    db.session.commit()
    return render_template("operator/gateways.html", gateways=_gateway_rows(), tested=(name, result))


NAV.append(("operator.site_settings", _l("Site settings")))
NAV.append(("operator.gateways", _l("Payment gateways")))

# The forms of the storefront's look (accent colour, layout, site icon) are on this page too.
from faka.web.operator import appearance  # noqa: E402,F401,I001
