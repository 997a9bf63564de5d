"""Fixtures of the API tests: keys, a client that sends them, and a second merchant whose
objects must never show."""

import secrets

import pytest

from faka.accounts import api_keys, users
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.keys import import_keys


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def make_key(app, merchant):
    """An API key's token: every scope by default; `merchant`, `scopes`, `language`,
    `allowed_ips`, `expires_at` as the back office's form would give them."""

    def make(scopes=api_keys.SCOPES, owner: Merchant | None = None, language: str = "en", **draft) -> str:
        owner = owner or merchant
        _key, token = api_keys.create_key(
            owner.id,
            owner.user_id,
            api_keys.ApiKeyDraft(
                name=draft.pop("name", "Test program"), scopes=list(scopes), language=language, **draft
            ),
        )
        return token

    return make


@pytest.fixture
def token(make_key) -> str:
    return make_key()


class ApiClient:
    """The test client, sending an API key."""

    def __init__(self, client, token: str):
        self.client, self.token = client, token

    def _send(self, method: str, path: str, headers: dict | None = None, **kwargs):
        return self.client.open(path, method=method, headers={**bearer(self.token), **(headers or {})}, **kwargs)

    def get(self, path, **kwargs):
        return self._send("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self._send("POST", path, **kwargs)

    def patch(self, path, **kwargs):
        return self._send("PATCH", path, **kwargs)

    def delete(self, path, **kwargs):
        return self._send("DELETE", path, **kwargs)


@pytest.fixture
def api(client, token) -> ApiClient:
    return ApiClient(client, token)


@pytest.fixture
def other_merchant(app) -> Merchant:
    return users.create_merchant(f"b{secrets.token_hex(4)}@shop.test", "merchant-pass-1", "Other Shop", approved=True)


@pytest.fixture
def other_product(other_merchant, category) -> Product:
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=other_merchant.id,
        category_id=category.id,
        price=777,
        title="Other merchant's product",
    )
    db.session.add(product)
    db.session.commit()
    import_keys(product.variants[0], "OTHER-KEY-1\nOTHER-KEY-2")
    return product


def error_code(response) -> str:
    return response.get_json()["error"]["code"]
