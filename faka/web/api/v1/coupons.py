"""Coupons: list, read, create, and change or switch off. The same service as the back
office's coupon page (faka/orders/coupons.py): the same rules, the same messages. Amounts
are minor units and a percentage is in basis points (1000 = 10 %), as the service keeps
them (the back office's form takes yuan and percent)."""

from flask import g, url_for
from flask_babel import gettext as _

from faka.catalog import products
from faka.core.errors import NotFound
from faka.orders import coupons
from faka.orders.models import Coupon
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "coupons",
    __name__,
    description="Your discount codes, as on the back office's coupon page. A coupon takes a fixed amount or a "
    "percentage off an order's total; orders that used it keep their discount whatever happens to it later.",
)

LOCATION = {"Location": {"description": "The coupon's address in this API.", "schema": {"type": "string"}}}


def coupon_answer(coupon: Coupon, slugs: dict[int, str]) -> dict:
    return {
        "id": coupon.id,
        "code": coupon.code,
        "kind": coupon.kind,
        "value": coupon.value,
        "product": slugs.get(coupon.product_id) if coupon.product_id is not None else None,
        "min_amount": coupon.min_amount,
        "usage_limit": coupon.usage_limit,
        "used_count": coupon.used_count,
        "expires_at": coupon.expires_at,
        "active": coupon.active,
        "created_at": coupon.created_at,
    }


def _one(coupon: Coupon) -> dict:
    return coupon_answer(coupon, coupons.product_slugs([coupon]))


def _product_id(slug: str | None) -> int | None:
    """The id of the merchant's product `slug` for a coupon limited to it."""
    if slug is None:
        return None
    try:
        return products.get_product(g.merchant.id, slug).id
    except NotFound:
        message = _("Choose one of your own products, or all of them.")
        raise ApiError(422, "coupon_settings_invalid", message, {"product": [message]}) from None


@bp.get("/coupons")
@requires("coupons:read")
@bp.arguments(s.CouponArgsSchema, location="query")
@bp.response(200, s.CouponPageSchema)
def list_coupons(args):
    """List your coupons

    Oldest first, switched-off ones included unless `active` says otherwise.
    """
    page = page_of_query(coupons.coupons_query(g.merchant.id, args["active"]), Coupon.id, args["cursor"], args["limit"])
    slugs = coupons.product_slugs(page["items"])
    page["items"] = [coupon_answer(c, slugs) for c in page["items"]]
    return page


@bp.post("/coupons")
@requires("coupons:write")
@idempotent
@bp.arguments(s.CouponCreateSchema)
@bp.response(201, s.CouponSchema, headers=LOCATION)
def create_coupon(data):
    """Create a coupon

    It is switched on at once. A percentage stops short of 100 %, and a fixed coupon worth a whole order is refused
    for that order at checkout: orders cannot be free.
    """
    coupon = coupons.create_coupon(
        g.merchant.id,
        data["code"],
        data["kind"],
        data["value"],
        product_id=_product_id(data["product"]),
        min_amount=data["min_amount"],
        usage_limit=data["usage_limit"],
        expires_at=data["expires_at"],
    )
    return _one(coupon), 201, {"Location": url_for(".get_coupon", coupon_id=coupon.id)}


@bp.get("/coupons/<coupon_id>", parameters=s.id_parameter("coupon_id"))
@requires("coupons:read")
@bp.response(200, s.CouponSchema)
def get_coupon(coupon_id):
    """Read a coupon"""
    coupon_id = s.row_id(coupon_id)
    return _one(coupons.get_coupon(g.merchant.id, coupon_id))


@bp.patch("/coupons/<coupon_id>", parameters=s.id_parameter("coupon_id"))
@requires("coupons:write")
@bp.arguments(s.CouponUpdateSchema)
@bp.response(200, s.CouponSchema)
def update_coupon(data, coupon_id):
    """Change or switch off a coupon

    Send only what changes: `active` (false switches it off, as the back office's button does; true on again),
    `min_amount`, `usage_limit`, `expires_at`. Its code, kind and value stay: a different discount is a new coupon.
    """
    coupon_id = s.row_id(coupon_id)
    coupon = coupons.update_coupon(g.merchant.id, coupon_id, **data)
    return _one(coupon)
