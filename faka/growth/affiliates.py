"""Affiliate links (推广): promoters, the products merchants opt in, and commissions.

A visit through `?ref=<code>` is remembered in the buyer's browser for REFERRAL_DAYS (the
last link wins). An order placed then, of a product opted in, names the promoter and the
product's commission rate; the commission itself is fixed at payment, out of what the
merchant asked for the goods, and is nothing when the payment shows the promoter bought
it themselves (the risk engine's `self_referral`). It is credited at delivery with the
merchant's hold and taken back by a refund (faka/ledger/shares.py).
"""

from datetime import datetime

from sqlalchemy import select

from faka.catalog.models import Product
from faka.extensions import db
from faka.growth.models import AffiliateTerms, Promoter
from faka.ledger import shares
from faka.orders.models import Order
from faka.platform import settings

REFERRAL_DAYS = 30
SELF_REFERRAL = "self_referral"


def active_promoter(code: str | None) -> Promoter | None:
    """The active promoter of a link code, while the affiliate programme is open."""
    if not code or len(code) > 16 or not settings.programme_enabled("affiliate"):
        return None
    promoter = db.session.execute(select(Promoter).where(Promoter.code == code)).scalar_one_or_none()
    return promoter if promoter is not None and promoter.is_active else None


def referral(code: str | None, product: Product, reseller_id: int | None = None) -> tuple[int, int] | None:
    """(promoter id, commission rate) for an order of `product` placed through the link
    `code`, or None: no such active promoter, the product is not opted in, or the
    promoter is the merchant itself or the sub-store's owner (who earn their share)."""
    promoter = active_promoter(code)
    if promoter is None or promoter.merchant_id in (product.merchant_id, reseller_id):
        return None
    rate = db.session.scalar(
        select(AffiliateTerms.commission_bp).where(
            AffiliateTerms.product_id == product.id, AffiliateTerms.active.is_(True)
        )
    )
    if not rate:
        return None
    return promoter.id, min(rate, shares.MAX_COMMISSION_BP)


def fix_commission(order: Order, now: datetime) -> None:
    """At payment, after the risk rules: the referred order's commission, a share of
    what the merchant asked for the goods; nothing for a self-referral."""
    if order.promoter_id is None or not order.commission_bp:
        return
    if SELF_REFERRAL in (order.risk_flags or "").split():
        order.commission = 0
        return
    base = order.total if order.resale_base is None else order.resale_base
    order.commission = base * min(order.commission_bp, shares.MAX_COMMISSION_BP) // 10000
