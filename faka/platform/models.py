"""Platform-wide settings and the audit trail."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class AuditEvent(db.Model):
    """A privileged action or a security-relevant event, append-only."""

    __tablename__ = "audit_events"
    # The log's and the CSV export's order, so a page or an export reads it in index order.
    __table_args__ = (Index("ix_audit_events_created_id", "created_at", "id"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    actor_id: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str | None] = mapped_column(String(128))
    detail: Mapped[str] = mapped_column(Text, default="")
    before: Mapped[str | None] = mapped_column(Text)  # JSON of the changed fields before
    after: Mapped[str | None] = mapped_column(Text)  # ... and after
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Setting(db.Model):
    """Site settings the operator edits (name, announcement, ICP number, ...)."""

    __tablename__ = "settings"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text, default="")
