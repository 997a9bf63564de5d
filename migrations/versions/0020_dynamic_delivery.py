"""dynamic delivery: products whose keys come from the merchant's own server

A "from my server" product (delivery type `remote`) has the address of the merchant's
server and the secret faka signs its requests with; each request for an order's keys is
recorded in remote_delivery_attempts, and an order whose server failed every attempt is
marked manual_fallback_at and waits for the merchant (faka/orders/remote_delivery.py).

Revision ID: 19c1b2c3d4e5
Revises: 19b1b2c3d4e5
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "19c1b2c3d4e5"
down_revision = "19b1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("remote_url", sa.String(length=500), nullable=True))
        batch_op.add_column(sa.Column("remote_secret_ciphertext", sa.Text(), nullable=True))

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("manual_fallback_at", faka.core.types.UTCDateTime(timezone=True), nullable=True))

    op.create_table(
        "remote_delivery_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("started_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("error", sa.String(length=300), nullable=True),
        sa.Column("keys_received", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_remote_delivery_attempts_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_remote_delivery_attempts")),
        sa.UniqueConstraint("order_id", "number", name=op.f("uq_remote_delivery_attempts_order_id_number")),
    )


def downgrade():
    op.drop_table("remote_delivery_attempts")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("manual_fallback_at")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("remote_secret_ciphertext")
        batch_op.drop_column("remote_url")
