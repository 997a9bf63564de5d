"""Resale (分销) in the back office: a merchant's terms (which variants sub-stores may
resell, at which floor), a reseller's sub-store (apply, edit, its status), the catalogue it
picks from, its items (price, hide, order, remove), its orders with its margin and the
complaints on them, which it follows but cannot answer. Every form is posted with its CSRF
token; bad input says why and changes nothing; another account's objects are a 404."""

import io
import re
import secrets
from html import unescape

import pytest
from flask import current_app
from helpers import buy, open_programmes
from PIL import Image
from sqlalchemy import func, select

from conftest import count, csrf_from, login, reload, run_together, statements
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog.models import ProductVariant
from faka.catalog.variants import product_with_one_variant
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintMessage
from faka.core.errors import DomainError
from faka.extensions import db
from faka.growth import resale
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.ledger.models import LedgerEntry
from faka.platform import settings
from faka.platform.models import AuditEvent

# -- helpers ----------------------------------------------------------------------------------


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def chinese(client):
    with client.session_transaction() as session:
        session["lang"] = "zh_CN"
    return client


def post(client, url, data=None, page=None, **kwargs):
    """Post a form as its page does: with the page's CSRF token."""
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


def new_account(name="Reseller Shop", approved=True) -> Merchant:
    return users.create_merchant(f"r{secrets.token_hex(4)}@resell.test", "reseller-pass-1", name, approved=approved)


def client_of(app, account: Merchant):
    client = app.test_client()
    login(client, account.user)
    return english(client)


def png(color=(10, 120, 200)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (48, 48), color).save(out, "PNG")
    return out.getvalue()


def terms_of(variant) -> tuple | None:
    row = db.session.execute(select(ResaleTerms).where(ResaleTerms.variant_id == variant.id)).scalar_one_or_none()
    db.session.commit()
    return None if row is None else (row.active, row.floor_price)


def allow(product, floor_price: int) -> ResaleTerms:
    variant = product.variants[0]
    terms = ResaleTerms(
        variant_id=variant.id, product_id=product.id, merchant_id=product.merchant_id, floor_price=floor_price
    )
    db.session.add(terms)
    db.session.commit()
    return terms


def approved_store(account: Merchant, code="my-store") -> SubStore:
    store = SubStore(merchant_id=account.id, code=code, name="My Store", status=SubStore.APPROVED)
    db.session.add(store)
    db.session.commit()
    return store


STORE_FORM = {"code": "cheap-keys", "name": "Cheap Keys", "announcement": "Fast delivery", "contact": "QQ 12345"}


@pytest.fixture
def programme(app):
    open_programmes()


@pytest.fixture
def seller(app, merchant):
    """The merchant's client, in English."""
    return client_of(app, merchant)


@pytest.fixture
def reseller(app, programme):
    account = new_account()
    return account, client_of(app, account)


# -- the merchant's terms ---------------------------------------------------------------------


def test_merchant_allows_a_variant_with_a_floor_and_stops_it_audited(seller, make_product):
    product = make_product(price=1000)
    variant = product.variants[0]
    page = seller.get("/merchant/resale")
    assert page.status_code == 200 and product.title in page.text and "Not resold" in text_of(page.text)
    assert "at or above" in text_of(page.text)  # the page says resellers price at or above the floor

    response = post(
        seller, f"/merchant/resale/{variant.key}", {"active": "y", "floor": "8.50"}, page="/merchant/resale"
    )
    assert response.status_code == 303
    assert terms_of(variant) == (True, 850)
    assert "Resold from ¥8.50" in text_of(seller.get("/merchant/resale").text)

    # Stopping keeps the floor; a floor above the merchant's own price is allowed.
    assert (
        post(seller, f"/merchant/resale/{variant.key}", {"floor": "8.50"}, page="/merchant/resale").status_code == 303
    )
    assert terms_of(variant) == (False, 850)
    assert (
        post(
            seller, f"/merchant/resale/{variant.key}", {"active": "y", "floor": "12"}, page="/merchant/resale"
        ).status_code
        == 303
    )
    assert terms_of(variant) == (True, 1200)
    actions = db.session.scalars(
        select(AuditEvent.after).where(AuditEvent.action == "resale.terms").order_by(AuditEvent.id)
    ).all()
    assert len(actions) == 3 and '"floor_price": 1200' in actions[-1]


@pytest.mark.parametrize("floor", ["0", "-1", "abc", "2000000", ""])
def test_a_bad_floor_is_refused_and_changes_nothing(seller, make_product, floor):
    variant = make_product().variants[0]
    response = post(seller, f"/merchant/resale/{variant.key}", {"active": "y", "floor": floor}, page="/merchant/resale")
    assert response.status_code == 400
    assert terms_of(variant) is None
    assert re.search(r"floor price|number|Enter", text_of(response.text))
    assert count(AuditEvent, AuditEvent.action == "resale.terms") == 0


def test_another_merchants_variant_is_a_404_and_nothing_changes(app, seller, category):
    other = new_account("Other Shop")
    product = product_with_one_variant(
        slug=secrets.token_hex(8), merchant_id=other.id, category_id=category.id, price=900, title="Not yours"
    )
    db.session.add(product)
    db.session.commit()
    variant = product.variants[0]
    assert "Not yours" not in seller.get("/merchant/resale").text
    for data in ({"active": "y", "floor": "5"}, {"active": "y", "floor": "bad"}):
        assert post(seller, f"/merchant/resale/{variant.key}", data, page="/merchant/resale").status_code == 404
    assert post(seller, "/merchant/resale/no-such-key", {"floor": "5"}, page="/merchant/resale").status_code == 404
    assert terms_of(variant) is None


def test_deleted_products_and_variants_are_not_listed(seller, make_product):
    from faka.core.types import utcnow

    gone = make_product(title="Deleted product")
    gone.deleted_at = utcnow()
    kept = make_product(title="Kept product")
    extra = ProductVariant(
        key=secrets.token_hex(8), product_id=kept.id, name="Old edition", price=500, deleted_at=utcnow()
    )
    db.session.add(extra)
    db.session.commit()
    page = text_of(seller.get("/merchant/resale").text)
    assert "Kept product" in page and "Deleted product" not in page and "Old edition" not in page
    assert post(seller, f"/merchant/resale/{extra.key}", {"floor": "5"}, page="/merchant/resale").status_code == 404


# -- the reseller's sub-store -----------------------------------------------------------------


def test_apply_for_a_sub_store_with_a_logo_then_wait_for_review(reseller):
    account, client = reseller
    page = client.get("/merchant/substore")
    assert page.status_code == 200 and "Open a sub-store" in page.text
    data = {**STORE_FORM, "domain": "Shop.Example.COM", "logo": (io.BytesIO(png()), "logo.png")}
    response = post(client, "/merchant/substore", data, content_type="multipart/form-data")
    assert response.status_code == 303, text_of(response.text)
    store = resale.my_substore(account.id)
    assert (store.code, store.name, store.domain, store.pending_domain, store.status) == (
        "cheap-keys",
        "Cheap Keys",
        None,  # the domain waits for the operator's approval
        "shop.example.com",
        "pending",
    )
    assert store.logo and store.logo.endswith((".jpg", ".png"))
    page = text_of(client.get("/merchant/substore").text)
    assert "waiting for the platform’s review" in page
    assert client.get(f"/merchant/substore/logo/{store.logo}").status_code == 200
    assert client.get("/merchant/substore/logo/" + "0" * 32 + ".png").status_code == 404
    # The public logo only once the store is open.
    public = f"/s/{store.code}/logo/{store.logo}"
    assert client.get(public).status_code == 404
    store.status = SubStore.APPROVED
    db.session.commit()
    assert client.get(public).status_code == 200
    assert count(AuditEvent, AuditEvent.action == "substore.applied") == 1


@pytest.mark.parametrize(
    "change, field_message",
    [
        ({"code": "ab"}, "3 to 20 characters"),
        ({"code": "Bad Code!"}, "3 to 20 characters"),
        ({"code": "-dash"}, "3 to 20 characters"),
        ({"code": "admin"}, "reserved by the platform"),
        ({"code": "API"}, "reserved by the platform"),
        ({"code": "taken-one"}, "taken by another sub-store"),
        ({"domain": "http://shop.example.com/x"}, "Enter a domain name"),
        ({"domain": "localhost"}, "Enter a domain name"),
        ({"domain": "10.0.0.1"}, "Enter a domain name"),
        ({"domain": "-bad-.example.com"}, "Enter a domain name"),
        ({"domain": "Taken.example.com"}, "already used by another sub-store"),
        ({"domain": "waiting.example.com"}, "already used by another sub-store"),  # another's request
        ({"domain": "localhost"}, "Enter a domain name"),
        ({"domain": "shop.localhost"}, "the platform’s own"),  # under FAKA_BASE_URL's host
        ({"domain": "[::1]"}, "Enter a domain name"),
        ({"name": ""}, "Give the sub-store a name"),
        ({"logo": (io.BytesIO(b"GIF89a not a picture"), "x.png")}, "PNG, JPEG or WebP"),
    ],
)
def test_bad_sub_store_details_are_refused_in_english(app, reseller, change, field_message):
    other = new_account("Someone else")
    db.session.add(SubStore(merchant_id=other.id, code="taken-one", name="Taken", domain="taken.example.com"))
    waiting = new_account("Someone waiting")
    db.session.add(SubStore(merchant_id=waiting.id, code="waits", name="Waits", pending_domain="waiting.example.com"))
    db.session.commit()
    account, client = reseller
    response = post(client, "/merchant/substore", {**STORE_FORM, **change}, content_type="multipart/form-data")
    assert response.status_code == 400
    assert field_message in text_of(response.text)
    assert resale.my_substore(account.id) is None
    assert count(AuditEvent, AuditEvent.action == "substore.applied") == 0


@pytest.mark.parametrize(
    "change, message",
    [({"code": "admin"}, "平台保留"), ({"domain": "not a domain"}, "域名")],
)
def test_bad_sub_store_details_are_refused_in_chinese(reseller, change, message):
    account, client = reseller
    chinese(client)
    response = post(client, "/merchant/substore", {**STORE_FORM, **change}, content_type="multipart/form-data")
    assert response.status_code == 400 and message in text_of(response.text)
    assert resale.my_substore(account.id) is None


def test_an_account_not_approved_cannot_apply(app, programme):
    account = new_account(approved=False)
    client = client_of(app, account)
    assert "Only an approved account" in text_of(client.get("/merchant/substore").text)
    response = post(client, "/merchant/substore", STORE_FORM, content_type="multipart/form-data")
    assert response.status_code == 400 and "Only an approved account" in text_of(response.text)
    assert count(SubStore) == 0


def test_nobody_applies_while_the_programme_is_closed(app):
    account = new_account()
    client = client_of(app, account)
    assert settings.programme_enabled("resale") is False
    response = post(client, "/merchant/substore", STORE_FORM, content_type="multipart/form-data")
    assert response.status_code == 400 and "resale programme is closed" in text_of(response.text)
    assert count(SubStore) == 0


def test_editing_keeps_the_status_but_a_new_code_sends_a_rejected_store_back_to_review(reseller):
    account, client = reseller
    store = approved_store(account, "first-code")
    assert (
        post(
            client,
            "/merchant/substore",
            {**STORE_FORM, "code": "first-code", "name": "Renamed"},
            content_type="multipart/form-data",
        ).status_code
        == 303
    )
    assert (reload(store).name, reload(store).status) == ("Renamed", "approved")

    store = reload(store)
    store.status, store.reason = SubStore.REJECTED, "The name copies a brand"
    db.session.commit()
    page = text_of(client.get("/merchant/substore").text)
    assert "rejected your sub-store: The name copies a brand" in page and "Apply again" in page
    # A new name alone keeps it rejected; "apply again" sends it for review.
    assert (
        post(
            client,
            "/merchant/substore",
            {**STORE_FORM, "code": "first-code", "name": "Own name"},
            content_type="multipart/form-data",
        ).status_code
        == 303
    )
    assert reload(store).status == "rejected"
    assert post(client, "/merchant/substore/apply-again", page="/merchant/substore").status_code == 303
    assert reload(store).status == "pending"

    store = reload(store)
    store.status = SubStore.REJECTED
    db.session.commit()
    assert (
        post(
            client, "/merchant/substore", {**STORE_FORM, "code": "second-code"}, content_type="multipart/form-data"
        ).status_code
        == 303
    )
    assert (reload(store).code, reload(store).status) == ("second-code", "pending")

    store = reload(store)
    store.status, store.reason = SubStore.FROZEN, "Fake goods"
    db.session.commit()
    page = text_of(client.get("/merchant/substore").text)
    assert "froze your sub-store: Fake goods" in page
    assert (
        post(
            client, "/merchant/substore", {**STORE_FORM, "code": "third-code"}, content_type="multipart/form-data"
        ).status_code
        == 303
    )
    assert reload(store).status == "frozen"
    assert post(client, "/merchant/substore/apply-again", page="/merchant/substore").status_code == 400


def test_an_approved_store_shows_its_link(reseller):
    account, client = reseller
    approved_store(account, "open-store")
    page = client.get("/merchant/substore").text
    assert "/s/open-store" in page and "Your sub-store is open" in text_of(page)


# -- the catalogue and the items --------------------------------------------------------------


def test_catalogue_shows_others_resellable_variants_never_own(app, reseller, make_product, merchant):
    account, client = reseller
    approved_store(account)
    allowed = make_product(title="Resellable card", keys=3)
    allow(allowed, 800)
    make_product(title="Not allowed card")
    hidden = make_product(title="Hidden card", visible=False)
    allow(hidden, 700)
    own = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=account.id,
        category_id=allowed.category_id,
        price=900,
        title="My own card",
    )
    db.session.add(own)
    db.session.commit()
    allow(own, 500)
    page = text_of(client.get("/merchant/substore/catalogue").text)
    assert "Resellable card" in page and "Floor price ¥8.00" in page and "3 in stock" in page and "Test Shop" in page
    assert "Not allowed card" not in page and "Hidden card" not in page and "My own card" not in page
    # A frozen merchant's goods leave the catalogue.
    merchant.status = Merchant.FROZEN
    db.session.commit()
    assert "Resellable card" not in text_of(client.get("/merchant/substore/catalogue").text)


def test_add_to_store_at_or_above_the_floor_only(reseller, make_product):
    account, client = reseller
    store = approved_store(account)
    product = make_product(title="Card")
    allow(product, 800)
    key = product.variants[0].key
    response = post(
        client, "/merchant/substore/items", {"variant": key, "price": "7.99"}, page="/merchant/substore/catalogue"
    )
    assert response.status_code == 400 and "at least the floor price of ¥8.00" in text_of(response.text)
    assert count(SubStoreItem) == 0
    response = post(
        client, "/merchant/substore/items", {"variant": key, "price": "9.50"}, page="/merchant/substore/catalogue"
    )
    assert response.status_code == 303
    assert resale.offer(store, product.variants[0]).price == 950
    # Twice: a clear message, still one item.
    response = post(
        client, "/merchant/substore/items", {"variant": key, "price": "9.50"}, page="/merchant/substore/catalogue"
    )
    assert response.status_code == 400 and "already in your sub-store" in text_of(response.text)
    # The price cannot go below the floor either.
    response = post(client, f"/merchant/substore/items/{key}/price", {"price": "5"}, page="/merchant/substore/items")
    assert response.status_code == 400 and "at least the floor price" in text_of(response.text)
    assert (
        post(
            client, f"/merchant/substore/items/{key}/price", {"price": "10"}, page="/merchant/substore/items"
        ).status_code
        == 303
    )
    assert [i.price for i in db.session.scalars(select(SubStoreItem))] == [1000]


def test_a_floor_or_price_of_three_decimals_is_refused_not_rounded(seller, reseller, make_product):
    variant = make_product().variants[0]
    response = post(
        seller, f"/merchant/resale/{variant.key}", {"active": "y", "floor": "8.505"}, page="/merchant/resale"
    )
    assert response.status_code == 400 and "Use at most two decimals." in text_of(response.text)
    assert terms_of(variant) is None
    account, client = reseller
    approved_store(account)
    product = make_product(title="Card")
    allow(product, 800)
    key = product.variants[0].key
    data = {"variant": key, "price": "9.505"}
    response = post(client, "/merchant/substore/items", data, page="/merchant/substore/catalogue")
    assert response.status_code == 400 and "Use at most two decimals." in text_of(response.text)
    assert count(SubStoreItem) == 0
    post(client, "/merchant/substore/items", {"variant": key, "price": "9.50"}, page="/merchant/substore/catalogue")
    response = post(
        client, f"/merchant/substore/items/{key}/price", {"price": "10.005"}, page="/merchant/substore/items"
    )
    assert response.status_code == 400 and "Use at most two decimals." in text_of(response.text)
    assert [i.price for i in db.session.scalars(select(SubStoreItem))] == [950]


def test_an_item_not_resold_cannot_be_added(reseller, make_product):
    account, client = reseller
    approved_store(account)
    product = make_product()
    response = post(
        client,
        "/merchant/substore/items",
        {"variant": product.variants[0].key, "price": "20"},
        page="/merchant/substore/catalogue",
    )
    assert response.status_code == 400 and "cannot be resold" in text_of(response.text)
    assert count(SubStoreItem) == 0


def test_hide_reorder_remove_change_what_the_store_offers(reseller, make_product):
    account, client = reseller
    store = approved_store(account)
    first, second = make_product(title="First"), make_product(title="Second")
    for p in (first, second):
        allow(p, 500)
        assert (
            post(
                client,
                "/merchant/substore/items",
                {"variant": p.variants[0].key, "price": "6"},
                page="/merchant/substore/catalogue",
            ).status_code
            == 303
        )
    k1, k2 = first.variants[0].key, second.variants[0].key

    def order():
        return [row.product.title for row in resale.my_items(account.id)]

    assert order() == ["First", "Second"]
    assert (
        post(
            client, f"/merchant/substore/items/{k2}/move", {"direction": "up"}, page="/merchant/substore/items"
        ).status_code
        == 303
    )
    assert order() == ["Second", "First"]
    assert (
        post(
            client, f"/merchant/substore/items/{k2}/move", {"direction": "sideways"}, page="/merchant/substore/items"
        ).status_code
        == 400
    )

    assert (
        post(
            client, f"/merchant/substore/items/{k1}/visibility", {"hidden": "1"}, page="/merchant/substore/items"
        ).status_code
        == 303
    )
    with pytest.raises(resale.NotResold):
        resale.offer(store, reload(first).variants[0])
    assert "Hidden" in text_of(client.get("/merchant/substore/items").text)
    assert (
        post(
            client, f"/merchant/substore/items/{k1}/visibility", {"hidden": "0"}, page="/merchant/substore/items"
        ).status_code
        == 303
    )
    assert resale.offer(store, reload(first).variants[0]).price == 600

    assert post(client, f"/merchant/substore/items/{k2}/delete", page="/merchant/substore/items").status_code == 303
    assert order() == ["First"]
    with pytest.raises(resale.NotResold):
        resale.offer(store, reload(second).variants[0])
    # Another store's item: 404 for every change, and nothing changes there.
    other = approved_store(new_account("Other Shop"), code="other-store")
    db.session.add(
        SubStoreItem(substore_id=other.id, variant_id=second.variants[0].id, product_id=second.id, price=700)
    )
    db.session.commit()
    for action, data in (
        ("visibility", {"hidden": "1"}),
        ("price", {"price": "9"}),
        ("move", {"direction": "up"}),
        ("delete", {}),
    ):
        response = post(client, f"/merchant/substore/items/{k2}/{action}", data, page="/merchant/substore/items")
        assert response.status_code == 404, action
    (kept,) = db.session.scalars(select(SubStoreItem).where(SubStoreItem.substore_id == other.id)).all()
    assert (kept.price, kept.hidden) == (700, False)
    assert order() == ["First"]


def test_a_raised_floor_marks_the_item_below_floor(app, reseller, seller, make_product):
    account, client = reseller
    store = approved_store(account)
    product = make_product(title="Card")
    allow(product, 500)
    key = product.variants[0].key
    post(client, "/merchant/substore/items", {"variant": key, "price": "6"}, page="/merchant/substore/catalogue")
    assert (
        post(seller, f"/merchant/resale/{key}", {"active": "y", "floor": "7"}, page="/merchant/resale").status_code
        == 303
    )
    page = text_of(client.get("/merchant/substore/items").text)
    assert "Below floor: not on sale until you raise the price to at least ¥7.00" in page
    with pytest.raises(resale.NotResold):
        resale.offer(store, reload(product).variants[0])
    assert (
        post(
            client, f"/merchant/substore/items/{key}/price", {"price": "7"}, page="/merchant/substore/items"
        ).status_code
        == 303
    )
    assert resale.offer(store, reload(product).variants[0]).price == 700


# -- orders and complaints ----------------------------------------------------------------------


def test_reseller_sees_its_orders_with_its_margin_and_the_merchant_sees_the_store(app, reseller, seller, make_product):
    account, client = reseller
    store = approved_store(account, "margin-store")
    product = make_product(title="Margin card", keys=5)
    allow(product, 800)
    db.session.add(
        SubStoreItem(substore_id=store.id, variant_id=product.variants[0].id, product_id=product.id, price=1000)
    )
    db.session.commit()
    order = buy(product, quantity=2, substore=store)
    assert (order.total, order.resale_base) == (2000, 1600)
    page = text_of(client.get("/merchant/substore/orders").text)
    assert order.number in page and "Margin card × 2" in page and "¥20.00" in page and "¥4.00" in page
    credited = db.session.scalar(
        select(func.sum(LedgerEntry.amount)).where(
            LedgerEntry.merchant_id == account.id, LedgerEntry.order_id == order.id
        )
    )
    assert credited == 400 - 400 * 300 // 10000 and f"¥{credited / 100:.2f}" in page
    # The merchant's order list and page name the sub-store.
    assert "Sold in sub-store My Store" in text_of(seller.get("/merchant/orders").text)
    assert "My Store" in text_of(seller.get(f"/merchant/orders/{order.number}").text)
    # Another reseller sees none of it.
    other_client = client_of(app, new_account("Other reseller"))
    assert order.number not in other_client.get("/merchant/substore/orders").text


def test_order_lists_cost_the_same_statements_for_one_order_and_for_five(app, reseller, seller, make_product):
    """The reseller's orders (each of another product) and the merchant's (each sold in
    another store) are read in a fixed number of statements, not one more a row."""
    account, client = reseller
    own = approved_store(account, "count-store")
    others = [approved_store(new_account(f"Reseller {i}"), f"count-{i}") for i in range(5)]

    def sell(store, product):
        item = SubStoreItem(substore_id=store.id, variant_id=product.variants[0].id, product_id=product.id, price=900)
        db.session.add(item)
        db.session.commit()
        buy(product, substore=store)

    products = []
    for i in range(5):
        products.append(make_product(title=f"Count card {i}", keys=3))
        allow(products[-1], 800)
    sell(own, products[0])
    sell(others[0], products[0])
    one = (statements(client, "/merchant/substore/orders"), statements(seller, "/merchant/orders"))
    for i in range(1, 5):
        sell(own, products[i])
        sell(others[i], products[i])
    five = (statements(client, "/merchant/substore/orders"), statements(seller, "/merchant/orders"))
    assert "Count card 4" in client.get("/merchant/substore/orders").text
    assert "Sold in sub-store My Store" in text_of(seller.get("/merchant/orders").text)
    assert five == one


def test_two_simultaneous_first_floors_of_one_variant_make_one_set_of_terms(app, merchant, make_product):
    variant = make_product().variants[0]
    ids = (merchant.id, merchant.user_id, variant.key)
    # (Not the returned rows' floors: read after the commit, either may show the other's.)
    _results, errors = run_together(app, 2, lambda i: resale.set_terms(*ids, True, (800, 900)[i]) and None)
    assert errors == []
    db.session.commit()  # end the test's snapshot
    (terms,) = db.session.scalars(select(ResaleTerms)).all()
    assert terms.floor_price in (800, 900) and terms.active
    # One created the terms, the other changed the floor: both audited.
    assert count(AuditEvent, AuditEvent.action == "resale.terms") == 2


def _apply(account: tuple[int, int], code: str, domain: str = ""):
    """Apply for a store as (account id, user id); the error's class name when refused."""
    try:
        resale.save_substore(*account, resale.Identity(code=code, name="Race", domain=domain))
    except DomainError as exc:
        return type(exc).__name__
    return "saved"


@pytest.mark.parametrize(
    "what, refusal",
    [("code", "CodeTaken"), ("domain", "DomainTaken"), ("account", None)],
)
def test_simultaneous_applications_are_told_which_is_taken(app, programme, what, refusal):
    """Two applications at once for one address, one domain, or by one account (a double
    click): one store each time, and the other told what is taken (the account's double
    click: its second save updates the first's store)."""
    first, second = new_account("First"), new_account("Second")
    first, second = (first.id, first.user_id), (second.id, second.user_id)
    accounts = (first, first) if what == "account" else (first, second)
    codes = ("race-one", "race-two") if what == "domain" else ("race-one", "race-one")
    codes = ("race-one", "race-one") if what == "account" else codes
    domains = ("race.example.com", "race.example.com") if what == "domain" else ("", "")
    results, errors = run_together(app, 2, lambda i: _apply(accounts[i], codes[i], domains[i]))
    assert errors == []
    if refusal is None:
        assert results == ["saved", "saved"] and count(SubStore) == 1
    else:
        assert sorted(results) == sorted(["saved", refusal]) and count(SubStore) == 1


def test_reseller_follows_a_complaint_but_not_anothers(app, reseller, make_product, merchant):
    account, client = reseller
    store = approved_store(account, "complaint-store")
    product = make_product(title="Complained card", keys=5)
    allow(product, 800)
    db.session.add(
        SubStoreItem(substore_id=store.id, variant_id=product.variants[0].id, product_id=product.id, price=1000)
    )
    db.session.commit()
    order = buy(product, substore=store)
    direct = buy(product)
    with current_app.test_request_context():
        complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "The key says already used")
        workflow.post_message(complaint.id, ComplaintMessage.MERCHANT, merchant.user_id, "Sending you a new one")
        other = workflow.open_complaint(direct.token, Complaint.OTHER, "Not in the store")
    orders_page = client.get("/merchant/substore/orders").text
    assert f"/merchant/substore/complaints/{complaint.ref}" in orders_page
    page = client.get(f"/merchant/substore/complaints/{complaint.ref}")
    assert page.status_code == 200
    text = text_of(page.text)
    assert "The key says already used" in text and "Sending you a new one" in text
    assert "message-form" not in page.text and "<textarea" not in page.text  # nothing to post with
    assert client.get(f"/merchant/substore/complaints/{complaint.ref}/thread").status_code == 200
    assert client.get(f"/merchant/substore/complaints/{other.ref}").status_code == 404
    assert client.get(f"/merchant/substore/complaints/{other.ref}/thread").status_code == 404
    # The reseller cannot answer through the merchant's complaint pages either.
    assert client.get(f"/merchant/complaints/{complaint.ref}").status_code == 404


# -- CSRF -----------------------------------------------------------------------------------------


def test_every_post_needs_its_csrf_token(app, reseller, seller, make_product):
    account, client = reseller
    store = approved_store(account, "csrf-store")
    product = make_product()
    allow(product, 500)
    key = product.variants[0].key
    db.session.add(
        SubStoreItem(
            substore_id=store.id, variant_id=product.variants[0].id, product_id=product.id, price=600, position=1
        )
    )
    db.session.commit()
    before = (
        terms_of(product.variants[0]),
        [(i.price, i.hidden, i.position) for i in db.session.scalars(select(SubStoreItem))],
    )
    posts = [
        (seller, f"/merchant/resale/{key}", {"active": "y", "floor": "9"}),
        (client, "/merchant/substore", {**STORE_FORM, "code": "csrf-other"}),
        (client, "/merchant/substore/apply-again", {}),
        (client, "/merchant/substore/items", {"variant": key, "price": "9"}),
        (client, f"/merchant/substore/items/{key}/price", {"price": "9"}),
        (client, f"/merchant/substore/items/{key}/visibility", {"hidden": "1"}),
        (client, f"/merchant/substore/items/{key}/move", {"direction": "down"}),
        (client, f"/merchant/substore/items/{key}/delete", {}),
    ]
    for who, url, data in posts:
        assert who.post(url, data=data).status_code == 400, url
        assert who.post(url, data={**data, "csrf_token": "forged"}).status_code == 400, url
    after = (
        terms_of(product.variants[0]),
        [(i.price, i.hidden, i.position) for i in db.session.scalars(select(SubStoreItem))],
    )
    assert after == before and reload(store).code == "csrf-store"


# -- the demo ---------------------------------------------------------------------------------------


def test_the_demo_has_a_reseller_selling_the_merchants_goods_at_a_markup(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0 and "reseller@faka.local / reseller-demo-123" in result.output
    store = db.session.execute(select(SubStore)).scalar_one()
    assert store.is_open and settings.programme_enabled("resale") and settings.programme_enabled("affiliate")
    offers = [resale.offer(store, row.variant) for row in resale.my_items(store.merchant_id)]
    assert len(offers) == 2 and all(o.price > o.floor_price for o in offers)
    runner.invoke(args=["seed-demo"])  # again: nothing added
    assert count(SubStore) == 1 and count(SubStoreItem) == 2


def test_the_resellers_complaint_view_reads_in_chinese(app, reseller, make_product, merchant):
    """The reseller's read-only case page and its polled thread, in Chinese: no English
    word and no identifier outside what people typed (names, messages, numbers)."""
    from test_zh_pages import english_words, problems_in, visible_text

    account, client = reseller
    chinese(client)
    store = approved_store(account, "zh-complaint-store")
    store.name = "月光小铺"
    product = make_product(title="原神 创世结晶 60", keys=5)
    allow(product, 800)
    db.session.add(
        SubStoreItem(substore_id=store.id, variant_id=product.variants[0].id, product_id=product.id, price=1000)
    )
    db.session.commit()
    order = buy(product, substore=store)
    with current_app.test_request_context():
        complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "卡密提示已被使用")
        workflow.post_message(complaint.id, ComplaintMessage.MERCHANT, merchant.user_id, "已为您补发一张新卡密")
    data = [
        order.number,
        complaint.ref,
        product.title,
        store.name,
        merchant.name,
        account.name,
        merchant.user.email,
        account.user.email,
    ]
    words = english_words()
    for path, statuses in (
        (f"/merchant/substore/complaints/{complaint.ref}", (200,)),
        (f"/merchant/substore/complaints/{complaint.ref}/thread", (200, 286)),
    ):
        response = client.get(path)
        assert response.status_code in statuses, path
        text = visible_text(response.text)
        assert "卡密提示已被使用" in text and "已为您补发一张新卡密" in text, path
        assert problems_in(text, data, words) == [], path
    page = visible_text(client.get(f"/merchant/substore/complaints/{complaint.ref}").text)
    assert "投诉" in page and "卡密无法使用" in page and "¥10.00" in page
    # The check sees English when there is some: the same page in English (whose <html
    # lang="en"> visible_text skips, so read with the tags stripped).
    in_english = english(client).get(f"/merchant/substore/complaints/{complaint.ref}").text
    assert "English Complaints" in problems_in(text_of(in_english), data, words)
