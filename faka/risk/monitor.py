"""What the operator's live risk monitor shows: the risk engine's events, newest first,
filtered and paged, and how often each rule fired over the chosen window; and the
monitor's one-click blacklisting of whoever an event (or a security event) names.

A window is a run of equal buckets ending with the current one, in the site's time
zone: twelve 5-minute buckets for the last hour, 24 hours for the last day, 7 local
days for the last week. The event list covers the same window as the chart."""

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import case, exists, func, select
from sqlalchemy.orm import joinedload

from faka.accounts.models import Merchant
from faka.core import clock
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.platform.analytics import DEFAULT_TIMEZONE, day_boundaries
from faka.risk import blacklist, engine
from faka.risk.models import BlacklistEntry, RiskEvent, RiskHit, SecurityEvent

PER_PAGE = 30
HOUR, DAY, WEEK = "1h", "24h", "7d"
SINCE_LABELS = {HOUR: _l("Last hour"), DAY: _l("Last 24 hours"), WEEK: _l("Last 7 days")}
CHECKPOINT_LABELS = {
    engine.CHECKOUT: _l("Checkout"),
    engine.NOTIFY: _l("Payment notification"),
    engine.LOOKUP: _l("Order lookup"),
    engine.LOGIN: _l("Login"),
    engine.REVIEW: _l("Review"),
    engine.COMPLAINT: _l("Complaint"),
}
ACTION_LABELS = {
    engine.ALLOW: _l("Allowed"),
    engine.FLAG: _l("Flagged"),
    engine.CAPTCHA: _l("Captcha"),
    engine.HOLD: _l("Held"),
    engine.BLOCK: _l("Blocked"),
}


@dataclass(frozen=True)
class Filters:
    checkpoint: str = ""
    action: str = ""
    rule: str = ""
    ip: str = ""
    since: str = DAY

    @classmethod
    def parse(cls, args) -> "Filters":
        """Filters from query arguments; anything unknown means "all"."""

        def one_of(name, allowed):
            value = args.get(name, "")
            return value if value in allowed else ""

        since = args.get("since", DAY)
        return cls(
            one_of("checkpoint", engine.CHECKPOINTS),
            one_of("action", engine.ACTIONS),
            one_of("rule", engine.RULE_LABELS),
            args.get("ip", "").strip()[:45],
            since if since in SINCE_LABELS else DAY,
        )

    def as_args(self) -> dict[str, str]:
        return {key: value for key, value in vars(self).items() if value}


@dataclass(frozen=True)
class EventRow:
    event: RiskEvent
    merchant_name: str | None


@dataclass(frozen=True)
class Window:
    since: str
    bounds: list[datetime]  # len(labels) + 1 boundaries in UTC, oldest first
    labels: list[str]  # each bucket's local start, as the chart's x axis shows it

    @property
    def start(self) -> datetime:
        return self.bounds[0]


def window(since: str, now: datetime | None = None, tz: str | None = None) -> Window:
    now = now or clock.now()
    zone = ZoneInfo(tz or current_app.config.get("BABEL_DEFAULT_TIMEZONE") or DEFAULT_TIMEZONE)
    if since == WEEK:
        days, bounds = day_boundaries(now, zone, 7)
        return Window(since, bounds, [day.strftime("%m-%d") for day in days])
    step, count = (timedelta(minutes=5), 12) if since == HOUR else (timedelta(hours=1), 24)
    local = now.astimezone(zone)
    floor = local.replace(minute=local.minute - local.minute % 5 if since == HOUR else 0, second=0, microsecond=0)
    # Stepping in UTC keeps the buckets equal across a daylight-saving change.
    first = floor.astimezone(UTC) - step * (count - 1)
    bounds = [first + step * i for i in range(count + 1)]
    return Window(since, bounds, [b.astimezone(zone).strftime("%H:%M") for b in bounds[:-1]])


def events(filters: Filters, page: int = 1, now: datetime | None = None, per_page: int = PER_PAGE) -> Page:
    """One page of the window's events matching the filters (EventRows), newest first,
    counted."""
    start = window(filters.since, now).start
    conditions = [RiskEvent.created_at >= start]
    if filters.checkpoint:
        conditions.append(RiskEvent.checkpoint == filters.checkpoint)
    if filters.action:
        conditions.append(RiskEvent.action == filters.action)
    if filters.ip:
        conditions.append(RiskEvent.ip == filters.ip)
    if filters.rule:
        conditions.append(exists().where(RiskHit.event_id == RiskEvent.id, RiskHit.rule == filters.rule))
    found = paginate(
        select(RiskEvent, Merchant.name)
        .outerjoin(Merchant, Merchant.id == RiskEvent.merchant_id)
        .where(*conditions)
        .options(joinedload(RiskEvent.order))
        .order_by(RiskEvent.id.desc()),
        page,
        per_page,
    )
    return replace(found, items=[EventRow(event, name) for event, name in found.items])


@dataclass(frozen=True)
class RuleSeries:
    rule: str
    counts: list[int]  # hits per bucket of the window, oldest first

    @property
    def label(self):
        return engine.RULE_LABELS.get(self.rule, self.rule)

    @property
    def total(self) -> int:
        return sum(self.counts)


def _bucket_index(column, bounds: list[datetime]):
    """SQL: the bucket a timestamp falls in (rows already limited to the window). A CASE
    over the boundaries reads the same on SQLite and PostgreSQL."""
    return case(*[(column < bound, i) for i, bound in enumerate(bounds[1:-1])], else_=len(bounds) - 2)


def hits_by_rule(win: Window) -> list[RuleSeries]:
    """Hits per rule and bucket in the window (one grouped query), the most frequent
    rule first; rules that did not fire are left out."""
    bucket = _bucket_index(RiskHit.created_at, win.bounds).label("bucket")
    rows = db.session.execute(
        select(RiskHit.rule, bucket, func.count())
        .where(RiskHit.created_at >= win.bounds[0], RiskHit.created_at < win.bounds[-1])
        .group_by(RiskHit.rule, bucket)
    )
    counts: dict[str, list[int]] = {}
    for rule, index, n in rows:
        counts.setdefault(rule, [0] * len(win.labels))[index] = n
    series = [RuleSeries(rule, values) for rule, values in counts.items()]
    return sorted(series, key=lambda s: (-s.total, s.rule))


# -- one-click blacklisting ---------------------------------------------------------------


class NothingToBlacklist(DomainError):
    message = _l("This event did not record that, so there is nothing to blacklist.")


# Which of a risk event's columns each kind of blacklist entry takes its value from.
EVENT_VALUES = {BlacklistEntry.IP: "ip", BlacklistEntry.DEVICE: "device_hash", BlacklistEntry.EMAIL: "email"}


def blacklist_from_event(event_id: int, kind: str, reason: str, days: int | None, actor_id: int) -> BlacklistEntry:
    """Blacklist the IP address, device or email address a risk event recorded (the
    operator's entry, audited); raise NotFound or NothingToBlacklist."""
    event = db.session.get(RiskEvent, event_id)
    if event is None:
        raise NotFound()
    value = getattr(event, EVENT_VALUES[kind]) if kind in EVENT_VALUES else None
    if not value:
        raise NothingToBlacklist()
    return blacklist.add(kind, value, reason, actor_id=actor_id, expires_at=blacklist.expiry(days))


def blacklist_security_source(event_id: int, reason: str, days: int | None, actor_id: int) -> BlacklistEntry:
    """Blacklist the IP address a security event came from."""
    event = db.session.get(SecurityEvent, event_id)
    if event is None:
        raise NotFound()
    if not event.ip:
        raise NothingToBlacklist()
    return blacklist.add(BlacklistEntry.IP, event.ip, reason, actor_id=actor_id, expires_at=blacklist.expiry(days))
