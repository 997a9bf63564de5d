"""The merchant's checkout fields: what a product asks the buyer."""
from faka.blueprints.merchant import bp  # noqa: F401
