"""The complaint desk: escalated cases to decide, and refunds to pay out by hand."""
from faka.blueprints.operator import NAV, bp  # noqa: F401
