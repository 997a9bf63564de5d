"""Review moderation: hiding a review that should not count, with the reason."""
from faka.blueprints.operator import NAV, bp  # noqa: F401
