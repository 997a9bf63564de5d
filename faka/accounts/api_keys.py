"""API keys: how a merchant's programs reach the REST API at /api/v1 (faka/web/api/v1/).

A merchant makes keys in the back office. Each has a name, scopes (read or write per area:
products, keys, orders ...; write includes read), optionally the addresses it may be used
from (addresses and networks, IPv4 or IPv6) and an expiry. The token, `fk_live_` and 43
random characters (256 bits), is shown once, when it is made: only its SHA-256 is stored,
as for session ids. A fast hash is right here: the token is random, so there is nothing to
guess, and a call costs one indexed lookup. Lists show its first characters (`prefix`).

Every call made with a key is recorded (method, path, status, address, time) and kept
90 days (faka/platform/retention.py deletes older calls, and hashes their addresses after
30 days like every other); the key's `last_used_at` follows at most once a minute.

Idempotency: a POST that creates something may carry an `Idempotency-Key` header. The
first request with a key claims it (`claim`); its answer is kept, encrypted, for
IDEMPOTENCY_HOURS (`finish`), and the same request sent again gets that answer back. The
same key with a different request is refused; a request still running with that key
makes the second one wait its turn (409). An answer that is an error is not kept
(`release`): nothing was created, and the request may be sent again, corrected.
"""

import hashlib
import ipaddress
import json
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select, update
from sqlalchemy.exc import IntegrityError

from faka.accounts.models import ApiCall, ApiIdempotencyKey, ApiKey
from faka.core import clock
from faka.core.crypto import InvalidToken, vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.platform import audit

TOKEN_PREFIX = "fk_live_"
PREFIX_SHOWN = 6  # random characters shown after TOKEN_PREFIX in lists
NAME_MAX = 60
MAX_ACTIVE_KEYS = 20
MAX_ADDRESSES = 20
MAX_EXPIRY_DAYS = 3 * 366

READ, WRITE = "read", "write"
# The areas a key's scopes name, in the order the back office lists them. Checkout fields
# belong to `products`; push channels to `webhooks` (both send the merchant's events out).
AREAS = ("products", "keys", "orders", "coupons", "complaints", "money", "webhooks")
AREA_LABELS = {
    "products": _l("Products and checkout fields"),
    "keys": _l("Card keys (stock)"),
    "orders": _l("Orders"),
    "coupons": _l("Coupons"),
    "complaints": _l("Complaints"),
    "money": _l("Balance and ledger"),
    "webhooks": _l("Webhooks and push channels"),
}
SCOPES = tuple(f"{area}:{level}" for area in AREAS for level in (READ, WRITE))

ACTIVE, EXPIRED, REVOKED = "active", "expired", "revoked"

CALL_SEEN_EVERY = timedelta(minutes=1)  # last_used_at is written at most this often
CALL_PATH_MAX = 200
CALLS_PER_PAGE = 50

IDEMPOTENCY_HOURS = 24
IDEMPOTENCY_KEY_MAX = 255
# A claim whose request never finished (the process died) is taken over after this long.
IDEMPOTENCY_STALE = timedelta(minutes=2)


class InvalidApiKey(DomainError):
    """A key the merchant cannot make as asked; `field` names the form input at fault."""

    message = _l("Check the key's details.")

    def __init__(self, message=None, field: str = "name"):
        super().__init__(message)
        self.field = field


class TooManyApiKeys(DomainError):
    message = _l("You already have %(count)s active keys: revoke one you no longer use first.", count=MAX_ACTIVE_KEYS)


# -- keys -------------------------------------------------------------------------------


@dataclass
class ApiKeyDraft:
    name: str
    scopes: list[str]
    language: str
    allowed_ips: str = ""  # addresses or networks, one a line (or separated by commas or spaces)
    expires_at: datetime | None = None


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(merchant_id: int, user_id: int | None, draft: ApiKeyDraft) -> tuple[ApiKey, str]:
    """Make a key. Returns it with its token in plain text: the only time the token
    exists outside the caller's hands."""
    name = (draft.name or "").strip()
    if not name or len(name) > NAME_MAX:
        raise InvalidApiKey(_l("Name the key (1 to 60 characters), after the program that uses it."), "name")
    scopes = normalise_scopes(draft.scopes)
    if not scopes:
        raise InvalidApiKey(_l("Choose what the key may do."), "scopes")
    networks = parse_addresses(draft.allowed_ips)
    now = clock.now()
    if draft.expires_at is not None and not now < draft.expires_at <= now + timedelta(days=MAX_EXPIRY_DAYS):
        raise InvalidApiKey(_l("Choose an expiry date in the future, at most three years away."), "expires_at")
    token = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with write_transaction():
        active = db.session.scalar(
            select(func.count()).select_from(ApiKey).where(ApiKey.merchant_id == merchant_id, *_active(now))
        )
        if active >= MAX_ACTIVE_KEYS:
            raise TooManyApiKeys()
        key = ApiKey(
            merchant_id=merchant_id,
            created_by=user_id,
            name=name,
            prefix=token[: len(TOKEN_PREFIX) + PREFIX_SHOWN],
            token_hash=token_digest(token),
            scopes=" ".join(scopes),
            allowed_ips="\n".join(networks) or None,
            language=draft.language,
            expires_at=draft.expires_at,
        )
        db.session.add(key)
        db.session.flush()
        audit.record(user_id, "api_key.created", f"api_key:{key.id}", after={"name": name, "scopes": key.scopes})
    return key, token


def normalise_scopes(scopes) -> list[str]:
    """The known scopes asked for, in SCOPES order; a write scope stands for its read one too."""
    asked = set(scopes or ())
    unknown = asked - set(SCOPES)
    if unknown:
        raise InvalidApiKey(_l("Choose what the key may do."), "scopes")
    chosen = [s for s in SCOPES if s in asked]
    return [s for s in chosen if not (s.endswith(":" + READ) and s.replace(READ, WRITE) in asked)]


def parse_addresses(text: str | None) -> list[str]:
    """The allow-list as stored: each address or network in its normal form. An address
    alone is a network of one (/32, /128)."""
    entries = [part for part in (text or "").replace(",", " ").split() if part]
    if len(entries) > MAX_ADDRESSES:
        raise InvalidApiKey(_l("List at most %(count)s addresses or networks.", count=MAX_ADDRESSES), "allowed_ips")
    networks = []
    for entry in entries:
        try:
            network = ipaddress.ip_network(entry, strict=False)
        except ValueError:
            raise InvalidApiKey(
                _l(
                    "%(entry)s is not an IP address or network (such as 203.0.113.7 or 203.0.113.0/24).",
                    entry=entry[:60],
                ),
                "allowed_ips",
            ) from None
        if isinstance(network, ipaddress.IPv6Network) and network.prefixlen >= 96 and network[0].ipv4_mapped:
            # ::ffff:203.0.113.7 is how some tools write an IPv4 address; callers' mapped
            # addresses are compared as IPv4, so keep the entry as the IPv4 network it is.
            network = ipaddress.ip_network(f"{network[0].ipv4_mapped}/{network.prefixlen - 96}")
        if str(network) not in networks:
            networks.append(str(network))
    return networks


def _active(now: datetime):
    return ApiKey.revoked_at.is_(None), (ApiKey.expires_at.is_(None) | (ApiKey.expires_at > now))


def key_state(key: ApiKey, now: datetime | None = None) -> str:
    now = now or clock.now()
    if key.revoked_at is not None:
        return REVOKED
    if key.expires_at is not None and key.expires_at <= now:
        return EXPIRED
    return ACTIVE


def key_scopes(key: ApiKey) -> list[str]:
    return key.scopes.split()


def has_scope(key: ApiKey, scope: str) -> bool:
    """Whether the key may do `scope` ("products:read"): a write scope includes its read."""
    held = key_scopes(key)
    area, _sep, level = scope.partition(":")
    return scope in held or (level == READ and f"{area}:{WRITE}" in held)


def address_allowed(key: ApiKey, ip: str | None) -> bool:
    """Whether a call from `ip` may use the key (any address when it has no allow-list)."""
    if not key.allowed_ips:
        return True
    try:
        address = ipaddress.ip_address(ip or "")
    except ValueError:
        return False
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    return any(address in ipaddress.ip_network(n) for n in key.allowed_ips.split())


def merchant_keys(merchant_id: int) -> list[ApiKey]:
    """The merchant's keys, newest first, revoked ones included (they are the call log's)."""
    return list(
        db.session.execute(select(ApiKey).where(ApiKey.merchant_id == merchant_id).order_by(ApiKey.id.desc())).scalars()
    )


def get_key(merchant_id: int, key_id: int) -> ApiKey:
    key = db.session.get(ApiKey, key_id)
    if key is None or key.merchant_id != merchant_id:
        raise NotFound()
    return key


def revoke_key(merchant_id: int, key_id: int, user_id: int | None) -> ApiKey:
    """Stop the key at once. Revoking a revoked key changes nothing."""
    with write_transaction():
        key = get_key(merchant_id, key_id)
        if key.revoked_at is None:
            key.revoked_at = clock.now()
            audit.record(user_id, "api_key.revoked", f"api_key:{key.id}", before={"name": key.name})
    return key


def find_key(token: str) -> ApiKey | None:
    """The key this token is, whatever its state (the caller checks it), or None."""
    if not token.startswith(TOKEN_PREFIX) or len(token) > 100:
        return None
    return db.session.execute(select(ApiKey).where(ApiKey.token_hash == token_digest(token))).scalar_one_or_none()


# -- the call log -----------------------------------------------------------------------


def record_call(key_id: int, merchant_id: int, method: str, path: str, status: int, ip: str | None) -> None:
    """Log one call made with the key, and mark the key used (at most once a minute)."""
    now = clock.now()
    with write_transaction():
        db.session.add(
            ApiCall(
                api_key_id=key_id,
                merchant_id=merchant_id,
                method=method[:8],
                path=path[:CALL_PATH_MAX],
                status=status,
                ip=ip,
                created_at=now,
            )
        )
        db.session.execute(
            update(ApiKey)
            .where(
                ApiKey.id == key_id,
                (ApiKey.last_used_at.is_(None)) | (ApiKey.last_used_at < now - CALL_SEEN_EVERY),
            )
            .values(last_used_at=now)
        )


def calls(merchant_id: int, page: int, key_id: int | None = None) -> Page:
    """The merchant's calls, newest first (one key's with `key_id`), with their keys."""
    statement = (
        select(ApiCall, ApiKey.name, ApiKey.prefix)
        .join(ApiKey, ApiKey.id == ApiCall.api_key_id)
        .where(ApiCall.merchant_id == merchant_id)
        .order_by(ApiCall.id.desc())
    )
    if key_id is not None:
        statement = statement.where(ApiCall.api_key_id == key_id)
    return paginate(statement, page, CALLS_PER_PAGE, count=False)


# -- idempotency ------------------------------------------------------------------------

NEW, REPLAY, MISMATCH, IN_PROGRESS = "new", "replay", "mismatch", "in_progress"


@dataclass(frozen=True)
class Claim:
    outcome: str  # NEW: run the request; REPLAY: answer `answer`; MISMATCH or IN_PROGRESS: refuse
    record_id: int | None = None
    status: int | None = None
    answer: dict | None = None  # {"body": ..., "content_type": ..., "location": ...}


def request_digest(method: str, path: str, body: bytes) -> str:
    """What makes two requests the same: method, path and body (JSON compared by value,
    so the order of its keys and its spacing do not matter)."""
    try:
        canonical = json.dumps(json.loads(body), sort_keys=True, separators=(",", ":")).encode()
    except (ValueError, UnicodeDecodeError, RecursionError):
        canonical = body
    return hashlib.sha256(method.encode() + b" " + path.encode() + b"\n" + canonical).hexdigest()


def claim(api_key_id: int, idempotency_key: str, digest: str) -> Claim:
    """Claim `idempotency_key` for a request with this digest, or say what was already
    answered to it."""
    now = clock.now()
    for _attempt in range(2):
        try:
            with write_transaction():
                record = db.session.execute(
                    select(ApiIdempotencyKey)
                    .where(ApiIdempotencyKey.api_key_id == api_key_id, ApiIdempotencyKey.key == idempotency_key)
                    .with_for_update()
                ).scalar_one_or_none()
                if record is not None and (
                    record.expires_at <= now or (record.status is None and record.created_at <= now - IDEMPOTENCY_STALE)
                ):
                    db.session.delete(record)  # expired, or left by a request that never finished
                    db.session.flush()
                    record = None
                if record is None:
                    return _new_claim(api_key_id, idempotency_key, digest, now)
                if record.request_hash != digest:
                    return Claim(MISMATCH, record.id)
                if record.status is None:
                    return Claim(IN_PROGRESS, record.id)
                try:
                    answer = json.loads(vault().decrypt(record.response_ciphertext))
                except InvalidToken:
                    # Encrypted under a key removed since (rotate-keys does not keep these
                    # day-long records): as good as expired.
                    db.session.delete(record)
                    db.session.flush()
                    return _new_claim(api_key_id, idempotency_key, digest, now)
                return Claim(REPLAY, record.id, record.status, answer)
        except IntegrityError:
            continue  # another request claimed it between our look and our insert: look again
    return Claim(IN_PROGRESS)


def _new_claim(api_key_id: int, idempotency_key: str, digest: str, now: datetime) -> Claim:
    record = ApiIdempotencyKey(
        api_key_id=api_key_id,
        key=idempotency_key,
        request_hash=digest,
        created_at=now,
        expires_at=now + timedelta(hours=IDEMPOTENCY_HOURS),
    )
    db.session.add(record)
    db.session.flush()
    return Claim(NEW, record.id)


def finish(record_id: int, status: int, answer: dict) -> None:
    """Keep the answer to a claimed request, encrypted, for the same request sent again."""
    with write_transaction():
        db.session.execute(
            update(ApiIdempotencyKey)
            .where(ApiIdempotencyKey.id == record_id)
            .values(status=status, response_ciphertext=vault().encrypt(json.dumps(answer)))
        )


def release(record_id: int) -> None:
    """Give a claimed key back: its request failed and created nothing."""
    with write_transaction():
        db.session.execute(delete(ApiIdempotencyKey).where(ApiIdempotencyKey.id == record_id))
