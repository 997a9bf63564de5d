"""First-run checklists: what a new shop and a new platform still need before they sell.

A merchant's steps, in order: qualification submitted, approved by the operator, a first
product, something to deliver (keys in stock, or a fixed or manual product), a payout
account, and (optional) two-factor authentication. The dashboard shows them instead of
its empty figures until the shop's first sale.

The operator's items draw on `flask doctor`'s cheap checks (no network call: SMTP is
judged by its settings, not contacted) and on the database: an HTTPS base URL, SMTP, a
gateway that takes real money, the sandbox off, recent backups, a category, and an
approved merchant with a product on sale.

Both read only; the templates word each step and link to where it is done.
"""

from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import func, select

from faka.accounts.models import Merchant, User
from faka.catalog import products
from faka.catalog.models import DELIVERY_AUTO, Product
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import PayoutAccount
from faka.ops import doctor
from faka.orders.models import Order

DONE, TODO, WAITING = "done", "todo", "waiting"  # WAITING: on someone else (the operator's review)


class ProductRef(NamedTuple):
    slug: str
    title: str


@dataclass(frozen=True)
class MerchantSetup:
    status: str  # the merchant's status (pending, approved, rejected, frozen)
    qualification: str  # DONE once submitted (and while approved); TODO before, or after a rejection
    approval: str  # DONE when approved; WAITING while under review; TODO otherwise
    first_product: str
    goods: str  # DONE when a product has keys in stock, or delivers fixed content or by hand
    payout_account: str
    two_factor: str  # optional
    keys_for: ProductRef | None  # the first product that waits for keys, when goods is TODO
    category_exists: bool  # a product needs one, and only the operator creates them
    first_sale: bool  # an order of the shop was ever paid

    @property
    def required(self) -> list[str]:
        return [self.qualification, self.approval, self.first_product, self.goods, self.payout_account]

    @property
    def done(self) -> int:
        return self.required.count(DONE)

    @property
    def total(self) -> int:
        return len(self.required)

    @property
    def complete(self) -> bool:
        return self.done == self.total


def _state(done: bool) -> str:
    return DONE if done else TODO


def _with_stock(product_ids: list[int]) -> set[int]:
    """Which of these products have a key available: one index probe each, not a count
    of a big shop's hundreds of thousands of keys."""
    if not product_ids:
        return set()
    available = select(CardKey.id).where(CardKey.product_id == Product.id, CardKey.status == CardKey.AVAILABLE)
    return set(db.session.scalars(select(Product.id).where(Product.id.in_(product_ids), available.exists())))


def merchant_setup(merchant_id: int) -> MerchantSetup:
    merchant = db.session.get(Merchant, merchant_id)
    submitted = merchant.status in (Merchant.APPROVED, Merchant.FROZEN) or (
        merchant.status == Merchant.PENDING and merchant.submitted_at is not None
    )
    if merchant.status == Merchant.APPROVED:
        approval = DONE
    elif merchant.status == Merchant.PENDING and merchant.submitted_at is not None:
        approval = WAITING
    else:
        approval = TODO

    live = db.session.execute(
        select(Product.id, Product.slug, Product.title, Product.delivery_type)
        .where(Product.merchant_id == merchant_id, Product.deleted_at.is_(None))
        .order_by(Product.position, Product.id)
    ).all()
    auto = [p for p in live if p.delivery_type == DELIVERY_AUTO]
    stocked = _with_stock([p.id for p in auto])
    deliverable = any(p.delivery_type != DELIVERY_AUTO or p.id in stocked for p in live)
    waiting_for_keys = next((ProductRef(p.slug, p.title) for p in auto if p.id not in stocked), None)

    payout = db.session.scalar(
        select(func.count())
        .select_from(PayoutAccount)
        .where(PayoutAccount.merchant_id == merchant_id, PayoutAccount.deleted_at.is_(None))
    )
    totp = db.session.scalar(select(User.totp_secret).where(User.id == merchant.user_id))
    sold = db.session.scalar(
        select(Order.id).where(Order.merchant_id == merchant_id, Order.paid_at.is_not(None)).limit(1)
    )
    return MerchantSetup(
        status=merchant.status,
        qualification=_state(submitted),
        approval=approval,
        first_product=_state(bool(live)),
        goods=_state(deliverable),
        payout_account=_state(bool(payout)),
        two_factor=_state(totp is not None),
        keys_for=None if deliverable else waiting_for_keys,
        category_exists=bool(products.categories()),
        first_sale=sold is not None,
    )


@dataclass(frozen=True)
class Item:
    ok: bool
    found: str = ""  # what the doctor found (English, like its CLI output), shown while to do


def _item(check: doctor.Check) -> Item:
    return Item(check.status == doctor.OK, check.found)


@dataclass(frozen=True)
class PlatformSetup:
    https: Item
    smtp: Item
    real_gateway: Item
    sandbox_off: Item
    backups: Item
    category: Item
    merchant_on_sale: Item
    own_shop: bool  # the operator runs a shop of their own (create-operator --shop)

    @property
    def items(self) -> list[Item]:
        return [
            self.https,
            self.smtp,
            self.real_gateway,
            self.sandbox_off,
            self.backups,
            self.category,
            self.merchant_on_sale,
        ]

    @property
    def done(self) -> int:
        return sum(item.ok for item in self.items)

    @property
    def total(self) -> int:
        return len(self.items)

    @property
    def complete(self) -> bool:
        return self.done == self.total


def merchants_on_sale() -> int:
    """Approved merchants with at least one product buyers can see."""
    return db.session.scalar(
        select(func.count(func.distinct(Product.merchant_id)))
        .join(Merchant, Product.merchant_id == Merchant.id)
        .where(
            Merchant.status == Merchant.APPROVED,
            Product.visible.is_(True),
            Product.moderation == "approved",
            Product.deleted_at.is_(None),
        )
    )


def platform_setup(operator_id: int, backup_dir: str | None) -> PlatformSetup:
    """`backup_dir`: where `flask backup` writes (FAKA_BACKUP_DIR), None for its default."""
    return PlatformSetup(
        https=_item(doctor.base_url()),
        smtp=_item(doctor.smtp(probe=False)),
        real_gateway=_item(doctor.real_gateway()),
        sandbox_off=_item(doctor.sandbox_off()),
        backups=_item(doctor.backups(backup_dir)),
        category=Item(bool(products.categories())),
        merchant_on_sale=Item(merchants_on_sale() > 0),
        own_shop=db.session.scalar(select(Merchant.id).where(Merchant.user_id == operator_id)) is not None,
    )
