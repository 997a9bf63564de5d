"""The operator console: one blueprint, its routes grouped by area in this package."""
from flask import Blueprint

from faka.blueprints.access import operator_required

bp = Blueprint("operator", __name__, url_prefix="/operator")


# (endpoint, label) of the console's sections, shown in its navigation. Each route module
# adds its own entries when it is imported.
NAV: list[tuple[str, object]] = []


@bp.app_context_processor
def console_navigation():
    from flask import current_app

    return {"console_nav": lambda: [(e, label) for e, label in NAV if e in current_app.view_functions]}


@bp.before_request
@operator_required
def require_operator():
    """Every console page needs an operator with two-factor authentication."""


# The route modules attach their views to `bp`; the navigation follows this order.
from faka.blueprints.operator import console, merchants, moderation, complaints, reviews  # noqa: E402,F401,I001
from faka.blueprints.operator import risk  # noqa: E402,F401,I001
from faka.blueprints.operator import settlement, payments, site, categories  # noqa: E402,F401,I001
