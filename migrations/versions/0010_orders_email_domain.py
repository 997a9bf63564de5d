"""orders.email_domain, indexed with created_at, for the email-domain velocity rule

Revision ID: 5b0e7c2d9a41
Revises: 3841f7fdfbd3
Create Date: 2026-11-26 11:00:00
"""

import sqlalchemy as sa
from alembic import op

revision = "5b0e7c2d9a41"
down_revision = "3841f7fdfbd3"
branch_labels = None
depends_on = None


def upgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_domain", sa.String(length=254), nullable=True))
        batch_op.create_index("ix_orders_domain_created", ["email_domain", "created_at"], unique=False)
    if op.get_bind().dialect.name == "postgresql":
        domain = "lower(substring(email from '@([^@]*)$'))"
    else:
        # The part after the last "@" without regular expressions: rtrim strips every
        # trailing character that is not an "@", leaving the local part and its "@".
        domain = "lower(replace(email, rtrim(email, replace(email, '@', '')), ''))"
    # As faka.orders.models.email_domain has it: after the last "@", lower-cased.
    op.execute(f"UPDATE orders SET email_domain = NULLIF({domain}, '') WHERE email IS NOT NULL")


def downgrade():
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_domain_created")
        batch_op.drop_column("email_domain")
