"""checkout_fields and order_answers: what a product asks the buyer, and the answers
(encrypted); products.require_email

Revision ID: d04b8ec4c8df
Revises: 5e0b2d9c41a7
Create Date: 2026-12-06 23:15:57
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "d04b8ec4c8df"
down_revision = "5e0b2d9c41a7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "checkout_fields",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=False),
        sa.Column("label_en", sa.String(length=40), nullable=True),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("required", sa.Boolean(), nullable=False),
        sa.Column("choices", sa.Text(), nullable=True),
        sa.Column("pattern", sa.String(length=100), nullable=True),
        sa.Column("pattern_message", sa.String(length=100), nullable=True),
        sa.Column("pattern_message_en", sa.String(length=100), nullable=True),
        sa.Column("help_text", sa.String(length=200), nullable=True),
        sa.Column("help_text_en", sa.String(length=200), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_checkout_fields_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkout_fields")),
        sa.UniqueConstraint("key", name=op.f("uq_checkout_fields_key")),
    )
    with op.batch_alter_table("checkout_fields", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkout_fields_product_id"), ["product_id"], unique=False)

    op.create_table(
        "order_answers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("field_key", sa.String(length=16), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("label", sa.String(length=40), nullable=False),
        sa.Column("label_en", sa.String(length=40), nullable=True),
        sa.Column("value_ciphertext", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_order_answers_order_id_orders")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_order_answers")),
    )
    with op.batch_alter_table("order_answers", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_order_answers_order_id"), ["order_id"], unique=False)

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("require_email", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("require_email")

    with op.batch_alter_table("order_answers", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_order_answers_order_id"))

    op.drop_table("order_answers")
    with op.batch_alter_table("checkout_fields", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkout_fields_product_id"))

    op.drop_table("checkout_fields")
