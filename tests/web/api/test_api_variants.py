"""Variants (规格) through the API: the back office's variants service behind JSON, keys
per variant, and the variant an order was for."""

from flask import current_app
from sqlalchemy import select

from api.conftest import error_code
from conftest import count, reload
from faka.catalog import variants
from faka.catalog.models import Product, ProductVariant
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey
from faka.orders import checkout
from faka.platform.settings import set_setting

NEW_PRODUCT = {"title": "Google Play card", "price": 5000}


def offered(product: Product) -> list[tuple]:
    return [(v.name, v.name_en, v.price, v.max_per_order) for v in reload(product).live_variants]


def test_a_product_gets_variants_and_shows_them(api, make_product):
    product = make_product(keys=2, price=5000, max_per_order=5)
    [only] = api.get(f"/api/v1/products/{product.slug}").get_json()["variants"]
    assert (only["name"], only["price"], only["stock"]["available"]) == ("", 5000, 2)

    # The one variant has no name: the second needs it named too.
    unnamed = api.post(f"/api/v1/products/{product.slug}/variants", json={"name": "¥100", "price": 9800})
    assert unnamed.status_code == 422 and error_code(unnamed) == "invalid_variant"
    assert "first_name" in unnamed.get_json()["error"]["fields"]
    assert offered(product) == [("", None, 5000, 5)]

    added = api.post(
        f"/api/v1/products/{product.slug}/variants",
        json={"name": "¥100", "name_en": "CNY 100", "price": 9800, "first_name": "¥50", "max_per_order": 3},
    )
    assert added.status_code == 201
    body = added.get_json()
    assert added.headers["Location"] == f"/api/v1/products/{product.slug}/variants/{body['key']}"
    assert (body["name"], body["price"], body["position"], body["stock"]["available"]) == ("¥100", 9800, 1, 0)
    assert offered(product) == [("¥50", None, 5000, 5), ("¥100", "CNY 100", 9800, 3)]

    answer = api.get(f"/api/v1/products/{product.slug}").get_json()
    assert (answer["price"], answer["price_max"]) == (5000, 9800)
    assert answer["min_per_order"] is answer["tiers"] is answer["low_stock_threshold"] is None
    assert [(v["name"], v["stock"]["available"]) for v in answer["variants"]] == [("¥50", 2), ("¥100", 0)]
    listed = api.get("/api/v1/products").get_json()["items"][0]
    assert listed["variants"] == answer["variants"]

    # The product's own figures now belong to each variant.
    refused = api.patch(f"/api/v1/products/{product.slug}", json={"price": 1, "title": "Renamed"})
    assert refused.status_code == 422 and error_code(refused) == "has_variants"
    assert set(refused.get_json()["error"]["fields"]) == {"price"}
    assert reload(product).title == "Test product"
    assert api.patch(f"/api/v1/products/{product.slug}", json={"title": "Renamed"}).status_code == 200


def test_change_move_and_delete_a_variant(api, make_product):
    product = make_product(keys=0, price=5000)
    small = product.variants[0]
    key = variants.add_variant(
        product.merchant_id, product.slug, variants.VariantDraft(name="¥100", price=9800), first_name="¥50"
    ).key
    url = f"/api/v1/products/{product.slug}/variants/{key}"

    changed = api.patch(url, json={"price": 9500, "tiers": [{"min_quantity": 3, "unit_price": 9000}]})
    assert changed.status_code == 200
    assert (changed.get_json()["price"], changed.get_json()["tiers"]) == (
        9500,
        [{"min_quantity": 3, "unit_price": 9000}],
    )
    assert changed.get_json()["name"] == "¥100"  # kept: not sent
    same_name = api.patch(url, json={"name": "¥50"})
    assert same_name.status_code == 422 and same_name.get_json()["error"]["fields"] == {
        "name": ["Another variant of this product is already called “¥50”."]
    }

    moved = api.post(f"{url}/move", json={"direction": "up"})
    assert [v["name"] for v in moved.get_json()["items"]] == ["¥100", "¥50"]
    assert [v["name"] for v in api.get(f"/api/v1/products/{product.slug}/variants").get_json()["items"]] == [
        "¥100",
        "¥50",
    ]

    import_keys(db.session.execute(select(ProductVariant).where(ProductVariant.key == key)).scalar_one(), "K-1")
    assert api.delete(url).status_code == 204
    assert api.get(url).status_code == 404
    assert count(CardKey, CardKey.status == CardKey.VOID) == 1
    last = api.delete(f"/api/v1/products/{product.slug}/variants/{small.key}")
    assert last.status_code == 422 and error_code(last) == "last_variant"
    assert reload(small).deleted_at is None


def test_a_prohibited_variant_name_sends_the_product_to_moderation(api, make_product):
    product = make_product(keys=0)
    set_setting("prohibited_words", "cracked")
    added = api.post(
        f"/api/v1/products/{product.slug}/variants", json={"name": "cracked", "price": 100, "first_name": "normal"}
    )
    assert added.status_code == 201
    product_answer = api.get(f"/api/v1/products/{product.slug}").get_json()
    assert (product_answer["moderation"], product_answer["moderation_reason"]) == ("pending", "cracked")


def test_keys_go_to_the_variant_named(api, make_product):
    product = make_product(keys=0)
    keys_url = f"/api/v1/products/{product.slug}/keys"
    # One variant: no need to name it.
    assert api.post(keys_url, json={"keys": ["ONE-1"]}).get_json()["stock"]["available"] == 1
    small = product.variants[0]
    big = variants.add_variant(
        product.merchant_id, product.slug, variants.VariantDraft(name="¥200", price=19500), first_name="¥50"
    )

    unnamed = api.post(keys_url, json={"keys": ["TWO-1"]})
    assert unnamed.status_code == 422 and error_code(unnamed) == "variant_required"
    assert unnamed.get_json()["error"]["fields"] == {"variant": ["Choose the variant these keys are for."]}
    assert api.post(keys_url, json={"keys": ["TWO-1"], "variant": "nope"}).status_code == 422
    assert api.get(keys_url).status_code == 422
    assert count(CardKey) == 1

    imported = api.post(keys_url, json={"keys": ["TWO-1", "ONE-1"], "variant": big.key})
    assert imported.status_code == 201
    body = imported.get_json()
    assert (body["added"], body["already_in_stock"], body["stock"]["available"]) == (1, 1, 1)
    assert api.get(f"{keys_url}?variant={small.key}").get_json()["available"] == 1

    voided = api.post(f"{keys_url}/void", json={"keys": ["ONE-1"], "variant": big.key})
    assert voided.get_json()["voided"] == 0
    voided = api.post(f"{keys_url}/void", json={"keys": ["ONE-1"], "variant": small.key})
    assert voided.get_json() == {"voided": 1, "stock": {"available": 0, "reserved": 0, "sold": 0, "void": 1}}


def test_another_merchants_variants_are_404(api, other_product):
    key = other_product.variants[0].key
    base = f"/api/v1/products/{other_product.slug}"
    for answer in (
        api.get(f"{base}/variants"),
        api.get(f"{base}/variants/{key}"),
        api.patch(f"{base}/variants/{key}", json={"price": 1}),
        api.delete(f"{base}/variants/{key}"),
        api.post(f"{base}/variants/{key}/move", json={"direction": "up"}),
        api.post(f"{base}/variants", json={"name": "x", "price": 1, "first_name": "y"}),
        api.post(f"{base}/keys", json={"keys": ["X"], "variant": key}),
    ):
        assert answer.status_code == 404
    assert offered(other_product) == [("", None, 777, 10)]


def test_orders_carry_the_variant(api, make_product, pay):
    product = make_product(keys=0, price=5000)
    big = variants.add_variant(
        product.merchant_id, product.slug, variants.VariantDraft(name="¥200", price=19500), first_name="¥50"
    )
    import_keys(big, "BIG-1")
    with current_app.test_request_context():
        order = checkout.place_order(product.slug, 1, "buyer@example.com", "secret-1", variant_key=big.key)
    pay(order)
    listed = api.get("/api/v1/orders").get_json()["items"][0]
    assert listed["variant"] == {"key": big.key, "name": "¥200"} and listed["total"] == 19500
    assert api.get(f"/api/v1/orders/{order.number}").get_json()["variant"] == {"key": big.key, "name": "¥200"}


def test_an_order_of_a_product_without_a_choice_names_no_variant(api, product, place, pay):
    order = place(product)
    pay(order)
    assert api.get(f"/api/v1/orders/{order.number}").get_json()["variant"] == {
        "key": product.variants[0].key,
        "name": None,
    }
