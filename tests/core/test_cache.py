"""Storefront pages served from the short-lived page cache."""

import re

from sqlalchemy import func, select

from conftest import csrf_from
from faka.extensions import db
from faka.orders.models import Order


def test_cached_page_gives_each_visitor_a_working_csrf_token(make_app, make_product):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        product = make_product(keys=5)
        first, second = app.test_client(), app.test_client()
        page_one = first.get(f"/p/{product.slug}").text
        page_two = second.get(f"/p/{product.slug}").text
        token_one, token_two = csrf_from(page_one), csrf_from(page_two)
        assert token_one != token_two
        assert "__faka_csrf_token__" not in page_one + page_two
        assert re.search(r'"X-CSRFToken": "([^"]+)"', page_two).group(1) == token_two
        for client, token in ((first, token_one), (second, token_two)):
            response = client.post(f"/p/{product.slug}/buy", data={"csrf_token": token, "quantity": 1})
            assert response.status_code == 303
        db.session.commit()
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2


def test_stock_is_cached_for_the_ttl_then_fresh(make_app, make_product, place):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        product = make_product(keys=5)
        client = app.test_client()
        assert "库存：5" in client.get("/").text
        place(product, 2)
        assert "库存：5" in client.get("/").text  # served from the cache
        app.extensions["faka_pagecache"].clear()  # what the TTL does after 60 s
        assert "库存：3" in client.get("/").text


def test_final_status_is_cached_but_pending_is_always_fresh(make_app, make_product, place):
    from conftest import signed_notify

    app = make_app(STATUS_CACHE_SECONDS=60)
    with app.app_context():
        product = make_product(keys=2)
        order = place(product)
        client = app.test_client()
        assert client.get(f"/order/{order.token}/status").status_code == 200
        client.post("/pay/sandbox/notify", data=signed_notify(order))
        final = client.get(f"/order/{order.token}/status")
        assert final.status_code == 286 and 'class="card-key"' in final.text
        db.session.execute(Order.__table__.update().values(status=Order.PAID_UNFULFILLED))
        db.session.commit()  # a later change is seen once the cached widget expires
        again = client.get(f"/order/{order.token}/status")
        assert again.status_code == 286 and again.text == final.text
        app.extensions["faka_pagecache"].clear()
        assert 'class="card-key"' not in client.get(f"/order/{order.token}/status").text
        assert client.get("/order/" + "0" * 32 + "/status").status_code == 404
