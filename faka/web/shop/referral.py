"""`?ref=<code>` on any shop page: remember the promoter who sent the buyer.

The link's code goes into a first-party cookie for REFERRAL_DAYS (the last link clicked
wins), which checkout reads (faka/web/shop/checkout.py), and the visit is counted for the
promoter's figures. Both happen on the way out, after the page was rendered: the page
itself is the one every visitor gets from the page cache (faka/core/cache.py). An unknown
or frozen code, or a closed programme, leaves everything as it was.
"""

import logging

from flask import current_app, g, request
from sqlalchemy.exc import SQLAlchemyError

from faka.extensions import db
from faka.growth import affiliates
from faka.platform.retention import hash_ip
from faka.web import device
from faka.web.security import passive_request

log = logging.getLogger(__name__)

COOKIE = "faka_ref"
MAX_AGE = affiliates.REFERRAL_DAYS * 24 * 3600
# Back-office, sign-in, payment and API requests are no shop pages.
NOT_SHOP = frozenset({"merchant", "operator", "auth", "passkeys", "api_v1", "captcha", "health", "pay"})


def referral_code() -> str | None:
    """The code of the last promoter link this browser followed (checkout checks it)."""
    return request.cookies.get(COOKIE) or None


def _capture(response):
    code = request.args.get("ref")
    if (
        not code
        or request.method != "GET"
        or response.status_code != 200
        or request.blueprint in NOT_SHOP
        or passive_request()
    ):
        return response
    promoter = affiliates.active_promoter(code.strip().lower())
    if promoter is None:
        return response
    response.set_cookie(
        COOKIE,
        promoter.code,
        max_age=MAX_AGE,
        httponly=True,
        samesite="Lax",
        secure=request.is_secure or bool(current_app.config.get("SESSION_COOKIE_SECURE")),
    )
    visitor = device.device_hash()
    if g.get("device_new") and request.remote_addr:
        # No device cookie at all (a first visit, or a browser that keeps none): the
        # address stands for the visitor today. A browser with its cookie is counted by
        # it alone, so buyers sharing one address (carrier NAT) each count.
        visitor = hash_ip(request.remote_addr)
    slug = (request.view_args or {}).get("slug")
    try:
        affiliates.record_click(promoter.id, visitor, slug if isinstance(slug, str) else None)
    except SQLAlchemyError as exc:
        # A click is worth less than the page: the buyer gets it and the cookie anyway.
        db.session.rollback()
        log.warning("referral click not recorded: promoter %s, %s", promoter.id, type(exc).__name__)
    return response


def init_app(app) -> None:
    app.after_request(_capture)
