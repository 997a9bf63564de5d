"""The blacklist: who may not buy, look up orders, review or complain.

An entry names an email address, an email domain (which covers its subdomains), an IP
address or network (CIDR), or a device (the keyed hash of its cookie, as the risk
monitor shows it). The operator's entries apply everywhere; a merchant's entries only
to its own products and orders. Entries may expire.
"""

import ipaddress
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import or_, select

from faka.core import clock
from faka.core.cache import forget, reused
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.platform import audit
from faka.risk.models import BlacklistEntry

_DOMAIN = re.compile(r"(?=.{1,253}$)([a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}")
_DEVICE = re.compile(r"[0-9a-f]{64}")
MAX_REASON = 500
PER_PAGE = 50
KIND_LABELS = {
    BlacklistEntry.EMAIL: _l("Email address"),
    BlacklistEntry.DOMAIN: _l("Email domain"),
    BlacklistEntry.IP: _l("IP address or network (CIDR)"),
    BlacklistEntry.DEVICE: _l("Browser (device)"),
}


class InvalidEntry(DomainError):
    message = _l("That is not a valid email address, domain, IP address or network, or device id.")


class ReasonRequired(DomainError):
    message = _l("Write why this entry is blacklisted (up to 500 characters).")


def normalise(kind: str, value: str) -> str:
    """The stored form of a value: lower-case email or domain ("*.example.com" and
    "@example.com" mean the domain), a CIDR network, or a device hash. Raises InvalidEntry."""
    value = (value or "").strip().lower()
    if kind == BlacklistEntry.EMAIL:
        local, _at, domain = value.rpartition("@")
        if local and " " not in local and len(value) <= 254 and _DOMAIN.fullmatch(domain):
            return value
    elif kind == BlacklistEntry.DOMAIN:
        domain = value.removeprefix("*.").removeprefix("@")
        if _DOMAIN.fullmatch(domain):
            return domain
    elif kind == BlacklistEntry.IP:
        try:
            return str(ipaddress.ip_network(value, strict=False))
        except ValueError:
            pass
    elif kind == BlacklistEntry.DEVICE and _DEVICE.fullmatch(value):
        return value
    raise InvalidEntry()


def add(
    kind: str,
    value: str,
    reason: str,
    *,
    actor_id: int | None,
    merchant_id: int | None = None,
    expires_at: datetime | None = None,
) -> BlacklistEntry:
    """Blacklist a value (the operator's when merchant_id is None), audited. The same
    value blacklisted again by the same owner while its entry is active extends that
    entry (to the later expiry) instead of adding a second one."""
    value = normalise(kind, value)
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired()
    now = clock.now()
    with write_transaction():
        entry = db.session.execute(
            select(BlacklistEntry)
            .where(
                *_owned(merchant_id, kind),
                BlacklistEntry.value == value,
                or_(BlacklistEntry.expires_at.is_(None), BlacklistEntry.expires_at > now),
            )
            .order_by(BlacklistEntry.id)
            .limit(1)
        ).scalar_one_or_none()
        if entry is not None:
            before = entry.expires_at
            if before is not None and (expires_at is None or expires_at > before):
                entry.expires_at = expires_at
            audit.record(
                actor_id,
                "blacklist.extended",
                f"blacklist:{entry.id}",
                before={"expires_at": before.isoformat() if before else None},
                after={"expires_at": entry.expires_at.isoformat() if entry.expires_at else None, "reason": reason},
            )
        else:
            entry = BlacklistEntry(
                kind=kind,
                value=value,
                reason=reason,
                merchant_id=merchant_id,
                created_by=actor_id,
                created_at=now,
                expires_at=expires_at,
            )
            db.session.add(entry)
            db.session.flush()
            audit.record(
                actor_id,
                "blacklist.added",
                f"blacklist:{entry.id}",
                after={
                    "kind": kind,
                    "value": value,
                    "reason": reason,
                    "merchant_id": merchant_id,
                    "expires_at": expires_at.isoformat() if expires_at else None,
                },
            )
    forget(_INDEX)
    return entry


def remove(entry_id: int, *, actor_id: int | None, merchant_id: int | None = None) -> None:
    """Take an entry off: the operator's own (merchant_id None) or the merchant's."""
    with write_transaction():
        entry = db.session.get(BlacklistEntry, entry_id)
        if entry is None or entry.merchant_id != merchant_id:
            raise NotFound()
        audit.record(
            actor_id,
            "blacklist.removed",
            f"blacklist:{entry.id}",
            before={"kind": entry.kind, "value": entry.value, "reason": entry.reason},
        )
        db.session.delete(entry)
    forget(_INDEX)


def _owned(merchant_id: int | None, kind: str | None):
    conditions = [
        BlacklistEntry.merchant_id.is_(None) if merchant_id is None else BlacklistEntry.merchant_id == merchant_id
    ]
    if kind in BlacklistEntry.KINDS:
        conditions.append(BlacklistEntry.kind == kind)
    return conditions


def entries(merchant_id: int | None = None, kind: str | None = None) -> list[BlacklistEntry]:
    """The operator's entries (merchant_id None) or one merchant's, newest first."""
    query = select(BlacklistEntry).where(*_owned(merchant_id, kind)).order_by(BlacklistEntry.id.desc())
    return list(db.session.execute(query).scalars())


def entries_page(
    merchant_id: int | None = None, kind: str | None = None, page: int = 1, per_page: int = PER_PAGE
) -> Page:
    """One page of entries(), counted."""
    query = select(BlacklistEntry).where(*_owned(merchant_id, kind)).order_by(BlacklistEntry.id.desc())
    return paginate(query, page, per_page)


def expiry(days: int | None, now: datetime | None = None) -> datetime | None:
    """When an entry made now for `days` days expires (None: never)."""
    return (now or clock.now()) + timedelta(days=days) if days else None


@dataclass(frozen=True)
class Who:
    """Whoever is asking, as the blacklist sees them."""

    ip: str | None = None
    device_hash: str | None = None
    email: str | None = None


@dataclass(frozen=True)
class Listed:
    """An active entry as match() finds it: a plain copy, kept between requests."""

    id: int
    kind: str
    value: str
    merchant_id: int | None
    expires_at: datetime | None


_INDEX = "blacklist-index"


class _Index:
    """The active entries by what they cover, so that a match is a few dictionary
    lookups however long the list is; only IP networks wider than one address are
    scanned."""

    def __init__(self, entries: list[Listed]):
        self.by_value: dict[tuple[str, str], list[Listed]] = {}
        self.networks: list[tuple[ipaddress.IPv4Network | ipaddress.IPv6Network, Listed]] = []
        for entry in entries:
            key = (entry.kind, entry.value)
            if entry.kind == BlacklistEntry.IP:
                network = ipaddress.ip_network(entry.value)
                if network.num_addresses > 1:
                    self.networks.append((network, entry))
                    continue
                key = (entry.kind, str(network.network_address))
            self.by_value.setdefault(key, []).append(entry)

    def covering(self, email: str, device_hash: str | None, address) -> Iterator[Listed]:
        keys = []
        if email:
            keys.append((BlacklistEntry.EMAIL, email))
            labels = email.rpartition("@")[2].split(".")
            # The domain and each parent: an entry for a domain covers its subdomains.
            keys.extend((BlacklistEntry.DOMAIN, ".".join(labels[i:])) for i in range(len(labels)))
        if device_hash:
            keys.append((BlacklistEntry.DEVICE, device_hash))
        if address is not None:
            keys.append((BlacklistEntry.IP, str(address)))
        for key in keys:
            yield from self.by_value.get(key, ())
        if address is not None:
            yield from (
                entry for network, entry in self.networks if network.version == address.version and address in network
            )


def _active_index() -> _Index:
    rows = db.session.execute(
        select(
            BlacklistEntry.id,
            BlacklistEntry.kind,
            BlacklistEntry.value,
            BlacklistEntry.merchant_id,
            BlacklistEntry.expires_at,
        ).where(or_(BlacklistEntry.expires_at.is_(None), BlacklistEntry.expires_at > clock.now()))
    )
    return _Index([Listed(*row) for row in rows])


def match(who: Who, merchant_id: int | None = None, now: datetime | None = None) -> Listed | None:
    """The first active entry that covers this visitor: the operator's, or the merchant's
    own when merchant_id is given. Every checkout asks, so the active entries are kept
    for PAGE_CACHE_SECONDS within this process (adding or removing one clears it at
    once in every process: faka/core/cache.py's forget)."""
    now = now or clock.now()
    email = (who.email or "").strip().lower()
    for entry in reused(_INDEX, _active_index).covering(email, who.device_hash, _address(who.ip)):
        if entry.merchant_id in (None, merchant_id) and (entry.expires_at is None or entry.expires_at > now):
            return entry
    return None


def _address(ip: str | None):
    try:
        address = ipaddress.ip_address(ip) if ip else None
    except ValueError:
        return None
    # A dual-stack listener reports IPv4 clients as ::ffff:a.b.c.d.
    return getattr(address, "ipv4_mapped", None) or address
