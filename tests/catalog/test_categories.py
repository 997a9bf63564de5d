"""The operator's categories, from an empty database (no demo seed): creating, renaming,
ordering, hiding and deleting them through the console's pages; what merchants may choose
in the product form; what buyers see, in both languages; product positions."""

import json
import re
import secrets
from html import unescape
from pathlib import Path
from urllib.parse import urlparse

import pytest
from sqlalchemy import func, select

from conftest import csrf_from, logged_in_session, login, no_horizontal_scroll, reload, with_totp
from faka.accounts import users
from faka.accounts.models import Merchant, User
from faka.catalog.models import Category, Product
from faka.catalog.variants import product_with_one_variant
from faka.core import clock
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.platform.models import AuditEvent

SHOTS = Path("/tmp/shots_categories")
AXE = Path(__file__).resolve().parents[1] / "vendor/axe-core/axe.min.js"


# -- helpers ------------------------------------------------------------------------------


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def post(client, url, data=None, page="/operator/categories"):
    token = csrf_from(client.get(page).text)
    return client.post(url, data={"csrf_token": token, **(data or {})})


def path_of(response) -> str:
    return urlparse(response.headers.get("Location", "")).path


@pytest.fixture
def desk(app, operator):
    """The operator's console, in English."""
    client = english(app.test_client())
    login(client, operator)
    return client


@pytest.fixture
def shop(app, merchant):
    """The merchant's back office, in English."""
    client = english(app.test_client())
    login(client, merchant.user)
    return client


@pytest.fixture
def goods(app, merchant):
    """A product of the merchant's on sale in `category`, with a key (the suite's own
    make_product would bring a category of its own: these tests start with none)."""

    def make(category, title):
        product = product_with_one_variant(
            slug=secrets.token_hex(8), merchant_id=merchant.id, category_id=category.id, title=title, price=1000
        )
        db.session.add(product)
        db.session.commit()
        import_keys(product.variants[0], f"KEY-{secrets.token_hex(6)}")
        return product

    return make


def create(desk, name, name_en=""):
    response = post(desk, "/operator/categories", {"name": name, "name_en": name_en})
    assert response.status_code == 303, response.text
    return db.session.execute(select(Category).where(Category.name == name, Category.deleted_at.is_(None))).scalar_one()


def names_in_order() -> list[str]:
    db.session.commit()
    return list(
        db.session.execute(
            select(Category.name).where(Category.deleted_at.is_(None)).order_by(Category.position, Category.id)
        ).scalars()
    )


def console_names(desk) -> list[str]:
    """The categories as the console lists them, top to bottom."""
    return [
        unescape(n) for n in re.findall(r'<strong lang="zh-CN">([^<]+)</strong>', desk.get("/operator/categories").text)
    ]


def form_choices(client, url="/merchant/products/new") -> list[tuple[str, str]]:
    """(value, label) of the product form's category options, in order."""
    page = client.get(url).text
    select_html = re.search(r'<select[^>]*name="category_id"[^>]*>(.*?)</select>', page, re.S)
    assert select_html, "the form has no category list"
    return [
        (v, unescape(label).strip())
        for v, label in re.findall(r'<option[^>]*value="(\d+)"[^>]*>([^<]*)</option>', select_html.group(1))
    ]


def product_form(category_id, **changes):
    form = {
        "title": "Steam 充值卡",
        "category_id": category_id,
        "price": "48.00",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
    }
    form.update(changes)
    return form


def audit_actions(target_prefix="category:") -> list[str]:
    db.session.commit()
    return list(
        db.session.execute(
            select(AuditEvent.action).where(AuditEvent.target.like(f"{target_prefix}%")).order_by(AuditEvent.id)
        ).scalars()
    )


def product_count() -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(Product))


def home_sections(client) -> list[tuple[str, list[str]]]:
    """The home page's sections: (heading, product titles), top to bottom."""
    page = client.get("/").text
    sections = []
    for block in re.findall(r'<section class="category".*?</section>', page, re.S):
        heading = unescape(re.search(r"<h2>(.*?)</h2>", block, re.S).group(1).strip())
        titles = [unescape(t) for t in re.findall(r'<span class="title">([^<]+)</span>', block)]
        sections.append((heading, titles))
    return sections


# -- a new install ----------------------------------------------------------------------------


def test_a_new_install_tells_the_merchant_to_wait_for_a_category_and_saves_nothing(app, runner):
    """`init-db` + `create-operator --shop`, no demo seed: the shop's product form says
    plainly that the operator must create a category, instead of failing on the field."""
    result = runner.invoke(
        args=["create-operator", "--email", "boss@example.com", "--password", "long-enough-pw", "--shop", "老板的店"]
    )
    assert result.exit_code == 0, result.output
    boss = db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one()
    with_totp(boss)
    client = english(app.test_client())
    login(client, boss)

    page = client.get("/merchant/products/new")
    assert page.status_code == 200
    assert (
        "There are no product categories yet" in page.text
        and "The platform operator must create a category" in page.text
    )
    assert 'name="category_id"' not in page.text and 'action="/operator/categories"' not in page.text
    assert 'href="/operator/categories"' in page.text  # this operator runs the shop: a link to do it
    token = csrf_from(page.text)
    response = client.post("/merchant/products/new", data={"csrf_token": token, **product_form("1")})
    assert response.status_code == 400 and "There are no product categories yet" in response.text
    assert "Choose a category" not in response.text
    assert product_count() == 0
    # The console says the same from its side.
    assert "No categories yet" in client.get("/operator/categories").text

    # Once the operator creates one, the same form saves the product.
    create(client, "游戏点卡", "Game cards")
    choices = form_choices(client)
    assert [label for _v, label in choices] == ["Game cards"]
    response = client.post("/merchant/products/new", data={"csrf_token": token, **product_form(choices[0][0])})
    assert response.status_code == 303
    assert product_count() == 1


def test_a_merchant_with_no_category_gets_the_message_without_a_link_to_the_console(shop):
    page = shop.get("/merchant/products/new").text
    assert "There are no product categories yet" in page and "/operator/categories" not in page
    response = post(shop, "/merchant/products/new", product_form("1"), page="/merchant/products/new")
    assert response.status_code == 400 and product_count() == 0


# -- the operator's pages -----------------------------------------------------------------------


def test_operator_creates_renames_and_sees_categories_in_the_console(desk, operator):
    assert desk.get("/operator/categories").status_code == 200
    games = create(desk, "游戏点卡", "Game cards")
    soft = create(desk, "软件")
    assert (soft.name_en, soft.hidden, soft.position) == (None, False, games.position + 1)
    assert console_names(desk) == ["游戏点卡", "软件"]
    nav = desk.get("/operator/").text
    assert 'href="/operator/categories"' in nav
    assert nav.index('href="/operator/moderation"') < nav.index('href="/operator/categories"')  # right after it

    response = post(
        desk,
        f"/operator/categories/{soft.id}/edit",
        {"name": "软件激活码", "name_en": "Software keys", "position": "2"},
    )
    assert response.status_code == 303 and path_of(response) == "/operator/categories"
    assert (reload(soft).name, reload(soft).name_en) == ("软件激活码", "Software keys")
    # An empty English name removes it.
    post(desk, f"/operator/categories/{games.id}/edit", {"name": "游戏点卡", "name_en": "", "position": "1"})
    assert reload(games).name_en is None

    events = (
        db.session.execute(select(AuditEvent).where(AuditEvent.target == f"category:{soft.id}").order_by(AuditEvent.id))
        .scalars()
        .all()
    )
    assert [e.action for e in events] == ["category.created", "category.renamed"]
    assert all(e.actor_id == operator.id for e in events)
    assert json.loads(events[1].before) == {"name": "软件", "name_en": None}
    assert json.loads(events[1].after) == {"name": "软件激活码", "name_en": "Software keys"}
    assert "category.created" in desk.get("/operator/audit?action=category.created").text


@pytest.mark.parametrize(
    "fields, message",
    [
        ({"name": "", "name_en": "Cards"}, "Enter the Chinese name."),
        ({"name": "   ", "name_en": ""}, "Enter the Chinese name."),
        ({"name": "卡" * 61, "name_en": ""}, "Field cannot be longer than 60 characters."),
        ({"name": "点卡", "name_en": "x" * 61}, "Field cannot be longer than 60 characters."),
        ({"name": "游戏点卡", "name_en": ""}, "Another category already has this name."),
        ({"name": "新的", "name_en": "game CARDS"}, "Another category already has this name."),
    ],
)
def test_bad_category_names_are_refused_and_change_nothing(desk, fields, message):
    create(desk, "游戏点卡", "Game cards")
    response = post(desk, "/operator/categories", fields)
    assert response.status_code == 400 and message in response.text
    assert names_in_order() == ["游戏点卡"]
    assert audit_actions() == ["category.created"]


def test_renaming_to_another_categorys_name_is_refused(desk):
    create(desk, "游戏点卡", "Game cards")
    soft = create(desk, "软件")
    response = post(desk, f"/operator/categories/{soft.id}/edit", {"name": "游戏点卡", "name_en": ""})
    assert response.status_code == 400 and "Another category already has this name." in response.text
    assert reload(soft).name == "软件"
    assert f'id="category-{soft.id}"' in response.text and "<details open>" in response.text  # its forms stay open


def test_operator_orders_categories_with_buttons_and_positions(desk, shop, goods):
    a, b, c = (create(desk, name, en) for name, en in (("一", "One"), ("二", "Two"), ("三", "Three")))
    assert names_in_order() == ["一", "二", "三"]

    assert post(desk, f"/operator/categories/{c.id}/move", {"direction": "up"}).status_code == 303
    assert names_in_order() == ["一", "三", "二"]
    post(desk, f"/operator/categories/{a.id}/move", {"direction": "up"})  # the first stays first
    assert names_in_order() == ["一", "三", "二"]
    post(desk, f"/operator/categories/{a.id}/move", {"direction": "down"})
    assert names_in_order() == ["三", "一", "二"]
    post(desk, f"/operator/categories/{b.id}/edit", {"name": "二", "name_en": "Two", "position": "1"})
    assert names_in_order() == ["二", "三", "一"]
    post(
        desk, f"/operator/categories/{b.id}/edit", {"name": "二", "name_en": "Two", "position": "99"}
    )  # past the end: last
    assert names_in_order() == ["三", "一", "二"]
    assert console_names(desk) == ["三", "一", "二"]
    assert post(desk, f"/operator/categories/{a.id}/move", {"direction": "sideways"}).status_code == 400
    assert post(desk, f"/operator/categories/{a.id}/edit", {"name": "一", "position": "0"}).status_code == 400
    assert names_in_order() == ["三", "一", "二"]

    # The merchant's form and the home page follow the same order.
    assert [label for _v, label in form_choices(shop)] == ["Three", "One", "Two"]
    for category in (a, b, c):
        goods(category, f"Goods in {category.name_en}")
    assert [heading for heading, _titles in home_sections(english(shop))] == ["Three", "One", "Two"]

    moves = (
        db.session.execute(select(AuditEvent).where(AuditEvent.action == "category.reordered").order_by(AuditEvent.id))
        .scalars()
        .all()
    )
    # Only the changes that changed something: not "first goes up", not the refused ones.
    assert len(moves) == 4
    assert (json.loads(moves[0].before), json.loads(moves[0].after)) == ({"position": 3}, {"position": 2})


def test_a_hidden_category_disappears_for_buyers_and_new_products_but_its_products_stay(desk, shop, merchant, goods):
    games = create(desk, "游戏点卡", "Game cards")
    courses = create(desk, "课程兑换码", "Course codes")
    kept = goods(courses, "Python course")
    goods(games, "Steam card")
    buyer = english(desk.application.test_client())
    assert home_sections(buyer) == [("Game cards", ["Steam card"]), ("Course codes", ["Python course"])]

    response = post(desk, f"/operator/categories/{courses.id}/visibility", {"hidden": "1"})
    assert response.status_code == 303 and reload(courses).hidden is True
    assert "Hidden" in desk.get("/operator/categories").text

    # Buyers: the products stay on sale, listed last under "Other goods"; the name is gone.
    assert home_sections(buyer) == [("Game cards", ["Steam card"]), ("Other goods", ["Python course"])]
    page = buyer.get(f"/p/{kept.slug}")
    assert page.status_code == 200 and "Python course" in page.text
    assert "Course codes" not in page.text and "课程兑换码" not in page.text
    assert "Course codes" not in buyer.get("/").text
    assert "课程兑换码" not in buyer.get("/?lang=zh_CN").text
    assert "Python course" in buyer.get(f"/shop/{merchant.public_id}?lang=en").text

    # Merchants: not offered for a new product, nor for a product in another category...
    assert [label for _v, label in form_choices(shop)] == ["Game cards"]
    assert (
        post(
            shop, "/merchant/products/new", product_form(courses.id, title="Sneaked in"), page="/merchant/products/new"
        ).status_code
        == 400
    )
    assert product_count() == 2
    # ...but a product already in it keeps it, and is saved with it.
    edit = f"/merchant/products/{kept.slug}/edit"
    assert form_choices(shop, edit) == [
        (str(games.id), "Game cards"),
        (str(courses.id), "Course codes (hidden by the platform)"),
    ]
    assert re.search(
        rf'<option selected value="{courses.id}"|<option value="{courses.id}" selected', shop.get(edit).text
    )
    response = post(shop, edit, product_form(courses.id, title="Python course, 2nd edition"), page=edit)
    assert response.status_code == 303
    assert (reload(kept).category_id, reload(kept).title) == (courses.id, "Python course, 2nd edition")
    assert "hidden category" in shop.get("/merchant/products").text

    # Shown again: back under its name.
    post(desk, f"/operator/categories/{courses.id}/visibility", {"hidden": "0"})
    assert home_sections(buyer)[-1] == ("Course codes", ["Python course, 2nd edition"])
    assert audit_actions() == ["category.created", "category.created", "category.hidden", "category.shown"]


def test_a_category_with_products_is_not_deleted_until_they_move(desk, goods, operator):
    games = create(desk, "游戏点卡", "Game cards")
    cards = create(desk, "点卡")
    goods(games, "One")
    goods(games, "Two")
    gone = goods(games, "Deleted long ago")
    gone.deleted_at = clock.now()
    db.session.commit()

    page = desk.get("/operator/categories").text
    assert (
        "2 products are in this category, so it cannot be deleted as it is." in page
    )  # the deleted one does not count
    assert "Move 2 products and delete" in page
    response = post(desk, f"/operator/categories/{games.id}/delete")
    assert response.status_code == 400
    assert "Products still in this category: 2." in response.text
    assert reload(games).deleted_at is None and "category.deleted" not in audit_actions()
    # Not into itself, nor into a category that does not exist.
    for target in (games.id, 999999):
        assert post(desk, f"/operator/categories/{games.id}/delete", {"move_to": target}).status_code == 400
    assert names_in_order() == ["游戏点卡", "点卡"]

    response = post(desk, f"/operator/categories/{games.id}/delete", {"move_to": cards.id})
    assert response.status_code == 303
    assert names_in_order() == ["点卡"]
    db.session.commit()
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(Product)
            .where(Product.category_id == cards.id, Product.deleted_at.is_(None))
        )
        == 2
    )
    # The soft-deleted product keeps its old category, which stays as a deleted row.
    assert reload(gone).category_id == games.id and reload(games).deleted_at is not None
    assert "游戏点卡" not in desk.get("/operator/categories").text
    assert post(desk, f"/operator/categories/{games.id}/edit", {"name": "复活"}).status_code == 404

    moved = db.session.execute(select(AuditEvent).where(AuditEvent.action == "category.products_moved")).scalar_one()
    assert json.loads(moved.after) == {"category_id": cards.id, "products": 2} and moved.actor_id == operator.id
    deleted = db.session.execute(select(AuditEvent).where(AuditEvent.action == "category.deleted")).scalar_one()
    assert json.loads(deleted.before)["name"] == "游戏点卡"
    assert json.loads(deleted.after) == {"moved_to": cards.id, "products_moved": 2}


def test_an_empty_category_is_deleted_and_the_last_one_cannot_move_its_products_away(desk, goods):
    typo_id = create(desk, "游戏典卡").id
    assert post(desk, f"/operator/categories/{typo_id}/delete").status_code == 303
    db.session.commit()
    assert (
        db.session.scalar(select(func.count()).where(Category.id == typo_id)) == 0
    )  # nothing pointed at it: the row goes
    only = create(desk, "游戏点卡")
    goods(only, "Goods")
    page = desk.get("/operator/categories").text
    assert "Create another category to move them to" in page and 'name="move_to"' not in page
    assert audit_actions() == ["category.created", "category.deleted", "category.created"]


def test_english_pages_show_english_names_and_fall_back_to_chinese(desk, shop, goods):
    games = create(desk, "游戏点卡", "Game cards")
    soft = create(desk, "软件激活码")  # no English name
    steam = goods(games, "Steam card")
    windows = goods(soft, "Windows key")
    buyer = desk.application.test_client()

    assert [h for h, _t in home_sections(buyer)] == ["游戏点卡", "软件激活码"]  # Chinese by default
    assert [h for h, _t in home_sections(english(buyer))] == ["Game cards", "软件激活码"]
    product_page = buyer.get(f"/p/{steam.slug}").text
    assert f'href="/#category-{games.id}">Game cards</a>' in product_page
    assert f'href="/#category-{soft.id}">软件激活码</a>' in buyer.get(f"/p/{windows.slug}").text
    assert f'href="/#category-{games.id}">游戏点卡</a>' in buyer.get(f"/p/{steam.slug}?lang=zh_CN").text

    # The back office too.
    assert [label for _v, label in form_choices(shop)] == ["Game cards", "软件激活码"]
    assert "Game cards" in shop.get("/merchant/products").text
    assert [label for _v, label in form_choices(shop, "/merchant/products/new?lang=zh_CN")] == [
        "游戏点卡",
        "软件激活码",
    ]


# -- product positions ------------------------------------------------------------------------


def test_product_positions_order_the_merchants_list_and_shop(desk, shop, merchant):
    games = create(desk, "游戏点卡", "Game cards")
    for title in ("First", "Second", "Third"):
        assert (
            post(
                shop, "/merchant/products/new", product_form(games.id, title=title), page="/merchant/products/new"
            ).status_code
            == 303
        )

    def listed() -> list[str]:
        return re.findall(r"<summary>([^<]+?) <small", shop.get("/merchant/products").text)

    def in_shop() -> list[str]:
        page = shop.get(f"/shop/{merchant.public_id}").text
        return [unescape(t) for t in re.findall(r'<span class="title">([^<]+)</span>', page)]

    assert listed() == ["First", "Second", "Third"] == in_shop()  # a new product goes last
    third = db.session.execute(select(Product).where(Product.title == "Third")).scalar_one()
    response = post(shop, f"/merchant/products/{third.slug}/move", {"direction": "up"}, page="/merchant/products")
    assert response.status_code == 303 and response.headers["Location"].endswith(f"#product-{third.slug}")
    assert listed() == ["First", "Third", "Second"] == in_shop()
    post(shop, f"/merchant/products/{third.slug}/move", {"direction": "up"}, page="/merchant/products")
    post(shop, f"/merchant/products/{third.slug}/move", {"direction": "up"}, page="/merchant/products")  # already first
    assert listed() == ["Third", "First", "Second"] == in_shop()
    assert [t for _h, titles in home_sections(shop) for t in titles] == ["Third", "First", "Second"]
    assert (
        post(
            shop, f"/merchant/products/{third.slug}/move", {"direction": "nowhere"}, page="/merchant/products"
        ).status_code
        == 400
    )

    # The form shows the position and sets it.
    edit = f"/merchant/products/{third.slug}/edit"
    assert re.search(r'id="position"[^>]*value="1"|value="1"[^>]*id="position"', shop.get(edit).text)
    assert post(shop, edit, product_form(games.id, title="Third", position="50"), page=edit).status_code == 303
    assert listed() == ["First", "Second", "Third"] == in_shop()
    assert reload(third).position == 50
    # Left empty, an edit keeps the place; a negative one is refused.
    post(shop, edit, product_form(games.id, title="Third", position=""), page=edit)
    assert reload(third).position == 50
    assert post(shop, edit, product_form(games.id, title="Third", position="-1"), page=edit).status_code == 400
    assert reload(third).position == 50


# -- who may use the pages --------------------------------------------------------------------

URLS = [
    ("GET", "/operator/categories"),
    ("POST", "/operator/categories"),
    ("POST", "/operator/categories/{id}/edit"),
    ("POST", "/operator/categories/{id}/move"),
    ("POST", "/operator/categories/{id}/visibility"),
    ("POST", "/operator/categories/{id}/delete"),
]
ACCESS = [(who, method, path) for who in ("buyer", "buyer-htmx", "merchant") for method, path in URLS]
FORM = {"name": "闯入", "name_en": "Intruder", "position": "1", "direction": "up", "hidden": "1"}


@pytest.mark.parametrize("who, method, path", ACCESS, ids=[f"{w}-{m}-{p}" for w, m, p in ACCESS])
def test_category_pages_refuse_merchants_and_buyers(app, merchant, who, method, path):
    category = Category(name="游戏点卡", position=1)
    db.session.add(category)
    db.session.commit()
    client = english(app.test_client())
    if who == "merchant":
        login(client, merchant.user)
    headers = {"HX-Request": "true"} if who == "buyer-htmx" else {}
    data = {"csrf_token": csrf_from(client.get("/lookup").text), **FORM} if method == "POST" else None

    response = client.open(path.format(id=category.id), method=method, data=data, headers=headers)

    if who == "buyer":
        assert response.status_code == 303 and path_of(response) == "/login"
    else:
        assert response.status_code == 403
    assert names_in_order() == ["游戏点卡"] and reload(category).hidden is False
    assert audit_actions() == []


# -- a phone --------------------------------------------------------------------------------------


def browser_login(page, app, base, user):
    cookie = app.session_interface.get_signing_serializer(app).dumps({**logged_in_session(user), "lang": "en"})
    page.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])


def test_on_a_phone_the_operator_creates_a_category_and_the_merchant_picks_it(live_server, chromium, merchant):
    from playwright.sync_api import expect

    app, base = live_server
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(operator)
    SHOTS.mkdir(exist_ok=True)

    desk = chromium.new_context(viewport={"width": 360, "height": 800})
    page = desk.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_login(page, app, base, operator)
    page.goto(f"{base}/operator/categories")
    expect(page.locator(".notice")).to_contain_text("No categories yet")
    page.fill("#name", "游戏点卡")
    page.fill("#name_en", "Game cards")
    page.click("text=Add category")
    expect(page.locator(".category-item")).to_have_count(1)
    page.fill("#name", "软件激活码")
    page.click("text=Add category")
    expect(page.locator(".category-item")).to_have_count(2)
    page.locator(".category-item").nth(1).locator("button[value=up]").click()
    expect(page.locator(".category-item strong").first).to_have_text("软件激活码")
    assert no_horizontal_scroll(page)
    page.locator(".category-item").nth(1).locator("summary").click()
    assert no_horizontal_scroll(page)
    # The list and its forms (the site's header, navigation and buttons are the layout's own).
    page.evaluate(AXE.read_text())
    violations = page.evaluate(
        "async () => (await axe.run({include: [['.category-list']]})).violations"
        ".map(v => [v.id, v.nodes.map(n => n.target.join(' '))])"
    )
    assert violations == []
    page.screenshot(path=str(SHOTS / "categories-360.png"), full_page=True)
    assert errors == []
    desk.close()

    shop = chromium.new_context(viewport={"width": 360, "height": 800})
    page = shop.new_page()
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    browser_login(page, app, base, merchant.user)
    page.goto(f"{base}/merchant/products/new")
    options = page.locator("#category_id option")
    expect(options).to_have_text(["软件激活码", "Game cards"])
    page.fill("#title", "Steam 钱包充值卡")
    page.select_option("#category_id", label="Game cards")
    page.fill("#price", "48.00")
    page.click("button.primary")
    page.wait_for_url("**/keys")
    assert no_horizontal_scroll(page)
    page.goto(f"{base}/merchant/products")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(SHOTS / "merchant-products-360.png"), full_page=True)
    assert errors == []
    shop.close()
    db.session.commit()
    product = db.session.execute(select(Product)).scalar_one()
    assert product.category.name == "游戏点卡" and product.merchant_id == merchant.id
    assert db.session.get(Merchant, merchant.id).status == Merchant.APPROVED
