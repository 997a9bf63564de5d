"""PostgreSQL: NOTIFY faka_orders with the order's token when an order changes

Revision ID: 8c3d5f1a7e20
Revises: 5b0e7c2d9a41
Create Date: 2026-11-26 12:00:00
"""

from alembic import op

revision = "8c3d5f1a7e20"
down_revision = "5b0e7c2d9a41"
branch_labels = None
depends_on = None


def upgrade():
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has no notifications: its polls read the row every time
    op.execute("""
        CREATE OR REPLACE FUNCTION faka_order_changed() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            PERFORM pg_notify('faka_orders', NEW.token);
            RETURN NULL;
        END $$
    """)
    op.execute(
        "CREATE TRIGGER orders_changed AFTER UPDATE ON orders FOR EACH ROW EXECUTE FUNCTION faka_order_changed()"
    )


def downgrade():
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TRIGGER orders_changed ON orders")
    op.execute("DROP FUNCTION faka_order_changed()")
