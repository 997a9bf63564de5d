"""The operator's control of the growth programmes (faka/growth/programmes.py, the console's
/operator/growth pages): opening the programmes and their default fees, reviewing
sub-stores, freezing sub-stores and promoters (paid orders still deliver, withdrawals
stop), per-account fee rates, the dashboard's figures, and the new kinds on the
reconciliation page and the platform ledger."""

from datetime import timedelta

import pytest
from flask import current_app
from flask_babel import force_locale
from helpers import buy, new_account, new_promoter, new_reseller, open_programmes, opt_in, resell
from sqlalchemy import select, update
from test_ledger import alipay, new_merchant, new_operator, new_product

from conftest import csrf_from, login, reload, signed_notify, statements
from faka.core.types import utcnow
from faka.extensions import db
from faka.growth import affiliates, programmes, resale
from faka.growth.models import Promoter, SubStore
from faka.ledger import payouts
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify, refunds
from faka.platform import settings
from faka.platform.models import AuditEvent, Setting

# -- helpers ----------------------------------------------------------------------------------


@pytest.fixture
def console(app):
    client = app.test_client()
    client.operator = new_operator()
    from conftest import with_totp

    with_totp(client.operator)
    login(client, client.operator)
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def post(client, url: str, **data):
    """POST a console form with the CSRF token of the client's session."""
    page = client.get("/operator/growth/substores")
    return client.post(url, data={"csrf_token": csrf_from(page.get_data(as_text=True)), **data})


def subject(decision: str) -> str:
    """The subject of a decision's email, in the site's language."""
    with force_locale(current_app.config["BABEL_DEFAULT_LOCALE"]):
        return str(programmes._SUBJECTS[decision])  # noqa: SLF001


def events(action: str) -> list[AuditEvent]:
    db.session.commit()
    return list(db.session.execute(select(AuditEvent).where(AuditEvent.action == action)).scalars())


def emails_to(account) -> list[OutboxEmail]:
    db.session.commit()
    return list(
        db.session.execute(
            select(OutboxEmail)
            .where(OutboxEmail.merchant_id == account.id, OutboxEmail.kind == programmes.EMAIL_SUBSTORE_REVIEW)
            .order_by(OutboxEmail.id)
        ).scalars()
    )


def place(product, substore=None, promoter=None) -> Order:
    with current_app.test_request_context():
        return checkout.place_order(
            product.slug,
            1,
            None,
            None,
            substore_code=substore.code if substore else None,
            referral_code=promoter.code if promoter else None,
        )


def pay(order: Order) -> Order:
    with current_app.test_request_context():
        notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    return reload(order)


def entry(order: Order, kind: str) -> int | None:
    db.session.commit()
    return db.session.scalar(
        select(LedgerEntry.amount).where(LedgerEntry.order_id == order.id, LedgerEntry.kind == kind)
    )


def mature(account_id: int) -> None:
    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.merchant_id == account_id)
        .values(available_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()


def store_sale(fee_rate_bp=None, floor=700, price=1000):
    """A merchant's product resold by an approved sub-store; programmes open."""
    open_programmes()
    merchant = new_merchant()
    product = new_product(merchant, price=800)
    account, substore = new_reseller(fee_rate_bp=fee_rate_bp)
    resell(substore, product, floor, price)
    return merchant, product, account, substore


# -- access -----------------------------------------------------------------------------------

ROUTES = [
    ("GET", "/operator/growth/settings"),
    ("POST", "/operator/growth/settings"),
    ("GET", "/operator/growth/substores"),
    ("GET", "/operator/growth/substores/{store}"),
    ("POST", "/operator/growth/substores/{store}/approve"),
    ("POST", "/operator/growth/substores/{store}/reject"),
    ("POST", "/operator/growth/substores/{store}/freeze"),
    ("POST", "/operator/growth/substores/{store}/unfreeze"),
    ("POST", "/operator/growth/substores/{store}/domain/approve"),
    ("POST", "/operator/growth/substores/{store}/domain/refuse"),
    ("POST", "/operator/growth/substores/{store}/fee"),
    ("GET", "/operator/growth/promoters"),
    ("GET", "/operator/growth/promoters/{promoter}"),
    ("POST", "/operator/growth/promoters/{promoter}/freeze"),
    ("POST", "/operator/growth/promoters/{promoter}/unfreeze"),
    ("POST", "/operator/growth/promoters/{promoter}/fee"),
]


def test_the_routes_cover_every_growth_endpoint(app):
    found = {
        (method, rule.rule)
        for rule in app.url_map.iter_rules()
        if rule.endpoint.startswith("operator.growth")
        for method in rule.methods & {"GET", "POST"}
    }
    listed = {(m, u.replace("{store}", "<code>").replace("{promoter}", "<code>")) for m, u in ROUTES}
    assert found == listed


@pytest.mark.parametrize(("method", "url"), ROUTES)
@pytest.mark.parametrize("who", ["anonymous", "merchant"])
def test_every_growth_route_is_refused_to_merchants_and_anonymous(app, merchant, method, url, who):
    _account, substore = new_reseller(status=SubStore.PENDING)
    _owner, promoter = new_promoter()
    client = app.test_client()
    if who == "merchant":
        login(client, merchant.user)
        token = csrf_from(client.get("/merchant/").get_data(as_text=True))
    else:
        token = csrf_from(client.get("/login").get_data(as_text=True))
    url = url.format(store=substore.code, promoter=promoter.code)
    data = {"csrf_token": token, "reason": "Fraud.", "fee_rate": "1", "resale_enabled": "y", "resale_fee": "1"}
    response = client.get(url) if method == "GET" else client.post(url, data=data)
    if who == "anonymous":
        assert response.status_code == 303 and "/login" in response.headers["Location"]
    else:
        assert response.status_code == 403
    assert reload(substore).status == SubStore.PENDING and reload(promoter).status == Promoter.ACTIVE
    assert reload(substore).fee_rate_bp is None and settings.site_settings()["resale_enabled"] == "0"
    assert events("substore.approved") == [] and events("growth.settings") == []


def test_a_post_without_the_csrf_token_changes_nothing(app, console):
    _account, substore = new_reseller(status=SubStore.PENDING)
    response = console.post(f"/operator/growth/substores/{substore.code}/approve")
    assert response.status_code == 400
    response = console.post("/operator/growth/settings", data={"resale_enabled": "y", "resale_fee": "1"})
    assert response.status_code == 400
    assert reload(substore).status == SubStore.PENDING
    assert settings.site_settings()["resale_enabled"] == "0"


# -- settings ---------------------------------------------------------------------------------


def test_operator_opens_the_programmes_with_fees_in_percent(app, console):
    page = console.get("/operator/growth/settings").get_data(as_text=True)
    assert 'value="3"' in page  # the default 300 basis points, shown in percent
    response = post(
        console,
        "/operator/growth/settings",
        resale_enabled="y",
        resale_fee="2.5",
        affiliate_enabled="y",
        affiliate_fee="0.75",
    )
    assert response.status_code == 303
    saved = {s.key: s.value for s in db.session.execute(select(Setting)).scalars()}
    assert saved["resale_enabled"] == "1" and saved["affiliate_enabled"] == "1"
    assert (saved["resale_fee_bp"], saved["affiliate_fee_bp"]) == ("250", "75")
    assert settings.programme_enabled("resale") and settings.programme_fee_bp("affiliate") == 75
    [event] = events("growth.settings")
    assert event.actor_id == console.operator.id
    assert "250" in (event.after or "") and "300" in (event.before or "")
    page = console.get(response.headers["Location"]).get_data(as_text=True)
    assert "Settings saved." in page and 'value="2.5"' in page and 'value="0.75"' in page

    # Closing one (an unticked box is not sent) is saved and audited too.
    post(console, "/operator/growth/settings", resale_fee="2.5", affiliate_enabled="y", affiliate_fee="0.75")
    assert settings.site_settings()["resale_enabled"] == "0"
    assert len(events("growth.settings")) == 2


@pytest.mark.parametrize(
    ("fee", "message"),
    [
        ("50.5", "The fee rate must be 0% to 50%."),
        ("-1", "The fee rate must be 0% to 50%."),
        ("1.234", "Give the fee rate with at most two decimals, such as 2.5."),
        ("abc", "Enter a number, such as 12.50."),
        ("", "Enter the fee rate."),
    ],
)
def test_a_wrong_fee_is_refused_with_its_message_and_nothing_saved(app, console, fee, message):
    response = post(console, "/operator/growth/settings", resale_enabled="y", resale_fee=fee, affiliate_fee="3")
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert message in page and "Nothing was saved" in page
    assert "Traceback" not in page
    assert settings.site_settings()["resale_enabled"] == "0"
    assert events("growth.settings") == []


def test_save_programmes_checks_values_with_the_settings_rules(app):
    operator = new_operator()
    with pytest.raises(programmes.InvalidProgrammeSettings) as refused:
        programmes.save_programmes(operator.id, {"resale_fee_bp": "6000", "resale_enabled": "yes"})
    assert set(refused.value.errors) == {"resale_fee_bp", "resale_enabled"}
    with force_locale("en"):
        assert str(refused.value.errors["resale_fee_bp"]) == "A whole number from 0 to 5000."
    assert settings.programme_fee_bp("resale") == 300 and events("growth.settings") == []


def test_closed_programmes_hide_stores_and_ignore_links_but_paid_orders_deliver(app, console):
    merchant, product, account, substore = store_sale()
    _owner, promoter = new_promoter()
    opt_in(product, 1000)
    order = place(product, substore=substore)
    other = new_product(merchant)
    opt_in(other, 1000)
    referred = place(other, promoter=promoter)
    post(console, "/operator/growth/settings", resale_fee="3", affiliate_fee="3")  # both closed
    with pytest.raises(resale.SubStoreClosed):
        resale.open_substore(substore.code)
    assert affiliates.active_promoter(promoter.code) is None
    order, referred = pay(order), pay(referred)
    assert order.status == Order.DELIVERED and entry(order, LedgerEntry.RESALE) == 300
    assert referred.status == Order.DELIVERED and entry(referred, LedgerEntry.COMMISSION) == referred.commission > 0


# -- review -----------------------------------------------------------------------------------


def test_the_queue_shows_pending_stores_with_their_owner(app, console):
    account, substore = new_reseller(status=SubStore.PENDING)
    substore.domain = "shop.reseller.test"
    db.session.commit()
    _other, approved = new_reseller()
    page = console.get("/operator/growth/substores").get_data(as_text=True)
    queue, everything = page.split('id="all-substores"', 1)
    assert substore.code in queue and "shop.reseller.test" in queue and account.user.email in queue
    assert "Awaiting approval" in queue  # the owner's own status as a merchant
    assert approved.code not in queue and approved.code in everything
    only_approved = console.get("/operator/growth/substores?status=approved").get_data(as_text=True)
    assert approved.code in only_approved.split('id="all-substores"', 1)[1]
    assert substore.code not in only_approved.split('id="all-substores"', 1)[1]


def test_approve_opens_the_store_audits_and_emails_the_owner(app, console):
    open_programmes()
    account, substore = new_reseller(status=SubStore.PENDING)
    with pytest.raises(resale.SubStoreClosed):
        resale.open_substore(substore.code)
    response = post(console, f"/operator/growth/substores/{substore.code}/approve")
    assert response.status_code == 303
    substore = reload(substore)
    assert substore.status == SubStore.APPROVED and substore.reviewed_at is not None
    assert resale.open_substore(substore.code).id == substore.id
    [event] = events("substore.approved")
    assert event.actor_id == console.operator.id and event.target == f"substore:{substore.code}"
    [email] = emails_to(account)
    assert email.kind == "substore_review" and email.to_addr == account.user.email
    assert email.subject == subject("approved")
    # Approving twice is refused with a message.
    again = post(console, f"/operator/growth/substores/{substore.code}/approve")
    assert again.status_code == 400 and "not possible in the current state" in again.get_data(as_text=True)


def test_a_new_domain_waits_for_the_operator_who_approves_it(app, console, client):
    """The reseller's changed domain is not served until approved; the old one meanwhile."""
    from test_resale_backoffice import post as form_post

    open_programmes()
    account, substore = new_reseller()
    substore.domain = "old.reseller.test"
    account.status = account.APPROVED  # only an approved account changes its store
    db.session.commit()
    login(client, account.user)
    data = {"code": substore.code, "name": substore.name, "domain": "New.Reseller.test"}
    assert form_post(client, "/merchant/substore", data).status_code == 303
    substore = reload(substore)
    assert (substore.domain, substore.pending_domain) == ("old.reseller.test", "new.reseller.test")
    assert "waits for the platform" in client.get("/merchant/substore?lang=en").get_data(as_text=True)
    shop = app.test_client()
    assert shop.get("/", headers={"Host": "new.reseller.test"}).get_data(as_text=True).count(substore.name) == 0
    assert substore.name in shop.get("/", headers={"Host": "old.reseller.test"}).get_data(as_text=True)
    # The queue and the store's page say a domain waits.
    queue = console.get("/operator/growth/substores").get_data(as_text=True).split('id="all-substores"', 1)[0]
    assert substore.code in queue and "Domain waiting: new.reseller.test" in queue
    assert 'id="pending-domain">new.reseller.test' in console.get(f"/operator/growth/substores/{substore.code}").text
    response = post(console, f"/operator/growth/substores/{substore.code}/domain/approve")
    assert response.status_code == 303
    substore = reload(substore)
    assert (substore.domain, substore.pending_domain) == ("new.reseller.test", None)
    assert substore.name in shop.get("/", headers={"Host": "new.reseller.test"}).get_data(as_text=True)
    assert shop.get("/", headers={"Host": "old.reseller.test"}).get_data(as_text=True).count(substore.name) == 0
    [event] = events("substore.domain")
    assert "old.reseller.test" in event.before and "new.reseller.test" in event.after
    assert [e.subject for e in emails_to(account)] == [subject("domain_approved")]
    assert "Sub-store domain approved" in console.get("/operator/audit").get_data(as_text=True)
    # Nothing waits any more: approving again is refused.
    again = post(console, f"/operator/growth/substores/{substore.code}/domain/approve")
    assert again.status_code == 400 and "not possible in the current state" in again.get_data(as_text=True)


def test_a_refused_domain_is_cleared_with_its_reason_emailed(app, console):
    open_programmes()
    account, substore = new_reseller()
    substore.pending_domain = "brand.reseller.test"
    db.session.commit()
    blank = post(console, f"/operator/growth/substores/{substore.code}/domain/refuse", reason=" ")
    assert blank.status_code == 400 and reload(substore).pending_domain == "brand.reseller.test"
    response = post(console, f"/operator/growth/substores/{substore.code}/domain/refuse", reason="Not your brand")
    assert response.status_code == 303
    substore = reload(substore)
    assert (substore.domain, substore.pending_domain, substore.status) == (None, None, SubStore.APPROVED)
    [event] = events("substore.domain_refused")
    assert event.detail == "Not your brand"
    [email] = emails_to(account)
    assert email.subject == subject("domain_refused")


def test_a_first_applications_domain_is_approved_with_the_store(app, console):
    open_programmes()
    _account, substore = new_reseller(status=SubStore.PENDING)
    substore.pending_domain = "first.reseller.test"
    db.session.commit()
    assert post(console, f"/operator/growth/substores/{substore.code}/approve").status_code == 303
    substore = reload(substore)
    assert (substore.status, substore.domain, substore.pending_domain) == (
        SubStore.APPROVED,
        "first.reseller.test",
        None,
    )
    assert len(events("substore.domain")) == 1


def test_reject_needs_a_reason(app, console):
    account, substore = new_reseller(status=SubStore.PENDING)
    response = post(console, f"/operator/growth/substores/{substore.code}/reject", reason="  ")
    assert response.status_code == 400 and "Enter a reason." in response.get_data(as_text=True)
    assert reload(substore).status == SubStore.PENDING
    assert events("substore.rejected") == [] and emails_to(account) == []


def test_reject_is_emailed_over_smtp_with_its_reason(make_app, smtp):
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        client = app.test_client()
        operator = new_operator()
        from conftest import with_totp

        with_totp(operator)
        login(client, operator)
        account, substore = new_reseller(status=SubStore.PENDING)
        response = post(client, f"/operator/growth/substores/{substore.code}/reject", reason="Name copies a brand.")
        assert response.status_code == 303
        substore = reload(substore)
        assert (substore.status, substore.reason) == (SubStore.REJECTED, "Name copies a brand.")
        [event] = events("substore.rejected")
        assert event.detail == "Name copies a brand."
        app.extensions["faka_jobs"].wait_idle()
        [message] = [m for m in smtp.messages if m["To"] == account.user.email]
        body = message.get_body(("plain",)).get_content()
        assert "Name copies a brand." in body and substore.name in body


def test_an_unknown_store_or_promoter_is_404(app, console):
    assert console.get("/operator/growth/substores/nope").status_code == 404
    assert console.get("/operator/growth/promoters/nope").status_code == 404
    assert post(console, "/operator/growth/substores/nope/approve").status_code == 404


# -- freezing ---------------------------------------------------------------------------------


def test_a_frozen_store_closes_stops_withdrawals_and_still_delivers_paid_orders(app, console):
    merchant, product, account, substore = store_sale()
    earlier = buy(product, substore=substore)
    mature(account.id)
    payout = alipay(account)
    order = place(product, substore=substore)  # placed before the freeze, paid after it

    refused = post(console, f"/operator/growth/substores/{substore.code}/freeze", reason="")
    assert refused.status_code == 400 and "Enter a reason." in refused.get_data(as_text=True)
    assert reload(substore).status == SubStore.APPROVED

    response = post(console, f"/operator/growth/substores/{substore.code}/freeze", reason="Chargebacks.")
    assert response.status_code == 303
    assert (reload(substore).status, reload(substore).reason) == (SubStore.FROZEN, "Chargebacks.")
    assert [e.detail for e in events("substore.frozen")] == ["Chargebacks."]
    assert [e.subject for e in emails_to(account)] == [subject("frozen")]
    with pytest.raises(resale.SubStoreClosed):
        resale.open_substore(substore.code)
    with pytest.raises(resale.SubStoreClosed):
        place(product, substore=substore)
    account = reload(account)
    assert payouts.payouts_frozen(account) and not payouts.may_withdraw(account)
    with pytest.raises(payouts.PayoutsStopped):
        payouts.request_withdrawal(account.id, account.user_id, payout.id, 100)

    order = pay(order)
    assert order.status == Order.DELIVERED
    assert entry(order, LedgerEntry.RESALE) == 300 and entry(order, LedgerEntry.SALE) == 700
    assert entry(earlier, LedgerEntry.RESALE) == 300

    response = post(console, f"/operator/growth/substores/{substore.code}/unfreeze")
    assert response.status_code == 303 and reload(substore).status == SubStore.APPROVED
    assert len(events("substore.unfrozen")) == 1
    assert payouts.may_withdraw(reload(account))
    withdrawal = payouts.request_withdrawal(account.id, account.user_id, payout.id, 100)
    assert withdrawal.amount == 100


def test_a_frozen_promoter_earns_no_new_links_nor_withdraws_but_paid_orders_credit(app, console):
    open_programmes()
    merchant = new_merchant()
    product = new_product(merchant, price=2000)
    opt_in(product, 1000)
    account, promoter = new_promoter()
    buy(product, promoter=promoter)
    mature(account.id)
    payout = alipay(account)
    order = place(product, promoter=promoter)

    refused = post(console, f"/operator/growth/promoters/{promoter.code}/freeze")
    assert refused.status_code == 400 and "Enter a reason." in refused.get_data(as_text=True)
    assert reload(promoter).status == Promoter.ACTIVE

    response = post(console, f"/operator/growth/promoters/{promoter.code}/freeze", reason="Fake clicks.")
    assert response.status_code == 303
    assert (reload(promoter).status, reload(promoter).reason) == (Promoter.FROZEN, "Fake clicks.")
    assert [e.detail for e in events("promoter.frozen")] == ["Fake clicks."]
    assert [e.subject for e in emails_to(account)] == [subject("promoter_frozen")]
    assert affiliates.active_promoter(promoter.code) is None
    assert place(product, promoter=promoter).promoter_id is None  # the link no longer counts
    with pytest.raises(payouts.PayoutsStopped):
        payouts.request_withdrawal(account.id, account.user_id, payout.id, 100)

    order = pay(order)
    assert order.status == Order.DELIVERED and entry(order, LedgerEntry.COMMISSION) == 200

    assert post(console, f"/operator/growth/promoters/{promoter.code}/unfreeze").status_code == 303
    assert reload(promoter).status == Promoter.ACTIVE and len(events("promoter.unfrozen")) == 1
    assert payouts.may_withdraw(reload(account))
    assert payouts.request_withdrawal(account.id, account.user_id, payout.id, 100).amount == 100


# -- fee rates --------------------------------------------------------------------------------


def test_a_stores_own_fee_rate_applies_to_the_next_delivery_and_clears_to_the_default(app, console):
    merchant, product, account, substore = store_sale()  # margin 300 a sale, default fee 3 %
    response = post(console, f"/operator/growth/substores/{substore.code}/fee", fee_rate="10")
    assert response.status_code == 303 and reload(substore).fee_rate_bp == 1000
    assert "10%" in console.get(f"/operator/growth/substores/{substore.code}").get_data(as_text=True)
    [event] = events("substore.fee_rate")
    assert event.target == f"substore:{substore.code}"
    assert entry(buy(product, substore=substore), LedgerEntry.RESALE_FEE) == -30

    response = post(console, f"/operator/growth/substores/{substore.code}/fee", fee_rate="10", default="1")
    assert response.status_code == 303 and reload(substore).fee_rate_bp is None
    assert "Default (3%)" in console.get(f"/operator/growth/substores/{substore.code}").get_data(as_text=True)
    assert entry(buy(product, substore=substore), LedgerEntry.RESALE_FEE) == -9
    assert len(events("substore.fee_rate")) == 2


def test_a_promoters_own_fee_rate_applies_to_the_next_delivery(app, console):
    open_programmes()
    product = new_product(new_merchant(), price=1000)
    opt_in(product, 2000)  # commission 200 a sale
    _account, promoter = new_promoter()
    assert post(console, f"/operator/growth/promoters/{promoter.code}/fee", fee_rate="12.5").status_code == 303
    assert reload(promoter).fee_rate_bp == 1250
    assert entry(buy(product, promoter=promoter), LedgerEntry.COMMISSION_FEE) == -25
    assert post(console, f"/operator/growth/promoters/{promoter.code}/fee", default="1").status_code == 303
    assert entry(buy(product, promoter=promoter), LedgerEntry.COMMISSION_FEE) == -6


@pytest.mark.parametrize(
    ("fee", "message"),
    [("51", "The fee rate must be 0% to 50%."), ("0.001", "at most two decimals"), ("", "Enter the fee rate.")],
)
def test_a_wrong_account_fee_rate_is_refused(app, console, fee, message):
    _account, substore = new_reseller(fee_rate_bp=500)
    response = post(console, f"/operator/growth/substores/{substore.code}/fee", fee_rate=fee)
    assert response.status_code == 400 and message in response.get_data(as_text=True)
    assert reload(substore).fee_rate_bp == 500 and events("substore.fee_rate") == []


# -- the dashboard ------------------------------------------------------------------------------


def figure(page: str, name: str) -> list[str]:
    row = page.split(f'data-figure="{name}"', 1)[1].split("</tr>", 1)[0]
    return [cell.split(">", 1)[1] for cell in row.split("</td>")[1:3]]


def test_dashboard_figures_equal_the_sums_by_hand(app, console):
    open_programmes(resale_fee_bp=500, affiliate_fee_bp=1000)
    merchant = new_merchant()
    product = new_product(merchant, price=800)
    account, substore = new_reseller()
    resell(substore, product, 700, 1000)
    opt_in(product, 1000)
    _p_account, promoter = new_promoter()
    new_reseller(status=SubStore.PENDING)
    new_reseller(status=SubStore.PENDING)

    first = buy(product, substore=substore)  # 1000: floor 700, margin 300
    both = buy(product, substore=substore, promoter=promoter)  # margin 300, commission 70
    referred = buy(product, promoter=promoter)  # 800: commission 80
    buy(product)  # neither programme's
    old = buy(product, substore=substore)  # delivered 40 days ago: all time only
    db.session.execute(update(Order).where(Order.id == old.id).values(delivered_at=utcnow() - timedelta(days=40)))
    db.session.execute(
        update(LedgerEntry).where(LedgerEntry.order_id == old.id).values(created_at=utcnow() - timedelta(days=40))
    )
    db.session.commit()
    refunds.refund_order(referred.id, merchant.id, None, allowed_statuses=(Order.DELIVERED,))  # commission 80 back

    page = console.get("/operator/").get_data(as_text=True)
    money = lambda fen: f"{fen / 100:.2f}"  # noqa: E731
    assert figure(page, "resale-orders") == ["2", "3"]
    assert [money(1000 * 2), money(1000 * 3)] == [c.split("¥")[-1].strip() for c in figure(page, "resale-total")]
    assert [c.split("¥")[-1].strip() for c in figure(page, "resale-margins")] == [money(600), money(900)]
    assert [c.split("¥")[-1].strip() for c in figure(page, "resale-floors")] == [money(1400), money(2100)]
    # The margins' fees: 5 % of 300 on each sub-store sale.
    assert [c.split("¥")[-1].strip() for c in figure(page, "resale-fees")] == [money(30), money(45)]
    assert figure(page, "affiliate-orders") == ["2", "2"]
    assert [c.split("¥")[-1].strip() for c in figure(page, "affiliate-commissions")] == [money(150), money(150)]
    assert [c.split("¥")[-1].strip() for c in figure(page, "affiliate-reversed")] == [money(80), money(80)]
    # Fees on the commissions: 10 % of 70 and of 80, the latter returned by the refund.
    assert [c.split("¥")[-1].strip() for c in figure(page, "affiliate-fees")] == [money(7), money(7)]
    assert "Sub-stores waiting for review" in page

    figures = programmes.programme_figures()
    assert figures.pending_substores == 2
    # An approved store asking for a domain waits for the operator too.
    db.session.execute(update(SubStore).where(SubStore.id == substore.id).values(pending_domain="shop.moon.test"))
    db.session.commit()
    assert programmes.programme_figures().pending_substores == 3
    resale_month, affiliate_month = figures.month
    assert (resale_month.orders, resale_month.total, resale_month.margins) == (2, 2000, 600)
    assert (affiliate_month.commissions, affiliate_month.commissions_reversed, affiliate_month.fees) == (150, 80, 7)
    assert first.id and both.commission == 70


def test_the_dashboard_runs_as_many_statements_whatever_the_sales(app, console):
    merchant, product, account, substore = store_sale()
    buy(product, substore=substore)
    few = statements(console, "/operator/")
    for _ in range(3):
        buy(product, substore=substore)
    assert statements(console, "/operator/") == few


# -- reconciliation and the platform ledger ---------------------------------------------------------


def test_tampered_resale_and_commission_entries_show_on_the_reconciliation_page(app, console):
    open_programmes()
    merchant = new_merchant()
    product = new_product(merchant, price=800)
    account, substore = new_reseller()
    resell(substore, product, 700, 1000)
    store_order = buy(product, substore=substore)
    plain = buy(product)
    _p_account, promoter = new_promoter()
    assert "The books balance" in console.get("/operator/reconciliation").get_data(as_text=True)

    db.session.execute(
        update(LedgerEntry)
        .where(LedgerEntry.order_id == store_order.id, LedgerEntry.kind == LedgerEntry.RESALE)
        .values(amount=301)
    )
    db.session.add(
        LedgerEntry(
            merchant_id=promoter.merchant_id,
            order_id=plain.id,
            kind=LedgerEntry.COMMISSION,
            amount=50,
            available_at=utcnow(),
        )
    )
    db.session.commit()
    page = console.get("/operator/reconciliation").get_data(as_text=True)
    assert 'data-kind="resale"' in page and 'data-kind="commission"' in page
    assert "Reseller's margin entry is missing or differs from the sub-store price less the floor" in page
    assert "Promoter's commission entry is missing or differs from the commission of the order" in page
    resale_row = page.split('data-kind="resale"', 1)[1].split("</tr>", 1)[0]
    assert store_order.number in resale_row and "¥3.00" in resale_row and "¥3.01" in resale_row
    assert plain.number in page.split('data-kind="commission"', 1)[1].split("</tr>", 1)[0]


def test_the_platform_ledger_names_the_programmes_fees(app, console):
    merchant, product, account, substore = store_sale()
    buy(product, substore=substore)
    page = console.get("/operator/ledger").get_data(as_text=True)
    assert 'data-kind="resale_fee"' in page and "Platform fee on the margin" in page
    assert 'data-kind="fee"' in page and "Platform fee" in page


def test_the_withdrawal_queue_says_what_the_account_is(app, console):
    merchant, product, account, substore = store_sale()
    buy(product, substore=substore)
    mature(account.id)
    payout = alipay(account)
    payouts.request_withdrawal(account.id, account.user_id, payout.id, 100)
    page = console.get("/operator/withdrawals").get_data(as_text=True)
    roles = page.split('class="account-roles"', 1)[1].split("</small>", 1)[0]
    assert "Reseller" in roles and "Merchant" not in roles and "Promoter" not in roles
    assert new_account  # the reseller is no merchant of its own (helpers.new_account)
