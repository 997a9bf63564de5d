"""The back office's API pages: making, listing and revoking keys, the call log, the reference."""

import re
import time
from html import unescape

from sqlalchemy import select

from api.conftest import bearer
from conftest import count, csrf_from, login, reload
from faka.accounts import api_keys
from faka.accounts.models import ApiKey
from faka.extensions import db

PAGE = "/merchant/api-keys?lang=en"


def logged_in(client, merchant, reauthenticated: bool = True):
    """The merchant's browser, its password confirmed a moment ago (making a key asks for it)."""
    login(client, merchant.user)
    if reauthenticated:
        with client.session_transaction() as session:
            session["reauth_at"] = int(time.time())
    return client


def make_key_in_page(client, **fields):
    page = client.get(PAGE)
    data = {"csrf_token": csrf_from(page.text), "name": "ERP sync", "language": "en", **fields}
    return client.post("/merchant/api-keys", data=data)


def test_a_key_is_made_and_its_token_shown_once(client, merchant):
    logged_in(client, merchant)
    answer = make_key_in_page(client, scope_products="write", scope_keys="read", allowed_ips="203.0.113.0/24")
    assert answer.status_code == 200
    assert answer.headers["Cache-Control"] == "no-store"
    token = re.search(r'id="api-token">([^<]+)<', answer.text).group(1)
    assert token.startswith("fk_live_")

    key = db.session.execute(select(ApiKey)).scalar_one()
    assert key.token_hash == api_keys.token_digest(token) and token not in (key.prefix, key.token_hash)
    assert key.scopes == "products:write keys:read"
    assert key.allowed_ips == "203.0.113.0/24"
    assert (key.merchant_id, key.created_by, key.language) == (merchant.id, merchant.user_id, "en")

    listed = client.get(PAGE).text
    assert token not in listed
    assert f"{key.prefix}…" in listed and "ERP sync" in listed
    assert "Products and checkout fields: Read and write" in unescape(listed)
    assert (
        client.get("/api/v1/products", headers=bearer(token), environ_base={"REMOTE_ADDR": "203.0.113.5"}).status_code
        == 200
    )


def test_a_key_without_scopes_or_with_a_bad_address_is_refused_and_nothing_made(client, merchant):
    logged_in(client, merchant)
    no_scope = make_key_in_page(client)
    assert no_scope.status_code == 400
    assert "Choose what the key may do." in no_scope.text
    bad_address = make_key_in_page(client, scope_orders="read", allowed_ips="10.0.0.300")
    assert bad_address.status_code == 400
    assert "10.0.0.300 is not an IP address or network" in unescape(bad_address.text)
    assert count(ApiKey) == 0


def test_a_form_without_its_csrf_token_is_refused(client, merchant):
    logged_in(client, merchant)
    answer = client.post("/merchant/api-keys", data={"name": "x", "scope_products": "read", "language": "en"})
    assert answer.status_code == 400
    assert count(ApiKey) == 0


def test_revoke_stops_the_key_and_keeps_it_listed(client, merchant, make_key):
    token = make_key()
    key = db.session.execute(select(ApiKey)).scalar_one()
    logged_in(client, merchant)
    page = client.get(PAGE)
    assert 'hx-confirm="Revoke the key' in unescape(page.text)
    answer = client.post(f"/merchant/api-keys/{key.id}/revoke", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 303
    assert reload(key).revoked_at is not None
    assert client.get("/api/v1/products", headers=bearer(token)).status_code == 401
    assert "Revoked" in client.get(PAGE).text


def test_another_merchants_key_cannot_be_revoked(client, merchant, other_merchant, make_key):
    make_key(owner=other_merchant)
    theirs = db.session.execute(select(ApiKey)).scalar_one()
    logged_in(client, merchant)
    page = client.get(PAGE)
    answer = client.post(f"/merchant/api-keys/{theirs.id}/revoke", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 404
    assert reload(theirs).revoked_at is None
    assert theirs.name not in page.text or theirs.prefix not in page.text


def test_the_page_lists_the_calls_of_the_merchants_keys_only(client, merchant, other_merchant, make_key):
    client.get("/api/v1/products", headers=bearer(make_key(name="Mine")))
    client.get("/api/v1/categories", headers=bearer(make_key(name="Theirs", owner=other_merchant)))
    logged_in(client, merchant)
    page = client.get(PAGE).text
    assert "GET /api/v1/products" in page
    assert "/api/v1/categories" not in page


def test_the_pages_need_a_logged_in_merchant(client):
    for url in ("/merchant/api-keys", "/merchant/api-reference"):
        answer = client.get(url)
        assert answer.status_code == 303 and "/login" in answer.headers["Location"]


def test_the_reference_is_rendered_from_the_document(client, merchant):
    logged_in(client, merchant)
    page = client.get("/merchant/api-reference?lang=en")
    assert page.status_code == 200
    text = unescape(page.text)
    for expected in (
        "GET /api/v1/products",
        "POST /api/v1/products/{slug}/keys",
        "Create a product",
        "products:write",
        'id="schema-ProductCreate"',
        "Idempotency-Key",
        "Retry-After",
        "Authorization: Bearer fk_live_",
    ):
        assert expected in text, expected
    assert re.findall(r"<script(?![^>]*\bsrc=)", page.text) == []  # no inline script (the CSP forbids it)


def test_making_a_key_asks_for_the_password_again(client, merchant):
    logged_in(client, merchant, reauthenticated=False)
    answer = make_key_in_page(client, scope_products="read")
    assert answer.status_code == 303
    assert answer.headers["Location"].startswith("/reauth")
    assert count(ApiKey) == 0
