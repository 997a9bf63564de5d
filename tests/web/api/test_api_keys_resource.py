"""The keys resource: a product's stock through the API, counts only, never a key."""

from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import count, key_texts
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey


def stock_of(product) -> dict:
    """The product's keys by state, as the database holds them now."""
    db.session.commit()
    counts = {"available": 0, "reserved": 0, "sold": 0, "void": 0}
    for status in db.session.execute(select(CardKey.status).where(CardKey.product_id == product.id)).scalars():
        counts[status] += 1
    return counts


def test_an_import_reports_like_the_back_office_and_returns_no_key(api, make_product):
    product = make_product(keys=0)
    import_keys(product.variants[0], "K-EXISTING")
    batch = ["K-1", "K-2", "K-1", "K-EXISTING", "  ", " K-3 ", "x" * 2001]
    answer = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": batch})
    assert answer.status_code == 201
    assert answer.get_json() == {
        "added": 3,
        "duplicate_in_batch": 1,
        "already_in_stock": 1,
        "invalid": 1,
        "stock": {"available": 4, "reserved": 0, "sold": 0, "void": 0},
    }
    assert "K-" not in answer.get_data(as_text=True)
    assert stock_of(product)["available"] == 4


def test_a_batch_too_big_or_empty_is_refused_whole(api, make_product):
    product = make_product(keys=0)
    for keys in ([f"K-{i}" for i in range(2001)], []):
        answer = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": keys})
        assert answer.status_code == 422 and error_code(answer) == "invalid"
        assert "keys" in answer.get_json()["error"]["fields"]
    control = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": ["GOOD", "BAD\u0000KEY"]})
    assert control.status_code == 422
    assert count(CardKey) == 0


def test_counts_by_state(api, product, place):
    place(product, quantity=2)  # reserves two of its five keys
    answer = api.get(f"/api/v1/products/{product.slug}/keys")
    assert answer.get_json() == {"available": 3, "reserved": 2, "sold": 0, "void": 0}


def test_void_withdraws_available_keys_only(api, make_product, place):
    product = make_product(keys=0)
    import_keys(product.variants[0], "LEAKED-1\nLEAKED-2\nFINE-1")
    order = place(product, quantity=1)
    (reserved,) = key_texts(order)
    answer = api.post(
        f"/api/v1/products/{product.slug}/keys/void", json={"keys": ["LEAKED-1", "LEAKED-2", "NEVER-SEEN", reserved]}
    )
    assert answer.status_code == 200
    body = answer.get_json()
    voided_available = 2 if reserved == "FINE-1" else 1
    assert body["voided"] == voided_available
    assert body["stock"]["reserved"] == 1
    assert stock_of(product) == body["stock"]


def test_another_merchants_stock_is_not_found_and_untouched(api, other_product):
    before = stock_of(other_product)
    for answer in (
        api.get(f"/api/v1/products/{other_product.slug}/keys"),
        api.post(f"/api/v1/products/{other_product.slug}/keys", json={"keys": ["MINE-NOW"]}),
        api.post(f"/api/v1/products/{other_product.slug}/keys/void", json={"keys": ["OTHER-KEY-1"]}),
    ):
        assert answer.status_code == 404
        assert "OTHER-KEY" not in answer.get_data(as_text=True)
    assert stock_of(other_product) == before


def test_a_read_only_key_counts_but_does_not_import(client, make_key, product):
    reader = ApiClient(client, make_key(scopes=["keys:read"]))
    assert reader.get(f"/api/v1/products/{product.slug}/keys").status_code == 200
    answer = reader.post(f"/api/v1/products/{product.slug}/keys", json={"keys": ["NEW"]})
    assert answer.status_code == 403 and error_code(answer) == "insufficient_scope"
    assert count(CardKey) == 5


def test_an_import_sent_twice_with_its_idempotency_key_adds_once(api, make_product):
    product = make_product(keys=0)
    headers = {"Idempotency-Key": "import-2026-12-07-a"}
    first = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": ["A", "B"]}, headers=headers)
    again = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": ["A", "B"]}, headers=headers)
    assert first.get_json()["added"] == again.get_json()["added"] == 2
    assert again.headers["Idempotent-Replayed"] == "true"
    without = api.post(f"/api/v1/products/{product.slug}/keys", json={"keys": ["A", "B"]})
    assert without.get_json()["already_in_stock"] == 2
    assert count(CardKey) == 2
