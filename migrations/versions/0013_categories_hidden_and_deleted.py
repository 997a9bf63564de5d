"""categories.hidden and categories.deleted_at: the operator manages categories

Revision ID: c4a7e93d1f58
Revises: a12f0c3e5b71
Create Date: 2026-12-08 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "c4a7e93d1f58"
down_revision = "a12f0c3e5b71"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hidden", sa.Boolean(), nullable=False, server_default=sa.false()))
        batch_op.add_column(sa.Column("deleted_at", faka.core.types.UTCDateTime(timezone=True), nullable=True))


def downgrade():
    # The previous schema has no deleted categories: those still pointed at by
    # (soft-deleted) products come back, hidden ones are shown again.
    with op.batch_alter_table("categories", schema=None) as batch_op:
        batch_op.drop_column("deleted_at")
        batch_op.drop_column("hidden")
