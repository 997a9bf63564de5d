"""A merchant's products: create, edit, hide, delete (soft), with moderation on
prohibited words."""
import re
import secrets
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select

from faka.database import begin_write
from faka.extensions import db
from faka.models import CardKey, Category, Product, TierPrice
from faka.models.catalog import DELIVERY_AUTO, DELIVERY_FIXED, DELIVERY_TYPES
from faka.services import clock
from faka.services.crypto import vault
from faka.services.errors import DomainError, NotFound
from faka.services.settings import site_settings

MAX_PRICE = 100_000_000  # ¥1,000,000.00
MODERATION_APPROVED = "approved"
MODERATION_PENDING = "pending"


class InvalidProduct(DomainError):
    message = _l("Check the product details.")


@dataclass
class ProductDraft:
    title: str
    category_id: int
    price: int
    description_md: str = ""
    delivery_type: str = DELIVERY_AUTO
    min_per_order: int = 1
    max_per_order: int = 10
    tiers: list[tuple[int, int]] = field(default_factory=list)  # (min quantity, unit price)
    fixed_content: str | None = None
    manual_promise_hours: int = 24
    reusable_key: bool = False
    require_query_password: bool = False
    low_stock_threshold: int = 0
    refund_policy: str = ""
    visible: bool = True
    # Stricter risk thresholds (faka/services/risk.py); None: the site's own.
    risk_captcha_at: int | None = None
    risk_hold_at: int | None = None


def parse_tiers(text: str) -> list[tuple[int, int]]:
    """'3=47.00, 10=45.50' -> [(3, 4700), (10, 4550)]."""
    tiers = []
    for part in re.split(r"[,\n;，]+", text or ""):
        part = part.strip()
        if not part:
            continue
        match = re.fullmatch(r"(\d{1,4})\s*[=:：]\s*(\d{1,7})(?:\.(\d{1,2}))?", part)
        if not match:
            raise InvalidProduct(_l("Write tier prices as quantity=price, for example 3=47.00, 10=45.00."))
        cents = int(match.group(2)) * 100 + int((match.group(3) or "0").ljust(2, "0"))
        tiers.append((int(match.group(1)), cents))
    return tiers


def format_tiers(product: Product) -> str:
    return ", ".join(f"{t.min_quantity}={t.unit_price // 100}.{t.unit_price % 100:02d}" for t in product.tiers)


def prohibited_hits(*texts: str) -> list[str]:
    words = [w.strip() for w in re.split(r"[\n,，]+", site_settings().get("prohibited_words", "")) if w.strip()]
    haystack = "\n".join(t or "" for t in texts).lower()
    return [w for w in words if w.lower() in haystack]


def _validate(draft: ProductDraft) -> None:
    if not draft.title.strip() or len(draft.title) > 120:
        raise InvalidProduct(_l("The title must be 1 to 120 characters."))
    if not 1 <= draft.price <= MAX_PRICE:
        raise InvalidProduct(_l("The price must be between 0.01 and 1,000,000."))
    if draft.delivery_type not in DELIVERY_TYPES:
        raise InvalidProduct()
    if not 1 <= draft.min_per_order <= draft.max_per_order <= 100:
        raise InvalidProduct(_l("Quantities per order must satisfy 1 ≤ minimum ≤ maximum ≤ 100."))
    if not 1 <= draft.manual_promise_hours <= 720 or not 0 <= draft.low_stock_threshold <= 100000:
        raise InvalidProduct()
    seen = set()
    for quantity, price in draft.tiers:
        if quantity < 2 or quantity in seen or not 1 <= price <= MAX_PRICE:
            raise InvalidProduct(_l("Each tier needs a different quantity of at least 2 and a valid price."))
        seen.add(quantity)
    if db.session.get(Category, draft.category_id) is None:
        raise InvalidProduct(_l("Choose a category."))
    _validate_risk_thresholds(draft)


class LaxerThanSite(InvalidProduct):
    message = _l("A product's risk thresholds can only be stricter than the site's.")


def _validate_risk_thresholds(draft: ProductDraft) -> None:
    """A product may ask for the captcha or hold delivery at a lower score than the site
    does, never at a higher one: that would let through what the site stops."""
    site = site_settings()
    captcha, hold = int(site["risk_captcha_at"]), int(site["risk_hold_at"])
    if draft.risk_captcha_at is not None and not 1 <= draft.risk_captcha_at <= captcha:
        raise LaxerThanSite(_l("Ask for the captcha from a score of 1 to %(limit)s (the site asks from %(limit)s; "
                               "a higher score would be laxer), or leave it empty.", limit=captcha))
    if draft.risk_hold_at is not None and not 1 <= draft.risk_hold_at <= hold:
        raise LaxerThanSite(_l("Hold delivery from a score of 1 to %(limit)s (the site holds from %(limit)s; "
                               "a higher score would be laxer), or leave it empty.", limit=hold))


def save_product(merchant_id: int, draft: ProductDraft, slug: str | None = None) -> Product:
    """Create (slug None) or update the merchant's product. Text that hits a prohibited
    word sends the product to moderation instead of publishing it."""
    _validate(draft)
    begin_write()
    if slug is None:
        product = Product(slug=secrets.token_hex(8), merchant_id=merchant_id)
        db.session.add(product)
    else:
        product = get_product(merchant_id, slug)
    for name in ("title", "category_id", "price", "description_md", "delivery_type", "min_per_order",
                 "max_per_order", "manual_promise_hours", "reusable_key", "require_query_password",
                 "low_stock_threshold", "refund_policy", "visible", "risk_captcha_at", "risk_hold_at"):
        setattr(product, name, getattr(draft, name))
    product.title = draft.title.strip()
    if draft.delivery_type == DELIVERY_FIXED:
        # Editing without retyping the content keeps the content already stored.
        if (draft.fixed_content or "").strip():
            product.fixed_content_ciphertext = vault().encrypt(draft.fixed_content.strip())
        elif product.fixed_content_ciphertext is None:
            db.session.rollback()
            raise InvalidProduct(_l("A fixed-delivery product needs the content every buyer receives."))
    hits = prohibited_hits(draft.title, draft.description_md, draft.fixed_content or "")
    # A product an operator rejected or took down needs an operator again after an edit.
    held = product.moderation in ("rejected", "taken_down")
    product.moderation = MODERATION_PENDING if hits or held else MODERATION_APPROVED
    product.moderation_reason = ", ".join(hits) if hits else None
    product.tiers.clear()
    db.session.flush()
    product.tiers.extend(TierPrice(min_quantity=q, unit_price=p) for q, p in sorted(draft.tiers))
    db.session.commit()
    return product


def get_product(merchant_id: int, slug: str) -> Product:
    """The merchant's own (not deleted) product, or NotFound: the one place products are
    scoped to their merchant."""
    product = db.session.execute(
        select(Product).where(Product.slug == slug, Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
    ).scalar_one_or_none()
    if product is None:
        raise NotFound()
    return product


def set_visible(merchant_id: int, slug: str, visible: bool) -> Product:
    begin_write()
    product = get_product(merchant_id, slug)
    product.visible = visible
    db.session.commit()
    return product


def delete_product(merchant_id: int, slug: str) -> None:
    """Soft delete: hidden everywhere, kept for its orders; unsold keys are voided."""
    begin_write()
    product = get_product(merchant_id, slug)
    product.deleted_at = clock.now()
    product.visible = False
    db.session.execute(
        CardKey.__table__.update()
        .where(CardKey.product_id == product.id, CardKey.status == CardKey.AVAILABLE)
        .values(status=CardKey.VOID)
    )
    db.session.commit()


@dataclass(frozen=True)
class ProductRow:
    product: Product
    stock: dict[str, int]


def merchant_products(merchant_id: int) -> list[ProductRow]:
    products = db.session.execute(
        select(Product)
        .where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
        .order_by(Product.position, Product.id)
    ).scalars().all()
    counts: dict[int, dict[str, int]] = {p.id: {} for p in products}
    if products:
        for product_id, status, count in db.session.execute(
            select(CardKey.product_id, CardKey.status, func.count())
            .where(CardKey.product_id.in_(counts))
            .group_by(CardKey.product_id, CardKey.status)
        ):
            counts[product_id][status] = count
    return [ProductRow(p, counts[p.id]) for p in products]


def categories() -> list[Category]:
    return list(db.session.execute(select(Category).order_by(Category.position, Category.id)).scalars())
