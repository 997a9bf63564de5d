"""No paid order left behind: every notification is logged, and a payment whose
notification never arrives is found by asking the provider ("I have paid", and the
reconciler for payments in flight).

The provider here is a stand-in gateway registered for the test: it keeps the payments
"made at the provider" in a dict and answers queries from it, as a real provider's
query API would. The real gateways' query calls are tested over HTTP in their own files.
"""

import json
import re
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import func, select

from conftest import csrf_from, reload, signed_notify
from faka.core.types import utcnow
from faka.extensions import db
from faka.ops.reconcile import reconcile
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import GATEWAYS, configure_gateway
from faka.payments.gateways.base import Gateway, InvalidNotify, Notice, PaymentStart
from faka.payments.models import NotifyLog, PaymentNotice


class ProviderWithQuery(Gateway):
    """A provider that shows a QR code, never manages to notify us, and answers queries."""

    name = "querying"
    settings_fields = ("merchant_id",)
    paid: dict[str, tuple[str, int]] = {}  # order number -> (trade no, amount), at the provider

    def create_payment(self, order):
        return PaymentStart(qr_text=f"https://provider.test/qr/{order.number}", reference=f"P-{order.number}")

    def verify_notify(self, form, headers, body):
        raise InvalidNotify("this provider's notifications never get through")

    def query(self, order):
        if order.number not in self.paid:
            return None
        trade_no, amount = self.paid[order.number]
        return Notice(order_number=order.number, trade_no=trade_no, amount=amount, currency=order.currency, paid=True)


@pytest.fixture
def provider(app, monkeypatch):
    monkeypatch.setitem(GATEWAYS, ProviderWithQuery.name, ProviderWithQuery)
    ProviderWithQuery.paid = {}
    configure_gateway(ProviderWithQuery.name, {"merchant_id": "M1"}, enabled=True)
    return ProviderWithQuery


def place_with(product, gateway: str) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(product.slug, 1, "buyer@example.com", None, gateway=gateway)


def logs(**where) -> list[NotifyLog]:
    db.session.commit()
    query = select(NotifyLog).order_by(NotifyLog.id)
    for key, value in where.items():
        query = query.where(getattr(NotifyLog, key) == value)
    return list(db.session.execute(query).scalars())


def notices(order) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(PaymentNotice).where(PaymentNotice.order_id == order.id))


# -- the notify log ------------------------------------------------------------------------


def test_every_notification_is_logged_with_its_outcome(client, product, place):
    order = place(product)
    forged = signed_notify(order, sign="0" * 64)
    assert (
        client.post("/pay/sandbox/notify", data=forged, environ_base={"REMOTE_ADDR": "203.0.113.9"}).status_code == 400
    )
    good = signed_notify(order)
    assert client.post("/pay/sandbox/notify", data=good).get_data(as_text=True) == "success"
    assert client.post("/pay/sandbox/notify", data=good).get_data(as_text=True) == "success"  # a replay
    rows = logs(gateway="sandbox")
    assert [(r.verified, r.outcome) for r in rows] == [(False, "rejected"), (True, "paid"), (True, "replay")]
    assert rows[0].reason == "bad signature" and rows[0].source_ip == "203.0.113.9"
    assert f"order_no={order.number}" in rows[1].body and rows[1].order_number == order.number
    assert notices(order) == 1


def test_secret_looking_fields_are_redacted_and_huge_bodies_cut(client, product, place):
    order = place(product)
    fields = signed_notify(order, amount="1")
    fields["api_key"] = "sk-live-should-not-be-kept"
    fields["padding"] = "x" * 100_000
    client.post("/pay/sandbox/notify", data=fields)
    row = logs(gateway="sandbox")[-1]
    assert "sk-live" not in row.body and "api_key=%5Bredacted%5D" in row.body
    assert len(row.body) <= notify.MAX_LOGGED_BODY
    assert json.loads(row.headers)["Content-Type"].startswith("application/x-www-form-urlencoded")


def test_notify_for_an_order_of_another_gateway_is_logged_and_refused(client, product, place, provider):
    order = place_with(product, provider.name)
    response = client.post("/pay/sandbox/notify", data=signed_notify(order))
    assert response.status_code == 400 and response.get_data(as_text=True) == "fail"
    assert reload(order).status == Order.PENDING
    row = logs(gateway="sandbox")[-1]
    assert (row.verified, row.outcome, row.order_number) == (False, "rejected", order.number)
    assert "was not placed with sandbox" in row.reason


# -- the pay page and "I have paid" -----------------------------------------------------------


def test_pay_page_shows_the_qr_code_amount_and_countdown(client, product, provider):
    order = place_with(product, provider.name)
    page = client.get(f"/pay/{order.token}?lang=en").get_data(as_text=True)
    assert "<svg" in page and 'class="segno"' in page
    assert "¥10.00" in page and "data-countdown" in page and "I have paid" in page
    order = reload(order)
    assert order.payment_started_at is not None and order.payment_ref == f"P-{order.number}"


def test_i_have_paid_asks_the_provider(client, product, provider):
    order = place_with(product, provider.name)
    page = client.get(f"/pay/{order.token}?lang=en").get_data(as_text=True)
    token = csrf_from(page)
    waiting = client.post(f"/pay/{order.token}/check", data={"csrf_token": token})
    assert waiting.status_code == 303 and "checked=waiting" in waiting.headers["Location"]
    assert "has not confirmed a payment yet" in client.get(waiting.headers["Location"]).get_data(as_text=True)
    assert reload(order).status == Order.PENDING

    provider.paid[order.number] = ("PROVIDER-TRADE-1", order.total)
    done = client.post(f"/pay/{order.token}/check", data={"csrf_token": token})
    assert done.status_code == 303 and done.headers["Location"].endswith(f"/order/{order.token}")
    assert reload(order).status == Order.DELIVERED and notices(order) == 1
    assert [(r.via, r.outcome) for r in logs(gateway=provider.name)] == [("query", "waiting"), ("query", "paid")]
    assert 'class="card-key"' in client.get(f"/order/{order.token}").get_data(as_text=True)


def test_provider_confirming_the_wrong_amount_pays_nothing(client, product, provider):
    order = place_with(product, provider.name)
    provider.paid[order.number] = ("PROVIDER-TRADE-2", order.total - 1)
    token = csrf_from(client.get(f"/pay/{order.token}").get_data(as_text=True))
    client.post(f"/pay/{order.token}/check", data={"csrf_token": token})
    assert reload(order).status == Order.PENDING and notices(order) == 0
    assert logs(gateway=provider.name)[-1].outcome == "rejected"


def test_i_have_paid_needs_the_csrf_token(client, product, provider):
    order = place_with(product, provider.name)
    provider.paid[order.number] = ("PROVIDER-TRADE-3", order.total)
    assert client.post(f"/pay/{order.token}/check").status_code == 400
    assert reload(order).status == Order.PENDING


def test_pay_page_polls_and_moves_on_once_paid(client, product, place, pay):
    order = place(product)
    waiting = client.get(f"/pay/{order.token}/state", headers={"HX-Request": "true"})
    assert waiting.status_code == 200 and 'hx-trigger="every 2s"' in waiting.get_data(as_text=True)
    pay(order)
    paid = client.get(f"/pay/{order.token}/state", headers={"HX-Request": "true"})
    assert paid.headers["HX-Redirect"] == f"/order/{order.token}"
    assert client.get(f"/pay/{'0' * 32}/state").status_code == 404


# -- the reconciler asks about payments in flight -----------------------------------------------


def test_reconciler_finds_a_payment_whose_notification_was_lost(client, product, place, provider):
    in_flight = place_with(product, provider.name)
    never_sent = place_with(product, provider.name)  # the buyer never opened the pay page
    sandbox = place(product)  # no query API
    for order in (in_flight, sandbox):
        client.get(f"/pay/{order.token}")
    db.session.execute(Order.__table__.update().values(payment_started_at=utcnow() - timedelta(minutes=2)))
    db.session.execute(Order.__table__.update().where(Order.id == never_sent.id).values(payment_started_at=None))
    db.session.commit()
    assert notify.payments_in_flight() == [in_flight.id]

    assert reconcile().payment_checks == 1  # asked; the provider says unpaid
    assert reload(in_flight).status == Order.PENDING
    provider.paid[in_flight.number] = ("PROVIDER-TRADE-4", in_flight.total)
    reconcile()
    assert reload(in_flight).status == Order.DELIVERED and notices(in_flight) == 1
    assert reconcile().payment_checks == 0  # paid: no longer in flight
    assert reload(never_sent).status == Order.PENDING


def test_expired_order_paid_at_the_provider_is_still_honoured(client, product, provider):
    order = place_with(product, provider.name)
    client.get(f"/pay/{order.token}")
    db.session.execute(
        Order.__table__.update()
        .where(Order.id == order.id)
        .values(payment_started_at=utcnow() - timedelta(minutes=20), expires_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    reconcile()  # expires it
    assert reload(order).status == Order.EXPIRED
    provider.paid[order.number] = ("PROVIDER-TRADE-5", order.total)
    reconcile()
    assert reload(order).status == Order.DELIVERED


# -- the operator's view ------------------------------------------------------------------------


@pytest.fixture
def ops(app):
    from test_operator_site import operator_client

    return operator_client(app)


def test_operator_reads_an_orders_notifications_and_asks_the_provider(ops, client, product, provider):
    order = place_with(product, provider.name)
    client.post("/pay/querying/notify", data={"order_no": order.number})  # refused: logged
    page = ops.get(f"/operator/payments?order={order.number}&lang=en").get_data(as_text=True)
    assert "this provider&#39;s notifications never get through" in page and "Ask the provider now" in page
    provider.paid[order.number] = ("PROVIDER-TRADE-6", order.total)
    token = csrf_from(page)
    answer = ops.post(f"/operator/payments/{order.number}/check", data={"csrf_token": token})
    assert answer.status_code == 303 and "checked=paid" in answer.headers["Location"]
    assert reload(order).status == Order.DELIVERED
    page = ops.get(answer.headers["Location"] + "&lang=en").get_data(as_text=True)
    assert "The provider confirmed the payment" in page and "PROVIDER-TRADE-6" in page
    db.session.commit()
    from faka.platform.models import AuditEvent

    assert (
        db.session.scalar(select(func.count()).select_from(AuditEvent).where(AuditEvent.action == "payment.checked"))
        == 1
    )


def test_a_gateway_whose_notifications_stopped_is_flagged(ops, client, product, provider):
    for _ in range(notify.SILENCE_MIN_PAYMENTS):
        client.get(f"/pay/{place_with(product, provider.name).token}")
    health = client.get("/healthz").get_json()
    assert health["silent_gateways"][0]["gateway"] == provider.name
    assert health["silent_gateways"][0]["payments_started"] == notify.SILENCE_MIN_PAYMENTS
    assert "No verified notification from querying" in ops.get("/operator/?lang=en").get_data(as_text=True)
    db.session.add(NotifyLog(gateway=provider.name, via=NotifyLog.NOTIFY, verified=True, outcome="paid"))
    db.session.commit()
    assert client.get("/healthz").get_json()["silent_gateways"] == []


def test_payment_pages_refuse_strangers(client, product, provider, merchant):
    from conftest import login

    order = place_with(product, provider.name)
    assert client.get("/operator/payments").status_code in (302, 303)
    login(client, merchant.user)
    assert client.get("/operator/payments").status_code == 403
    assert client.post(f"/operator/payments/{order.number}/check").status_code in (400, 403)


# -- the buyer chooses how to pay -----------------------------------------------------------------


def test_buyer_chooses_among_the_enabled_gateways(client, product, provider):
    page = client.get(f"/p/{product.slug}?lang=en").get_data(as_text=True)
    assert 'name="gateway" type="radio" value="sandbox"' in page and 'value="querying"' in page
    token = csrf_from(page)
    answer = client.post(f"/p/{product.slug}/buy", data={"csrf_token": token, "quantity": 1, "gateway": "querying"})
    assert answer.status_code == 303
    db.session.commit()
    order = db.session.execute(select(Order)).scalar_one()
    assert order.gateway == "querying" and answer.headers["Location"] == f"/pay/{order.token}"


@pytest.mark.parametrize("choice", ["alipay", "nonsense", ""])
def test_a_gateway_that_is_not_enabled_cannot_be_chosen(client, product, provider, choice):
    token = csrf_from(client.get(f"/p/{product.slug}").get_data(as_text=True))
    answer = client.post(f"/p/{product.slug}/buy?lang=en", data={"csrf_token": token, "quantity": 1, "gateway": choice})
    assert answer.status_code == 400
    assert "This payment method is not available right now" in answer.get_data(as_text=True)
    db.session.commit()
    assert db.session.scalar(select(func.count()).select_from(Order)) == 0


def test_with_one_gateway_the_buyer_is_not_asked(client, product):
    page = client.get(f"/p/{product.slug}").get_data(as_text=True)
    buy_form = page.split('class="buy"')[1].split("</form>")[0]
    assert '<input type="hidden" name="gateway" value="sandbox">' in buy_form and 'type="radio"' not in buy_form
    token = csrf_from(page)
    assert client.post(f"/p/{product.slug}/buy", data={"csrf_token": token, "quantity": 1}).status_code == 303


class ProviderDown(ProviderWithQuery):
    name = "down"

    def create_payment(self, order):
        from faka.payments.gateways.base import GatewayError

        raise GatewayError("HTTP 503 from the provider")

    def query(self, order):
        raise ConnectionError("connection refused by provider.test:443")


def test_provider_down_gives_the_buyer_a_way_on_and_charges_nothing(client, product, monkeypatch):
    monkeypatch.setitem(GATEWAYS, ProviderDown.name, ProviderDown)
    configure_gateway(ProviderDown.name, {"merchant_id": "M1"}, enabled=True)
    order = place_with(product, ProviderDown.name)
    page = client.get(f"/pay/{order.token}?lang=en")
    assert page.status_code == 502 and "Nothing was charged" in page.get_data(as_text=True)
    assert reload(order).status == Order.PENDING and reload(order).payment_started_at is None


def test_operator_tests_a_gateway_connection(ops, provider, monkeypatch):
    page = ops.get("/operator/gateways?lang=en").get_data(as_text=True)
    assert "/pay/querying/notify" in page and "Test the connection" in page
    token = csrf_from(page)
    ok = ops.post("/operator/gateways/querying/test?lang=en", data={"csrf_token": token}).get_data(as_text=True)
    assert "the settings work" in ok
    monkeypatch.setitem(GATEWAYS, ProviderDown.name, ProviderDown)
    configure_gateway(ProviderDown.name, {"merchant_id": "M1"}, enabled=True)
    failed = ops.post("/operator/gateways/down/test?lang=en", data={"csrf_token": token}).get_data(as_text=True)
    assert "could not be asked: ConnectionError: connection refused" in failed
    sandbox = ops.post("/operator/gateways/sandbox/test?lang=en", data={"csrf_token": token}).get_data(as_text=True)
    assert "cannot be tested from here" in sandbox


# -- on a phone ------------------------------------------------------------------------------------


def test_qr_pay_page_on_a_phone_counts_down_and_i_have_paid_completes(live_server, make_product, phone, monkeypatch):
    from playwright.sync_api import expect

    from conftest import no_horizontal_scroll

    app, base = live_server
    monkeypatch.setitem(GATEWAYS, ProviderWithQuery.name, ProviderWithQuery)
    ProviderWithQuery.paid = {}
    configure_gateway(ProviderWithQuery.name, {"merchant_id": "M1"}, enabled=True)
    product = make_product(keys=2, title="Game card")
    phone.goto(f"{base}/p/{product.slug}?lang=en")
    phone.check("input[name=gateway][value=querying]")
    phone.click("form.buy button.primary")
    phone.wait_for_url("**/pay/*")
    assert phone.locator("figure.qr svg").count() == 1
    expect(phone.locator("time[data-countdown]")).to_have_text(re.compile(r"^\d+:\d\d$"))  # e.g. 14:59
    assert no_horizontal_scroll(phone)
    db.session.commit()  # end the test's snapshot: the order was placed by the server
    number = db.session.execute(select(Order.number)).scalar_one()
    ProviderWithQuery.paid[number] = ("PROVIDER-TRADE-7", 1000)
    phone.click("text=I have paid")
    phone.wait_for_url("**/order/*")
    phone.wait_for_selector(".card-key", timeout=10000)
    assert no_horizontal_scroll(phone)
    assert phone.console_errors == []


# -- a buyer who switched the way of paying, or cancelled ------------------------------------------


def test_each_time_the_buyer_is_sent_to_pay_is_recorded(client, product, provider, monkeypatch):
    from faka.payments.models import PaymentAttempt

    asked = []

    def create_payment(self, order):
        asked.append((order.client, order.payer))
        return PaymentStart(qr_text="weixin://pay/1", reference=f"P-{order.number}-{len(asked)}", method="native")

    monkeypatch.setattr(ProviderWithQuery, "create_payment", create_payment)
    order = place_with(product, provider.name)
    notify.start_payment(order, client="wechat", payer="openid-1")
    notify.start_payment(order)
    assert asked == [("wechat", "openid-1"), ("desktop", None)]
    db.session.commit()
    attempts = db.session.execute(select(PaymentAttempt).order_by(PaymentAttempt.id)).scalars().all()
    assert [(a.order_id, a.gateway, a.method, a.reference) for a in attempts] == [
        (order.id, provider.name, "native", f"P-{order.number}-1"),
        (order.id, provider.name, "native", f"P-{order.number}-2"),
    ]
    assert reload(order).payment_ref == f"P-{order.number}-2"


def test_the_gateway_the_buyer_switched_away_from_is_asked(client, product, provider):
    order = place_with(product, provider.name)
    notify.start_payment(order)  # the buyer was shown the provider's QR code
    checkout.change_gateway(order.token, "sandbox")  # then chose the sandbox (no query API)
    assert notify.can_check(reload(order)) and not notify.can_query("sandbox")
    provider.paid[order.number] = ("PROVIDER-TRADE-8", order.total)  # but scanned the code after all
    result = notify.check_payment(order.id)
    assert result is not None and reload(order).status == Order.DELIVERED
    assert [(r.via, r.outcome) for r in logs(gateway=provider.name)] == [("query", "paid")]
    assert reload(order).gateway == "sandbox" and notices(order) == 1


def test_reconciler_asks_about_switched_and_recently_cancelled_orders(client, product, provider):
    switched, cancelled, long_cancelled = (place_with(product, provider.name) for _ in range(3))
    for order in (switched, cancelled, long_cancelled):
        notify.start_payment(order)
    checkout.change_gateway(switched.token, "sandbox")
    checkout.cancel_order(cancelled.token)
    checkout.cancel_order(long_cancelled.token)
    db.session.execute(Order.__table__.update().values(payment_started_at=utcnow() - timedelta(days=2)))
    db.session.execute(
        Order.__table__.update()
        .where(Order.id == long_cancelled.id)
        .values(cancelled_at=utcnow() - notify.LATE_QUERY_WINDOW - timedelta(minutes=1))
    )
    db.session.commit()
    assert sorted(notify.payments_in_flight()) == sorted([switched.id, cancelled.id])

    for order in (switched, cancelled, long_cancelled):
        provider.paid[order.number] = (f"PROVIDER-{order.number}", order.total)
    assert reconcile().payment_checks == 2
    assert reload(switched).status == Order.DELIVERED
    assert reload(cancelled).status == Order.DELIVERED  # a late payment after cancelling is honoured
    assert reload(long_cancelled).status == Order.CANCELLED  # no longer asked about (its notification still counts)
    assert notify.payments_in_flight() == []


def test_a_provider_that_is_down_does_not_keep_the_others_from_being_asked(client, product, provider, monkeypatch):
    from faka.payments.models import PaymentAttempt

    monkeypatch.setitem(GATEWAYS, ProviderDown.name, ProviderDown)
    configure_gateway(ProviderDown.name, {"merchant_id": "M1"}, enabled=True)
    order = place_with(product, provider.name)
    db.session.add(PaymentAttempt(order_id=order.id, gateway=ProviderDown.name, method="qr"))
    db.session.commit()
    with pytest.raises(ConnectionError):  # nobody confirms a payment: the error is raised, a job retries
        notify.check_payment(order.id)
    provider.paid[order.number] = ("PROVIDER-TRADE-9", order.total)
    assert notify.check_payment(order.id) is not None and reload(order).status == Order.DELIVERED


def test_an_order_whose_gateways_cannot_be_asked_says_so(client, product, place):
    from faka.payments.gateways.base import CannotQuery

    order = place(product)
    notify.start_payment(order)
    assert not notify.can_check(order)
    with pytest.raises(CannotQuery):
        notify.check_payment(order.id)
