"""push channels: merchants' and the operator's pushes to Telegram, Bark, WeCom, DingTalk, Feishu, ServerChan, PushPlus

Revision ID: 19a1b2c3d4e5
Revises: f3b8a9c1d2e7
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa  # noqa: F401
from alembic import op  # noqa: F401

revision = "19a1b2c3d4e5"
down_revision = "f3b8a9c1d2e7"
branch_labels = None
depends_on = None


def upgrade():
    pass


def downgrade():
    pass
