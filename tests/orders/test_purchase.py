"""The buyer's whole purchase through the web pages, as a browser without JavaScript does it."""

import re
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import csrf_from, key_texts, reload
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order


def buy(client, product, quantity=1, email="buyer@example.com", password="secret-1"):
    page = client.get(f"/p/{product.slug}")
    assert page.status_code == 200
    return client.post(
        f"/p/{product.slug}/buy",
        data={"csrf_token": csrf_from(page.text), "quantity": quantity, "email": email, "query_password": password},
    )


def test_home_lists_products_with_live_stock(client, make_product):
    make_product(keys=5, title="Steam 充值卡")
    make_product(keys=0, title="空库存商品")
    page = client.get("/")
    assert page.status_code == 200
    assert "Steam 充值卡" in page.text and "¥10.00" in page.text
    assert "库存：5" in page.text or "In stock: 5" in page.text
    assert "已售罄" in page.text or "Sold out" in page.text


def test_product_page_shows_sanitised_markdown_and_policy(client, make_product):
    product = make_product(
        description_md="**粗体** <script>alert(1)</script> [x](javascript:alert(1))",
        refund_policy="无效卡密 24 小时内可投诉",
    )
    page = client.get(f"/p/{product.slug}")
    assert "<strong>粗体</strong>" in page.text
    assert "<script>alert" not in page.text
    assert 'href="javascript:' not in page.text
    assert "无效卡密 24 小时内可投诉" in page.text
    assert "Test Shop" in page.text


def test_buyer_pays_on_sandbox_page_and_sees_keys(client, product):
    response = buy(client, product, quantity=2)
    assert response.status_code == 303
    pay_page = client.get(response.headers["Location"])
    assert pay_page.status_code == 200
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', pay_page.text))
    action = re.search(r'<form method="post" action="([^"]+)"', pay_page.text).group(1)
    assert action == "/pay/sandbox/notify"

    paid = client.post(action, data=fields)
    assert paid.status_code == 303
    order_page = client.get(paid.headers["Location"])
    shown = re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', order_page.text)
    order = db.session.execute(select(Order)).scalar_one()
    assert order.status == Order.DELIVERED
    assert sorted(shown) == sorted(key_texts(order))
    assert len(shown) == 2
    assert 'data-copy="key-1"' in order_page.text
    # Stock now counts only the three keys left.
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.AVAILABLE)) == 3
    # The merchant is credited (pending) and an email is owed.
    entries = db.session.execute(select(LedgerEntry).order_by(LedgerEntry.kind)).scalars().all()
    assert {e.kind: e.amount for e in entries} == {"sale": 2000, "fee": -60}
    assert db.session.execute(select(OutboxEmail)).scalar_one().to_addr == "buyer@example.com"


def test_order_url_uses_random_token_not_id(client, product):
    response = buy(client, product)
    token = response.headers["Location"].rsplit("/", 1)[1]
    order = db.session.execute(select(Order)).scalar_one()
    assert token == order.token and re.fullmatch(r"[0-9a-f]{32}", token)
    assert client.get(f"/order/{order.id}").status_code == 404


def test_status_polls_until_final_then_answers_286(client, product, place, pay):
    order = place(product)
    pending = client.get(f"/order/{order.token}/status")
    assert pending.status_code == 200
    assert 'hx-trigger="every 2s"' in pending.text
    assert 'hx-swap="outerHTML"' in pending.text
    pay(order)
    final = client.get(f"/order/{order.token}/status")
    assert final.status_code == 286
    assert "hx-trigger" not in final.text
    assert final.text.count('class="card-key"') == 1


def test_order_page_without_javascript_has_refresh_link(client, product, place):
    order = place(product)
    page = client.get(f"/order/{order.token}")
    assert f'href="/order/{order.token}"' in page.text
    assert f'href="/pay/{order.token}"' in page.text


def test_out_of_stock_shows_message_and_creates_nothing(client, product):
    response = buy(client, product, quantity=6)
    assert response.status_code == 409
    assert "库存不足" in response.text or "Not enough stock" in response.text
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.RESERVED)) == 0


def test_the_last_keys_held_by_a_lapsed_unpaid_order_go_to_the_next_buyer(client, make_product, place):
    product = make_product(keys=2)
    lapsed = [place(product), place(product)]
    lapsed_ids = [order.id for order in lapsed]
    for order in lapsed:
        order.expires_at = utcnow() - timedelta(seconds=1)  # not paid in time; the reconciler has not come by
    db.session.commit()

    response = buy(client, product, quantity=1)
    assert response.status_code == 303
    db.session.expire_all()
    assert [db.session.get(Order, order_id).status for order_id in lapsed_ids] == [Order.EXPIRED] * 2
    keys = db.session.scalars(select(CardKey).where(CardKey.product_id == product.id)).all()
    assert sorted(k.status for k in keys) == [CardKey.AVAILABLE, CardKey.RESERVED]
    assert all(k.order_id not in lapsed_ids for k in keys)


def test_bad_input_is_explained_and_changes_nothing(client, product):
    for quantity, email in [(0, "a@b.cn"), ("abc", "a@b.cn"), (1, "not-an-email"), (11, "a@b.cn")]:
        response = buy(client, product, quantity=quantity, email=email)
        assert response.status_code == 400
        assert 'class="error"' in response.text or 'class="alert"' in response.text
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0


@pytest.mark.parametrize("state", ["missing", "hidden"])
def test_buying_a_product_not_on_sale_is_a_404_and_creates_nothing(client, product, state):
    page = client.get(f"/p/{product.slug}")
    form = {"csrf_token": csrf_from(page.text), "quantity": 1, "email": "a@b.cn", "query_password": "secret-1"}
    slug = product.slug
    if state == "missing":
        slug = "no-such-product"
    else:
        product.visible = False
        db.session.commit()
    response = client.post(f"/p/{slug}/buy", data=form)
    assert response.status_code == 404 and "Traceback" not in response.text
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.RESERVED)) == 0


def test_checkout_without_csrf_token_is_refused(client, product):
    response = client.post(f"/p/{product.slug}/buy", data={"quantity": 1})
    assert response.status_code == 400
    assert "Traceback" not in response.text
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_tier_price_applies_from_threshold(app, client, make_product, place):
    from faka.catalog.models import TierPrice

    product = make_product(keys=10, price=1000)
    product.variants[0].tiers.append(TierPrice(min_quantity=3, unit_price=900))
    db.session.commit()
    assert place(product, 2).total == 2000
    assert place(product, 3).total == 2700
    assert "¥9.00" in client.get(f"/p/{product.slug}").text


def test_fixed_product_delivers_same_content(client, make_product, place, pay):
    from faka.core.crypto import vault

    product = make_product(
        keys=0, delivery_type="fixed", fixed_content_ciphertext=vault().encrypt("https://dl.example/x 提取码 AB12")
    )
    order = place(product)
    pay(order)
    page = client.get(f"/order/{order.token}")
    assert reload(order).status == Order.DELIVERED
    assert "提取码 AB12" in page.text


def test_manual_product_waits_for_merchant(client, make_product, place, pay):
    product = make_product(keys=0, delivery_type="manual", manual_promise_hours=2)
    order = place(product)
    pay(order)
    assert reload(order).status == Order.PAID
    status = client.get(f"/order/{order.token}/status")
    assert status.status_code == 200 and "every 30s" in status.text


def test_english_is_switchable(client, product):
    page = client.get(f"/p/{product.slug}?lang=en")
    assert "Buy now" in page.text
    assert "Buy now" in client.get(f"/p/{product.slug}").text  # remembered
    assert "立即购买" in client.get(f"/p/{product.slug}?lang=zh_CN").text


def test_footer_shows_site_name_and_icp(client, product):
    from faka.platform.settings import set_setting

    set_setting("site_name", "星辰发卡")
    set_setting("icp_number", "京ICP备12345678号")
    set_setting("announcement", "国庆期间正常发货")
    page = client.get("/")
    assert "星辰发卡" in page.text and "京ICP备12345678号" in page.text and "国庆期间正常发货" in page.text
