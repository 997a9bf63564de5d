"""API keys: the merchant REST API's keys, its call audit and idempotency records

The keys are stored as the SHA-256 of their token; the calls made with them are the API's
audit (faka/accounts/api_keys.py); an idempotency record keeps a POST's answer, encrypted,
for 24 hours.

Revision ID: 19b1b2c3d4e5
Revises: 19a1b2c3d4e5
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "19b1b2c3d4e5"
down_revision = "19a1b2c3d4e5"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "api_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("prefix", sa.String(length=20), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("scopes", sa.String(length=400), nullable=False),
        sa.Column("allowed_ips", sa.Text(), nullable=True),
        sa.Column("language", sa.String(length=8), nullable=False),
        sa.Column("expires_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("last_used_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("revoked_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_api_keys_created_by_users")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_api_keys_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("token_hash", name=op.f("uq_api_keys_token_hash")),
    )
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_keys_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "api_calls",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=False),
        sa.Column("method", sa.String(length=8), nullable=False),
        sa.Column("path", sa.String(length=200), nullable=False),
        sa.Column("status", sa.Integer(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["api_key_id"], ["api_keys.id"], name=op.f("fk_api_calls_api_key_id_api_keys")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_api_calls_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_calls")),
    )
    with op.batch_alter_table("api_calls", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_calls_api_key_id"), ["api_key_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_calls_created_at"), ["created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_api_calls_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "api_idempotency_keys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("api_key_id", sa.Integer(), nullable=False),
        sa.Column("key", sa.String(length=255), nullable=False),
        sa.Column("request_hash", sa.String(length=64), nullable=False),
        sa.Column("status", sa.Integer(), nullable=True),
        sa.Column("response_ciphertext", sa.Text(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["api_key_id"], ["api_keys.id"], name=op.f("fk_api_idempotency_keys_api_key_id_api_keys")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_idempotency_keys")),
        sa.UniqueConstraint("api_key_id", "key", name=op.f("uq_api_idempotency_keys_api_key_id_key")),
    )
    with op.batch_alter_table("api_idempotency_keys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_api_idempotency_keys_expires_at"), ["expires_at"], unique=False)


def downgrade():
    with op.batch_alter_table("api_idempotency_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_idempotency_keys_expires_at"))

    op.drop_table("api_idempotency_keys")
    with op.batch_alter_table("api_calls", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_calls_merchant_id"))
        batch_op.drop_index(batch_op.f("ix_api_calls_created_at"))
        batch_op.drop_index(batch_op.f("ix_api_calls_api_key_id"))

    op.drop_table("api_calls")
    with op.batch_alter_table("api_keys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_api_keys_merchant_id"))

    op.drop_table("api_keys")
