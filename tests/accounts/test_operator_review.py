"""The operator reviews merchants: approve, reject, ask for more, freeze, terms; and the
audit log that records every decision."""

import csv
import io
import json
import secrets
from datetime import timedelta

import pyotp
import pytest
from PIL import Image
from sqlalchemy import delete, select, update

from faka.accounts import onboarding, review, users
from faka.accounts.models import Merchant
from faka.catalog.models import DELIVERY_AUTO, Product
from faka.catalog.variants import product_with_one_variant
from faka.core.crypto import vault
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.ledger import payouts
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.platform import audit
from faka.platform.models import AuditEvent
from tests.conftest import csrf_from, login, reload


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def new_operator(email: str = "ops@example.com"):
    op = users.create_operator(email, "operator-pass-1")
    op.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    return op


@pytest.fixture
def operator(app):
    return new_operator()


@pytest.fixture
def console(app, operator):
    client = app.test_client()
    login(client, operator)
    return client


def submitted_merchant(name: str = "New Shop") -> Merchant:
    m = users.create_merchant(f"m{secrets.token_hex(4)}@shop.test", "merchant-pass-1", name)
    onboarding.submit_qualification(
        m.id, onboarding.Qualification("Zhang San", "individual", "11010519491231002X", "13800000000"), png_bytes()
    )
    return reload(m)


def product_of(merchant: Merchant, category, keys: int = 3, price: int = 1000) -> Product:
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=merchant.id,
        category_id=category.id,
        price=price,
        delivery_type=DELIVERY_AUTO,
        title="Review product",
        max_per_order=10,
    )
    db.session.add(product)
    db.session.commit()
    import_keys(product.variants[0], "\n".join(f"KEY-{product.id}-{i}-{secrets.token_hex(3)}" for i in range(keys)))
    return product


def merchant_client(app, merchant: Merchant):
    client = app.test_client()
    login(client, reload(merchant).user)
    return client


def post(client, url: str, **data):
    page = client.get("/operator/merchants")
    return client.post(url, data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data})


def queue_and_list(client, query: str = "") -> tuple[str, str]:
    """The review queue and the list of all merchants on the merchants page."""
    queue, everyone = client.get(f"/operator/merchants{query}").get_data(as_text=True).split('id="all-merchants"', 1)
    return queue, everyone


def events(action: str) -> list[AuditEvent]:
    db.session.commit()
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


# -- the queue and the detail page --------------------------------------------------------


def test_review_queue_lists_submitted_merchants_with_their_figures(console, merchant, product, place, pay):
    waiting = submitted_merchant("Waiting Shop")
    pay(place(product, quantity=2))
    queue, everyone = queue_and_list(console)
    assert "Waiting Shop" in queue and merchant.name not in queue
    assert merchant.name in everyone and "¥20.00" in everyone
    detail = console.get(f"/operator/merchants/{waiting.id}").get_data(as_text=True)
    assert "110***********002X" in detail and "11010519491231002X" not in detail
    licence = console.get(f"/operator/merchants/{waiting.id}/licence")
    assert licence.status_code == 200 and licence.headers["Cache-Control"] == "private, no-store"


def test_merchant_list_filters_by_status_and_searches_name_or_email(console, merchant):
    submitted_merchant("Waiting Shop")
    approved = queue_and_list(console, "?status=approved")[1]
    assert merchant.name in approved and "Waiting Shop" not in approved
    assert merchant.name in queue_and_list(console, f"?q={merchant.user.email[:6]}")[1]
    assert merchant.name not in queue_and_list(console, "?q=no-such-shop")[1]


# -- decisions ----------------------------------------------------------------------------


def test_approve_puts_the_merchants_product_on_the_storefront(app, console, category, client):
    m = submitted_merchant()
    product = product_of(m, category)
    assert client.get(f"/p/{product.slug}").status_code == 404
    response = post(console, f"/operator/merchants/{m.id}/approve")
    assert response.status_code == 303
    assert reload(m).status == Merchant.APPROVED
    assert client.get(f"/p/{product.slug}").status_code == 200
    assert "Review product" in client.get("/").get_data(as_text=True)


def test_reject_shows_the_reason_on_the_dashboard_and_emails_it(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        console = app.test_client()
        login(console, new_operator())
        m = submitted_merchant()
        response = post(console, f"/operator/merchants/{m.id}/reject", reason="The licence photo is blurred.")
        assert response.status_code == 303
        assert reload(m).status == Merchant.REJECTED
        dashboard = merchant_client(app, m).get("/merchant/").get_data(as_text=True)
        assert "The licence photo is blurred." in dashboard
        app.extensions["faka_jobs"].wait_idle()
        [message] = [msg for msg in smtp.messages if msg["To"] == m.user.email]
        assert "The licence photo is blurred." in message.get_body(("plain",)).get_content()


def test_request_info_lets_the_merchant_submit_again_with_its_data_kept(app, console):
    m = submitted_merchant()
    response = post(console, f"/operator/merchants/{m.id}/request-info", reason="Add the back of the ID card.")
    assert response.status_code == 303
    m = reload(m)
    assert (m.status, m.submitted_at, m.legal_name) == (Merchant.PENDING, None, "Zhang San")
    assert m.licence_image is not None
    email = db.session.execute(select(OutboxEmail).where(OutboxEmail.merchant_id == m.id)).scalar_one()
    assert email.kind == "merchant_review"
    merchant_page = merchant_client(app, m)
    form = merchant_page.get("/merchant/qualification").get_data(as_text=True)
    assert 'name="legal_name"' in form and 'enctype="multipart/form-data"' in form
    onboarding.submit_qualification(
        m.id, onboarding.Qualification("Zhang San", "individual", "11010519491231002X", "13800000000"), None
    )
    assert reload(m).submitted_at is not None
    assert m.name in queue_and_list(console)[0]


def test_freeze_hides_products_and_stops_withdrawals_and_unfreeze_restores(console, merchant, product, client):
    merchant.user.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    payout = payouts.add_payout_account(merchant.id, "alipay", "Zhang San", "13800000000")
    response = post(console, f"/operator/merchants/{merchant.id}/freeze", reason="Chargebacks under investigation.")
    assert response.status_code == 303
    assert reload(merchant).status == Merchant.FROZEN
    assert client.get(f"/p/{product.slug}").status_code == 404
    with pytest.raises(payouts.PayoutsStopped):
        payouts.request_withdrawal(merchant.id, merchant.user_id, payout.id, 100)

    assert post(console, f"/operator/merchants/{merchant.id}/unfreeze").status_code == 303
    assert reload(merchant).status == Merchant.APPROVED
    assert client.get(f"/p/{product.slug}").status_code == 200
    with pytest.raises(payouts.InsufficientBalance):  # refused for the balance now, not the freeze
        payouts.request_withdrawal(merchant.id, merchant.user_id, payout.id, 100)


def test_paid_order_of_a_frozen_merchant_is_still_delivered(console, merchant, product, place, pay):
    order = place(product)
    review.freeze(None, merchant.id, "Investigation.")
    pay(order)
    assert reload(order).status == "delivered"


def test_fee_rate_and_hold_days_apply_to_the_next_sale(console, merchant, product, place, pay):
    response = post(console, f"/operator/merchants/{merchant.id}/terms", fee_rate="10", hold_days="10")
    assert response.status_code == 303
    order = place(product, quantity=2)
    pay(order)
    entries = {
        e.kind: e for e in db.session.execute(select(LedgerEntry).where(LedgerEntry.order_id == order.id)).scalars()
    }
    assert entries[LedgerEntry.FEE].amount == -200
    assert entries[LedgerEntry.SALE].available_at - entries[LedgerEntry.SALE].created_at == timedelta(days=10)


@pytest.mark.parametrize(
    "action, data",
    [
        ("reject", {"reason": "  "}),
        ("request-info", {"reason": ""}),
        ("terms", {"fee_rate": "9999999", "hold_days": "3"}),
        ("terms", {"fee_rate": "3", "hold_days": "61"}),
        ("terms", {"fee_rate": "abc", "hold_days": "3"}),
        ("terms", {"fee_rate": "2.555", "hold_days": "3"}),
    ],
)
def test_bad_input_is_refused_and_changes_nothing(console, action, data):
    m = submitted_merchant()
    response = post(console, f"/operator/merchants/{m.id}/{action}", **data)
    assert response.status_code == 400
    assert 'class="alert"' in response.get_data(as_text=True)
    m = reload(m)
    assert (m.status, m.fee_rate_bp, m.hold_days, m.submitted_at is not None) == (Merchant.PENDING, 300, 3, True)
    assert db.session.scalar(select(AuditEvent.id).where(AuditEvent.target == f"merchant:{m.id}")) is None
    assert db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.merchant_id == m.id)) is None


def test_illegal_transitions_are_refused(console, merchant):
    with pytest.raises(review.IllegalTransition):
        review.approve(None, merchant.id)
    with pytest.raises(review.IllegalTransition):
        review.unfreeze(None, merchant.id)
    m = submitted_merchant()
    with pytest.raises(review.IllegalTransition):
        review.freeze(None, m.id, "no")
    response = post(console, f"/operator/merchants/{merchant.id}/approve")
    assert response.status_code == 400 and reload(merchant).status == Merchant.APPROVED


# -- the audit log ------------------------------------------------------------------------


def test_decisions_are_audited_with_before_after_and_ip(console, operator, merchant):
    post(console, f"/operator/merchants/{merchant.id}/terms", fee_rate="4.5", hold_days="7")
    post(console, f"/operator/merchants/{merchant.id}/freeze", reason="Suspicious refunds.")
    [terms] = events("merchant.terms")
    assert (terms.actor_id, terms.target, terms.ip) == (operator.id, f"merchant:{merchant.id}", "127.0.0.1")
    assert json.loads(terms.before) == {"fee_rate_bp": 300, "hold_days": 3}
    assert json.loads(terms.after) == {"fee_rate_bp": 450, "hold_days": 7}
    [frozen] = events("merchant.frozen")
    assert json.loads(frozen.before)["status"] == "approved" and json.loads(frozen.after)["status"] == "frozen"
    assert frozen.detail == "Suspicious refunds."


def test_audit_record_outside_a_request_has_no_ip(app):
    audit.record(None, "cli.test", "x:1", after={"b": 1, "a": 2})
    db.session.commit()
    [event] = events("cli.test")
    assert event.ip is None and event.after == '{"a": 2, "b": 1}'


def test_audit_page_filters_and_exports_csv(console, operator, merchant):
    other = submitted_merchant("Other Shop")
    review.set_terms(operator.id, merchant.id, 500, 3)
    review.reject(operator.id, other.id, '=HYPERLINK("x")')
    page = console.get("/operator/audit?action=merchant.terms").get_data(as_text=True)
    assert f"merchant:{merchant.id}" in page and f"merchant:{other.id}" not in page
    page = console.get(f"/operator/audit?target=merchant:{other.id}&lang=en").get_data(as_text=True)
    assert "Merchant rejected" in page and "Merchant terms changed" not in page  # the actions' labels
    long_ago = console.get("/operator/audit?since=2000-01-01&until=2000-01-02").get_data(as_text=True)
    assert f"merchant:{merchant.id}" not in long_ago

    response = console.get("/operator/audit.csv?action=merchant.rejected")
    assert response.mimetype == "text/csv"
    rows = list(csv.DictReader(io.StringIO(response.get_data(as_text=True))))
    assert [r["target"] for r in rows] == [f"merchant:{other.id}"]
    assert rows[0]["detail"].startswith("'=")  # not run as a formula by a spreadsheet


def test_audit_events_cannot_be_updated_or_deleted(app, operator, merchant):
    review.set_terms(operator.id, merchant.id, 500, 3)
    [event] = events("merchant.terms")
    event.detail = "rewritten"
    with pytest.raises(audit.AuditEventImmutable):
        db.session.commit()
    db.session.rollback()
    [event] = events("merchant.terms")
    db.session.delete(event)
    with pytest.raises(audit.AuditEventImmutable):
        db.session.commit()
    db.session.rollback()
    for statement in (update(AuditEvent).values(detail="rewritten"), delete(AuditEvent)):
        with pytest.raises(audit.AuditEventImmutable):
            db.session.execute(statement)
        db.session.rollback()
    [event] = events("merchant.terms")
    assert event.detail == ""


def test_console_merchant_pages_are_for_operators_only(app, merchant):
    client = merchant_client(app, merchant)
    assert client.get("/operator/merchants").status_code == 403
    assert client.post(f"/operator/merchants/{merchant.id}/freeze", data={"reason": "x"}).status_code in (400, 403)
    assert reload(merchant).status == Merchant.APPROVED
