"""Operator console: settlement (being built)."""
from faka.blueprints.operator import bp  # noqa: F401
