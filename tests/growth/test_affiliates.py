"""Affiliate links (推广) as a buyer, a promoter and a merchant meet them: the `?ref=`
cookie and its clicks, checkout through the cookie, the commission fixed at payment,
credited at delivery and reversed by a refund, the promoter's page and figures, the
merchant's opt-in, the privacy policy's paragraph, and who may see and post what."""

import re
import secrets
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from test_ledger import new_merchant, new_product, settled

from conftest import count, csrf_from, login, reload, run_together, signed_notify
from faka.accounts.models import Merchant
from faka.core.db import write_transaction
from faka.core.types import utcnow
from faka.extensions import db
from faka.growth import affiliates
from faka.growth.models import AffiliateTerms, Promoter, ReferralClick
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.payments import refunds
from faka.platform import settings
from faka.platform.models import AuditEvent

DAY = 24 * 3600


# -- helpers ----------------------------------------------------------------------------


def open_affiliates(on: bool = True, fee_bp: int = 300) -> None:
    settings.set_setting("affiliate_enabled", "1" if on else "0", commit=False)
    settings.set_setting("affiliate_fee_bp", str(fee_bp), commit=False)
    db.session.commit()


def new_account(status: str = Merchant.PENDING) -> Merchant:
    """A back-office account that is not (yet) an approved merchant."""
    account = new_merchant()
    account.status = status
    db.session.commit()
    return account


def make_promoter(account: Merchant | None = None) -> Promoter:
    account = account or new_account()
    return affiliates.become_promoter(account.id, account.user_id)


def opt_in(product, commission_bp: int) -> None:
    db.session.add(AffiliateTerms(product_id=product.id, merchant_id=product.merchant_id, commission_bp=commission_bp))
    db.session.commit()


def visitor(app, ip: str = "203.0.113.7"):
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = ip
    return client


def ref_cookie(client) -> str | None:
    cookie = client.get_cookie("faka_ref")
    return cookie.value if cookie else None


def buy_through(client, product, email="buyer@example.com") -> Order:
    page = client.get(f"/p/{product.slug}?lang=en")
    response = client.post(
        f"/p/{product.slug}/buy",
        data={"csrf_token": csrf_from(page.text), "quantity": 1, "email": email, "query_password": "secret-1"},
    )
    assert response.status_code == 303, response.text[:400]
    token = response.headers["Location"].rsplit("/", 1)[-1]
    db.session.commit()
    return db.session.execute(select(Order).where(Order.token == token)).scalar_one()


def pay(client, order: Order) -> Order:
    assert client.post("/pay/sandbox/notify", data=signed_notify(order)).status_code in (200, 303)
    return reload(order)


def entries(account_id: int, order: Order | None = None) -> dict[str, int]:
    db.session.commit()
    query = select(LedgerEntry.kind, func.sum(LedgerEntry.amount)).where(LedgerEntry.merchant_id == account_id)
    if order is not None:
        query = query.where(LedgerEntry.order_id == order.id)
    return {kind: int(total) for kind, total in db.session.execute(query.group_by(LedgerEntry.kind))}


@pytest.fixture
def shop(app):
    """The programme open, a merchant's product opted in at 10 %, a promoter."""
    open_affiliates()
    seller = new_merchant(fee_rate_bp=500)
    product = new_product(seller, keys=10, price=2000)
    opt_in(product, 1000)
    return seller, product, make_promoter()


# -- the cookie and the clicks ----------------------------------------------------------


def test_a_ref_link_sets_the_cookie_for_30_days_and_counts_a_click(app, shop):
    _seller, product, promoter = shop
    client = visitor(app)
    response = client.get(f"/p/{product.slug}?ref={promoter.code}")
    assert response.status_code == 200
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("faka_ref="))
    assert header.startswith(f"faka_ref={promoter.code};")
    assert f"Max-Age={30 * DAY}" in header and "HttpOnly" in header and "SameSite=Lax" in header
    clicks = db.session.execute(select(ReferralClick)).scalars().all()
    assert [(c.promoter_id, c.product_id) for c in clicks] == [(promoter.id, product.id)]


def test_the_ref_cookie_is_secure_over_https(app, shop):
    _seller, product, promoter = shop
    response = visitor(app).get(f"/?ref={promoter.code}", base_url="https://localhost")
    header = next(h for h in response.headers.getlist("Set-Cookie") if h.startswith("faka_ref="))
    assert "Secure" in header


def test_a_later_link_overwrites_the_cookie(app, shop):
    _seller, product, first = shop
    second = make_promoter()
    client = visitor(app)
    client.get(f"/?ref={first.code}")
    assert ref_cookie(client) == first.code
    client.get(f"/p/{product.slug}?ref={second.code}")
    assert ref_cookie(client) == second.code
    order = buy_through(client, product)
    assert order.promoter_id == second.id


@pytest.mark.parametrize("case", ["unknown", "frozen", "closed"])
def test_an_unknown_or_frozen_code_or_a_closed_programme_sets_nothing(app, shop, case):
    _seller, product, promoter = shop
    code = promoter.code
    if case == "unknown":
        code = "nosuchcode"
    elif case == "frozen":
        promoter.status, promoter.reason = Promoter.FROZEN, "fake clicks"
        db.session.commit()
    else:
        open_affiliates(on=False)
    client = visitor(app)
    response = client.get(f"/p/{product.slug}?ref={code}")
    assert response.status_code == 200 and product.title in response.text  # the page as usual
    assert ref_cookie(client) is None and count(ReferralClick) == 0


def test_a_click_counts_once_per_visitor_and_day(app, shop):
    _seller, product, promoter = shop
    first = visitor(app, "203.0.113.1")
    first.get("/")  # gets its device cookie
    first.get(f"/?ref={promoter.code}")
    first.get(f"/p/{product.slug}?ref={promoter.code}")
    first.get(f"/?ref={promoter.code}")
    assert count(ReferralClick) == 1
    second = visitor(app, "203.0.113.2")
    second.get("/")  # has a device cookie before following the link
    second.get(f"/?ref={promoter.code}")
    second.get(f"/?ref={promoter.code}")
    assert count(ReferralClick) == 2
    # The next UTC day the same visitor counts again.
    db.session.execute(ReferralClick.__table__.update().values(day="2000-01-01"))
    db.session.commit()
    second.get(f"/?ref={promoter.code}")
    assert count(ReferralClick) == 3


def test_visitors_behind_one_address_each_count(app, shop):
    """Carrier NAT: many buyers share one address. Each browser with its device cookie
    counts; only visitors with no device cookie at all are told apart by the address."""
    _seller, product, promoter = shop
    cookieless = visitor(app, "198.51.100.5")
    cookieless.get(f"/?ref={promoter.code}")  # no device cookie: counted by the address
    cookieless.delete_cookie("faka_device")
    cookieless.get(f"/p/{product.slug}?ref={promoter.code}")  # still none: the same address
    assert count(ReferralClick) == 1
    for _ in range(3):
        browser = visitor(app, "198.51.100.5")
        browser.get("/")  # has its device cookie before following the link
        browser.get(f"/?ref={promoter.code}")
        browser.get(f"/?ref={promoter.code}")
    assert count(ReferralClick) == 4
    hashes = db.session.scalars(select(ReferralClick.visitor_hash)).all()
    assert len(set(hashes)) == 4 and not any("198.51.100" in h for h in hashes)  # keyed hashes only


def test_a_click_that_cannot_be_written_still_serves_the_page_and_the_cookie(app, shop, monkeypatch, caplog):
    """A locked database while the click is written: the click is lost, logged and
    rolled back; the buyer gets the page and the referral cookie all the same."""
    from sqlalchemy.exc import OperationalError

    _seller, product, promoter = shop

    def locked(promoter_id, visitor_hash, product_slug):
        with write_transaction():
            db.session.add(ReferralClick(promoter_id=promoter_id, day="2000-01-01", visitor_hash=visitor_hash))
            db.session.flush()
            raise OperationalError("INSERT INTO referral_clicks", {}, Exception("database is locked"))

    monkeypatch.setattr(affiliates, "record_click", locked)
    client = visitor(app)
    client.get("/")
    with caplog.at_level("WARNING"):
        response = client.get(f"/p/{product.slug}?ref={promoter.code}")
    assert response.status_code == 200 and product.title in response.text
    assert ref_cookie(client) == promoter.code
    assert count(ReferralClick) == 0
    warnings = [r for r in caplog.records if r.levelname == "WARNING" and "click" in r.getMessage()]
    assert len(warnings) == 1
    assert promoter.code not in warnings[0].getMessage() and "203.0.113.7" not in warnings[0].getMessage()
    # The next page of the same request's thread still works.
    assert client.get("/").status_code == 200


def test_the_cached_page_is_the_same_for_every_visitor(make_app, shop):
    _seller, product, promoter = shop
    app = make_app(PAGE_CACHE_SECONDS=60)
    plain = app.test_client().get(f"/p/{product.slug}")
    referred = app.test_client().get(f"/p/{product.slug}?ref={promoter.code}")
    assert referred.status_code == 200 and "faka_ref" in "".join(referred.headers.getlist("Set-Cookie"))
    again = app.test_client().get(f"/p/{product.slug}")
    assert "faka_ref" not in "".join(again.headers.getlist("Set-Cookie"))
    assert promoter.code not in referred.text and promoter.code not in again.text
    assert plain.text.replace(csrf_from(plain.text), "") == again.text.replace(csrf_from(again.text), "")


# -- the money --------------------------------------------------------------------------


def test_checkout_through_the_cookie_names_the_promoter_and_the_commission_is_credited(app, shop):
    seller, product, promoter = shop
    client = visitor(app)
    client.get(f"/p/{product.slug}?ref={promoter.code}")
    order = buy_through(client, product)
    assert (order.promoter_id, order.commission_bp, order.commission) == (promoter.id, 1000, 0)

    order = pay(client, order)
    assert order.status == Order.DELIVERED
    assert order.commission == 200  # 10 % of the 20.00 the merchant asked
    assert entries(promoter.merchant_id, order) == {"commission": 200, "commission_fee": -6}  # 3 % platform fee
    assert entries(seller.id, order) == {"sale": 1800, "fee": -90}  # 2000 - 200, then its own 5 % fee
    assert count(LedgerEntry, LedgerEntry.merchant_id == promoter.merchant_id) == 2


def test_an_order_without_the_cookie_or_of_a_product_not_opted_in_names_no_promoter(app, shop):
    seller, product, promoter = shop
    other = new_product(seller, keys=3)
    client = visitor(app)
    assert buy_through(client, product).promoter_id is None
    client.get(f"/?ref={promoter.code}")
    assert buy_through(client, other).promoter_id is None


def test_a_full_refund_reverses_the_commission(app, shop):
    seller, product, promoter = shop
    client = visitor(app)
    client.get(f"/?ref={promoter.code}")
    order = pay(client, buy_through(client, product))
    with write_transaction():
        refunds.apply_refund(reload(order), order.total, None, order.delivered_at + timedelta(minutes=1))
    assert entries(promoter.merchant_id) == {
        "commission": 200,
        "commission_fee": -6,
        "commission_refund": -200,
        "commission_fee_return": 6,
    }
    assert sum(entries(promoter.merchant_id).values()) == 0 and sum(entries(seller.id).values()) == 0


def test_a_complaint_decided_with_a_full_refund_reverses_the_commission(app, shop):
    from test_ledger import new_operator

    from faka.complaints import workflow
    from faka.complaints.models import Complaint

    _seller, product, promoter = shop
    client = visitor(app)
    client.get(f"/?ref={promoter.code}")
    order = pay(client, buy_through(client, product))
    opened = order.delivered_at + timedelta(minutes=1)
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "The key does not work.", now=opened)
    workflow.escalate(complaint.id, opened + timedelta(days=3))
    workflow.decide(complaint.id, new_operator().id, order.total, "Key invalid.", opened + timedelta(days=3, minutes=1))
    assert reload(order).status == Order.REFUNDED
    assert entries(promoter.merchant_id)["commission_refund"] == -200
    assert sum(entries(promoter.merchant_id).values()) == 0


# -- the promoter -----------------------------------------------------------------------


def test_a_pending_account_becomes_a_promoter_with_a_random_code(app, client):
    open_affiliates()
    account = new_account(Merchant.PENDING)
    login(client, account.user)
    page = client.get("/merchant/promoter?lang=en")
    assert "Become a promoter" in page.text
    response = client.post("/merchant/promoter", data={"csrf_token": csrf_from(page.text)})
    assert response.status_code == 303
    promoter = db.session.execute(select(Promoter).where(Promoter.merchant_id == account.id)).scalar_one()
    assert re.fullmatch(r"[a-z0-9]{8,10}", promoter.code)
    assert count(AuditEvent, AuditEvent.action == "promoter.joined") == 1
    page = client.get("/merchant/promoter?lang=en")
    assert f"http://localhost/?ref={promoter.code}" in page.text
    # Asking again keeps the one code.
    client.post("/merchant/promoter", data={"csrf_token": csrf_from(page.text)})
    assert count(Promoter) == 1


def test_two_simultaneous_joins_make_one_promoter(app):
    """Two "Become a promoter" posts at once (a double click): one promoter, one code,
    no error page for either."""
    open_affiliates()
    account = new_account()
    ids = (account.id, account.user_id)
    db.session.commit()
    results, errors = run_together(app, 2, lambda _i: affiliates.become_promoter(*ids).code)
    assert errors == [] and results[0] == results[1]
    assert count(Promoter) == 1 and count(AuditEvent, AuditEvent.action == "promoter.joined") == 1


def test_no_promoter_while_the_programme_is_closed_or_for_a_frozen_account(app, client):
    open_affiliates(on=False)
    account = new_account()
    login(client, account.user)
    page = client.get("/merchant/promoter?lang=en")
    assert "not open at the moment" in page.text and "Become a promoter" not in page.text
    with pytest.raises(affiliates.ProgrammeClosed):
        make_promoter(account)
    open_affiliates()
    frozen = new_account(Merchant.FROZEN)
    with pytest.raises(affiliates.PromoterRefused):
        make_promoter(frozen)
    assert count(Promoter) == 0


def test_the_link_box_turns_a_page_of_this_site_into_a_ref_link(app, client, shop):
    _seller, product, promoter = shop
    login(client, db.session.get(Merchant, promoter.merchant_id).user)
    made = client.get(f"/merchant/promoter/link?url=http://localhost/p/{product.slug}%3Fv%3Dx%26ref%3Dold&lang=en")
    assert made.status_code == 200
    assert f"http://localhost/p/{product.slug}?v=x&amp;ref={promoter.code}" in made.text
    partial = client.get(f"/merchant/promoter/link?url=/p/{product.slug}", headers={"HX-Request": "true"})
    assert f"/p/{product.slug}?ref={promoter.code}" in partial.text and "<nav" not in partial.text
    for bad in ("https://evil.example/p/x", "/merchant/money", "javascript:alert(1)", "//evil.example/"):
        refused = client.get("/merchant/promoter/link", query_string={"url": bad, "lang": "en"})
        assert refused.status_code == 400 and "of this site" in refused.text and 'id="made-link"' not in refused.text


def test_the_promoter_page_shows_the_figures_by_day(app, client, shop):
    seller, product, promoter = shop
    for ip in ("203.0.113.1", "203.0.113.2", "203.0.113.3"):
        visitor(app, ip).get(f"/?ref={promoter.code}")
    buyer = visitor(app, "203.0.113.9")
    buyer.get(f"/p/{product.slug}?ref={promoter.code}")
    paid = pay(buyer, buy_through(buyer, product))
    unpaid = buy_through(buyer, product)
    refunded = pay(buyer, buy_through(buyer, product, email="other@example.com"))
    with write_transaction():
        refunds.apply_refund(reload(refunded), refunded.total, None, refunded.delivered_at)

    login(client, db.session.get(Merchant, promoter.merchant_id).user)
    page = client.get("/merchant/promoter?lang=en").text
    today = paid.created_at.date().isoformat()
    row = re.search(rf"<tr><td>{today}</td>(.*?)</tr>", page, re.S).group(1)
    cells = re.findall(r"<td>([^<]*)</td>", row)
    # clicks, orders, paid, net available, net in the hold, reversed
    assert cells[:3] == ["4", "3", "2"]
    # 2.00 + 2.00 credited, less 3 % fee each; one taken back with its fee: 1.94 coming.
    assert cells[3].endswith("0.00") and cells[4].endswith("1.94") and cells[5].endswith("2.00")
    summary = dict(re.findall(r"<dt>([^<]*)</dt><dd[^>]*>([^<]*)</dd>", page))
    assert summary["Commission credited"].endswith("4.00")
    assert summary["Reversed by refunds"].endswith("2.00")
    assert summary["Platform fee, net of fees returned"].endswith("0.06")
    assert summary["Net commission"].endswith("1.94")
    assert summary["of which in the settlement hold"].endswith("1.94")
    assert summary["of which available"].endswith("0.00")
    assert paid.number not in page and paid.number[:4] + "…" + paid.number[-2:] in page
    assert "Credited" in page and "Reversed" in page and "Awaiting payment" in page
    assert unpaid.number[:4] in page
    # After the hold the credited commission is available.
    figures = affiliates_figures(promoter, settled())
    assert (figures.totals.available, figures.totals.pending, figures.totals.reversed) == (194, 0, 200)
    assert (figures.totals.credited, figures.totals.fees) == (400, 6)  # the refunded one's fee returned
    # The net agrees with the promoter's money page: everything its ledger holds.
    assert figures.totals.available == sum(entries(promoter.merchant_id).values())


def affiliates_figures(promoter, now):
    from faka.growth import promoter_stats

    return promoter_stats.daily_figures(promoter.id, promoter.merchant_id, now)


def test_a_frozen_promoter_sees_why_and_its_links_stop(app, client, shop):
    _seller, product, promoter = shop
    promoter.status, promoter.reason = Promoter.FROZEN, "bought clicks"
    db.session.commit()
    login(client, db.session.get(Merchant, promoter.merchant_id).user)
    page = client.get("/merchant/promoter?lang=en").text
    assert "frozen" in page and "bought clicks" in page
    buyer = visitor(app)
    buyer.set_cookie("faka_ref", promoter.code)
    assert buy_through(buyer, product).promoter_id is None


def test_a_pending_merchant_who_promotes_can_withdraw_from_the_money_page(app, client, shop):
    import pyotp

    from faka.core.crypto import vault
    from faka.ledger.models import PayoutAccount, Withdrawal
    from faka.ledger.payouts import add_payout_account

    _seller, product, promoter = shop
    account = db.session.get(Merchant, promoter.merchant_id)
    assert account.status == Merchant.PENDING
    buyer = visitor(app)
    buyer.get(f"/?ref={promoter.code}")
    for _ in range(3):
        pay(buyer, buy_through(buyer, product, email=f"b{secrets.token_hex(3)}@example.com"))
    db.session.execute(LedgerEntry.__table__.update().values(available_at=utcnow() - timedelta(days=1)))
    db.session.commit()
    payout = add_payout_account(account.id, PayoutAccount.ALIPAY, "张三", "13800138000")
    login(client, account.user)
    page = client.get("/merchant/money?lang=en")
    assert page.status_code == 200 and "Request withdrawal" in page.text
    secret = vault().decrypt(reload(account.user).totp_secret)
    response = client.post(
        "/merchant/money/withdrawals",
        data={
            "csrf_token": csrf_from(page.text),
            "payout_account_id": payout.id,
            "amount": "5.00",
            "code": pyotp.TOTP(secret).now(),
        },
    )
    assert response.status_code == 303, response.text[:500]
    assert count(Withdrawal, Withdrawal.merchant_id == account.id, Withdrawal.amount == 500) == 1


# -- the merchant -----------------------------------------------------------------------


def test_the_merchant_opts_a_product_in_with_a_rate_in_percent(app, client):
    open_affiliates()
    seller = new_merchant()
    product = new_product(seller)
    login(client, seller.user)
    page = client.get("/merchant/affiliate?lang=en")
    assert page.status_code == 200 and product.title in page.text and "Not opted in" in page.text
    response = client.post(
        f"/merchant/affiliate/{product.slug}", data={"csrf_token": csrf_from(page.text), "rate": "7.25", "active": "y"}
    )
    assert response.status_code == 303
    terms = db.session.execute(select(AffiliateTerms)).scalar_one()
    assert (terms.product_id, terms.commission_bp, terms.active) == (product.id, 725, True)
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "affiliate.terms")).scalar_one()
    assert event.actor_id == seller.user_id and event.target == f"product:{product.id}"
    assert "Opted in: 7.25 %" in client.get("/merchant/affiliate?lang=en").text
    # Off again: the terms stay, paused.
    client.post(f"/merchant/affiliate/{product.slug}", data={"csrf_token": csrf_from(page.text), "rate": "7.25"})
    assert reload(terms).active is False
    assert "Paused" in client.get("/merchant/affiliate?lang=en").text


def test_two_simultaneous_first_opt_ins_of_one_product_make_one_set_of_terms(app):
    seller = new_merchant()
    product = new_product(seller)
    ids = (seller.id, seller.user_id, product.slug)
    db.session.commit()
    # Each call's terms are read back after its commit, where the other may have won: the
    # database row and the audit trail say what happened.
    _results, errors = run_together(app, 2, lambda i: affiliates.set_commission(*ids, (500, 700)[i], True))
    assert errors == []
    terms = db.session.execute(select(AffiliateTerms)).scalar_one()
    assert terms.commission_bp in (500, 700) and count(AuditEvent, AuditEvent.action == "affiliate.terms") == 2


@pytest.mark.parametrize(
    "rate, message",
    [
        ("0", "from 0.01 % to 50 %"),
        ("50.01", "from 0.01 % to 50 %"),
        ("7.125", "at most two decimals"),
        ("abc", "Enter a number"),
        ("", "Enter the commission"),
    ],
)
def test_a_bad_commission_is_refused_and_changes_nothing(app, client, rate, message):
    seller = new_merchant()
    product = new_product(seller)
    login(client, seller.user)
    page = client.get("/merchant/affiliate?lang=en")
    response = client.post(
        f"/merchant/affiliate/{product.slug}?lang=en",
        data={"csrf_token": csrf_from(page.text), "rate": rate, "active": "y"},
    )
    assert response.status_code == 400 and message in response.text
    assert count(AffiliateTerms) == 0 and count(AuditEvent, AuditEvent.action == "affiliate.terms") == 0


def test_a_merchant_cannot_opt_in_another_merchants_product(app, client):
    seller, other = new_merchant(), new_merchant()
    theirs = new_product(other)
    login(client, seller.user)
    page = client.get("/merchant/affiliate?lang=en")
    assert theirs.title not in page.text or theirs.slug not in page.text
    response = client.post(
        f"/merchant/affiliate/{theirs.slug}", data={"csrf_token": csrf_from(page.text), "rate": "10", "active": "y"}
    )
    assert response.status_code == 404 and count(AffiliateTerms) == 0


# -- access and the privacy policy ------------------------------------------------------


@pytest.mark.parametrize("path", ["/merchant/promoter", "/merchant/promoter/link?url=/", "/merchant/affiliate"])
def test_the_pages_need_a_login(app, client, path):
    response = client.get(path)
    assert response.status_code == 303 and "/login" in response.headers["Location"]


@pytest.mark.parametrize("path, data", [("/merchant/promoter", {}), ("/merchant/affiliate/x", {"rate": "5"})])
def test_posts_without_the_csrf_token_are_refused(app, client, path, data):
    open_affiliates()
    seller = new_merchant()
    if path.endswith("/x"):
        path = f"/merchant/affiliate/{new_product(seller).slug}"
    login(client, seller.user)
    assert client.post(path, data=data).status_code == 400
    assert count(Promoter) == 0 and count(AffiliateTerms) == 0


def test_each_promoter_sees_only_its_own_orders(app, client, shop):
    _seller, product, promoter = shop
    other = make_promoter()
    buyer = visitor(app)
    buyer.get(f"/?ref={promoter.code}")
    order = buy_through(buyer, product)
    login(client, db.session.get(Merchant, other.merchant_id).user)
    page = client.get("/merchant/promoter?lang=en").text
    assert order.number[:4] + "…" not in page and "No referred orders yet." in page


def test_the_privacy_policy_explains_the_referral_cookie_only_while_the_programme_is_open(app, client):
    open_affiliates(on=False)
    assert "faka_ref" not in client.get("/privacy?lang=en").text
    open_affiliates()
    page = client.get("/privacy?lang=en").text
    assert "faka_ref" in page and "30 days" in page and "last link" in page
    assert "faka_ref" not in client.get("/terms?lang=en").text
