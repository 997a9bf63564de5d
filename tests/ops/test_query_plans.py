"""The statements the big shop made slow use the indexes meant for them (PostgreSQL).

Each test runs the real function, catches the statement it sends, and reads PostgreSQL's
plan for it. The test data is tiny, so sequential scans are switched off for the plan:
what is asserted is that the intended index can serve the statement, by name.
"""

import json
from contextlib import contextmanager

import pytest
from sqlalchemy import event, text

from faka.core import clock
from faka.extensions import db


@pytest.fixture(autouse=True)
def _postgresql_only(app):
    if db.engine.dialect.name != "postgresql":
        pytest.skip("query plans are PostgreSQL's")


@contextmanager
def caught_statements():
    """The (statement, parameters) pairs sent to the database inside the block."""
    sent = []

    def catch(_conn, _cursor, statement, parameters, _context, _executemany):
        sent.append((statement, parameters))

    event.listen(db.engine, "before_cursor_execute", catch)
    try:
        yield sent
    finally:
        event.remove(db.engine, "before_cursor_execute", catch)


def plan_indexes(statement: str, parameters) -> set[str]:
    """The names of the indexes in PostgreSQL's plan for the statement."""
    connection = db.session.connection()
    connection.execute(text("SET LOCAL enable_seqscan = off"))
    (plan,) = connection.exec_driver_sql("EXPLAIN (FORMAT JSON) " + statement, parameters).scalar_one()
    db.session.rollback()
    found = set()

    def walk(node):
        if "Index Name" in node:
            found.add(node["Index Name"])
        for child in node.get("Plans", []):
            walk(child)

    walk(plan["Plan"] if isinstance(plan, dict) else json.loads(plan)["Plan"])
    return found


def the_statement(sent, table: str) -> tuple[str, object]:
    matching = [(s, p) for s, p in sent if s.lstrip().upper().startswith("SELECT") and f"FROM {table}" in s]
    assert matching, f"no SELECT from {table} was sent"
    return matching[0]


# -- the reconciler (perf-buyer) ------------------------------------------------------------


def test_payments_in_flight_finds_recently_cancelled_orders_by_index(app):
    from faka.payments import notify

    with caught_statements() as sent:
        notify.payments_in_flight(clock.now())
    assert "ix_orders_status_cancelled" in plan_indexes(*the_statement(sent, "orders"))


def test_webhook_deliveries_due_again_are_read_from_the_pending_index(app):
    from faka.messaging import webhooks

    with caught_statements() as sent:
        webhooks.due_delivery_ids(clock.now())
    assert "ix_webhook_deliveries_pending" in plan_indexes(*the_statement(sent, "webhook_deliveries"))


# -- the merchant's back office (perf-merchant) ----------------------------------------------


def statement_with(sent, *parts: str) -> tuple[str, object]:
    """The first statement sent that holds every one of `parts`."""
    matching = [(s, p) for s, p in sent if all(part in s for part in parts)]
    assert matching, f"no statement with {parts} was sent"
    return matching[0]


@pytest.fixture
def shop_with_orders(product, make_product, place):
    """The product's merchant with 3,000 orders of every kind (copies of one placed order),
    analysed, so the planner weighs real numbers: most orders delivered or expired, a few
    flagged, one in ten of this product, the rest of another."""
    from faka.orders.models import Order

    first = place(product)
    other = make_product(title="Another product")
    overrides = {
        "product_id": "CASE WHEN g % 10 = 0 THEN o.product_id ELSE :other END",
        "number": "left(md5('n' || g), 24)",
        "token": "md5('t' || g)",
        "status": "(ARRAY['delivered', 'expired', 'delivered', 'paid', 'refunded'])[1 + g % 5]",
        "created_at": "o.created_at - g * interval '1 hour'",
        "paid_at": "CASE WHEN g % 5 <> 1 THEN o.created_at - g * interval '1 hour' END",
        "risk_flags": "CASE WHEN g % 100 = 0 THEN 'velocity' END",
    }
    columns = [c.name for c in Order.__table__.columns if c.name != "id"]
    values = ", ".join(overrides.get(c, f"o.{c}") for c in columns)
    db.session.execute(
        text(
            f"INSERT INTO orders ({', '.join(columns)}) SELECT {values} "
            "FROM orders o, generate_series(1, 3000) g WHERE o.id = :id"
        ),
        {"id": first.id, "other": other.id},
    )
    db.session.commit()
    with db.engine.connect() as connection:
        connection.execute(text("ANALYZE orders"))
    return product.merchant_id


@pytest.mark.parametrize(
    ("order_filter", "index"),
    [
        ({"status": "delivered"}, "ix_orders_merchant_status_created"),
        ({"flagged": True}, "ix_orders_merchant_flagged_created"),
        ({"product_slug": "any-slug"}, "ix_orders_merchant_product_created"),
    ],
)
def test_merchant_order_list_pages_are_read_in_index_order(app, shop_with_orders, order_filter, index):
    from faka.orders import merchant_orders

    if "product_slug" in order_filter:
        order_filter = {"product_slug": db.session.scalar(text("SELECT slug FROM products ORDER BY id LIMIT 1"))}
    with caught_statements() as sent:
        merchant_orders.search(shop_with_orders, merchant_orders.OrderFilter(**order_filter), page=40)
    page = statement_with(sent, "SELECT orders.id \nFROM orders", "ORDER BY orders.created_at DESC")
    assert index in plan_indexes(*page)


def test_merchant_ledger_page_is_read_in_index_order(app, merchant):
    from faka.ledger import balances

    with caught_statements() as sent:
        balances.ledger(merchant.id, page=40)
    page = statement_with(sent, "SELECT ledger_entries.id \nFROM ledger_entries", "ORDER BY")
    assert "ix_ledger_entries_merchant_created" in plan_indexes(*page)


def test_merchant_dashboard_reads_orders_paid_in_the_window_from_the_index(app, shop_with_orders):
    from faka.platform import analytics

    with caught_statements() as sent:
        analytics.dashboard(shop_with_orders)
    assert "ix_orders_merchant_paid" in plan_indexes(*statement_with(sent, "orders.paid_at >=", "GROUP BY"))


# -- the operator's back office (perf-operator) ------------------------------------------------


def test_audit_csv_reads_the_log_in_the_order_of_its_index(app):
    from faka.platform import audit

    with caught_statements() as sent:
        list(audit.export_csv())
    assert "ix_audit_events_created_id" in plan_indexes(*the_statement(sent, "audit_events"))


def test_books_refresh_reads_only_the_rows_past_its_marks_by_primary_key(app):
    from faka.ledger import settlement

    settlement.refresh_books_check()  # the first check: everything, and the marks
    with caught_statements() as sent:
        settlement.refresh_books_check()
    for table in ("ledger_entries", "payment_notices", "refunds"):
        new_rows = [(s, p) for s, p in sent if s.lstrip().startswith(f"SELECT {table}.order_id")]
        assert new_rows, f"the refresh did not look for new {table}"
        assert f"pk_{table}" in plan_indexes(*new_rows[0])


def test_operator_dashboard_reads_its_30_days_from_the_indexes_meant_for_them(app):
    from faka.growth import programmes
    from faka.platform.stats import platform_stats

    with caught_statements() as sent:
        platform_stats()
        programmes.programme_figures()
    assert "ix_orders_paid_figures" in plan_indexes(*statement_with(sent, "orders.paid_at >=", "GROUP BY"))
    assert "ix_orders_delivered_merchant" in plan_indexes(*statement_with(sent, "DISTINCT orders.merchant_id"))
    assert "ix_ledger_entries_kind_created" in plan_indexes(*statement_with(sent, "FROM ledger_entries", "GROUP BY"))


def test_platform_ledger_lists_fee_entries_in_the_order_of_their_index(app):
    from faka.ledger import settlement

    with app.test_request_context("/"), caught_statements() as sent:
        settlement.platform_ledger()
    listed = statement_with(sent, "FROM ledger_entries", "ORDER BY ledger_entries.created_at DESC")
    assert "ix_ledger_entries_fees_created" in plan_indexes(*listed)
