"""product_images: a product's cover and gallery, stored under content-hashed names

Revision ID: 5e0b2d9c41a7
Revises: c4a7e93d1f58
Create Date: 2026-12-08 12:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "5e0b2d9c41a7"
down_revision = "c4a7e93d1f58"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "product_images",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("role", sa.String(length=8), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("thumb_webp", sa.String(length=72), nullable=False),
        sa.Column("thumb_jpeg", sa.String(length=72), nullable=False),
        sa.Column("detail_webp", sa.String(length=72), nullable=False),
        sa.Column("detail_jpeg", sa.String(length=72), nullable=False),
        sa.Column("thumb_width", sa.Integer(), nullable=False),
        sa.Column("thumb_height", sa.Integer(), nullable=False),
        sa.Column("detail_width", sa.Integer(), nullable=False),
        sa.Column("detail_height", sa.Integer(), nullable=False),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_product_images_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_images")),
    )
    with op.batch_alter_table("product_images", schema=None) as batch_op:
        batch_op.create_index(
            "ix_product_images_product_role_position", ["product_id", "role", "position"], unique=False
        )
        batch_op.create_index("ix_product_images_thumb_webp", ["thumb_webp"], unique=False)
        batch_op.create_index("ix_product_images_thumb_jpeg", ["thumb_jpeg"], unique=False)
        batch_op.create_index("ix_product_images_detail_webp", ["detail_webp"], unique=False)
        batch_op.create_index("ix_product_images_detail_jpeg", ["detail_jpeg"], unique=False)


def downgrade():
    with op.batch_alter_table("product_images", schema=None) as batch_op:
        batch_op.drop_index("ix_product_images_detail_jpeg")
        batch_op.drop_index("ix_product_images_detail_webp")
        batch_op.drop_index("ix_product_images_thumb_jpeg")
        batch_op.drop_index("ix_product_images_thumb_webp")
        batch_op.drop_index("ix_product_images_product_role_position")

    op.drop_table("product_images")
