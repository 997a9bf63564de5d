"""Template filters and the values every page needs."""

from decimal import Decimal

from flask import g, request, url_for
from flask_babel import lazy_gettext as _l
from werkzeug.local import LocalProxy

from faka.accounts import onboarding, review
from faka.complaints import workflow
from faka.core.clock import local_time
from faka.core.money import format_money
from faka.core.text import markdown, mask_email
from faka.inventory import keys
from faka.ledger.balances import LEDGER_KIND_LABELS
from faka.ledger.payouts import PAYOUT_KIND_LABELS
from faka.messaging import mail, webhooks
from faka.payments import notify
from faka.payments.gateways import GATEWAY_LABELS
from faka.payments.gateways.base import yuan_text
from faka.payments.gateways.clients import app_name
from faka.platform import audit, contact
from faka.platform.settings import cached_site_settings
from faka.risk import blacklist, engine
from faka.web.i18n import current_language

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


def category_name(category) -> str:
    """A category's name in the page's language: the English name on English pages (the
    Chinese one when it has none), the Chinese name everywhere else."""
    return category.name_for(current_language()) if category is not None else ""


def current_site() -> dict:
    if "site" not in g:
        g.site = cached_site_settings()
    return g.site


def site_contact() -> list:
    """The operator's ways of contact, as the footer, error pages and refusals show them."""
    return contact.channels(current_site())


def init_app(app) -> None:
    app.add_template_filter(format_money, "money")
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
