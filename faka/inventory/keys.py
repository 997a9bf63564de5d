"""Importing card keys: from a paste or a file, big imports as a job; voiding and exporting them."""

import json
import logging
import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from flask_babel import lazy_gettext as _l
from sqlalchemy import func, select, text, update

from faka.catalog.models import Product, ProductVariant
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import is_postgresql, write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.storage import IMPORTS, storage
from faka.extensions import db
from faka.inventory.models import CardKey, KeyImport
from faka.messaging.models import RestockRequest
from faka.orders.models import Order
from faka.platform import audit

MAX_KEY_LENGTH = 2000

log = logging.getLogger(__name__)


SAMPLE_LIMIT = 20  # lines quoted back per category in a report
JOB_THRESHOLD_LINES = 2000  # bigger imports run as a job with progress
CHUNK_LINES = 5000
IMPORT_GRACE = timedelta(minutes=2)  # a queued import not started by then has lost its job
SEPARATORS = {"newline": "\n", "comma": ",", "semicolon": ";", "tab": "\t", "space": " ", "pipe": "|"}
# What an import report calls the lines it quotes back, by ImportReport.samples' keys.
SAMPLE_LABELS = {
    "duplicate_in_batch": _l("Repeated in this batch"),
    "already_in_stock": _l("Already in stock"),
    "invalid": _l("Invalid (too long or control characters)"),
}


@dataclass
class ImportReport:
    added: int = 0
    duplicate_in_batch: int = 0
    already_in_stock: int = 0
    invalid: int = 0
    samples: dict[str, list[str]] = field(
        default_factory=lambda: {"duplicate_in_batch": [], "already_in_stock": [], "invalid": []}
    )

    def _note(self, kind: str, line: str) -> None:
        setattr(self, kind, getattr(self, kind) + 1)
        if len(self.samples[kind]) < SAMPLE_LIMIT:
            self.samples[kind].append(line[:60])

    def merge(self, other: "ImportReport") -> None:
        self.added += other.added
        for kind in self.samples:
            setattr(self, kind, getattr(self, kind) + getattr(other, kind))
            room = SAMPLE_LIMIT - len(self.samples[kind])
            self.samples[kind].extend(other.samples[kind][:room])


def split_keys(text: str, separator: str = "newline") -> list[str]:
    """The raw pieces of an import, empty ones dropped (a trailing newline is no key)."""
    sep = SEPARATORS.get(separator, separator) or "\n"
    text = text.replace("\r\n", "\n").lstrip("\ufeff")
    pieces = text.split("\n") if sep == "\n" else [p for line in text.split("\n") for p in line.split(sep)]
    return [p.strip() for p in pieces if p.strip()]


def import_keys(variant: ProductVariant, text: str, separator: str = "newline") -> ImportReport:
    """Import keys into a variant's stock in one transaction; see import_key_list."""
    return import_key_list(variant.product_id, variant.id, split_keys(text, separator))


def import_key_list(product_id: int, variant_id: int, keys: list[str], seen: set[str] | None = None) -> ImportReport:
    """Add keys to a variant's stock and say what happened to each: added, repeated in
    this batch, already in stock (found by fingerprint, nothing decrypted; a key is unique
    across all the variants of its product) or invalid (too long or with control
    characters). `seen` carries fingerprints between the chunks of one big import."""
    report = ImportReport()
    v = vault()
    seen = set() if seen is None else seen
    candidates: dict[str, str] = {}  # stored fingerprint -> key
    lookups: dict[str, str] = {}  # every fingerprint under every key -> stored fingerprint
    for key in keys:
        if len(key) > MAX_KEY_LENGTH or any(ord(ch) < 32 for ch in key):
            report._note("invalid", key)
            continue
        fingerprints = v.all_fingerprints(key)
        if fingerprints[0] in seen or fingerprints[0] in candidates:
            report._note("duplicate_in_batch", key)
            continue
        candidates[fingerprints[0]] = key
        for fp in fingerprints:
            lookups[fp] = fingerprints[0]

    with write_transaction():
        _check_on_sale(variant_id)
        existing: set[str] = set()
        all_fps = list(lookups)
        for start in range(0, len(all_fps), 900):
            chunk = all_fps[start : start + 900]
            existing.update(
                lookups[fp]
                for fp in db.session.execute(
                    select(CardKey.fingerprint).where(CardKey.product_id == product_id, CardKey.fingerprint.in_(chunk))
                ).scalars()
            )
        rows = []
        for fp, key in candidates.items():
            if fp in existing:
                report._note("already_in_stock", key)
            else:
                rows.append(
                    {
                        "product_id": product_id,
                        "variant_id": variant_id,
                        "ciphertext": v.encrypt(key),
                        "fingerprint": fp,
                        "status": CardKey.AVAILABLE,
                    }
                )
        if rows:
            db.session.execute(CardKey.__table__.insert(), rows)
            if _buyers_waiting(variant_id):
                # Told once the keys are committed (faka/messaging/restock.py).
                tasks.enqueue("messaging.tasks.restock_notices", variant_id, job_id=f"restock-{variant_id}")
    seen.update(candidates)
    report.added = len(rows)
    return report


class VariantWithdrawn(DomainError):
    message = _l("That option is no longer sold, so its stock takes no keys.")


class ImportNotStored(DomainError):
    message = _l("The keys could not be stored for the import. Nothing was imported; please try again later.")


def _check_on_sale(variant_id: int) -> None:
    """Refuse keys for a variant (or product) deleted meanwhile. The variant's row is read
    FOR SHARE: a deletion (which updates it, then voids its unsold keys) waits for this
    import to commit, so it voids these keys too."""
    live = db.session.execute(
        select(ProductVariant.id)
        .join(Product, Product.id == ProductVariant.product_id)
        .where(ProductVariant.id == variant_id, ProductVariant.deleted_at.is_(None), Product.deleted_at.is_(None))
        .with_for_update(read=True, of=ProductVariant)
    ).first()
    if live is None:
        raise VariantWithdrawn()


def _buyers_waiting(variant_id: int) -> bool:
    """Someone confirmed a back-in-stock request for this variant and was not told yet."""
    waiting = select(RestockRequest.id).where(
        RestockRequest.variant_id == variant_id,
        RestockRequest.confirmed_at.is_not(None),
        RestockRequest.notified_at.is_(None),
        RestockRequest.cancelled_at.is_(None),
    )
    return db.session.execute(waiting.limit(1)).first() is not None


def start_import(merchant_id: int, variant: ProductVariant, text: str, separator: str = "newline") -> KeyImport:
    """Queue a big import as a job. The text waits encrypted in the storage's `imports`
    area (never in plain text on disk or in the database) until the job has read it.

    The file is stored before the import's row is committed, and removed again if the
    commit fails: a queued import always has its file (ImportNotStored when the storage
    fails, and nothing is queued)."""
    job = KeyImport(
        public_id=secrets.token_hex(16),
        merchant_id=merchant_id,
        product_id=variant.product_id,
        variant_id=variant.id,
        total_lines=len(split_keys(text, separator)),
    )
    name = _import_name(job.public_id)
    upload = vault().encrypt(json.dumps({"text": text, "separator": separator}))
    try:
        storage().save(IMPORTS, name, upload.encode())
    except OSError as exc:  # a full disk, the database gone: nothing half-written stays
        log.error("could not store a key import: %s", exc)
        raise ImportNotStored() from exc
    try:
        with write_transaction():
            db.session.add(job)
    except BaseException:
        try:
            storage().delete(IMPORTS, [name])
        except OSError as exc:  # an orphan file of ciphertext costs only space
            log.warning("could not remove the file of a key import never queued: %s", exc)
        raise
    return job


def run_import(import_id: int) -> KeyImport | None:
    """The job: import in chunks, recording progress after each so the page can show it."""
    job = db.session.get(KeyImport, import_id)
    if job is None or job.status in (KeyImport.DONE, KeyImport.FAILED):
        db.session.rollback()  # only ends the read transaction: nothing to write
        return job
    upload = storage().read(IMPORTS, _import_name(job.public_id))
    if upload is None:
        with write_transaction():
            job.status, job.error, job.finished_at = KeyImport.FAILED, "upload missing", clock.now()
        return job
    variant = db.session.get(ProductVariant, job.variant_id)
    if variant is None or variant.deleted_at is not None:
        # Deleted while the import waited: it is sold no more, so its stock takes no keys.
        with write_transaction():
            job.status, job.error, job.finished_at = KeyImport.FAILED, "variant deleted", clock.now()
        storage().delete(IMPORTS, [_import_name(job.public_id)])
        return job
    waiting = json.loads(vault().decrypt(upload.decode()))
    keys = split_keys(waiting["text"], waiting["separator"])
    product_id, variant_id, public_id = job.product_id, job.variant_id, job.public_id
    # Claimed atomically: a copy of the job queued again by the reconciler while this one
    # waited finds it taken and leaves it alone.
    with write_transaction():
        claimed = db.session.execute(
            update(KeyImport)
            .where(KeyImport.id == import_id, KeyImport.status == KeyImport.QUEUED)
            .values(status=KeyImport.RUNNING)
        ).rowcount
    if not claimed:
        return db.session.get(KeyImport, import_id)
    # A rerun after a crash starts over: keys already added now count as already in stock.
    seen: set[str] = set()
    report = ImportReport()
    status, error = KeyImport.DONE, None
    for start in range(0, len(keys), CHUNK_LINES):
        try:
            report.merge(import_key_list(product_id, variant_id, keys[start : start + CHUNK_LINES], seen))
        except VariantWithdrawn:
            # Deleted while the import ran: the keys it took so far were voided with it.
            status, error = KeyImport.FAILED, "variant deleted"
            break
        _record_progress(import_id, min(start + CHUNK_LINES, len(keys)), report)
        _refresh_statistics()
    with write_transaction():
        job = db.session.get(KeyImport, import_id)
        job.status, job.error, job.finished_at = status, error, clock.now()
    storage().delete(IMPORTS, [_import_name(public_id)])
    return job


def waiting_import_ids(now: datetime) -> list[int]:
    """Imports queued more than IMPORT_GRACE ago and not started: their job may have been
    lost with Redis (the text waits in the storage), so the reconciler queues them again."""
    return list(
        db.session.execute(
            select(KeyImport.id).where(KeyImport.status == KeyImport.QUEUED, KeyImport.created_at < now - IMPORT_GRACE)
        ).scalars()
    )


def _refresh_statistics() -> None:
    """PostgreSQL plans the next chunk's duplicate check from the table's statistics; left
    as they were when the product had few keys, each check scans every key it has (a
    100,000-key import took 80 s instead of 5)."""
    if is_postgresql():
        with write_transaction():
            db.session.execute(text("ANALYZE card_keys"))


def _record_progress(import_id: int, processed: int, report: ImportReport) -> None:
    with write_transaction():
        job = db.session.get(KeyImport, import_id)
        job.processed = processed
        job.added, job.duplicate_in_batch = report.added, report.duplicate_in_batch
        job.already_in_stock, job.invalid = report.already_in_stock, report.invalid


def _import_name(public_id: str) -> str:
    return f"{public_id}.fernet"


def get_import(merchant_id: int, public_id: str) -> KeyImport:
    job = db.session.execute(
        select(KeyImport).where(KeyImport.public_id == public_id, KeyImport.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if job is None:
        raise NotFound()
    return job


def stock_by_status(product_id: int, variant_id: int | None = None) -> dict[str, int]:
    """A product's keys by state: all its variants', or one variant's."""
    query = select(CardKey.status, func.count()).where(CardKey.product_id == product_id)
    if variant_id is not None:
        query = query.where(CardKey.variant_id == variant_id)
    rows = db.session.execute(query.group_by(CardKey.status))
    counts = {status: 0 for status in (CardKey.AVAILABLE, CardKey.RESERVED, CardKey.SOLD, CardKey.VOID)}
    counts.update(dict(rows.all()))
    return counts


def void_keys(variant: ProductVariant, text: str, separator: str = "newline") -> int:
    """Withdraw these keys of a variant from sale (say, ones known to have leaked). Only
    its available keys are voided, found by fingerprint; returns how many."""
    v = vault()
    fingerprints = {fp for key in split_keys(text, separator) for fp in v.all_fingerprints(key)}
    if not fingerprints:
        return 0
    with write_transaction():
        voided = 0
        ordered = list(fingerprints)
        for start in range(0, len(ordered), 900):
            voided += db.session.execute(
                CardKey.__table__.update()
                .where(
                    CardKey.product_id == variant.product_id,
                    CardKey.variant_id == variant.id,
                    CardKey.status == CardKey.AVAILABLE,
                    CardKey.fingerprint.in_(ordered[start : start + 900]),
                )
                .values(status=CardKey.VOID)
            ).rowcount
    return voided


def export_unsold_keys(variant: ProductVariant, actor_id: int) -> list[str]:
    """The plaintext of every available key of a variant, for an export the merchant
    re-authenticated for. Audited (how many, never which)."""
    v = vault()
    keys = [
        v.decrypt(c)
        for c in db.session.execute(
            select(CardKey.ciphertext)
            .where(CardKey.variant_id == variant.id, CardKey.status == CardKey.AVAILABLE)
            .order_by(CardKey.id)
        ).scalars()
    ]
    detail = f"count={len(keys)}"
    if variant.product.has_choice:
        detail += f" variant={variant.key}"
    with write_transaction():
        audit.record(actor_id, "keys.exported", f"product:{variant.product_id}", detail=detail)
    return keys


def delivered_items(order) -> list[str]:
    """The plaintext goods of a delivered order (an Order or an OrderStatus view), for the
    order page, its status widget and the email."""
    if order.status not in Order.SHOWS_GOODS:
        return []
    if order.delivery_ciphertext:
        return [vault().decrypt(order.delivery_ciphertext)]
    keys = db.session.execute(
        select(CardKey.ciphertext)
        .where(CardKey.order_id == order.id, CardKey.status == CardKey.SOLD)
        .order_by(CardKey.id)
    ).scalars()
    return [vault().decrypt(c) for c in keys]
