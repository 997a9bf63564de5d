"""The coupons resource: the back office's coupon service behind JSON."""

from datetime import timedelta

from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import count, reload
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders import coupons
from faka.orders.models import Coupon

VIP = {"code": "vip10", "kind": "percent", "value": 1000}


def test_create_a_coupon_for_one_product(api, make_product):
    product = make_product(keys=1)
    expires = (utcnow() + timedelta(days=7)).replace(microsecond=0)
    answer = api.post(
        "/api/v1/coupons",
        json={**VIP, "product": product.slug, "min_amount": 500, "usage_limit": 3, "expires_at": expires.isoformat()},
    )
    assert answer.status_code == 201
    body = answer.get_json()
    assert answer.headers["Location"] == f"/api/v1/coupons/{body['id']}"
    coupon = db.session.execute(select(Coupon)).scalar_one()
    assert (coupon.code, coupon.kind, coupon.value, coupon.product_id, coupon.min_amount, coupon.usage_limit) == (
        "VIP10",
        "percent",
        1000,
        product.id,
        500,
        3,
    )
    assert coupon.expires_at == expires
    assert body["product"] == product.slug and body["active"] is True and body["used_count"] == 0
    assert api.get(f"/api/v1/coupons/{coupon.id}").get_json() == body


def test_a_coupon_the_back_office_would_refuse_is_refused_with_its_message(api, other_product):
    def refused(**fields):
        answer = api.post("/api/v1/coupons", json={**VIP, **fields})
        assert answer.status_code == 422, answer.get_json()
        return answer.get_json()["error"]

    assert refused(value=10000)["message"] == (
        "A percentage coupon must take off more than 0 % and less than 100 % (orders cannot be free)."
    )
    assert refused(code="x")["message"] == "A coupon code is 3 to 32 letters, digits, hyphens or underscores."
    assert refused(kind="fixed", value=0)["message"] == "A fixed coupon must take off an amount greater than zero."
    assert refused(usage_limit=0)["code"] == "coupon_settings_invalid"
    assert refused(expires_at=(utcnow() - timedelta(minutes=1)).isoformat())["message"] == (
        "The expiry time must be in the future."
    )
    foreign = refused(product=other_product.slug)
    assert foreign == {
        "code": "coupon_settings_invalid",
        "message": "Choose one of your own products, or all of them.",
        "fields": {"product": ["Choose one of your own products, or all of them."]},
    }
    assert set(refused(kind="half", value=-1, extra=1)["fields"]) == {"kind", "value", "extra"}
    assert count(Coupon) == 0

    assert api.post("/api/v1/coupons", json=VIP).status_code == 201
    taken = refused(code="VIP10")
    assert taken == {"code": "coupon_code_taken", "message": "You already have a coupon with this code."}


def test_list_pages_oldest_first_and_filters_by_active(api, merchant, other_merchant):
    made = [coupons.create_coupon(merchant.id, f"CODE{i}", "fixed", 100 * (i + 1)) for i in range(3)]
    coupons.deactivate_coupon(made[1].id, merchant.id)
    coupons.create_coupon(other_merchant.id, "THEIRS-7C1E", "fixed", 100)

    page = api.get("/api/v1/coupons?limit=2").get_json()
    assert [c["code"] for c in page["items"]] == ["CODE0", "CODE1"]
    rest = api.get(f"/api/v1/coupons?cursor={page['next_cursor']}").get_json()
    assert [c["code"] for c in rest["items"]] == ["CODE2"] and rest["next_cursor"] is None
    assert [c["code"] for c in api.get("/api/v1/coupons?active=true").get_json()["items"]] == ["CODE0", "CODE2"]
    assert [c["code"] for c in api.get("/api/v1/coupons?active=false").get_json()["items"]] == ["CODE1"]
    assert "THEIRS" not in str(page) + str(rest)


def test_another_merchants_coupon_is_404_like_a_missing_one(api, other_merchant):
    theirs = coupons.create_coupon(other_merchant.id, "THEIRS", "fixed", 100)
    for answer in (
        api.get(f"/api/v1/coupons/{theirs.id}"),
        api.patch(f"/api/v1/coupons/{theirs.id}", json={"active": False}),
        api.get("/api/v1/coupons/999999"),
        api.get(f"/api/v1/coupons/{2**62}"),  # more than a row id can be (PostgreSQL's integer)
        api.get(f"/api/v1/coupons/{2**70}"),
        api.get("/api/v1/coupons/first"),
    ):
        assert answer.status_code == 404 and error_code(answer) == "not_found"
    assert reload(theirs).active is True


def test_switch_a_coupon_off_and_change_its_limits(api, merchant, make_product, place):
    coupon = coupons.create_coupon(merchant.id, "SPRING", "fixed", 200, usage_limit=5)
    off = api.patch(f"/api/v1/coupons/{coupon.id}", json={"active": False})
    assert off.status_code == 200 and off.get_json()["active"] is False
    product = make_product(keys=2)
    from flask import current_app

    from faka.orders import checkout
    from faka.orders.coupons import CouponUnknown

    with current_app.test_request_context():
        try:
            checkout.place_order(product.slug, 1, "a@example.com", "secret-1", coupon_code="SPRING")
        except CouponUnknown:
            pass
        else:
            raise AssertionError("a switched-off coupon was accepted")

    changed = api.patch(f"/api/v1/coupons/{coupon.id}", json={"active": True, "usage_limit": None, "min_amount": 900})
    assert changed.status_code == 200
    coupon = reload(coupon)
    assert (coupon.active, coupon.usage_limit, coupon.min_amount, coupon.code, coupon.value) == (
        True,
        None,
        900,
        "SPRING",
        200,
    )
    refused = api.patch(f"/api/v1/coupons/{coupon.id}", json={"usage_limit": 0, "active": False})
    assert refused.status_code == 422
    assert refused.get_json()["error"]["message"] == "The usage limit must be at least 1, or left empty for no limit."
    assert reload(coupon).active is True and reload(coupon).usage_limit is None
    unknown = api.patch(f"/api/v1/coupons/{coupon.id}", json={"value": 1})
    assert unknown.status_code == 422 and unknown.get_json()["error"]["fields"] == {"value": ["Unknown field."]}


def test_writes_need_the_coupons_write_scope(client, make_key, merchant):
    coupon = coupons.create_coupon(merchant.id, "KEEP", "fixed", 100)
    reader = ApiClient(client, make_key(scopes=["coupons:read"]))
    assert reader.get("/api/v1/coupons").status_code == 200
    assert error_code(reader.post("/api/v1/coupons", json=VIP)) == "insufficient_scope"
    assert error_code(reader.patch(f"/api/v1/coupons/{coupon.id}", json={"active": False})) == "insufficient_scope"
    assert reload(coupon).active is True and count(Coupon) == 1


def test_a_retried_create_with_its_idempotency_key_creates_one_coupon(api):
    headers = {"Idempotency-Key": "coupon-1"}
    first = api.post("/api/v1/coupons", json=VIP, headers=headers)
    again = api.post("/api/v1/coupons", json=VIP, headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true" and again.headers["Location"] == first.headers["Location"]
    assert count(Coupon) == 1
    different = api.post("/api/v1/coupons", json={**VIP, "value": 2000}, headers=headers)
    assert different.status_code == 422 and error_code(different) == "idempotency_key_reused"
