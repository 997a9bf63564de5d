"""The merchant's product images: cover and gallery."""
from faka.blueprints.merchant import bp  # noqa: F401
