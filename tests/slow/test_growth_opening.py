"""Growth from an empty install: sub-stores (分站) and affiliate links (推广) opened and used
through the pages, in phones' Chromium (360 px, Chinese), the way people would.

`flask init-db` and `flask create-operator` (a platform, no shop of its own, no demo data)
run as commands on a new instance folder (and, in the PostgreSQL suite, a new database);
the platform is served on a port of its own behind one (pretend) reverse proxy, so each
person's browser comes from an address of its own (X-Forwarded-For), as on a real site: a
buyer at the promoter's address would be a self-referral and earn nothing.

The operator signs in with two-factor authentication, opens both programmes with fees of
its choice, points 易支付 at a fake provider on another port and creates a category. A
merchant signs up, submits its qualification and is approved; lists a product with keys,
lets sub-stores resell it at a floor price and opts it into the affiliate programme. A
second approved merchant applies for a sub-store, the operator approves it from the review
queue, and the reseller adds the product above the floor. A third account, just signed up,
becomes a promoter and copies its link to the store's product page. A buyer follows that
link (JavaScript on) and another opens the store (JavaScript off); both pay on the
provider's page and get a key in the store's name. The ledger then holds each party's share
to the fen (docs/growth.md), the reconciliation page says the books balance and the
dashboard shows the programmes' figures.

FAKA_SHOTS=<folder> keeps a full-page screenshot of each growth page.
"""

import os
import threading
import time
from contextlib import nullcontext

import pytest
from playwright.sync_api import expect
from sqlalchemy import func, select
from test_backup import flask, opened, scratch_database
from test_e2e import png_file
from test_opening_day import OPERATOR_EMAIL, OPERATOR_PASSWORD, WAIT_MS, Phone, operator_opens_the_shop
from werkzeug.serving import make_server

from conftest import TEST_DATABASE, key_texts
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.core.money import format_money
from faka.extensions import db
from faka.growth.models import Promoter, SubStore
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order

PRODUCT = "Steam 钱包充值卡 ¥10"
KEYS = ["STEAM-10-0001", "STEAM-10-0002", "STEAM-10-0003"]
STORE, STORE_CODE = "月光小铺", "moonlight"
# The prices and rates the people below type in, in fen and basis points.
PRICE, FLOOR, STORE_PRICE = 1000, 800, 1250
COMMISSION_BP = 750  # 7.5 % of what the merchant asked
RESALE_FEE_BP, AFFILIATE_FEE_BP = 250, 400  # the operator's programme defaults
MERCHANT_FEE_BP = 300  # an approved merchant's default rate


@pytest.fixture
def platform(tmp_path, base_config, monkeypatch):
    """`init-db` and `create-operator` (no shop) in new processes on an empty instance folder
    and database, served on 127.0.0.1 as if behind one reverse proxy. Yields the base URL."""
    instance = tmp_path / "instance"
    with scratch_database("growth") if TEST_DATABASE != "sqlite" else nullcontext() as url:
        env = {"FAKA_INSTANCE_PATH": str(instance), **({"DATABASE_URL": url} if url else {})}
        for command in (
            ("init-db",),
            ("create-operator", "--email", OPERATOR_EMAIL, "--password", OPERATOR_PASSWORD),
        ):
            done = flask(env, *command)
            assert done.returncode == 0, done.stderr
        monkeypatch.setenv("FAKA_PROXY_COUNT", "1")
        with opened(base_config, monkeypatch, instance, url, JOBS_MODE="thread") as app:
            server = make_server("127.0.0.1", 0, app, threaded=True)
            app.config["BASE_URL"] = f"http://127.0.0.1:{server.server_port}"
            threading.Thread(target=server.serve_forever, name="growth-opening", daemon=True).start()
            try:
                yield app.config["BASE_URL"]
            finally:
                app.extensions["faka_jobs"].wait_idle()
                server.shutdown()
                server.server_close()


def person(chromium, base: str, address: str, javascript: bool = True) -> Phone:
    """A phone of its own, reaching the platform from `address` (through the proxy)."""
    phone = Phone(chromium, base, javascript)
    phone.context.set_extra_http_headers({"X-Forwarded-For": address})
    return phone


def shot(phone: Phone, name: str) -> None:
    folder = os.environ.get("FAKA_SHOTS")
    if folder:
        os.makedirs(folder, exist_ok=True)
        phone.page.screenshot(path=f"{folder}/{name}.png", full_page=True)


def console_link(operator: Phone, group: str, href: str) -> None:
    """A link of the console's navigation, in its folded group."""
    page = operator.page
    operator.open("/operator/")
    page.locator("nav.console-nav summary", has_text=group).tap()
    page.locator(f"nav.console-nav a[href='{href}']").tap()
    page.wait_for_url(f"**{href}")
    operator.check()


def tap_to_load(phone: Phone, target) -> None:
    """Tap a submit button or link and wait for the page it loads (a 303 back to an
    #anchor of the same page is a navigation too)."""
    with phone.page.expect_navigation():
        target.tap()
    phone.check()


def operator_opens_the_programmes(operator: Phone) -> None:
    page = operator.page
    console_link(operator, "增长", "/operator/growth/settings")
    expect(page.locator("h1")).to_have_text("分站与推广")
    page.locator("input[name=resale_enabled]").check()
    page.fill("#resale_fee", "2.5")
    page.locator("input[name=affiliate_enabled]").check()
    page.fill("#affiliate_fee", "4")
    shot(operator, "operator-growth-settings")
    operator.submit("form[action='/operator/growth/settings']", "**/operator/growth/settings?saved=1")
    expect(page.locator("input[name=resale_enabled]")).to_be_checked()
    expect(page.locator("#affiliate_fee")).to_have_value("4")


def signs_up(phone: Phone, email: str, shop_name: str) -> None:
    """The sign-up form, then a sign-in (the address is confirmed later, by email)."""
    page = phone.page
    phone.open("/signup")
    page.fill("#email", email)
    page.fill("#password", "a-good-password-1")
    page.fill("#shop_name", shop_name)
    phone.submit("main form:has(#shop_name)", "**/signup/sent")
    phone.open("/login")
    page.fill("#email", email)
    page.fill("#password", "a-good-password-1")
    phone.submit("main form:has(#password)", "**/merchant/")


def submits_qualification(phone: Phone, legal_name: str) -> None:
    page = phone.page
    phone.open("/merchant/qualification")
    page.fill("#legal_name", legal_name)
    page.locator('input[name="entity_type"][value="individual"]').check()
    page.fill("#id_number", "110101199003074518")
    page.fill("#contact", "QQ 10001")
    page.set_input_files("#licence_image", [png_file("licence.png", (240, 240, 230))])
    phone.submit("main form:has(#legal_name)", "**/merchant/")


def operator_approves_merchant(operator: Phone, shop_name: str) -> None:
    page = operator.page
    console_link(operator, "风控", "/operator/merchants")
    page.get_by_role("link", name=shop_name).first.tap()
    page.wait_for_url("**/operator/merchants/*")
    operator.submit("form[action$='/approve']")
    expect(page.locator("h1 .badge")).to_have_text("已批准")


def merchant_lists_and_offers(merchant: Phone) -> str:
    """The product with keys, resold from the floor price and opted into the affiliate
    programme. Returns its slug."""
    page = merchant.page
    merchant.open("/merchant/products/new")
    page.fill("#title", PRODUCT)
    page.select_option("#category_id", label="游戏充值")
    page.fill("#price", format_money(PRICE).lstrip("¥"))
    page.fill("#description_md", "官方充值卡，自动发货。")
    merchant.submit("form:has(#title)", "**/merchant/products/*/keys")
    slug = page.url.rsplit("/", 2)[-2]
    page.fill("#keys", "\n".join(KEYS))
    merchant.submit("form:has(#keys)")
    expect(page.locator("section.report")).to_be_visible()

    # Resale (分销): the one variant may be resold from ¥8.00.
    page.locator("nav.backoffice-nav a", has_text="分销").first.tap()
    page.wait_for_url("**/merchant/resale")
    merchant.check()
    terms = page.locator("li.category-item", has_text=PRODUCT)
    terms.locator("input[name=active]").check()
    terms.locator("input[name=floor]").fill("8.00")
    tap_to_load(merchant, terms.locator("button[type=submit]"))
    expect(terms.locator(".badge")).to_have_text("分销中，拿货价 ¥8.00")
    shot(merchant, "merchant-resale")

    # The affiliate programme: promoters earn 7.5 %.
    page.locator("nav.backoffice-nav a[href='/merchant/affiliate']").tap()
    page.wait_for_url("**/merchant/affiliate")
    merchant.check()
    row = page.locator(f"tr#p-{slug}")
    row.locator(f"#rate-{slug}").fill("7.5")
    expect(row.locator(f"#active-{slug}")).to_be_checked()
    tap_to_load(merchant, row.locator("button[type=submit]"))
    expect(row.locator("td").nth(1)).to_contain_text("7.5")
    shot(merchant, "merchant-affiliate")
    return slug


def reseller_applies(reseller: Phone) -> None:
    page = reseller.page
    page.locator("nav.backoffice-nav a[href='/merchant/substore']").tap()
    page.wait_for_url("**/merchant/substore")
    reseller.check()
    page.fill("#code", STORE_CODE)
    page.fill("#name", STORE)
    page.fill("#announcement", "欢迎光临，自动发货。")
    page.fill("#contact", "QQ 5551234")
    shot(reseller, "reseller-apply")
    reseller.submit("main form[enctype]", "**/merchant/substore?saved=1")
    expect(page.locator("main p.notice.neutral").first).to_contain_text("审核")


def operator_approves_substore(operator: Phone) -> None:
    page = operator.page
    console_link(operator, "增长", "/operator/growth/substores")
    queue = page.locator("#substore-queue")
    shot(operator, "operator-substore-queue")
    queue.get_by_role("link", name=STORE).tap()
    page.wait_for_url(f"**/operator/growth/substores/{STORE_CODE}")
    operator.check()
    operator.submit(f"form[action='/operator/growth/substores/{STORE_CODE}/approve']")
    expect(page.locator("h1 .badge")).to_have_text("已批准")


def reseller_adds_the_item(reseller: Phone) -> None:
    page = reseller.page
    reseller.open("/merchant/substore")
    expect(page.locator("main p.notice a")).to_have_attribute("href", f"/s/{STORE_CODE}")
    page.locator("nav.tabs a[href='/merchant/substore/catalogue']").tap()
    page.wait_for_url("**/merchant/substore/catalogue")
    reseller.check()
    offer = page.locator("li.category-item", has_text=PRODUCT)
    expect(offer).to_contain_text("¥8.00")
    offer.locator("input[name=price]").fill("7.99")  # below the floor: refused, nothing added
    with page.expect_navigation():
        offer.locator("button[type=submit]").tap()
    assert [e for e in reseller.errors if "400" not in e] == []  # Chromium logs the refusal's status
    reseller.errors.clear()
    reseller.check()
    expect(page.locator("li.category-item", has_text=PRODUCT).locator(".alert")).to_be_visible()
    offer = page.locator("li.category-item", has_text=PRODUCT)
    offer.locator("input[name=price]").fill(format_money(STORE_PRICE).lstrip("¥"))
    tap_to_load(reseller, offer.locator("button[type=submit]"))
    assert "/merchant/substore/items" in page.url
    expect(page.locator("main")).to_contain_text(PRODUCT)
    shot(reseller, "reseller-items")


def promoter_copies_a_link(promoter: Phone, path: str) -> str:
    page = promoter.page
    page.locator("nav.backoffice-nav a[href='/merchant/promoter']").tap()
    page.wait_for_url("**/merchant/promoter")
    promoter.check()
    promoter.submit("form[action='/merchant/promoter']", "**/merchant/promoter")
    expect(page.locator("#home-link")).to_contain_text("?ref=")
    page.fill("#url", promoter.base + path)
    page.locator("form.promoter-link button[type=submit]").tap()
    made = page.locator("#made-link")
    expect(made).to_contain_text(path + "?ref=")
    page.locator("button.copy[data-copy=made-link]").tap()
    expect(page.locator("button.copy[data-copy=made-link]")).to_have_text("已复制")
    promoter.check()
    shot(promoter, "promoter")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == made.inner_text().strip()
    return copied


def buyer_buys_in_the_store(buyer: Phone, providers, url: str, javascript: bool) -> None:
    page = buyer.page
    page.goto(url)
    buyer.check()
    if "/p/" not in url:
        expect(page.locator("header .brand")).to_have_text(STORE)
        page.locator(".product-card", has_text=PRODUCT).tap()
        page.wait_for_url("**/s/*/p/*")
        buyer.check()
    expect(page.locator("h1")).to_have_text(PRODUCT)
    expect(page.locator("header .brand")).to_have_text(STORE)
    expect(page.locator("#bar-total")).to_have_text(format_money(STORE_PRICE))
    shot(buyer, f"buyer-product-js-{'on' if javascript else 'off'}")
    expect(page.locator("input[type=hidden][name=gateway]")).to_have_value("epay")
    page.locator("form.buy button[type=submit]").tap()
    if not javascript:
        page.wait_for_url("**/pay/*")  # faka's own pay page, then a plain link to the provider
        page.locator("article.pay a.button.primary").tap()
    page.wait_for_url(providers.base_url + "/**")
    page.locator("button.pay").tap()
    page.wait_for_url(f"{buyer.base}/order/*")
    buyer.check()
    expect(page.locator(".card-key")).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator(".order-store")).to_have_text(STORE)
    buyer.check()
    shot(buyer, f"buyer-order-js-{'on' if javascript else 'off'}")


def ledger(account_id: int) -> dict[str, int]:
    rows = db.session.execute(
        select(LedgerEntry.kind, func.sum(LedgerEntry.amount))
        .where(LedgerEntry.merchant_id == account_id)
        .group_by(LedgerEntry.kind)
    )
    return {kind: int(total) for kind, total in rows}


def test_growth_from_an_empty_install_sub_store_and_promoter_links(chromium, platform, providers):
    base = platform
    operator = person(chromium, base, "198.51.100.1")
    merchant = person(chromium, base, "198.51.100.2")
    reseller = person(chromium, base, "198.51.100.3")
    promoter = person(chromium, base, "198.51.100.4")
    promoter.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base)
    phones = [operator, merchant, reseller, promoter]
    try:
        operator_opens_the_shop(operator, providers)  # 2FA, a category, the policies, 易支付
        operator_opens_the_programmes(operator)

        signs_up(merchant, "seller@growth.example", "星光数码")
        submits_qualification(merchant, "张三")
        operator_approves_merchant(operator, "星光数码")
        slug = merchant_lists_and_offers(merchant)

        signs_up(reseller, "reseller@growth.example", "月光分销")
        submits_qualification(reseller, "李四")
        operator_approves_merchant(operator, "月光分销")
        reseller_applies(reseller)
        operator_approves_substore(operator)
        reseller_adds_the_item(reseller)

        signs_up(promoter, "promoter@growth.example", "推广达人")  # pending: no qualification
        link = promoter_copies_a_link(promoter, f"/s/{STORE_CODE}/p/{slug}")

        for javascript, address, url in (
            (True, "203.0.113.7", link),
            (False, "203.0.113.8", f"{base}/s/{STORE_CODE}"),
        ):
            buyer = person(chromium, base, address, javascript)
            try:
                buyer_buys_in_the_store(buyer, providers, url, javascript)
            finally:
                buyer.context.close()

        db.session.commit()  # see what the platform committed
        product = db.session.scalar(select(Product).where(Product.slug == slug))
        store = db.session.scalar(select(SubStore).where(SubStore.code == STORE_CODE))
        referrer = db.session.scalar(select(Promoter))
        accounts = {m.name: m for m in db.session.scalars(select(Merchant))}
        assert (accounts["推广达人"].status, referrer.merchant_id) == (Merchant.PENDING, accounts["推广达人"].id)
        orders = list(db.session.scalars(select(Order).where(Order.product_id == product.id).order_by(Order.id)))
        assert [(o.status, o.total, o.substore_id, o.resale_base) for o in orders] == [
            (Order.DELIVERED, STORE_PRICE, store.id, FLOOR)
        ] * 2
        assert [o.promoter_id for o in orders] == [referrer.id, None]
        assert sorted(k for o in orders for k in key_texts(o)) == KEYS[:2]

        # Each share to the fen, by the rules of docs/growth.md: the commission is a share
        # of what the merchant asked (the floor in a sub-store), fees round down.
        commission = FLOOR * COMMISSION_BP // 10000  # 60
        margin = STORE_PRICE - FLOOR  # 450
        merchant_shares = [FLOOR - commission, FLOOR]  # 740, 800
        expected_merchant = {
            LedgerEntry.SALE: sum(merchant_shares),
            LedgerEntry.FEE: -sum(s * MERCHANT_FEE_BP // 10000 for s in merchant_shares),  # 22 + 24
        }
        expected_reseller = {
            LedgerEntry.RESALE: 2 * margin,
            LedgerEntry.RESALE_FEE: -2 * (margin * RESALE_FEE_BP // 10000),  # 2 × 11
        }
        expected_promoter = {
            LedgerEntry.COMMISSION: commission,
            LedgerEntry.COMMISSION_FEE: -(commission * AFFILIATE_FEE_BP // 10000),  # 2
        }
        assert orders[0].commission == commission
        assert ledger(accounts["星光数码"].id) == expected_merchant
        assert ledger(accounts["月光分销"].id) == expected_reseller
        assert ledger(accounts["推广达人"].id) == expected_promoter
        fees = -(
            expected_merchant[LedgerEntry.FEE]
            + expected_reseller[LedgerEntry.RESALE_FEE]
            + expected_promoter[LedgerEntry.COMMISSION_FEE]
        )
        credited = sum(v for books in (expected_merchant, expected_reseller, expected_promoter) for v in books.values())
        assert credited + fees == 2 * STORE_PRICE  # every fen the buyers paid, in one place

        # The promoter sees the commission on its page; the operator's books balance.
        promoter.open("/merchant/promoter")
        expect(promoter.page.locator("table.promoter-orders tbody tr")).to_have_count(1)
        expect(promoter.page.locator("table.promoter-orders .price")).to_have_text(format_money(commission))
        console_link(operator, "资金", "/operator/reconciliation")
        # The page shows the kept result; its first check runs as a job, which the page
        # says, and a reload a moment later shows the books.
        deadline = time.monotonic() + 60
        while operator.page.locator("#books-unchecked").count() and time.monotonic() < deadline:
            time.sleep(0.5)
            operator.page.reload()
        expect(operator.page.locator("#books-balance")).to_be_visible()
        shot(operator, "operator-reconciliation")

        operator.open("/operator/")
        figures = operator.page.locator("#growth-table")
        expected_figures = {
            "resale-orders": "2",
            "resale-total": format_money(2 * STORE_PRICE),
            "resale-margins": format_money(2 * margin),
            "resale-floors": format_money(2 * FLOOR),
            "resale-fees": format_money(-expected_reseller[LedgerEntry.RESALE_FEE]),
            "affiliate-orders": "1",
            "affiliate-total": format_money(STORE_PRICE),
            "affiliate-commissions": format_money(commission),
            "affiliate-fees": format_money(-expected_promoter[LedgerEntry.COMMISSION_FEE]),
        }
        for name, value in expected_figures.items():
            expect(figures.locator(f"tr[data-figure={name}] td").nth(2)).to_have_text(value)  # all time
        shot(operator, "operator-dashboard")
    finally:
        for phone in phones:
            phone.context.close()
