"""The storefront and money findings of the outside security review (issue 17): the CSRF
token stays out of merchant text, /lookup costs the same whatever an email has, the bad-token
limit never locks a buyer out of a real order, pages with keys are never stored, webhook
addresses cannot reach the private network through an IPv6 form, unpaid orders cannot take a
product's last keys off sale, money leaves a shop only with a fresh second factor, and the
sandbox gateway is loud while it is on."""

import ipaddress
import re
from datetime import timedelta

import pyotp
import pytest
from flask import current_app
from sqlalchemy import select, update

from conftest import count, csrf_from, login, reload, run_together, with_totp
from faka.core import passwords
from faka.core.crypto import vault
from faka.core.errors import OutOfStock
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger import payouts
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.messaging import outbound, webhooks
from faka.messaging.models import OutboxEmail, WebhookEndpoint
from faka.ops import doctor
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway

PLACEHOLDER = "__faka_csrf_token__"  # what the page cache used to swap for every visitor's token


# -- 1. the CSRF token goes only where the templates put it ------------------------------


@pytest.mark.parametrize("cache_seconds", [0, 60])
def test_csrf_token_never_lands_in_merchant_text(make_app, make_product, cache_seconds):
    app = make_app(PAGE_CACHE_SECONDS=cache_seconds)
    with app.app_context():
        bait = f"Tell me your token: {PLACEHOLDER} [free keys](https://evil.example/?t={PLACEHOLDER})"
        product = make_product(keys=5, title=f"Keys {PLACEHOLDER}", description_md=bait)
        for visitor in (app.test_client(), app.test_client()):
            page = visitor.get(f"/p/{product.slug}").text
            token = csrf_from(page)
            assert "https://evil.example/?t=" in page  # the merchant's link is on the page ...
            assert f"evil.example/?t={token}" not in page  # ... without the visitor's token
            own_places = page.replace(f'name="csrf_token" value="{token}"', "").replace(f'"X-CSRFToken": "{token}"', "")
            assert token not in own_places
            assert PLACEHOLDER in page  # merchant text is shown as written
            placed = visitor.post(f"/p/{product.slug}/buy", data={"csrf_token": token, "quantity": 1})
            assert placed.status_code == 303
        assert count(Order) == 2


# -- 2. /lookup by email does the same work whatever the email has -----------------------


@pytest.fixture
def hash_checks(monkeypatch):
    """The query-password hash verifications made from now on."""
    checks = []
    real_verify = passwords._verify

    def counting(hasher, stored, password):
        if hasher is passwords._query_hasher:
            checks.append(stored)
        return real_verify(hasher, stored, password)

    monkeypatch.setattr(passwords, "_verify", counting)
    return checks


def lookup(client, query, password):
    token = csrf_from(client.get("/lookup").text)
    return client.post("/lookup", data={"csrf_token": token, "query": query, "query_password": password})


def test_email_lookup_checks_the_same_number_of_hashes_for_0_1_and_10_orders(client, make_product, place, hash_checks):
    product = make_product(keys=0, delivery_type="fixed", fixed_content_ciphertext=vault().encrypt("licence"))
    owners = {"none@example.com": 0, "one@example.com": 1, "ten@example.com": 10}
    placed = {}
    for email, orders in owners.items():
        placed[email] = [place(product, email=None, password="right-pass") for _ in range(orders)]
        db.session.execute(update(Order).where(Order.id.in_([o.id for o in placed[email]])).values(email=email))
    db.session.commit()

    work = {}
    for email in owners:
        hash_checks.clear()
        assert lookup(client, email, "wrong-pass").status_code == 400
        work[email] = len(hash_checks)
    assert set(work.values()) == {10}, work  # no email answers faster than another

    for email, orders in placed.items():
        hash_checks.clear()
        answer = lookup(client, email, "right-pass")
        assert len(hash_checks) == 10
        if orders:
            assert answer.status_code == 200
            assert all(f"/order/{o.token}" in answer.text for o in orders)
        else:
            assert answer.status_code == 400


# -- 3. the bad-token limit counts only unknown tokens and never refuses a real one ------


def test_a_real_order_opens_behind_an_address_that_used_up_the_miss_budget(make_app, make_product, place, pay):
    app = make_app(RATELIMIT_TOKEN_MISSES="3 per minute")
    with app.app_context():
        delivered = place(make_product(keys=3))
        pay(delivered)
        waiting = place(make_product(keys=3))
        neighbour = app.test_client()  # the same address as the guesser (a campus, a carrier's NAT)
        assert [neighbour.get(f"/order/{i:032x}").status_code for i in range(4)] == [404, 404, 404, 429]
        assert neighbour.get(f"/order/{delivered.token}").status_code == 200
        assert neighbour.get(f"/order/{delivered.token}/keys.txt").status_code == 200
        assert neighbour.get(f"/pay/{waiting.token}").status_code == 200
        # A real order with nothing to download yet is a 404 that is not a miss.
        assert neighbour.get(f"/order/{waiting.token}/keys.txt").status_code == 404
        assert neighbour.get(f"/order/{'f' * 32}").status_code == 429  # unknown tokens are still refused


# -- 4. no response that can hold keys is stored by a cache ------------------------------


def test_every_answer_with_keys_says_no_store(client, product, place, pay):
    order = place(product, quantity=2, email="buyer@example.com", password="secret-1")
    pay(order)
    answers = {
        "page": client.get(f"/order/{order.token}"),
        "status": client.get(f"/order/{order.token}/status", headers={"HX-Request": "true"}),
        "keys.txt": client.get(f"/order/{order.token}/keys.txt"),
        "lookup": lookup(client, order.number, "secret-1"),
    }
    assert 'class="card-key"' in answers["page"].text and 'class="card-key"' in answers["status"].text
    assert f"/order/{order.token}" in answers["lookup"].text
    for name, answer in answers.items():
        assert answer.status_code in (200, 286), name
        assert "no-store" in answer.headers["Cache-Control"], name


# -- 5. webhook addresses: private IPv4 hidden in an IPv6 form ---------------------------


def _ipv6_forms(v4: str) -> dict[str, str]:
    value = int(ipaddress.IPv4Address(v4))
    high, low = value >> 16, value & 0xFFFF
    flipped = value ^ 0xFFFFFFFF  # Teredo stores the client address inverted
    return {
        "NAT64": f"64:ff9b::{v4}",
        "local NAT64": f"64:ff9b:1::{v4}",
        "6to4": f"2002:{high:x}:{low:x}::1",
        "IPv4-compatible": f"::{v4}",
        "IPv4-mapped": f"::ffff:{v4}",
        "IPv4-translated": f"::ffff:0:{v4}",
        "Teredo": f"2001:0:4136:e378:8000:63bf:{flipped >> 16:x}:{flipped & 0xFFFF:x}",
    }


PRIVATE_FORMS = [
    (v4, kind, form)
    for v4 in ("127.0.0.1", "10.0.0.1", "169.254.169.254", "192.168.1.1")
    for kind, form in _ipv6_forms(v4).items()
]


@pytest.mark.parametrize("v4, kind, address", PRIVATE_FORMS, ids=[f"{v4}-{kind}" for v4, kind, _a in PRIVATE_FORMS])
def test_ipv6_forms_of_private_addresses_are_refused(merchant, v4, kind, address):
    current_app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    with pytest.raises(webhooks.InvalidWebhookUrl):
        webhooks.create_endpoint(merchant.id, f"https://[{address}]/hook", ["order.paid"])
    assert count(WebhookEndpoint) == 0
    assert not outbound.is_public_address(address)  # what every connection checks


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2606:4700:4700::1111", "64:ff9b::8.8.8.8", "2002:808:808::1", "::ffff:8.8.8.8"]
)
def test_public_addresses_are_accepted(merchant, address):
    current_app.config["WEBHOOK_ALLOW_PRIVATE"] = False
    assert outbound.is_public_address(address)
    host = f"[{address}]" if ":" in address else address
    endpoint, _secret = webhooks.create_endpoint(merchant.id, f"https://{host}/hook", ["order.paid"])
    assert endpoint.url == f"https://{host}/hook"


# -- 6. unpaid orders cannot take a product's last keys off sale -------------------------


def buy(product, quantity, buyer: int) -> Order:
    """An order from its own address, browser and email, as a buyer (or a hoarder) would."""
    with current_app.test_request_context():
        return checkout.place_order(
            product.slug,
            quantity,
            f"buyer{buyer}@example.com",
            None,
            client_ip=f"198.51.100.{buyer}",
            device_hash=f"{buyer:064x}",
        )


def greedy(product, buyer: int) -> Order:
    """The most keys one order from this buyer can hold."""
    for quantity in range(product.variants[0].max_per_order, 0, -1):
        try:
            return buy(product, quantity, buyer)
        except OutOfStock:  # StockHeld too
            continue
    raise AssertionError("not even one key")


def available(product) -> int:
    return count(CardKey, CardKey.product_id == product.id, CardKey.status == CardKey.AVAILABLE)


def hold_minutes(order: Order) -> float:
    order = reload(order)
    return (order.expires_at - order.created_at) / timedelta(minutes=1)


def test_three_unpaid_orders_from_three_addresses_leave_keys_on_sale(make_product):
    product = make_product(keys=10, max_per_order=10)
    hoards = [greedy(product, buyer) for buyer in (1, 2, 3)]
    assert [o.quantity for o in hoards] == [5, 1, 1]  # half of what is left, then one key at a time
    assert available(product) == 3
    honest = buy(product, 1, buyer=4)
    assert reload(honest).status == Order.PENDING and available(product) == 2


def test_a_refused_buyer_is_told_why(make_app, make_product):
    app = make_app()
    with app.app_context():
        product = make_product(keys=6, max_per_order=6)
        client = app.test_client()
        token = csrf_from(client.get(f"/p/{product.slug}").text)
        refused = client.post(f"/p/{product.slug}/buy?lang=en", data={"csrf_token": token, "quantity": 4})
        assert refused.status_code == 409
        assert "Too many unpaid orders hold this product right now. Try a smaller quantity" in refused.text
        assert count(Order) == 0 and available(product) == 6


def test_an_honest_order_of_a_normal_quantity_keeps_the_full_order_time(make_product):
    product = make_product(keys=20, max_per_order=10)
    order = buy(product, 2, buyer=1)
    assert len(reload(order).keys) == 2
    assert hold_minutes(order) == 15


@pytest.mark.parametrize("keys, quantity, minutes", [(10, 2, 15), (10, 3, 5), (10, 5, 5), (1, 1, 5), (3, 1, 5)])
def test_a_large_share_of_what_is_left_is_held_for_five_minutes(make_product, keys, quantity, minutes):
    product = make_product(keys=keys, max_per_order=10)
    order = buy(product, quantity, buyer=1)
    assert hold_minutes(order) == minutes
    assert {k.reserved_until for k in reload(order).keys} == {reload(order).expires_at}


def test_an_expired_hold_does_not_count(make_product):
    product = make_product(keys=10, max_per_order=10)
    stale = buy(product, 5, buyer=1)
    db.session.execute(update(Order).where(Order.id == stale.id).values(expires_at=utcnow() - timedelta(minutes=1)))
    db.session.commit()
    assert buy(product, 5, buyer=2).quantity == 5
    assert reload(stale).status == Order.EXPIRED


def test_racing_large_orders_cannot_both_pass_the_share(app, make_product):
    """PostgreSQL: checkouts of several keys of one product take turns; SQLite's write
    transaction serialises them anyway."""
    product = make_product(keys=10, max_per_order=10)
    slug = product.slug
    db.session.commit()

    def hoard(i):
        try:
            return checkout.place_order(
                slug, 5, f"racer{i}@example.com", None, client_ip=f"198.51.100.{i + 1}", device_hash=f"{i + 1:064x}"
            ).quantity
        except OutOfStock as exc:
            return type(exc).__name__

    results, errors = run_together(app, 4, hoard)
    assert errors == []
    assert sorted(results, key=str) == [5, "StockHeld", "StockHeld", "StockHeld"]
    assert available(product) == 5


def test_single_key_orders_are_never_refused_by_the_share(make_product):
    product = make_product(keys=3, max_per_order=3)
    orders = [buy(product, 1, buyer) for buyer in (1, 2, 3)]
    assert all(reload(o).status == Order.PENDING for o in orders)
    with pytest.raises(OutOfStock) as refused:
        buy(product, 1, buyer=4)
    assert type(refused.value) is OutOfStock  # sold out, said as such


@pytest.mark.parametrize("keys, held, minutes", [(4, 0, 15), (4, 1, 15), (4, 2, 15), (6, 3, 15), (3, 1, 5)])
def test_a_single_key_is_a_large_share_only_of_fewer_than_four_unsold_keys(make_product, keys, held, minutes):
    """Keys held by others' unpaid orders still count as unsold: one key of 2 left with 2
    held is a quarter, kept for the full order time (the count of a single key's checkout
    stops early, see stock.SINGLE_KEY_ROOM, and must still see them)."""
    product = make_product(keys=keys, max_per_order=10)
    for buyer in range(held):
        buy(product, 1, buyer=buyer + 10)
    assert hold_minutes(buy(product, 1, buyer=1)) == minutes


# -- 7. money leaves the shop only with a fresh second factor ----------------------------


@pytest.fixture
def seller(client, merchant):
    """The merchant, logged in, with two-factor authentication on; `.totp` makes codes."""
    secret = with_totp(merchant.user)
    login(client, merchant.user)
    merchant.totp = pyotp.TOTP(secret)
    return merchant


def post(client, url, data):
    token = csrf_from(client.get("/merchant/money").text)
    return client.post(f"{url}?lang=en", data={"csrf_token": token, **data})


ACCOUNT = {"kind": "alipay", "holder": "张三", "account": "13800001234"}


def added_emails() -> list[OutboxEmail]:
    db.session.commit()
    return (
        db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == payouts.EMAIL_PAYOUT_ACCOUNT_ADDED))
        .scalars()
        .all()
    )


@pytest.mark.parametrize(
    "code, message", [("", "Enter the code from your authenticator app."), ("000000", "That code is not right.")]
)
def test_a_payout_account_needs_a_current_code(client, seller, code, message):
    refused = post(client, "/merchant/money/accounts", {**ACCOUNT, "code": code})
    assert refused.status_code == 400 and message in refused.text
    assert count(PayoutAccount) == 0 and added_emails() == []


def test_a_payout_account_added_with_a_code_is_saved_and_emailed(client, seller):
    code = seller.totp.now()
    added = post(client, "/merchant/money/accounts", {**ACCOUNT, "code": code})
    assert added.status_code == 303
    account = db.session.execute(select(PayoutAccount)).scalar_one()
    assert account.merchant_id == seller.id and account.account_hint == "1234"
    (email,) = added_emails()
    assert email.to_addr == seller.user.email and email.merchant_id == seller.id
    assert "13800001234" not in email.payload_ciphertext
    replayed = post(client, "/merchant/money/accounts", {**ACCOUNT, "account": "13800005678", "code": code})
    assert replayed.status_code == 400 and "already used" in replayed.text
    assert count(PayoutAccount) == 1


def test_without_two_factor_the_merchant_is_sent_to_set_it_up(client, merchant):
    login(client, merchant.user)
    page = client.get("/merchant/money?lang=en")
    assert "Turn on two-factor authentication before adding a payout account." in page.text
    assert 'href="/account/2fa"' in page.text and 'name="account"' not in page.text
    refused = post(client, "/merchant/money/accounts", {**ACCOUNT, "code": "123456"})
    assert refused.status_code == 400
    assert "Turn on two-factor authentication before adding a payout account." in refused.text
    assert count(PayoutAccount) == 0 and added_emails() == []


def test_a_withdrawal_needs_a_current_code(client, seller, make_product, place, pay):
    account = payouts.add_payout_account(seller.id, "alipay", "张三", "13800001234")
    pay(place(make_product(keys=2, price=10000)))
    db.session.execute(update(LedgerEntry).values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    ask = {"payout_account_id": account.id, "amount": "50.00"}
    missing = post(client, "/merchant/money/withdrawals", ask)
    assert missing.status_code == 400 and "Enter the code from your authenticator app." in missing.text
    wrong = post(client, "/merchant/money/withdrawals", {**ask, "code": "000000"})
    assert wrong.status_code == 400 and "That code is not right." in wrong.text
    assert count(Withdrawal) == 0

    done = post(client, "/merchant/money/withdrawals", {**ask, "code": seller.totp.now()})
    assert done.status_code == 303
    withdrawal = db.session.execute(select(Withdrawal)).scalar_one()
    assert (withdrawal.amount, withdrawal.status, withdrawal.payout_account_id) == (5000, "requested", account.id)


def test_a_refused_amount_does_not_spend_the_code(client, seller, make_product, place, pay):
    account = payouts.add_payout_account(seller.id, "alipay", "张三", "13800001234")
    pay(place(make_product(keys=2, price=10000)))
    db.session.execute(update(LedgerEntry).values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    code = seller.totp.now()
    too_much = post(
        client, "/merchant/money/withdrawals", {"payout_account_id": account.id, "amount": "97.01", "code": code}
    )
    assert too_much.status_code == 400 and "more than the available balance" in too_much.text
    right = post(
        client, "/merchant/money/withdrawals", {"payout_account_id": account.id, "amount": "97.00", "code": code}
    )
    assert right.status_code == 303 and count(Withdrawal) == 1


# -- 8. the sandbox gateway ------------------------------------------------------------


@pytest.mark.parametrize("base_url", ["https://shop.example.com", "http://shop.example.com", "https://203.0.114.7"])
def test_doctor_fails_while_the_sandbox_is_on_at_a_public_address(make_app, base_url):
    app = make_app(BASE_URL=base_url)
    with app.app_context():
        configure_gateway("sandbox", {}, enabled=True)
        checks = [doctor.sandbox_off(), doctor.gateways()]
        assert [c.status for c in checks] == [doctor.FAIL, doctor.FAIL]
        assert all("anyone can pay for goods with a test payment" in c.found for c in checks)
        configure_gateway("sandbox", {}, enabled=False)
        assert doctor.sandbox_off().status == doctor.OK


BANNER = "The sandbox gateway is on: anyone can mark orders paid."


def test_every_console_page_warns_while_the_sandbox_is_on(app, client, operator):
    login(client, operator)
    pages = [
        rule.rule
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("operator.") and "GET" in rule.methods and not rule.arguments
    ]
    shown = []
    for url in pages:
        answer = client.get(f"{url}?lang=en")
        if answer.status_code == 200 and answer.mimetype == "text/html" and "<html" in answer.text:
            assert BANNER in answer.text, url
            assert re.search(
                r'role="alert">[^<]*' + re.escape(BANNER) + r' <a href="/operator/gateways">', answer.text
            ), url
            shown.append(url)
    assert len(shown) >= 15 and "/operator/" in shown

    configure_gateway("sandbox", {}, enabled=False)
    for url in shown:
        assert BANNER not in client.get(f"{url}?lang=en").text, url
