"""big shop, operator back office: the stored result of the books check, the audit log's order, the
operator dashboard's figures

Revision ID: 2128c1d2e3f4
Revises: 2127b1c2d3e4
Create Date: 2026-12-08 01:40:00.000000

"""

import sqlalchemy as sa
from alembic import op

import faka.core.types

revision = "2128c1d2e3f4"
down_revision = "2127b1c2d3e4"
branch_labels = None
depends_on = None

_FEE_KINDS_SQL = (
    "kind IN ('fee', 'fee_return', 'resale_fee', 'resale_fee_return', 'commission_fee', 'commission_fee_return')"
)


def upgrade():
    op.create_table(
        "books_checks",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("checked_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("full_checked_at", faka.core.types.UTCDateTime(timezone=True), nullable=False),
        sa.Column("entry_mark", sa.BigInteger(), nullable=False),
        sa.Column("notice_mark", sa.BigInteger(), nullable=False),
        sa.Column("refund_mark", sa.BigInteger(), nullable=False),
        sa.Column("withdrawal_mark", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books_checks")),
    )
    op.create_table(
        "books_mismatches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("section", sa.Integer(), nullable=False),
        sa.Column("subject", sa.BigInteger(), nullable=False),
        sa.Column("sort_key", sa.BigInteger(), nullable=False),
        sa.Column("kind", sa.String(length=40), nullable=False),
        sa.Column("reference", sa.String(length=80), nullable=False),
        sa.Column("expected_amount", sa.BigInteger(), nullable=True),
        sa.Column("expected_text", sa.String(length=40), nullable=True),
        sa.Column("found_amount", sa.BigInteger(), nullable=True),
        sa.Column("found_text", sa.String(length=40), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_books_mismatches")),
    )
    op.create_index("ix_books_mismatches_section_subject", "books_mismatches", ["section", "subject"])
    # The log's order, newest or oldest first, ties by id; it serves every lookup the
    # single-column index on created_at served, which goes.
    op.create_index("ix_audit_events_created_id", "audit_events", ["created_at", "id"])
    op.drop_index("ix_audit_events_created_at", table_name="audit_events")
    op.create_index("ix_orders_paid_figures", "orders", ["paid_at", "status", "total", "refunded_amount"])
    op.create_index("ix_orders_delivered_merchant", "orders", ["delivered_at", "merchant_id"])
    op.create_index("ix_ledger_entries_kind_created", "ledger_entries", ["kind", "created_at", "amount"])
    op.create_index(
        "ix_ledger_entries_fees_created",
        "ledger_entries",
        ["created_at", "id"],
        sqlite_where=sa.text(_FEE_KINDS_SQL),
        postgresql_where=sa.text(_FEE_KINDS_SQL),
    )


def downgrade():
    op.drop_index("ix_ledger_entries_fees_created", table_name="ledger_entries")
    op.drop_index("ix_ledger_entries_kind_created", table_name="ledger_entries")
    op.drop_index("ix_orders_delivered_merchant", table_name="orders")
    op.drop_index("ix_orders_paid_figures", table_name="orders")
    op.create_index("ix_audit_events_created_at", "audit_events", ["created_at"])
    op.drop_index("ix_audit_events_created_id", table_name="audit_events")
    op.drop_index("ix_books_mismatches_section_subject", table_name="books_mismatches")
    op.drop_table("books_mismatches")
    op.drop_table("books_checks")
