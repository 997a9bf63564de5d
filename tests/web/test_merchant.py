"""The merchant back office: onboarding, products, keys and orders."""

import io
import re
import time

import pytest
from PIL import Image
from sqlalchemy import func, select

from conftest import csrf_from, login, reload
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.core.crypto import vault
from faka.extensions import db
from faka.inventory.models import CardKey, KeyImport
from faka.platform.models import Setting


@pytest.fixture
def merchant_client(client, merchant):
    login(client, merchant.user)
    return client


def post(client, url, data, page=None, **kwargs):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **data}, **kwargs)


def png_bytes(exif: bool = False) -> bytes:
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    out = io.BytesIO()
    if exif:
        exif_data = Image.Exif()
        exif_data[0x010F] = "SecretCameraMaker"
        image.save(out, "JPEG", exif=exif_data)
    else:
        image.save(out, "PNG")
    return out.getvalue()


# -- access -----------------------------------------------------------------------------


def test_back_office_needs_a_merchant_login(client, make_app):
    assert client.get("/merchant/").status_code == 303
    assert "/login" in client.get("/merchant/").headers["Location"]
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    login(client, operator)
    assert client.get("/merchant/").headers["Location"].endswith("/account/2fa/setup")  # 2FA first


# -- onboarding -------------------------------------------------------------------------


def test_new_merchant_submits_qualification_with_image(client):
    pending = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    login(client, pending.user)
    page = client.get("/merchant/")
    assert "提交资质" in page.text or "Submit your qualification" in page.text
    response = post(
        client,
        "/merchant/qualification",
        {
            "legal_name": "张三",
            "entity_type": "individual",
            "id_number": "11010519491231002X",
            "contact": "13800000000",
            "licence_image": (io.BytesIO(png_bytes(exif=True)), "licence.jpg"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    merchant = reload(pending)
    assert merchant.submitted_at is not None and merchant.status == Merchant.PENDING
    assert "11010519491231002X" not in merchant.id_number_ciphertext
    assert vault().decrypt(merchant.id_number_ciphertext) == "11010519491231002X"
    image = client.get("/merchant/qualification/licence")
    assert image.status_code == 200 and image.mimetype == "image/jpeg"
    assert b"SecretCameraMaker" not in image.data  # metadata dropped by re-encoding
    page = client.get("/merchant/qualification")
    assert "110" in page.text and "002X" in page.text and "11010519491231002X" not in page.text
    # Under review: a second submission is refused and changes nothing.
    again = post(
        client,
        "/merchant/qualification",
        {
            "legal_name": "李四",
            "entity_type": "company",
            "id_number": "91350100M000100Y43",
            "contact": "x@y.cn",
        },
        page="/merchant/",
        content_type="multipart/form-data",
    )
    assert again.status_code == 400
    assert reload(pending).legal_name == "张三"


@pytest.mark.parametrize("upload", [b"not an image at all", b"GIF89a" + b"\x00" * 100, b""])
def test_qualification_refuses_non_images(client, upload):
    pending = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    login(client, pending.user)
    response = post(
        client,
        "/merchant/qualification",
        {
            "legal_name": "张三",
            "entity_type": "individual",
            "id_number": "11010519491231002X",
            "contact": "13800000000",
            "licence_image": (io.BytesIO(upload), "x.png"),
        },
        content_type="multipart/form-data",
    )
    assert response.status_code == 400
    assert reload(pending).submitted_at is None


def test_unapproved_merchant_products_stay_hidden(client, category):
    pending = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    login(client, pending.user)
    response = post(client, "/merchant/products/new", product_form(category, title="隐藏的商品"))
    assert response.status_code == 303
    assert "隐藏的商品" not in client.get("/").text


# -- products ---------------------------------------------------------------------------


def product_form(category, **changes):
    form = {
        "title": "Steam 充值卡",
        "category_id": category.id,
        "price": "48.00",
        "tiers": "3=47.00, 10=45.50",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 2,
        "visible": "y",
        "description_md": "**好**",
        "refund_policy": "不退",
    }
    form.update(changes)
    return form


def test_merchant_creates_product_in_fen_with_tiers(merchant_client, merchant, category):
    response = post(merchant_client, "/merchant/products/new", product_form(category))
    assert response.status_code == 303
    product = db.session.execute(select(Product)).scalar_one()
    assert (product.price, product.merchant_id) == (4800, merchant.id)
    [variant] = product.variants
    assert [(t.min_quantity, t.unit_price) for t in variant.tiers] == [(3, 4700), (10, 4550)]
    assert (variant.name, variant.max_per_order, variant.low_stock_threshold) == ("", 5, 2)
    assert "Steam 充值卡" in merchant_client.get("/").text


@pytest.mark.parametrize(
    "changes",
    [
        {"price": "-1"},
        {"price": "0"},
        {"price": "12.345"},
        {"price": "abc"},
        {"price": "2000000"},
        {"min_per_order": 5, "max_per_order": 2},
        {"max_per_order": 1000},
        {"tiers": "three for cheap"},
        {"title": ""},
        {"delivery_type": "fixed", "fixed_content": ""},
    ],
)
def test_bad_product_input_is_refused_and_changes_nothing(merchant_client, category, changes):
    response = post(merchant_client, "/merchant/products/new", product_form(category, **changes))
    assert response.status_code == 400
    assert 'class="error"' in response.text or 'class="alert"' in response.text
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Product)) == 0


def test_prohibited_word_sends_product_to_moderation(merchant_client, category):
    db.session.add(Setting(key="prohibited_words", value="破解版\n外挂"))
    db.session.commit()
    post(merchant_client, "/merchant/products/new", product_form(category, title="游戏外挂 永久版"))
    product = db.session.execute(select(Product)).scalar_one()
    assert product.moderation == "pending" and product.moderation_reason == "外挂"
    assert "游戏外挂" not in merchant_client.get("/").text
    assert merchant_client.get(f"/p/{product.slug}").status_code == 404


def test_fixed_content_is_stored_encrypted(merchant_client, category):
    post(
        merchant_client,
        "/merchant/products/new",
        product_form(category, delivery_type="fixed", fixed_content="提取码 9Z9Z"),
    )
    product = db.session.execute(select(Product)).scalar_one()
    assert "9Z9Z" not in product.fixed_content_ciphertext
    assert vault().decrypt(product.fixed_content_ciphertext) == "提取码 9Z9Z"


def test_hide_and_delete_product(merchant_client, make_product):
    product = make_product(keys=3, title="要删除的")
    post(merchant_client, f"/merchant/products/{product.slug}/visibility", {"visible": "0"}, page="/merchant/products")
    assert "要删除的" not in merchant_client.get("/").text
    post(merchant_client, f"/merchant/products/{product.slug}/delete", {}, page="/merchant/products")
    assert reload(product).deleted_at is not None
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.VOID)) == 3
    assert merchant_client.get(f"/merchant/products/{product.slug}/edit").status_code == 404


def test_markdown_preview_is_sanitised(merchant_client):
    response = post(
        merchant_client,
        "/merchant/products/preview",
        {"description_md": "# 标题\n<script>x()</script>"},
        page="/merchant/products/new",
    )
    assert "<h1>标题</h1>" in response.text and "<script>" not in response.text


# -- keys -------------------------------------------------------------------------------


def test_paste_import_reports_each_kind(merchant_client, make_product):
    product = make_product(keys=0)
    post(merchant_client, f"/merchant/products/{product.slug}/keys", {"keys": "AAA-1\nAAA-2\n", "separator": "newline"})
    response = post(
        merchant_client,
        f"/merchant/products/{product.slug}/keys",
        {"keys": "AAA-2\nBBB-1\nBBB-1\n" + "x" * 3000 + "\n", "separator": "newline"},
    )
    assert response.status_code == 200
    numbers = re.findall(r"<dd[^>]*>(\d+)</dd>", response.text)
    assert numbers[-4:] == ["1", "1", "1", "1"]  # added, repeated, already in stock, invalid
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.product_id == product.id)) == 3


def test_file_import_with_chosen_separator(merchant_client, make_product):
    product = make_product(keys=0)
    data = "K1,K2,K3\nK4".encode("gb18030")
    response = post(
        merchant_client,
        f"/merchant/products/{product.slug}/keys",
        {"keys_file": (io.BytesIO(data), "keys.csv"), "separator": "comma"},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.product_id == product.id)) == 4


def test_big_import_runs_as_a_job_with_progress(merchant_client, make_product):
    product = make_product(keys=0)
    keys = "\n".join(f"BIG-{i:06d}" for i in range(6000))
    response = post(merchant_client, f"/merchant/products/{product.slug}/keys", {"keys": keys, "separator": "newline"})
    assert response.status_code == 303 and "/merchant/imports/" in response.headers["Location"]
    job = db.session.execute(select(KeyImport)).scalar_one()
    assert job.status == "done" and job.added == 6000 and job.processed == 6000
    progress = merchant_client.get(response.headers["Location"], headers={"HX-Request": "true"})
    assert progress.status_code == 286 and "6000" in progress.text


def test_an_import_whose_job_was_lost_is_queued_again_by_the_reconciler_and_runs_once(app, merchant, make_product):
    from faka.core import clock
    from faka.inventory import keys
    from faka.ops.reconcile import reconcile

    product = make_product(keys=0)
    waiting = keys.start_import(merchant.id, product.variants[0], "\n".join(f"LOST-{i}" for i in range(3000)))
    assert reconcile().imports == 0  # just queued: its job may still be on its way
    waiting.created_at = clock.now() - keys.IMPORT_GRACE - keys.IMPORT_GRACE
    db.session.commit()
    assert reconcile().imports == 1  # the job was lost (say, with Redis): queued again, and it ran
    job = reload(waiting)
    assert job.status == KeyImport.DONE and job.added == 3000
    assert keys.run_import(job.id).added == 3000  # a late copy of the lost job changes nothing
    assert db.session.scalar(select(func.count()).select_from(CardKey)) == 3000
    assert reconcile().imports == 0


def test_void_and_export_unsold_keys(merchant_client, merchant, make_product):
    product = make_product(keys=0)
    post(merchant_client, f"/merchant/products/{product.slug}/keys", {"keys": "V1\nV2\nV3", "separator": "newline"})
    post(
        merchant_client,
        f"/merchant/products/{product.slug}/keys/void",
        {"keys": "V2\nNOT-THERE"},
        page=f"/merchant/products/{product.slug}/keys",
    )
    unconfirmed = post(
        merchant_client,
        f"/merchant/products/{product.slug}/keys/export",
        {},
        page=f"/merchant/products/{product.slug}/keys",
    )
    assert (
        unconfirmed.status_code == 303 and "/reauth" in unconfirmed.headers["Location"] and "V1" not in unconfirmed.text
    )
    assert post(merchant_client, "/reauth", {"password": "merchant-pass-1"}).status_code == 303
    export = post(
        merchant_client,
        f"/merchant/products/{product.slug}/keys/export",
        {},
        page=f"/merchant/products/{product.slug}/keys",
    )
    assert export.status_code == 200 and export.text.split() == ["V1", "V3"]


# -- orders -----------------------------------------------------------------------------


def test_orders_filter_paginate_and_export(merchant_client, make_product, place, pay):
    product = make_product(keys=60, max_per_order=1)
    orders = [place(product, email=f"b{i}@example.com") for i in range(55)]
    pay(orders[0])
    page_one = merchant_client.get("/merchant/orders")
    assert (
        "55" in page_one.text
        and page_one.text.count("/merchant/orders/2026") + page_one.text.count("/merchant/orders/20") >= 50
    )
    assert "page=2" in page_one.text
    delivered = merchant_client.get("/merchant/orders?status=delivered")
    assert orders[0].number in delivered.text and orders[1].number not in delivered.text
    by_email = merchant_client.get("/merchant/orders?email=b7@example.com")
    assert orders[7].number in by_email.text and orders[8].number not in by_email.text
    csv_text = merchant_client.get("/merchant/orders.csv?status=delivered").text
    assert csv_text.splitlines()[0].startswith("number,created_at,status")
    assert len(csv_text.strip().splitlines()) == 2 and orders[0].number in csv_text


def test_csv_export_defuses_spreadsheet_formulas(merchant_client, make_product, place):
    product = make_product(keys=2, title='=HYPERLINK("http://evil")')
    place(product)
    assert "'=HYPERLINK" in merchant_client.get("/merchant/orders.csv").text


def test_order_detail_shows_timeline(merchant_client, make_product, place, pay):
    order = place(make_product(keys=2))
    pay(order)
    page = merchant_client.get(f"/merchant/orders/{order.number}")
    assert page.status_code == 200
    assert "Order placed" in merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text


# -- tenant isolation -------------------------------------------------------------------


@pytest.fixture
def other_merchant_objects(make_product, place):
    """Objects of the `merchant` fixture's shop, looked at by a second merchant."""
    product = make_product(keys=3)
    order = place(product)
    from faka.inventory.keys import start_import
    from faka.ledger import payouts
    from faka.messaging import webhooks
    from faka.orders import coupons

    job = start_import(product.merchant_id, product.variants[0], "X1\nX2")
    coupon = coupons.create_coupon(product.merchant_id, "OWNER10", "percent", 1000)
    endpoint, _secret = webhooks.create_endpoint(product.merchant_id, "https://1.1.1.1/hook", ["order.paid"])
    account = payouts.add_payout_account(product.merchant_id, "alipay", "张三", "13800001234")
    from faka.risk import blacklist

    entry = blacklist.add("email", "bad@example.com", "owner's", actor_id=None, merchant_id=product.merchant_id)
    return {
        "slug": product.slug,
        "number": order.number,
        "import": job.public_id,
        "coupon": coupon.id,
        "webhook": endpoint.id,
        "account": account.id,
        "blacklist": entry.id,
    }


@pytest.mark.parametrize(
    "method,url",
    [
        ("GET", "/merchant/products/{slug}/edit"),
        ("POST", "/merchant/products/{slug}/edit"),
        ("GET", "/merchant/products/{slug}/keys"),
        ("POST", "/merchant/products/{slug}/keys"),
        ("POST", "/merchant/products/{slug}/keys/void"),
        ("POST", "/merchant/products/{slug}/keys/export"),
        ("POST", "/merchant/products/{slug}/visibility"),
        ("POST", "/merchant/products/{slug}/delete"),
        ("POST", "/merchant/products/{slug}/move"),
        ("GET", "/merchant/orders/{number}"),
        ("POST", "/merchant/orders/{number}/resend"),
        ("GET", "/merchant/imports/{import}"),
        ("POST", "/merchant/orders/{number}/deliver"),
        ("POST", "/merchant/orders/{number}/refund"),
        ("POST", "/merchant/coupons/{coupon}/deactivate"),
        ("GET", "/merchant/webhooks/{webhook}"),
        ("POST", "/merchant/webhooks/{webhook}/test"),
        ("POST", "/merchant/webhooks/{webhook}/rotate"),
        ("POST", "/merchant/webhooks/{webhook}/delete"),
        ("POST", "/merchant/money/accounts/{account}/delete"),
        ("POST", "/merchant/orders/{number}/blacklist"),
        ("POST", "/merchant/blacklist/{blacklist}/delete"),
    ],
)
def test_another_merchants_objects_are_404(client, other_merchant_objects, method, url):
    intruder = users.create_merchant("intruder@shop.test", "merchant-pass-1", "Intruder", approved=True)
    login(client, intruder.user)
    with client.session_transaction() as session:
        session["reauth_at"] = int(time.time())  # past the password prompt: the shop's own check must refuse
    target = url.format(**other_merchant_objects)
    token = csrf_from(client.get("/merchant/products/new").text)
    response = client.open(
        target,
        method=method,
        data={
            "csrf_token": token,
            "keys": "V1",
            "password": "merchant-pass-1",
            "visible": "0",
            "title": "hijack",
            "price": "1",
            "kind": "email",
            "reason": "hijack",
        },
    )
    assert response.status_code == 404
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(Product.deleted_at.is_not(None))) == 0
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.VOID)) == 0
    from faka.ledger.models import PayoutAccount
    from faka.messaging.models import WebhookDelivery, WebhookEndpoint
    from faka.orders.models import Coupon

    assert db.session.get(Coupon, other_merchant_objects["coupon"]).active is True
    assert db.session.get(WebhookEndpoint, other_merchant_objects["webhook"]) is not None
    assert db.session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0
    assert db.session.get(PayoutAccount, other_merchant_objects["account"]).deleted_at is None
    from faka.risk.models import BlacklistEntry

    assert db.session.scalar(select(func.count()).select_from(BlacklistEntry)) == 1


def test_order_list_and_export_show_only_own_orders(client, other_merchant_objects):
    intruder = users.create_merchant("intruder@shop.test", "merchant-pass-1", "Intruder", approved=True)
    login(client, intruder.user)
    assert other_merchant_objects["number"] not in client.get("/merchant/orders").text
    assert other_merchant_objects["number"] not in client.get("/merchant/orders.csv").text
    searched = client.get(f"/merchant/orders?number={other_merchant_objects['number']}").text
    assert f"/merchant/orders/{other_merchant_objects['number']}" not in searched


# -- dashboard, money, coupons, webhooks, manual delivery --------------------------------


def test_dashboard_shows_todays_sales_and_chart(merchant_client, make_product, place, pay):
    order = place(make_product(keys=3, price=1234))
    pay(order)
    page = merchant_client.get("/merchant/?lang=en")
    assert page.status_code == 200
    assert "¥12.34" in page.text and "<svg" in page.text and "Orders paid" in page.text


def test_payout_account_and_withdrawal_need_two_factor(merchant_client, merchant, make_product, place, pay):
    from datetime import timedelta

    import pyotp

    from conftest import with_totp
    from faka.core.types import utcnow
    from faka.ledger import payouts
    from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal

    def saved_accounts():
        db.session.commit()
        return db.session.execute(select(PayoutAccount).order_by(PayoutAccount.id)).scalars().all()

    alipay = {"kind": "alipay", "holder": "张三", "account": "13800001234", "code": "123456"}
    bad = post(
        merchant_client, "/merchant/money/accounts", {**alipay, "account": "not-a-phone"}, page="/merchant/money"
    )
    assert bad.status_code == 400
    without_2fa = post(merchant_client, "/merchant/money/accounts", alipay, page="/merchant/money")
    assert without_2fa.status_code == 400 and saved_accounts() == []
    account = payouts.add_payout_account(merchant.id, "alipay", "张三", "13800001234")  # saved some other way

    pay(place(make_product(keys=2, price=10000)))
    db.session.execute(LedgerEntry.__table__.update().values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    page = merchant_client.get("/merchant/money?lang=en")
    assert "¥97.00" in page.text and "Turn on two-factor" in page.text
    refused = post(
        merchant_client,
        "/merchant/money/withdrawals",
        {"payout_account_id": account.id, "amount": "50.00", "code": "123456"},
        page="/merchant/money",
    )
    assert refused.status_code == 400
    totp = pyotp.TOTP(with_totp(reload(merchant).user))
    ok = post(
        merchant_client,
        "/merchant/money/accounts",
        {**alipay, "account": "13800005678", "code": totp.now()},
        page="/merchant/money",
    )
    assert ok.status_code == 303
    added = saved_accounts()[-1]
    assert "13800005678" not in added.account_ciphertext and added.account_hint == "5678"
    too_much = post(
        merchant_client,
        "/merchant/money/withdrawals",
        {"payout_account_id": account.id, "amount": "97.01", "code": "123456"},
        page="/merchant/money",
    )
    assert too_much.status_code == 400
    done = post(
        merchant_client,
        "/merchant/money/withdrawals",
        {"payout_account_id": account.id, "amount": "97.00", "code": totp.at(time.time() + 30)},
        page="/merchant/money",
    )  # each code is good once
    assert done.status_code == 303
    withdrawal = db.session.execute(select(Withdrawal)).scalar_one()
    assert (withdrawal.amount, withdrawal.status) == (9700, "requested")


def test_merchant_creates_and_deactivates_coupons(merchant_client, make_product):
    from faka.orders.models import Coupon

    product = make_product(keys=1)
    refused = post(
        merchant_client, "/merchant/coupons", {"code": "HALFPLUS", "kind": "percent", "value": "150", "product_id": 0}
    )
    assert refused.status_code == 400
    made = post(
        merchant_client,
        "/merchant/coupons",
        {
            "code": "vip10",
            "kind": "percent",
            "value": "10",
            "product_id": product.id,
            "min_amount": "5",
            "usage_limit": 3,
        },
    )
    assert made.status_code == 303
    coupon = db.session.execute(select(Coupon)).scalar_one()
    assert (coupon.code, coupon.kind, coupon.value, coupon.min_amount, coupon.usage_limit) == (
        "VIP10",
        "percent",
        1000,
        500,
        3,
    )
    post(merchant_client, f"/merchant/coupons/{coupon.id}/deactivate", {}, page="/merchant/coupons")
    assert reload(coupon).active is False


def test_merchant_adds_webhook_and_sees_test_delivery(make_app, merchant, client):
    from faka.messaging.models import WebhookDelivery, WebhookEndpoint

    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        client = app.test_client()
        login(client, reload(merchant).user)
        bad = post(client, "/merchant/webhooks", {"url": "ftp://example.com/x", "events": ["order.paid"]})
        assert bad.status_code == 400
        made = post(
            client,
            "/merchant/webhooks",
            {"url": "http://127.0.0.1:1/hook", "events": ["order.paid", "order.delivered"]},
        )
        assert made.status_code == 200 and "whsec_" in made.text
        endpoint = db.session.execute(select(WebhookEndpoint)).scalar_one()
        assert "whsec_" not in endpoint.secret_ciphertext
        post(client, f"/merchant/webhooks/{endpoint.id}/test", {}, page="/merchant/webhooks")
        delivery = db.session.execute(select(WebhookDelivery)).scalar_one()
        assert delivery.event == "ping" and delivery.attempts == 1 and delivery.status == "pending"
        assert "ping" in client.get(f"/merchant/webhooks/{endpoint.id}").text


def test_manual_delivery_reaches_the_buyer(merchant_client, client, make_product, place, pay):
    from faka.messaging.models import OutboxEmail

    order = place(make_product(keys=0, delivery_type="manual"))
    pay(order)
    assert reload(order).status == "paid"
    page = merchant_client.get(f"/merchant/orders/{order.number}").text
    assert page.index(f'action="/merchant/orders/{order.number}/deliver"') > page.index("</title>")
    empty = post(
        merchant_client,
        f"/merchant/orders/{order.number}/deliver",
        {"content": ""},
        page=f"/merchant/orders/{order.number}",
    )
    assert empty.status_code == 400
    done = post(
        merchant_client,
        f"/merchant/orders/{order.number}/deliver",
        {"content": "充值完成，订单号 GS-7788"},
        page=f"/merchant/orders/{order.number}",
    )
    assert done.status_code == 303
    assert reload(order).status == "delivered"
    assert "GS-7788" in merchant_client.get(f"/order/{order.token}").text
    assert (
        db.session.execute(select(OutboxEmail.to_addr).where(OutboxEmail.kind == "order_delivered")).scalar_one()
        == "buyer@example.com"
    )


def test_paid_unfulfilled_order_is_marked_refunded(merchant_client, make_product, place, pay):
    from conftest import expire_and_reconcile

    product = make_product(keys=1)
    late = place(product)
    expire_and_reconcile(late)
    place(product)  # takes the last key
    pay(late)
    assert reload(late).status == "paid_unfulfilled"
    response = post(
        merchant_client, f"/merchant/orders/{late.number}/refund", {}, page=f"/merchant/orders/{late.number}"
    )
    assert response.status_code == 303
    assert reload(late).status == "refunded" and reload(late).refunded_at is not None


def test_oversized_upload_is_refused_clearly(merchant_client, make_product):
    product = make_product(keys=0)
    token = csrf_from(merchant_client.get(f"/merchant/products/{product.slug}/keys").text)
    huge = io.BytesIO(b"K" * (50 * 1024 * 1024))
    response = merchant_client.post(
        f"/merchant/products/{product.slug}/keys",
        data={"csrf_token": token, "keys_file": (huge, "keys.txt")},
        content_type="multipart/form-data",
    )
    assert response.status_code == 413
    assert "上传的内容过大" in response.text
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.product_id == product.id)) == 0


def test_single_shop_operator_runs_an_approved_shop(runner, client, category):
    import pyotp

    from faka.accounts.models import User

    result = runner.invoke(
        args=["create-operator", "--email", "boss@example.com", "--password", "long-enough-pw", "--shop", "老板的店"]
    )
    assert result.exit_code == 0 and "老板的店" in result.output
    boss = db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one()
    shop = db.session.execute(select(Merchant).where(Merchant.user_id == boss.id)).scalar_one()
    assert shop.status == Merchant.APPROVED
    boss.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    login(client, boss)
    assert post(client, "/merchant/products/new", product_form(category, title="老板自营商品")).status_code == 303
    assert "老板自营商品" in client.get("/").text


def test_operator_without_a_shop_has_no_back_office(client):
    import pyotp

    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    login(client, operator)
    assert client.get("/merchant/").status_code == 403


def test_money_and_coupons_pages_show_only_own_records(client, other_merchant_objects, make_product, place, pay):
    pay(place(make_product(keys=2, price=8888)))  # a sale for the other merchant
    intruder = users.create_merchant("intruder@shop.test", "merchant-pass-1", "Intruder", approved=True)
    login(client, intruder.user)
    money_page = client.get("/merchant/money?lang=en").text
    assert "¥88.88" not in money_page and "No entries." in money_page and "1234" not in money_page
    assert "OWNER10" not in client.get("/merchant/coupons").text
    assert "1.1.1.1" not in client.get("/merchant/webhooks").text


def test_editing_fixed_product_keeps_content_unless_retyped(merchant_client, category):
    post(
        merchant_client, "/merchant/products/new", product_form(category, delivery_type="fixed", fixed_content="旧内容")
    )
    product = db.session.execute(select(Product)).scalar_one()
    edit_url = f"/merchant/products/{product.slug}/edit"
    assert (
        post(
            merchant_client, edit_url, product_form(category, delivery_type="fixed", fixed_content="", title="新标题")
        ).status_code
        == 303
    )
    assert vault().decrypt(reload(product).fixed_content_ciphertext) == "旧内容" and reload(product).title == "新标题"
    post(merchant_client, edit_url, product_form(category, delivery_type="fixed", fixed_content="新内容"))
    assert vault().decrypt(reload(product).fixed_content_ciphertext) == "新内容"
