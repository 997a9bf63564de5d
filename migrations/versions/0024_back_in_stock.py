"""back-in-stock requests

A buyer leaves an email on a sold-out variant, confirms it from an email, and is told once
when keys are imported (faka/messaging/restock.py).

Revision ID: 20c1b2c3d4e5
Revises: 20b1b2c3d4e5
Create Date: 2026-12-07 18:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "20c1b2c3d4e5"
down_revision = "20b1b2c3d4e5"
branch_labels = None
depends_on = None

LIVE = "notified_at IS NULL AND cancelled_at IS NULL"


def upgrade():
    op.create_table(
        "restock_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("email", sa.String(length=254), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("emailed_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("confirmed_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("notified_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("cancelled_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_restock_requests_product_id_products")),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["product_variants.id"], name=op.f("fk_restock_requests_variant_id_product_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_restock_requests")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_restock_requests_token_hash")),
    )
    with op.batch_alter_table("restock_requests", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_restock_requests_product_id"), ["product_id"], unique=False)
        batch_op.create_index("ix_restock_requests_email", ["email"], unique=False)
        batch_op.create_index(
            "uq_restock_requests_live_variant_email",
            ["variant_id", "email"],
            unique=True,
            sqlite_where=sa.text(LIVE),
            postgresql_where=sa.text(LIVE),
        )


def downgrade():
    with op.batch_alter_table("restock_requests", schema=None) as batch_op:
        batch_op.drop_index("uq_restock_requests_live_variant_email")
        batch_op.drop_index("ix_restock_requests_email")
        batch_op.drop_index(batch_op.f("ix_restock_requests_product_id"))
    op.drop_table("restock_requests")
