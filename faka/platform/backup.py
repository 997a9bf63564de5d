"""A whole shop in one archive (`flask backup`), and back (`flask restore`).

The archive is a tar.gz:

    manifest.json          faka commit, database kind, schema revision, rows per table, files, when
    data/<table>.jsonl     every row of every table in the portable format of dbcopy.py
    keys/encryption.keys   the Fernet keys in use, newest first (from FAKA_ENCRYPTION_KEYS or the file)
    keys/secret.key        SECRET_KEY: sessions, signed links, device and IP hashes, captcha signatures
    uploads/<area>/<name>  the uploads: evidence images, licences, the logo, product images, pending key imports
    uploads-skipped.json   the uploads deleted while the backup was written (only when there were)

The rows come from one consistent snapshot (never a file copy of a live database), in a
format that restores into SQLite or PostgreSQL alike, whichever the backup came from. The
uploads come from both storages (faka/core/storage.py), the instance folder and the
database, whichever this process is configured with: `flask backup` run from a cron job
without FAKA_UPLOAD_STORAGE=database still carries the files in the database. A file in
both is taken from the configured one. The database storage's tables are written as uploads/
files, not as rows, and a restore puts them into whichever storage the restoring instance uses.
A file deleted while the backup runs (a key import its job finished) is left out and counted;
a symbolic link in the instance folder is never followed.
With the keys inside, an archive opens every secret it holds, so it is written readable
by its owner only and must be kept like the keys themselves.

A restore builds the schema at the backup's revision (Alembic), loads the rows in one
transaction and checks their counts against the manifest, writes the keys into the
instance folder, upgrades the schema to this version's, puts the uploads back, and
decrypts a sample of every kind of stored secret with the restored keys.
"""

import io
import json
import os
import subprocess
import tarfile
import tempfile
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path, PurePosixPath

from alembic.script import ScriptDirectory
from alembic.util import CommandError
from flask import current_app
from flask_migrate import upgrade

from faka.core import crypto, instance, storage
from faka.core.storage import FileGone, Storage
from faka.extensions import db
from faka.platform import dbcopy, key_rotation

FORMAT = "faka-backup"
FORMAT_VERSION = 1
MANIFEST = "manifest.json"
SKIPPED = "uploads-skipped.json"
ENCRYPTION_KEYS = "keys/encryption.keys"
SECRET_KEY = "keys/secret.key"
SECRET_FILE = "secret.key"  # in the instance folder, as faka/core/instance.py generates it
SPOOL_BYTES = 8 * 1024 * 1024  # a table's dump stays in memory up to this size
SAMPLE = 10  # secrets decrypted per column after a restore


class BackupError(Exception):
    """The archive or the target cannot be used; the message says why and what to do."""


@dataclass
class BackupResult:
    path: Path
    size: int
    manifest: dict
    skipped: list[str] = field(default_factory=list)  # "area/name" of uploads deleted while written

    @property
    def notes(self) -> list[str]:
        """What the operator must hear about the uploads of this backup."""
        uploads, notes = self.manifest["uploads"], []
        elsewhere = {kind: n for kind, n in uploads["from"].items() if kind != uploads["storage"] and n}
        for kind, n in elsewhere.items():
            notes.append(
                f"{n} uploaded files were in the {kind} storage, though this process uses the "
                f"{uploads['storage']} storage: they are in the backup. Give faka's commands (cron jobs "
                f"too) the FAKA_UPLOAD_STORAGE the web hosts use."
            )
        if self.skipped:
            notes.append(
                f"{len(self.skipped)} uploaded files were deleted while the backup was written and are "
                f"not in it: {', '.join(self.skipped[:5])}{' …' if len(self.skipped) > 5 else ''}"
            )
        return notes


def default_path(folder: str | Path | None = None) -> Path:
    folder = Path(folder) if folder else Path(current_app.instance_path) / "backups"
    return folder / f"faka-{datetime.now(UTC):%Y%m%d-%H%M%S}.tar.gz"


def create_backup(path: Path) -> BackupResult:
    path = Path(path).resolve()
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=path.parent, prefix=".faka-backup-") as work:
        dumps = []
        with dbcopy.snapshot(db.engine) as conn:
            state = dbcopy.inspect(conn)
            for table in (t for t in state.tables if t.name not in storage.TABLES):  # they go as uploads/
                dump = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=work)
                rows = 0
                for batch in dbcopy.export_rows(conn, table):
                    dump.writelines(
                        json.dumps(row, ensure_ascii=False, separators=(",", ":")).encode() + b"\n" for row in batch
                    )
                    rows += len(batch)
                dumps.append((table.name, rows, dump))
        files = _uploads()
        manifest = {
            "format": FORMAT,
            "format_version": FORMAT_VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
            "faka_commit": _commit(),
            "database": db.engine.dialect.name,
            "alembic_revision": state.revision,
            "tables": [{"name": name, "rows": rows} for name, rows, _dump in dumps],
            "uploads": {
                "files": len(files),
                "bytes": sum(size for _backend, size in files.values()),
                "storage": storage.storage().kind,
                "from": {kind: sum(1 for b, _size in files.values() if b.kind == kind) for kind in storage.BACKENDS},
            },
            "keys": {
                "encryption_keys": len(crypto.vault().keys),
                "encryption_keys_from": "environment" if crypto.keys_from_environment() else "instance file",
                "secret_key_from": "environment" if _secret_from_environment() else "instance file",
            },
        }
        partial = path.with_name(f".{path.name}.partial")
        partial.unlink(missing_ok=True)
        with os.fdopen(os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as raw:
            with tarfile.open(fileobj=raw, mode="w:gz") as tar:
                _add(tar, MANIFEST, json.dumps(manifest, indent=2).encode())
                for name, _rows, dump in dumps:
                    _add(tar, f"data/{name}.jsonl", dump)
                    dump.close()
                _add(tar, ENCRYPTION_KEYS, ("\n".join(crypto.vault().keys) + "\n").encode())
                _add(tar, SECRET_KEY, (current_app.config["SECRET_KEY"] + "\n").encode())
                skipped = []
                for (area, name), (backend, _size) in files.items():
                    copy = _whole(backend, area, name, work)
                    if copy is None:  # a key import its job finished meanwhile
                        skipped.append(f"{area}/{name}")
                        continue
                    with copy:
                        _add(tar, f"uploads/{area}/{name}", copy)
                if skipped:
                    _add(tar, SKIPPED, json.dumps(skipped).encode())
            raw.flush()
            os.fsync(raw.fileno())
        os.replace(partial, path)
    return BackupResult(path, path.stat().st_size, manifest, skipped)


def _uploads() -> dict[tuple[str, str], tuple[Storage, int]]:
    """Every uploaded file, by area and name, with the storage it is taken from and its
    size: those of the configured storage, then those only the other one holds."""
    configured = storage.storage()
    other = storage.backend(next(k for k in storage.BACKENDS if k != configured.kind), current_app.instance_path)
    files: dict[tuple[str, str], tuple[Storage, int]] = {}
    for backend in (configured, other):
        for area in storage.AREAS:
            for name, size in backend.listing(area).items():
                files.setdefault((area, name), (backend, size))
    return files


def _whole(backend: Storage, area: str, name: str, work: str) -> tempfile.SpooledTemporaryFile | None:
    """The file's bytes, read to their end before any goes into the archive (a tar entry
    cannot end short), or None when it is gone. A file replaced while read (a key
    rotation) is read once more."""
    for _attempt in range(2):
        stored = backend.open(area, name)
        if stored is None:
            return None
        copy = tempfile.SpooledTemporaryFile(max_size=SPOOL_BYTES, dir=work)
        try:
            for piece in stored.chunks:
                copy.write(piece)
        except FileGone:
            copy.close()
            continue
        return copy
    return None


def _add(tar: tarfile.TarFile, name: str, content, size: int | None = None) -> None:
    if isinstance(content, bytes):
        content, size = io.BytesIO(content), len(content)
    elif size is None:  # a spooled dump: its size is where writing stopped
        size = content.tell()
        content.seek(0)
    info = tarfile.TarInfo(name)
    info.size, info.mode, info.mtime = size, 0o600, int(datetime.now(UTC).timestamp())
    tar.addfile(info, content)


def prune(folder: Path, keep: int) -> list[Path]:
    """Delete all but the newest `keep` archives this command named in `folder`."""
    archives = sorted(folder.glob("faka-*.tar.gz"), key=lambda p: p.stat().st_mtime, reverse=True)
    for old in archives[keep:]:
        old.unlink()
    return archives[keep:]


def _secret_file() -> Path:
    return Path(current_app.instance_path) / SECRET_FILE


def _secret_from_environment() -> bool:
    file = _secret_file()
    return not (file.exists() and file.read_text().strip() == current_app.config["SECRET_KEY"])


def _commit() -> str | None:
    try:
        result = subprocess.run(
            ["git", "-C", str(instance.ROOT), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return result.stdout.strip() or None if result.returncode == 0 else None


# -- restoring ----------------------------------------------------------------------------


def read_manifest(path: Path) -> dict:
    try:
        with tarfile.open(path, "r:gz") as tar:
            first = tar.next()
            if first is None or first.name != MANIFEST:
                raise BackupError(f"{path} is not a faka backup (it has no {MANIFEST} first)")
            manifest = json.load(tar.extractfile(first))
    except FileNotFoundError as exc:
        raise BackupError(f"{path} does not exist") from exc
    except (tarfile.TarError, OSError, EOFError, ValueError) as exc:
        raise BackupError(f"{path} is not a faka backup, or it is damaged ({exc})") from exc
    if manifest.get("format") != FORMAT or manifest.get("format_version") != FORMAT_VERSION:
        raise BackupError(f"{path} is not a faka backup of a format this version reads")
    return manifest


def target_state() -> dbcopy.DatabaseState:
    with db.engine.connect() as conn:
        return dbcopy.inspect(conn)


@dataclass
class RestoreReport:
    manifest: dict
    restored: dict[str, int]  # rows per table after loading
    upgraded_from: str | None  # the backup's revision when the schema was then upgraded
    head: str
    uploads: int
    key_file: Path
    secret_file: Path
    kept: list[Path] = field(default_factory=list)  # key files of the replaced shop, set aside
    sample: dict[str, key_rotation.Tally] = field(default_factory=dict)
    encryption_keys_env_differs: bool = False
    secret_key_env_differs: bool = False
    uploads_expected: int = 0  # what the manifest lists, less those deleted while the backup was written

    @property
    def notes(self) -> list[str]:
        """What the operator must hear about the restored uploads."""
        if self.uploads == self.uploads_expected:
            return []
        return [
            f"the archive holds {self.uploads} uploaded files, but its manifest lists {self.uploads_expected}: "
            f"it is incomplete or damaged, and pages may miss images (a licence, evidence, a product picture) "
            f"or a waiting key import may fail"
        ]

    @property
    def undecryptable(self) -> int:
        return sum(t.unreadable for t in self.sample.values())


def restore_backup(path: Path, force: bool = False) -> RestoreReport:
    manifest = read_manifest(path)
    revision, head = _revisions(manifest)
    before = target_state()
    if before.data_rows and not force:
        raise BackupError(
            f"{dbcopy.describe(db.engine)} already holds data ({before.data_rows} rows): restore into "
            f"an empty database, or pass --force to replace everything in it"
        )
    secret_from_env = _secret_from_environment()
    with tarfile.open(path, "r:gz") as tar:
        members = {m.name: m for m in tar.getmembers()}
        missing = [t["name"] for t in manifest["tables"] if f"data/{t['name']}.jsonl" not in members]
        missing += [name for name in (ENCRYPTION_KEYS, SECRET_KEY) if name not in members]
        if missing:
            raise BackupError(f"the archive is incomplete: {', '.join(missing)} missing")
        keys = crypto.parse_keys(tar.extractfile(members[ENCRYPTION_KEYS]).read().decode())
        secret = tar.extractfile(members[SECRET_KEY]).read().decode().strip()
        restored_vault = crypto.make_vault(",".join(keys))

        if before.revision != revision or not before.tables:
            with db.engine.begin() as conn:
                dbcopy.drop_everything(conn)
            upgrade(revision=revision)
        with db.engine.begin() as conn:
            state = dbcopy.inspect(conn)
            dbcopy.clear(conn, state.tables)
            streams = ((t["name"], _jsonl(tar, members[f"data/{t['name']}.jsonl"])) for t in manifest["tables"])
            try:
                dbcopy.load(conn, state, streams)
            except dbcopy.CopyError as exc:
                raise BackupError(str(exc)) from exc
            restored = dbcopy.row_counts(conn, state.tables)
            differ = [
                f"{t['name']} {t['rows']} → {restored.get(t['name'])}"
                for t in manifest["tables"]
                if restored.get(t["name"]) != t["rows"]
            ]
            if differ:
                raise BackupError("the archive is damaged, row counts differ from its manifest: " + ", ".join(differ))

        report = RestoreReport(
            manifest, restored, revision if revision != head else None, head, 0, crypto.key_file(), _secret_file()
        )
        report.kept = _write_keys(report, "\n".join(keys) + "\n", secret + "\n", keep_old=bool(before.data_rows))
        if revision != head:
            upgrade()
        # Once the schema is this version's: the database storage's tables may be newer than the backup.
        report.uploads = _restore_uploads(tar, members.values())
        skipped = json.load(tar.extractfile(members[SKIPPED])) if SKIPPED in members else []
        report.uploads_expected = manifest["uploads"]["files"] - len(skipped)
    report.sample = key_rotation.check(restored_vault, sample=SAMPLE)
    report.encryption_keys_env_differs = (
        crypto.keys_from_environment() and crypto.parse_keys(current_app.config["ENCRYPTION_KEYS"]) != keys
    )
    report.secret_key_env_differs = secret_from_env and current_app.config["SECRET_KEY"] != secret
    return report


def _revisions(manifest: dict) -> tuple[str, str]:
    """The backup's schema revision (which this version must know) and this version's."""
    scripts = ScriptDirectory(instance.migrations_path())
    revision = manifest.get("alembic_revision")
    if not revision:
        raise BackupError("the backup records no schema revision: it comes from a database init-db never ran on")
    try:
        known = scripts.get_revision(revision)
    except CommandError:
        known = None
    if known is None:
        raise BackupError(
            f"the backup's schema (revision {revision}) is newer than this version of faka: "
            f"update faka first, then restore"
        )
    return revision, scripts.get_current_head()


def _jsonl(tar: tarfile.TarFile, member: tarfile.TarInfo):
    batch = []
    for line in tar.extractfile(member):
        batch.append(json.loads(line))
        if len(batch) >= dbcopy.BATCH:
            yield batch
            batch = []
    if batch:
        yield batch


def _restore_uploads(tar: tarfile.TarFile, members) -> int:
    """Put the archive's uploads/<area>/<name> files into this instance's storage. Anything
    else under uploads/ (an interrupted write's hidden temporary file) is left out."""
    store = storage.storage()
    count = 0
    for member in members:
        name = PurePosixPath(member.name)
        if name.parts[:1] != ("uploads",) or len(name.parts) < 2:
            continue
        if not member.isfile() or name.is_absolute() or ".." in name.parts:
            raise BackupError(f"the archive holds an unsafe upload entry: {member.name}")
        if len(name.parts) != 3 or not storage.valid(name.parts[1], name.parts[2]):
            continue
        try:
            store.save(name.parts[1], name.parts[2], tar.extractfile(member))
        except OSError as exc:
            raise BackupError(f"could not restore {member.name} into the {store.kind} storage: {exc}") from exc
        count += 1
    return count


def _write_keys(report: RestoreReport, keys: str, secret: str, keep_old: bool) -> list[Path]:
    """Put the backup's keys in the instance folder. When they replace the keys of a shop
    whose data the restore replaced, the old files are set aside, not deleted."""
    kept = []
    for file, text in ((report.key_file, keys), (report.secret_file, secret)):
        if keep_old and file.exists() and file.read_text() != text:
            aside = file.with_name(f"{file.name}.before-restore")
            os.replace(file, aside)
            kept.append(aside)
        crypto.write_private_file(file, text)
    return kept
