"""The security events log: what attackers do and honest visitors rarely do (failed
logins and lookups, forms without a valid CSRF token, notifications with a bad signature
or the wrong amount, probes for admin paths, rate limits hit, failed captchas). The risk
rules count them per IP address and browser; the operator reads them in the console."""
from datetime import datetime

from sqlalchemy import select

from faka.database import begin_write
from faka.extensions import db
from faka.models import SecurityEvent
from faka.services import clock

MAX_SUBJECT = 200
MAX_DETAIL = 1000


def record(kind: str, ip: str | None, device_hash: str | None = None, subject: str | None = None,
           detail: str | None = None, now: datetime | None = None) -> None:
    """Log one event in its own transaction (commits whatever the session had open)."""
    begin_write()
    add(kind, ip, device_hash, subject, detail, now)
    db.session.commit()


def add(kind: str, ip: str | None, device_hash: str | None = None, subject: str | None = None,
        detail: str | None = None, now: datetime | None = None) -> None:
    """Add one event to the caller's transaction."""
    if kind not in SecurityEvent.KINDS:
        raise ValueError(kind)
    db.session.add(SecurityEvent(
        kind=kind, ip=(ip or "")[:45] or None, device_hash=device_hash,
        subject=(subject or "")[:MAX_SUBJECT] or None, detail=(detail or "")[:MAX_DETAIL] or None,
        created_at=now or clock.now(),
    ))


def recent(kind: str | None = None, ip: str | None = None, page: int = 1, per_page: int = 50) -> list[SecurityEvent]:
    """The newest events first, optionally of one kind or from one IP address."""
    query = select(SecurityEvent)
    if kind in SecurityEvent.KINDS:
        query = query.where(SecurityEvent.kind == kind)
    if ip:
        query = query.where(SecurityEvent.ip == ip)
    query = query.order_by(SecurityEvent.id.desc()).offset((max(page, 1) - 1) * per_page).limit(per_page)
    return list(db.session.execute(query).scalars())
