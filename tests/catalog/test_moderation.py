"""Goods moderation: prohibited words, the operator's queue and decisions, buyers' reports."""

import json

import pytest
from sqlalchemy import func, select

from faka.catalog.models import Product, ProductReport
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.platform.models import AuditEvent, Setting
from tests.conftest import csrf_from, login, reload


def post(client, url, data, page):
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **data})


@pytest.fixture
def ops(app, operator):
    client = app.test_client()
    login(client, operator)
    return client


@pytest.fixture
def merchant_client(app, merchant):
    client = app.test_client()
    login(client, merchant.user)
    return client


def product_form(category, **changes):
    form = {
        "title": "Steam 充值卡",
        "category_id": category.id,
        "price": "48.00",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
        "description_md": "好卡",
        "refund_policy": "",
    }
    form.update(changes)
    return form


def decide(ops, product, action, reason=None):
    data = {"reason": reason} if reason is not None else {}
    return post(ops, f"/operator/moderation/products/{product.slug}/{action}", data, "/operator/moderation")


def audit_actions(target=None):
    db.session.commit()
    query = select(AuditEvent.action).where(AuditEvent.action.like("moderation.%")).order_by(AuditEvent.id)
    if target:
        query = query.where(AuditEvent.target == target)
    return list(db.session.execute(query).scalars())


def count(model, *where):
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def test_prohibited_word_holds_product_until_operator_approves(ops, merchant_client, category):
    words = post(ops, "/operator/moderation/words", {"words": " 外挂 \n\n破解版\n外挂\n"}, "/operator/moderation/words")
    assert words.status_code == 303
    assert db.session.get(Setting, "prohibited_words").value == "外挂\n破解版"
    post(
        merchant_client,
        "/merchant/products/new",
        product_form(category, title="游戏外挂 永久版"),
        "/merchant/products/new",
    )
    product = db.session.execute(select(Product)).scalar_one()
    assert product.moderation == "pending"
    assert merchant_client.get(f"/p/{product.slug}").status_code == 404

    queue = ops.get("/operator/moderation")
    assert "游戏外挂 永久版" in queue.text and "Test Shop" in queue.text and "外挂" in queue.text
    assert decide(ops, product, "approve").status_code == 303
    assert reload(product).moderation == "approved"
    assert "游戏外挂 永久版" in merchant_client.get("/").text
    assert merchant_client.get(f"/p/{product.slug}").status_code == 200
    assert "游戏外挂 永久版" not in ops.get("/operator/moderation").text
    assert audit_actions() == ["moderation.words_changed", "moderation.approved"]
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "moderation.words_changed")).scalar_one()
    assert json.loads(event.after) == {"prohibited_words": "外挂\n破解版"} and event.actor_id is not None


def test_rejected_product_shows_reason_to_merchant_never_to_buyers(ops, merchant_client, operator, make_product):
    product = make_product(title="可疑的卡", moderation="pending", moderation_reason="外挂")
    assert decide(ops, product, "reject", "   ").status_code == 400
    assert reload(product).moderation == "pending" and audit_actions() == []

    assert decide(ops, product, "reject", "商品描述与实际不符").status_code == 303
    product = reload(product)
    assert (product.moderation, product.moderation_reason) == ("rejected", "商品描述与实际不符")
    edit = merchant_client.get(f"/merchant/products/{product.slug}/edit")
    assert "商品描述与实际不符" in edit.text
    buyer = ops.application.test_client()
    assert buyer.get(f"/p/{product.slug}").status_code == 404
    assert "可疑的卡" not in buyer.get("/").text
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action.like("moderation.%"))).scalar_one()
    assert (event.action, event.actor_id, event.target) == ("moderation.rejected", operator.id, f"product:{product.id}")
    assert json.loads(event.before)["moderation"] == "pending" and event.detail == "商品描述与实际不符"


def test_taken_down_product_stays_down_after_merchant_edits_it(ops, merchant_client, make_product, category):
    product = make_product(title="热门点卡")
    assert merchant_client.get(f"/p/{product.slug}").status_code == 200
    assert decide(ops, product, "take-down", "").status_code == 400  # a reason is required
    assert decide(ops, product, "take-down", "侵犯版权").status_code == 303
    assert reload(product).moderation == "taken_down"
    assert merchant_client.get(f"/p/{product.slug}").status_code == 404
    assert "热门点卡" not in merchant_client.get("/").text
    assert "侵犯版权" in merchant_client.get(f"/merchant/products/{product.slug}/edit").text

    edit = post(
        merchant_client,
        f"/merchant/products/{product.slug}/edit",
        product_form(category, title="热门点卡 新版"),
        f"/merchant/products/{product.slug}/edit",
    )
    assert edit.status_code == 303
    assert reload(product).moderation == "pending"  # back to the queue, not on sale
    assert merchant_client.get(f"/p/{product.slug}").status_code == 404
    assert "热门点卡 新版" in ops.get("/operator/moderation").text
    assert audit_actions(f"product:{product.id}") == ["moderation.taken_down"]


def test_buyer_report_from_product_page_reaches_the_queue(ops, make_product):
    product = make_product(title="被举报的卡")
    buyer = ops.application.test_client()
    page = buyer.get(f"/p/{product.slug}")
    assert f'action="/p/{product.slug}/report"' in page.text
    response = buyer.post(
        f"/p/{product.slug}/report",
        data={"csrf_token": csrf_from(page.text), "reason": "pirated", "text": "这是盗版激活码"},
    )
    assert response.status_code == 200 and "感谢您的反馈" in response.text
    report = db.session.execute(select(ProductReport)).scalar_one()
    assert (report.product_id, report.reason, report.text, report.status) == (
        product.id,
        "pirated",
        "这是盗版激活码",
        "open",
    )

    queue = ops.get("/operator/moderation")
    assert "被举报的卡" in queue.text and "这是盗版激活码" in queue.text
    dismissed = post(ops, f"/operator/moderation/reports/{report.id}/dismiss", {}, "/operator/moderation")
    assert dismissed.status_code == 303
    assert reload(report).status == "dismissed" and "被举报的卡" not in ops.get("/operator/moderation").text
    assert buyer.get(f"/p/{product.slug}").status_code == 200  # still on sale
    assert audit_actions(f"product_report:{report.id}") == ["moderation.report_dismissed"]


def test_taking_down_a_reported_product_closes_its_reports(ops, make_product):
    product = make_product()
    buyer = ops.application.test_client()
    token = csrf_from(buyer.get(f"/p/{product.slug}").text)
    for reason in ("fraud", "other"):
        assert buyer.post(f"/p/{product.slug}/report", data={"csrf_token": token, "reason": reason}).status_code == 200
    assert "Reports (2)" in ops.get("/operator/moderation?lang=en").text
    decide(ops, product, "take-down", "多次被举报诈骗")
    assert count(ProductReport, ProductReport.status == "acted") == 2
    assert buyer.get(f"/p/{product.slug}").status_code == 404


def test_report_with_bad_reason_or_long_text_is_refused(client, make_product):
    product = make_product()
    token = csrf_from(client.get(f"/p/{product.slug}").text)
    bad_reason = client.post(f"/p/{product.slug}/report", data={"csrf_token": token, "reason": "boring", "text": "x"})
    too_long = client.post(
        f"/p/{product.slug}/report", data={"csrf_token": token, "reason": "other", "text": "x" * 1001}
    )
    no_token = client.post(f"/p/{product.slug}/report", data={"reason": "other"})
    assert [r.status_code for r in (bad_reason, too_long, no_token)] == [400, 400, 400]
    assert 'class="alert"' in bad_reason.text and "1000" in too_long.text
    assert count(ProductReport) == 0


def test_reports_are_rate_limited_per_address(make_app, merchant, category):
    app = make_app(RATELIMIT_REPORT="2 per hour")
    with app.app_context():
        product = product_with_one_variant(
            slug="limitedslug0001",
            merchant_id=merchant.id,
            category_id=category.id,
            title="限流",
            price=100,
            delivery_type="manual",
        )
        db.session.add(product)
        db.session.commit()
        client = app.test_client()
        token = csrf_from(client.get("/p/limitedslug0001").text)
        codes = [
            client.post("/p/limitedslug0001/report", data={"csrf_token": token, "reason": "other"}).status_code
            for _ in range(3)
        ]
        assert codes == [200, 200, 429]
        assert count(ProductReport) == 2


def test_only_operators_reach_moderation(client, merchant_client):
    assert client.get("/operator/moderation").status_code in (302, 303)
    assert merchant_client.get("/operator/moderation").status_code in (302, 303, 403)
    token = csrf_from(merchant_client.get("/merchant/products/new").text)
    refused = merchant_client.post("/operator/moderation/words", data={"csrf_token": token, "words": "x"})
    assert refused.status_code in (302, 303, 403)
    assert db.session.get(Setting, "prohibited_words") is None


def test_too_many_prohibited_words_are_refused(ops):
    words = "\n".join(f"词{i}" for i in range(301))
    response = post(ops, "/operator/moderation/words", {"words": words}, "/operator/moderation/words")
    assert response.status_code == 400 and 'class="alert"' in response.text
    assert db.session.get(Setting, "prohibited_words") is None and audit_actions() == []
