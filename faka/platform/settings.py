"""Site settings the operator edits, with their defaults."""

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.core.cache import reused
from faka.extensions import db
from faka.platform import contact, theme
from faka.platform.models import Setting

DEFAULTS = {
    "site_name": "faka",
    "announcement": "",
    "icp_number": "",
    "terms": "",
    "refund_policy": "",
    "open_registration": "1",  # "0" closes the merchant sign-up page
    "prohibited_words": "",  # one per line: products whose text hits one wait for moderation
    "privacy_policy": "",
    "contact": "",  # the single free-text contact of older sites, shown while the contact_* are empty
    # How buyers reach the operator (faka/platform/contact.py), each optional.
    "contact_qq": "",
    "contact_wechat": "",
    "contact_telegram": "",
    "contact_email": "",
    "contact_note": "",
    "require_terms_consent": "0",  # "1": buyers must tick "I agree to the terms" to order
    "order_ttl_minutes": "",  # until saved here, FAKA_ORDER_TTL_MINUTES applies (site_settings)
    "complaint_window_days": "7",
    "merchant_reply_hours": "48",
    "buyer_reply_days": "7",
    # The risk score at which each action starts (faka/risk/engine.py).
    "risk_flag_at": "20",
    "risk_captcha_at": "40",
    "risk_hold_at": "60",
    "risk_block_at": "80",
    "default_language": "zh_CN",  # for visitors who have not chosen one
    "logo": "",  # file name of the uploaded logo (faka/core/uploads.py)
    # The storefront's look (faka/platform/theme.py, docs/themes.md).
    "accent_color": "",  # "#rrggbb"; empty: faka.css's own accent
    "layout": "list",  # the product cards: "list" or "grid" (pictures)
    "favicon": "",  # the uploaded icon's files, 32, 180, 192 and 512 px (faka/platform/branding.py)
    # The growth programmes (faka/growth/, docs/growth.md): off until the operator opens
    # them, and the platform's default fee on a reseller's margin and on a commission.
    "resale_enabled": "0",
    "affiliate_enabled": "0",
    "resale_fee_bp": "300",
    "affiliate_fee_bp": "300",
    # SMTP set in the console; when smtp_server is empty the MAIL_* environment applies.
    "smtp_server": "",
    "smtp_port": "",
    "smtp_security": "",  # "" | "starttls" | "ssl"
    "smtp_username": "",
    "smtp_password": "",  # encrypted
    "smtp_sender": "",
}

# Limits of the settings the operator edits: text length, or an integer range.
MAX_LENGTHS = {
    "site_name": 60,
    "announcement": 2000,
    "icp_number": 60,
    "terms": 50000,
    "refund_policy": 50000,
    "privacy_policy": 50000,
    "contact": 200,
    **contact.MAX_LENGTHS,
    "prohibited_words": 10000,
    "smtp_server": 253,
    "smtp_username": 254,
    "smtp_sender": 254,
}
INT_RANGES = {
    "order_ttl_minutes": (5, 1440),
    "complaint_window_days": (1, 90),
    "merchant_reply_hours": (1, 720),
    "buyer_reply_days": (1, 90),
    "risk_flag_at": (1, 1000),
    "risk_captcha_at": (1, 1000),
    "risk_hold_at": (1, 1000),
    "risk_block_at": (1, 1000),
    "resale_fee_bp": (0, 5000),
    "affiliate_fee_bp": (0, 5000),
}
ON_OFF = ("open_registration", "require_terms_consent", "resale_enabled", "affiliate_enabled")
PROGRAMMES = ("resale", "affiliate")
RISK_THRESHOLDS = ("risk_flag_at", "risk_captcha_at", "risk_hold_at", "risk_block_at")


def validate(values: dict[str, str]) -> dict[str, object]:
    """The problems of new setting values, by key (empty when all are fine)."""
    errors: dict[str, object] = {}
    for key, value in values.items():
        if key not in DEFAULTS:
            errors[key] = _l("Unknown setting.")
        elif key in MAX_LENGTHS and len(value) > MAX_LENGTHS[key]:
            errors[key] = _l("At most %(count)s characters.", count=MAX_LENGTHS[key])
        elif key in INT_RANGES:
            low, high = INT_RANGES[key]
            if not value.isdigit() or not low <= int(value) <= high:
                errors[key] = _l("A whole number from %(low)s to %(high)s.", low=low, high=high)
        elif key in ON_OFF and value not in ("0", "1"):
            errors[key] = _l("Choose on or off.")
        elif key == "smtp_port" and value and not (value.isdigit() and 1 <= int(value) <= 65535):
            errors[key] = _l("A whole number from %(low)s to %(high)s.", low=1, high=65535)
        elif key == "smtp_security" and value not in ("", "starttls", "ssl"):
            errors[key] = _l("Choose none, STARTTLS or SSL.")
        elif key == "default_language" and value not in current_app.config["LANGUAGES"]:
            errors[key] = _l("Choose one of the site's languages.")
        elif key in contact.CONTACT_KEYS and contact.problem(key, value):
            errors[key] = contact.problem(key, value)
        elif key == "site_name" and not value.strip():
            errors[key] = _l("The site needs a name.")
        elif key == "accent_color" and theme.accent_problem(value):
            errors[key] = theme.accent_problem(value)
        elif key == "layout" and value not in theme.LAYOUTS:
            errors[key] = _l("Choose a list or a picture grid.")
    _check_risk_order(values, errors)
    return errors


def _check_risk_order(values: dict[str, str], errors: dict[str, object]) -> None:
    """The risk thresholds must rise: flag, then captcha, then hold, then block."""
    if any(key in errors for key in RISK_THRESHOLDS) or not any(key in values for key in RISK_THRESHOLDS):
        return
    current = site_settings()
    levels = [int(values.get(key, current[key])) for key in RISK_THRESHOLDS]
    if levels != sorted(levels) or len(set(levels)) != len(levels):
        errors["risk_block_at"] = _l("The thresholds must rise: flag, then captcha, then hold, then block.")


def order_ttl_minutes() -> int:
    """Minutes a new order waits for payment: the site setting once the operator saved
    one, else the ORDER_TTL_MINUTES configuration."""
    value = cached_site_settings()["order_ttl_minutes"]
    return int(value) if value.isdigit() else int(current_app.config["ORDER_TTL_MINUTES"])


def programme_enabled(programme: str) -> bool:
    """Whether the operator opened a growth programme ("resale" or "affiliate")."""
    return cached_site_settings()[f"{programme}_enabled"] == "1"


def programme_fee_bp(programme: str) -> int:
    """The platform's default fee, in basis points, on a programme's shares."""
    value = site_settings()[f"{programme}_fee_bp"]
    return int(value) if value.isdigit() else int(DEFAULTS[f"{programme}_fee_bp"])


def cached_site_settings() -> dict[str, str]:
    """site_settings(), reused for PAGE_CACHE_SECONDS within this process: every page reads
    them (the footer, the default language), and an edit shows up within that time."""
    return reused("site-settings", site_settings)


def site_settings() -> dict[str, str]:
    values = dict(DEFAULTS, order_ttl_minutes=str(current_app.config["ORDER_TTL_MINUTES"]))
    values.update({s.key: s.value for s in db.session.execute(select(Setting)).scalars()})
    return values


def set_setting(key: str, value: str, commit: bool = True) -> None:
    if key not in DEFAULTS:
        raise KeyError(key)
    row = db.session.get(Setting, key)
    if row is None:
        db.session.add(Setting(key=key, value=value))
    else:
        row.value = value
    if commit:
        db.session.commit()
