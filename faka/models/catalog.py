from datetime import datetime

from sqlalchemy import ForeignKey, String, Text, UniqueConstraint, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow

DELIVERY_AUTO = "auto"
DELIVERY_FIXED = "fixed"
DELIVERY_MANUAL = "manual"
DELIVERY_TYPES = (DELIVERY_AUTO, DELIVERY_FIXED, DELIVERY_MANUAL)


class Category(db.Model):
    """A shelf of the storefront, managed by the operator (services/categories.py).

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
    price: Mapped[int]  # minor units (fen)
    min_per_order: Mapped[int] = mapped_column(default=1)
    max_per_order: Mapped[int] = mapped_column(default=10)
    delivery_type: Mapped[str] = mapped_column(String(8), default=DELIVERY_AUTO)
    # For `fixed` delivery: the same content for every buyer, encrypted like a key.
    fixed_content_ciphertext: Mapped[str | None] = mapped_column(Text)
    manual_promise_hours: Mapped[int] = mapped_column(default=24)
    refund_policy: Mapped[str] = mapped_column(Text, default="")
    visible: Mapped[bool] = mapped_column(default=True)
    # One key sold to every buyer (shared-account goods); shown to buyers as such.
    reusable_key: Mapped[bool] = mapped_column(default=False)
    require_query_password: Mapped[bool] = mapped_column(default=False)
    # Checkout refuses an order without an email (a manual delivery may need to reach the buyer).
    require_email: Mapped[bool] = mapped_column(default=False, server_default=false())
    low_stock_threshold: Mapped[int] = mapped_column(default=0)
    # Stricter risk thresholds for high-value goods: the lower of these and the site's apply.
    risk_captcha_at: Mapped[int | None] = mapped_column()
    risk_hold_at: Mapped[int | None] = mapped_column()
    moderation_reason: Mapped[str | None] = mapped_column(Text)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    moderation: Mapped[str] = mapped_column(String(16), default="approved")
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant = relationship("Merchant")
    category = relationship("Category")
    tiers = relationship("TierPrice", order_by="TierPrice.min_quantity", cascade="all, delete-orphan")
    # What the product asks the buyer at checkout (faka/models/checkout_fields.py).
    checkout_fields = relationship("CheckoutField", order_by="CheckoutField.position", cascade="all, delete-orphan")

    @property
    def uses_key_stock(self) -> bool:
        """Each sale takes keys out of stock (auto delivery of unique keys)."""
        return self.delivery_type == DELIVERY_AUTO and not self.reusable_key

    def unit_price_for(self, quantity: int) -> int:
        """The price per item at this quantity: the best tier whose threshold is reached."""
        price = self.price
        for tier in self.tiers:
            if quantity >= tier.min_quantity:
                price = min(price, tier.unit_price)
        return price


class TierPrice(db.Model):
    """A lower unit price from a quantity upwards."""

    __tablename__ = "tier_prices"
    __table_args__ = (UniqueConstraint("product_id", "min_quantity"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
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
