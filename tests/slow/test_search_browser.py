"""Finding goods on a 360 px phone, from an empty install (an operator's one-person shop,
no demo seed): type a query, pick a category tab, change the order, go to the next page,
then open the shop's page; once with JavaScript (htmx swaps each page in place) and once
without (plain links and a GET form). Screenshots go to /tmp/shots/search/."""

import secrets
from pathlib import Path

import pytest
from sqlalchemy import select

from conftest import no_horizontal_scroll
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog import categories
from faka.catalog.models import Product
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.keys import import_keys

SHOTS = Path("/tmp/shots/search")
PHONE = {"viewport": {"width": 360, "height": 800}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}


@pytest.fixture
def opened_shop(live_server):
    """`create-operator --shop`, two categories, 30 point cards and 3 licences."""
    app, base = live_server
    operator = users.create_operator("owner@shop.test", "a-long-password-1", "小王的数字商品店")
    shop = db.session.scalar(select(Merchant).where(Merchant.user_id == operator.id))
    cards = categories.create("游戏点卡", "Game cards", operator.id)
    software = categories.create("软件激活码", "Software keys", operator.id)
    for i in range(30):
        product = product_with_one_variant(
            slug=secrets.token_hex(8),
            merchant_id=shop.id,
            category_id=cards.id,
            title=f"Steam 钱包充值卡 {100 + i} 元",
            description_md="国区 Steam 钱包，自动发货",
            price=(100 + i) * 100,
            max_per_order=5,
        )
        db.session.add(product)
    for title, price in (("Windows 11 专业版", 19900), ("Office 2021 专业增强版", 29900), ("Adobe 全家桶月卡", 9900)):
        db.session.add(
            product_with_one_variant(
                slug=secrets.token_hex(8),
                merchant_id=shop.id,
                category_id=software.id,
                title=title,
                description_md="零售版**激活码**，一机一码",
                price=price,
                max_per_order=5,
            )
        )
    db.session.commit()
    first = db.session.scalars(select(Product).order_by(Product.id)).first()
    import_keys(first.variants[0], "KEY-1\nKEY-2")
    return base, shop, cards, software


def shot(page, name: str) -> None:
    SHOTS.mkdir(parents=True, exist_ok=True)
    # caret="initial": hiding the caret leaves style="" on the inputs, which htmx then copies
    # onto the next page's input of the same id (a style attribute the CSP refuses).
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True, caret="initial")


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "no-js"])
def test_a_buyer_searches_picks_a_tab_sorts_and_pages_on_a_phone(chromium, opened_shop, javascript):
    base, shop, cards, software = opened_shop
    context = chromium.new_context(**PHONE, locale="zh-CN", java_script_enabled=javascript)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    suffix = "" if javascript else "-nojs"
    try:
        page.goto(f"{base}/?lang=en")
        assert page.locator(".hero h1").is_visible()
        assert page.locator(".tabs a[aria-current=page]").inner_text() == "All"
        assert no_horizontal_scroll(page)
        if javascript:
            shot(page, "home-360")

        # Type a query: the results replace the list, the URL says what was searched.
        page.fill("#search-q", "充值卡")
        page.press("#search-q", "Enter")
        page.wait_for_url("**/?q=*")
        assert page.locator(".found").inner_text() == "“充值卡”: 30 found"
        assert page.locator(".product-card").count() == 24
        assert page.input_value("#search-q") == "充值卡"
        assert no_horizontal_scroll(page)
        if javascript:
            shot(page, "search-360")

        # A tab narrows the search to one category; the search stays.
        page.click(".tabs a:has-text('Software keys')")
        page.wait_for_selector(".tabs a[aria-current=page]:has-text('Software keys')")
        assert page.locator(".empty").inner_text().startswith("Nothing matches “充值卡”.")
        page.click("text=Search all categories")
        page.wait_for_selector(".tabs a[aria-current=page]:has-text('All')")
        page.click(".tabs a:has-text('Game cards')")
        page.wait_for_selector(".tabs a[aria-current=page]:has-text('Game cards')")
        assert page.locator(".product-card").count() == 24

        # The most expensive first, then the next page, with the search, tab and order kept.
        page.click(".sorts a:has-text('highest first')")
        page.wait_for_selector(".sorts a[aria-current=true]:has-text('highest first')")
        assert page.locator(".product-card .title").first.inner_text() == "Steam 钱包充值卡 129 元"
        page.click(".pager a:has-text('Next')")
        page.wait_for_url("**page=2*")
        assert "q=%E5%85%85%E5%80%BC%E5%8D%A1" in page.url and f"category={cards.id}" in page.url
        assert "sort=price_desc" in page.url
        assert [t.inner_text() for t in page.locator(".product-card .title").all()] == [
            f"Steam 钱包充值卡 {100 + i} 元" for i in range(5, -1, -1)
        ]
        assert page.locator(".pager").inner_text().count("Page 2 of 2") == 1
        assert no_horizontal_scroll(page)

        # Clear the search: the query box empties and the whole shelf comes back.
        page.fill("#search-q", "")
        page.press("#search-q", "Enter")
        page.wait_for_selector(".hero")
        assert page.input_value("#search-q") == ""

        # The shop's page searches its own goods.
        page.goto(f"{base}/shop/{shop.public_id}")
        page.fill("#search-q", "激活码")
        page.press("#search-q", "Enter")
        page.wait_for_url("**/shop/*?q=*")
        assert page.locator(".product-card").count() == 3
        # The results, not the shop's head, are on screen (htmx scrolls once the page settled).
        page.wait_for_function("Math.abs(document.getElementById('on-sale').getBoundingClientRect().top) < 100")
        assert no_horizontal_scroll(page)
        if javascript:
            shot(page, "shop-search-360")
        page.goto(f"{base}/shop/{shop.public_id}")
        if javascript:
            shot(page, "shop-360")
        else:
            shot(page, f"search{suffix}-360")
        assert errors == []
    finally:
        context.close()


def test_the_tabs_scroll_sideways_on_a_phone_instead_of_widening_the_page(chromium, live_server):
    app, base = live_server
    operator = users.create_operator("owner@shop.test", "a-long-password-1", "店")
    shop = db.session.scalar(select(Merchant).where(Merchant.user_id == operator.id))
    for i in range(9):
        category = categories.create(f"很长的分类名称第{i}号", f"A rather long category name {i}", operator.id)
        db.session.add(
            product_with_one_variant(
                slug=secrets.token_hex(8), merchant_id=shop.id, category_id=category.id, title=f"商品 {i}", price=100
            )
        )
    db.session.commit()
    context = chromium.new_context(**PHONE)
    page = context.new_page()
    try:
        page.goto(f"{base}/?lang=en&sort=price")
        assert no_horizontal_scroll(page)
        tabs = page.locator(".tabs")
        assert tabs.evaluate("el => el.scrollWidth > el.clientWidth")
        last = page.locator(".tabs a").last
        last.scroll_into_view_if_needed()
        last.click()
        page.wait_for_selector(".tabs a[aria-current=page]:has-text('A rather long category name 8')")
        assert page.locator(".product-card .title").all_inner_texts() == ["商品 8"]
        height = page.locator(".tabs a").first.bounding_box()["height"]
        assert height >= 44
    finally:
        context.close()
