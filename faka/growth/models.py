"""Growth: reseller sub-stores (分站) and affiliate links (推广).

A sub-store belongs to an account (a Merchant row: every back-office account has one,
and its ledger entries are its balance) and resells other merchants' goods at its own
prices, never below the floor (拿货价) the merchant set on the variant. A promoter is an
account with a link code; merchants opt products in with a commission rate.
"""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class SubStore(db.Model):
    """A reseller's shop at /s/<code> (or on a domain of its own). It sells once the
    operator approved it; a frozen one is hidden and its owner's withdrawals stop."""

    __tablename__ = "substores"

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    FROZEN = "frozen"
    STATUSES = (PENDING, APPROVED, REJECTED, FROZEN)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), unique=True)  # the owner account
    code: Mapped[str] = mapped_column(String(20), unique=True)  # lower-case letters, digits, "-"
    name: Mapped[str] = mapped_column(String(60))
    logo: Mapped[str | None] = mapped_column(String(80))  # file name under the public uploads
    announcement: Mapped[str] = mapped_column(Text, default="")
    contact: Mapped[str] = mapped_column(String(200), default="")
    domain: Mapped[str | None] = mapped_column(String(253), unique=True)  # served by Host header
    # A new or changed domain the reseller asked for: not served until the operator approves it.
    pending_domain: Mapped[str | None] = mapped_column(String(253), unique=True)
    status: Mapped[str] = mapped_column(String(12), default=PENDING)
    reason: Mapped[str | None] = mapped_column(Text)  # of a rejection or a freeze
    fee_rate_bp: Mapped[int | None] = mapped_column()  # None: the programme's default rate
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)

    merchant = relationship("Merchant")

    @property
    def is_open(self) -> bool:
        return self.status == self.APPROVED


class ResaleTerms(db.Model):
    """A merchant lets one variant be resold by sub-stores, at no less than `floor_price`
    a unit (拿货价): what the merchant's share of a sub-store sale is computed from."""

    __tablename__ = "resale_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"), unique=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    floor_price: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SubStoreItem(db.Model):
    """A variant a sub-store picked to sell, at its own price (at or above the floor)."""

    __tablename__ = "substore_items"
    __table_args__ = (UniqueConstraint("substore_id", "variant_id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    substore_id: Mapped[int] = mapped_column(ForeignKey("substores.id"), index=True)
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"))
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    price: Mapped[int]
    hidden: Mapped[bool] = mapped_column(default=False)
    position: Mapped[int] = mapped_column(default=0)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Promoter(db.Model):
    """An account that brings buyers with `?ref=<code>` links and earns commissions."""

    __tablename__ = "promoters"

    ACTIVE = "active"
    FROZEN = "frozen"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), unique=True)
    code: Mapped[str] = mapped_column(String(16), unique=True)  # random, in the links
    status: Mapped[str] = mapped_column(String(12), default=ACTIVE)
    reason: Mapped[str | None] = mapped_column(Text)  # of a freeze
    fee_rate_bp: Mapped[int | None] = mapped_column()  # None: the programme's default rate
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    merchant = relationship("Merchant")

    @property
    def is_active(self) -> bool:
        return self.status == self.ACTIVE


class AffiliateTerms(db.Model):
    """A merchant opts a product into the affiliate programme: promoters earn
    `commission_bp` (basis points) of what the merchant receives for each sale they bring."""

    __tablename__ = "affiliate_terms"

    id: Mapped[int] = mapped_column(primary_key=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    commission_bp: Mapped[int]
    active: Mapped[bool] = mapped_column(default=True)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ReferralClick(db.Model):
    """A visit through a promoter's link: one per visitor (keyed hash of the device
    cookie, else of the address) and promoter per day, for the promoter's figures."""

    __tablename__ = "referral_clicks"
    __table_args__ = (
        UniqueConstraint("promoter_id", "day", "visitor_hash"),
        Index("ix_referral_clicks_promoter_created", "promoter_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    promoter_id: Mapped[int] = mapped_column(ForeignKey("promoters.id"))
    day: Mapped[str] = mapped_column(String(10))  # UTC date, ISO
    visitor_hash: Mapped[str] = mapped_column(String(64))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
