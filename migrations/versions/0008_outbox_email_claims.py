"""outbox email claims

Revision ID: daf49a1b3dcd
Revises: c6474067c78d
Create Date: 2026-11-26 08:39:08.057595

"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

# revision identifiers, used by Alembic.
revision = "daf49a1b3dcd"
down_revision = "c6474067c78d"
branch_labels = None
depends_on = None


def upgrade():

    with op.batch_alter_table("outbox_emails", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claimed_until", faka.core.types.UTCDateTime(timezone=True), nullable=True))


def downgrade():

    with op.batch_alter_table("outbox_emails", schema=None) as batch_op:
        batch_op.drop_column("claimed_until")
