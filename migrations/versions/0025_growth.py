"""growth: reseller sub-stores and affiliate links

Sub-stores, the variants merchants let them resell (with a floor price) and the ones they
picked; promoters, the products opted into the affiliate programme, and link clicks. An
order remembers its sub-store, the floor total, its promoter and the commission; ledger
kinds grow to 24 characters for the new shares (faka/ledger/shares.py).

Revision ID: 20d1b2c3d4e5
Revises: 20c1b2c3d4e5
Create Date: 2026-12-07 21:03:05.926269

"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "20d1b2c3d4e5"
down_revision = "20c1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "promoters",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fee_rate_bp", sa.Integer(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_promoters_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_promoters")),
        sa.UniqueConstraint("code", name=op.f("uq_promoters_code")),
        sa.UniqueConstraint("merchant_id", name=op.f("uq_promoters_merchant_id")),
    )
    op.create_table(
        "substores",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("code", sa.String(length=20), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("logo", sa.String(length=80), nullable=True),
        sa.Column("announcement", sa.Text(), nullable=False),
        sa.Column("contact", sa.String(length=200), nullable=False),
        sa.Column("domain", sa.String(length=253), nullable=True),
        sa.Column("pending_domain", sa.String(length=253), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("fee_rate_bp", sa.Integer(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("reviewed_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_substores_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_substores")),
        sa.UniqueConstraint("code", name=op.f("uq_substores_code")),
        sa.UniqueConstraint("domain", name=op.f("uq_substores_domain")),
        sa.UniqueConstraint("pending_domain", name=op.f("uq_substores_pending_domain")),
        sa.UniqueConstraint("merchant_id", name=op.f("uq_substores_merchant_id")),
    )
    op.create_table(
        "affiliate_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("commission_bp", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["merchant_id"], ["merchants.id"], name=op.f("fk_affiliate_terms_merchant_id_merchants")
        ),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_affiliate_terms_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_affiliate_terms")),
        sa.UniqueConstraint("product_id", name=op.f("uq_affiliate_terms_product_id")),
    )
    with op.batch_alter_table("affiliate_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_affiliate_terms_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "referral_clicks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("promoter_id", sa.Integer(), nullable=False),
        sa.Column("day", sa.String(length=10), nullable=False),
        sa.Column("visitor_hash", sa.String(length=64), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_referral_clicks_product_id_products")),
        sa.ForeignKeyConstraint(
            ["promoter_id"], ["promoters.id"], name=op.f("fk_referral_clicks_promoter_id_promoters")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_referral_clicks")),
        sa.UniqueConstraint(
            "promoter_id", "day", "visitor_hash", name=op.f("uq_referral_clicks_promoter_id_day_visitor_hash")
        ),
    )
    with op.batch_alter_table("referral_clicks", schema=None) as batch_op:
        batch_op.create_index("ix_referral_clicks_promoter_created", ["promoter_id", "created_at"], unique=False)

    op.create_table(
        "resale_terms",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("floor_price", sa.Integer(), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("updated_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_resale_terms_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_resale_terms_product_id_products")),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["product_variants.id"], name=op.f("fk_resale_terms_variant_id_product_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_resale_terms")),
        sa.UniqueConstraint("variant_id", name=op.f("uq_resale_terms_variant_id")),
    )
    with op.batch_alter_table("resale_terms", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_resale_terms_merchant_id"), ["merchant_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_resale_terms_product_id"), ["product_id"], unique=False)

    op.create_table(
        "substore_items",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("substore_id", sa.Integer(), nullable=False),
        sa.Column("variant_id", sa.Integer(), nullable=False),
        sa.Column("product_id", sa.Integer(), nullable=False),
        sa.Column("price", sa.Integer(), nullable=False),
        sa.Column("hidden", sa.Boolean(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_substore_items_product_id_products")),
        sa.ForeignKeyConstraint(
            ["substore_id"], ["substores.id"], name=op.f("fk_substore_items_substore_id_substores")
        ),
        sa.ForeignKeyConstraint(
            ["variant_id"], ["product_variants.id"], name=op.f("fk_substore_items_variant_id_product_variants")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_substore_items")),
        sa.UniqueConstraint("substore_id", "variant_id", name=op.f("uq_substore_items_substore_id_variant_id")),
    )
    with op.batch_alter_table("substore_items", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_substore_items_substore_id"), ["substore_id"], unique=False)

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.VARCHAR(length=20), type_=sa.String(length=24), existing_nullable=False
        )

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("substore_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("resale_base", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("promoter_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("commission_bp", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("commission", sa.Integer(), server_default="0", nullable=False))
        batch_op.create_index(batch_op.f("ix_orders_promoter_id"), ["promoter_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_orders_substore_id"), ["substore_id"], unique=False)
        batch_op.create_foreign_key(batch_op.f("fk_orders_promoter_id_promoters"), "promoters", ["promoter_id"], ["id"])
        batch_op.create_foreign_key(batch_op.f("fk_orders_substore_id_substores"), "substores", ["substore_id"], ["id"])


def downgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_orders_substore_id_substores"), type_="foreignkey")
        batch_op.drop_constraint(batch_op.f("fk_orders_promoter_id_promoters"), type_="foreignkey")
        batch_op.drop_index(batch_op.f("ix_orders_substore_id"))
        batch_op.drop_index(batch_op.f("ix_orders_promoter_id"))
        batch_op.drop_column("commission")
        batch_op.drop_column("commission_bp")
        batch_op.drop_column("promoter_id")
        batch_op.drop_column("resale_base")
        batch_op.drop_column("substore_id")

    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.alter_column(
            "kind", existing_type=sa.String(length=24), type_=sa.VARCHAR(length=20), existing_nullable=False
        )

    with op.batch_alter_table("substore_items", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_substore_items_substore_id"))

    op.drop_table("substore_items")
    with op.batch_alter_table("resale_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_resale_terms_product_id"))
        batch_op.drop_index(batch_op.f("ix_resale_terms_merchant_id"))

    op.drop_table("resale_terms")
    with op.batch_alter_table("referral_clicks", schema=None) as batch_op:
        batch_op.drop_index("ix_referral_clicks_promoter_created")

    op.drop_table("referral_clicks")
    with op.batch_alter_table("affiliate_terms", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_affiliate_terms_merchant_id"))

    op.drop_table("affiliate_terms")
    op.drop_table("substores")
    op.drop_table("promoters")
