"""The products and checkout-fields resources: the back office's services behind JSON."""

from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import count, reload
from faka.catalog.models import DELIVERY_FIXED, CheckoutField, Product
from faka.extensions import db
from faka.platform.settings import set_setting

NEW_PRODUCT = {"title": "Steam ¥50 card", "price": 4800}


def create(api, category, **fields):
    return api.post("/api/v1/products", json={**NEW_PRODUCT, "category_id": category.id, **fields})


# -- products -------------------------------------------------------------------------


def test_list_pages_through_the_merchants_products_oldest_first_with_stock(api, make_product, other_product):
    first = make_product(keys=3, title="First")
    second = make_product(keys=0, title="Second")
    third = make_product(keys=1, title="Third")

    page = api.get("/api/v1/products?limit=2")
    assert page.status_code == 200
    body = page.get_json()
    assert [p["title"] for p in body["items"]] == ["First", "Second"]
    assert body["items"][0]["id"] == first.slug
    assert body["items"][0]["stock"] == {"available": 3, "reserved": 0, "sold": 0, "void": 0}
    assert body["items"][0]["price"] == 1000 and body["items"][0]["currency"] == "CNY"

    rest = api.get(f"/api/v1/products?limit=2&cursor={body['next_cursor']}").get_json()
    assert [p["id"] for p in rest["items"]] == [third.slug]
    assert rest["next_cursor"] is None
    assert second.slug in page.get_data(as_text=True)
    assert other_product.slug not in page.get_data(as_text=True) + str(rest)


def test_a_cursor_that_is_not_ours_is_a_400(api):
    answer = api.get("/api/v1/products?cursor=not-a-cursor")
    assert answer.status_code == 400
    assert error_code(answer) == "invalid_cursor"
    assert "cursor" in answer.get_json()["error"]["fields"]


def test_read_a_product_and_another_merchants_is_404_like_a_missing_one(api, product, other_product):
    mine = api.get(f"/api/v1/products/{product.slug}")
    assert mine.status_code == 200
    assert mine.get_json()["title"] == product.title
    assert mine.get_json()["has_fixed_content"] is False

    theirs = api.get(f"/api/v1/products/{other_product.slug}")
    missing = api.get("/api/v1/products/0123456789abcdef")
    assert theirs.status_code == missing.status_code == 404
    assert theirs.get_json() == missing.get_json() == {"error": {"code": "not_found", "message": "Not found."}}


def test_create_a_product(api, category):
    answer = create(api, category, tiers=[{"min_quantity": 5, "unit_price": 4500}], max_per_order=20)
    assert answer.status_code == 201
    body = answer.get_json()
    assert answer.headers["Location"] == f"/api/v1/products/{body['id']}"
    product = db.session.execute(select(Product).where(Product.slug == body["id"])).scalar_one()
    [variant] = product.variants
    assert (product.title, product.price, variant.price, variant.max_per_order) == ("Steam ¥50 card", 4800, 4800, 20)
    assert [(t.min_quantity, t.unit_price) for t in variant.tiers] == [(5, 4500)]
    assert body["max_per_order"] == 20 and body["tiers"] == [{"min_quantity": 5, "unit_price": 4500}]
    assert [(v["key"], v["name"], v["price"]) for v in body["variants"]] == [(variant.key, "", 4800)]
    assert body["moderation"] == "approved" and body["visible"] is True
    assert body["stock"] == {"available": 0, "reserved": 0, "sold": 0, "void": 0}


def test_a_product_is_refused_with_the_back_offices_message_and_nothing_is_saved(api, category):
    fixed = create(api, category, delivery_type=DELIVERY_FIXED)
    assert fixed.status_code == 422
    assert fixed.get_json()["error"] == {
        "code": "invalid_product",
        "message": "A fixed-delivery product needs the content every buyer receives.",
    }
    quantities = create(api, category, min_per_order=5, max_per_order=2)
    assert quantities.get_json()["error"]["message"] == "Quantities per order must satisfy 1 ≤ minimum ≤ maximum ≤ 100."
    no_category = api.post("/api/v1/products", json={**NEW_PRODUCT, "category_id": 999999})
    assert no_category.get_json()["error"]["message"] == "Choose a category."
    laxer = create(api, category, risk_hold_at=999)
    assert laxer.status_code == 422 and error_code(laxer) == "laxer_than_site"
    assert count(Product) == 0


def test_invalid_input_names_each_field(api, category):
    answer = api.post(
        "/api/v1/products", json={"title": "Bad\u0000title", "price": "12", "category_id": category.id, "colour": "red"}
    )
    assert answer.status_code == 422
    error = answer.get_json()["error"]
    assert error["code"] == "invalid"
    assert set(error["fields"]) == {"title", "price", "colour"}
    assert error["fields"]["colour"] == ["Unknown field."]
    assert count(Product) == 0


def test_json_that_does_not_parse_is_a_400(api):
    answer = api.post("/api/v1/products", data="{not json", content_type="application/json")
    assert answer.status_code == 400
    assert error_code(answer) == "bad_request"


def test_a_prohibited_word_sends_the_product_to_moderation(api, category):
    set_setting("prohibited_words", "cracked")
    answer = create(api, category, description_md="A cracked copy")
    assert answer.status_code == 201
    assert answer.get_json()["moderation"] == "pending"
    assert answer.get_json()["moderation_reason"] == "cracked"


def test_an_update_changes_only_what_it_sends(api, category):
    created = create(
        api,
        category,
        delivery_type=DELIVERY_FIXED,
        fixed_content="THE-SHARED-CONTENT",
        tiers=[{"min_quantity": 3, "unit_price": 4000}],
        position=7,
    ).get_json()
    assert "THE-SHARED-CONTENT" not in str(created)

    answer = api.patch(f"/api/v1/products/{created['id']}", json={"price": 5000, "visible": False})
    assert answer.status_code == 200
    product = reload(db.session.execute(select(Product).where(Product.slug == created["id"])).scalar_one())
    assert (product.price, product.visible, product.position, product.title) == (5000, False, 7, "Steam ¥50 card")
    assert [(t.min_quantity, t.unit_price) for t in product.variants[0].tiers] == [(3, 4000)]
    assert product.fixed_content_ciphertext is not None
    assert answer.get_json()["has_fixed_content"] is True


def test_another_merchants_product_cannot_be_changed(api, other_product):
    for answer in (
        api.patch(f"/api/v1/products/{other_product.slug}", json={"price": 1}),
        api.post(f"/api/v1/products/{other_product.slug}/hide"),
    ):
        assert answer.status_code == 404
    product = reload(other_product)
    assert (product.price, product.visible) == (777, True)


def test_hide_and_show(api, product):
    assert api.post(f"/api/v1/products/{product.slug}/hide").get_json()["visible"] is False
    assert reload(product).visible is False
    assert api.post(f"/api/v1/products/{product.slug}/show").get_json()["visible"] is True
    assert reload(product).visible is True


def test_categories_lists_what_a_new_product_may_be_put_in(api, category):
    answer = api.get("/api/v1/categories")
    assert answer.get_json() == {"items": [{"id": category.id, "name": "游戏点卡", "name_en": "Game cards"}]}


def test_a_read_only_key_cannot_write(client, make_key, category):
    reader = ApiClient(client, make_key(scopes=["products:read"]))
    assert reader.get("/api/v1/products").status_code == 200
    answer = create(reader, category)
    assert answer.status_code == 403
    assert error_code(answer) == "insufficient_scope"
    assert count(Product) == 0


# -- checkout fields ------------------------------------------------------------------


def test_checkout_fields_add_read_change_move_and_remove(api, product):
    base = f"/api/v1/products/{product.slug}/fields"
    uid = api.post(base, json={"label": "游戏 UID", "kind": "number", "help_text": "In the game's settings"})
    assert uid.status_code == 201
    server = api.post(base, json={"label": "Server", "kind": "choice", "choices": ["Asia", "Europe"]}).get_json()
    assert server["choices"] == ["Asia", "Europe"] and server["position"] == 1
    uid_id = uid.get_json()["id"]
    assert uid.headers["Location"] == f"{base}/{uid_id}"

    assert api.get(f"{base}/{uid_id}").get_json()["label"] == "游戏 UID"
    changed = api.patch(f"{base}/{uid_id}", json={"required": False}).get_json()
    assert (changed["required"], changed["kind"], changed["help_text"]) == (False, "number", "In the game's settings")

    moved = api.post(f"{base}/{server['id']}/move", json={"direction": "up"}).get_json()
    assert [f["label"] for f in moved["items"]] == ["Server", "游戏 UID"]

    assert api.delete(f"{base}/{uid_id}").status_code == 204
    assert [f["id"] for f in api.get(base).get_json()["items"]] == [server["id"]]
    assert count(CheckoutField) == 1


def test_a_field_is_refused_with_the_back_offices_message_naming_the_input(api, product):
    base = f"/api/v1/products/{product.slug}/fields"
    unsafe = api.post(base, json={"label": "Code", "pattern": "(a+)+$"})
    assert unsafe.status_code == 422
    error = unsafe.get_json()["error"]
    assert error["code"] == "invalid_field"
    assert list(error["fields"]) == ["pattern"]
    for _ in range(5):
        api.post(base, json={"label": "Q"})
    too_many = api.post(base, json={"label": "Sixth"})
    assert error_code(too_many) == "too_many_fields"
    assert count(CheckoutField) == 5


def test_another_merchants_fields_are_not_found(api, other_product):
    field = CheckoutField(key="f" * 16, product_id=other_product.id, label="Theirs")
    db.session.add(field)
    db.session.commit()
    base = f"/api/v1/products/{other_product.slug}/fields"
    assert api.get(base).status_code == 404
    assert api.get(f"{base}/{field.key}").status_code == 404
    assert api.patch(f"{base}/{field.key}", json={"label": "Mine now"}).status_code == 404
    assert api.delete(f"{base}/{field.key}").status_code == 404
    assert reload(field).label == "Theirs"


def test_an_update_keeps_what_the_api_does_not_show(api, make_product):
    product = make_product(keys=0, delivery_type="remote", remote_url="https://keys.example.com/deliver")
    answer = api.patch(f"/api/v1/products/{product.slug}", json={"price": 2500, "activation_limit": 3})
    assert answer.status_code == 200, answer.get_json()
    saved = reload(product)
    assert (saved.price, saved.delivery_type, saved.remote_url) == (2500, "remote", "https://keys.example.com/deliver")
    assert answer.get_json()["activation_limit"] == 3
