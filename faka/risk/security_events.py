"""The security events log: what attackers do and honest visitors rarely do (failed
logins and lookups, forms without a valid CSRF token, notifications with a bad signature
or the wrong amount, probes for admin paths, rate limits hit, failed captchas). The risk
rules count them per IP address and browser; the operator reads them in the console."""

from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.core import clock
from faka.core.db import write_transaction
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.risk.models import SecurityEvent

MAX_SUBJECT = 200
MAX_DETAIL = 1000
KIND_LABELS = {
    SecurityEvent.LOGIN_FAILED: _l("Failed login"),
    SecurityEvent.LOOKUP_FAILED: _l("Failed order lookup"),
    SecurityEvent.CSRF_FAILED: _l("Form without a valid token"),
    SecurityEvent.SIGNATURE_FAILED: _l("Payment notification with a bad signature"),
    SecurityEvent.AMOUNT_MISMATCH: _l("Payment notification with the wrong amount"),
    SecurityEvent.ADMIN_PROBE: _l("Probe for an admin path"),
    SecurityEvent.RATE_LIMITED: _l("Rate limit hit"),
    SecurityEvent.CAPTCHA_FAILED: _l("Failed captcha"),
}


def record(
    kind: str,
    ip: str | None,
    device_hash: str | None = None,
    subject: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    """Log one event in its own transaction (commits whatever the session had open; not
    to be called inside a write_transaction())."""
    with write_transaction():
        add(kind, ip, device_hash, subject, detail, now)


def add(
    kind: str,
    ip: str | None,
    device_hash: str | None = None,
    subject: str | None = None,
    detail: str | None = None,
    now: datetime | None = None,
) -> None:
    """Add one event to the caller's transaction."""
    if kind not in SecurityEvent.KINDS:
        raise ValueError(kind)
    db.session.add(
        SecurityEvent(
            kind=kind,
            ip=(ip or "")[:45] or None,
            device_hash=device_hash,
            subject=(subject or "")[:MAX_SUBJECT] or None,
            detail=(detail or "")[:MAX_DETAIL] or None,
            created_at=now or clock.now(),
        )
    )


def _matching(kind: str | None, ip: str | None) -> list:
    conditions = []
    if kind in SecurityEvent.KINDS:
        conditions.append(SecurityEvent.kind == kind)
    if ip:
        conditions.append(SecurityEvent.ip == ip)
    return conditions


def recent(kind: str | None = None, ip: str | None = None, page: int = 1, per_page: int = 50) -> Page:
    """One page of the events, newest first, counted; optionally of one kind or from one IP
    address."""
    query = select(SecurityEvent).where(*_matching(kind, ip)).order_by(SecurityEvent.id.desc())
    return paginate(query, page, per_page)
