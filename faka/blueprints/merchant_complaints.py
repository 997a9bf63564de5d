"""The merchant's complaints: the list, a case's thread, answers and offers."""
from faka.blueprints.merchant import bp  # noqa: F401
