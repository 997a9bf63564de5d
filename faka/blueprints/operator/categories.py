"""The operator's categories: create, rename, order, hide, delete."""
from faka.blueprints.operator import bp  # noqa: F401
