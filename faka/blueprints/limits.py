"""Rate limits shared by several blueprints."""
from flask import current_app

from faka.extensions import limiter


def _token_miss_limit() -> str:
    return current_app.config["RATELIMIT_TOKEN_MISSES"]


def _missed(response) -> bool:
    return response.status_code == 404


# Buyers' order, pay and complaint pages are found by unguessable tokens. Asking again and
# again for tokens that do not exist is guessing: one budget per address for all those
# pages, counting only the answers that found nothing, so a buyer's own pages (and their
# polling) never use it up.
token_misses = limiter.shared_limit(_token_miss_limit, scope="token-miss", deduct_when=_missed)
