"""key activations: license-key verification and per-product activation limits

The merchant's own software checks a sold key (faka/inventory/licenses.py): products get
license_checks and activation_limit, and key_activations holds the instances that took a
seat of a key.

Revision ID: 19d1b2c3d4e5
Revises: 19c1b2c3d4e5
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "19d1b2c3d4e5"
down_revision = "19c1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("license_checks", sa.Boolean(), server_default=sa.false(), nullable=False))
        batch_op.add_column(sa.Column("activation_limit", sa.Integer(), nullable=True))

    op.create_table(
        "key_activations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("card_key_id", sa.Integer(), nullable=False),
        sa.Column("instance_id", sa.String(length=128), nullable=False),
        sa.Column("instance_name", sa.String(length=100), nullable=True),
        sa.Column("activated_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("deactivated_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("deactivated_by", sa.String(length=10), nullable=True),
        sa.ForeignKeyConstraint(
            ["card_key_id"], ["card_keys.id"], name=op.f("fk_key_activations_card_key_id_card_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_key_activations")),
        sa.UniqueConstraint("card_key_id", "instance_id", name=op.f("uq_key_activations_card_key_id_instance_id")),
    )


def downgrade():
    op.drop_table("key_activations")
    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("activation_limit")
        batch_op.drop_column("license_checks")
