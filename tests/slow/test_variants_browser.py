"""A product with variants (规格) on a fresh install, in a phone's Chromium (360 px, Chinese).

The shop starts empty, as the README has a new operator start it (`flask init-db`,
`flask create-operator --shop`), and is opened as on opening day (tests/slow/
test_opening_day.py: two-factor authentication, a category, the policies, 易支付 pointed at a
fake provider on another port). Its owner lists a gift card in three face values, one of
them sold out. A buyer taps ¥100, sees the price follow, pays on the provider's page and gets
a ¥100 key, once with JavaScript on and once with it off. The other face values' keys are
never touched.
"""

import secrets

from playwright.sync_api import expect
from sqlalchemy import select
from test_opening_day import WAIT_MS, Phone, fresh_install, operator_opens_the_shop  # noqa: F401 - a fixture

from faka.accounts.models import Merchant
from faka.catalog import categories, products, variants
from faka.catalog.products import ProductDraft
from faka.catalog.variants import VariantDraft
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey
from faka.orders.models import Order

PRODUCT = "Google Play 礼品卡"
SINGLE = "Steam 钱包充值卡 20 元"


def shop_lists_the_gift_card() -> tuple[str, dict[str, int]]:
    """The one-person shop's gift card in ¥50 (5 keys), ¥100 (5 keys, 9 折 from 3) and ¥200
    (none), through the back office's functions, and a product of one price beside it.
    Returns the gift card's slug and its variants' ids by name."""
    db.session.commit()  # see what the pages committed
    merchant = db.session.scalar(select(Merchant))
    category = next(c for c in categories.choosable() if c.name == "游戏充值")
    card = products.save_product(merchant.id, ProductDraft(title=PRODUCT, category_id=category.id, price=4800))
    variants.add_variant(
        merchant.id,
        card.slug,
        VariantDraft(name="面值 ¥100", price=9500, max_per_order=5, tiers=[(3, 9000)]),
        first_name="面值 ¥50",
    )
    variants.add_variant(merchant.id, card.slug, VariantDraft(name="面值 ¥200", price=19000))
    single = products.save_product(merchant.id, ProductDraft(title=SINGLE, category_id=category.id, price=2000))
    db.session.commit()
    card = products.get_product(merchant.id, card.slug)
    for variant in card.live_variants[:2]:
        import_keys(variant, "\n".join(f"GP{variant.price // 100}-{i}-{secrets.token_hex(4)}" for i in range(5)))
    import_keys(products.get_product(merchant.id, single.slug).live_variants[0], "STEAM-20-0001\nSTEAM-20-0002")
    return card.slug, {v.name: v.id for v in card.live_variants}


def buyer_buys_100(buyer: Phone, providers, javascript: bool, screenshot=None) -> str:
    page = buyer.page
    buyer.open("/")
    page.get_by_role("link", name=PRODUCT).first.tap()
    page.wait_for_url("**/p/*")
    buyer.check()
    options = page.locator("label.variant-option")
    expect(options).to_have_count(3)
    expect(options.nth(0)).to_contain_text("面值 ¥50")
    expect(options.nth(2).locator("input")).to_be_disabled()  # ¥200 is sold out
    expect(page.locator("#bar-total")).to_have_text("¥48.00")
    box = options.nth(1).bounding_box()
    assert box["height"] >= 44 and box["x"] >= 0 and box["x"] + box["width"] <= 360
    if screenshot:
        screenshot(page, "product-variants")

    options.nth(1).tap()
    expect(options.nth(1).locator("input")).to_be_checked()
    if javascript:  # the total follows the variant at once, and the address names it
        expect(page.locator("#bar-total")).to_have_text("¥95.00")
        expect(page.locator("#price-preview dd.price")).to_have_text("¥95.00")
        expect(page.locator("#quantity-limits")).to_contain_text("5")
        page.wait_for_url("**/p/*?v=*")
        if screenshot:
            screenshot(page, "product-variant-100")
    page.locator("form.buy button[type=submit]").tap()
    if not javascript:
        page.wait_for_url("**/pay/*")  # faka's own pay page names the variant, then a plain link on
        expect(page.locator("article.pay")).to_contain_text(f"{PRODUCT} · 面值 ¥100")
        expect(page.locator("article.pay")).to_contain_text("¥95.00")
        page.locator("article.pay a.button.primary").tap()
    page.wait_for_url(providers.base_url + "/**")
    page.locator("button.pay").tap()
    page.wait_for_url(f"{buyer.base}/order/*")
    buyer.check()
    key = page.locator(".card-key")
    expect(key).to_have_count(1, timeout=WAIT_MS)
    expect(page.locator("dl.summary")).to_contain_text(f"{PRODUCT} · 面值 ¥100")
    return key.inner_text()


def test_a_buyer_taps_a_face_value_and_gets_a_key_of_it(chromium, fresh_install, providers, tmp_path):  # noqa: F811
    _app, base = fresh_install

    def screenshot(page, name):
        page.screenshot(path=str(tmp_path / f"{name}.png"), full_page=True)

    owner = Phone(chromium, base)
    operator_opens_the_shop(owner, providers)
    owner.context.close()
    slug, ids = shop_lists_the_gift_card()

    keys = []
    for javascript in (True, False):
        buyer = Phone(chromium, base, javascript=javascript)
        try:
            keys.append(buyer_buys_100(buyer, providers, javascript, screenshot if javascript else None))
        finally:
            buyer.context.close()

    # A product of one price looks as it always did: no options, its own price and stock.
    buyer = Phone(chromium, base)
    buyer.open("/")
    buyer.page.get_by_role("link", name=SINGLE).first.tap()
    buyer.page.wait_for_url("**/p/*")
    buyer.check()
    expect(buyer.page.locator("label.variant-option")).to_have_count(0)
    expect(buyer.page.locator(".price-line")).to_contain_text("¥20.00")
    screenshot(buyer.page, "product-single")
    buyer.context.close()

    db.session.commit()  # see what the shop committed
    orders = db.session.scalars(select(Order).order_by(Order.id)).all()
    assert [(o.status, o.variant_id, o.variant_name, o.total) for o in orders] == [
        (Order.DELIVERED, ids["面值 ¥100"], "面值 ¥100", 9500)
    ] * 2
    by_variant = {
        name: sorted(db.session.scalars(select(CardKey.status).where(CardKey.variant_id == variant_id)).all())
        for name, variant_id in ids.items()
    }
    assert by_variant == {
        "面值 ¥50": [CardKey.AVAILABLE] * 5,  # never touched
        "面值 ¥100": [CardKey.AVAILABLE] * 3 + [CardKey.SOLD] * 2,
        "面值 ¥200": [],
    }
    assert len(set(keys)) == 2 and all(k.startswith("GP95-") for k in keys)
