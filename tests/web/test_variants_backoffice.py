"""Variants (规格) in the merchant's back office, from an empty install: the product's
variants editor, keys imported, voided and exported per variant, the stock table, the order
list, CSV and webhooks naming the variant, low-stock alerts per variant, and another
merchant kept out. Every form is posted with its CSRF token; bad input says why and
changes nothing."""

import csv
import io
import re
import secrets
from html import unescape

import pytest
from flask import current_app
from sqlalchemy import func, select
from test_webhooks import receiver  # noqa: F401  (the fixture: a real HTTP server)

from conftest import count, csrf_from, login, reload, statements, with_totp
from faka.accounts import users
from faka.accounts.models import User
from faka.catalog import variants
from faka.catalog.models import Category, Product, ProductVariant
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey, KeyImport
from faka.messaging import webhooks
from faka.messaging.models import OutboxEmail
from faka.orders import checkout
from faka.platform.analytics import dashboard
from faka.platform.models import AuditEvent
from faka.platform.settings import set_setting


@pytest.fixture
def app(make_app):
    """Webhooks go to the test's receiver on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def post(client, url, data=None, page=None):
    """Post a form as its page does: with the page's CSRF token."""
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


def reauth(client, password="merchant-pass-1"):
    """Confirm the password again, as an export of keys asks first."""
    assert post(client, "/reauth?next=/merchant/", {"password": password, "code": ""}).status_code == 303


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def figures(product: Product) -> list[tuple]:
    """The product's variants on offer as the database holds them now."""
    product = reload(product)
    return [
        (v.name, v.name_en, v.price, v.min_per_order, v.max_per_order, v.low_stock_threshold)
        for v in product.live_variants
    ]


def variant_named(product: Product, name: str) -> ProductVariant:
    return next(v for v in reload(product).live_variants if v.name == name)


def stock(variant: ProductVariant, status: str = CardKey.AVAILABLE) -> int:
    return count(CardKey, CardKey.variant_id == variant.id, CardKey.status == status)


PRODUCT_FORM = {
    "title": "Google Play 礼品卡",
    "price": "50.00",
    "delivery_type": "auto",
    "manual_promise_hours": 24,
    "min_per_order": 1,
    "max_per_order": 5,
    "low_stock_threshold": 0,
    "visible": "y",
}


def variant_form(**fields) -> dict:
    """The edit page's form: its inputs are unprefixed."""
    return {"min_per_order": 1, "max_per_order": 5, "low_stock_threshold": 0, **fields}


def new_variant(**fields) -> dict:
    """The add form on the product's page: its inputs carry the prefix `variant-`."""
    return {f"variant-{name}": value for name, value in variant_form(**fields).items()}


@pytest.fixture
def install(app, runner):
    """An empty install as docs tell a new operator: the operator from the command line
    (with two-factor authentication), a category from the console's page, and a merchant."""
    result = runner.invoke(args=["create-operator", "--email", "boss@example.com", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    boss = db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one()
    with_totp(boss)
    desk = english(app.test_client())
    login(desk, boss)
    response = post(desk, "/operator/categories", {"name": "游戏点卡", "name_en": "Game cards"})
    assert response.status_code == 303
    category = db.session.execute(select(Category)).scalar_one()
    seller = users.create_merchant("seller@shop.test", "merchant-pass-1", "Star Shop", approved=True)
    shop = english(app.test_client())
    login(shop, seller.user)
    return shop, seller, category


@pytest.fixture
def gift(install):
    """The merchant's product with three variants, ¥50 / ¥100 / ¥200, made through the pages."""
    shop, seller, category = install
    response = post(shop, "/merchant/products/new", {**PRODUCT_FORM, "category_id": category.id})
    assert response.status_code == 303
    product = db.session.execute(select(Product)).scalar_one()
    edit = f"/merchant/products/{product.slug}/edit"
    added = post(
        shop,
        f"/merchant/products/{product.slug}/variants",
        new_variant(first_name="¥50", name="¥100", price="98.00"),
        page=edit,
    )
    assert added.status_code == 303
    added = post(
        shop, f"/merchant/products/{product.slug}/variants", new_variant(name="¥200", price="195.00"), page=edit
    )
    assert added.status_code == 303
    return shop, seller, reload(product)


# -- the variants editor ----------------------------------------------------------------------


def test_a_product_gets_variants_through_its_edit_page(install):
    shop, seller, category = install
    created = post(shop, "/merchant/products/new", {**PRODUCT_FORM, "category_id": category.id, "tiers": "3=48.00"})
    assert created.status_code == 303
    product = db.session.execute(select(Product)).scalar_one()
    edit = f"/merchant/products/{product.slug}/edit"

    # One variant: today's form, with its price, and an offer to add a variant that asks for both names.
    page = shop.get(edit).text
    assert 'name="price"' in page and 'value="50.00"' in page and 'name="tiers"' in page
    assert "Add a variant" in page and 'name="variant-first_name"' in page
    assert figures(product) == [("", None, 5000, 1, 5, 0)]

    # The current variant must be named too: refused, and nothing changed.
    refused = post(shop, f"/merchant/products/{product.slug}/variants", new_variant(name="¥100", price="98"), page=edit)
    assert refused.status_code == 400
    assert "Name each variant in 1 to 40 characters" in text_of(refused.text)
    assert figures(product) == [("", None, 5000, 1, 5, 0)]

    added = post(
        shop,
        f"/merchant/products/{product.slug}/variants",
        new_variant(first_name="¥50", first_name_en="CNY 50", name="¥100", name_en="CNY 100", price="98.00"),
        page=edit,
    )
    assert added.status_code == 303 and "#variant-" in added.headers["Location"]
    assert figures(product) == [("¥50", "CNY 50", 5000, 1, 5, 0), ("¥100", "CNY 100", 9800, 1, 5, 0)]
    assert (reload(product).price, reload(product).price_max) == (5000, 9800)

    # Several variants: the product form has no price inputs any more; each variant has its own.
    page = shop.get(edit).text
    assert 'name="price"' not in page and 'name="tiers"' not in page and 'name="min_per_order"' not in page
    assert "each has its own price" in text_of(page) and "variant-first_name" not in page
    assert "¥50" in page and "¥98.00" in page and "from 3: ¥48.00 each" in text_of(page)
    # Saving the product form keeps the variants' figures.
    saved = post(shop, edit, {**PRODUCT_FORM, "title": "Google Play card", "category_id": category.id})
    assert saved.status_code == 303
    assert reload(product).title == "Google Play card"
    assert figures(product) == [("¥50", "CNY 50", 5000, 1, 5, 0), ("¥100", "CNY 100", 9800, 1, 5, 0)]


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "", "price": "10.00"}, "Name each variant in 1 to 40 characters"),
        ({"name": "x" * 41, "price": "10.00"}, "Name each variant in 1 to 40 characters"),
        ({"name": "¥100", "price": "10.00"}, "Another variant of this product is already called “¥100”."),
        ({"name": "¥500", "price": "0"}, "The price must be between 0.01 and 1,000,000."),
        ({"name": "¥500", "price": "abc"}, "Enter a number"),
        ({"name": "¥500", "price": "10.001"}, "Use at most two decimals."),
        ({"name": "¥500", "price": "10", "min_per_order": 6, "max_per_order": 5}, "1 ≤ minimum ≤ maximum ≤ 100"),
        ({"name": "¥500", "price": "10", "tiers": "1=5.00"}, "Each tier needs a different quantity of at least 2"),
        ({"name": "¥500", "price": "10", "tiers": "three"}, "Write tier prices as quantity=price"),
        ({"name": "¥500", "price": "10", "low_stock_threshold": 100001}, "between 0 and 100000"),
    ],
)
def test_a_bad_variant_says_why_and_changes_nothing(gift, fields, message):
    shop, _seller, product = gift
    before = figures(product)
    refused = post(
        shop,
        f"/merchant/products/{product.slug}/variants",
        new_variant(**fields),
        page=f"/merchant/products/{product.slug}/edit",
    )
    assert refused.status_code == 400
    assert message in text_of(refused.text)
    assert figures(product) == before
    # The same on a variant's own page.
    key = variant_named(product, "¥200").key
    page = f"/merchant/products/{product.slug}/variants/{key}"
    refused = post(shop, page, variant_form(**{**fields, "name": fields["name"] or ""}))
    assert refused.status_code == 400 and message in text_of(refused.text)
    assert figures(product) == before


def test_edit_move_and_delete_a_variant(gift):
    shop, _seller, product = gift
    edit = f"/merchant/products/{product.slug}/edit"
    big = variant_named(product, "¥200")

    page = shop.get(f"/merchant/products/{product.slug}/variants/{big.key}").text
    assert 'value="195.00"' in page and 'value="¥200"' in page
    saved = post(
        shop,
        f"/merchant/products/{product.slug}/variants/{big.key}",
        variant_form(name="¥200", name_en="CNY 200", price="190.00", tiers="2=185.00", low_stock_threshold=3),
    )
    assert saved.status_code == 303
    assert figures(product)[-1] == ("¥200", "CNY 200", 19000, 1, 5, 3)
    assert [(t.min_quantity, t.unit_price) for t in reload(big).tiers] == [(2, 18500)]
    assert (reload(product).price, reload(product).price_max) == (5000, 19000)

    moved = post(shop, f"/merchant/products/{product.slug}/variants/{big.key}/move", {"direction": "up"}, page=edit)
    assert moved.status_code == 303
    assert [name for name, *_rest in figures(product)] == ["¥50", "¥200", "¥100"]
    assert (
        post(
            shop, f"/merchant/products/{product.slug}/variants/{big.key}/move", {"direction": "sideways"}, page=edit
        ).status_code
        == 400
    )

    # Deleting one: asked first, its unsold keys voided, gone from the price range; its keys stay.
    import_keys(big, "BIG-1\nBIG-2")
    page = shop.get(edit).text
    assert "Delete the variant “¥200”? Its unsold keys are voided" in unescape(page)
    deleted = post(shop, f"/merchant/products/{product.slug}/variants/{big.key}/delete", page=edit)
    assert deleted.status_code == 303
    assert [name for name, *_rest in figures(product)] == ["¥50", "¥100"]
    assert reload(big).deleted_at is not None and stock(big, CardKey.VOID) == 2 and stock(big) == 0
    assert (reload(product).price, reload(product).price_max) == (5000, 9800)
    assert shop.get(f"/merchant/products/{product.slug}/variants/{big.key}").status_code == 404

    # Down to one: the product form edits it again; the last one cannot go.
    small = variant_named(product, "¥100")
    assert post(shop, f"/merchant/products/{product.slug}/variants/{small.key}/delete", page=edit).status_code == 303
    page = shop.get(edit).text
    assert 'name="price"' in page and 'value="50.00"' in page
    last = variant_named(product, "¥50")
    with pytest.raises(variants.LastVariant):
        variants.delete_variant(product.merchant_id, product.slug, last.key)
    assert reload(last).deleted_at is None


def test_a_variant_name_with_a_prohibited_word_sends_the_product_to_moderation(gift):
    shop, _seller, product = gift
    set_setting("prohibited_words", "外挂")
    added = post(
        shop,
        f"/merchant/products/{product.slug}/variants",
        new_variant(name="外挂 一个月", price="30.00"),
        page=f"/merchant/products/{product.slug}/edit",
    )
    assert added.status_code == 303
    assert (reload(product).moderation, reload(product).moderation_reason) == ("pending", "外挂")
    # Saving the product form does not approve it while a variant's name holds the word.
    category_id = reload(product).category_id
    post(shop, f"/merchant/products/{product.slug}/edit", {**PRODUCT_FORM, "category_id": category_id})
    assert reload(product).moderation == "pending"


# -- keys per variant ---------------------------------------------------------------------------


def test_keys_are_imported_voided_and_exported_per_variant(gift):
    shop, seller, product = gift
    keys_page = f"/merchant/products/{product.slug}/keys"
    small, middle, big = (variant_named(product, name) for name in ("¥50", "¥100", "¥200"))

    page = shop.get(keys_page).text
    assert 'name="variant"' in page and "Choose a variant" in page
    refused = post(shop, keys_page, {"keys": "A-1\nA-2", "separator": "newline"})
    assert refused.status_code == 400 and "Choose the variant these keys are for." in text_of(refused.text)
    refused = post(shop, keys_page, {"keys": "A-1", "separator": "newline", "variant": "not-a-variant"})
    assert refused.status_code == 400
    assert count(CardKey) == 0

    imported = post(shop, keys_page, {"keys": "A-1\nA-2\nA-3", "separator": "newline", "variant": small.key})
    assert imported.status_code == 200 and "Imported into “¥50”." in unescape(imported.text)
    assert post(shop, keys_page, {"keys": "B-1", "separator": "newline", "variant": middle.key}).status_code == 200
    # A key is unique in its product: the same key for another variant is "already in stock".
    again = post(shop, keys_page, {"keys": "A-1\nB-2", "separator": "newline", "variant": middle.key})
    assert re.search(r"Already in stock</dt><dd>1<", again.text)
    assert (stock(small), stock(middle), stock(big)) == (3, 2, 0)

    # A big import runs as a job, which keeps the variant and says it.
    lines = "\n".join(f"BIG-{i:05d}-{secrets.token_hex(3)}" for i in range(2001))
    job = post(shop, keys_page, {"keys": lines, "separator": "newline", "variant": big.key})
    assert job.status_code == 303
    assert db.session.execute(select(KeyImport.variant_id)).scalar_one() == big.id
    report = shop.get(job.headers["Location"]).text
    assert "Import keys: Google Play 礼品卡 · ¥200" in text_of(report) and "Import finished" in report
    assert stock(big) == 2001

    # The stock table: a row per variant under the product.
    listing = text_of(shop.get("/merchant/products").text)
    assert "↳ ¥50 ¥50.00 3 0 0" in listing
    assert "↳ ¥100 ¥98.00 2 0 0" in listing
    assert "↳ ¥200 ¥195.00 2001 0 0" in listing

    # Void: only the chosen variant's keys.
    refused = post(shop, f"{keys_page}/void", {"keys": "A-1"}, page=keys_page)
    assert refused.status_code == 400 and "Choose the variant these keys are for." in text_of(refused.text)
    wrong = post(shop, f"{keys_page}/void", {"keys": "A-1", "variant": middle.key}, page=keys_page)
    assert "0 keys of “¥100” withdrawn from sale." in unescape(wrong.text)
    voided = post(shop, f"{keys_page}/void", {"keys": "A-1\nA-2", "variant": small.key}, page=keys_page)
    assert "2 keys of “¥50” withdrawn from sale." in unescape(voided.text)
    assert (stock(small), stock(small, CardKey.VOID), stock(middle)) == (1, 2, 2)

    # Export: the chosen variant's unsold keys only.
    reauth(shop)
    refused = post(shop, f"{keys_page}/export", page=keys_page)
    assert refused.status_code == 400 and "Choose the variant these keys are for." in text_of(refused.text)
    export = post(shop, f"{keys_page}/export", {"variant": middle.key}, page=keys_page)
    assert export.status_code == 200 and sorted(export.text.split()) == ["B-1", "B-2"]
    assert f"keys-{product.slug}-{middle.key}.txt" in export.headers["Content-Disposition"]


def test_a_product_with_one_variant_keeps_its_key_page_as_it_was(install):
    shop, _seller, category = install
    post(shop, "/merchant/products/new", {**PRODUCT_FORM, "category_id": category.id})
    product = db.session.execute(select(Product)).scalar_one()
    keys_page = f"/merchant/products/{product.slug}/keys"
    page = shop.get(keys_page).text
    assert 'name="variant"' not in page and "Choose a variant" not in page
    assert post(shop, keys_page, {"keys": "K-1\nK-2", "separator": "newline"}).status_code == 200
    assert post(shop, f"{keys_page}/void", {"keys": "K-1"}, page=keys_page).status_code == 200
    reauth(shop)
    export = post(shop, f"{keys_page}/export", page=keys_page)
    assert export.text.split() == ["K-2"] and f'"keys-{product.slug}.txt"' in export.headers["Content-Disposition"]
    assert "↳" not in shop.get("/merchant/products").text


# -- another merchant ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "method, path",
    [
        ("get", "/merchant/products/{slug}/edit"),
        ("post", "/merchant/products/{slug}/variants"),
        ("get", "/merchant/products/{slug}/variants/{key}"),
        ("post", "/merchant/products/{slug}/variants/{key}"),
        ("post", "/merchant/products/{slug}/variants/{key}/delete"),
        ("post", "/merchant/products/{slug}/variants/{key}/move"),
        ("get", "/merchant/products/{slug}/keys?variant={key}"),
        ("post", "/merchant/products/{slug}/keys"),
        ("post", "/merchant/products/{slug}/keys/void"),
        ("post", "/merchant/products/{slug}/keys/export"),
    ],
)
def test_another_merchant_cannot_touch_the_variants(app, gift, method, path):
    _shop, _seller, product = gift
    key = variant_named(product, "¥100").key
    before = figures(product)
    other = users.create_merchant("other@shop.test", "merchant-pass-1", "Other Shop", approved=True)
    client = english(app.test_client())
    login(client, other.user)
    reauth(client)
    token = csrf_from(client.get("/merchant/products/new").text)
    url = path.format(slug=product.slug, key=key)
    data = {"csrf_token": token, "keys": "X-1", "variant": key, "direction": "up", "name": "hijacked", "price": "1"}
    data.update(new_variant(name="hijacked", price="1"))
    response = client.get(url) if method == "get" else client.post(url, data=data)
    assert response.status_code == 404
    assert figures(product) == before and count(CardKey) == 0


# -- what the orders and alerts say ---------------------------------------------------------------


def buy(product: Product, variant: ProductVariant, quantity: int = 1):
    with current_app.test_request_context():
        return checkout.place_order(product.slug, quantity, "buyer@example.com", "secret-1", variant_key=variant.key)


def test_orders_csv_and_webhooks_name_the_variant(app, gift, pay, receiver):  # noqa: F811
    shop, seller, product = gift
    middle = variant_named(product, "¥100")
    import_keys(middle, "GP-100-1\nGP-100-2")
    webhooks.create_endpoint(seller.id, receiver.url, ["order.paid", "order.delivered"])
    order = buy(product, middle)
    pay(order)
    assert reload(order).status == "delivered" and reload(order).variant_name == "¥100"

    for event_ in receiver.events():
        assert event_["data"]["variant"] == {"key": middle.key, "name": "¥100"}
        assert event_["data"]["product"]["slug"] == product.slug
    assert sorted(e["type"] for e in receiver.events()) == ["order.delivered", "order.paid"]

    listing = text_of(shop.get("/merchant/orders").text)
    assert "Google Play 礼品卡 · ¥100 × 1" in listing
    assert "Google Play 礼品卡 · ¥100 × 1" in text_of(shop.get(f"/merchant/orders/{order.number}").text)
    header, row = list(csv.reader(io.StringIO(shop.get("/merchant/orders.csv").text)))
    assert header[3:5] == ["product", "variant"] and row[3:5] == ["Google Play 礼品卡", "¥100"]

    # The operator's pages that show the order name it the same way.
    desk = english(app.test_client())
    login(desk, db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one())
    assert "Google Play 礼品卡 · ¥100 × 1" in text_of(desk.get(f"/operator/payments?order={order.number}").text)


def test_low_stock_alerts_come_per_variant(app, gift, pay, smtp, receiver):  # noqa: F811
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    shop, seller, product = gift
    small, middle, big = (variant_named(product, name) for name in ("¥50", "¥100", "¥200"))
    post(
        shop,
        f"/merchant/products/{product.slug}/variants/{small.key}",
        variant_form(name="¥50", price="50.00", low_stock_threshold=2),
    )
    import_keys(small, "S-1\nS-2\nS-3")
    import_keys(middle, "M-1\nM-2\nM-3")
    webhooks.create_endpoint(seller.id, receiver.url, ["stock.low"])

    def merchant_mail():
        return [m for m in smtp.messages if m["To"] == "seller@shop.test"]

    pay(buy(product, middle))  # ¥100 has no threshold: nothing
    assert receiver.events("stock.low") == [] and merchant_mail() == []
    pay(buy(product, small))  # ¥50: 2 left, at its threshold
    (alert,) = merchant_mail()
    assert "Google Play 礼品卡 · ¥50" in alert["Subject"]
    (low,) = receiver.events("stock.low")
    assert low["data"]["variant"] == {"key": small.key, "name": "¥50"}
    assert (low["data"]["available"], low["data"]["threshold"]) == (2, 2)
    pay(buy(product, small))  # still low, alerted within the day
    assert len(merchant_mail()) == 1 and count(OutboxEmail, OutboxEmail.kind == "merchant_low_stock") == 1

    # The stock table marks the low variant's row; the dashboard lists it and the sold-out one.
    rows = re.findall(r'<tr class="variant-row([^"]*)">(.*?)</tr>', shop.get("/merchant/products").text, re.S)
    marks = {text_of(cells).split()[1]: mark.strip() for mark, cells in rows}
    assert marks == {"¥50": "low", "¥100": "", "¥200": ""}
    alerts = dashboard(seller.id).stock_alerts
    assert [(a.title, a.available, a.variant_key) for a in alerts] == [
        ("Google Play 礼品卡 · ¥200", 0, big.key),
        ("Google Play 礼品卡 · ¥50", 1, small.key),
    ]


# -- statements per page ----------------------------------------------------------------------


def test_back_office_pages_read_the_same_statements_whatever_the_variants(gift):
    shop, seller, product = gift
    pages = ["/merchant/products", f"/merchant/products/{product.slug}/edit", f"/merchant/products/{product.slug}/keys"]
    for page in pages:
        shop.get(page)
    before = {page: statements(shop, page) for page in pages}
    for i in range(20):
        variants.add_variant(
            seller.id, product.slug, variants.VariantDraft(name=f"V{i}", price=100 + i, tiers=[(5, 90)])
        )
    for i in range(5):
        post(shop, "/merchant/products/new", {**PRODUCT_FORM, "title": f"More {i}", "category_id": product.category_id})
    assert {page: statements(shop, page) for page in pages} == before
    assert db.session.scalar(select(func.count()).select_from(ProductVariant)) == 3 + 20 + 5


def test_the_export_is_audited_with_its_variant(gift):
    shop, _seller, product = gift
    middle = variant_named(product, "¥100")
    import_keys(middle, "E-1")
    keys_page = f"/merchant/products/{product.slug}/keys"
    reauth(shop)
    assert post(shop, f"{keys_page}/export", {"variant": middle.key}, page=keys_page).text.split() == ["E-1"]
    audit = db.session.execute(select(AuditEvent).where(AuditEvent.action == "keys.exported")).scalar_one()
    assert (audit.target, audit.detail) == (f"product:{product.id}", f"count=1 variant={middle.key}")
    assert "E-1" not in audit.detail


def test_a_big_import_waiting_for_a_deleted_variant_adds_nothing(gift):
    from faka.inventory import keys

    _shop, seller, product = gift
    big = variant_named(product, "¥200")
    job = keys.start_import(seller.id, big, "\n".join(f"LATE-{i}" for i in range(10)))
    variants.delete_variant(seller.id, product.slug, big.key)
    assert keys.run_import(job.id).status == KeyImport.FAILED
    assert reload(job).error == "variant deleted" and count(CardKey) == 0
