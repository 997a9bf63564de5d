"""Who is calling, and what they may do: the API key in `Authorization: Bearer fk_live_...`
(never the session cookie: the API reads no cookie and sets none).

`@requires("products:read")` on an operation: a valid key (401 otherwise: missing,
unknown, expired or revoked), used from an address its allow-list admits (403), within
its rate limit (API_RATE_LIMIT, one budget per key shared by every operation, counted by
Flask-Limiter: 429 with Retry-After), holding the scope (403 `insufficient_scope`; a
write scope includes its read). A write operation is refused (403 `merchant_frozen` or
`merchant_rejected`) while the operator has frozen or rejected the shop; reads still work.

`@public` marks an operation that needs no key (a buyer's program calls it).

Every call made with a known key, refused or not, is logged (faka/accounts/api_keys.py:
record_call) once its answer is ready.
"""

import logging
import math
import time
from functools import wraps

from flask import current_app, g, request
from flask_babel import gettext as _
from flask_babel import refresh
from limits import parse_many
from limits.storage import MemoryStorage
from limits.strategies import FixedWindowRateLimiter

from faka.accounts import api_keys
from faka.accounts.models import Merchant
from faka.extensions import db, limiter
from faka.platform.settings import cached_site_settings
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.resource import document
from faka.web.limits import address_bucket

log = logging.getLogger(__name__)

BEARER = [{"bearerAuth": []}]
# Redis down must not take the API down: limits are then counted in this process.
_fallback = FixedWindowRateLimiter(MemoryStorage())


def requires(scope: str):
    area, _sep, level = scope.partition(":")
    if area not in api_keys.AREAS or level not in (api_keys.READ, api_keys.WRITE):
        raise ValueError(f"unknown scope {scope!r}")

    def decorator(view):
        @wraps(view)
        def permitted(*args, **kwargs):
            if not api_keys.has_scope(g.api_key, scope):
                raise ApiError(403, "insufficient_scope", _("This key does not have the %(scope)s scope.", scope=scope))
            if level == api_keys.WRITE:
                refuse_writes_of_closed_shop()
            return view(*args, **kwargs)

        # Counted once the key is known, before its scope is looked at: a refused call counts too.
        limited = per_key_limit(permitted)

        @wraps(view)
        def wrapped(*args, **kwargs):
            authenticate()
            return limited(*args, **kwargs)

        document(wrapped, responses=(400, 401, 403, 429), security=BEARER, extensions={"x-scope": scope})
        return wrapped

    return decorator


def public(view):
    """An operation any program may call without a key (it limits its callers itself)."""
    document(view, responses=(400,), security=[])
    return view


def authenticate():
    """The calling key, checked, with its merchant in g.merchant; or an ApiError."""
    header = request.headers.get("Authorization", "")
    scheme, _sep, token = header.strip().partition(" ")
    ip = request.remote_addr or ""
    if _too_many_failures(ip):
        raise ApiError(
            429,
            "rate_limited",
            _("Too many requests with invalid keys from your address. Wait and try again."),
            headers={"Retry-After": str(_failure_wait(ip))},
        )
    if scheme.lower() != "bearer" or not token.strip():
        _count_failure(ip)
        raise ApiError(401, "unauthorized", headers={"WWW-Authenticate": 'Bearer realm="faka"'})
    key = api_keys.find_key(token.strip())
    if key is None:
        _count_failure(ip)
        raise ApiError(
            401,
            "invalid_key",
            _("This API key does not exist."),
            headers={"WWW-Authenticate": 'Bearer realm="faka", error="invalid_token"'},
        )
    # From here on the call is the key's: logged, and answered in its owner's language.
    g.api_key_id, g.api_merchant_id = key.id, key.merchant_id
    g.language = key.language if key.language in current_app.config["LANGUAGES"] else g.language
    refresh()
    state = api_keys.key_state(key)
    # A refused key (revoked, expired, or used from elsewhere) counts against the caller's
    # address like a wrong one: a leaked key tried again and again is throttled, not
    # answered (and logged) without end.
    if state != api_keys.ACTIVE or not api_keys.address_allowed(key, ip):
        _count_failure(ip)
    if state == api_keys.REVOKED:
        raise ApiError(
            401,
            "key_revoked",
            _("This API key was revoked."),
            headers={"WWW-Authenticate": 'Bearer realm="faka", error="invalid_token"'},
        )
    if state == api_keys.EXPIRED:
        raise ApiError(
            401,
            "key_expired",
            _("This API key has expired."),
            headers={"WWW-Authenticate": 'Bearer realm="faka", error="invalid_token"'},
        )
    if not api_keys.address_allowed(key, ip):
        raise ApiError(
            403,
            "address_not_allowed",
            _("This key may not be used from %(address)s: see its allowed addresses.", address=ip),
        )
    g.api_key = key
    g.merchant = db.session.get(Merchant, key.merchant_id)
    return key


def refuse_writes_of_closed_shop() -> None:
    status = g.merchant.status
    if status == Merchant.FROZEN:
        raise ApiError(
            403, "merchant_frozen", _("Your shop is frozen: the API only reads until the operator unfreezes it.")
        )
    if status == Merchant.REJECTED:
        raise ApiError(
            403,
            "merchant_rejected",
            _("Your qualification was rejected: the API only reads until you submit it again and it is approved."),
        )


# -- the language of an answer ----------------------------------------------------------


def choose_language() -> None:
    """Before the key is known (or when there is none): the language the request asks for
    (Accept-Language), else the site's. authenticate() then switches to the key's."""
    languages = current_app.config["LANGUAGES"]
    asked = request.accept_languages.best_match([code.replace("_", "-") for code in languages] + ["zh"])
    if asked == "zh":
        asked = "zh-CN"
    chosen = asked.replace("-", "_") if asked else cached_site_settings().get("default_language")
    g.language = chosen if chosen in languages else current_app.config["BABEL_DEFAULT_LOCALE"]
    refresh()


# -- rate limits ------------------------------------------------------------------------


def _strategy_call(method: str, item, *identifiers):
    try:
        return getattr(limiter.limiter, method)(item, *identifiers)
    except Exception:  # noqa: BLE001 - the storage (Redis) is unreachable: count in this process
        log.warning("rate limit storage unreachable; counting API limits in memory", exc_info=True)
        return getattr(_fallback, method)(item, *identifiers)


def _failure_items():
    return parse_many(current_app.config["API_AUTH_FAILURE_LIMIT"])


def _too_many_failures(ip: str) -> bool:
    return any(not _strategy_call("test", item, "api-auth-failure", address_bucket(ip)) for item in _failure_items())


def _count_failure(ip: str) -> None:
    for item in _failure_items():
        _strategy_call("hit", item, "api-auth-failure", address_bucket(ip))


def _failure_wait(ip: str) -> int:
    bucket = address_bucket(ip)
    return max(
        max(1, math.ceil(_strategy_call("get_window_stats", item, "api-auth-failure", bucket).reset_time - time.time()))
        for item in _failure_items()
    )


def _per_key_limit() -> str:
    return current_app.config["API_RATE_LIMIT"]


def _calling_key() -> str:
    return str(g.api_key.id)


# One budget per key for every operation (Flask-Limiter, in Redis when there is one).
per_key_limit = limiter.shared_limit(_per_key_limit, scope="api-key", key_func=_calling_key)


def rate_headers(response) -> None:
    hit = limiter.current_limit if "api_key" in g else None
    if hit is not None:
        response.headers["X-RateLimit-Limit"] = str(hit.limit.amount)
        response.headers["X-RateLimit-Remaining"] = str(max(0, hit.remaining))
        response.headers["X-RateLimit-Reset"] = str(max(0, int(hit.reset_at - time.time())))


# -- the call log -----------------------------------------------------------------------


def log_call(response) -> None:
    """Record the call of a known key, whatever its answer. A failure to record is logged,
    never turned into the caller's error."""
    if "api_key_id" not in g:
        return
    try:
        db.session.rollback()  # only ends the request's reads: services commit their own writes
        api_keys.record_call(
            g.api_key_id, g.api_merchant_id, request.method, request.path, response.status_code, request.remote_addr
        )
    except Exception:  # noqa: BLE001 - the answer is ready; losing a log line must not change it
        db.session.rollback()
        log.exception("could not record an API call of key %s", g.api_key_id)
