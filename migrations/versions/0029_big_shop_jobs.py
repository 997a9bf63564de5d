"""big shop, jobs: indexes for the reconciler's reads

Revision ID: 2129d1e2f3a4
Revises: 2128c1d2e3f4
Create Date: 2026-12-08 01:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

revision = "2129d1e2f3a4"
down_revision = "2128c1d2e3f4"
branch_labels = None
depends_on = None

PENDING = "status = 'pending'"


def upgrade():
    # payments_in_flight: orders cancelled within a day, not every cancelled order.
    op.create_index("ix_orders_status_cancelled", "orders", ["status", "cancelled_at"])
    # due_ids(WebhookDelivery): the few pending deliveries, not the whole history.
    op.create_index(
        "ix_webhook_deliveries_pending",
        "webhook_deliveries",
        ["id"],
        sqlite_where=sa.text(PENDING),
        postgresql_where=sa.text(PENDING),
    )


def downgrade():
    op.drop_index("ix_webhook_deliveries_pending", table_name="webhook_deliveries")
    op.drop_index("ix_orders_status_cancelled", table_name="orders")
