"""The reputation buyers see: the Bayesian rating from counted reviews, 90-day complaint
and refund rates, and the shop and product pages that show them with the reviews."""

import re
import secrets
import time
from datetime import timedelta

import pytest
from sqlalchemy import event
from test_reviews import add_review, make_order

from faka.accounts import users
from faka.accounts.models import Merchant
from faka.complaints.models import Complaint
from faka.core.types import utcnow
from faka.extensions import db
from faka.orders.models import Order
from faka.reviews import reputation, reviews
from tests.conftest import no_horizontal_scroll


def english(client):
    client.get("/?lang=en")
    return client


def add_complaint(order, days_ago: float):
    db.session.add(
        Complaint(
            ref=secrets.token_hex(8),
            order_id=order.id,
            merchant_id=order.merchant_id,
            reason=Complaint.KEY_INVALID,
            description="bad key",
            created_at=utcnow() - timedelta(days=days_ago),
        )
    )
    db.session.commit()


def other_shop(make_product, name="Other Shop"):
    other = users.create_merchant(f"o{secrets.token_hex(3)}@shop.test", "merchant-pass-1", name, approved=True)
    product = make_product(keys=0)
    product.merchant_id = other.id
    db.session.commit()
    return other, product


def figure(html: str, css_class: str) -> str:
    match = re.search(rf'class="{css_class}">([^<]+)<', html)
    assert match, css_class
    return match.group(1).strip()


# -- the numbers ------------------------------------------------------------------------


def test_bayesian_rating_pulls_few_reviews_towards_the_platform_mean():
    assert reputation.bayesian_rating(0, 0, 4.2) == pytest.approx(4.2)
    assert reputation.bayesian_rating(5, 1, 4.0) == pytest.approx(45 / 11)
    assert reputation.bayesian_rating(5 * 200, 200, 4.0) == pytest.approx((40 + 1000) / 210)
    # One perfect review does not beat two hundred reviews averaging 4.8.
    assert reputation.bayesian_rating(5, 1, 4.0) < reputation.bayesian_rating(960, 200, 4.0)


def test_rating_counts_only_counted_reviews_against_the_platform_prior(app, merchant, product, make_product):
    for rating in (5, 5, 4):
        add_review(make_order(product), rating)
    add_review(make_order(product), 1, suspicious_reason=reviews.SELF_PURCHASE)
    add_review(make_order(product), 1, hidden_at=utcnow(), hidden_reason="spam")
    _other, other_product = other_shop(make_product)
    add_review(make_order(other_product), 2)

    rep = reputation.merchant_reputation(merchant.id)
    assert (rep.reviews, rep.rating_sum) == (3, 14)
    assert rep.platform_mean == pytest.approx((5 + 5 + 4 + 2) / 4)
    assert rep.mean == pytest.approx(14 / 3)
    assert rep.rating == pytest.approx((10 * 4.0 + 14) / 13)


def test_figures_are_reused_for_a_minute_while_pages_are_cached(make_app, merchant, product, make_product, monkeypatch):
    app = make_app(PAGE_CACHE_SECONDS=2)
    with app.app_context():
        add_review(make_order(product), 5)
        assert (reputation.merchant_reputation(merchant.id).reviews, reputation.platform_mean()) == (1, 5)
        other, other_product = other_shop(make_product)
        add_review(make_order(product), 2)
        add_review(make_order(other_product), 2)
        first = reputation.merchant_reputation(merchant.id)
        assert (first.reviews, first.platform_mean) == (1, 5)  # both reused
        rep = reputation.merchant_reputation(other.id)
        assert (rep.reviews, rep.platform_mean) == (1, 5)  # another shop's own figures are its own; the prior is shared

        later = time.monotonic() + reputation.REPUTATION_SECONDS + 1
        monkeypatch.setattr("faka.core.cache.time.monotonic", lambda: later)
        rep = reputation.merchant_reputation(merchant.id)
        assert (rep.reviews, rep.rating_sum, rep.platform_mean) == (2, 7, 3)


def test_prior_is_four_while_nobody_has_a_counted_review(app, merchant, product):
    add_review(make_order(product), 1, suspicious_reason=reviews.REVIEW_BURST)
    rep = reputation.merchant_reputation(merchant.id)
    assert rep.reviews == 0 and rep.platform_mean == reputation.PRIOR_FALLBACK
    assert rep.rating == pytest.approx(4.0) and rep.mean is None


def shop_history(product):
    """Orders and complaints around the 90-day line (see the expectations in the tests)."""
    now = utcnow()

    def days(n):
        return now - timedelta(days=n)

    for _ in range(3):
        make_order(product, paid_at=days(1))
    refunded = make_order(product, paid_at=days(10))
    partly = make_order(product, paid_at=days(20))
    old = [make_order(product, paid_at=days(100)) for _ in range(2)]
    old_refund = make_order(product, paid_at=days(100))
    make_order(product, status=Order.PENDING)
    for order, status, when in (
        (refunded, Order.REFUNDED, days(5)),
        (partly, Order.PARTIALLY_REFUNDED, days(3)),
        (old_refund, Order.REFUNDED, days(95)),
    ):
        order.status, order.refunded_at = status, when
    db.session.commit()
    add_complaint(refunded, days_ago=10)
    add_complaint(old[0], days_ago=120)


def test_complaint_and_refund_rates_look_at_the_last_90_days(app, merchant, product, make_product):
    shop_history(product)
    _other, other_product = other_shop(make_product)
    add_complaint(make_order(other_product), days_ago=1)

    rep = reputation.merchant_reputation(merchant.id)
    assert rep.delivered == 8  # all time, refunded ones included: they were delivered
    assert (rep.delivered_recent, rep.complaints_recent) == (5, 1)
    assert (rep.paid_recent, rep.refunded_recent) == (5, 2)
    assert rep.complaint_rate == pytest.approx(0.2)
    assert rep.refund_rate == pytest.approx(0.4)


def test_rates_are_none_with_nothing_to_divide(app, merchant):
    rep = reputation.merchant_reputation(merchant.id)
    assert rep.complaint_rate is None and rep.refund_rate is None and rep.delivered == 0


def test_verified_only_after_an_operator_approved_the_qualification(app, merchant):
    assert not reputation.merchant_reputation(merchant.id).verified
    merchant.reviewed_at = utcnow()
    db.session.commit()
    assert reputation.merchant_reputation(merchant.id).verified
    merchant.status = Merchant.FROZEN
    db.session.commit()
    assert not reputation.merchant_reputation(merchant.id).verified


# -- the pages --------------------------------------------------------------------------


def test_product_and_shop_pages_show_reputation_and_reviews(client, merchant, product):
    english(client)
    merchant.reviewed_at = utcnow()
    db.session.commit()
    shop_history(product)
    add_review(make_order(product), 4, body="Quick delivery", reply="Thanks!")

    page = client.get(f"/p/{product.slug}").text
    assert f'href="/shop/{merchant.public_id}"' in page
    assert figure(page, "rep-delivered") == "9"
    assert figure(page, "rep-complaints") == "16.7%"  # 1 complaint / 6 delivered in 90 days
    assert figure(page, "rep-refunds") == "33.3%"  # 2 refunded / 6 paid in 90 days
    assert figure(page, "rating-score") == "4.0"
    assert "Qualification verified" in page and "How these figures are worked out" in page
    assert "Quick delivery" in page and "Thanks!" in page
    assert "4 out of 5 stars" in page

    shop = client.get(f"/shop/{merchant.public_id}")
    assert shop.status_code == 200
    assert "Test Shop" in shop.text and product.title in shop.text
    assert figure(shop.text, "rep-delivered") == "9" and "Quick delivery" in shop.text


def test_a_shop_without_anything_yet_shows_dashes(client, merchant, product):
    english(client)
    page = client.get(f"/shop/{merchant.public_id}").text
    assert figure(page, "rep-complaints") == "—" and figure(page, "rep-refunds") == "—"
    assert "No ratings yet" in page and "No reviews yet." in page


def test_shop_page_is_only_for_approved_shops(client, merchant, product):
    assert client.get("/shop/000000000000").status_code == 404
    merchant.status = Merchant.FROZEN
    db.session.commit()
    assert client.get(f"/shop/{merchant.public_id}").status_code == 404
    assert client.get(f"/shop/{merchant.public_id}/reviews").status_code == 404


def reviews_in_order(html: str) -> list[str]:
    return re.findall(r'<p class="review-body">([^<]+)</p>', html)


def test_reviews_sort_newest_or_lowest_and_page(client, merchant, product):
    english(client)
    start = utcnow() - timedelta(days=30)
    for i in range(12):
        add_review(make_order(product), rating=5 - i % 5, body=f"review {i:02d}", created_at=start + timedelta(hours=i))

    newest = reviews_in_order(client.get(f"/p/{product.slug}").text)
    assert newest == [f"review {i:02d}" for i in range(11, 1, -1)]  # first page of ten
    lowest = reviews_in_order(client.get(f"/p/{product.slug}/reviews?sort=lowest").text)
    assert lowest[:3] == ["review 09", "review 04", "review 08"]  # one star (newest first), then two
    second = client.get(f"/p/{product.slug}/reviews?sort=newest&page=2").text
    assert reviews_in_order(second) == ["review 01", "review 00"]
    assert f'href="/p/{product.slug}/reviews?sort=newest&amp;page=1"' in second
    shop = client.get(f"/shop/{merchant.public_id}/reviews?sort=lowest").text
    assert reviews_in_order(shop)[0] == "review 09" and product.title in shop


def test_reviews_list_is_a_partial_for_htmx_and_a_page_for_plain_links(client, product):
    add_review(make_order(product), 3, body="middling")
    plain = client.get(f"/p/{product.slug}/reviews?sort=lowest")
    assert plain.text.startswith("<!doctype html>") and "middling" in plain.text
    partial = client.get(f"/p/{product.slug}/reviews?sort=lowest", headers={"HX-Request": "true"})
    assert partial.text.lstrip().startswith("<section") and "middling" in partial.text
    assert "HX-Request" in partial.headers["Vary"]
    boosted = client.get(f"/p/{product.slug}/reviews", headers={"HX-Request": "true", "HX-Boosted": "true"})
    assert boosted.text.startswith("<!doctype html>")
    assert client.get("/p/nope/reviews").status_code == 404


def test_hidden_reviews_are_not_shown_and_suspicious_ones_are_shown_unmarked(client, merchant, product):
    add_review(make_order(product), 1, body="hidden one", hidden_at=utcnow(), hidden_reason="abuse")
    add_review(make_order(product), 5, body="suspect one", suspicious_reason=reviews.SELF_PURCHASE)
    for url in (f"/p/{product.slug}", f"/shop/{merchant.public_id}", f"/p/{product.slug}/reviews?sort=lowest"):
        html = client.get(url).text
        assert "hidden one" not in html and "abuse" not in html
        assert "suspect one" in html and "self_purchase" not in html


def test_product_page_queries_do_not_grow_with_reviews(client, make_product):
    product = make_product(keys=3)
    add_review(make_order(product), 4)

    def statements() -> int:
        count = 0

        def counter(*_args):
            nonlocal count
            count += 1

        event.listen(db.engine, "before_cursor_execute", counter)
        try:
            assert client.get(f"/p/{product.slug}").status_code == 200
        finally:
            event.remove(db.engine, "before_cursor_execute", counter)
        return count

    client.get(f"/p/{product.slug}")
    few = statements()
    for i in range(15):
        add_review(make_order(product), 1 + i % 5, reply="thanks")
    assert statements() == few


# -- on a phone -------------------------------------------------------------------------


def test_shop_and_product_pages_fit_a_phone_and_sort_in_place(live_server, merchant, make_product, phone, tmp_path):
    _app, base = live_server
    merchant.name = "一家名字相当长的数字商品专营店铺"
    merchant.reviewed_at = utcnow()
    db.session.commit()
    product = make_product(keys=3, title="Steam 钱包充值卡 100 元")
    start = utcnow() - timedelta(days=1)
    for i, rating in enumerate((5, 2, 4)):
        add_review(
            make_order(product),
            rating,
            created_at=start + timedelta(minutes=i),
            body=f"评价{i} " + "很长的评价内容没有空格" * 12 + " https://example.com/" + "x" * 80,
            reply="感谢您的反馈" * 8 if i == 0 else None,
        )

    phone.goto(f"{base}/shop/{merchant.public_id}?lang=en")
    assert phone.locator(".rep-figures").is_visible()
    assert phone.locator(".review").count() == 3
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "shop-360.png"), full_page=True)

    phone.goto(f"{base}/p/{product.slug}")
    assert no_horizontal_scroll(phone)
    url = phone.url
    assert phone.locator(".review .stars").first.get_attribute("aria-label") == "4 out of 5 stars"
    phone.click("text=Lowest rating first")
    phone.wait_for_selector(".review-sort strong:has-text('Lowest rating first')")
    assert phone.locator(".review .stars").first.get_attribute("aria-label") == "2 out of 5 stars"
    assert phone.url == url  # swapped in place
    phone.click(".rep-explain summary")
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "product-360.png"), full_page=True)
    assert phone.console_errors == []
