"""Operator console: site settings, payment gateways, operations and the dashboard."""

from datetime import timedelta

import pyotp
import pytest
from sqlalchemy import func, select

from conftest import csrf_from, login, reload
from faka.accounts import users
from faka.core.crypto import vault
from faka.extensions import db
from faka.messaging.mail import queue_email
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order
from faka.payments.gateways import gateway_settings
from faka.platform.models import AuditEvent, Setting
from faka.platform.settings import site_settings


def operator_client(app):
    op = users.create_operator(
        f"ops{db.session.scalar(select(func.count()).select_from(AuditEvent))}@example.com", "operator-pass-1"
    )
    op.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    client = app.test_client()
    login(client, op)
    return client


@pytest.fixture
def ops(app):
    return operator_client(app)


def post_settings(ops, **changes):
    page = ops.get("/operator/settings?lang=en")
    assert page.status_code == 200
    values = {k: v for k, v in site_settings().items() if k != "open_registration"}
    db.session.rollback()
    values.update(open_registration="1", csrf_token=csrf_from(page.text))
    values.update(changes)
    return ops.post("/operator/settings", data=values)


def buy(client, product, email="buyer@example.com"):
    page = client.get(f"/p/{product.slug}?lang=en")
    return client.post(
        f"/p/{product.slug}/buy?lang=en",
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": 1,
            "email": email,
            "query_password": "secret-1",
        },
    )


def test_site_name_icp_and_announcement_show_on_the_storefront(make_app, merchant, category, make_product):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        ops = operator_client(app)
        product = make_product()
        shopper = app.test_client()
        assert "京ICP备12345678号" not in shopper.get(f"/p/{product.slug}").text  # now cached
        response = post_settings(
            ops, site_name="Key Corner", icp_number="京ICP备12345678号", announcement="Maintenance tonight"
        )
        assert response.status_code == 303
        page = shopper.get(f"/p/{product.slug}").text
        assert "京ICP备12345678号" in page and "https://beian.miit.gov.cn/" in page
        assert "Key Corner" in page and "Maintenance tonight" in page
        event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "site.settings")).scalar_one()
        assert "京ICP备12345678号" in event.after and "site_name" in event.before


def test_order_ttl_setting_sets_a_new_orders_expiry(ops, product, place):
    assert post_settings(ops, order_ttl_minutes="45").status_code == 303
    order = place(product)
    assert timedelta(minutes=44) < order.expires_at - order.created_at <= timedelta(minutes=45, seconds=5)


@pytest.mark.parametrize(
    "field, value",
    [
        ("order_ttl_minutes", "0"),
        ("order_ttl_minutes", "ten"),
        ("complaint_window_days", "1000"),
        ("site_name", ""),
        ("icp_number", "x" * 61),
    ],
)
def test_bad_setting_is_refused_and_nothing_changes(ops, field, value):
    before = site_settings()
    response = post_settings(ops, announcement="Should not be saved", **{field: value})
    assert response.status_code == 400
    assert "Nothing was saved" in response.text
    db.session.rollback()
    assert site_settings() == before
    assert db.session.scalar(select(func.count()).select_from(Setting)) == 0


def gateway_form(ops, **fields):
    page = ops.get("/operator/gateways?lang=en")
    return ops.post("/operator/gateways/sandbox", data={"csrf_token": csrf_from(page.text), **fields})


def test_disabled_gateway_stops_checkout_and_enabling_restores_it(ops, client, product):
    assert gateway_form(ops).status_code == 303  # the box unticked: disabled
    response = buy(client, product)
    assert response.status_code == 400 and "not available right now" in response.text
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0
    assert gateway_form(ops, enabled="1").status_code == 303
    response = buy(client, product)
    assert response.status_code == 303 and "/pay/" in response.headers["Location"]
    assert db.session.scalar(select(func.count()).select_from(Order)) == 1


def test_gateway_and_order_ttl_changes_apply_at_once_with_the_page_cache_on(make_app, merchant, category, make_product):
    """Checkout reads the gateways and the order TTL from this process's cache; the
    console's own process shows a change at once."""
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        ops = operator_client(app)
        product = make_product()
        shopper = app.test_client()
        assert buy(shopper, product).status_code == 303  # the gateways and settings are now cached
        assert gateway_form(ops).status_code == 303  # disabled
        refused = buy(shopper, product)
        assert refused.status_code == 400 and "not available right now" in refused.text
        assert gateway_form(ops, enabled="1").status_code == 303
        assert post_settings(ops, order_ttl_minutes="45").status_code == 303
        assert buy(shopper, product, email="another@example.com").status_code == 303  # not a repeated tap
        newest = db.session.execute(select(Order).order_by(Order.id.desc()).limit(1)).scalar_one()
        assert timedelta(minutes=44) < newest.expires_at - newest.created_at <= timedelta(minutes=45, seconds=5)
        assert db.session.scalar(select(func.count()).select_from(Order)) == 2


def test_gateway_secret_is_masked_and_kept_when_left_empty(ops):
    db.session.rollback()
    _row, settings = gateway_settings("sandbox")
    secret = settings["secret"]
    db.session.rollback()
    page = ops.get("/operator/gateways?lang=en").text
    assert secret not in page and f"••••{secret[-4:]}" in page
    assert gateway_form(ops, enabled="1", secret="").status_code == 303
    db.session.rollback()
    assert gateway_settings("sandbox")[1]["secret"] == secret
    assert gateway_form(ops, enabled="1", secret="a-new-secret-value-1a2b").status_code == 303
    db.session.rollback()
    assert gateway_settings("sandbox")[1]["secret"] == "a-new-secret-value-1a2b"
    assert "••••1a2b" in ops.get("/operator/gateways").text
    events = (
        db.session.execute(select(AuditEvent).where(AuditEvent.action == "gateway.update").order_by(AuditEvent.id))
        .scalars()
        .all()
    )
    assert len(events) == 2 and all("a-new-secret" not in (e.after + (e.before or "")) for e in events)
    assert '"secret"' in events[1].after


def test_send_test_email_arrives(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        ops = operator_client(app)
        page = ops.get("/operator/settings?lang=en")
        assert "127.0.0.1" in page.text
        response = ops.post(
            "/operator/settings/test-email", data={"csrf_token": csrf_from(page.text), "to_addr": "me@example.com"}
        )
        assert response.status_code == 303
        assert "Test email sent" in ops.get(response.headers["Location"] + "&lang=en").text
        assert [m["To"] for m in smtp.messages] == ["me@example.com"]


def test_test_email_without_smtp_says_so(ops):
    page = ops.get("/operator/settings?lang=en")
    response = ops.post(
        "/operator/settings/test-email?lang=en", data={"csrf_token": csrf_from(page.text), "to_addr": "me@example.com"}
    )
    assert response.status_code == 400 and "SMTP is not configured" in response.text


def test_operations_lists_failed_email_and_resend_requeues_it(ops):
    email = queue_email("verify_email", "stuck@example.com", "Verify", {"link": "x"})
    email.status, email.attempts, email.last_error = OutboxEmail.FAILED, 8, "SMTPServerDisconnected: gone"
    db.session.commit()
    page = ops.get("/operator/operations?lang=en").text
    assert "stuck@example.com" in page and "SMTPServerDisconnected: gone" in page
    assert ops.post(f"/operator/outbox/{email.id}/resend", data={"csrf_token": csrf_from(page)}).status_code == 303
    email = reload(email)
    assert email.status == OutboxEmail.QUEUED and email.attempts == 0 and email.last_error is None
    assert db.session.execute(select(AuditEvent).where(AuditEvent.action == "outbox.resend")).scalar_one()
    assert "stuck@example.com" in ops.get("/operator/outbox?lang=en").text


def test_operations_lists_paid_unfulfilled_and_undelivered_orders(ops, make_product, place):
    product = make_product(keys=2)
    short, stuck = place(product), place(product)
    short.mark_unfulfilled(short.created_at)
    stuck.mark_paid(stuck.created_at)
    db.session.commit()
    page = ops.get("/operator/operations?lang=en").text
    assert short.number in page and stuck.number in page
    assert "database.ok" in page


def test_dashboard_gmv_is_the_sum_of_paid_orders(ops, make_product, place, pay):
    product = make_product(keys=12, price=1234)
    orders = [place(product, quantity=q) for q in (1, 2, 3)]
    for order in orders[:2]:
        assert pay(order).status_code == 200
    expected = sum(reload(o).total for o in orders[:2])
    page = ops.get("/operator/?lang=en").text
    assert page.count(f'data-gmv="{expected}"') == 3  # today, 7 days, 30 days
    assert "<svg" in page
    assert 'href="/operator/moderation"' in page and 'href="/operator/withdrawals"' in page


def test_console_pages_need_an_operator(client):
    for url in ("/operator/settings", "/operator/gateways", "/operator/operations", "/operator/outbox"):
        assert client.get(url).status_code in (302, 303, 401, 403)


def test_default_language_setting_applies_to_new_visitors(ops, client, product):
    assert "立即购买" in client.get(f"/p/{product.slug}").text
    assert post_settings(ops, default_language="en").status_code == 303
    visitor = ops.application.test_client()
    assert "Buy now" in visitor.get(f"/p/{product.slug}").text
    assert "立即购买" in visitor.get(f"/p/{product.slug}?lang=zh_CN").text  # a visitor's own choice wins
    assert post_settings(ops, default_language="fr").status_code == 400
    assert site_settings()["default_language"] == "en"


def test_smtp_set_in_the_console_sends_delivery_emails(make_app, smtp, merchant, make_product, place, pay):
    app = make_app(MAIL_SERVER=None)
    with app.app_context():
        ops = operator_client(app)
        page = ops.get("/operator/settings?lang=en")
        response = ops.post(
            "/operator/settings/smtp",
            data={
                "csrf_token": csrf_from(page.text),
                "smtp_server": "127.0.0.1",
                "smtp_port": str(smtp.port),
                "smtp_security": "",
                "smtp_username": "",
                "smtp_password": "s3cret-pass",
                "smtp_sender": "shop@example.com",
            },
        )
        assert response.status_code == 303
        stored = db.session.get(Setting, "smtp_password").value
        assert "s3cret-pass" not in stored and vault().decrypt(stored) == "s3cret-pass"
        assert "s3cret-pass" not in ops.get("/operator/settings?lang=en").text
        pay(place(make_product(keys=1)))
        assert len(smtp.messages) == 1 and smtp.messages[0]["From"] == "shop@example.com"
        bad = ops.post(
            "/operator/settings/smtp",
            data={
                "csrf_token": csrf_from(page.text),
                "smtp_server": "127.0.0.1",
                "smtp_port": "99999",
                "smtp_security": "tls-maybe",
            },
        )
        assert bad.status_code == 400
        assert site_settings()["smtp_port"] == str(smtp.port)


def test_uploaded_logo_shows_in_the_storefront_header(ops, client):
    import io

    from PIL import Image

    image = io.BytesIO()
    Image.new("RGB", (64, 64), (10, 120, 200)).save(image, "PNG")
    page = ops.get("/operator/settings?lang=en")
    bad = ops.post(
        "/operator/settings/logo",
        data={"csrf_token": csrf_from(page.text), "logo": (io.BytesIO(b"<svg/>"), "x.svg")},
        content_type="multipart/form-data",
    )
    assert bad.status_code == 400 and site_settings()["logo"] == ""
    image.seek(0)
    ok = ops.post(
        "/operator/settings/logo",
        data={"csrf_token": csrf_from(page.text), "logo": (image, "logo.png")},
        content_type="multipart/form-data",
    )
    assert ok.status_code == 303
    name = site_settings()["logo"]
    assert f'src="/site/logo/{name}"' in client.get("/").text
    served = client.application.test_client().get(f"/site/logo/{name}")  # a first visit: no device cookie yet
    assert served.status_code == 200 and served.mimetype == "image/jpeg"
    assert "Set-Cookie" not in served.headers  # public and cached: never a cookie
    assert client.get("/site/logo/someone-elses.png").status_code == 404
    ops.post("/operator/settings/logo", data={"csrf_token": csrf_from(page.text), "remove": "1"})
    assert "/site/logo/" not in client.get("/").text
