"""Importing card keys and re-encrypting them when the encryption key rotates."""
from dataclasses import dataclass, field

from sqlalchemy import select

from faka.database import begin_write
from faka.extensions import db
from faka.models import CardKey, GatewayConfig, Order, Product
from faka.services.crypto import vault

MAX_KEY_LENGTH = 2000
ROTATE_BATCH = 500


@dataclass
class ImportReport:
    added: int = 0
    duplicates: list[str] = field(default_factory=list)
    invalid: list[str] = field(default_factory=list)


def import_keys(product_id: int, text: str) -> ImportReport:
    """Add one key per non-empty line; report duplicates (already in stock or repeated in
    the paste) and invalid lines instead of failing the whole import."""
    report = ImportReport()
    v = vault()
    candidates: dict[str, str] = {}  # stored fingerprint -> key
    lookups: dict[str, str] = {}  # every fingerprint under every key -> stored fingerprint
    for line in text.splitlines():
        key = line.strip()
        if not key:
            continue
        if len(key) > MAX_KEY_LENGTH or any(ord(ch) < 32 for ch in key):
            report.invalid.append(key[:40])
            continue
        fingerprints = v.all_fingerprints(key)
        if fingerprints[0] in candidates:
            report.duplicates.append(key)
            continue
        candidates[fingerprints[0]] = key
        for fp in fingerprints:
            lookups[fp] = fingerprints[0]

    begin_write()
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
            report.duplicates.append(key)
        else:
            rows.append({"product_id": product_id, "ciphertext": v.encrypt(key), "fingerprint": fp, "status": CardKey.AVAILABLE})
    if rows:
        db.session.execute(CardKey.__table__.insert(), rows)
    db.session.commit()
    report.added = len(rows)
    return report


def rotate_all() -> int:
    """Re-encrypt every secret under the newest key and recompute fingerprints."""
    v = vault()
    count = 0
    last_id = 0
    while True:
        begin_write()
        batch = db.session.execute(
            select(CardKey).where(CardKey.id > last_id).order_by(CardKey.id).limit(ROTATE_BATCH)
        ).scalars().all()
        if not batch:
            db.session.commit()
            break
        for key in batch:
            key.fingerprint = v.fingerprint(v.decrypt(key.ciphertext))
            key.ciphertext = v.rotate(key.ciphertext)
        last_id = batch[-1].id
        count += len(batch)
        db.session.commit()
    begin_write()
    for product in db.session.execute(select(Product).where(Product.fixed_content_ciphertext.is_not(None))).scalars():
        product.fixed_content_ciphertext = v.rotate(product.fixed_content_ciphertext)
        count += 1
    for order in db.session.execute(select(Order).where(Order.delivery_ciphertext.is_not(None))).scalars():
        order.delivery_ciphertext = v.rotate(order.delivery_ciphertext)
        count += 1
    for gateway in db.session.execute(select(GatewayConfig).where(GatewayConfig.settings_ciphertext != "")).scalars():
        gateway.settings_ciphertext = v.rotate(gateway.settings_ciphertext)
        count += 1
    db.session.commit()
    return count
