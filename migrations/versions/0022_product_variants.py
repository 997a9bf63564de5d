"""product variants (规格): price, tiers, limits and key pool per variant

Every product becomes a single-variant product: its variant takes the product's price,
limits and low-stock threshold, its tier prices, and every key, key import and order of the
product. Products keep `price` (now the lowest variant price) and gain `price_max`.

Revision ID: 20a1b2c3d4e5
Revises: 19d1b2c3d4e5
Create Date: 2026-12-07 18:00:00
"""

import secrets

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "20a1b2c3d4e5"
down_revision = "19d1b2c3d4e5"
branch_labels = None
depends_on = None

VARIANT_OF_PRODUCT = "(SELECT v.id FROM product_variants v WHERE v.product_id = {table}.product_id)"


def upgrade():
    op.create_table(
        "product_variants",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=16), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=40), nullable=False),
        sa.Column("name_en", sa.String(length=40), nullable=True),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("min_per_order", sa.Integer(), nullable=False),
        sa.Column("max_per_order", sa.Integer(), nullable=False),
        sa.Column("low_stock_threshold", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("deleted_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_product_variants_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_product_variants")),
        sa.UniqueConstraint("key", name=op.f("uq_product_variants_key")),
    )
    op.create_index(op.f("ix_product_variants_product_id"), "product_variants", ["product_id"], unique=False)

    connection = op.get_bind()
    products = connection.execute(
        sa.text("SELECT id, price, min_per_order, max_per_order, low_stock_threshold, created_at FROM products")
    ).all()
    variants = sa.table(
        "product_variants",
        *(
            sa.column(name)
            for name in (
                "key",
                "product_id",
                "name",
                "price",
                "min_per_order",
                "max_per_order",
                "low_stock_threshold",
                "position",
                "created_at",
            )
        ),
    )
    if products:
        op.bulk_insert(
            variants,
            [
                {
                    "key": secrets.token_hex(8),
                    "product_id": p.id,
                    "name": "",
                    "price": p.price,
                    "min_per_order": p.min_per_order,
                    "max_per_order": p.max_per_order,
                    "low_stock_threshold": p.low_stock_threshold,
                    "position": 0,
                    "created_at": p.created_at,
                }
                for p in products
            ],
        )

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("price_max", sa.Integer(), nullable=True))
    op.execute("UPDATE products SET price_max = price")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.alter_column("price_max", existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("min_per_order")
        batch_op.drop_column("max_per_order")
        batch_op.drop_column("low_stock_threshold")

    # Tier prices, keys, key imports and orders move to their product's variant.
    for table in ("tier_prices", "card_keys", "key_imports", "orders"):
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("variant_id", sa.Integer(), nullable=True))
        op.execute(f"UPDATE {table} SET variant_id = {VARIANT_OF_PRODUCT.format(table=table)}")

    with op.batch_alter_table("tier_prices", schema=None) as batch_op:
        batch_op.drop_constraint("uq_tier_prices_product_id_min_quantity", type_="unique")
        batch_op.drop_constraint("fk_tier_prices_product_id_products", type_="foreignkey")
        batch_op.drop_column("product_id")
        batch_op.alter_column("variant_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_tier_prices_variant_id_product_variants"), "product_variants", ["variant_id"], ["id"]
        )
        batch_op.create_unique_constraint(
            batch_op.f("uq_tier_prices_variant_id_min_quantity"), ["variant_id", "min_quantity"]
        )

    with op.batch_alter_table("card_keys", schema=None) as batch_op:
        batch_op.alter_column("variant_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_card_keys_variant_id_product_variants"), "product_variants", ["variant_id"], ["id"]
        )
        batch_op.create_index("ix_card_keys_variant_status_id", ["variant_id", "status", "id"], unique=False)

    with op.batch_alter_table("key_imports", schema=None) as batch_op:
        batch_op.alter_column("variant_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_key_imports_variant_id_product_variants"), "product_variants", ["variant_id"], ["id"]
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("variant_name", sa.String(length=40), nullable=True))
        batch_op.alter_column("variant_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key(
            batch_op.f("fk_orders_variant_id_product_variants"), "product_variants", ["variant_id"], ["id"]
        )
        batch_op.create_index(batch_op.f("ix_orders_variant_id"), ["variant_id"], unique=False)


def downgrade():
    """Back to one price per product: the product's first variant gives its figures (a
    product the merchant split into several variants keeps only the first one's)."""
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_orders_variant_id"))
        batch_op.drop_constraint(batch_op.f("fk_orders_variant_id_product_variants"), type_="foreignkey")
        batch_op.drop_column("variant_name")
        batch_op.drop_column("variant_id")
    with op.batch_alter_table("key_imports", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_key_imports_variant_id_product_variants"), type_="foreignkey")
        batch_op.drop_column("variant_id")
    with op.batch_alter_table("card_keys", schema=None) as batch_op:
        batch_op.drop_index("ix_card_keys_variant_status_id")
        batch_op.drop_constraint(batch_op.f("fk_card_keys_variant_id_product_variants"), type_="foreignkey")
        batch_op.drop_column("variant_id")

    first = (
        "(SELECT v.{column} FROM product_variants v WHERE v.product_id = products.id "
        "ORDER BY v.deleted_at IS NOT NULL, v.position, v.id LIMIT 1)"
    )
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("min_per_order", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("max_per_order", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("low_stock_threshold", sa.Integer(), nullable=True))
    for column in ("min_per_order", "max_per_order", "low_stock_threshold", "price"):
        op.execute(f"UPDATE products SET {column} = {first.format(column=column)}")
    with op.batch_alter_table("products", schema=None) as batch_op:
        for column in ("min_per_order", "max_per_order", "low_stock_threshold"):
            batch_op.alter_column(column, existing_type=sa.Integer(), nullable=False)
        batch_op.drop_column("price_max")

    with op.batch_alter_table("tier_prices", schema=None) as batch_op:
        batch_op.add_column(sa.Column("product_id", sa.Integer(), nullable=True))
    op.execute(
        "UPDATE tier_prices SET product_id = (SELECT v.product_id FROM product_variants v WHERE v.id = variant_id)"
    )
    # Only the first variant's tiers belong to the product it becomes again.
    op.execute(
        "DELETE FROM tier_prices WHERE variant_id <> "
        "(SELECT v.id FROM product_variants v WHERE v.product_id = tier_prices.product_id "
        "ORDER BY v.deleted_at IS NOT NULL, v.position, v.id LIMIT 1)"
    )
    with op.batch_alter_table("tier_prices", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("uq_tier_prices_variant_id_min_quantity"), type_="unique")
        batch_op.drop_constraint(batch_op.f("fk_tier_prices_variant_id_product_variants"), type_="foreignkey")
        batch_op.drop_column("variant_id")
        batch_op.alter_column("product_id", existing_type=sa.Integer(), nullable=False)
        batch_op.create_foreign_key("fk_tier_prices_product_id_products", "products", ["product_id"], ["id"])
        batch_op.create_unique_constraint("uq_tier_prices_product_id_min_quantity", ["product_id", "min_quantity"])

    op.drop_index(op.f("ix_product_variants_product_id"), table_name="product_variants")
    op.drop_table("product_variants")
