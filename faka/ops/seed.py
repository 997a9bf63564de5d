"""Demo data for `make run`: an operator, an approved merchant and a small catalogue (one
product with variants), both growth programmes open, and a reseller whose sub-store sells
two of the merchant's variants."""

import secrets

from sqlalchemy import select

from faka.accounts import users
from faka.accounts.models import Merchant, User
from faka.catalog import variants
from faka.catalog.models import DELIVERY_FIXED, DELIVERY_MANUAL, Category, CheckoutField, Product, ProductVariant
from faka.catalog.variants import product_with_one_variant
from faka.core.crypto import vault
from faka.extensions import db
from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
from faka.inventory import keys
from faka.payments.gateways import ensure_sandbox
from faka.platform.settings import set_setting

DEMO_OPERATOR = ("operator@faka.local", "operator-demo-123")
DEMO_MERCHANT = ("merchant@faka.local", "merchant-demo-123")
DEMO_RESELLER = ("reseller@faka.local", "reseller-demo-123")
STOCKOUT_PRODUCT_KEYS = 5


def demo_present() -> bool:
    return db.session.execute(select(User).where(User.email == DEMO_OPERATOR[0])).scalar_one_or_none() is not None


def seed_demo() -> bool:
    """Create the demo shop unless it is already there. Returns True when it created it."""
    ensure_sandbox()
    if demo_present():
        return False
    users.create_operator(*DEMO_OPERATOR)
    merchant = users.create_merchant(*DEMO_MERCHANT, name="星辰数字商店", approved=True)
    games = Category(name="游戏点卡", name_en="Game cards", position=1)
    software = Category(name="软件激活码", name_en="Software keys", position=2)
    courses = Category(name="课程兑换码", name_en="Course codes", position=3)
    db.session.add_all([games, software, courses])
    db.session.flush()

    def product(**fields) -> Product:
        p = product_with_one_variant(slug=secrets.token_hex(8), merchant_id=merchant.id, **fields)
        db.session.add(p)
        db.session.flush()
        return p

    cards = product(
        category_id=games.id,
        title="Steam 钱包充值卡 ¥50",
        price=4800,
        max_per_order=5,
        position=1,
        description_md="**自动发货**，付款后立即显示卡密，并发送到您的邮箱。\n\n- 仅限国区账户\n- 在 Steam 客户端「兑换钱包充值码」中使用",
        refund_policy="卡密一经发出不予退款；卡密无效请在 24 小时内提交投诉并附截图。",
        tiers=[(3, 4700)],
    )
    windows = product(
        category_id=software.id,
        title="Windows 11 专业版 激活密钥",
        price=9900,
        max_per_order=3,
        position=2,
        description_md="零售版密钥，**一机一码**。\n\n激活步骤：设置 → 系统 → 激活 → 更改产品密钥。",
        refund_policy="无法激活可申请更换或退款。",
    )
    product(
        category_id=courses.id,
        title="Python 入门视频课程",
        price=1990,
        position=3,
        delivery_type=DELIVERY_FIXED,
        fixed_content_ciphertext=vault().encrypt("下载地址 https://example.invalid/python-course  提取码 FAKA"),
        description_md="共 40 课时。付款后立即获得下载地址和提取码（所有买家相同）。",
        refund_policy="虚拟内容，发货后不退款。",
    )
    topup = product(
        category_id=games.id,
        title="代充 原神 6480 创世结晶",
        price=64800,
        max_per_order=1,
        position=4,
        delivery_type=DELIVERY_MANUAL,
        manual_promise_hours=2,
        require_email=True,
        description_md="人工代充，付款后 **2 小时内** 完成，请在备注邮箱留意通知。",
        refund_policy="未完成代充全额退款。",
    )
    topup.checkout_fields.extend(
        [  # what the merchant needs to top the account up
            CheckoutField(
                key=secrets.token_hex(8),
                position=0,
                label="游戏 UID",
                label_en="Game UID",
                kind="number",
                pattern=r"[1-9]\d{8}",
                pattern_message="UID 是 9 位数字",
                pattern_message_en="A UID has 9 digits",
                help_text="游戏内点击头像查看",
                help_text_en="Tap your avatar in the game to see it",
            ),
            CheckoutField(
                key=secrets.token_hex(8),
                position=1,
                label="服务器",
                label_en="Server",
                kind="choice",
                choices="天空岛（官服）\n世界树（B服）",
            ),
        ]
    )
    # Variants (规格): one product, three face values, each with its own price and keys;
    # ¥200 sold out, to see how the product page shows it.
    gift = product(
        category_id=games.id,
        title="Google Play 礼品卡",
        price=5000,
        max_per_order=5,
        position=5,
        description_md="**自动发货**，美区 Google Play 礼品卡，选择面值后下单。\n\n在 Play 商店「兑换礼品卡或促销代码」中使用。",
        refund_policy="卡密一经发出不予退款；卡密无效请在 24 小时内提交投诉并附截图。",
    )
    gift.variants[0].name, gift.variants[0].name_en = "¥50", "¥50"
    gift.variants.extend(
        ProductVariant(key=variants.new_key(), name=name, name_en=name, price=price, max_per_order=5, position=i)
        for i, (name, price) in enumerate((("¥100", 9800), ("¥200", 19500)), start=1)
    )
    variants.sync_price_range(gift)
    db.session.commit()
    for variant, count in zip(gift.variants, (8, 3, 0), strict=True):
        if count:
            keys.import_keys(variant, "\n".join(f"GPLAY-{secrets.token_hex(6).upper()}" for _ in range(count)))
    keys.import_keys(
        cards.variants[0], "\n".join(f"STEAM-{secrets.token_hex(5).upper()}" for _ in range(STOCKOUT_PRODUCT_KEYS))
    )
    keys.import_keys(
        windows.variants[0], "\n".join("-".join(secrets.token_hex(3).upper()[:5] for _ in range(5)) for _ in range(40))
    )
    _seed_resale(merchant, [(windows.variants[0], 8800, 10900), (gift.variants[0], 4500, 5200)])
    set_setting("site_name", "faka 发卡")
    set_setting("announcement", "演示商店：使用沙箱支付，不会产生真实扣款。")
    set_setting("icp_number", "京ICP备00000000号-1")
    return True


def _seed_resale(merchant: Merchant, offers: list[tuple[ProductVariant, int, int]]) -> None:
    """Both growth programmes open; the demo merchant lets some variants be resold at a
    floor price (拿货价), and a demo reseller's approved sub-store sells them at a markup:
    (variant, floor, the sub-store's price) each."""
    set_setting("resale_enabled", "1", commit=False)
    set_setting("affiliate_enabled", "1", commit=False)
    reseller = users.create_merchant(*DEMO_RESELLER, name="小鹿数码", approved=True)
    store = SubStore(
        merchant_id=reseller.id,
        code="xiaolu",
        name="小鹿数码分站",
        announcement="演示分站：商品由星辰数字商店发货，售后由商家处理。",
        contact="QQ 10000",
        status=SubStore.APPROVED,
    )
    db.session.add(store)
    db.session.flush()
    for position, (variant, floor_price, price) in enumerate(offers, start=1):
        db.session.add(
            ResaleTerms(
                variant_id=variant.id, product_id=variant.product_id, merchant_id=merchant.id, floor_price=floor_price
            )
        )
        db.session.add(
            SubStoreItem(
                substore_id=store.id,
                variant_id=variant.id,
                product_id=variant.product_id,
                price=price,
                position=position,
            )
        )
    db.session.commit()
