"""The risk engine: each rule fires on the sequence it is written for and stays quiet just
below it; what each action does to the buyer, the order and the database; thresholds per
site and per product. Fine-grained rules are assessed on a fixed clock (orders and
security events are written with their times); what the buyer sees goes through the pages."""

import re
import secrets
import threading
from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import select, update
from test_ledger import new_operator

from conftest import count, csrf_from, key_texts, reload, run_together, signed_notify
from faka.accounts.login import authenticate, record_sign_in
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.errors import InvalidNotify, LookupFailed
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ops.reconcile import reconcile
from faka.orders import checkout, lookup
from faka.orders.models import Coupon, Order
from faka.orders.tasks import deliver_order
from faka.payments import holds
from faka.payments import notify as payments
from faka.payments.gateways import get_gateway
from faka.payments.gateways.sandbox import sign
from faka.payments.models import NotifyLog, PaymentNotice, Refund
from faka.platform import settings
from faka.platform.models import AuditEvent
from faka.reviews import reviews
from faka.reviews.models import Review
from faka.risk import blacklist, security_events
from faka.risk import engine as risk
from faka.risk.models import BlacklistEntry, RiskEvent, RiskHit, SecurityEvent

HONEST_IP = "203.0.113.10"
ATTACKER_IP = "198.51.100.66"
DEVICE = "d" * 64


# -- helpers ----------------------------------------------------------------------------


def add_order(
    product, *, ip=None, device=None, email=None, status=Order.DELIVERED, created_at=None, expires_at=None
) -> Order:
    """An order row written directly, at the time given: the rules only count rows."""
    now = utcnow()
    created_at = created_at or now
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
        client_ip=ip,
        device_hash=device,
        email=email,
        created_at=created_at,
        expires_at=expires_at or created_at + timedelta(minutes=15),
    )
    db.session.add(order)
    db.session.commit()
    return order


def add_orders(product, n: int, **fields) -> None:
    for _ in range(n):
        add_order(product, **fields)


def add_events(kind: str, n: int, ip=None, device=None, now=None) -> None:
    for _ in range(n):
        security_events.record(kind, ip, device, now=now)


def assess(checkpoint=risk.CHECKOUT, **signals) -> risk.Verdict:
    signals.setdefault("now", utcnow())
    verdict = risk.assess(risk.Signals(checkpoint, **signals))
    db.session.commit()
    return verdict


def fired(verdict: risk.Verdict) -> set[str]:
    return {hit.rule for hit in verdict.hits}


def browser(app, ip: str = HONEST_IP):
    """A browser of its own (fresh cookies, so a fresh device) at this IP, in English."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    client.get("/?lang=en")
    return client


def buy(client, product, quantity=1, email="buyer@example.com", coupon=""):
    page = client.get(f"/p/{product.slug}")
    assert page.status_code == 200
    return client.post(
        f"/p/{product.slug}/buy",
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": quantity,
            "email": email,
            "query_password": "secret-1",
            "coupon": coupon,
        },
    )


def order_of(response) -> Order:
    assert response.status_code == 303, response.text[:500]
    token = response.headers["Location"].rsplit("/", 1)[-1]
    db.session.commit()
    return db.session.execute(select(Order).where(Order.token == token)).scalar_one()


def pay_on_sandbox_page(client, order: Order):
    """Submit the sandbox pay page as the buyer's browser does; returns the order page."""
    page = client.get(f"/pay/{order.token}")
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', page.text))
    paid = client.post("/pay/sandbox/notify", data=fields)
    assert paid.status_code == 303, paid.text[:300]
    return client.get(paid.headers["Location"])


def shown_keys(page) -> list[str]:
    return re.findall(r'<code class="card-key"[^>]*>([^<]+)</code>', page.text)


def events(*where) -> list[RiskEvent]:
    db.session.commit()
    return list(db.session.execute(select(RiskEvent).where(*where).order_by(RiskEvent.id)).scalars())


def rules_of(event: RiskEvent) -> set[str]:
    return {hit.rule for hit in event.hits}


def place(product, quantity=1, email="buyer@example.com", ip=None, device=None, captcha_solved=False) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(
            product.slug, quantity, email, "secret-1", client_ip=ip, device_hash=device, captcha_solved=captcha_solved
        )


def resign(fields: dict) -> dict:
    fields["sign"] = sign(fields, get_gateway("sandbox").settings["secret"])
    return fields


# -- velocity ---------------------------------------------------------------------------


def test_ip_velocity_counts_ten_orders_in_ten_minutes(app, product):
    now = utcnow()
    add_orders(product, 9, ip=ATTACKER_IP, created_at=now - timedelta(minutes=9))
    add_orders(product, 5, ip=ATTACKER_IP, created_at=now - timedelta(minutes=11))  # outside the window
    add_orders(product, 5, ip=HONEST_IP, created_at=now)
    assert "ip_velocity" not in fired(assess(ip=ATTACKER_IP, now=now))

    add_order(product, ip=ATTACKER_IP, created_at=now - timedelta(minutes=1))
    verdict = assess(ip=ATTACKER_IP, now=now)
    assert fired(verdict) == {"ip_velocity"}
    assert verdict.hits[0].detail == "10 orders in 10 min"
    assert verdict.action == risk.FLAG  # alone it is only shown to the operator
    assert fired(assess(ip=HONEST_IP, now=now)) == set()
    # Ten minutes on, the same orders no longer count.
    assert fired(assess(ip=ATTACKER_IP, now=now + timedelta(minutes=10))) == set()


def test_device_velocity_counts_one_browser_across_addresses(app, product):
    now = utcnow()
    for i in range(9):
        add_order(product, ip=f"203.0.113.{i + 1}", device=DEVICE, created_at=now - timedelta(minutes=5))
    add_order(product, device=DEVICE, created_at=now - timedelta(minutes=12))
    assert fired(assess(device_hash=DEVICE, ip="192.0.2.1", now=now)) == set()
    add_order(product, ip="203.0.113.99", device=DEVICE, created_at=now)
    assert fired(assess(device_hash=DEVICE, ip="192.0.2.1", now=now)) == {"device_velocity"}
    assert fired(assess(device_hash="e" * 64, ip="192.0.2.1", now=now)) == set()


def test_email_velocity_counts_one_address_whatever_its_case(app, product):
    now = utcnow()
    add_orders(product, 4, email="fan@example.com", created_at=now - timedelta(minutes=3))
    add_orders(product, 3, email="fan@example.com", created_at=now - timedelta(minutes=30))
    assert fired(assess(email="Fan@Example.com", now=now)) == set()
    add_order(product, email="fan@example.com", created_at=now)
    assert fired(assess(email=" Fan@Example.com ", now=now)) == {"email_velocity"}
    assert fired(assess(email="other@example.com", now=now)) == set()


def test_domain_velocity_counts_addresses_rotated_on_one_domain(app, product):
    now = utcnow()
    for i in range(29):
        add_order(product, email=f"bot{i}@a_b.example", created_at=now - timedelta(minutes=2))
    assert "domain_velocity" not in fired(assess(email="new@a_b.example", now=now))
    add_order(product, email="bot29@a_b.example", created_at=now)
    assert fired(assess(email="new@a_b.example", now=now)) == {"domain_velocity"}
    # The underscore is a letter, not a LIKE wildcard; a subdomain is another domain.
    assert fired(assess(email="new@axb.example", now=now)) == set()
    assert fired(assess(email="new@x.a_b.example", now=now)) == set()


# -- hoarding ---------------------------------------------------------------------------


def test_pending_hoarding_counts_unpaid_unexpired_orders_only(app, product):
    now = utcnow()
    add_orders(product, 4, ip=ATTACKER_IP, status=Order.PENDING, created_at=now - timedelta(minutes=5))
    add_orders(product, 3, ip=ATTACKER_IP, status=Order.DELIVERED, created_at=now - timedelta(minutes=30))
    add_orders(product, 2, ip=ATTACKER_IP, status=Order.EXPIRED, created_at=now - timedelta(minutes=30))
    # Still pending in the table, but its payment deadline has passed.
    add_order(
        product,
        ip=ATTACKER_IP,
        status=Order.PENDING,
        created_at=now - timedelta(minutes=20),
        expires_at=now - timedelta(minutes=1),
    )
    assert fired(assess(ip=ATTACKER_IP, now=now)) == set()

    add_order(product, device=DEVICE, status=Order.PENDING, created_at=now)  # the same browser elsewhere
    verdict = assess(ip=ATTACKER_IP, device_hash=DEVICE, now=now)
    assert fired(verdict) == {"pending_hoarding"}
    assert verdict.action == risk.CAPTCHA
    assert fired(assess(ip=ATTACKER_IP, now=now)) == set()  # by IP alone: four


def test_stock_hoarding_refuses_a_second_order_over_half_the_stock(app, make_product):
    product = make_product(keys=12)
    hoarder = browser(app, ATTACKER_IP)
    first = order_of(buy(hoarder, product, quantity=6))  # a first order is never refused by the share
    assert first.quantity == 6 and not first.risk_flags

    refused = buy(hoarder, product, quantity=1)
    assert refused.status_code == 403
    assert "You already have unpaid orders holding much of this product" in refused.text
    assert count(Order) == 1
    assert count(CardKey, CardKey.status == CardKey.RESERVED) == 6
    event = events()[-1]
    assert event.action == risk.BLOCK and rules_of(event) == {"stock_hoarding"}
    assert event.hits[0].detail == "7 of 12 keys unpaid"

    honest = browser(app, HONEST_IP)  # one key: unpaid orders already hold half (faka/inventory/stock.py)
    assert order_of(buy(honest, product, quantity=1)).status == Order.PENDING


def test_stock_hoarding_allows_a_second_order_within_the_share(app, make_product):
    product = make_product(keys=10)
    place(product, quantity=2, ip=ATTACKER_IP)
    assert "stock_hoarding" not in fired(
        assess(ip=ATTACKER_IP, product=product, variant=product.variants[0], quantity=3)
    )
    assert "stock_hoarding" in fired(assess(ip=ATTACKER_IP, product=product, variant=product.variants[0], quantity=4))


def test_stock_hoarding_counts_only_this_products_live_unpaid_orders_of_this_buyer(app, make_product):
    product, other = make_product(keys=20), make_product(keys=20)
    place(other, quantity=5, ip=ATTACKER_IP)  # another product
    place(product, quantity=4, ip=HONEST_IP)  # another buyer
    paid = place(product, quantity=2, ip=ATTACKER_IP)
    paid.status, paid.paid_at = Order.DELIVERED, utcnow()
    db.session.execute(update(CardKey).where(CardKey.order_id == paid.id).values(status=CardKey.SOLD))
    db.session.commit()
    place(product, quantity=2, ip=ATTACKER_IP)  # the only one that holds: 2 held
    lapsed = place(product, quantity=3, device=DEVICE)  # this browser, but past its deadline (keys not yet released)
    lapsed.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()  # 20 - 4 - 2 - 2 - 3 = 9 keys left

    verdict = assess(ip=ATTACKER_IP, device_hash=DEVICE, product=product, variant=product.variants[0], quantity=4)
    assert [(hit.rule, hit.detail) for hit in verdict.hits if hit.rule == "stock_hoarding"] == [
        ("stock_hoarding", "6 of 11 keys unpaid")
    ]
    assert "stock_hoarding" not in fired(
        assess(ip=ATTACKER_IP, device_hash=DEVICE, product=product, variant=product.variants[0], quantity=3)
    )


# -- who the buyer is -------------------------------------------------------------------


@pytest.mark.parametrize(
    "email, disposable",
    [
        ("x@mailinator.com", True),
        ("x@MAILINATOR.com", True),
        ("x@eu.mailinator.com", True),
        ("x@qq.com", False),
        ("x@gmail.com", False),
        ("x@163.com", False),
        ("x@mymailinator.com", False),
        ("", False),
    ],
)
def test_disposable_email(app, email, disposable):
    assert ("disposable_email" in fired(assess(email=email))) is disposable


def test_disposable_email_any_level_of_subdomain(app):
    assert "disposable_email" in fired(assess(email="x@a.b.mailinator.com"))


def test_disposable_email_asks_for_the_captcha_at_checkout(app, product):
    client = browser(app)
    response = buy(client, product, email="burner@mailinator.com")
    assert response.status_code == 400
    assert "completes a quick check" in response.text
    assert count(Order) == 0 and count(CardKey, CardKey.status == CardKey.AVAILABLE) == 5
    event = events()[-1]
    assert (event.action, event.checkpoint, event.email) == (risk.CAPTCHA, risk.CHECKOUT, "burner@mailinator.com")
    assert rules_of(event) == {"disposable_email"} and not event.captcha_solved
    assert count(RiskEvent) == 1 and count(SecurityEvent) == 0


def test_self_purchase_from_the_owners_sign_in_ip_or_browser(app, merchant, make_product):
    from test_ledger import new_merchant, new_product

    product = make_product()
    other_shop = new_product(new_merchant())
    record_sign_in(merchant.user_id, "192.0.2.44", DEVICE)
    mine = dict(merchant_id=merchant.id, product=product)
    assert fired(assess(ip="192.0.2.44", **mine)) == {"self_purchase"}
    assert fired(assess(ip=HONEST_IP, device_hash=DEVICE, **mine)) == {"self_purchase"}
    assert fired(assess(ip=HONEST_IP, device_hash="e" * 64, **mine)) == set()
    assert fired(assess(ip="192.0.2.44", merchant_id=other_shop.merchant_id, product=other_shop)) == set()
    assert assess(ip="192.0.2.44", **mine).action == risk.FLAG


def test_security_noise_counts_probes_in_the_last_hour(app):
    now = utcnow()
    add_events(SecurityEvent.CSRF_FAILED, 10, ip=ATTACKER_IP, now=now - timedelta(minutes=10))
    add_events(SecurityEvent.ADMIN_PROBE, 5, ip=ATTACKER_IP, now=now - timedelta(minutes=10))
    add_events(SecurityEvent.RATE_LIMITED, 2, ip=ATTACKER_IP, now=now - timedelta(minutes=10))
    add_events(SecurityEvent.CAPTCHA_FAILED, 2, device=DEVICE, now=now - timedelta(minutes=10))
    add_events(SecurityEvent.CSRF_FAILED, 10, ip=ATTACKER_IP, now=now - timedelta(minutes=70))
    add_events(SecurityEvent.LOGIN_FAILED, 10, ip=ATTACKER_IP, now=now)  # counted by its own rule
    assert fired(assess(ip=ATTACKER_IP, device_hash=DEVICE, now=now)) == set()
    add_events(SecurityEvent.ADMIN_PROBE, 1, ip=ATTACKER_IP, now=now)
    verdict = assess(ip=ATTACKER_IP, device_hash=DEVICE, now=now)
    assert fired(verdict) == {"security_noise"} and verdict.action == risk.FLAG
    assert fired(assess(risk.LOOKUP, ip=ATTACKER_IP, device_hash=DEVICE, now=now)) == {"security_noise"}
    assert fired(assess(ip=ATTACKER_IP, now=now)) == set()  # 19 by IP alone


# -- lookups and logins -----------------------------------------------------------------


def guess(ip=ATTACKER_IP, device=None, captcha_solved=False):
    with pytest.raises(LookupFailed):
        lookup.lookup("202601010000000000", "wrong-guess", ip, device, captcha_solved=captcha_solved)


def test_failed_lookups_ask_for_the_captcha_after_five_then_block_at_twenty(app, product):
    for _ in range(risk.FAILED_LOOKUPS):
        guess()
    with pytest.raises(risk.CaptchaRequired):
        lookup.lookup("202601010000000000", "wrong-guess", ATTACKER_IP)
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOOKUP_FAILED) == 5  # refused before guessing
    with pytest.raises(risk.CaptchaRequired):  # a fresh browser at the same address
        lookup.lookup("202601010000000000", "wrong-guess", ATTACKER_IP, DEVICE)
    guess(ip=HONEST_IP, device="e" * 64)  # another address and browser: no captcha
    event = events(RiskEvent.checkpoint == risk.LOOKUP, RiskEvent.action == risk.CAPTCHA)[0]
    assert rules_of(event) == {"failed_lookups"} and event.ip == ATTACKER_IP

    # A solved captcha lets the visitor keep trying, until guessing in bulk is refused.
    for _ in range(risk.FAILED_LOOKUPS_BLOCK - risk.FAILED_LOOKUPS):
        guess(captcha_solved=True)
    with pytest.raises(risk.Blocked):
        lookup.lookup("202601010000000000", "wrong-guess", ATTACKER_IP, captcha_solved=True)
    blocked = events(RiskEvent.action == risk.BLOCK)[-1]
    assert rules_of(blocked) == {"failed_lookups_many"} and blocked.hits[0].detail == "20 failed in 15 min"

    # Even the right password is refused while blocked.
    order = place(product)
    with pytest.raises(risk.Blocked):
        lookup.lookup(order.number, "secret-1", ATTACKER_IP, captcha_solved=True)
    assert lookup.lookup(order.number, "secret-1", HONEST_IP) == [order]


def test_failed_lookups_older_than_the_window_do_not_count(app):
    add_events(SecurityEvent.LOOKUP_FAILED, 30, ip=ATTACKER_IP, now=utcnow() - timedelta(minutes=16))
    add_events(SecurityEvent.LOOKUP_FAILED, 4, ip=ATTACKER_IP)
    guess()
    with pytest.raises(risk.CaptchaRequired):
        guess()


def test_lookup_page_shows_the_captcha_then_refuses(app):
    client = browser(app, ATTACKER_IP)
    token = csrf_from(client.get("/lookup").text)

    def post():
        return client.post(
            "/lookup", data={"csrf_token": token, "query": "202601010000000000", "query_password": "wrong-guess"}
        )

    statuses = [post().status_code for _ in range(risk.FAILED_LOOKUPS)]
    assert statuses == [400] * 5
    captcha = post()
    assert captcha.status_code == 400 and "completes a quick check" in captcha.text
    add_events(SecurityEvent.LOOKUP_FAILED, 15, ip=ATTACKER_IP)
    blocked = post()
    assert blocked.status_code == 403 and "This request cannot be accepted" in blocked.text


def test_failed_logins_ask_for_the_captcha_after_ten_then_block_at_fifty(app, merchant):
    guesses = iter(range(1000))  # a new email each time: one account's failures are throttled on their own

    def attempt(ip=ATTACKER_IP, password="wrong", captcha_solved=False):
        email = merchant.user.email if password != "wrong" else f"nobody{next(guesses)}@example.com"
        return authenticate(email, password, ip, captcha_solved=captcha_solved)

    for _ in range(risk.FAILED_LOGINS):
        assert attempt() is None
    with pytest.raises(risk.CaptchaRequired):
        attempt()
    assert attempt(ip=HONEST_IP, password="merchant-pass-1") is not None
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOGIN_FAILED) == 10

    add_events(SecurityEvent.LOGIN_FAILED, risk.FAILED_LOGINS_BLOCK - 11, ip=ATTACKER_IP)
    assert attempt(captcha_solved=True) is None  # the fiftieth failure
    with pytest.raises(risk.Blocked):
        attempt(password="merchant-pass-1", captcha_solved=True)
    event = events(RiskEvent.checkpoint == risk.LOGIN, RiskEvent.action == risk.BLOCK)[-1]
    assert rules_of(event) == {"failed_logins_many"}

    later = utcnow() + risk.LOGIN_WINDOW
    assert fired(assess(risk.LOGIN, ip=ATTACKER_IP, now=later)) == set()


# -- payment notifications --------------------------------------------------------------


def notify(client, fields, ip):
    return client.post("/pay/sandbox/notify", data=fields, environ_base={"REMOTE_ADDR": ip})


def test_forged_notifies_block_their_source_before_verification(app, client, place, product):
    order = place(product)
    forged = signed_notify(order, sign="0" * 64)
    for _ in range(risk.FORGED_NOTIFIES):
        assert notify(client, forged, ATTACKER_IP).status_code == 400
    assert count(NotifyLog) == 20
    assert (
        count(SecurityEvent, SecurityEvent.kind == SecurityEvent.SIGNATURE_FAILED, SecurityEvent.ip == ATTACKER_IP)
        == 20
    )

    for _ in range(5):
        assert notify(client, forged, ATTACKER_IP).status_code == 400
    assert count(NotifyLog) == 20  # refused unread, unlogged
    assert count(SecurityEvent) == 20
    event = events()[-1]
    assert count(RiskEvent) == 1  # a flood is recorded once a minute, not once a request
    assert (event.checkpoint, event.action, event.ip) == (risk.NOTIFY, risk.BLOCK, ATTACKER_IP)
    assert rules_of(event) == {"forged_notifies"}

    # Even a valid notification is refused from that source ...
    assert notify(client, signed_notify(order), ATTACKER_IP).status_code == 400
    assert reload(order).status == Order.PENDING
    # ... while another source is verified and logged as usual, and the real one pays.
    assert notify(client, forged, "192.0.2.8").status_code == 400
    assert count(NotifyLog) == 21
    assert notify(client, signed_notify(order), "192.0.2.9").status_code == 200
    assert reload(order).status == Order.DELIVERED


def test_forged_notifies_older_than_the_window_do_not_count(app):
    add_events(SecurityEvent.SIGNATURE_FAILED, 40, ip=ATTACKER_IP, now=utcnow() - timedelta(minutes=11))
    add_events(SecurityEvent.SIGNATURE_FAILED, 19, ip=ATTACKER_IP)
    assert fired(assess(risk.NOTIFY, ip=ATTACKER_IP)) == set()
    # Failed logins or lookups from the address are not forged notifications.
    add_events(SecurityEvent.LOGIN_FAILED, 5, ip=ATTACKER_IP)
    assert fired(assess(risk.NOTIFY, ip=ATTACKER_IP)) == set()


def test_amount_mismatches_flag_their_source_but_its_notifications_still_arrive(app, client, place, product):
    """Wrong amounts in authentic notifications come from the provider's own server:
    the operator is shown the source, and its next correct notification still pays."""
    order = place(product)
    for i in range(risk.AMOUNT_MISMATCHES):
        wrong = resign(signed_notify(order, amount=str(order.total - 1 - i)))
        assert notify(client, wrong, ATTACKER_IP).status_code == 400
    assert count(SecurityEvent, SecurityEvent.kind == SecurityEvent.AMOUNT_MISMATCH) == 3
    assert reload(order).status == Order.PENDING
    assert notify(client, signed_notify(order), ATTACKER_IP).status_code == 200
    assert reload(order).status == Order.DELIVERED
    flagged = events()[-1]
    assert rules_of(flagged) == {"amount_mismatches"} and flagged.action == risk.FLAG
    assert flagged.ip == ATTACKER_IP


def test_notify_from_an_unknown_source_is_not_counted(app, client, place, product):
    """Without a source address (a job asking the provider), there is nothing to count."""
    order = place(product)
    with current_app.test_request_context():
        for _ in range(3):
            with pytest.raises(InvalidNotify):
                payments.handle_notify("sandbox", signed_notify(order, sign="0" * 64), {}, b"")
    assert fired(assess(risk.NOTIFY, ip=None)) == set()


# -- complaints and reviews -------------------------------------------------------------


def delivered(product, ip=None, device=None) -> Order:
    order = place(product, ip=ip, device=device)
    with current_app.test_request_context():
        payments.handle_notify("sandbox", signed_notify(order), {}, b"")
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


def complain(order, ip=None, device=None):
    return workflow.open_complaint(order.token, "key_invalid", "The key was already used.", ip=ip, device_hash=device)


def test_complaint_velocity_flags_the_fourth_complaint_in_a_day(app, make_product):
    product = make_product(keys=6)
    bought = [delivered(product, ip=ATTACKER_IP) for _ in range(5)]
    for order in bought[:3]:
        complain(order, ip=ATTACKER_IP)
    assert count(RiskEvent) == 0
    complain(bought[3], ip=ATTACKER_IP)
    event = events()[-1]
    assert (event.checkpoint, event.action, event.order_id) == (risk.COMPLAINT, risk.FLAG, bought[3].id)
    assert rules_of(event) == {"complaint_velocity"}
    assert event.hits[0].detail == "3 in 24 h"
    assert fired(assess(risk.COMPLAINT, ip=ATTACKER_IP, now=utcnow() + timedelta(days=1))) == set()


def test_a_blacklisted_buyer_cannot_complain(app, make_product):
    product = make_product(keys=2)
    order = delivered(product, ip=ATTACKER_IP)
    blacklist.add(BlacklistEntry.EMAIL, "buyer@example.com", "chargeback fraud", actor_id=None)
    with pytest.raises(risk.Blocked):
        complain(order, ip=HONEST_IP)
    assert count(RiskEvent, RiskEvent.checkpoint == risk.COMPLAINT, RiskEvent.action == risk.BLOCK) == 1
    from faka.complaints.models import Complaint

    assert count(Complaint) == 0


def test_review_suspicions_are_recorded_as_risk_events(app, merchant, make_product):
    product = make_product(keys=8)
    record_sign_in(merchant.user_id, "192.0.2.44", None)
    own = delivered(product, ip="192.0.2.44")
    reviews.submit_review(own.token, 5, "Best shop", ip="192.0.2.44")
    event = events(RiskEvent.checkpoint == risk.REVIEW)[-1]
    assert rules_of(event) == {"review_self_purchase"} and event.action == risk.FLAG
    assert event.order_id == own.id and event.merchant_id == merchant.id

    busy = [delivered(product, device=DEVICE) for _ in range(reviews.DEVICE_ORDERS_LIMIT)]
    reviews.submit_review(busy[-1].token, 5, "")
    assert rules_of(events(RiskEvent.checkpoint == risk.REVIEW)[-1]) == {"review_device_orders"}

    honest = delivered(product, ip=HONEST_IP)
    before = count(RiskEvent)
    reviews.submit_review(honest.token, 4, "Fine")
    assert count(RiskEvent) == before


def test_a_blacklisted_reviewer_is_refused(app, make_product):
    product = make_product(keys=2)
    order = delivered(product, device=DEVICE)
    blacklist.add(BlacklistEntry.DEVICE, DEVICE, "review farm", actor_id=None)
    with pytest.raises(risk.Blocked):
        reviews.submit_review(order.token, 5, "", device_hash=DEVICE)
    assert reviews.review_for_order(order.id) is None


# -- the blacklist ----------------------------------------------------------------------


def listed(kind, value, merchant_id=None, expires_at=None):
    return blacklist.add(kind, value, "test", actor_id=None, merchant_id=merchant_id, expires_at=expires_at)


@pytest.mark.parametrize(
    "entry, who, blocked",
    [
        (("ip", "10.0.0.0/8"), {"ip": "10.1.2.3"}, True),
        (("ip", "10.0.0.0/8"), {"ip": "11.0.0.1"}, False),
        (("ip", "192.0.2.7"), {"ip": "192.0.2.7"}, True),
        (("ip", "192.0.2.7"), {"ip": "192.0.2.8"}, False),
        (("ip", "192.0.2.7"), {"ip": "::ffff:192.0.2.7"}, True),
        (("ip", "10.0.0.0/8"), {"ip": "::ffff:10.9.9.9"}, True),
        (("ip", "2001:db8::7"), {"ip": "2001:db8:0::7"}, True),
        (("ip", "2001:db8::/32"), {"ip": "2001:db8:1::5"}, True),
        (("ip", "2001:db8::/32"), {"ip": "2001:db9::5"}, False),
        (("ip", "2001:db8::/32"), {"ip": "10.1.2.3"}, False),
        (("ip", "10.0.0.0/8"), {"ip": "2001:db8::1"}, False),
        (("ip", "10.0.0.0/8"), {"ip": "not-an-address"}, False),
        (("domain", "*.example.com"), {"email": "a@example.com"}, True),
        (("domain", "*.example.com"), {"email": "a@mail.example.com"}, True),
        (("domain", "example.com"), {"email": "a@mail.example.com"}, True),
        (("domain", "example.com"), {"email": "A@Example.COM"}, True),
        (("domain", "example.com"), {"email": "a@notexample.com"}, False),
        (("domain", "example.com"), {"email": "example.com@other.org"}, False),
        (("email", "bad@x.org"), {"email": "Bad@X.org"}, True),
        (("email", "bad@x.org"), {"email": "bad2@x.org"}, False),
        (("email", "bad@x.org"), {"email": "x@bad.x.org"}, False),
        (("device", DEVICE), {"device_hash": DEVICE}, True),
        (("device", DEVICE), {"device_hash": "e" * 64}, False),
    ],
)
def test_blacklist_entries(app, entry, who, blocked):
    listed(*entry)
    verdict = assess(**who)
    assert ("blacklist" in fired(verdict)) is blocked
    assert (verdict.action == risk.BLOCK) is blocked


def test_blacklist_changes_apply_at_once_with_the_cache_on(make_app):
    """Checkouts match against this process's copy of the active entries; adding,
    extending or removing one replaces it at once."""
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        assert fired(assess(ip="10.1.2.3")) == set()  # the (empty) list is now cached
        entry = listed("ip", "10.0.0.0/8", expires_at=utcnow() + timedelta(minutes=1))
        assert fired(assess(ip="10.1.2.3")) == {"blacklist"}
        listed("ip", "10.0.0.0/8")  # extended to never expire
        assert fired(assess(ip="10.1.2.3", now=utcnow() + timedelta(days=1))) == {"blacklist"}
        blacklist.remove(entry.id, actor_id=None)
        assert fired(assess(ip="10.1.2.3")) == set()


def test_expired_blacklist_entries_do_not_block(app):
    now = utcnow()
    listed("ip", "10.0.0.0/8", expires_at=now - timedelta(seconds=1))
    listed("email", "bad@x.org", expires_at=now + timedelta(hours=1))
    assert fired(assess(ip="10.1.2.3", now=now)) == set()
    assert fired(assess(email="bad@x.org", now=now)) == {"blacklist"}
    assert fired(assess(email="bad@x.org", now=now + timedelta(hours=2))) == set()


def test_a_shops_blacklist_covers_its_own_products_only(app, merchant, make_product):
    from test_ledger import new_merchant, new_product

    product = make_product()
    other = new_product(new_merchant())
    listed("ip", "192.0.2.0/24", merchant_id=merchant.id)
    mine = assess(ip="192.0.2.5", merchant_id=merchant.id, product=product)
    assert fired(mine) == {"blacklist"} and mine.hits[0].detail == "shop ip 192.0.2.0/24"
    assert fired(assess(ip="192.0.2.5", merchant_id=other.merchant_id, product=other)) == set()
    assert fired(assess(risk.LOOKUP, ip="192.0.2.5")) == set()  # a lookup is nobody's shop
    listed("ip", "192.0.2.0/24")
    site = assess(risk.LOOKUP, ip="192.0.2.5")
    assert fired(site) == {"blacklist"} and site.hits[0].detail == "site ip 192.0.2.0/24"


def test_a_blocked_checkout_changes_nothing(app, merchant, product):
    coupon = Coupon(merchant_id=merchant.id, code="SAVE10", kind=Coupon.PERCENT, value=1000, usage_limit=5)
    db.session.add(coupon)
    db.session.commit()
    listed("ip", "10.0.0.0/8")
    client = browser(app, "10.1.2.3")
    before = (count(Order), count(CardKey, CardKey.status == CardKey.AVAILABLE), reload(coupon).used_count)

    response = buy(client, product, coupon="SAVE10")
    assert response.status_code == 403
    assert "This request cannot be accepted" in response.text
    assert (count(Order), count(CardKey, CardKey.status == CardKey.AVAILABLE), reload(coupon).used_count) == before
    event = events()[-1]
    assert (event.action, event.ip, event.product_id) == (risk.BLOCK, "10.1.2.3", product.id)
    assert [(h.rule, h.detail) for h in event.hits] == [("blacklist", "site ip 10.0.0.0/8")]

    other = browser(app, "11.0.0.1")
    assert order_of(buy(other, product, coupon="SAVE10")).discount == 100
    assert reload(coupon).used_count == 1


# -- held orders ------------------------------------------------------------------------


@pytest.fixture
def held(app, merchant, make_product):
    """An order the product's stricter hold threshold holds: bought from the shop owner's
    sign-in address, paid on the sandbox page. Returns (browser, order, product)."""
    product = make_product(keys=5, risk_hold_at=20)
    record_sign_in(merchant.user_id, "192.0.2.44", None)
    client = browser(app, "192.0.2.44")
    order = order_of(buy(client, product, quantity=2))
    assert order.risk_flags == "self_purchase" and order.held_at is not None
    page = pay_on_sandbox_page(client, order)
    order = reload(order)
    assert order.status == Order.PAID and order.is_held
    assert "being checked before delivery" in page.text and not shown_keys(page)
    return client, order, product


def test_a_held_order_waits_for_the_operator_then_is_delivered(app, held):
    client, order, product = held
    event = events(RiskEvent.order_id == order.id)[0]
    assert (event.checkpoint, event.action) == (risk.CHECKOUT, risk.HOLD)

    reconcile()
    deliver_order(order.id)
    assert reload(order).status == Order.PAID
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 0
    assert "being checked before delivery" in client.get(f"/order/{order.token}").text
    # Waiting for an operator is not a stuck delivery: /healthz counts it apart.
    health = client.get("/healthz").get_json()
    assert health["held_orders"] == 1 and health["oldest_paid_undelivered_seconds"] is None

    operator = new_operator()
    holds.release(order.id, operator.id)
    order = reload(order)
    assert order.status == Order.DELIVERED and not order.is_held
    page = client.get(f"/order/{order.token}")
    assert sorted(shown_keys(page)) == sorted(key_texts(order)) and len(shown_keys(page)) == 2
    assert count(AuditEvent, AuditEvent.action == "order.released", AuditEvent.actor_id == operator.id) == 1
    with pytest.raises(holds.NotHeld):
        holds.release(order.id, operator.id)


def test_a_refused_held_order_is_refunded_and_its_keys_go_back_on_sale(app, held):
    client, order, product = held
    operator = new_operator()
    with pytest.raises(holds.RefusalReasonRequired):
        holds.refuse(order.id, operator.id, "  ")
    assert reload(order).status == Order.PAID

    holds.refuse(order.id, operator.id, "stolen card")
    order = reload(order)
    assert order.status == Order.REFUNDED and order.refunded_amount == order.total
    refund = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    assert refund.amount == order.total and refund.status == Refund.DONE
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 5
    assert count(CardKey, CardKey.order_id == order.id) == 0
    assert count(AuditEvent, AuditEvent.action == "order.refused") == 1
    assert not shown_keys(client.get(f"/order/{order.token}"))
    with pytest.raises(holds.NotHeld):
        holds.refuse(order.id, operator.id, "again")


def test_a_buyer_blacklisted_before_paying_is_held_not_refused(app, product):
    client = browser(app)
    order = order_of(buy(client, product, email="later-bad@example.com"))
    assert not order.risk_flags
    listed("email", "later-bad@example.com")
    page = pay_on_sandbox_page(client, order)
    order = reload(order)
    assert order.status == Order.PAID and order.is_held and order.risk_flags == "blacklist"
    assert count(PaymentNotice) == 1  # the money is recorded, never refused
    assert "being checked before delivery" in page.text and not shown_keys(page)
    event = events(RiskEvent.checkpoint == risk.NOTIFY)[-1]
    assert event.action == risk.HOLD and event.order_id == order.id


# -- thresholds -------------------------------------------------------------------------


def test_a_product_may_ask_for_the_captcha_earlier(app, make_product):
    strict = make_product(risk_captcha_at=30)
    relaxed = make_product()
    add_orders(relaxed, risk.IP_ORDERS, ip=ATTACKER_IP)
    assert assess(ip=ATTACKER_IP, product=relaxed).action == risk.FLAG
    assert assess(ip=ATTACKER_IP, product=strict).action == risk.CAPTCHA

    client = browser(app, ATTACKER_IP)
    assert buy(client, strict).status_code == 400
    flagged = order_of(buy(client, relaxed))
    assert flagged.risk_flags == "ip_velocity" and flagged.held_at is None
    # A solved captcha lets the buyer through, and the event says so.
    order = place(strict, ip=ATTACKER_IP, captcha_solved=True)
    event = events(RiskEvent.order_id == order.id)[0]
    assert event.action == risk.CAPTCHA and event.captcha_solved


def test_site_thresholds_take_effect(app, product):
    add_orders(product, risk.IP_ORDERS, ip=ATTACKER_IP)
    assert assess(ip=ATTACKER_IP).action == risk.FLAG
    settings.set_setting("risk_captcha_at", "25")
    assert assess(ip=ATTACKER_IP).action == risk.CAPTCHA
    settings.set_setting("risk_hold_at", "30")
    assert assess(ip=ATTACKER_IP).action == risk.HOLD
    settings.set_setting("risk_block_at", "30")
    assert assess(ip=ATTACKER_IP).action == risk.BLOCK
    settings.set_setting("risk_flag_at", "31")
    for key in ("risk_captcha_at", "risk_hold_at", "risk_block_at"):
        settings.set_setting(key, "1000")
    assert assess(ip=ATTACKER_IP).action == risk.ALLOW
    assert fired(assess(ip=ATTACKER_IP)) == {"ip_velocity"}  # the score is kept, the action is not


def test_cached_thresholds_change_with_the_cache(make_app, product):
    app = make_app(PAGE_CACHE_SECONDS=60)
    with app.app_context():
        add_orders(product, risk.IP_ORDERS, ip=ATTACKER_IP)
        assert assess(ip=ATTACKER_IP).action == risk.FLAG
        settings.set_setting("risk_captcha_at", "25")
        assert assess(ip=ATTACKER_IP).action == risk.FLAG  # this process still has the old values
        app.extensions["faka_pagecache"].clear()  # what the operator's settings page does on save
        assert assess(ip=ATTACKER_IP).action == risk.CAPTCHA


# -- the honest buyer -------------------------------------------------------------------


def test_an_honest_buyer_meets_no_risk_at_all(app, product):
    client = browser(app, HONEST_IP)
    response = buy(client, product, quantity=2, email="honest@qq.com")
    order = order_of(response)
    page = pay_on_sandbox_page(client, order)
    order = reload(order)
    assert order.status == Order.DELIVERED and order.risk_flags is None and order.held_at is None
    assert sorted(shown_keys(page)) == sorted(key_texts(order))
    found = client.post(
        "/lookup",
        data={"csrf_token": csrf_from(client.get("/lookup").text), "query": order.number, "query_password": "secret-1"},
    )
    assert found.status_code == 200 and order.number in found.text
    assert count(RiskEvent) == 0 and count(RiskHit) == 0 and count(SecurityEvent) == 0


# -- races and address forms ------------------------------------------------------------

RACERS = 12


def test_racing_checkouts_from_one_address_cannot_pass_the_unpaid_order_limit(app, make_product, monkeypatch):
    """Twelve checkouts at once from an address that already holds four unpaid orders:
    only one more may pass. Each checkout that passes the rules waits for the others to
    get there too (up to a second) before writing its order: the worst timing, every time."""
    product = make_product(keys=30)
    for _ in range(risk.PENDING_ORDERS - 1):
        place(product, ip=ATTACKER_IP)
    slug = product.slug
    db.session.commit()
    everyone_checked = threading.Barrier(RACERS, timeout=1)
    check = risk.check

    def check_then_wait(signals, captcha_solved=False):
        verdict = check(signals, captcha_solved)
        try:
            everyone_checked.wait()
        except threading.BrokenBarrierError:  # the others were refused, or wait for this one's lock
            pass
        return verdict

    monkeypatch.setattr(risk, "check", check_then_wait)

    def attempt(i):
        try:
            return checkout.place_order(slug, 1, f"bot{i}@example.com", None, client_ip=ATTACKER_IP).id
        except risk.CaptchaRequired:
            return "captcha"

    results, errors = run_together(app, RACERS, attempt)
    assert errors == []
    assert results.count("captcha") == RACERS - 1
    assert count(Order, Order.client_ip == ATTACKER_IP, Order.status == Order.PENDING) == risk.PENDING_ORDERS


def test_an_ipv4_mapped_address_is_the_ipv4_address(app):
    """A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d."""
    listed("ip", "10.0.0.0/8")
    assert fired(assess(ip="::ffff:10.1.2.3")) == {"blacklist"}


def test_a_blacklisted_buyer_is_refused_a_review_and_a_complaint_with_403(app, client, product):
    order = delivered(product)
    listed("email", order.email)
    client.get("/?lang=en")
    review_page = client.get(f"/order/{order.token}/review")
    refused = client.post(
        f"/order/{order.token}/review", data={"csrf_token": csrf_from(review_page.text), "rating": 5, "text": "great"}
    )
    assert refused.status_code == 403 and "cannot be accepted" in refused.text
    complaint_page = client.get(f"/order/{order.token}/complaint")
    refused = client.post(
        f"/order/{order.token}/complaint",
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_from(complaint_page.text),
            "reason": "key_invalid",
            "description": "The key was already used.",
        },
    )
    assert refused.status_code == 403 and "cannot be accepted" in refused.text
    assert count(Review) == 0 and count(Complaint) == 0
    assert {e.checkpoint for e in events()} == {risk.REVIEW, risk.COMPLAINT}
