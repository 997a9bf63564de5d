"""Operator console: site (being built)."""
from faka.blueprints.operator import bp  # noqa: F401
