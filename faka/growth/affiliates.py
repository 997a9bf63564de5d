"""Affiliate links (推广): promoters, the products merchants opt in, and commissions.

A visit through `?ref=<code>` is remembered in the buyer's browser for REFERRAL_DAYS (the
last link wins). An order placed then, of a product opted in, names the promoter and the
product's commission rate; the commission itself is fixed at payment, out of what the
merchant asked for the goods, and is nothing when the payment shows the promoter bought
it themselves (the risk engine's `self_referral`). It is credited at delivery with the
merchant's hold and taken back by a refund (faka/ledger/shares.py).
"""

import secrets
from dataclasses import dataclass
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from faka.accounts.models import Merchant
from faka.catalog import products
from faka.catalog.models import Product
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.growth.models import AffiliateTerms, Promoter, ReferralClick
from faka.ledger import shares
from faka.orders.models import Order
from faka.platform import audit, settings

REFERRAL_DAYS = 30
SELF_REFERRAL = "self_referral"
CODE_ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789"  # lower case, no 0/o or 1/l to misread
CODE_LENGTH = 9


class ProgrammeClosed(DomainError):
    message = _l("The affiliate programme is not open at the moment.")


class PromoterRefused(DomainError):
    message = _l("A frozen account cannot become a promoter.")


class InvalidCommission(DomainError):
    message = _l("The commission must be from 0.01 %% to %(max)s %%.", max=shares.MAX_COMMISSION_BP // 100)


def active_promoter(code: str | None) -> Promoter | None:
    """The active promoter of a link code (its account not frozen), while the affiliate
    programme is open."""
    if not code or len(code) > 16 or not settings.programme_enabled("affiliate"):
        return None
    row = db.session.execute(
        select(Promoter, Merchant.status)
        .join(Merchant, Merchant.id == Promoter.merchant_id)
        .where(Promoter.code == code)
    ).one_or_none()
    # A promoter whose account the operator froze earns nothing, as a frozen promoter.
    return row[0] if row is not None and row[0].is_active and row[1] != Merchant.FROZEN else None


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


# -- promoters ----------------------------------------------------------------------------


def promoter_of(account_id: int) -> Promoter | None:
    """The account's promoter role, if it took one (active or frozen)."""
    return db.session.execute(select(Promoter).where(Promoter.merchant_id == account_id)).scalar_one_or_none()


def become_promoter(account_id: int, actor_id: int) -> Promoter:
    """Give the account a promoter role with a random link code, while the programme is
    open; an account that already has one keeps it (and its code)."""
    if not settings.programme_enabled("affiliate"):
        raise ProgrammeClosed()
    with write_transaction():
        # The account's row is locked first, so two posts at once (a double click) find
        # one promoter: the second waits, then sees the first's.
        account = db.session.get(Merchant, account_id, with_for_update=True, populate_existing=True)
        if account is None:
            raise NotFound()
        existing = promoter_of(account_id)
        if existing is not None:
            return existing
        if account.status == Merchant.FROZEN:
            raise PromoterRefused()
        promoter = Promoter(merchant_id=account_id, code=_free_code())
        db.session.add(promoter)
        db.session.flush()
        audit.record(actor_id, "promoter.joined", f"promoter:{promoter.id}", after={"code": promoter.code})
    return promoter


def _free_code() -> str:
    # 32**9 codes: a clash is all but impossible, and checked anyway.
    while True:
        code = "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))
        if db.session.scalar(select(Promoter.id).where(Promoter.code == code)) is None:
            return code


def record_click(promoter_id: int, visitor_hash: str, product_slug: str | None) -> bool:
    """Count a visit through the promoter's link: once per visitor and UTC day. The
    visitor is `visitor_hash`: the keyed hash of its device cookie, or of its address
    when it came with no device cookie at all (faka/web/shop/referral.py), so buyers
    sharing one address (carrier NAT) each count. `product_slug` names the product page
    the link led to, if it did. Returns whether it counted."""
    now = clock.now()
    day = now.date().isoformat()
    with write_transaction():
        seen = db.session.scalar(
            select(ReferralClick.id).where(
                ReferralClick.promoter_id == promoter_id,
                ReferralClick.day == day,
                ReferralClick.visitor_hash == visitor_hash,
            )
        )
        if seen is not None:
            return False
        product_id = (
            db.session.scalar(select(Product.id).where(Product.slug == product_slug[:32])) if product_slug else None
        )
        try:
            with db.session.begin_nested():
                db.session.add(
                    ReferralClick(
                        promoter_id=promoter_id,
                        day=day,
                        visitor_hash=visitor_hash,
                        product_id=product_id,
                        created_at=now,
                    )
                )
        except IntegrityError:  # the same visitor's other tab, a moment ago
            return False
    return True


# -- the merchant's side: products opted in -----------------------------------------------


@dataclass(frozen=True)
class OptIn:
    product: Product
    terms: AffiliateTerms | None

    @property
    def on(self) -> bool:
        return self.terms is not None and self.terms.active


def merchant_opt_ins(merchant_id: int) -> list[OptIn]:
    """The merchant's products, each with its affiliate terms (None: never opted in)."""
    rows = products.merchant_products(merchant_id)
    terms = {
        t.product_id: t
        for t in db.session.execute(select(AffiliateTerms).where(AffiliateTerms.merchant_id == merchant_id)).scalars()
    }
    return [OptIn(row.product, terms.get(row.product.id)) for row in rows]


def set_commission(
    merchant_id: int, actor_id: int, slug: str, commission_bp: int | None, active: bool
) -> AffiliateTerms:
    """Opt the merchant's own product in (or out) at `commission_bp` basis points of
    what the merchant receives. Orders already placed keep the rate they were placed at."""
    if commission_bp is None or not 1 <= commission_bp <= shares.MAX_COMMISSION_BP:
        raise InvalidCommission()
    with write_transaction():
        product = products.get_product(merchant_id, slug)
        # The product's row is locked before its terms are looked up, so two first
        # opt-ins at once do not both insert them: the second waits and updates.
        db.session.execute(select(Product.id).where(Product.id == product.id).with_for_update())
        terms = db.session.execute(
            select(AffiliateTerms).where(AffiliateTerms.product_id == product.id)
        ).scalar_one_or_none()
        before = None if terms is None else {"commission_bp": terms.commission_bp, "active": terms.active}
        if terms is None:
            terms = AffiliateTerms(product_id=product.id, merchant_id=merchant_id, commission_bp=commission_bp)
            db.session.add(terms)
        terms.commission_bp = commission_bp
        terms.active = active
        terms.updated_at = clock.now()
        db.session.flush()
        audit.record(
            actor_id,
            "affiliate.terms",
            f"product:{product.id}",
            before=before,
            after={"commission_bp": commission_bp, "active": active},
        )
    return terms
