"""Finding goods on the storefront (faka/catalog/search.py): search in titles and
descriptions (Chinese of any length, English words, both), category tabs, sorting, pages,
the shop page, bad input, the page cache, and statement counts that do not grow with the
catalogue. The same tests run on SQLite (FTS5 trigram) and PostgreSQL (n-gram GIN index)."""

import importlib.util
import os
import re
import secrets
import sqlite3
import subprocess
import sys
import time
from datetime import timedelta
from html import unescape
from pathlib import Path

import pytest
from sqlalchemy import select, text

from conftest import TEST_DATABASE, statements
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog import categories, search
from faka.catalog.models import Category, Product
from faka.catalog.variants import product_with_one_variant
from faka.core import cache
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.orders.models import Order

ROOT = Path(__file__).resolve().parents[2]


# -- helpers ------------------------------------------------------------------------------


@pytest.fixture
def client(app):
    """A buyer reading the English pages (the Chinese of new text comes with the catalogue)."""
    client = app.test_client()
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


@pytest.fixture
def shelves(app):
    """Two visible categories in the operator's order (游戏点卡 first) and a hidden one."""
    games = Category(name="游戏点卡", name_en="Game cards", position=1)
    software = Category(name="软件激活", name_en="Software", position=2)
    hidden = Category(name="内部", name_en="Internal", position=0, hidden=True)
    db.session.add_all([games, software, hidden])
    db.session.commit()
    return games, software, hidden


def sell(merchant, category, title, description="", price=1000, keys=10, **fields) -> Product:
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=merchant.id,
        category_id=category.id,
        title=title,
        description_md=description,
        price=price,
        max_per_order=10,
        **fields,
    )
    db.session.add(product)
    db.session.commit()
    if keys:
        import_keys(product.variants[0], "\n".join(f"K-{product.id}-{i}-{secrets.token_hex(3)}" for i in range(keys)))
    return product


def titles(client, url: str) -> list[str]:
    """The product titles a page lists, top to bottom."""
    response = client.get(url)
    assert response.status_code == 200, response.text
    return [unescape(t) for t in re.findall(r'<span class="title">([^<]+)</span>', response.text)]


def found(query: str, client, **args) -> list[str]:
    return titles(client, "/?" + "&".join(f"{k}={v}" for k, v in {"q": query, **args}.items()))


@pytest.fixture
def goods(app, merchant, shelves):
    games, software, hidden = shelves
    return {
        "steam": sell(merchant, games, "Steam 钱包充值卡 100 元", "国区 Steam 钱包，自动发货", price=9500),
        "origin": sell(merchant, games, "Origin 点卡", "EA 平台的充值点卡", price=5000),
        "windows": sell(merchant, software, "Windows 11 专业版", "零售版**激活码**，一机一码", price=19900),
        "office": sell(merchant, software, "Office 2021", "Microsoft Office professional plus", price=29900),
        "course": sell(merchant, hidden, "Python 课程", "共 40 课时，付款后获得下载地址", price=4900),
    }


# -- search ------------------------------------------------------------------------------


def test_a_two_character_chinese_query_finds_titles_and_descriptions(client, goods):
    assert sorted(found("充值", client)) == ["Origin 点卡", "Steam 钱包充值卡 100 元"]  # title, description
    assert found("点卡", client) == ["Origin 点卡"]
    assert found("课时", client) == ["Python 课程"]  # a description only
    assert found("卡", client) == ["Steam 钱包充值卡 100 元", "Origin 点卡"]  # one character: titles first


def test_longer_chinese_queries_match_their_run_of_characters(client, goods):
    assert found("钱包充值卡", client) == ["Steam 钱包充值卡 100 元"]
    assert found("激活码", client) == ["Windows 11 专业版"]  # in Markdown bold in the description
    assert found("一机一码", client) == ["Windows 11 专业版"]
    assert found("充值卡密", client) == []


def test_english_words_are_found_in_any_case_and_by_their_beginning(client, goods):
    assert found("steam", client) == ["Steam 钱包充值卡 100 元"]
    assert found("OFFICE", client) == ["Office 2021"]
    assert found("Wind", client) == ["Windows 11 专业版"]
    assert found("professional", client) == ["Office 2021"]  # in the description
    assert found("2021", client) == ["Office 2021"]
    assert found("xbox", client) == []


def test_every_word_of_a_mixed_query_must_match(client, goods):
    assert found("steam 充值", client) == ["Steam 钱包充值卡 100 元"]
    assert found("Steam充值卡", client) == ["Steam 钱包充值卡 100 元"]  # no space between the scripts
    assert found("origin 钱包", client) == []
    assert found("windows 激活", client) == ["Windows 11 专业版"]


def test_title_hits_come_before_description_hits(client, merchant, shelves):
    games = shelves[0]
    sell(merchant, games, "Uplay 点卡", "也可在 Steam 中使用")  # listed first by the operator's order
    sell(merchant, games, "Steam 礼品卡", "")
    assert found("steam", client) == ["Steam 礼品卡", "Uplay 点卡"]


def test_products_not_on_sale_are_never_found(client, app, merchant, shelves, goods):
    games = shelves[0]
    hidden = sell(merchant, games, "隐藏的 Steam 卡", visible=False)
    pending = sell(merchant, games, "待审核 Steam 卡", moderation="pending")
    taken_down = sell(merchant, games, "已下架 Steam 卡", moderation="taken_down")
    deleted = sell(merchant, games, "已删除 Steam 卡")
    deleted.deleted_at, deleted.visible = utcnow(), False
    frozen_shop = users.create_merchant("frozen@shop.test", "merchant-pass-1", "Frozen", approved=True)
    sell(frozen_shop, games, "冻结店铺的 Steam 卡")
    frozen_shop.status = Merchant.FROZEN
    unapproved = users.create_merchant("new@shop.test", "merchant-pass-1", "New", approved=False)
    sell(unapproved, games, "未审核店铺的 Steam 卡")
    db.session.commit()
    assert found("steam", client) == ["Steam 钱包充值卡 100 元"]
    assert found("Steam 卡", client) == ["Steam 钱包充值卡 100 元"]
    assert "Steam 卡" not in " ".join(titles(client, "/"))
    assert hidden and pending and taken_down
    assert client.get(f"/shop/{frozen_shop.public_id}?q=steam").status_code == 404


def test_an_edit_is_found_at_once_and_the_old_words_no_longer(client, goods):
    product = goods["origin"]
    product.title, product.description_md = "Battle.net 点数", "暴雪战网"
    db.session.commit()
    assert found("origin", client) == []
    assert found("战网", client) == ["Battle.net 点数"]
    assert found("battle", client) == ["Battle.net 点数"]


# -- tabs ------------------------------------------------------------------------------------


def tab_links(html: str) -> list[tuple[str, str, bool]]:
    """The tabs: (label, href, current)."""
    nav = re.search(r'<nav class="tabs".*?</nav>', html, re.S).group(0)
    return [
        (unescape(label), unescape(href), bool(current))
        for href, current, label in re.findall(r'<a href="([^"]*)"( aria-current="page")?>([^<]*)</a>', nav)
    ]


def test_tabs_are_the_visible_categories_with_goods_in_the_operators_order(client, goods, shelves):
    games, software, hidden = shelves
    empty = Category(name="空分类", position=3)
    db.session.add(empty)
    db.session.commit()
    tabs = tab_links(client.get("/").text)
    assert tabs == [
        ("All", "/", True),
        ("Game cards", f"/?category={games.id}", False),
        ("Software", f"/?category={software.id}", False),
    ]
    page = client.get(f"/?category={software.id}").text
    assert [current for _label, _href, current in tab_links(page)] == [False, False, True]
    assert titles(client, f"/?category={software.id}") == ["Windows 11 专业版", "Office 2021"]


def test_a_hidden_categorys_goods_are_under_all_and_in_search_never_under_its_tab(client, goods, shelves):
    hidden = shelves[2]
    assert titles(client, "/")[-1] == "Python 课程"  # last, under "Other goods"
    home = client.get("/").text
    assert "Other goods" in home and "Internal" not in home and "内部" not in home
    page = client.get(f"/?category={hidden.id}")
    assert page.status_code == 200
    assert "That category is not on sale here. Showing all goods." in page.text
    assert "Python 课程" in titles(client, f"/?category={hidden.id}")  # all goods instead
    assert found("python", client) == ["Python 课程"]


def test_a_search_keeps_its_tab_and_the_tabs_keep_the_search(client, goods, shelves):
    games = shelves[0]
    assert found("卡", client, category=games.id) == ["Steam 钱包充值卡 100 元", "Origin 点卡"]
    assert found("windows", client, category=games.id) == []
    page = client.get(f"/?q=windows&category={games.id}").text
    assert 'href="/?q=windows"' in page  # search all categories
    assert f'href="/?category={games.id}"' in page  # clear the search
    assert [href for _l, href, _c in tab_links(page)][:2] == ["/?q=windows", f"/?q=windows&category={games.id}"]


# -- sorting and pages ---------------------------------------------------------------------


def test_sorting_by_price_newness_and_popularity(client, app, goods, place):
    order = lambda sort: titles(client, f"/?sort={sort}")  # noqa: E731
    assert order("price") == [
        "Python 课程",
        "Origin 点卡",
        "Steam 钱包充值卡 100 元",
        "Windows 11 专业版",
        "Office 2021",
    ]
    assert order("price_desc") == list(reversed(order("price")))
    for i, product in enumerate(goods.values()):
        product.created_at = utcnow() - timedelta(days=10 - i)
    db.session.commit()
    assert order("newest") == [
        "Python 课程",
        "Office 2021",
        "Windows 11 专业版",
        "Origin 点卡",
        "Steam 钱包充值卡 100 元",
    ]
    # Popular: units in delivered orders of the last 30 days (older and unpaid ones do not count).
    delivered = [(goods["office"], 1), (goods["origin"], 3), (goods["origin"], 1), (goods["windows"], 2)]
    for product, quantity in delivered:
        db.session.get(Order, place(product, quantity=quantity).id).status = Order.DELIVERED
        db.session.commit()
    old = db.session.get(Order, place(goods["course"], quantity=5).id)
    old.status, old.created_at = Order.DELIVERED, utcnow() - timedelta(days=40)
    db.session.commit()
    place(goods["steam"], quantity=2)  # not paid
    db.session.commit()
    assert order("popular")[:3] == ["Origin 点卡", "Windows 11 专业版", "Office 2021"]
    # Unsold goods keep the operator's order after the sold ones.
    assert order("popular")[3:] == ["Steam 钱包充值卡 100 元", "Python 课程"]
    page = client.get("/?sort=popular").text
    assert re.search(r'<a href="/\?sort=popular" aria-current="true">Popular</a>', page)


def test_pages_of_24_keep_the_search_tab_and_order(client, merchant, shelves):
    games = shelves[0]
    for i in range(30):
        sell(merchant, games, f"点卡 {i:02d}", price=100 + i, keys=0)
    first = client.get(f"/?q=点卡&category={games.id}&sort=price")
    assert len(re.findall(r'class="product-card', first.text)) == 24
    assert "Page 1 of 2" in first.text
    assert f'href="/?q=%E7%82%B9%E5%8D%A1&amp;category={games.id}&amp;sort=price&amp;page=2"' in first.text
    second = titles(client, f"/?q=点卡&category={games.id}&sort=price&page=2")
    assert second == [f"点卡 {i:02d}" for i in range(24, 30)]
    assert "“点卡”: 30 found" in first.text
    beyond = client.get("/?q=点卡&page=999999")
    assert beyond.status_code == 200 and "There is nothing more on this page." in beyond.text
    assert 'href="/?q=%E7%82%B9%E5%8D%A1"' in beyond.text  # back to the first page


@pytest.mark.parametrize(
    "query",
    ["page=abc", "page=-1", "page=0", "page=1e3", "page=99999999999"],
)
def test_a_page_that_is_no_page_number_is_refused_with_a_message(client, goods, query):
    response = client.get(f"/?{query}")
    assert response.status_code == 400
    assert "There is no such page number." in response.text


@pytest.mark.parametrize(
    "query, shows",
    [
        ("sort=evil", "Steam 钱包充值卡 100 元"),
        ("category=999999", "Steam 钱包充值卡 100 元"),
        ("category=abc", "Steam 钱包充值卡 100 元"),
        ("category=" + "9" * 40, "Steam 钱包充值卡 100 元"),
        ("q=" + "%22*NEAR(" * 3, None),
        ("q=%25_%5C", None),
        ("q=" + "a" * 10000, None),
        ("q=%22steam%22*+(", "Steam 钱包充值卡 100 元"),
        ("q=steam+OR+origin", None),  # every word must match: "or" is a word here
        ("q=steam%20NOT%20origin%20AND", None),
        ("q=%27%3B+DROP+TABLE+products%3B--", None),
        ("q=%E2%80%AE%F0%9F%8E%AE", None),
    ],
)
def test_bad_input_gets_a_sensible_page(client, goods, query, shows):
    response = client.get(f"/?{query}")
    assert response.status_code == 200
    listed = [unescape(t) for t in re.findall(r'<span class="title">([^<]+)</span>', response.text)]
    if shows:
        assert shows in listed
    else:
        assert listed == []
        assert "Nothing matches" in response.text and "Clear the search" in response.text
    assert db.session.scalar(select(Product.id).limit(1)) is not None


def test_a_long_query_is_cut_to_64_characters(client, goods):
    page = client.get("/?q=" + "充值" * 5000).text
    value = unescape(re.search(r'name="q" value="([^"]*)"', page).group(1))
    assert value == "充值" * 32 and 'maxlength="64"' in page


def test_only_pages_within_reach_go_to_the_main_cache(make_app, merchant, shelves):
    """Random queries fill the small search cache, never the one the home page is in, and
    memory stays bounded."""
    app = make_app(PAGE_CACHE_SECONDS=60)
    app.extensions[cache.SEARCHES].clear()
    with app.app_context():
        sell(merchant, shelves[0], "Steam 卡")
    client = app.test_client()
    client.get("/")
    pages = app.extensions[cache.PAGES]
    home_keys = [k for k in pages._items if isinstance(k, tuple) and k[:1] == ("home",)]
    assert home_keys
    for i in range(cache.SEARCH_ENTRIES + 50):
        client.get(f"/?q=random{i}")
        client.get(f"/?page={i + 2}")
    assert all(k in pages._items for k in home_keys)  # the home page was not pushed out
    assert len(app.extensions[cache.SEARCHES]._items) <= cache.SEARCH_ENTRIES
    assert not [k for k in pages._items if isinstance(k, tuple) and k[:1] == ("home",) and k not in home_keys]
    app.extensions[cache.SEARCHES].clear()


class CacheClock:
    """The clock of faka/core/cache.py, moved on by hand: a cached page outlives its
    lifetime without the test waiting for it."""

    def __init__(self):
        self.now = time.monotonic()

    def monotonic(self) -> float:
        return self.now


def test_an_edited_or_hidden_product_is_not_found_once_the_cache_expires(make_app, merchant, shelves, monkeypatch):
    app = make_app(PAGE_CACHE_SECONDS=1)
    app.extensions[cache.SEARCHES].clear()
    clock = CacheClock()
    monkeypatch.setattr(cache, "time", clock)
    with app.app_context():
        product = sell(merchant, shelves[0], "Steam 钱包卡")
        product_id = product.id
        client = app.test_client()
        assert found("steam", client) == ["Steam 钱包卡"]
        assert titles(client, "/") == ["Steam 钱包卡"]
        db.session.get(Product, product_id).title = "Origin 钱包卡"
        db.session.commit()
        assert found("steam", client) == ["Steam 钱包卡"]  # the cached page, for at most a second
        clock.now += 1.1
        assert found("steam", client) == []
        assert found("origin", client) == ["Origin 钱包卡"]
        db.session.get(Product, product_id).visible = False
        db.session.commit()
        clock.now += 1.1
        assert found("origin", client) == [] and titles(client, "/") == []
    app.extensions[cache.SEARCHES].clear()


# -- the shop page -------------------------------------------------------------------------


def test_the_shop_page_searches_sorts_and_tabs_its_own_goods(client, merchant, goods, shelves):
    games, software, _hidden = shelves
    other = users.create_merchant("other@shop.test", "merchant-pass-1", "Other shop", approved=True)
    sell(other, games, "别家的 Steam 卡")
    shop = f"/shop/{merchant.public_id}"
    assert titles(client, f"{shop}?q=steam") == ["Steam 钱包充值卡 100 元"]
    assert titles(client, f"/shop/{other.public_id}?q=steam") == ["别家的 Steam 卡"]
    assert titles(client, f"/shop/{other.public_id}?q=windows") == []
    page = client.get(f"/shop/{other.public_id}").text
    assert [label for label, _h, _c in tab_links(page)] == ["All", "Game cards"]  # the categories it uses
    assert titles(client, f"{shop}?category={software.id}&sort=price_desc") == ["Office 2021", "Windows 11 专业版"]
    assert f'action="{shop}#on-sale"' in client.get(shop).text  # below the shop's head
    empty = users.create_merchant("empty@shop.test", "merchant-pass-1", "Empty", approved=True)
    assert "Nothing is on sale in this shop right now." in client.get(f"/shop/{empty.public_id}").text


# -- an empty install -----------------------------------------------------------------------


def test_from_an_empty_install_the_first_product_can_be_found(app, client, runner):
    """`create-operator --shop`, no demo seed: the home page says nothing is on sale and a
    search finds nothing; once the operator adds a category and lists a product, both find it."""
    result = runner.invoke(
        args=["create-operator", "--email", "me@shop.test", "--password", "a-long-password", "--shop", "小店"]
    )
    assert result.exit_code == 0, result.output
    home = client.get("/").text
    assert "Nothing is on sale yet." in home
    assert 'role="search"' in home and 'class="tabs"' not in home
    assert "Nothing matches “steam”." in client.get("/?q=steam").text
    operator = db.session.scalar(select(Merchant).where(Merchant.name == "小店"))
    category = categories.create("游戏点卡", "Game cards", operator.user_id)
    sell(operator, category, "Steam 充值卡")
    assert found("充值", client) == ["Steam 充值卡"]
    assert titles(client, "/") == ["Steam 充值卡"]


# -- the index itself ------------------------------------------------------------------------


def test_the_query_is_cut_as_the_index_is(app):
    assert search.terms("Steam充值卡 Win-10，专业版!") == ["steam", "充值卡", "win", "10", "专业版"]
    assert search.terms('"*NEAR(%_\\') == ["near"]
    assert search.terms("%_\\") == []
    if TEST_DATABASE != "sqlite":
        vector = db.session.scalar(text("SELECT faka_search_vector('Steam 充值卡', 'Win-10')::text"))
        assert vector == "'10' 'steam' 'win' '值' '值卡' '充' '充值' '卡'"
        query = db.session.scalar(text("SELECT faka_search_query('Steam充值卡 x')::text"))
        assert query == "'steam':* & '充值' & '值卡' & 'x':*"


def test_the_migration_builds_the_index_create_all_builds():
    spec = importlib.util.spec_from_file_location("m0023", ROOT / "migrations/versions/0023_catalogue_search.py")
    migration = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(migration)
    assert migration.PG_FUNCTIONS == search.PG_FUNCTIONS
    assert migration.PG_DDL == search.PG_DDL
    assert migration.SQLITE_DDL == search.SQLITE_DDL
    assert migration.TOKENS == search.TOKENS


def test_the_index_is_kept_by_the_database_itself(app, merchant, shelves):
    """Written by the database's triggers: an insert, an edit and a delete of a product
    reach it without any code of faka's."""

    def indexed(word: str) -> set[int]:  # the product ids the index itself finds for a word
        if TEST_DATABASE == "sqlite":
            sql = "SELECT rowid FROM product_search WHERE product_search MATCH :w"
            return set(db.session.scalars(text(sql), {"w": f'"{word}"'}))
        sql = "SELECT product_id FROM product_search WHERE document @@ faka_search_query(:w)"
        return set(db.session.scalars(text(sql), {"w": word}))

    product = sell(merchant, shelves[0], "Steam 卡", keys=0)
    assert indexed("steam") == {product.id}
    db.session.execute(text("UPDATE products SET title = 'Origin 卡' WHERE id = :id"), {"id": product.id})
    db.session.commit()
    assert indexed("steam") == set() and indexed("origin") == {product.id}
    db.session.execute(text("DELETE FROM product_variants WHERE product_id = :id"), {"id": product.id})
    db.session.execute(text("DELETE FROM products WHERE id = :id"), {"id": product.id})
    db.session.commit()
    assert indexed("origin") == set()


@pytest.mark.one_db  # a new SQLite install of its own, whichever database the run is given
def test_init_db_leaves_the_sqlite_index_with_its_triggers(tmp_path):
    """After every migration (a later batch ALTER of `products` on SQLite would drop the
    triggers), a new SQLite install has the FTS table and the three triggers, and a product
    inserted afterwards is found."""
    from conftest import ENCRYPTION_KEY

    env = {
        **{k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL")},
        "FAKA_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": f"sqlite:///{tmp_path}/i.db",
        "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY,
    }
    done = subprocess.run(
        [sys.executable, "-m", "flask", "--app", "faka", "init-db"], env=env, capture_output=True, text=True, cwd=ROOT
    )
    assert done.returncode == 0, done.stderr
    with sqlite3.connect(tmp_path / "i.db") as conn:
        names = {name for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE name LIKE 'product%search%'")}
        assert {"product_search", "products_search_insert", "products_search_delete", "products_search_update"} <= names
        sql = dict(conn.execute("SELECT name, sql FROM sqlite_master WHERE name LIKE 'product%search%'").fetchall())
    assert sql["product_search"] == search.SQLITE_DDL[0]
    assert [
        sql[name] for name in ("products_search_insert", "products_search_delete", "products_search_update")
    ] == list(search.SQLITE_DDL[1:])


# -- statements per page ----------------------------------------------------------------------


def test_statements_per_page_do_not_grow_with_the_catalogue(app, client, merchant, shelves, place):
    """Home, searches, a category tab, the orders and the shop page run the same number of
    statements with 10 and with 1,000 products on sale."""
    games, software, _hidden = shelves

    def fill(count: int) -> None:
        have = db.session.scalar(select(db.func.count()).select_from(Product))
        for i in range(have, count):
            db.session.add(
                product_with_one_variant(
                    slug=secrets.token_hex(8),
                    merchant_id=merchant.id,
                    category_id=(games if i % 2 else software).id,
                    title=f"Bench 充值卡 {i}",
                    description_md="自动发货 instant delivery",
                    price=100 + i,
                    position=i,
                )
            )
        db.session.commit()

    urls = [
        "/",
        "/?q=充值卡",
        "/?q=bench",
        "/?q=卡",
        f"/?category={games.id}",
        "/?sort=popular",
        "/?sort=price_desc",
        f"/?q=instant&category={software.id}&sort=newest",
        f"/shop/{merchant.public_id}",
        f"/shop/{merchant.public_id}?q=充值&sort=price_desc",
    ]
    fill(10)
    some = db.session.scalars(select(Product).limit(3)).all()
    for product in some:
        import_keys(product.variants[0], f"K-{product.id}")
        db.session.get(Order, place(product).id).status = Order.DELIVERED
    db.session.commit()
    for url in urls:
        client.get(url)  # warm
    small = {url: statements(client, url) for url in urls}
    fill(1000)
    large = {url: statements(client, url) for url in urls}
    print("statements per page (10 / 1,000 products):", small)
    assert large == small
