"""Key rotation: `stored_secrets()` names every column that holds ciphertext, and
`flask rotate-keys` re-encrypts them all with the newest key (faka/core/crypto.py). Rotation,
its check and a restore's sample all walk that list, so a new encrypted column must be
added there (a test compares it with the models). Once the check finds nothing that needs
an older key, `retire_older_keys()` drops them from the instance's key file.
"""

from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken
from sqlalchemy import Column, ColumnElement, bindparam, null, select, update

from faka.accounts.models import ApiIdempotencyKey, Merchant, User
from faka.catalog.models import OrderAnswer, Product
from faka.core.crypto import Vault, key_file, keys_from_environment, parse_keys, vault, write_private_file
from faka.core.db import write_transaction
from faka.core.storage import IMPORTS, storage
from faka.extensions import db
from faka.inventory.models import CardKey, KeyImport
from faka.ledger.models import PayoutAccount
from faka.messaging.models import OutboxEmail, PushChannel, WebhookDelivery, WebhookEndpoint
from faka.orders.models import Order
from faka.payments.models import GatewayConfig
from faka.platform.models import Setting

BATCH = 500
IMPORT_FILES = "uploads/imports/*.fernet"  # big key imports waiting for their job (local or database storage)


@dataclass(frozen=True)
class StoredSecret:
    column: Column
    only: ColumnElement | None = None  # the rows whose column holds a secret, when not all do
    fingerprint: Column | None = None  # an HMAC of the plaintext under the newest key

    @property
    def label(self) -> str:
        return f"{self.column.table.name}.{self.column.name}"


def stored_secrets() -> list[StoredSecret]:
    return [
        StoredSecret(CardKey.__table__.c.ciphertext, fingerprint=CardKey.__table__.c.fingerprint),
        StoredSecret(Product.__table__.c.fixed_content_ciphertext),
        StoredSecret(Product.__table__.c.remote_secret_ciphertext),
        StoredSecret(Order.__table__.c.delivery_ciphertext),
        StoredSecret(OrderAnswer.__table__.c.value_ciphertext),
        StoredSecret(OutboxEmail.__table__.c.payload_ciphertext),
        StoredSecret(GatewayConfig.__table__.c.settings_ciphertext),
        StoredSecret(Setting.__table__.c.value, only=Setting.__table__.c.key == "smtp_password"),
        StoredSecret(Merchant.__table__.c.id_number_ciphertext),
        StoredSecret(PayoutAccount.__table__.c.account_ciphertext),
        StoredSecret(User.__table__.c.totp_secret),
        StoredSecret(WebhookEndpoint.__table__.c.secret_ciphertext),
        StoredSecret(PushChannel.__table__.c.settings_ciphertext),
        StoredSecret(ApiIdempotencyKey.__table__.c.response_ciphertext),  # API answers kept a day for retries
        # Plain JSON (starting "{") is a payload written before payloads were encrypted.
        StoredSecret(WebhookDelivery.__table__.c.payload, only=~WebhookDelivery.__table__.c.payload.startswith("{")),
    ]


@dataclass
class Tally:
    current: int = 0  # encrypted with the newest key
    older: int = 0  # needing an older key (re-encrypted, when rotating)
    unreadable: int = 0  # no configured key opens it

    @property
    def total(self) -> int:
        return self.current + self.older + self.unreadable


CURRENT, OLDER, UNREADABLE = "current", "older", "unreadable"


def _state(v: Vault, ciphertext: str, fingerprint: str | None) -> tuple[str, str | None]:
    plaintext = v.decrypt_with_newest(ciphertext)
    if plaintext is not None:
        return (CURRENT if fingerprint is None or fingerprint == v.fingerprint(plaintext) else OLDER), plaintext
    try:
        return OLDER, v.decrypt(ciphertext)
    except InvalidToken:
        return UNREADABLE, None


def _batch(secret: StoredSecret, after, limit: int = BATCH) -> list:
    """(primary key, ciphertext, fingerprint or None) of the next rows holding this secret."""
    key = next(iter(secret.column.table.primary_key.columns))
    query = select(key, secret.column, secret.fingerprint if secret.fingerprint is not None else null()).where(
        secret.column.is_not(None), secret.column != ""
    )
    if secret.only is not None:
        query = query.where(secret.only)
    if after is not None:
        query = query.where(key > after)
    return db.session.execute(query.order_by(key).limit(limit)).all()


def rotate_all() -> dict[str, Tally]:
    """Re-encrypt every secret not yet under the newest key (and recompute its fingerprint),
    in batches, each its own transaction: a run can be interrupted and started again.
    Returns, per place, how many were already current, re-encrypted, or unreadable (left
    as they are: the key that opens them is missing)."""
    v = vault()
    report = {}
    for secret in stored_secrets():
        tally = report[secret.label] = Tally()
        table = secret.column.table
        key = next(iter(table.primary_key.columns))
        values = {secret.column.name: bindparam("b_new")}
        if secret.fingerprint is not None:
            values[secret.fingerprint.name] = bindparam("b_fingerprint")
        # Only if unchanged since read: a row the shop rewrote meanwhile is already current.
        statement = update(table).where(key == bindparam("b_key"), secret.column == bindparam("b_old")).values(values)
        after = None
        while True:
            with write_transaction():  # one per batch
                rows = _batch(secret, after)
                if not rows:
                    break  # nothing written
                changes = []
                for row_key, ciphertext, fingerprint in rows:
                    state, plaintext = _state(v, ciphertext, fingerprint)
                    setattr(tally, state, getattr(tally, state) + 1)
                    if state == OLDER:
                        changes.append(
                            {
                                "b_key": row_key,
                                "b_old": ciphertext,
                                "b_new": v.encrypt(plaintext),
                                "b_fingerprint": v.fingerprint(plaintext),
                            }
                        )
                if changes:
                    db.session.execute(statement, changes)
            after = rows[-1][0]
    report[IMPORT_FILES] = _walk_import_files(v, rewrite=True)
    return report


def check(v: Vault | None = None, sample: int | None = None) -> dict[str, Tally]:
    """Which stored secrets the newest key alone opens, which need an older key, and which
    none opens. `sample` looks at only that many values per place (the restore's check)."""
    v = v or vault()
    report = {}
    for secret in stored_secrets():
        tally = report[secret.label] = Tally()
        after = None
        while True:
            rows = _batch(secret, after, sample or BATCH)
            for _key, ciphertext, fingerprint in rows:
                state, _plaintext = _state(v, ciphertext, fingerprint)
                setattr(tally, state, getattr(tally, state) + 1)
            if not rows or sample:
                break
            after = rows[-1][0]
        db.session.rollback()  # only ends the read transaction: nothing was written
    report[IMPORT_FILES] = _walk_import_files(v, rewrite=False, sample=sample)
    return report


def _walk_import_files(v: Vault, rewrite: bool, sample: int | None = None) -> Tally:
    """The big key imports waiting for their job, in whichever storage holds them.

    Rewriting, the file of a finished import is not re-encrypted: it is what its job
    failed to remove, and goes now. A job that finishes while its file is rewritten
    removes the file before the rewrite stores it again: the import is looked at once
    more after the write, and the file removed then. A file without its import's row (one
    being started, which stores the file first, or left by a crash) is re-encrypted: it
    must not keep an older key in use."""
    tally = Tally()
    store = storage()
    names = [name for name in store.names(IMPORTS) if name.endswith(".fernet")]
    names = names[:sample] if sample else names
    statuses = _import_statuses(names) if rewrite else {}
    for name in names:
        if rewrite and statuses.get(name) in FINISHED:
            store.delete(IMPORTS, [name])
            continue
        ciphertext = store.read(IMPORTS, name)
        if ciphertext is None:  # its job finished meanwhile
            continue
        state, plaintext = _state(v, ciphertext.decode(), None)
        setattr(tally, state, getattr(tally, state) + 1)
        if rewrite and state == OLDER:
            store.save(IMPORTS, name, v.encrypt(plaintext).encode())
            if _import_statuses([name]).get(name) in FINISHED:
                store.delete(IMPORTS, [name])
    return tally


FINISHED = (KeyImport.DONE, KeyImport.FAILED)


def _import_statuses(names: list[str]) -> dict[str, str]:
    """The status of the import each file name (<public id>.fernet) belongs to, as now
    committed; names of no import are left out."""
    by_id = {name.removesuffix(".fernet"): name for name in names}
    found = {}
    ids = list(by_id)
    for start in range(0, len(ids), BATCH):
        query = select(KeyImport.public_id, KeyImport.status).where(KeyImport.public_id.in_(ids[start : start + BATCH]))
        found.update({by_id[public_id]: status for public_id, status in db.session.execute(query)})
    db.session.rollback()  # only ends the read: the next look sees what jobs committed since
    return found


class KeysInEnvironment(Exception):
    """The keys come from FAKA_ENCRYPTION_KEYS, which only the operator can change."""


class OlderKeysStillNeeded(Exception):
    def __init__(self, report: dict[str, Tally]):
        super().__init__("some secrets still need an older key")
        self.report = report


def add_key() -> Path:
    """Put a new key in front of the instance's key file; returns the file."""
    if keys_from_environment():
        raise KeysInEnvironment()
    path = key_file()
    keys = [Fernet.generate_key().decode(), *parse_keys(path.read_text())]
    write_private_file(path, "\n".join(keys) + "\n")
    return path


def retire_older_keys() -> int:
    """Drop every key but the newest from the instance's key file, once nothing stored
    needs them (rotate-keys --check passes). Returns how many were dropped."""
    if keys_from_environment():
        raise KeysInEnvironment()
    report = check()
    if any(t.older or t.unreadable for t in report.values()):
        raise OlderKeysStillNeeded(report)
    path = key_file()
    keys = parse_keys(path.read_text())
    if len(keys) > 1:
        write_private_file(path, keys[0] + "\n")
    return len(keys) - 1
