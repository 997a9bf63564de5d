"""Random purchase histories keep stock and money consistent.

A hypothesis state machine drives one product with two variants (规格), each with a few
keys of its own and its own price, through random sequences of checkouts of either,
payments, replayed notifications, expiries, reconciler runs and delivery jobs, and after
every step compares the database with a small model of what the shop owes. It runs in two
job modes:

- `sync`: delivery runs inline right after the payment commits (the test default);
- `redis-down`: jobs go to an unreachable Redis, so paid orders wait for an explicit
  delivery job; at the end the reconciler of a working (sync) app must catch up.
"""

import secrets
from collections import Counter
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    initialize,
    invariant,
    multiple,
    rule,
    run_state_machine_as_test,
)
from sqlalchemy import func, select
from test_ledger import histories

from conftest import _empty_database, signed_notify
from faka.accounts import users
from faka.catalog.models import DELIVERY_AUTO, Category, ProductVariant
from faka.catalog.variants import new_key, product_with_one_variant, sync_price_range
from faka.core.crypto import vault
from faka.core.errors import OutOfStock
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory import stock
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.ops import reconcile
from faka.orders import checkout, delivery
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import ensure_sandbox
from faka.payments.models import PaymentNotice

KEYS = 6  # of each variant
PRICES = (1000, 2500)  # variant 0's and variant 1's
MAX_EXAMPLES = 25  # on SQLite; a third on PostgreSQL (test_ledger.histories)
UNREACHABLE_REDIS = "redis://127.0.0.1:1/0"

HOLDS_KEYS = {Order.PENDING: CardKey.RESERVED, Order.PAID: CardKey.RESERVED, Order.DELIVERED: CardKey.SOLD}
PAID_STATES = {Order.PAID, Order.DELIVERED, Order.PAID_UNFULFILLED}


class PurchaseMachine(RuleBasedStateMachine):
    """Set by the test: the app the steps run in, and a sync app for the final reconcile."""

    step_app = None
    final_app = None
    inline_delivery = True

    orders = Bundle("orders")
    notices = Bundle("notices")

    def __init__(self):
        super().__init__()
        self.ctx = self.step_app.app_context()
        self.ctx.push()
        self.product_id = None
        self.slug = None
        self.variant_keys: list[str] = []
        self.variant_ids: list[int] = []
        self.status: dict[int, str] = {}  # the model: what each order's status must be
        self.quantity: dict[int, int] = {}
        self.variant: dict[int, int] = {}  # each order's variant: 0 or 1
        self.overdue: set[int] = set()  # orders whose expires_at was moved into the past
        self.paid: set[int] = set()  # orders that got an accepted payment

    # -- set-up -------------------------------------------------------------------------

    @initialize()
    def fresh_shop_with_one_product_of_two_variants(self):
        _empty_database()
        ensure_sandbox()
        merchant = users.create_merchant(f"m{secrets.token_hex(4)}@shop.test", "merchant-pass-1", "Shop", approved=True)
        category = Category(name="游戏点卡", name_en="Game cards")
        db.session.add(category)
        db.session.commit()
        product = product_with_one_variant(
            slug=secrets.token_hex(8),
            merchant_id=merchant.id,
            category_id=category.id,
            price=PRICES[0],
            delivery_type=DELIVERY_AUTO,
            title="Property product",
            max_per_order=3,
        )
        product.variants[0].name = "面值 10"
        product.variants.append(
            ProductVariant(key=new_key(), name="面值 25", price=PRICES[1], max_per_order=3, position=1)
        )
        sync_price_range(product)
        db.session.add(product)
        db.session.commit()
        self.product_id, self.slug = product.id, product.slug
        self.variant_keys = [v.key for v in product.variants]
        self.variant_ids = [v.id for v in product.variants]
        for n, variant in enumerate(product.variants):
            report = import_keys(variant, "\n".join(f"PROP-{n}-{i}-{secrets.token_hex(4)}" for i in range(KEYS)))
            assert report.added == KEYS

    # -- the model ----------------------------------------------------------------------

    def of(self, variant: int):
        return [o for o in self.status if self.variant[o] == variant]

    def held(self, variant: int) -> int:
        return sum(self.quantity[o] for o in self.of(variant) if self.status[o] in HOLDS_KEYS)

    def available(self, variant: int) -> int:
        return KEYS - self.held(variant)

    def takes(self, variant: int, quantity: int, releasing=()) -> bool:
        """Whether checkout reserves `quantity` keys of the variant once the pending orders
        `releasing` are expired: enough keys, and unpaid orders not past their share of the
        variant (stock.HOLD_SHARE)."""
        freed = sum(self.quantity[o] for o in releasing)
        available = self.available(variant) + freed
        reserved = (
            sum(self.quantity[o] for o in self.of(variant) if self.status[o] in (Order.PENDING, Order.PAID)) - freed
        )
        over_share = quantity > 1 and reserved + quantity > stock.HOLD_SHARE * (available + reserved)
        return quantity <= available and not over_share

    def overdue_pending(self, variant: int | None = None) -> list[int]:
        return [
            o
            for o in self.overdue
            if self.status[o] == Order.PENDING and (variant is None or self.variant[o] == variant)
        ]

    def expire_overdue(self, variant: int | None = None) -> int:
        """What the shop does to pending orders past their deadline: expire them (a
        checkout or a late payment short of keys: those of its own variant only)."""
        due = self.overdue_pending(variant)
        for o in due:
            self.status[o] = Order.EXPIRED
        return len(due)

    def delivered_when_paid(self) -> str:
        return Order.DELIVERED if self.inline_delivery else Order.PAID

    # -- steps --------------------------------------------------------------------------

    @rule(target=orders, variant=st.sampled_from((0, 1)), quantity=st.integers(1, 3), with_email=st.booleans())
    def checkout(self, variant, quantity, with_email):
        email = f"buyer{len(self.status)}@example.com" if with_email else None
        at_once = self.takes(variant, quantity)
        # Short of keys or over the share, checkout first releases the variant's stale reservations.
        takes = at_once or self.takes(variant, quantity, self.overdue_pending(variant))
        try:
            with self.step_app.test_request_context():
                order = checkout.place_order(self.slug, quantity, email, None, variant_key=self.variant_keys[variant])
        except OutOfStock as refused:  # StockHeld too: over the share
            assert not takes, f"refused {quantity} of variant {variant} with {self.available(variant)} keys free"
            event(f"checkout: refused ({type(refused).__name__})")
            return multiple()
        assert takes, f"reserved {quantity} of variant {variant} with only {self.available(variant)} keys free"
        assert order.variant_id == self.variant_ids[variant]
        if not at_once:
            self.expire_overdue(variant)
        self.status[order.id] = Order.PENDING
        self.quantity[order.id] = quantity
        self.variant[order.id] = variant
        return order.id

    @rule(target=notices, order_id=orders)
    def pay(self, order_id):
        before = self.status[order_id]
        fields = signed_notify(db.session.get(Order, order_id))
        with self.step_app.test_request_context():
            result = notify.handle_notify("sandbox", fields, {}, b"")
        assert not result.replay and result.order.id == order_id
        self.paid.add(order_id)
        event(f"pay: order was {before}")
        if before == Order.PENDING:
            self.status[order_id] = self.delivered_when_paid()
        elif before == Order.EXPIRED:
            # Paid after expiry: honoured while keys of its variant remain (the variant's
            # stale reservations released if need be), else flagged for refund.
            variant = self.variant[order_id]
            if self.available(variant) < self.quantity[order_id]:
                self.expire_overdue(variant)
            if self.available(variant) >= self.quantity[order_id]:
                self.status[order_id] = self.delivered_when_paid()
                event("pay: late payment honoured")
            else:
                self.status[order_id] = Order.PAID_UNFULFILLED
                event("pay: late payment flagged for refund")
        # A second payment of a paid order is recorded (refund due) and changes nothing else.
        return fields

    @rule(fields=notices)
    def replay_notify(self, fields):
        before = self.snapshot()
        with self.step_app.test_request_context():
            result = notify.handle_notify("sandbox", fields, {}, b"")
        assert result.replay
        assert self.snapshot() == before

    @rule(order_id=orders, then_reconcile=st.booleans())
    def expire(self, order_id, then_reconcile):
        order = db.session.get(Order, order_id)
        order.expires_at = utcnow() - timedelta(minutes=1)
        db.session.commit()
        self.overdue.add(order_id)
        if then_reconcile:  # the buyer walked away and the reconciler came by
            self.run_reconciler()

    @rule()
    def run_reconciler(self):
        with self.step_app.test_request_context():
            report = reconcile.reconcile()
        assert report.expired == self.expire_overdue()
        if self.inline_delivery:
            for o, s in self.status.items():
                if s == Order.PAID:
                    self.status[o] = Order.DELIVERED

    @rule(order_id=orders)
    def run_delivery_job(self, order_id):
        delivered = delivery.deliver_order(order_id)
        assert delivered == (self.status[order_id] == Order.PAID)
        if delivered:
            self.status[order_id] = Order.DELIVERED
            event("delivery job delivered a waiting order")

    # -- what must always hold ----------------------------------------------------------

    def snapshot(self):
        db.session.commit()
        db.session.expire_all()
        return (
            sorted(db.session.execute(select(Order.id, Order.status, Order.paid_at, Order.delivered_at)).all()),
            sorted(db.session.execute(select(CardKey.id, CardKey.status, CardKey.order_id)).all()),
            db.session.scalar(select(func.count()).select_from(PaymentNotice)),
            db.session.scalar(select(func.count()).select_from(LedgerEntry)),
            db.session.scalar(select(func.count()).select_from(OutboxEmail)),
        )

    @invariant()
    def database_matches_the_model(self):
        if self.product_id is None:
            return
        db.session.commit()
        db.session.expire_all()
        orders = {o.id: o for o in db.session.execute(select(Order)).scalars()}
        assert {i: o.status for i, o in orders.items()} == self.status  # no phantom order, none lost
        for o in orders.values():
            assert (o.paid_at is not None) == (o.status in PAID_STATES), o.status
            assert (o.delivered_at is not None) == (o.status == Order.DELIVERED), o.status
        assert self.paid <= {i for i, s in self.status.items() if s in PAID_STATES}  # a payment is never lost

    @invariant()
    def every_key_is_accounted_for_exactly_once(self):
        if self.product_id is None:
            return
        keys = db.session.execute(select(CardKey).where(CardKey.product_id == self.product_id)).scalars().all()
        assert len(keys) == 2 * KEYS
        for variant, variant_id in enumerate(self.variant_ids):
            by_status = Counter(k.status for k in keys if k.variant_id == variant_id)
            assert set(by_status) <= {CardKey.AVAILABLE, CardKey.RESERVED, CardKey.SOLD}
            assert by_status[CardKey.AVAILABLE] + by_status[CardKey.RESERVED] + by_status[CardKey.SOLD] == KEYS
            assert by_status[CardKey.AVAILABLE] == self.available(variant)
        for k in keys:
            # A key only ever goes to an order of its own variant.
            assert k.order_id is None or self.variant_ids[self.variant[k.order_id]] == k.variant_id
            assert (k.order_id is None) == (k.status == CardKey.AVAILABLE), (k.id, k.status, k.order_id)
            assert (k.sold_at is not None) == (k.status == CardKey.SOLD)
        # Each order holds exactly its quantity of keys while it is owed them, none otherwise.
        held = Counter((k.order_id, k.status) for k in keys if k.order_id is not None)
        expected = Counter({(o, HOLDS_KEYS[s]): self.quantity[o] for o, s in self.status.items() if s in HOLDS_KEYS})
        assert held == expected
        texts = [vault().decrypt(k.ciphertext) for k in keys if k.status == CardKey.SOLD]
        assert len(texts) == len(set(texts))

    @invariant()
    def payments_and_money_are_recorded_once(self):
        if self.product_id is None:
            return
        dupes = db.session.execute(
            select(PaymentNotice.gateway, PaymentNotice.trade_no)
            .group_by(PaymentNotice.gateway, PaymentNotice.trade_no)
            .having(func.count() > 1)
        ).all()
        assert dupes == []
        noticed = set(db.session.execute(select(PaymentNotice.order_id)).scalars())
        assert noticed == self.paid
        delivered = {o for o, s in self.status.items() if s == Order.DELIVERED}
        ledger = Counter(db.session.execute(select(LedgerEntry.order_id, LedgerEntry.kind)).all())
        assert ledger == Counter({(o, kind): 1 for o in delivered for kind in (LedgerEntry.SALE, LedgerEntry.FEE)})
        sales = dict(
            db.session.execute(
                select(LedgerEntry.order_id, LedgerEntry.amount).where(LedgerEntry.kind == LedgerEntry.SALE)
            ).all()
        )
        assert sales == {o: PRICES[self.variant[o]] * self.quantity[o] for o in delivered}
        emailed = db.session.execute(select(Order.id).join(OutboxEmail, OutboxEmail.order_id == Order.id)).scalars()
        assert sorted(emailed) == sorted(o for o in delivered if db.session.get(Order, o).email is not None)

    # -- the end ------------------------------------------------------------------------

    def teardown(self):
        try:
            db.session.remove()  # every step committed its own work
        finally:
            self.ctx.pop()
        if self.product_id is None:
            return
        with self.final_app.app_context(), self.final_app.test_request_context():
            reconcile.reconcile()
            db.session.commit()
            statuses = dict(db.session.execute(select(Order.id, Order.status)).all())
            db.session.remove()
        unsettled = {o: statuses[o] for o in self.paid if statuses[o] not in (Order.DELIVERED, Order.PAID_UNFULFILLED)}
        assert unsettled == {}, "paid orders neither delivered nor flagged for refund after reconcile"
        assert Order.PAID not in statuses.values()


@pytest.mark.parametrize("jobs", ["sync", "redis-down"])
def test_random_purchase_histories_never_oversell_or_lose_a_payment(make_app, jobs):
    final_app = make_app()
    step_app = final_app if jobs == "sync" else make_app(JOBS_MODE="rq", REDIS_URL=UNREACHABLE_REDIS)
    machine = type(
        "PurchaseMachine_" + jobs.replace("-", "_"),
        (PurchaseMachine,),
        {"step_app": step_app, "final_app": final_app, "inline_delivery": jobs == "sync"},
    )
    run_state_machine_as_test(
        machine,
        settings=settings(
            max_examples=histories(MAX_EXAMPLES),
            stateful_step_count=15,
            deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
        ),
    )
