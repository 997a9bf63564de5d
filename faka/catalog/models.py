"""The catalogue: categories, products, their images and checkout fields."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db

DELIVERY_AUTO = "auto"
DELIVERY_FIXED = "fixed"
DELIVERY_MANUAL = "manual"
# "From my server": the merchant's own server answers each paid order with its keys
# (faka/orders/remote_delivery.py, docs/dynamic-delivery.md).
DELIVERY_REMOTE = "remote"
DELIVERY_TYPES = (DELIVERY_AUTO, DELIVERY_FIXED, DELIVERY_MANUAL, DELIVERY_REMOTE)


class Category(db.Model):
    """A shelf of the storefront, managed by the operator (faka/catalog/categories.py).

    Hidden: not shown to buyers and not offered for new products; its products stay on
    sale and keep it. Deleted (`deleted_at`): gone for everyone; kept as a row only
    because soft-deleted products may still point at it (live products never do)."""

    __tablename__ = "categories"

    NAME_MAX = 60

    id: Mapped[int] = mapped_column(primary_key=True)
    name: Mapped[str] = mapped_column(String(NAME_MAX))  # Chinese, required
    name_en: Mapped[str | None] = mapped_column(String(NAME_MAX))
    position: Mapped[int] = mapped_column(default=0)  # lower first
    hidden: Mapped[bool] = mapped_column(default=False)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    def name_for(self, language: str) -> str:
        """The name shown in this language: English pages show the English name when
        there is one, every other page the Chinese name."""
        return self.name_en if language == "en" and self.name_en else self.name


class Product(db.Model):
    __tablename__ = "products"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Public identifier in URLs: random, so the catalogue size and order are not exposed.
    slug: Mapped[str] = mapped_column(String(32), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    category_id: Mapped[int] = mapped_column(ForeignKey("categories.id"), index=True)
    title: Mapped[str] = mapped_column(String(120))
    description_md: Mapped[str] = mapped_column(Text, default="")
    # The lowest and highest price of its variants, kept by faka/catalog/variants.py: the
    # storefront lists and sorts products by them without reading every variant.
    price: Mapped[int]  # minor units (fen)
    price_max: Mapped[int]
    delivery_type: Mapped[str] = mapped_column(String(8), default=DELIVERY_AUTO)
    # For `fixed` delivery: the same content for every buyer, encrypted like a key.
    fixed_content_ciphertext: Mapped[str | None] = mapped_column(Text)
    manual_promise_hours: Mapped[int] = mapped_column(default=24)
    # For `remote` delivery: the merchant's server faka POSTs each paid order to, and the
    # secret faka signs those requests with (made by faka, stored encrypted).
    remote_url: Mapped[str | None] = mapped_column(String(500))
    remote_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    refund_policy: Mapped[str] = mapped_column(Text, default="")
    visible: Mapped[bool] = mapped_column(default=True)
    # One key sold to every buyer (shared-account goods); shown to buyers as such.
    reusable_key: Mapped[bool] = mapped_column(default=False)
    require_query_password: Mapped[bool] = mapped_column(default=False)
    # Checkout refuses an order without an email (a manual delivery may need to reach the buyer).
    require_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    # Stricter risk thresholds for high-value goods: the lower of these and the site's apply.
    risk_captcha_at: Mapped[int | None] = mapped_column()
    risk_hold_at: Mapped[int | None] = mapped_column()
    # The merchant's own software may check its sold keys (faka/inventory/licenses.py), each
    # installed on at most `activation_limit` instances at once (None: any number).
    license_checks: Mapped[bool] = mapped_column(default=False, server_default=false())
    activation_limit: Mapped[int | None] = mapped_column()
    moderation_reason: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moderation: Mapped[str] = mapped_column(String(16), default="approved")
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant = relationship("Merchant")
    category = relationship("Category")
    # What the buyer chooses between (面值 ¥50 / ¥100, a month / a year): each with its own
    # price, limits and key pool. Every product has at least one; deleted ones stay for
    # their orders and keys (`ProductVariant.deleted_at`), so this is every variant.
    variants = relationship(
        "ProductVariant", order_by="ProductVariant.position, ProductVariant.id", back_populates="product"
    )
    # What the product asks the buyer at checkout (faka/catalog/models.py).
    checkout_fields = relationship("CheckoutField", order_by="CheckoutField.position", cascade="all, delete-orphan")

    @property
    def uses_key_stock(self) -> bool:
        """Each sale takes keys out of stock (auto delivery of unique keys)."""
        return self.delivery_type == DELIVERY_AUTO and not self.reusable_key

    @property
    def live_variants(self) -> list["ProductVariant"]:
        """The variants on offer (not deleted), in the merchant's order."""
        return [v for v in self.variants if v.deleted_at is None]

    @property
    def has_choice(self) -> bool:
        """The buyer chooses a variant: the product offers more than one."""
        return len(self.live_variants) > 1


class ProductVariant(db.Model):
    """One option of a product (规格): a face value, a period, an edition. Stock, prices and
    limits are per variant; a product with one variant looks like a product without any."""

    __tablename__ = "product_variants"

    NAME_MAX = 40

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random: names the variant in the buy form, the product page's URL and the API.
    key: Mapped[str] = mapped_column(String(16), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    # Empty only for the single variant of a product without a choice.
    name: Mapped[str] = mapped_column(String(NAME_MAX), default="")
    name_en: Mapped[str | None] = mapped_column(String(NAME_MAX))
    price: Mapped[int]  # minor units (fen)
    min_per_order: Mapped[int] = mapped_column(default=1)
    max_per_order: Mapped[int] = mapped_column(default=10)
    low_stock_threshold: Mapped[int] = mapped_column(default=0)
    position: Mapped[int] = mapped_column(default=0)  # lower first
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    product = relationship("Product", back_populates="variants")
    tiers = relationship("TierPrice", order_by="TierPrice.min_quantity", cascade="all, delete-orphan")

    def name_for(self, language: str) -> str:
        return _in(language, self.name, self.name_en)

    def unit_price_for(self, quantity: int) -> int:
        """The price per item at this quantity: the best tier whose threshold is reached."""
        price = self.price
        for tier in self.tiers:
            if quantity >= tier.min_quantity:
                price = min(price, tier.unit_price)
        return price


class TierPrice(db.Model):
    """A lower unit price of a variant from a quantity upwards."""

    __tablename__ = "tier_prices"
    __table_args__ = (UniqueConstraint("variant_id", "min_quantity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"))
    min_quantity: Mapped[int]
    unit_price: Mapped[int]


class ProductReport(db.Model):
    """A buyer's report of a product (pirated, illegal, not as described ...), reviewed in
    the operator's moderation queue."""

    __tablename__ = "product_reports"

    OPEN = "open"
    DISMISSED = "dismissed"
    ACTED = "acted"  # the product was taken down or changed

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    reason: Mapped[str] = mapped_column(String(32))
    text: Mapped[str] = mapped_column(Text, default="")
    ip: Mapped[str | None] = mapped_column(String(45))
    status: Mapped[str] = mapped_column(String(12), default=OPEN, index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    resolved_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    resolved_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))


class ProductImage(db.Model):
    __tablename__ = "product_images"
    __table_args__ = (
        Index("ix_product_images_product_role_position", "product_id", "role", "position"),
        # The public route looks a requested name up before any file is touched.
        Index("ix_product_images_thumb_webp", "thumb_webp"),
        Index("ix_product_images_thumb_jpeg", "thumb_jpeg"),
        Index("ix_product_images_detail_webp", "detail_webp"),
        Index("ix_product_images_detail_jpeg", "detail_jpeg"),
    )

    COVER = "cover"
    GALLERY = "gallery"
    ROLES = (COVER, GALLERY)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    role: Mapped[str] = mapped_column(String(8))
    position: Mapped[int] = mapped_column(default=0)  # the gallery's order; 0 for the cover
    thumb_webp: Mapped[str] = mapped_column(String(72))
    thumb_jpeg: Mapped[str] = mapped_column(String(72))
    detail_webp: Mapped[str] = mapped_column(String(72))
    detail_jpeg: Mapped[str] = mapped_column(String(72))
    thumb_width: Mapped[int]
    thumb_height: Mapped[int]
    detail_width: Mapped[int]
    detail_height: Mapped[int]
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def names(self) -> tuple[str, str, str, str]:
        return (self.thumb_webp, self.thumb_jpeg, self.detail_webp, self.detail_jpeg)

    def size(self, which: str) -> dict:
        """One size's files and dimensions, as the <picture> macro uses them."""
        if which == "thumb":
            return {
                "webp": self.thumb_webp,
                "jpeg": self.thumb_jpeg,
                "width": self.thumb_width,
                "height": self.thumb_height,
            }
        return {
            "webp": self.detail_webp,
            "jpeg": self.detail_jpeg,
            "width": self.detail_width,
            "height": self.detail_height,
        }


KIND_TEXT = "text"
KIND_NUMBER = "number"  # digits only (a UID keeps its leading zeros: stored as text)
KIND_EMAIL = "email"
KIND_PHONE = "phone"
KIND_CHOICE = "choice"
KINDS = (KIND_TEXT, KIND_NUMBER, KIND_EMAIL, KIND_PHONE, KIND_CHOICE)


def _in(language: str, chinese: str | None, english: str | None) -> str:
    """Merchant-written text in the page's language: English when asked for and given."""
    return (english if language == "en" and english else chinese) or ""


class CheckoutField(db.Model):
    """One question a product asks at checkout. The merchant writes it in Chinese, and
    optionally in English for English pages."""

    __tablename__ = "checkout_fields"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Random: names the field in the buy form and in the merchant's URLs and webhooks.
    key: Mapped[str] = mapped_column(String(16), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)  # 0, 1, 2 ... in the order the buyer sees them
    label: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str | None] = mapped_column(String(40))
    kind: Mapped[str] = mapped_column(String(8), default=KIND_TEXT)
    required: Mapped[bool] = mapped_column(default=True)
    choices: Mapped[str | None] = mapped_column(Text)  # for KIND_CHOICE: one per line
    # A regular expression the whole answer must match (checked safe when saved), and
    # what the buyer is told when it does not.
    pattern: Mapped[str | None] = mapped_column(String(100))
    pattern_message: Mapped[str | None] = mapped_column(String(100))
    pattern_message_en: Mapped[str | None] = mapped_column(String(100))
    help_text: Mapped[str | None] = mapped_column(String(200))
    help_text_en: Mapped[str | None] = mapped_column(String(200))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    @property
    def choice_list(self) -> list[str]:
        return [line for line in (self.choices or "").split("\n") if line]

    def label_for(self, language: str) -> str:
        return _in(language, self.label, self.label_en)

    def help_for(self, language: str) -> str:
        return _in(language, self.help_text, self.help_text_en)

    def pattern_message_for(self, language: str) -> str:
        return _in(language, self.pattern_message, self.pattern_message_en)


class OrderAnswer(db.Model):
    """A buyer's answer to one checkout field of an order. The question is copied, so the
    answer keeps its meaning when the merchant edits or removes the field later; the
    answer itself is stored encrypted, like a card key."""

    __tablename__ = "order_answers"

    id: Mapped[int] = mapped_column(primary_key=True)
    order_id: Mapped[int] = mapped_column(ForeignKey("orders.id"), index=True)
    position: Mapped[int] = mapped_column(default=0)
    field_key: Mapped[str] = mapped_column(String(16))  # CheckoutField.key when answered
    kind: Mapped[str] = mapped_column(String(8))
    label: Mapped[str] = mapped_column(String(40))
    label_en: Mapped[str | None] = mapped_column(String(40))
    value_ciphertext: Mapped[str] = mapped_column(Text)

    def label_for(self, language: str) -> str:
        return _in(language, self.label, self.label_en)
