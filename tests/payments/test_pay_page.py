"""The way from "Buy" to the provider, as the server answers it: the buyer always lands on
faka's own pay page first (never on a redirect to another site, which neither htmx nor
the CSP's form-action allows), one order however often "Buy" is tapped, and an unpaid
order can be cancelled or paid another way."""

import re
from datetime import timedelta

import pytest

from conftest import count, csrf_from, provider_link, reload
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Coupon, Order
from faka.payments.gateways import configure_gateway

IPHONE = (
    "Mozilla/5.0 (iPhone; CPU iPhone OS 17_5 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
    "Version/17.5 Mobile/15E148 Safari/604.1"
)
DESKTOP = "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36"
WECHAT = (
    "Mozilla/5.0 (Linux; Android 14; Pixel 8 Build/AP2A; wv) AppleWebKit/537.36 (KHTML, like Gecko) "
    "Version/4.0 Chrome/126.0.6478.188 Mobile Safari/537.36 XWEB/1260117 MMWEBSDK/20240501 "
    "MMWEBID/1234 MicroMessenger/8.0.50.2701(0x28003237) WeChat/arm64 Weixin NetType/WIFI Language/zh_CN ABI/arm64"
)
EPAY_KEY = "k" * 32


@pytest.fixture
def epay(app):
    # Starting a 易支付 payment only signs a URL: no provider needs to answer here.
    configure_gateway(
        "epay",
        {"api_url": "https://pay.example.test/", "pid": "1001", "key": EPAY_KEY, "sign_type": "MD5"},
        enabled=True,
    )


def buy(client, product, user_agent=IPHONE, gateway="epay", htmx=False, **fields):
    page = client.get(f"/p/{product.slug}", headers={"User-Agent": user_agent})
    data = {
        "csrf_token": csrf_from(page.text),
        "quantity": 1,
        "email": "buyer@example.com",
        "query_password": "pw-1234",
        "gateway": gateway,
        **fields,
    }
    headers = {"User-Agent": user_agent}
    if htmx:
        headers.update({"HX-Request": "true", "HX-Boosted": "true"})
    return client.post(f"/p/{product.slug}/buy", data=data, headers=headers)


def test_buy_form_sent_by_htmx_is_told_to_load_the_pay_page(client, product, epay):
    response = buy(client, product, htmx=True)
    order = db.session.execute(db.select(Order)).scalar_one()
    assert response.status_code == 200
    assert response.headers["HX-Redirect"] == f"/pay/{order.token}"
    assert "Location" not in response.headers


def test_plain_buy_form_lands_on_the_pay_page_which_links_to_the_provider(client, product, epay):
    response = buy(client, product)
    order = db.session.execute(db.select(Order)).scalar_one()
    assert response.status_code == 303 and response.headers["Location"] == f"/pay/{order.token}"

    page = client.get(response.headers["Location"] + "?lang=en", headers={"User-Agent": IPHONE})
    assert page.status_code == 200  # never a redirect to the provider
    assert page.headers["Cache-Control"] == "no-store"
    link = provider_link(client, order, **{"User-Agent": IPHONE})
    assert link.startswith("https://pay.example.test/submit.php?") and f"out_trade_no={order.number}" in link
    assert "data-leave-now" in page.text  # on a phone faka.js follows it at once
    assert "Pay with EPay" in page.text and "¥10.00" in page.text and "data-countdown" in page.text
    assert "/static/icons/pay/epay.svg" in page.text
    assert "Scan this with your phone" not in page.text


def test_on_a_desktop_the_pay_page_waits_for_a_click_and_offers_the_phone(client, product, epay):
    buy(client, product, user_agent=DESKTOP)
    order = db.session.execute(db.select(Order)).scalar_one()
    page = client.get(f"/pay/{order.token}?lang=en", headers={"User-Agent": DESKTOP})
    assert page.status_code == 200
    assert provider_link(client, order, **{"User-Agent": DESKTOP}).startswith("https://pay.example.test/submit.php?")
    assert "data-leave-now" not in page.text
    assert "Or scan this with your phone to pay there." in page.text
    assert len(re.findall(r"<svg(?! class=\"icon-)", page.text)) == 1  # one QR code (besides the theme switch's icons)


def test_inside_wechat_a_way_that_cannot_work_there_shows_how_to_open_the_browser(client, product, epay):
    buy(client, product, user_agent=WECHAT)
    order = db.session.execute(db.select(Order)).scalar_one()
    page = client.get(f"/pay/{order.token}?lang=en", headers={"User-Agent": WECHAT})
    assert page.status_code == 200
    assert "Open this page in your browser to pay" in page.text
    assert "EPay cannot be used inside WeChat." in page.text
    assert f"http://localhost/pay/{order.token}</code>" in page.text and 'data-copy="pay-link"' in page.text
    assert 'class="button primary"' not in page.text
    # The sandbox works anywhere: offered as another way, opened at once.
    assert re.search(r'<details class="other-ways" open>', page.text)
    assert 'name="gateway" value="sandbox"' in page.text
    assert reload(order).payment_started_at is None  # nothing was started at the provider


def test_five_quick_taps_on_buy_make_one_order(client, product, epay):
    answers = [buy(client, product) for _ in range(5)]
    assert count(Order) == 1
    order = db.session.execute(db.select(Order)).scalar_one()
    assert {a.headers["Location"] for a in answers} == {f"/pay/{order.token}"}
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 1


def test_a_different_order_or_a_later_one_is_a_new_order(client, make_product, epay):
    product = make_product(keys=20)
    buy(client, product)
    buy(client, product, email="other@example.com")  # another email: another order
    assert count(Order) == 2
    for order in db.session.execute(db.select(Order)).scalars():
        order.created_at -= timedelta(seconds=30)
    db.session.commit()
    buy(client, product)  # the same order again, but not a repeated tap
    assert count(Order) == 3


def test_another_browser_placing_the_same_order_gets_its_own(app, product, epay):
    buy(app.test_client(), product)
    buy(app.test_client(), product)
    assert count(Order) == 2


def test_query_password_survives_a_form_error_and_the_page_is_not_cached(client, product, epay):
    answer = buy(client, product, email="not-an-email")
    assert answer.status_code == 400
    assert re.search(r'<input[^>]*id="query_password"[^>]*value="pw-1234"', answer.text)
    assert answer.headers["Cache-Control"] == "no-store"
    assert count(Order) == 0


def test_buyer_cancels_an_unpaid_order_and_its_keys_and_coupon_use_return(client, product, epay, merchant):
    coupon = Coupon(merchant_id=merchant.id, code="SAVE1", kind="fixed", value=100, usage_limit=5)
    db.session.add(coupon)
    db.session.commit()
    buy(client, product, coupon="SAVE1")
    order = db.session.execute(db.select(Order)).scalar_one()
    assert reload(coupon).used_count == 1 and count(CardKey, CardKey.status == CardKey.RESERVED) == 1

    token = csrf_from(client.get(f"/pay/{order.token}").text)
    answer = client.post(f"/pay/{order.token}/cancel", data={"csrf_token": token})
    assert answer.status_code == 303 and answer.headers["Location"] == f"/order/{order.token}"
    assert reload(order).status == Order.CANCELLED and reload(order).cancelled_at is not None
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 0
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 5
    assert reload(coupon).used_count == 0
    shown = client.get(f"/order/{order.token}?lang=en")
    assert "Cancelled" in shown.text
    # Its pay page now leads to the order page; cancelling again changes nothing.
    assert client.get(f"/pay/{order.token}").status_code == 303
    again = client.post(f"/pay/{order.token}/cancel?lang=en", data={"csrf_token": token})
    assert again.status_code == 303 and reload(coupon).used_count == 0
    assert "This order is no longer waiting for payment." in client.get(again.headers["Location"] + "?lang=en").text


def test_a_paid_order_cannot_be_cancelled(client, product, place, pay):
    order = place(product)
    pay(order)
    page = client.get(f"/order/{order.token}")
    answer = client.post(f"/pay/{order.token}/cancel", data={"csrf_token": csrf_from(page.text)})
    assert answer.status_code == 303
    assert reload(order).status == Order.DELIVERED
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 1


def test_cancel_needs_the_csrf_token_and_a_real_order(client, product, epay):
    buy(client, product)
    order = db.session.execute(db.select(Order)).scalar_one()
    assert client.post(f"/pay/{order.token}/cancel").status_code == 400
    assert reload(order).status == Order.PENDING
    page = client.get(f"/pay/{order.token}")
    assert client.post("/pay/" + "0" * 32 + "/cancel", data={"csrf_token": csrf_from(page.text)}).status_code == 404


def test_buyer_pays_another_way_before_paying(client, product, epay):
    buy(client, product, gateway="sandbox")
    order = db.session.execute(db.select(Order)).scalar_one()
    page = client.get(f"/pay/{order.token}?lang=en", headers={"User-Agent": IPHONE})
    assert 'name="gateway" value="epay"' in page.text  # offered under "Pay another way"
    answer = client.post(f"/pay/{order.token}/method", data={"csrf_token": csrf_from(page.text), "gateway": "epay"})
    assert answer.status_code == 303 and answer.headers["Location"] == f"/pay/{order.token}"
    assert reload(order).gateway == "epay"
    assert provider_link(client, order, **{"User-Agent": IPHONE}).startswith("https://pay.example.test/submit.php?")


@pytest.mark.parametrize("choice", ["stripe", "nonsense", ""])
def test_a_way_of_paying_that_is_not_enabled_is_refused_and_nothing_changes(client, product, epay, choice):
    buy(client, product)
    order = db.session.execute(db.select(Order)).scalar_one()
    page = client.get(f"/pay/{order.token}")
    answer = client.post(
        f"/pay/{order.token}/method?lang=en", data={"csrf_token": csrf_from(page.text), "gateway": choice}
    )
    assert answer.status_code == 303
    assert reload(order).gateway == "epay"
    again = client.get(answer.headers["Location"] + "?lang=en")
    assert "This payment method is not available right now" in again.text


def test_a_way_of_paying_switched_off_after_ordering_offers_the_others(client, product, epay):
    buy(client, product)
    order = db.session.execute(db.select(Order)).scalar_one()
    configure_gateway("epay", {}, enabled=False)
    page = client.get(f"/pay/{order.token}?lang=en", headers={"User-Agent": IPHONE})
    assert page.status_code == 502 and "Nothing was charged" in page.text
    assert 'name="gateway" value="sandbox"' in page.text  # pay another way, on the same order
    answer = client.post(f"/pay/{order.token}/method", data={"csrf_token": csrf_from(page.text), "gateway": "sandbox"})
    assert answer.status_code == 303 and reload(order).gateway == "sandbox"
    assert 'action="/pay/sandbox/notify"' in client.get(f"/pay/{order.token}").text
