"""The ledger: entries, payout accounts and withdrawals."""

from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, Index, String, Text, UniqueConstraint, text
from sqlalchemy.orm import Mapped, mapped_column

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db

# The fee kinds (faka.ledger.shares.FEE_KINDS: the fees on each share and their returns).
_FEE_KINDS_SQL = (
    "kind IN ('fee', 'fee_return', 'resale_fee', 'resale_fee_return', 'commission_fee', 'commission_fee_return')"
)


class LedgerEntry(db.Model):
    """Append-only money movement for an account (merchant, reseller or promoter: each
    is a Merchant row); a balance is a sum of these."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        UniqueConstraint("order_id", "kind"),
        UniqueConstraint("withdrawal_id", "kind"),
        # The merchant's ledger page, newest first: read in index order, not sorted.
        Index("ix_ledger_entries_merchant_created", "merchant_id", "created_at", "id"),
        # The dashboard's sums of a few kinds (growth.programmes.programme_figures), recent
        # and in all, from the index alone: most entries are sales and fees it skips.
        Index("ix_ledger_entries_kind_created", "kind", "created_at", "amount"),
        # The platform ledger's list of fee entries, newest first: read in index order.
        Index(
            "ix_ledger_entries_fees_created",
            "created_at",
            "id",
            sqlite_where=text(_FEE_KINDS_SQL),
            postgresql_where=text(_FEE_KINDS_SQL),
        ),
    )

    SALE = "sale"  # order total credited to the merchant
    FEE = "fee"  # platform fee debited from the merchant
    REFUND = "refund"  # order total taken back from the merchant
    FEE_RETURN = "fee_return"  # the platform fee of a refunded sale given back
    WITHDRAWAL = "withdrawal"  # money leaving the platform (held from the request on)
    WITHDRAWAL_RETURN = "withdrawal_return"  # a rejected withdrawal put back
    # A sub-store sale's margin (total - the merchant's floor) credited to the reseller,
    # the platform's fee on it, and their reversal by a refund (faka/ledger/shares.py).
    RESALE = "resale"
    RESALE_FEE = "resale_fee"
    RESALE_REFUND = "resale_refund"
    RESALE_FEE_RETURN = "resale_fee_return"
    # A referred sale's commission credited to the promoter (out of the merchant's share),
    # the platform's fee on it, and their reversal by a refund.
    COMMISSION = "commission"
    COMMISSION_FEE = "commission_fee"
    COMMISSION_REFUND = "commission_refund"
    COMMISSION_FEE_RETURN = "commission_fee_return"

    id: Mapped[int] = mapped_column(primary_key=True)
    # Indexed first in ix_ledger_entries_merchant_created (the merchant's lists).
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"))
    withdrawal_id: Mapped[int | None] = mapped_column(ForeignKey("withdrawals.id"))
    kind: Mapped[str] = mapped_column(String(24))
    amount: Mapped[int]  # signed minor units
    available_at: Mapped[datetime] = mapped_column(UTCDateTime)  # end of the settlement hold
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class PayoutAccount(db.Model):
    """Where a merchant's withdrawals are paid; the account number is encrypted."""

    __tablename__ = "payout_accounts"

    ALIPAY = "alipay"
    BANK = "bank"
    USDT = "usdt"
    KINDS = (ALIPAY, BANK, USDT)

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    kind: Mapped[str] = mapped_column(String(8))
    holder: Mapped[str] = mapped_column(String(80))
    account_ciphertext: Mapped[str] = mapped_column(Text)
    account_hint: Mapped[str] = mapped_column(String(16))  # last characters, for lists
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deleted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Withdrawal(db.Model):
    __tablename__ = "withdrawals"

    REQUESTED = "requested"
    APPROVED = "approved"
    PAID = "paid"
    REJECTED = "rejected"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    payout_account_id: Mapped[int] = mapped_column(ForeignKey("payout_accounts.id"))
    amount: Mapped[int]
    status: Mapped[str] = mapped_column(String(12), default=REQUESTED)
    reason: Mapped[str | None] = mapped_column(Text)
    reference: Mapped[str | None] = mapped_column(String(64))  # the payment's reference once paid
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    decided_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class BooksCheck(db.Model):
    """The stored result's bookkeeping of the books check (settlement.refresh_books_check):
    one row, with when it last ran, when it last checked everything, and the highest id
    of each append-only table it has seen, so the next run reads only what came after."""

    __tablename__ = "books_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    full_checked_at: Mapped[datetime] = mapped_column(UTCDateTime)
    entry_mark: Mapped[int] = mapped_column(BigInteger)
    notice_mark: Mapped[int] = mapped_column(BigInteger)
    refund_mark: Mapped[int] = mapped_column(BigInteger)
    withdrawal_mark: Mapped[int] = mapped_column(BigInteger)


class BooksMismatch(db.Model):
    """One mismatch the last books check found (settlement.Mismatch, stored). `subject` is
    what a later run re-checks it by: the order's id (orders, accounts and extra payments
    sections), the withdrawal's, or the ledger entry's; `sort_key` keeps reconcile_books()'s
    order within a section."""

    __tablename__ = "books_mismatches"
    __table_args__ = (Index("ix_books_mismatches_section_subject", "section", "subject"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    section: Mapped[int]
    subject: Mapped[int] = mapped_column(BigInteger)
    sort_key: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(40))
    reference: Mapped[str] = mapped_column(String(80))
    expected_amount: Mapped[int | None] = mapped_column(BigInteger)
    expected_text: Mapped[str | None] = mapped_column(String(40))
    found_amount: Mapped[int | None] = mapped_column(BigInteger)
    found_text: Mapped[str | None] = mapped_column(String(40))
