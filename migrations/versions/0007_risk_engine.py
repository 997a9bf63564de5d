"""risk engine, blacklist, security events, captcha

Revision ID: c6474067c78d
Revises: abf27c4bd607
Create Date: 2026-11-26 07:05:32.603507

"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

# revision identifiers, used by Alembic.
revision = "c6474067c78d"
down_revision = "abf27c4bd607"
branch_labels = None
depends_on = None


def upgrade():

    op.create_table(
        "security_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("device_hash", sa.String(length=64), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_security_events")),
    )
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.create_index("ix_security_events_created", ["created_at"], unique=False)
        batch_op.create_index("ix_security_events_kind_ip_created", ["kind", "ip", "created_at"], unique=False)

    op.create_table(
        "spent_challenges",
        sa.Column("signature", sa.String(length=128), nullable=False),
        sa.Column("expires_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("signature", name=op.f("pk_spent_challenges")),
    )
    with op.batch_alter_table("spent_challenges", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_spent_challenges_expires_at"), ["expires_at"], unique=False)

    op.create_table(
        "blacklist",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("kind", sa.String(length=8), nullable=False),
        sa.Column("value", sa.String(length=254), nullable=False),
        sa.Column("reason", sa.String(length=500), nullable=False),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("created_by", sa.Integer(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("expires_at", faka.core.types.UTCDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["created_by"], ["users.id"], name=op.f("fk_blacklist_created_by_users")),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_blacklist_merchant_id_merchants")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_blacklist")),
    )
    with op.batch_alter_table("blacklist", schema=None) as batch_op:
        batch_op.create_index("ix_blacklist_kind_value", ["kind", "value"], unique=False)
        batch_op.create_index(batch_op.f("ix_blacklist_merchant_id"), ["merchant_id"], unique=False)

    op.create_table(
        "risk_events",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checkpoint", sa.String(length=16), nullable=False),
        sa.Column("action", sa.String(length=12), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("captcha_solved", sa.Boolean(), nullable=False),
        sa.Column("ip", sa.String(length=45), nullable=True),
        sa.Column("device_hash", sa.String(length=64), nullable=True),
        sa.Column("email", sa.String(length=254), nullable=True),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("merchant_id", sa.Integer(), nullable=True),
        sa.Column("product_id", sa.Integer(), nullable=True),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["merchant_id"], ["merchants.id"], name=op.f("fk_risk_events_merchant_id_merchants")),
        sa.ForeignKeyConstraint(["order_id"], ["orders.id"], name=op.f("fk_risk_events_order_id_orders")),
        sa.ForeignKeyConstraint(["product_id"], ["products.id"], name=op.f("fk_risk_events_product_id_products")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_events")),
    )
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.create_index("ix_risk_events_created", ["created_at"], unique=False)
        batch_op.create_index("ix_risk_events_merchant_created", ["merchant_id", "created_at"], unique=False)
        batch_op.create_index(batch_op.f("ix_risk_events_order_id"), ["order_id"], unique=False)

    op.create_table(
        "risk_hits",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("event_id", sa.Integer(), nullable=False),
        sa.Column("rule", sa.String(length=32), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("detail", sa.String(length=200), nullable=False),
        sa.Column("created_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["event_id"], ["risk_events.id"], name=op.f("fk_risk_hits_event_id_risk_events"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_risk_hits")),
    )
    with op.batch_alter_table("risk_hits", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_risk_hits_event_id"), ["event_id"], unique=False)
        batch_op.create_index("ix_risk_hits_rule_created", ["rule", "created_at"], unique=False)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk_flags", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("held_at", faka.core.types.UTCDateTime(timezone=True), nullable=True))
        batch_op.create_index("ix_orders_created", ["created_at"], unique=False)
        batch_op.create_index("ix_orders_ip_created", ["client_ip", "created_at"], unique=False)

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.add_column(sa.Column("risk_captcha_at", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("risk_hold_at", sa.Integer(), nullable=True))


def downgrade():

    with op.batch_alter_table("products", schema=None) as batch_op:
        batch_op.drop_column("risk_hold_at")
        batch_op.drop_column("risk_captcha_at")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index("ix_orders_ip_created")
        batch_op.drop_index("ix_orders_created")
        batch_op.drop_column("held_at")
        batch_op.drop_column("risk_flags")

    with op.batch_alter_table("risk_hits", schema=None) as batch_op:
        batch_op.drop_index("ix_risk_hits_rule_created")
        batch_op.drop_index(batch_op.f("ix_risk_hits_event_id"))

    op.drop_table("risk_hits")
    with op.batch_alter_table("risk_events", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_risk_events_order_id"))
        batch_op.drop_index("ix_risk_events_merchant_created")
        batch_op.drop_index("ix_risk_events_created")

    op.drop_table("risk_events")
    with op.batch_alter_table("blacklist", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_blacklist_merchant_id"))
        batch_op.drop_index("ix_blacklist_kind_value")

    op.drop_table("blacklist")
    with op.batch_alter_table("spent_challenges", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_spent_challenges_expires_at"))

    op.drop_table("spent_challenges")
    with op.batch_alter_table("security_events", schema=None) as batch_op:
        batch_op.drop_index("ix_security_events_kind_ip_created")
        batch_op.drop_index("ix_security_events_created")

    op.drop_table("security_events")
