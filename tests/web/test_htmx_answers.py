"""One reading of htmx's headers for every view (faka/web/htmx.py): a request that
swaps a region gets the region; a boosted one, or a history restore (Back to a page that
left htmx's cache), gets the whole page; any htmx request that needs a login gets a 403."""

import pytest

from conftest import login

SWAP = {"HX-Request": "true", "HX-Target": "order-results"}
BOOSTED = {"HX-Request": "true", "HX-Boosted": "true"}
RESTORE = {"HX-Request": "true", "HX-History-Restore-Request": "true"}


@pytest.fixture
def seller(app, merchant):
    client = app.test_client()
    login(client, merchant.user)
    return client


def test_the_order_filter_gets_the_rows_and_a_restore_gets_the_page(seller, product, place):
    place(product)
    rows = seller.get("/merchant/orders?lang=en", headers=SWAP)
    assert rows.status_code == 200 and "<html" not in rows.text and 'id="order-results"' in rows.text
    for headers in (BOOSTED, RESTORE, {}):
        page = seller.get("/merchant/orders?lang=en", headers=headers)
        assert page.status_code == 200 and "<html" in page.text and 'id="order-results"' in page.text, headers


def test_a_product_list_page_of_the_shop_follows_the_same_rule(client, product):
    restored = client.get("/?lang=en", headers=RESTORE)
    assert "<html" in restored.text
    boosted = client.get("/?lang=en", headers=BOOSTED)
    assert "<html" in boosted.text


@pytest.mark.parametrize("headers", [SWAP, BOOSTED])
def test_an_htmx_request_without_a_login_gets_a_403_not_the_login_page(client, headers):
    answer = client.get("/merchant/orders", headers=headers)
    assert answer.status_code == 403


def test_a_page_load_without_a_login_goes_to_the_login(client):
    answer = client.get("/merchant/orders")
    assert answer.status_code == 303 and "/login?next=" in answer.headers["Location"]
