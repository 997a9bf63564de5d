"""The buyer's order page: the link to keep, the delivered keys all at once (copied or as a
file), the panels that appear when polling sees the delivery, and a page that refreshes
itself without JavaScript."""

import html
import re

import pytest
from sqlalchemy import select

from conftest import csrf_from, key_texts, reload
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders.models import Order
from faka.reviews.models import Review


def english(client):
    client.get("/?lang=en")
    return client


def panels(text: str) -> str:
    """The order-panels element of a page or poll answer."""
    start = text.index('<div id="order-panels"')
    return text[start:]


# -- the link to keep ------------------------------------------------------------------------


def test_order_page_opens_with_its_link_to_save_and_a_copy_button(client, product, place):
    order = place(product)
    page = english(client).get(f"/order/{order.token}").text
    article = page[page.index('<article class="order">') :]
    assert article.index("Save this link") < article.index("<h1>")
    link = re.search(r'<code class="order-link" id="order-link">([^<]+)</code>', article).group(1)
    assert link == f"http://localhost/order/{order.token}"
    assert re.search(
        r'<button type="button" class="copy" data-copy="order-link" data-copied="Copied">Copy link</button>', article
    )


# -- all the keys at once ----------------------------------------------------------------------


def test_several_keys_can_be_copied_all_at_once_and_downloaded(client, make_product, place, pay):
    order = place(make_product(keys=6), quantity=3)
    pay(order)
    keys = key_texts(order)
    response = english(client).get(f"/order/{order.token}")
    assert response.headers["Cache-Control"] == "private, no-store"  # the keys are kept by no cache
    page = response.text
    all_keys = re.search(r'<pre class="all-keys" id="all-keys" hidden>([^<]*)</pre>', page).group(1)
    assert html.unescape(all_keys).split("\n") == keys
    assert 'data-copy="all-keys"' in page and ">Copy all<" in page
    assert re.search(
        rf'<a class="button download-keys" href="/order/{order.token}/keys.txt" download hx-boost="false">', page
    )

    download = client.get(f"/order/{order.token}/keys.txt")
    assert download.status_code == 200
    assert download.headers["Content-Type"] == "text/plain; charset=utf-8"
    assert download.headers["Content-Disposition"] == f'attachment; filename="{order.number}.txt"'
    assert download.headers["Cache-Control"] == "no-store"
    assert download.text.splitlines() == keys


def test_the_poll_that_delivers_brings_copy_all_and_download_too(client, product, place, pay):
    order = place(product, quantity=2)
    pay(order)
    poll = client.get(f"/order/{order.token}/status?lang=en")
    assert poll.status_code == 286
    assert 'id="all-keys"' in poll.text and f'href="/order/{order.token}/keys.txt"' in poll.text


def test_a_single_item_has_its_copy_button_only(client, product, place, pay):
    order = place(product, quantity=1)
    pay(order)
    page = client.get(f"/order/{order.token}").text
    assert page.count('class="card-key"') == 1
    assert "all-keys" not in page and "keys.txt" not in page
    # The file is there all the same, for a link kept from elsewhere.
    assert client.get(f"/order/{order.token}/keys.txt").text.splitlines() == key_texts(order)


def test_a_fixed_products_content_downloads_as_it_was_written(client, make_product, place, pay):
    product = make_product(
        keys=0, delivery_type="fixed", fixed_content_ciphertext=vault().encrypt("https://dl.example/x\n提取码 AB12")
    )
    order = place(product)
    pay(order)
    download = client.get(f"/order/{order.token}/keys.txt")
    assert download.status_code == 200
    assert download.get_data().decode("utf-8") == "https://dl.example/x\n提取码 AB12\n"


@pytest.mark.parametrize("state", ["pending", "expired", "paid_manual"])
def test_an_order_that_delivered_nothing_has_no_keys_file(client, make_product, place, pay, state):
    product = make_product(keys=0, delivery_type="manual") if state == "paid_manual" else make_product(keys=2)
    order = place(product)
    if state == "expired":
        order.status = Order.EXPIRED
        db.session.commit()
    elif state == "paid_manual":
        pay(order)
        assert reload(order).status == Order.PAID
    assert client.get(f"/order/{order.token}/keys.txt").status_code == 404


@pytest.mark.parametrize("token", ["0" * 32, "abc", "1"])
def test_an_unknown_token_has_no_keys_file(client, token):
    assert client.get(f"/order/{token}/keys.txt").status_code == 404


def test_guessing_keys_files_uses_up_the_token_miss_budget_a_buyers_own_file_does_not(make_app, product, place, pay):
    app = make_app(RATELIMIT_TOKEN_MISSES="3 per minute")
    with app.app_context():
        order = place(product, quantity=2)
        pay(order)
        client = app.test_client()
        for _ in range(5):
            assert client.get(f"/order/{order.token}/keys.txt").status_code == 200
        statuses = [client.get(f"/order/{i:032x}/keys.txt").status_code for i in range(5)]
        assert statuses == [404, 404, 404, 429, 429]
        assert client.get(f"/order/{'f' * 32}").status_code == 429  # one budget with the order page


# -- without JavaScript ------------------------------------------------------------------------


def head(page: str) -> str:
    return page[: page.index("</head>")]


def test_an_unfinished_order_page_refreshes_itself_without_javascript(client, make_product, place, pay):
    waiting = place(make_product(keys=2))
    assert '<noscript><meta http-equiv="refresh" content="5"></noscript>' in head(
        client.get(f"/order/{waiting.token}").text
    )

    delivering = place(make_product(keys=2))
    delivering.mark_paid(utcnow())  # paid, its automatic delivery a moment away: look again soon
    db.session.commit()
    assert '<meta http-equiv="refresh" content="2">' in head(client.get(f"/order/{delivering.token}").text)

    manual = place(make_product(keys=0, delivery_type="manual"))
    pay(manual)
    assert '<meta http-equiv="refresh" content="30">' in head(client.get(f"/order/{manual.token}").text)

    delivered = place(make_product(keys=2))
    pay(delivered)
    page = client.get(f"/order/{delivered.token}")
    assert "refresh" not in head(page.text)
    # The policy forbids inline script, which a meta refresh is not.
    assert "script-src 'self'" in page.headers["Content-Security-Policy"]


# -- the panels appear when polling sees the delivery -------------------------------------------


def test_the_poll_that_sees_the_delivery_brings_the_review_and_complaint_panels(client, product, place, pay):
    order = place(product)
    page = english(client).get(f"/order/{order.token}").text
    assert panels(page).startswith('<div id="order-panels">')  # the place they go, empty for now
    assert "review-form" not in page and "/complaint" not in page
    waiting = client.get(f"/order/{order.token}/status?lang=en")
    assert waiting.status_code == 200 and "order-panels" not in waiting.text

    pay(order)
    final = client.get(f"/order/{order.token}/status?lang=en")
    assert final.status_code == 286
    oob = panels(final.text)
    assert oob.startswith('<div id="order-panels" hx-swap-oob="true">')
    assert f'action="/order/{order.token}/review"' in oob and "Publish review" in oob
    assert f'href="/order/{order.token}/complaint"' in oob and "Open a complaint" in oob


def test_a_poll_that_ends_with_an_expired_order_brings_no_panels(client, product, place):
    order = place(product)
    order.status = Order.EXPIRED
    db.session.commit()
    final = client.get(f"/order/{order.token}/status")
    assert final.status_code == 286 and "order-panels" not in final.text


def test_the_review_form_brought_by_the_poll_posts_with_the_pages_csrf_header(client, product, place, pay):
    """The poll has no session, so its form carries no token of its own: htmx posts it with
    the page's X-CSRFToken header, and the review is published."""
    order = place(product)
    page = client.get(f"/order/{order.token}").text
    header_token = re.search(r'hx-headers=\'\{"X-CSRFToken": "([^"]+)"\}\'', page).group(1)
    pay(order)
    oob = panels(client.get(f"/order/{order.token}/status").text)
    assert 'name="csrf_token"' not in oob
    posted = client.post(
        f"/order/{order.token}/review",
        data={"rating": "5", "text": "很快"},
        headers={"HX-Request": "true", "HX-Boosted": "true", "X-CSRFToken": header_token},
    )
    assert posted.status_code == 303
    review = db.session.execute(select(Review).where(Review.order_id == order.id)).scalar_one()
    assert (review.rating, review.body) == (5, "很快")


def test_a_cached_final_answer_carries_that_orders_own_panels_and_stops_polling_again(make_app, make_product, place):
    from conftest import signed_notify

    app = make_app(STATUS_CACHE_SECONDS=30)
    with app.app_context():
        product = make_product(keys=6)
        first, second = place(product), place(product, quantity=2)
        client = app.test_client()
        for order in (first, second):
            client.get(f"/order/{order.token}")
            assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
        answers = {
            order.token: [client.get(f"/order/{order.token}/status") for _ in range(3)] for order in (first, second)
        }
        for order, other in ((first, second), (second, first)):
            polls = answers[order.token]
            assert [p.status_code for p in polls] == [286, 286, 286]
            assert polls[0].text == polls[1].text == polls[2].text  # the later ones from memory
            oob = panels(polls[0].text)
            assert f"/order/{order.token}/review" in oob and other.token not in polls[0].text
            assert "hx-trigger" not in polls[0].text  # nothing polls again
            assert all("Set-Cookie" not in p.headers for p in polls)


def test_a_review_written_later_shows_on_the_page_whatever_a_poll_cached(make_app, product, place):
    from conftest import signed_notify

    app = make_app(STATUS_CACHE_SECONDS=30)
    with app.app_context():
        order = place(product)
        client = english(app.test_client())
        client.get(f"/order/{order.token}")
        client.post("/pay/sandbox/notify", data=signed_notify(order))
        assert "Publish review" in client.get(f"/order/{order.token}/status?lang=en").text
        posted = client.post(
            f"/order/{order.token}/review",
            data={"csrf_token": csrf_from(client.get(f"/order/{order.token}").text), "rating": "4", "text": "ok"},
        )
        assert posted.status_code == 303
        after = client.get(f"/order/{order.token}").text
        assert "Publish review" not in panels(after) and "Change my review" in panels(after)
