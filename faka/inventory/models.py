"""Stock: card keys and the imports that bring them in."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class KeyImport(db.Model):
    """A key import running as a job. The uploaded text waits encrypted in the instance
    folder until the job has read it."""

    __tablename__ = "key_imports"

    QUEUED = "queued"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"

    id: Mapped[int] = mapped_column(primary_key=True)
    public_id: Mapped[str] = mapped_column(String(32), unique=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"))
    status: Mapped[str] = mapped_column(String(10), default=QUEUED)
    total_lines: Mapped[int] = mapped_column(default=0)
    processed: Mapped[int] = mapped_column(default=0)
    added: Mapped[int] = mapped_column(default=0)
    duplicate_in_batch: Mapped[int] = mapped_column(default=0)
    already_in_stock: Mapped[int] = mapped_column(default=0)
    invalid: Mapped[int] = mapped_column(default=0)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    finished_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class CardKey(db.Model):
    """One unit of stock. The key itself is only ever stored encrypted."""

    __tablename__ = "card_keys"
    __table_args__ = (
        UniqueConstraint("product_id", "fingerprint"),
        # Stock per product (the storefront's lists) and per variant: with id last,
        # reserving "the oldest available keys" of a variant reads them in index order
        # instead of walking every sold key.
        Index("ix_card_keys_product_status_id", "product_id", "status", "id"),
        Index("ix_card_keys_variant_status_id", "variant_id", "status", "id"),
    )

    AVAILABLE = "available"
    RESERVED = "reserved"
    SOLD = "sold"
    VOID = "void"

    id: Mapped[int] = mapped_column(primary_key=True)
    # A key is unique in its product (above) and belongs to one of its variants.
    product_id: Mapped[int] = mapped_column(ForeignKey("products.id"))
    variant_id: Mapped[int] = mapped_column(ForeignKey("product_variants.id"))
    ciphertext: Mapped[str] = mapped_column(Text)
    # Keyed HMAC of the plaintext: finds duplicate imports without decrypting.
    fingerprint: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=AVAILABLE)
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    reserved_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    sold_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class KeyActivation(db.Model):
    """One installation of the merchant's software that took a seat of a sold key
    (faka/inventory/licenses.py). A deactivated seat keeps its row, so the merchant sees
    the history; activating the same instance again takes it back."""

    __tablename__ = "key_activations"
    __table_args__ = (UniqueConstraint("card_key_id", "instance_id"),)

    INSTANCE_ID_MAX = 128
    INSTANCE_NAME_MAX = 100
    # Who freed the seat: the merchant's program (the public deactivate call) or the
    # merchant in the back office.
    BY_PROGRAM = "program"
    BY_MERCHANT = "merchant"

    id: Mapped[int] = mapped_column(primary_key=True)
    # The unique constraint's index also finds a key's seats.
    card_key_id: Mapped[int] = mapped_column(ForeignKey("card_keys.id"))
    instance_id: Mapped[str] = mapped_column(String(INSTANCE_ID_MAX))
    instance_name: Mapped[str | None] = mapped_column(String(INSTANCE_NAME_MAX))
    activated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # Refreshed each time the instance activates again (idempotently).
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    deactivated_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    deactivated_by: Mapped[str | None] = mapped_column(String(10))

    @property
    def is_active(self) -> bool:
        return self.deactivated_at is None
