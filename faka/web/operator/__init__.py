"""The operator console: one blueprint, its routes grouped by area in this package."""

from dataclasses import dataclass

from flask import Blueprint, current_app, url_for
from flask_babel import lazy_gettext as _l

from faka.payments.gateways import enabled_gateways
from faka.web.access import operator_required
from faka.web.templating import nav_current

bp = Blueprint("operator", __name__, url_prefix="/operator")


# (endpoint, label) of the console's sections, shown in its navigation. Each route module
# adds its own entries when it is imported.
NAV: list[tuple[str, object]] = []

# The navigation shows the dashboard on its own, then the sections in these groups (each
# in NAV's order); a section no group names goes under the last one.
NAV_TOP = ("operator.dashboard",)
NAV_GROUPS: tuple[tuple[object, tuple[str, ...]], ...] = (
    (
        _l("Money"),
        (
            "operator.withdrawals",
            "operator.refund_list",
            "operator.platform_ledger",
            "operator.reconciliation",
            "operator.notify_log",
            "operator.gateways",
        ),
    ),
    (
        _l("Risk control"),
        (
            "operator.merchants",
            "operator.complaint_queue",
            "operator.risk_monitor",
            "operator.blacklist_list",
            "operator.security_log",
        ),
    ),
    (_l("Content"), ("operator.moderation", "operator.categories", "operator.review_list")),
    (_l("Growth"), ("operator.growth_substores", "operator.growth_promoters", "operator.growth_settings")),
    (_l("Your account"), ("auth.two_factor", "passkeys.manage", "auth.sessions")),
    (
        _l("System"),
        ("operator.operations", "operator.site_settings", "operator.push_channels", "operator.audit_log"),
    ),
)


@dataclass
class NavGroup:
    label: object  # None: the links stand alone (the dashboard)
    links: list[tuple[str, object, str | None]]  # (href, label, aria-current)

    @property
    def current(self) -> bool:
        return any(here for _href, _label, here in self.links)


def console_nav() -> list[NavGroup]:
    """The console's navigation for this request, its current page marked (nav_current)."""
    sections = [(endpoint, label) for endpoint, label in NAV if endpoint in current_app.view_functions]
    named = set(NAV_TOP).union(*(endpoints for _label, endpoints in NAV_GROUPS))
    unnamed = tuple(endpoint for endpoint, _label in sections if endpoint not in named)
    (last_label, last_endpoints), others = NAV_GROUPS[-1], NAV_GROUPS[:-1]
    navigation = []
    for group_label, endpoints in ((None, NAV_TOP), *others, (last_label, last_endpoints + unnamed)):
        hrefs = [(url_for(endpoint), label) for endpoint, label in sections if endpoint in endpoints]
        if hrefs:
            navigation.append(NavGroup(group_label, [(href, label, nav_current(href)) for href, label in hrefs]))
    return navigation


def sandbox_enabled() -> bool:
    """Whether buyers can pay with the sandbox gateway, which marks any order paid without
    money: every console page says so while it is on."""
    return any(name == "sandbox" for name, _label in enabled_gateways())


@bp.app_context_processor
def console_navigation():
    return {"console_nav": console_nav, "sandbox_enabled": sandbox_enabled}


@bp.before_request
@operator_required
def require_operator():
    """Every console page needs an operator with two-factor authentication."""


# The route modules attach their views to `bp`; the navigation follows this order.
from faka.web.operator import console, merchants, moderation, complaints, reviews  # noqa: E402,F401,I001
from faka.web.operator import risk  # noqa: E402,F401,I001
from faka.web.operator import settlement, payments, site, categories  # noqa: E402,F401,I001
from faka.web.operator import push  # noqa: E402,F401,I001
from faka.web.operator import growth  # noqa: E402,F401,I001

# The operator's own account pages live with every account's (auth, passkeys).
NAV.extend(
    [
        ("auth.two_factor", _l("Two-factor authentication")),
        ("passkeys.manage", _l("Passkeys")),
        ("auth.sessions", _l("Signed-in devices")),
    ]
)
