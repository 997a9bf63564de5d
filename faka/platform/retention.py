"""Data retention: what the shop records about people is kept only while it is useful.

Once a day (the reconciler starts it when the last run is a day old; also
`flask --app faka retention`), `run(now)`:

- replaces every IP address older than IP_DAYS (30 days) with a keyed hash,
  "h:" + the first 40 hex digits of HMAC-SHA256(key, address), where the key is derived
  from SECRET_KEY for this purpose only. Columns: orders.client_ip, sign_ins.ip,
  notify_log.source_ip, security_events.ip, risk_events.ip, audit_events.ip,
  product_reports.ip, api_calls.ip and restock_requests.ip. The risk rules and the operator's monitor work on recent activity,
  which keeps its addresses; an old address is no longer readable, but the hash is
  deterministic, so two old rows of the same address still match: self-purchase
  matching (an order's client_ip against the merchant's sign-in addresses) keeps working
  when both sides are hashed, though a fresh address never matches a hashed one. IP
  blacklist entries are the operator's and merchants' own decisions and are kept as
  written. The audit log is append-only for what it says; pseudonymising its ip column
  is the one change made to it, on purpose, here.
- deletes security events older than SECURITY_EVENT_DAYS (90), risk events and their
  rule hits older than RISK_EVENT_DAYS (365), and captcha challenges past their expiry
  (spent_challenges: useless once expired);
- deletes the API's call log older than API_CALL_DAYS (90) and its idempotency records
  past their expiry (24 hours: faka/accounts/api_keys.py);
- empties the body and headers of gateway notifications older than NOTIFY_BODY_DAYS
  (180); the row itself (order, outcome, verified) stays for the books;
- deletes back-in-stock requests (a buyer's email: faka/messaging/restock.py)
  RESTOCK_DONE_DAYS (30) after they were told or cancelled, unconfirmed ones
  RESTOCK_UNCONFIRMED_DAYS (7) after their confirmation email, and any still waiting after
  RESTOCK_WAITING_DAYS (365).

Each step works in batches of BATCH rows, one set-based statement and one short
transaction per batch, so a first run over years of data never holds a long lock; a
run cut short (say, by a job timeout) keeps what it did, and the next picks up from
there. Running it again changes nothing: a hashed address starts with "h:", which no
real address does, and is never hashed again. Each completed run is recorded as a
"retention.ran" audit event with its counts, which is also how `due()` knows the last run.
"""

import hashlib
import hmac
from dataclasses import asdict, dataclass
from datetime import datetime, timedelta

from flask import current_app
from sqlalchemy import case, delete, or_, select, update

from faka.accounts.models import ApiCall, ApiIdempotencyKey
from faka.catalog.models import ProductReport
from faka.core import clock
from faka.core.db import write_transaction
from faka.extensions import db
from faka.messaging.models import RestockRequest
from faka.orders.models import Order
from faka.payments.models import NotifyLog
from faka.platform import audit
from faka.platform.models import AuditEvent
from faka.risk.models import RiskEvent, RiskHit, SecurityEvent, SignIn, SpentChallenge

IP_DAYS = 30
SECURITY_EVENT_DAYS = 90
RISK_EVENT_DAYS = 365
NOTIFY_BODY_DAYS = 180
API_CALL_DAYS = 90
RESTOCK_DONE_DAYS = 30
RESTOCK_UNCONFIRMED_DAYS = 7  # also how long a confirmation link works
RESTOCK_WAITING_DAYS = 365
BATCH = 1000
EVERY = timedelta(hours=24)
RAN = "retention.ran"

HASH_PREFIX = "h:"
_HASH_PURPOSE = b"faka.retention.ip-address"

# (table, its IP column, the time the row was written)
IP_COLUMNS = (
    (Order.__table__, "client_ip", "created_at"),
    (SignIn.__table__, "ip", "created_at"),
    (NotifyLog.__table__, "source_ip", "received_at"),
    (SecurityEvent.__table__, "ip", "created_at"),
    (RiskEvent.__table__, "ip", "created_at"),
    (AuditEvent.__table__, "ip", "created_at"),
    (ProductReport.__table__, "ip", "created_at"),
    (ApiCall.__table__, "ip", "created_at"),
    (RestockRequest.__table__, "ip", "created_at"),
)


@dataclass(frozen=True)
class RetentionReport:
    ips_hashed: int
    security_events_deleted: int
    risk_events_deleted: int
    challenges_deleted: int
    notify_bodies_emptied: int
    api_calls_deleted: int = 0
    idempotency_keys_deleted: int = 0
    restock_requests_deleted: int = 0


def hash_ip(ip: str) -> str:
    """The stored form of an old IP address: "h:" + 40 hex digits (fits String(45))."""
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    key = hmac.new(secret, _HASH_PURPOSE, hashlib.sha256).digest()
    return HASH_PREFIX + hmac.new(key, ip.encode(), hashlib.sha256).hexdigest()[:40]


def due(now: datetime | None = None) -> bool:
    """Whether a day has passed since the last completed run (or there was none)."""
    now = now or clock.now()
    last = db.session.scalar(
        select(AuditEvent.created_at).where(AuditEvent.action == RAN).order_by(AuditEvent.created_at.desc()).limit(1)
    )
    db.session.rollback()  # only ends the read transaction: nothing to write
    return last is None or last <= now - EVERY


def run(now: datetime | None = None) -> RetentionReport:
    now = now or clock.now()
    report = RetentionReport(
        ips_hashed=sum(
            _hash_ips(table, ip, written, now - timedelta(days=IP_DAYS)) for table, ip, written in IP_COLUMNS
        ),
        security_events_deleted=_delete_security_events(now - timedelta(days=SECURITY_EVENT_DAYS)),
        risk_events_deleted=_delete_risk_events(now - timedelta(days=RISK_EVENT_DAYS)),
        challenges_deleted=_delete_spent_challenges(now),
        notify_bodies_emptied=_empty_notify_bodies(now - timedelta(days=NOTIFY_BODY_DAYS)),
        api_calls_deleted=_delete_before(ApiCall.__table__, "created_at", now - timedelta(days=API_CALL_DAYS)),
        idempotency_keys_deleted=_delete_before(ApiIdempotencyKey.__table__, "expires_at", now),
        restock_requests_deleted=_delete_restock_requests(now),
    )
    with write_transaction():
        event = audit.record(None, RAN, f"retention:{now.date().isoformat()}", after=asdict(report))
        event.created_at = now  # the run's own clock, which due(now) compares with
    return report


def _batches(select_batch, apply_batch) -> int:
    """Repeat: read up to BATCH keys, change those rows in one statement and commit,
    until no row is left. The count of rows changed."""
    done = 0
    while True:
        with write_transaction():  # one per batch
            keys = list(db.session.execute(select_batch.limit(BATCH)).all())
            if not keys:
                return done  # nothing written
            apply_batch(keys)
        done += len(keys)
        if len(keys) < BATCH:
            return done


def _hash_ips(table, ip_name: str, written_name: str, before: datetime) -> int:
    ip, written, key = table.c[ip_name], table.c[written_name], table.c.id
    unhashed = (ip.is_not(None), ~ip.like(HASH_PREFIX + "%"))

    def apply(rows):
        hashed = {value: hash_ip(value) for _id, value in rows}
        # Set-based: one UPDATE per batch. The guard in WHERE and the ELSE keep a row
        # that another run hashed meanwhile as it is.
        db.session.connection().execute(
            update(table)
            .where(key.in_([row_id for row_id, _value in rows]), *unhashed)
            .values({ip_name: case(hashed, value=ip, else_=ip)})
        )

    return _batches(select(key, ip).where(written < before, *unhashed).order_by(key), apply)


def _delete_security_events(before: datetime) -> int:
    table = SecurityEvent.__table__
    return _batches(
        select(table.c.id).where(table.c.created_at < before).order_by(table.c.id),
        lambda rows: db.session.connection().execute(
            delete(table).where(table.c.id.in_([row_id for (row_id,) in rows]))
        ),
    )


def _delete_before(table, time_name: str, before: datetime) -> int:
    """Delete the rows of `table` whose `time_name` is before `before`."""
    return _batches(
        select(table.c.id).where(table.c[time_name] < before).order_by(table.c.id),
        lambda rows: db.session.connection().execute(
            delete(table).where(table.c.id.in_([row_id for (row_id,) in rows]))
        ),
    )


def _delete_risk_events(before: datetime) -> int:
    events, hits = RiskEvent.__table__, RiskHit.__table__

    def apply(rows):
        ids = [row_id for (row_id,) in rows]
        connection = db.session.connection()
        connection.execute(delete(hits).where(hits.c.event_id.in_(ids)))
        connection.execute(delete(events).where(events.c.id.in_(ids)))

    return _batches(select(events.c.id).where(events.c.created_at < before).order_by(events.c.id), apply)


def _delete_spent_challenges(now: datetime) -> int:
    table = SpentChallenge.__table__
    return _batches(
        select(table.c.signature).where(table.c.expires_at < now).order_by(table.c.signature),
        lambda rows: db.session.connection().execute(
            delete(table).where(table.c.signature.in_([signature for (signature,) in rows]))
        ),
    )


def _empty_notify_bodies(before: datetime) -> int:
    table = NotifyLog.__table__
    filled = (table.c.body.is_not(None)) | (table.c.headers.is_not(None))
    return _batches(
        select(table.c.id).where(table.c.received_at < before, filled).order_by(table.c.id),
        lambda rows: db.session.connection().execute(
            update(table).where(table.c.id.in_([row_id for (row_id,) in rows])).values(body=None, headers=None)
        ),
    )


def _delete_restock_requests(now: datetime) -> int:
    table = RestockRequest.__table__
    done = now - timedelta(days=RESTOCK_DONE_DAYS)
    over = or_(
        table.c.notified_at < done,
        table.c.cancelled_at < done,
        (table.c.confirmed_at.is_(None)) & (table.c.emailed_at < now - timedelta(days=RESTOCK_UNCONFIRMED_DAYS)),
        table.c.created_at < now - timedelta(days=RESTOCK_WAITING_DAYS),
    )
    return _batches(
        select(table.c.id).where(over).order_by(table.c.id),
        lambda rows: db.session.connection().execute(
            delete(table).where(table.c.id.in_([row_id for (row_id,) in rows]))
        ),
    )
