"""Many buyers at once: stock is never oversold and a payment is recorded exactly once.

Each thread works like a server worker: its own app context (so its own database
session and connection) and its own request context. Threads start together on a
Barrier so the checkouts and notifies really overlap.
"""

import secrets
from collections import Counter
from datetime import timedelta

import pytest
from sqlalchemy import func, select

from conftest import run_together, signed_notify
from faka.catalog import variants
from faka.catalog.models import ProductVariant
from faka.core.crypto import vault
from faka.core.errors import OutOfStock, StockHeld
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory import stock
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.ops import reconcile
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.models import PaymentNotice


def fresh():
    """End the test's own transaction so it sees what the threads committed."""
    db.session.commit()
    db.session.expire_all()


def key_counts(product_id) -> Counter:
    fresh()
    rows = db.session.execute(
        select(CardKey.status, func.count()).where(CardKey.product_id == product_id).group_by(CardKey.status)
    ).all()
    return Counter(dict(rows))


def keys_of(product_id) -> list[CardKey]:
    fresh()
    return (
        db.session.execute(select(CardKey).where(CardKey.product_id == product_id).order_by(CardKey.id)).scalars().all()
    )


def test_fifty_racing_checkouts_sell_exactly_five_distinct_keys(app, make_product):
    product = make_product(keys=5, max_per_order=1)
    slug, product_id = product.slug, product.id
    fresh()

    def buy(i):
        try:
            return checkout.place_order(slug, 1, f"b{i}@example.com", "pw-1234").id
        except OutOfStock:
            return "out-of-stock"

    results, errors = run_together(app, 50, buy)

    assert errors == []
    order_ids = [r for r in results if isinstance(r, int)]
    assert results.count("out-of-stock") == 45
    assert len(order_ids) == 5 and len(set(order_ids)) == 5

    fresh()
    orders = db.session.execute(select(Order).where(Order.product_id == product_id)).scalars().all()
    assert sorted(o.id for o in orders) == sorted(order_ids)  # no order without keys was left behind
    assert all(o.status == Order.PENDING and o.quantity == 1 for o in orders)
    assert len({o.email for o in orders}) == 5

    keys = keys_of(product_id)
    assert len(keys) == 5
    assert all(k.status == CardKey.RESERVED for k in keys)
    reserved_by = Counter(k.order_id for k in keys)
    assert sorted(reserved_by) == sorted(order_ids)  # each order holds its own key...
    assert set(reserved_by.values()) == {1}  # ...and no key was handed to two orders
    counts = key_counts(product_id)
    assert counts[CardKey.AVAILABLE] == 0
    assert all(n >= 0 for n in counts.values()) and sum(counts.values()) == 5

    # Now the five buyers pay at the same moment, through the real notify route.
    notifies = [signed_notify(o) for o in sorted(orders, key=lambda o: o.id)]
    fresh()

    def pay(i):
        response = app.test_client().post("/pay/sandbox/notify", data=notifies[i])
        return response.status_code, response.text

    responses, errors = run_together(app, 5, pay)

    assert errors == []
    assert responses == [(200, "success")] * 5
    keys = keys_of(product_id)
    assert [k.status for k in keys] == [CardKey.SOLD] * 5
    assert sorted(k.order_id for k in keys) == sorted(order_ids)
    assert len({vault().decrypt(k.ciphertext) for k in keys}) == 5
    fresh()
    statuses = db.session.execute(select(Order.status).where(Order.id.in_(order_ids))).scalars().all()
    assert statuses == [Order.DELIVERED] * 5
    assert db.session.scalar(select(func.count()).select_from(PaymentNotice)) == 5
    sales = db.session.execute(select(LedgerEntry.order_id).where(LedgerEntry.kind == LedgerEntry.SALE)).scalars().all()
    assert sorted(sales) == sorted(order_ids)


def test_twenty_concurrent_copies_of_one_notify_deliver_the_order_once(app, make_product, place):
    product = make_product(keys=6)
    order = place(product, 2)
    order_id, product_id = order.id, product.id
    fields = signed_notify(order)
    fresh()

    def replay(_i):
        response = app.test_client().post("/pay/sandbox/notify", data=fields)
        return response.status_code, response.text

    responses, errors = run_together(app, 20, replay)

    assert errors == []
    assert responses == [(200, "success")] * 20  # every copy gets the gateway's success body
    fresh()
    assert db.session.get(Order, order_id).status == Order.DELIVERED
    notices = db.session.execute(select(PaymentNotice)).scalars().all()
    assert [(n.order_id, n.trade_no) for n in notices] == [(order_id, fields["trade_no"])]
    ledger = db.session.execute(select(LedgerEntry.kind).where(LedgerEntry.order_id == order_id)).scalars().all()
    assert Counter(ledger) == Counter({LedgerEntry.SALE: 1, LedgerEntry.FEE: 1})
    counts = key_counts(product_id)
    assert counts == Counter({CardKey.SOLD: 2, CardKey.AVAILABLE: 4})
    sold = [k for k in keys_of(product_id) if k.status == CardKey.SOLD]
    assert {k.order_id for k in sold} == {order_id}


def test_late_payment_racing_checkouts_for_the_last_keys_never_oversells(app, make_product, place):
    """An expired order's keys went back on sale; its payment arrives while ten buyers
    race for those same keys. Either the late payment gets them all, or it is flagged
    for refund and the buyers get them; a key never goes to two orders."""
    product = make_product(keys=3, max_per_order=3)
    with pytest.MonkeyPatch.context() as patch:
        # Checkout lets unpaid orders hold only half of a product (faka/inventory/stock.py);
        # here one order held all three, which the late payment must then get back whole.
        patch.setattr(stock, "HOLD_SHARE", 1)
        late = place(product, 3)
    late_id, slug, product_id = late.id, product.slug, product.id
    late.expires_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    with app.test_request_context():
        assert reconcile.reconcile().expired == 1
    assert key_counts(product_id) == Counter({CardKey.AVAILABLE: 3})
    fields = signed_notify(db.session.get(Order, late_id))
    fresh()

    def act(i):
        if i == 0:
            response = app.test_client().post("/pay/sandbox/notify", data=fields)
            return response.status_code, response.text
        try:
            return checkout.place_order(slug, 1, f"racer{i}@example.com", None).id
        except OutOfStock:
            return "out-of-stock"

    results, errors = run_together(app, 11, act)

    assert errors == []
    assert results[0] == (200, "success")  # the gateway is answered either way
    bought = [r for r in results[1:] if isinstance(r, int)]
    fresh()
    status = db.session.get(Order, late_id).status
    keys = keys_of(product_id)
    holders = Counter(k.order_id for k in keys)
    if status == Order.DELIVERED:
        assert bought == []
        assert holders == Counter({late_id: 3}) and {k.status for k in keys} == {CardKey.SOLD}
    else:
        assert status == Order.PAID_UNFULFILLED  # money kept on record, refund due
        assert len(bought) == 3 and holders == Counter(dict.fromkeys(bought, 1))
        assert {k.status for k in keys} == {CardKey.RESERVED}
    notice = db.session.execute(select(PaymentNotice)).scalar_one()
    assert notice.order_id == late_id


def test_checkout_waits_for_keys_another_checkout_gives_back(app, make_product, place):
    """PostgreSQL: a checkout that finds the keys locked by another one that will fail
    waits for it instead of saying 'out of stock' too early (SQLite serialises writers,
    so the situation cannot arise there)."""
    import threading
    import time as _time

    from sqlalchemy import create_engine, text

    from faka.core.db import is_postgresql
    from faka.inventory.models import CardKey

    if not is_postgresql():
        pytest.skip("row locks are a PostgreSQL situation; SQLite serialises writers")
    product = make_product(keys=4, max_per_order=4)
    engine = create_engine(app.config["SQLALCHEMY_DATABASE_URI"])
    holder = engine.connect()
    transaction = holder.begin()
    holder.execute(
        text("SELECT id FROM card_keys WHERE product_id = :p ORDER BY id LIMIT 3 FOR UPDATE"), {"p": product.id}
    )
    releaser = threading.Timer(0.5, transaction.rollback)  # the other checkout gives up
    releaser.start()
    started = _time.monotonic()
    order = place(product, 2)
    releaser.join()
    holder.close()
    engine.dispose()
    assert _time.monotonic() - started >= 0.4  # it waited rather than refusing
    db.session.commit()
    reserved = db.session.execute(select(CardKey).where(CardKey.order_id == order.id)).scalars().all()
    assert len(reserved) == 2


# -- per variant: each variant of a product has its own key pool ----------------------------


def add_variant(product, name: str, price: int, keys: int, **fields) -> ProductVariant:
    """A second (third ...) variant of the product, with its own keys; the first one is
    named "A" so that the product offers a choice."""
    product.variants[0].name = product.variants[0].name or "A"
    variant = ProductVariant(
        key=variants.new_key(),
        name=name,
        price=price,
        position=len(product.variants),
        max_per_order=fields.pop("max_per_order", product.variants[0].max_per_order),
        **fields,
    )
    product.variants.append(variant)
    variants.sync_price_range(product)
    db.session.commit()
    if keys:
        import_keys(variant, "\n".join(f"{name}-{i:03d}-{secrets.token_hex(4)}" for i in range(keys)))
    return variant


def variant_keys(variant_id) -> list[CardKey]:
    fresh()
    return (
        db.session.execute(select(CardKey).where(CardKey.variant_id == variant_id).order_by(CardKey.id)).scalars().all()
    )


def test_racing_checkouts_on_two_variants_oversell_neither_and_never_cross_pools(app, make_product):
    product = make_product(keys=5, max_per_order=1)
    a = product.variants[0]
    b = add_variant(product, "B", 2500, keys=3)
    slug, a_id, b_id, a_key, b_key = product.slug, a.id, b.id, a.key, b.key
    fresh()

    def buy(i):
        key = a_key if i % 2 else b_key
        try:
            return checkout.place_order(slug, 1, f"v{i}@example.com", None, variant_key=key).id
        except OutOfStock:
            return "out-of-stock"

    results, errors = run_together(app, 40, buy)

    assert errors == []
    assert results.count("out-of-stock") == 40 - 5 - 3
    fresh()
    orders = db.session.execute(select(Order).where(Order.product_id == product.id)).scalars().all()
    by_variant = Counter(o.variant_id for o in orders)
    assert by_variant == Counter({a_id: 5, b_id: 3})
    assert {o.variant_name for o in orders if o.variant_id == b_id} == {"B"}
    assert {o.total for o in orders if o.variant_id == b_id} == {2500}
    variant_of = {o.id: o.variant_id for o in orders}
    for variant_id, count in ((a_id, 5), (b_id, 3)):
        keys = variant_keys(variant_id)
        assert [k.status for k in keys] == [CardKey.RESERVED] * count
        # Every key went to an order of its own variant, and to one order only.
        assert {variant_of[k.order_id] for k in keys} == {variant_id}
        assert set(Counter(k.order_id for k in keys).values()) == {1}


def test_a_run_on_one_variant_leaves_the_other_variants_keys_alone(app, make_product):
    product = make_product(keys=4, max_per_order=2)
    b = add_variant(product, "B", 2000, keys=6)
    slug, a_key, b_id = product.slug, product.variants[0].key, b.id
    before = [(k.id, k.status, k.order_id) for k in variant_keys(b_id)]

    def buy(i):
        try:
            return checkout.place_order(slug, 1, None, None, variant_key=a_key).id
        except OutOfStock:
            return "out-of-stock"

    results, errors = run_together(app, 20, buy)

    assert errors == []
    assert len([r for r in results if isinstance(r, int)]) == 4
    assert [(k.id, k.status, k.order_id) for k in variant_keys(b_id)] == before  # untouched
    assert stock.shared_key(b_id) is not None


def test_the_unpaid_hold_share_is_per_variant(app, make_product):
    """Unpaid orders of several keys may hold half of a variant's unsold keys (stock.HOLD_SHARE):
    racing orders of two keys get exactly two orders into each variant of eight keys, and
    the orders held on one variant never count against the other."""
    product = make_product(keys=8, max_per_order=2)
    b = add_variant(product, "B", 1500, keys=8)
    slug, a_id, b_id, a_key, b_key = product.slug, product.variants[0].id, b.id, product.variants[0].key, b.key
    fresh()

    def buy(i):
        try:
            return checkout.place_order(slug, 2, None, None, variant_key=a_key if i % 2 else b_key).id
        except StockHeld:
            return "held"

    results, errors = run_together(app, 16, buy)

    assert errors == []
    assert results.count("held") == 12
    fresh()
    held = Counter(db.session.execute(select(Order.variant_id).where(Order.status == Order.PENDING)).scalars().all())
    assert held == Counter({a_id: 2, b_id: 2})
    for variant_id in (a_id, b_id):
        assert Counter(k.status for k in variant_keys(variant_id)) == Counter(
            {CardKey.RESERVED: 4, CardKey.AVAILABLE: 4}
        )
    # One key is never refused by the share (faka/inventory/stock.py), on either variant.
    assert checkout.place_order(slug, 1, None, None, variant_key=b_key).variant_id == b_id
