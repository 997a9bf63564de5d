"""Template filters and the values every page needs."""

from decimal import Decimal
from functools import cache

import nh3
from flask import g, request, url_for
from flask_babel import format_datetime
from flask_babel import lazy_gettext as _l
from markupsafe import Markup
from werkzeug.local import LocalProxy

from faka.payments.gateways.base import yuan_text
from faka.payments.gateways.clients import app_name
from faka.platform import contact
from faka.platform.settings import cached_site_settings
from faka.risk import blacklist
from faka.web.i18n import current_language

CURRENCY_SYMBOLS = {"CNY": "¥", "USD": "$", "EUR": "€", "USDT": "USDT "}


def money(minor_units: int, currency: str = "CNY") -> str:
    """Integer minor units to a price: 4800 -> ¥48.00. No floats involved."""
    sign = "-" if minor_units < 0 else ""
    major, minor = divmod(abs(int(minor_units)), 100)
    return f"{sign}{CURRENCY_SYMBOLS.get(currency, currency + ' ')}{major:,}.{minor:02d}"


@cache
def _markdown():
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """Merchant-written Markdown to safe HTML: raw HTML is not rendered, and the result is
    sanitised again (links get rel=noopener, scripts and handlers are stripped)."""
    html = _markdown().render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))


ORDER_STATUS_LABELS = {
    "pending": _l("Waiting for payment"),
    "paid": _l("Paid"),
    "delivered": _l("Delivered"),
    "expired": _l("Expired"),
    "cancelled": _l("Cancelled"),
    "paid_unfulfilled": _l("Refund due"),
    "refunded": _l("Refunded"),
    "partially_refunded": _l("Partially refunded"),
}


TIMELINE_LABELS = {
    "created": _l("Order placed"),
    "paid": _l("Paid"),
    "delivered": _l("Delivered"),
    "emailed": _l("Delivery email sent"),
    "refunded": _l("Refunded"),
    "expired": _l("Expired unpaid"),
    "cancelled": _l("Cancelled by the buyer"),
}


def timeline_label(what: str) -> str:
    return str(TIMELINE_LABELS.get(what, what))


# The gateways with a logo of their own in static/icons/pay/; any other shows other.svg.
PAYMENT_ICONS = frozenset({"sandbox", "epay", "alipay", "wechat", "stripe", "usdt"})


def gateway_icon(name: str) -> str:
    return url_for("static", filename=f"icons/pay/{name if name in PAYMENT_ICONS else 'other'}.svg")


def nav_current(href: str) -> str | None:
    """A navigation link's aria-current: "page" on the page it opens, "true" on the pages
    under it (an order under Orders). A section's root (/merchant/) marks only itself."""
    path = request.script_root + request.path  # as url_for writes it, under a prefix too
    if path == href:
        return "page"
    if not href.endswith("/") and path.startswith(href + "/"):
        return "true"
    return None


def order_status_label(status: str) -> str:
    return str(ORDER_STATUS_LABELS.get(status, status))


def fee_rate(basis_points: int) -> str:
    """A fee rate stored in basis points as people read it: 250 -> '2.5%', 500 -> '5%'."""
    return f"{(Decimal(basis_points) / 100).normalize():f}%"


def _labeller(labels: dict):
    """A template global naming a stored value (a status, a kind) by its label."""
    return lambda value: str(labels.get(value, value))


def percent(ratio: float | None) -> str:
    """0.125 -> '12.5%'; None (nothing to divide by) -> '—'."""
    return "—" if ratio is None else f"{ratio * 100:.1f}%"


def mask_email(email: str | None) -> str:
    """A buyer's email as the merchant's lists show it: ab***@qq.com (one character
    before the stars when the name is that short). Enough to tell orders apart, not
    enough to collect addresses; the order's own page shows it in full."""
    if not email:
        return ""
    local, at, domain = email.rpartition("@")
    if not at:
        local, domain = email, ""
    shown = local[:1] if len(local) <= 2 else local[:2]
    return f"{shown}***{at}{domain}"


def category_name(category) -> str:
    """A category's name in the page's language: the English name on English pages (the
    Chinese one when it has none), the Chinese name everywhere else."""
    return category.name_for(current_language()) if category is not None else ""


def local_time(value) -> str:
    return format_datetime(value, "yyyy-MM-dd HH:mm") if value else ""


def current_site() -> dict:
    if "site" not in g:
        g.site = cached_site_settings()
    return g.site


def site_contact() -> list:
    """The operator's ways of contact, as the footer, error pages and refusals show them."""
    return contact.channels(current_site())


def init_app(app) -> None:
    app.add_template_filter(money, "money")
    app.add_template_filter(yuan_text, "yuan")  # an amount as a form field's value: 4800 -> 48.00
    app.add_template_filter(markdown, "markdown")
    app.add_template_filter(local_time, "localtime")
    app.add_template_filter(mask_email, "mask_email")
    app.add_template_filter(category_name, "category_name")
    app.add_template_global(order_status_label)
    app.add_template_global(gateway_icon)
    app.add_template_global(nav_current)
    app.add_template_global(app_name, "in_app_name")
    app.add_template_global(timeline_label)
    app.add_template_global(percent)
    app.add_template_filter(fee_rate, "fee_rate")
    app.add_template_global(site_contact)
    from faka.accounts import onboarding, review
    from faka.complaints import workflow
    from faka.inventory import keys
    from faka.ledger.balances import LEDGER_KIND_LABELS, PAYOUT_KIND_LABELS
    from faka.messaging import mail, webhooks
    from faka.payments import notify
    from faka.payments.gateways import GATEWAY_LABELS
    from faka.platform import audit
    from faka.risk import engine

    # Stored values (statuses, kinds, outcomes) as the pages name them.
    for name, labels in {
        "gateway_label": GATEWAY_LABELS,
        "ledger_kind_label": LEDGER_KIND_LABELS,
        "payout_kind_label": PAYOUT_KIND_LABELS,
        "merchant_status_label": review.STATUS_LABELS,
        "entity_type_label": onboarding.ENTITY_TYPE_LABELS,
        "notify_outcome_label": notify.OUTCOME_LABELS,
        "webhook_event_label": webhooks.EVENT_LABELS,
        "webhook_status_label": webhooks.DELIVERY_STATUS_LABELS,
        "email_kind_label": mail.KIND_LABELS,
        "email_status_label": mail.STATUS_LABELS,
        "import_sample_label": keys.SAMPLE_LABELS,
    }.items():
        app.add_template_global(_labeller(labels), name)
    app.add_template_global(audit.action_label, "audit_action_label")
    app.add_template_global(engine.hit_detail, "risk_detail")

    app.add_template_global(lambda status: str(workflow.STATUS_LABELS.get(status, status)), "complaint_status_label")
    app.add_template_global(lambda reason: str(workflow.REASON_LABELS.get(reason, reason)), "complaint_reason_label")
    app.add_template_global(lambda author: str(workflow.AUTHOR_LABELS.get(author, author)), "complaint_author_label")
    app.add_template_global(lambda kind: str(blacklist.KIND_LABELS.get(kind, kind)), "blacklist_kind_label")
    # A refusal by the risk engine, which names the operator's contact (templates/_refusal.html).
    app.add_template_test(
        lambda error: isinstance(error, engine.Blocked) and not isinstance(error, engine.StockHoarding), "risk_blocked"
    )
    # An order's risk_flags (rule names, space-separated) as the labels people read.
    app.add_template_global(
        lambda flags: [str(engine.RULE_LABELS.get(rule, rule)) for rule in (flags or "").split()], "risk_labels"
    )

    @app.context_processor
    def inject_site():
        return {
            "site": LocalProxy(current_site),  # loaded only by pages that show it
            "locale": current_language(),
            "languages": app.config["LANGUAGES"],
        }
