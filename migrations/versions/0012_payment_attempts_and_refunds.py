"""payment_attempts, refunds of a second payment (refunds.payment_notice_id), orders.cancelled_at

An order may now have several refunds (its sale's, and one per extra payment), so
refunds.order_id is no longer unique.

Revision ID: a12f0c3e5b71
Revises: 8c3d5f1a7e20
Create Date: 2026-12-07 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "a12f0c3e5b71"
down_revision = "8c3d5f1a7e20"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "payment_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("gateway", sa.String(length=20), nullable=False),
        sa.Column("method", sa.String(length=20), nullable=False),
        sa.Column("reference", sa.String(length=128), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_payment_attempts_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_payment_attempts")),
    )
    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_payment_attempts_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("cancelled_at", faka.core.types.UTCDateTime(timezone=True), nullable=True))

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.add_column(sa.Column("payment_notice_id", sa.Integer(), nullable=True))
        batch_op.drop_constraint("uq_refunds_order_id", type_="unique")
        batch_op.create_index(batch_op.f("ix_refunds_order_id"), ["order_id"], unique=False)
        batch_op.create_unique_constraint(batch_op.f("uq_refunds_payment_notice_id"), ["payment_notice_id"])
        batch_op.create_foreign_key(
            batch_op.f("fk_refunds_payment_notice_id_payment_notices"), "payment_notices", ["payment_notice_id"], ["id"]
        )

    # Orders sent to pay before attempts were recorded: the one attempt the order knows of.
    op.execute(
        "INSERT INTO payment_attempts (order_id, gateway, method, reference, created_at) "
        "SELECT id, gateway, '', payment_ref, payment_started_at FROM orders "
        "WHERE payment_started_at IS NOT NULL ORDER BY id"
    )
    # Second payments recorded before they were refunded automatically: the operator
    # checks each (it may have been returned by hand already) and marks it paid.
    op.execute(
        "INSERT INTO refunds (order_id, merchant_id, payment_notice_id, amount, gateway, status, note, created_at) "
        "SELECT o.id, o.merchant_id, n.id, n.amount, n.gateway, 'manual', "
        "'duplicate payment ' || n.trade_no || ', recorded before such payments were refunded automatically', "
        "n.received_at FROM payment_notices n JOIN orders o ON o.id = n.order_id "
        "WHERE n.outcome = 'duplicate' ORDER BY n.id"
    )


def downgrade():
    # The previous schema has one refund per order and no cancelled status: extra
    # payments' refunds go (their payments stay in payment_notices), cancelled orders
    # read as expired unpaid, which is what they were to that version.
    op.execute("DELETE FROM refunds WHERE payment_notice_id IS NOT NULL")
    op.execute("UPDATE orders SET status = 'expired' WHERE status = 'cancelled'")

    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_refunds_payment_notice_id_payment_notices"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("uq_refunds_payment_notice_id"), type_="unique")
        batch_op.drop_index(batch_op.f("ix_refunds_order_id"))
        batch_op.create_unique_constraint("uq_refunds_order_id", ["order_id"])
        batch_op.drop_column("payment_notice_id")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("cancelled_at")

    with op.batch_alter_table("payment_attempts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_payment_attempts_order_id"))

    op.drop_table("payment_attempts")
