"""passkeys: the WebAuthn credentials of back-office users

A passkey is a second factor, and signs in without a password (faka/accounts/passkeys.py).

Revision ID: f3b8a9c1d2e7
Revises: e7a1c2d3f4b5
Create Date: 2026-12-21 10:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "f3b8a9c1d2e7"
down_revision = "e7a1c2d3f4b5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "passkeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("credential_id", sa.String(length=1400), nullable=False),
        sa.Column("public_key", sa.LargeBinary(), nullable=False),
        sa.Column("sign_count", sa.BigInteger(), nullable=False),
        sa.Column("user_handle", sa.String(length=100), nullable=False),
        sa.Column("transports", sa.String(length=200), nullable=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("last_used_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], name=op.f("fk_passkeys_user_id_users")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_passkeys")),
        sa.UniqueConstraint("credential_id", name=op.f("uq_passkeys_credential_id")),
    )
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_passkeys_user_id"), ["user_id"], unique=False)


def downgrade():
    with op.batch_alter_table("passkeys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_passkeys_user_id"))

    op.drop_table("passkeys")
