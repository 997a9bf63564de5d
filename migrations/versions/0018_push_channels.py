"""push channels: merchants' and the operator's pushes to Telegram, Bark, WeCom, DingTalk, Feishu, ServerChan, PushPlus

A channel's settings are encrypted JSON; push_messages is its delivery log
(faka/messaging/push.py).

Revision ID: 19a1b2c3d4e5
Revises: f3b8a9c1d2e7
Create Date: 2026-12-07 15:00:00
"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "19a1b2c3d4e5"
down_revision = "f3b8a9c1d2e7"
branch_labels = None
depends_on = None


def upgrade():
    op.create_table(
        "push_channels",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("name", sa.String(length=60), nullable=False),
        sa.Column("settings_ciphertext", sa.Text(), nullable=False),
        sa.Column("events", sa.Text(), nullable=False),
        sa.Column("locale", sa.String(length=8), nullable=False),
        sa.Column("paused_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("paused_reason", sa.String(length=12), nullable=True),
        sa.Column("consecutive_failures", sa.Integer(), nullable=False),
        sa.Column("last_sent_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_push_channels_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_channels")),
    )
    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_push_channels_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "push_messages",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("channel_id", sa.Integer(), nullable=False),
        sa.Column("event", sa.String(length=32), nullable=False),
        sa.Column("subject", sa.String(length=64), nullable=True),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("link", sa.String(length=500), nullable=True),
        sa.Column("status", sa.String(length=12), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("http_status", sa.Integer(), nullable=True),
        sa.Column("provider_code", sa.String(length=40), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("sent_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["channel_id"], ["push_channels.id"], name=op.f("fk_push_messages_channel_id_push_channels")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_push_messages")),
    )
    with op.batch_alter_table("push_messages", schema=None) as batch_op:
        batch_op.create_index("ix_push_messages_channel_created", ["channel_id", "created_at"], unique=False)
        batch_op.create_index("ix_push_messages_status", ["status"], unique=False)


def downgrade():
    with op.batch_alter_table("push_messages", schema=None) as batch_op:
        batch_op.drop_index("ix_push_messages_status")
        batch_op.drop_index("ix_push_messages_channel_created")

    op.drop_table("push_messages")
    with op.batch_alter_table("push_channels", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_push_channels_merchant_id"))

    op.drop_table("push_channels")
