"""Buyer reviews: one per delivered order, editable for a day, one merchant reply, plain
text only; the suspicion signals that keep fake reviews out of the score; the operator's
hide and unhide."""

import re
import secrets
from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from faka.accounts import users
from faka.accounts.login import record_sign_in
from faka.core.crypto import vault
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders.models import Order
from faka.platform.models import AuditEvent
from faka.reviews import reviews
from faka.reviews.models import Review
from faka.risk.models import SignIn
from tests.conftest import csrf_from, expire_and_reconcile, login, reload

PASSWORD = "merchant-pass-1"  # the `merchant` fixture's


# -- helpers ----------------------------------------------------------------------------


def english(client):
    client.get("/?lang=en")
    return client


def delivered(place, pay, product) -> Order:
    order = place(product)
    assert pay(order).status_code == 200
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


def client_at(app, ip: str):
    """A browser of its own (its own cookies) at this IP address."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def csrf(client) -> str:
    """A CSRF token of this client's session (any page's form carries it)."""
    return csrf_from(client.get("/lookup").text)


def post_review(client, order, rating, text=""):
    return client.post(
        f"/order/{order.token}/review", data={"csrf_token": csrf(client), "rating": rating, "text": text}
    )


def make_order(
    product, *, device_hash=None, client_ip=None, paid_at=None, delivered_at=None, status=Order.DELIVERED
) -> Order:
    """An order row made directly, for signals that only look at orders."""
    now = utcnow()
    if status == Order.DELIVERED:
        paid_at = paid_at or now
        delivered_at = delivered_at or paid_at
    order = Order(
        number=secrets.token_hex(8),
        token=secrets.token_hex(16),
        product_id=product.id,
        variant_id=product.variants[0].id,
        merchant_id=product.merchant_id,
        quantity=1,
        unit_price=product.price,
        total=product.price,
        currency="CNY",
        gateway="sandbox",
        status=status,
        device_hash=device_hash,
        client_ip=client_ip,
        created_at=paid_at or now,
        expires_at=now + timedelta(minutes=15),
        paid_at=paid_at,
        delivered_at=delivered_at,
    )
    db.session.add(order)
    db.session.commit()
    return order


def add_review(order, rating=5, created_at=None, **fields) -> Review:
    review = Review(
        order_id=order.id,
        merchant_id=order.merchant_id,
        product_id=order.product_id,
        rating=rating,
        body=fields.pop("body", ""),
        created_at=created_at or utcnow(),
        **fields,
    )
    db.session.add(review)
    db.session.commit()
    return review


def review_count(*where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(Review).where(*where))


def new_operator():
    op = users.create_operator(f"ops{secrets.token_hex(3)}@example.com", "operator-pass-1")
    op.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    return op


def score_on(page_text: str) -> str:
    match = re.search(r'class="rating-score[^"]*">([^<]+)<', page_text)
    assert match, "no rating shown"
    return match.group(1).strip()


# -- writing a review -------------------------------------------------------------------


def test_buyer_reviews_a_delivered_order_once_and_changes_it_in_place(client, product, place, pay):
    english(client)
    order = delivered(place, pay, product)
    page = client.get(f"/order/{order.token}")
    assert f'action="/order/{order.token}/review"' in page.text

    response = post_review(client, order, 4, "Key worked at once.")
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"/order/{order.token}#review")
    page = client.get(f"/order/{order.token}")
    assert "Key worked at once." in page.text and "★★★★☆" in page.text
    assert "Change my review" in page.text

    assert post_review(client, order, 5, "Even better on second look.").status_code == 303
    assert review_count() == 1
    review = db.session.execute(select(Review)).scalar_one()
    assert (review.rating, review.body) == (5, "Even better on second look.")
    assert review.edited_at is not None


@pytest.mark.parametrize("state", ["pending", "expired"])
def test_undelivered_orders_cannot_be_reviewed(client, product, place, state):
    english(client)
    order = place(product)
    if state == "expired":
        expire_and_reconcile(order)
    assert "review-form" not in client.get(f"/order/{order.token}").text
    response = post_review(client, order, 5, "never got it")
    assert response.status_code == 400
    assert "Only a delivered order can be reviewed." in response.text
    assert client.get(f"/order/{order.token}/review").status_code == 400
    with pytest.raises(reviews.NotReviewable):
        reviews.submit_review(order.token, 5, "")
    assert review_count() == 0


def test_review_of_unknown_order_is_404(client, product, place, pay):
    delivered(place, pay, product)  # a reviewable order exists; the token below is not its
    token = csrf(client)
    wrong = secrets.token_hex(16)
    assert client.get(f"/order/{wrong}/review").status_code == 404
    assert client.post(f"/order/{wrong}/review", data={"csrf_token": token, "rating": 5}).status_code == 404
    assert review_count() == 0


def test_rating_must_be_one_to_five(client, product, place, pay):
    english(client)
    order = delivered(place, pay, product)
    for bad in ("0", "6", "", "five"):
        response = post_review(client, order, bad)
        assert response.status_code == 400
        assert "Choose a rating from 1 to 5 stars." in response.text
    assert review_count() == 0


def test_review_can_be_changed_for_24_hours_then_it_is_final(client, product, place, pay):
    english(client)
    order = delivered(place, pay, product)
    written = utcnow()
    reviews.submit_review(order.token, 2, "slow", now=written)
    reviews.submit_review(order.token, 4, "fine after all", now=written + timedelta(hours=23, minutes=59))
    with pytest.raises(reviews.ReviewLocked):
        reviews.submit_review(order.token, 1, "changed my mind", now=written + timedelta(hours=24))
    review = db.session.execute(select(Review)).scalar_one()
    assert (review.rating, review.body) == (4, "fine after all")

    review.created_at = utcnow() - timedelta(hours=25)
    db.session.commit()
    page = client.get(f"/order/{order.token}")
    assert "this one is final" in page.text and "Change my review" not in page.text
    response = post_review(client, order, 1, "late edit")
    assert response.status_code == 400
    assert "only within 24 hours" in response.text
    assert reload(review).rating == 4


def test_html_in_a_review_is_neutralised_on_every_page(client, product, place, pay):
    english(client)
    order = delivered(place, pay, product)
    text = "<script>alert(1)</script><b>bold</b> & <img src=x onerror=alert(2)> &lt;i&gt;tag&lt;/i&gt;\x00\u202e"
    assert post_review(client, order, 3, text).status_code == 303
    stored = db.session.execute(select(Review.body)).scalar_one()
    assert stored == "bold & <i>tag</i>"
    for url in (f"/p/{product.slug}", f"/order/{order.token}", f"/shop/{product.merchant.public_id}"):
        html = client.get(url).text
        assert "bold &amp; &lt;i&gt;tag&lt;/i&gt;" in html
        assert "<script>alert" not in html and "onerror" not in html and "<b>bold" not in html


def test_clean_text_keeps_plain_text_and_tidies_whitespace():
    assert reviews.clean_text("  a \t b  \r\n\r\n\r\n\r\n c\u200b ") == "a b\n\nc"
    assert reviews.clean_text("1 < 2 && 3 > 2") == "1 < 2 && 3 > 2"
    assert reviews.clean_text(None) == ""


def test_overlong_text_is_refused(client, product, place, pay):
    english(client)
    order = delivered(place, pay, product)
    response = post_review(client, order, 5, "x" * 1001)
    assert response.status_code == 400 and "under 1000 characters" in response.text
    assert review_count() == 0


# -- the merchant's reply ---------------------------------------------------------------


@pytest.fixture
def reviewed(client, product, place, pay):
    order = delivered(place, pay, product)
    return reviews.submit_review(order.token, 2, "Second key was used already.")


def test_merchant_replies_once_and_buyers_see_it(app, merchant, product, reviewed):
    shop = english(app.test_client())
    login(shop, merchant.user)
    page = shop.get("/merchant/reviews")
    assert page.status_code == 200 and "Second key was used already." in page.text
    response = shop.post(
        f"/merchant/reviews/{reviewed.id}/reply",
        data={"csrf_token": csrf_from(page.text), "text": "Sorry, <b>replaced</b> it."},
    )
    assert response.status_code == 303
    assert "Sorry, replaced it." in english(app.test_client()).get(f"/p/{product.slug}").text

    again = shop.post(
        f"/merchant/reviews/{reviewed.id}/reply", data={"csrf_token": csrf_from(page.text), "text": "Changed reply"}
    )
    assert again.status_code == 400
    assert "already replied" in again.text
    assert reload(reviewed).reply == "Sorry, replaced it."
    assert "Second key was used already." not in shop.get("/merchant/reviews?only=unanswered").text


def test_empty_reply_is_refused(app, merchant, reviewed):
    shop = english(app.test_client())
    login(shop, merchant.user)
    token = csrf_from(shop.get("/merchant/reviews").text)
    response = shop.post(f"/merchant/reviews/{reviewed.id}/reply", data={"csrf_token": token, "text": "  <p></p> "})
    assert response.status_code == 400 and "Write a reply first." in response.text
    assert reload(reviewed).reply is None


def test_another_merchant_cannot_see_or_reply_to_the_review(app, reviewed):
    other = users.create_merchant("other@shop.test", PASSWORD, "Other Shop", approved=True)
    client = app.test_client()
    login(client, other.user)
    page = client.get("/merchant/reviews")
    assert "Second key was used already." not in page.text
    response = client.post(
        f"/merchant/reviews/{reviewed.id}/reply", data={"csrf_token": csrf_from(page.text), "text": "not mine"}
    )
    assert response.status_code == 404
    assert reload(reviewed).reply is None


# -- suspicion signals, one at a time ---------------------------------------------------


def sign_in(merchant, ip=None, device_hash=None):
    db.session.add(SignIn(user_id=merchant.user_id, ip=ip, device_hash=device_hash))
    db.session.commit()


def test_self_purchase_signal(app, merchant, product):
    sign_in(merchant, ip="198.51.100.1", device_hash="d" * 64)
    assert reviews.is_self_purchase(make_order(product, client_ip="198.51.100.1"))
    assert reviews.is_self_purchase(make_order(product, client_ip="203.0.113.9", device_hash="d" * 64))
    assert not reviews.is_self_purchase(make_order(product, client_ip="203.0.113.9", device_hash="e" * 64))
    assert not reviews.is_self_purchase(make_order(product))
    # Someone else signing in from the buyer's address says nothing about this shop.
    other = users.create_merchant("other@shop.test", PASSWORD, "Other Shop", approved=True)
    sign_in(other, ip="192.0.2.50")
    assert not reviews.is_self_purchase(make_order(product, client_ip="192.0.2.50"))


def test_device_with_many_paid_orders_signal(app, merchant, product, make_product):
    now = utcnow()
    device = "a" * 64
    orders = [make_order(product, device_hash=device, paid_at=now - timedelta(days=i)) for i in range(4)]
    make_order(product, device_hash=device, paid_at=now - timedelta(days=31))  # outside the window
    make_order(product, device_hash=device, status=Order.PENDING)  # never paid
    other = users.create_merchant("other@shop.test", PASSWORD, "Other Shop", approved=True)
    other_product = make_product(keys=0)
    other_product.merchant_id = other.id
    db.session.commit()
    make_order(other_product, device_hash=device)  # another shop's
    assert not reviews.device_has_many_orders(orders[0], now)
    fifth = make_order(product, device_hash=device, paid_at=now)
    assert reviews.device_has_many_orders(fifth, now)
    assert not reviews.device_has_many_orders(make_order(product, device_hash="b" * 64), now)


def test_device_with_many_reviews_signal(app, merchant, product):
    device = "c" * 64
    for _ in range(2):
        add_review(make_order(product, device_hash=device))
    third = make_order(product, device_hash=device)
    assert not reviews.device_has_many_reviews(third)
    add_review(make_order(product, device_hash=device))
    assert reviews.device_has_many_reviews(third)
    assert not reviews.device_has_many_reviews(make_order(product, device_hash="f" * 64))


def test_review_burst_signal_marks_the_whole_hour(app, merchant, product):
    now = utcnow()
    earlier = add_review(make_order(product), created_at=now - timedelta(hours=2))
    orders = [make_order(product) for _ in range(reviews.BURST_LIMIT)]
    for i, order in enumerate(orders[:-1]):
        reviews.submit_review(order.token, 5, "", now=now - timedelta(minutes=50) + timedelta(minutes=i))
    assert not reviews.is_review_burst(merchant.id, now)
    assert review_count(Review.suspicious_reason.is_not(None)) == 0

    reviews.submit_review(orders[-1].token, 5, "", now=now)
    assert reviews.is_review_burst(merchant.id, now)
    assert review_count(Review.suspicious_reason == reviews.REVIEW_BURST) == reviews.BURST_LIMIT
    assert reload(earlier).suspicious_reason is None


def test_burst_keeps_a_stronger_reason(app, merchant, product):
    now = utcnow()
    sign_in(merchant, ip="198.51.100.7")
    own = make_order(product, client_ip="198.51.100.7")
    reviews.submit_review(own.token, 5, "", now=now - timedelta(minutes=5))
    for _ in range(reviews.BURST_LIMIT - 1):
        reviews.submit_review(make_order(product).token, 5, "", now=now)
    assert reviews.review_for_order(own.id).suspicious_reason == reviews.SELF_PURCHASE


def test_signals_are_worked_out_when_a_review_is_written(app, merchant, product):
    device = "9" * 64
    for _ in range(reviews.DEVICE_ORDERS_LIMIT - 1):
        make_order(product, device_hash=device)
    last = make_order(product, device_hash=device)
    review = reviews.submit_review(last.token, 5, "")
    assert reload(review).suspicious_reason == reviews.DEVICE_MANY_ORDERS
    assert not reload(review).counts


def test_sign_in_marks_earlier_reviews_from_the_same_place(app, merchant, product):
    honest = reviews.submit_review(make_order(product, client_ip="203.0.113.1").token, 4, "")
    own = reviews.submit_review(make_order(product, client_ip="198.51.100.2").token, 5, "")
    assert reload(own).counts
    record_sign_in(merchant.user_id, "198.51.100.2", None)
    assert reload(own).suspicious_reason == reviews.SELF_PURCHASE
    assert reload(honest).counts


def test_every_login_records_a_sign_in(app, merchant):
    client = client_at(app, "198.51.100.77")
    page = client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page.text), "email": merchant.user.email, "password": PASSWORD}
    )
    assert response.status_code == 303
    row = db.session.execute(select(SignIn)).scalar_one()
    assert row.user_id == merchant.user_id and row.ip == "198.51.100.77"
    assert len(row.device_hash) == 64
    cookie = client.get_cookie("faka_device")
    assert cookie is not None and cookie.http_only and cookie.value not in row.device_hash


# -- the fake review --------------------------------------------------------------------


def buy_and_pay(client, product, pay) -> Order:
    page = client.get(f"/p/{product.slug}")
    response = client.post(
        f"/p/{product.slug}/buy",
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": 1,
            "email": "me@example.com",
            "query_password": "pw-1234",
        },
    )
    assert response.status_code == 303
    token = response.headers["Location"].rsplit("/", 1)[-1]
    db.session.commit()
    order = db.session.execute(select(Order).where(Order.token == token)).scalar_one()
    assert pay(order).status_code == 200
    return reload(order)


def test_self_purchase_does_not_move_the_score_but_an_honest_buyer_does(app, merchant, product, pay):
    visitor = english(client_at(app, "203.0.113.20"))
    first = buy_and_pay(visitor, product, pay)
    assert post_review(visitor, first, 3, "ok").status_code == 303
    before = score_on(visitor.get(f"/p/{product.slug}").text)
    assert before == "3.0"

    # The shop owner logs in for real, then buys its own product from the same browser.
    own = english(client_at(app, "198.51.100.30"))
    page = own.get("/login")
    assert (
        own.post(
            "/login", data={"csrf_token": csrf_from(page.text), "email": merchant.user.email, "password": PASSWORD}
        ).status_code
        == 303
    )
    fake = buy_and_pay(own, product, pay)
    assert fake.device_hash and fake.client_ip == "198.51.100.30"
    assert post_review(own, fake, 5, "Best shop ever!!!").status_code == 303
    product_page = visitor.get(f"/p/{product.slug}").text
    assert score_on(product_page) == before
    assert "Best shop ever!!!" in product_page  # shown, unmarked, but not counted
    assert reviews.review_for_order(fake.id).suspicious_reason == reviews.SELF_PURCHASE

    honest = english(client_at(app, "203.0.113.99"))
    order = buy_and_pay(honest, product, pay)
    assert order.device_hash != fake.device_hash
    assert post_review(honest, order, 5, "Fast and fine.").status_code == 303
    assert float(score_on(visitor.get(f"/p/{product.slug}").text)) > float(before)


def test_the_device_cookie_alone_reveals_a_self_purchase(app, merchant, product, pay):
    """A different IP address (say, mobile data) but the browser the owner logs in with."""
    own = english(client_at(app, "198.51.100.40"))
    page = own.get("/login")
    own.post("/login", data={"csrf_token": csrf_from(page.text), "email": merchant.user.email, "password": PASSWORD})
    own.environ_base["REMOTE_ADDR"] = "203.0.113.41"
    fake = buy_and_pay(own, product, pay)
    assert post_review(own, fake, 5).status_code == 303
    assert reviews.review_for_order(fake.id).suspicious_reason == reviews.SELF_PURCHASE


# -- the operator -----------------------------------------------------------------------


@pytest.fixture
def console(app):
    operator = new_operator()
    client = english(app.test_client())
    login(client, operator)
    client.operator = operator
    return client


def test_operator_hides_a_review_with_a_reason_and_it_is_audited(app, console, merchant, product, reviewed):
    page = console.get("/operator/reviews")
    assert page.status_code == 200 and "Second key was used already." in page.text
    token = csrf_from(page.text)

    refused = console.post(f"/operator/reviews/{reviewed.id}/hide", data={"csrf_token": token, "reason": "  "})
    assert refused.status_code == 400 and "Write the reason" in refused.text
    assert reload(reviewed).hidden_at is None

    hidden = console.post(
        f"/operator/reviews/{reviewed.id}/hide", data={"csrf_token": token, "reason": "Abusive words"}
    )
    assert hidden.status_code == 303
    review = reload(reviewed)
    assert review.hidden_reason == "Abusive words" and review.hidden_by == console.operator.id
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "review.hide")).scalar_one()
    assert event.target == f"review:{review.id}" and event.actor_id == console.operator.id
    assert "Abusive words" in event.after

    assert "Second key was used already." not in english(app.test_client()).get(f"/p/{product.slug}").text
    assert "Abusive words" in console.get("/operator/reviews?only=hidden").text
    shop = english(app.test_client())
    login(shop, merchant.user)
    assert "Hidden by the platform" in shop.get("/merchant/reviews").text

    assert console.post(f"/operator/reviews/{reviewed.id}/unhide", data={"csrf_token": token}).status_code == 303
    assert reload(reviewed).hidden_at is None
    assert (
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "review.unhide")) == 1
    )
    assert "Second key was used already." in app.test_client().get(f"/p/{product.slug}").text


def test_operator_filters_suspicious_reviews_and_sees_the_reason(console, merchant, product):
    sign_in(merchant, ip="198.51.100.3")
    reviews.submit_review(make_order(product, client_ip="198.51.100.3").token, 5, "suspect text")
    reviews.submit_review(make_order(product).token, 4, "honest text")
    page = console.get("/operator/reviews?only=suspicious").text
    assert "suspect text" in page and "honest text" not in page
    assert "Self-purchase" in page
    assert "honest text" in console.get(f"/operator/reviews?shop={merchant.public_id}").text


def test_unknown_review_is_404_for_the_operator(console):
    token = csrf_from(console.get("/operator/reviews").text)
    assert console.post("/operator/reviews/999999/hide", data={"csrf_token": token, "reason": "x"}).status_code == 404


def test_review_pages_refuse_who_must_not_see_them(app, merchant):
    anonymous = app.test_client()
    as_merchant = app.test_client()
    login(as_merchant, merchant.user)
    for url in ("/operator/reviews", "/merchant/reviews"):
        response = anonymous.get(url)
        assert response.status_code == 303 and "/login" in response.headers["Location"]
    assert as_merchant.get("/operator/reviews").status_code == 403
    token = csrf_from(as_merchant.get("/merchant/reviews").text)
    assert as_merchant.post("/operator/reviews/1/hide", data={"csrf_token": token, "reason": "x"}).status_code == 403
    token = csrf(anonymous)
    response = anonymous.post("/merchant/reviews/1/reply", data={"csrf_token": token, "text": "x"})
    assert response.status_code == 303 and "/login" in response.headers["Location"]


# -- the device cookie ------------------------------------------------------------------


def test_device_cookie_is_per_visitor_and_never_in_a_cached_page(make_app, merchant, make_product):
    app = make_app(PAGE_CACHE_SECONDS=60)
    product = make_product(keys=1)
    first, second = app.test_client(), app.test_client()
    pages = [c.get(f"/p/{product.slug}") for c in (first, second)]
    cookies = [c.get_cookie("faka_device") for c in (first, second)]
    assert all(c is not None and c.http_only and c.same_site == "Lax" for c in cookies)
    assert cookies[0].value != cookies[1].value
    for page, cookie in zip(pages, cookies):
        assert cookie.value not in page.text
    assert not any("faka_device" in h for h in first.get(f"/p/{product.slug}").headers.getlist("Set-Cookie"))

    first.set_cookie("faka_device", "not-a-device-id")
    assert any("faka_device=" in h for h in first.get("/").headers.getlist("Set-Cookie"))
    assert first.get_cookie("faka_device").value != "not-a-device-id"
