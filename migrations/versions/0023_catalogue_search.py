"""catalogue search

Revision ID: 20b1b2c3d4e5
Revises: 20a1b2c3d4e5
Create Date: 2026-12-07 18:00:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "20b1b2c3d4e5"
down_revision = "20a1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
