"""Rate limits shared by several blueprints."""

import ipaddress

from flask import current_app, request

from faka.extensions import limiter
from faka.orders.lookup import order_status


def address_bucket(address: str) -> str:
    """The part of a caller's address a per-address limit counts: an IPv4 address, or
    the /64 network of an IPv6 one (a single subscriber usually holds a whole /64, and
    could change address on every request inside it)."""
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return address
    if isinstance(ip, ipaddress.IPv6Address):
        if ip.ipv4_mapped is not None:
            return str(ip.ipv4_mapped)
        return str(ipaddress.ip_network(f"{ip}/64", strict=False))
    return str(ip)


def client_bucket() -> str:
    """address_bucket() of this request's client, as a Flask-Limiter key function."""
    return address_bucket(request.remote_addr or "")


def _token_miss_limit() -> str:
    return current_app.config["RATELIMIT_TOKEN_MISSES"]


def _missed(response) -> bool:
    return response.status_code == 404


def _token_exists() -> bool:
    return order_status(request.view_args["token"]) is not None


# Buyers' order, pay and complaint pages are found by unguessable tokens. Asking again and
# again for tokens that do not exist is guessing: one budget per address for all those
# pages, counting only the answers that found nothing. A token that exists is never
# counted nor refused, so a buyer behind an address shared with a guesser (a campus, a
# carrier's NAT) still opens their own pages, and their polling never uses the budget up.
token_misses = limiter.shared_limit(
    _token_miss_limit, scope="token-miss", deduct_when=_missed, exempt_when=_token_exists
)
