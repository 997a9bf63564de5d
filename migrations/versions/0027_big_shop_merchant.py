"""big shop, merchant back office: indexes for the biggest merchant's pages

A merchant with 150,000 orders: its order list (newest first, by status, only the
flagged, by product), its CSV, its dashboard's orders paid per day and its ledger page
each read their rows in the order of an index, so LIMIT stops early and nothing is
sorted. The single-column indexes on merchant_id go: the new ones start with it.

Revision ID: 2127b1c2d3e4
Revises: 20e1b2c3d4e5
Create Date: 2026-12-08 01:20:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "2127b1c2d3e4"
down_revision = "20e1b2c3d4e5"
branch_labels = None
depends_on = None

FLAGGED = "risk_flags IS NOT NULL"


def upgrade():
    op.create_index("ix_orders_merchant_created", "orders", ["merchant_id", "created_at", "id"])
    op.create_index("ix_orders_merchant_status_created", "orders", ["merchant_id", "status", "created_at", "id"])
    op.create_index(
        "ix_orders_merchant_flagged_created",
        "orders",
        ["merchant_id", "created_at", "id"],
        sqlite_where=sa.text(FLAGGED),
        postgresql_where=sa.text(FLAGGED),
    )
    op.create_index("ix_orders_merchant_paid", "orders", ["merchant_id", "paid_at"])
    op.create_index("ix_orders_merchant_product_created", "orders", ["merchant_id", "product_id", "created_at", "id"])
    op.create_index("ix_ledger_entries_merchant_created", "ledger_entries", ["merchant_id", "created_at", "id"])
    # Both led by merchant_id, the new indexes serve what these did: one index less to write.
    op.drop_index("ix_orders_merchant_id", table_name="orders")
    op.drop_index("ix_ledger_entries_merchant_id", table_name="ledger_entries")


def downgrade():
    op.create_index("ix_ledger_entries_merchant_id", "ledger_entries", ["merchant_id"])
    op.create_index("ix_orders_merchant_id", "orders", ["merchant_id"])
    op.drop_index("ix_ledger_entries_merchant_created", table_name="ledger_entries")
    op.drop_index("ix_orders_merchant_product_created", table_name="orders")
    op.drop_index("ix_orders_merchant_paid", table_name="orders")
    op.drop_index(
        "ix_orders_merchant_flagged_created",
        table_name="orders",
        sqlite_where=sa.text(FLAGGED),
        postgresql_where=sa.text(FLAGGED),
    )
    op.drop_index("ix_orders_merchant_status_created", table_name="orders")
    op.drop_index("ix_orders_merchant_created", table_name="orders")
