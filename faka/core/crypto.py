"""Encryption of secrets at rest: card keys, delivered content, buyers' checkout answers,
gateway settings, the SMTP password, payout accounts, ID numbers, TOTP secrets, webhook
secrets and payloads, queued emails.

The keys live outside the database: FAKA_ENCRYPTION_KEYS (comma-separated Fernet keys,
newest first) or, when that is unset, `encryption.keys` in the instance folder, generated
on first start. MultiFernet encrypts with the newest key and decrypts with any, so a new
key can be put in front and `flask rotate-keys` re-encrypts everything with it; once
`rotate-keys --check` finds nothing that needs an older key, the older keys can go.

Fingerprints (to find duplicate keys without decrypting) are HMAC-SHA256 under a key
derived from an encryption key; rotate-keys recomputes them, and duplicate checks try
every configured key so nothing slips through in between.

`stored_secrets()` names every column that holds ciphertext. Rotation, the check and the
restore's sample all walk it, so a new encrypted column must be added there (a test
compares it with the models).
"""

import hashlib
import hmac
import os
from dataclasses import dataclass
from pathlib import Path

from cryptography.fernet import Fernet, InvalidToken, MultiFernet
from flask import current_app
from sqlalchemy import Column, ColumnElement, bindparam, null, select, update

from faka.accounts.models import Merchant, User
from faka.catalog.models import OrderAnswer, Product
from faka.core.db import write_transaction
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import PayoutAccount
from faka.messaging.models import OutboxEmail, WebhookDelivery, WebhookEndpoint
from faka.orders.models import Order
from faka.payments.models import GatewayConfig
from faka.platform.models import Setting

KEY_FILE = "encryption.keys"
BATCH = 500
IMPORT_FILES = "uploads/imports/*.fernet"  # big key imports waiting for their job


def init_app(app) -> None:
    raw = app.config.get("ENCRYPTION_KEYS") or _load_or_create_key_file(app.instance_path)
    app.extensions["faka_crypto"] = make_vault(raw)


def parse_keys(raw: str) -> list[str]:
    """Keys from FAKA_ENCRYPTION_KEYS (comma-separated) or the key file (one a line)."""
    return [k.strip() for k in raw.replace("\n", ",").split(",") if k.strip()]


def make_vault(raw: str) -> "Vault":
    keys = parse_keys(raw)
    try:
        fernets = [Fernet(k) for k in keys]
    except ValueError as exc:
        raise RuntimeError("FAKA_ENCRYPTION_KEYS holds a value that is not a Fernet key") from exc
    if not fernets:
        raise RuntimeError("no encryption key configured")
    return Vault(keys, fernets)


def _load_or_create_key_file(instance_path: str) -> str:
    path = Path(instance_path) / KEY_FILE
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(Fernet.generate_key().decode() + "\n")
    return path.read_text()


def keys_from_environment() -> bool:
    """Whether the running app's keys come from FAKA_ENCRYPTION_KEYS (which wins over the file)."""
    return bool(current_app.config.get("ENCRYPTION_KEYS"))


def key_file() -> Path:
    return Path(current_app.instance_path) / KEY_FILE


def write_private_file(path: Path, text: str) -> None:
    """Replace `path` with `text`, readable by its owner only, never half-written."""
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_name(f".{path.name}.partial")
    partial.unlink(missing_ok=True)
    fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(partial, path)


class Vault:
    def __init__(self, keys: list[str], fernets: list[Fernet]):
        self.keys = tuple(keys)  # for backups only: never log them
        self._newest = fernets[0]
        self._multi = MultiFernet(fernets)
        self._fingerprint_keys = [
            hmac.new(k.encode(), b"faka card-key fingerprint", hashlib.sha256).digest() for k in keys
        ]

    def __repr__(self) -> str:
        return f"<Vault with {len(self.keys)} key(s)>"

    def encrypt(self, plaintext: str) -> str:
        return self._multi.encrypt(plaintext.encode()).decode()

    def decrypt(self, ciphertext: str) -> str:
        return self._multi.decrypt(ciphertext.encode()).decode()

    def decrypt_with_newest(self, ciphertext: str) -> str | None:
        """The plaintext if the newest key alone opens it, else None."""
        try:
            return self._newest.decrypt(ciphertext.encode()).decode()
        except InvalidToken:
            return None

    def rotate(self, ciphertext: str) -> str:
        return self._multi.rotate(ciphertext.encode()).decode()

    def fingerprint(self, plaintext: str) -> str:
        """The fingerprint under the newest key: the one stored."""
        return self._hmac(self._fingerprint_keys[0], plaintext)

    def all_fingerprints(self, plaintext: str) -> list[str]:
        """Fingerprints under every configured key, newest first."""
        return [self._hmac(k, plaintext) for k in self._fingerprint_keys]

    @staticmethod
    def _hmac(key: bytes, plaintext: str) -> str:
        return hmac.new(key, plaintext.encode(), hashlib.sha256).hexdigest()


def vault() -> Vault:
    return current_app.extensions["faka_crypto"]


# -- where secrets are stored, rotation and the check ----------------------------------------


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
        StoredSecret(Order.__table__.c.delivery_ciphertext),
        StoredSecret(OrderAnswer.__table__.c.value_ciphertext),
        StoredSecret(OutboxEmail.__table__.c.payload_ciphertext),
        StoredSecret(GatewayConfig.__table__.c.settings_ciphertext),
        StoredSecret(Setting.__table__.c.value, only=Setting.__table__.c.key == "smtp_password"),
        StoredSecret(Merchant.__table__.c.id_number_ciphertext),
        StoredSecret(PayoutAccount.__table__.c.account_ciphertext),
        StoredSecret(User.__table__.c.totp_secret),
        StoredSecret(WebhookEndpoint.__table__.c.secret_ciphertext),
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
    tally = Tally()
    folder = Path(current_app.instance_path) / "uploads" / "imports"
    files = sorted(folder.glob("*.fernet")) if folder.is_dir() else []
    for path in files[:sample] if sample else files:
        state, plaintext = _state(v, path.read_text(), None)
        setattr(tally, state, getattr(tally, state) + 1)
        if rewrite and state == OLDER:
            write_private_file(path, v.encrypt(plaintext))
    return tally


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


__all__ = ["InvalidToken", "Vault", "init_app", "vault"]
