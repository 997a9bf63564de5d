"""The API's framework as a program meets it: keys and what they may do, the rate limit,
idempotency, JSON errors, the call log; and the HTML site left as it was."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import select

from api.conftest import ApiClient, bearer, error_code
from conftest import count, login, reload
from faka.accounts import api_keys
from faka.accounts.models import ApiCall, ApiIdempotencyKey, ApiKey, Merchant
from faka.catalog.models import Product
from faka.core import clock
from faka.extensions import db

NEW_PRODUCT = {"title": "Steam ¥50 card", "price": 4800}


def new_product(category, **fields):
    return {**NEW_PRODUCT, "category_id": category.id, **fields}


# -- who may call ----------------------------------------------------------------------


def test_a_call_without_a_key_is_refused_in_json(client):
    answer = client.get("/api/v1/products")
    assert answer.status_code == 401
    assert answer.content_type == "application/json"
    assert answer.get_json()["error"]["code"] == "unauthorized"
    assert answer.headers["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.parametrize(
    "header", ["Bearer fk_live_" + "x" * 43, "Bearer nonsense", "Basic dXNlcjpwYXNz", "Bearer ", "fk_live_abc"]
)
def test_a_key_that_is_not_one_is_refused(client, header):
    answer = client.get("/api/v1/products", headers={"Authorization": header})
    assert answer.status_code == 401
    assert error_code(answer) in ("unauthorized", "invalid_key")


def test_the_back_offices_session_cookie_is_not_a_key(client, merchant, product):
    login(client, merchant.user)
    assert client.get("/merchant/products").status_code == 200
    answer = client.get("/api/v1/products")
    assert answer.status_code == 401
    assert product.slug not in answer.get_data(as_text=True)


def test_an_api_answer_sets_no_cookie(api):
    answer = api.get("/api/v1/products")
    assert answer.status_code == 200
    assert "Set-Cookie" not in answer.headers
    assert answer.headers["Cache-Control"] == "no-store"


def test_a_revoked_key_stops_at_once(api, merchant):
    assert api.get("/api/v1/products").status_code == 200
    key = db.session.execute(select(ApiKey)).scalar_one()
    api_keys.revoke_key(merchant.id, key.id, merchant.user_id)
    answer = api.get("/api/v1/products")
    assert answer.status_code == 401 and error_code(answer) == "key_revoked"


def test_an_expired_key_is_refused(client, make_key, frozen_clock):
    api = ApiClient(client, make_key(expires_at=clock.now() + timedelta(days=1)))
    assert api.get("/api/v1/products").status_code == 200
    frozen_clock.advance(days=1, seconds=1)
    answer = api.get("/api/v1/products")
    assert answer.status_code == 401 and error_code(answer) == "key_expired"


def test_a_key_with_an_allow_list_works_only_from_its_addresses(client, make_key):
    api = ApiClient(client, make_key(allowed_ips="203.0.113.0/24 2001:db8::1"))
    refused = api.get("/api/v1/products")  # the test client comes from 127.0.0.1
    assert refused.status_code == 403
    assert error_code(refused) == "address_not_allowed"
    assert api.get("/api/v1/products", environ_base={"REMOTE_ADDR": "203.0.113.77"}).status_code == 200
    assert api.get("/api/v1/products", environ_base={"REMOTE_ADDR": "2001:db8::1"}).status_code == 200


def test_a_key_does_only_what_its_scopes_say_and_write_includes_read(client, make_key, product):
    keys_only = ApiClient(client, make_key(scopes=["keys:read"]))
    answer = keys_only.get("/api/v1/products")
    assert answer.status_code == 403
    assert answer.get_json()["error"] == {
        "code": "insufficient_scope",
        "message": "This key does not have the products:read scope.",
    }
    assert keys_only.get(f"/api/v1/products/{product.slug}/keys").status_code == 200
    writer = ApiClient(client, make_key(scopes=["products:write"]))
    assert writer.get("/api/v1/products").status_code == 200


def test_a_frozen_shop_reads_but_does_not_write(api, merchant, product, category):
    merchant.status = Merchant.FROZEN
    db.session.commit()
    assert api.get(f"/api/v1/products/{product.slug}").status_code == 200
    answer = api.post("/api/v1/products", json=new_product(category))
    assert answer.status_code == 403 and error_code(answer) == "merchant_frozen"
    hidden = api.post(f"/api/v1/products/{product.slug}/hide")
    assert error_code(hidden) == "merchant_frozen"
    assert reload(product).visible is True
    assert count(Product) == 1


def test_a_rejected_shop_does_not_write_either(api, merchant, category):
    merchant.status = Merchant.REJECTED
    db.session.commit()
    assert error_code(api.post("/api/v1/products", json=new_product(category))) == "merchant_rejected"


# -- language --------------------------------------------------------------------------


def test_messages_are_in_the_language_the_key_was_made_in(client, make_key):
    chinese = ApiClient(client, make_key(language="zh_CN"))
    english = ApiClient(client, make_key(language="en"))
    assert chinese.get("/api/v1/products/nothing").get_json()["error"]["message"] == "未找到。"
    assert english.get("/api/v1/products/nothing").get_json()["error"]["message"] == "Not found."


def test_without_a_key_the_message_follows_accept_language(client):
    english = client.get("/api/v1/products/x", headers={"Accept-Language": "en-US,en;q=0.8"})
    chinese = client.get("/api/v1/nothing/here", headers={"Accept-Language": "zh-CN"})
    assert english.get_json()["error"]["message"].startswith("Send a valid API key")
    assert chinese.get_json()["error"]["message"] == "未找到。"


# -- rate limits -----------------------------------------------------------------------


def test_each_key_has_its_own_rate_limit_with_retry_after(app, client, make_key):
    app.config["API_RATE_LIMIT"] = "2 per minute"
    first, second = ApiClient(client, make_key()), ApiClient(client, make_key())
    answers = [first.get("/api/v1/products") for _ in range(3)]
    assert [a.status_code for a in answers] == [200, 200, 429]
    assert answers[0].headers["X-RateLimit-Limit"] == "2"
    assert answers[0].headers["X-RateLimit-Remaining"] == "1"
    limited = answers[2]
    assert error_code(limited) == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 60
    assert second.get("/api/v1/products").status_code == 200


def test_guessing_keys_from_one_address_is_slowed_down(app, client, token):
    app.config["API_AUTH_FAILURE_LIMIT"] = "3 per minute"
    wrong = {"Authorization": "Bearer fk_live_" + "0" * 43}
    assert [client.get("/api/v1/products", headers=wrong).status_code for _ in range(3)] == [401] * 3
    blocked = client.get("/api/v1/products", headers=bearer(token))
    assert blocked.status_code == 429 and int(blocked.headers["Retry-After"]) >= 1
    elsewhere = client.get("/api/v1/products", headers=bearer(token), environ_base={"REMOTE_ADDR": "198.51.100.4"})
    assert elsewhere.status_code == 200


def test_a_revoked_key_tried_again_and_again_is_slowed_down_too(app, client, merchant, make_key):
    app.config["API_AUTH_FAILURE_LIMIT"] = "3 per minute"
    revoked = make_key()
    api_keys.revoke_key(merchant.id, api_keys.find_key(revoked).id, merchant.user_id)
    answers = [client.get("/api/v1/products", headers=bearer(revoked)) for _ in range(4)]
    assert [a.status_code for a in answers] == [401, 401, 401, 429]
    assert error_code(answers[0]) == "key_revoked" and error_code(answers[3]) == "rate_limited"


# -- idempotency -----------------------------------------------------------------------


def test_the_same_request_with_the_same_idempotency_key_creates_once(api, category):
    headers = {"Idempotency-Key": "order-sync-42"}
    first = api.post("/api/v1/products", json=new_product(category), headers=headers)
    again = api.post("/api/v1/products", json=new_product(category), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    assert again.get_json() == first.get_json()
    assert again.headers["Location"] == first.headers["Location"]
    assert count(Product) == 1


def test_the_kept_answer_is_encrypted(api, category):
    api.post("/api/v1/products", json=new_product(category, title="Secret title"), headers={"Idempotency-Key": "k1"})
    record = db.session.execute(select(ApiIdempotencyKey)).scalar_one()
    assert record.status == 201
    assert "Secret title" not in record.response_ciphertext


def test_the_same_idempotency_key_with_another_request_is_refused(api, category):
    headers = {"Idempotency-Key": "k2"}
    api.post("/api/v1/products", json=new_product(category), headers=headers)
    answer = api.post("/api/v1/products", json=new_product(category, price=1), headers=headers)
    assert answer.status_code == 422 and error_code(answer) == "idempotency_key_reused"
    assert count(Product) == 1


def test_a_request_still_running_with_the_key_makes_the_second_wait(api, merchant, category):
    key = db.session.execute(select(ApiKey)).scalar_one()
    body = b'{"x": 1}'
    api_keys.claim(key.id, "k3", api_keys.request_digest("POST", "/api/v1/products", body))
    answer = api.post("/api/v1/products", data=body, content_type="application/json", headers={"Idempotency-Key": "k3"})
    assert answer.status_code == 409 and error_code(answer) == "idempotency_key_in_use"


def test_an_error_answer_leaves_the_key_free(api, category):
    headers = {"Idempotency-Key": "k4"}
    refused = api.post("/api/v1/products", json={"title": "No price"}, headers=headers)
    assert refused.status_code == 422
    assert count(ApiIdempotencyKey) == 0
    assert api.post("/api/v1/products", json=new_product(category), headers=headers).status_code == 201


def test_idempotency_keys_are_per_api_key_and_last_a_day(client, make_key, category, frozen_clock):
    first, second = ApiClient(client, make_key()), ApiClient(client, make_key())
    headers = {"Idempotency-Key": "shared-name"}
    first.post("/api/v1/products", json=new_product(category), headers=headers)
    second.post("/api/v1/products", json=new_product(category), headers=headers)
    assert count(Product) == 2
    frozen_clock.advance(hours=24, seconds=1)
    again = first.post("/api/v1/products", json=new_product(category), headers=headers)
    assert "Idempotent-Replayed" not in again.headers
    assert count(Product) == 3


def test_an_idempotency_key_must_be_printable(api, category):
    answer = api.post("/api/v1/products", json=new_product(category), headers={"Idempotency-Key": "has space"})
    assert answer.status_code == 400 and error_code(answer) == "invalid_idempotency_key"
    assert count(Product) == 0


# -- errors and the rest of the site -------------------------------------------------------


def test_unknown_paths_and_methods_answer_json(api):
    missing = api.get("/api/v1/nothing")
    assert missing.status_code == 404 and error_code(missing) == "not_found"
    wrong_method = api.delete("/api/v1/products")
    assert wrong_method.status_code == 405 and error_code(wrong_method) == "method_not_allowed"
    assert set(wrong_method.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    options = api.client.options("/api/v1/products")
    assert options.status_code == 204
    assert set(options.headers["Allow"].split(", ")) == {"GET", "HEAD", "OPTIONS", "POST"}
    assert api.client.options("/api/v1/nothing").status_code == 404


def test_the_html_sites_error_pages_are_unchanged(client):
    page = client.get("/no-such-page")
    assert page.status_code == 404
    assert page.content_type.startswith("text/html")
    assert "<html" in page.get_data(as_text=True)


def test_the_api_needs_no_csrf_token(app, api, category):
    assert app.config["WTF_CSRF_ENABLED"]
    assert api.post("/api/v1/products", json=new_product(category)).status_code == 201


def test_the_openapi_document_is_generated_and_public(client, app):
    answer = client.get("/api/v1/openapi.json")
    assert answer.status_code == 200
    document = answer.get_json()
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    api_rules = {
        (re.sub(r"<(?:\w+:)?(\w+)>", r"{\1}", rule.rule), method.lower())
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("api_v1.") and rule.endpoint.count(".") == 2
        for method in rule.methods - {"HEAD", "OPTIONS"}
    }
    documented = {
        (path, method) for path, item in document["paths"].items() for method in item if method != "parameters"
    }
    assert api_rules == documented


# -- the call log ----------------------------------------------------------------------


def test_every_call_of_a_key_is_logged_and_marks_the_key_used(api, merchant):
    api.get("/api/v1/products")
    api.get("/api/v1/products/nothing")
    key = db.session.execute(select(ApiKey)).scalar_one()
    calls = db.session.execute(select(ApiCall).order_by(ApiCall.id)).scalars().all()
    assert [(c.method, c.path, c.status, c.ip) for c in calls] == [
        ("GET", "/api/v1/products", 200, "127.0.0.1"),
        ("GET", "/api/v1/products/nothing", 404, "127.0.0.1"),
    ]
    assert all(c.api_key_id == key.id and c.merchant_id == merchant.id for c in calls)
    assert reload(key).last_used_at is not None


def test_refused_calls_of_a_known_key_are_logged_and_unknown_keys_are_not(client, api, make_key, merchant):
    ApiClient(client, make_key(scopes=["keys:read"])).get("/api/v1/products")
    client.get("/api/v1/products", headers={"Authorization": "Bearer fk_live_unknown"})
    assert [c.status for c in db.session.execute(select(ApiCall)).scalars()] == [403]
