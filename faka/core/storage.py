"""Where uploaded files live: the instance folder, or the database (FAKA_UPLOAD_STORAGE).

Every upload goes through `storage()`, in one of a few areas:

- `private`: licences, complaint evidence, the site logo and icons, sub-store logos
  (faka/core/uploads.py), served only through views that check who asks;
- `products`: product image renditions named by the hash of their bytes (faka/catalog/images.py);
- `imports`: big key imports, encrypted, waiting for their job (faka/inventory/keys.py).

`local` (the default) keeps them in instance/uploads/<area>/<name>, the layout faka always
had, written to a temporary file and renamed into place, opened as soon as they are asked
for (a file removed while it is sent still goes out whole), symbolic links never followed.
One machine needs nothing more.

`database` keeps them in PostgreSQL, in `stored_files` and their `stored_file_chunks` of
CHUNK bytes, so that every web host behind a load balancer sees what any one received.
A write is its own transaction on its own connection, as a file write is: it is there
once `save` returns, whatever the caller's transaction does next (callers remove what a
rolled-back change wrote, on either backend). A read fetches one chunk per short query on
a pooled connection in autocommit, so serving an image to a slow phone holds neither a
connection nor a transaction between chunks, and nothing is loaded whole into memory. No
session state and no server-side cursor outlive a query, which PgBouncer's transaction
mode needs. It is refused on SQLite: SQLite is one machine's database, where the instance
folder serves, and a second connection writing while a request holds SQLite's write lock
would wait for it until the busy timeout.

`flask storage-move --to database` (or `--to local`) copies every file of the other backend
into the named one, verified, never overwriting one there (`move_files`); with
--delete-source, once the shop uses the named one, it empties the other of what the named
one holds the same. docs/storage.md has the steps.
"""

import errno
import hashlib
import io
import os
import re
import secrets
import stat
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, BinaryIO

from flask import Flask, current_app
from sqlalchemy import (
    Engine,
    ForeignKey,
    Integer,
    LargeBinary,
    Row,
    Select,
    String,
    UniqueConstraint,
    bindparam,
    delete,
    insert,
    select,
    update,
)
from sqlalchemy.exc import DBAPIError, SQLAlchemyError
from sqlalchemy.orm import Mapped, mapped_column

from faka.core.db import Model, reader_engine
from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db

PRIVATE, PRODUCTS, IMPORTS = AREAS = ("private", "products", "imports")
CHUNK = 256 * 1024
# A stored name is one plain file name of ours: letters, digits, "_" and "-", then an
# optional extension. Never a path, never hidden (temporary files start with a dot).
NAME = re.compile(r"[0-9A-Za-z][0-9A-Za-z_-]{0,99}(?:\.[0-9A-Za-z]{1,10})?")
BACKENDS = ("local", "database")
BATCH = 1000  # names per query
_EXTENSION = "faka_storage"


class StorageError(OSError):
    """The backend could not do what it was asked (the database refused or went away). An
    OSError, as a full disk is, so callers handle a failed write the same on both backends."""


class FileGone(StorageError):
    """The file was removed, or replaced by a new version, while its chunks were read."""


class StoredFileRow(Model):
    """An uploaded file kept in the database (the `database` backend): its bytes are its chunks."""

    __tablename__ = "stored_files"
    __table_args__ = (UniqueConstraint("area", "name"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    area: Mapped[str] = mapped_column(String(16))
    name: Mapped[str] = mapped_column(String(120))
    size: Mapped[int] = mapped_column(Integer)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class StoredChunk(Model):
    """One CHUNK of a stored file, in order of `seq` from 0; the last may be shorter."""

    __tablename__ = "stored_file_chunks"

    file_id: Mapped[int] = mapped_column(ForeignKey("stored_files.id", ondelete="CASCADE"), primary_key=True)
    seq: Mapped[int] = mapped_column(Integer, primary_key=True, autoincrement=False)
    data: Mapped[bytes] = mapped_column(LargeBinary)


TABLES = (StoredFileRow.__tablename__, StoredChunk.__tablename__)
_files = StoredFileRow.__table__
_chunks = StoredChunk.__table__
# What a response's headers need, and nothing of the bytes: a HEAD request reads no chunk.
_HEAD = select(_files.c.id, _files.c.size, _files.c.created_at).where(
    _files.c.area == bindparam("area"), _files.c.name == bindparam("name")
)
_CHUNK = select(_chunks.c.data).where(_chunks.c.file_id == bindparam("file_id"), _chunks.c.seq == bindparam("seq"))


def valid(area: str, name: str | None) -> bool:
    """Whether `name` can be a stored file of `area`; any other never reaches a backend."""
    return area in AREAS and bool(name) and NAME.fullmatch(name or "") is not None


def _check(area: str, name: str) -> None:
    if not valid(area, name):
        raise ValueError(f"not a stored file name: {area!r}/{name!r}")


@dataclass
class StoredFile:
    """A stored file to send: its size, when it was stored, and its bytes chunk by chunk
    (read only as they are taken, so a response streams it)."""

    name: str
    size: int
    chunks: Iterator[bytes]
    modified: datetime | None = None

    def read(self) -> bytes:
        return b"".join(self.chunks)

    def reader(self) -> BinaryIO:
        """The bytes as a file object (for tarfile and copies)."""
        return _reader(self.chunks)

    def close(self) -> None:
        """Let go of what a file not read to its end holds (the local storage's open file)."""
        close = getattr(self.chunks, "close", None)
        if close is not None:
            close()


def _reader(chunks: Iterator[bytes]) -> BinaryIO:
    return io.BufferedReader(_ChunkReader(chunks), CHUNK)


class _ChunkReader(io.RawIOBase):
    def __init__(self, chunks: Iterator[bytes]):
        self._chunks = chunks
        self._rest = memoryview(b"")

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        while not self._rest:
            chunk = next(self._chunks, b"")
            if not chunk:
                return 0
            self._rest = memoryview(chunk)
        n = min(len(buffer), len(self._rest))
        buffer[:n] = self._rest[:n]
        self._rest = self._rest[n:]
        return n


def _pieces(data: bytes | BinaryIO) -> Iterator[bytes]:
    stream = io.BytesIO(data) if isinstance(data, bytes) else data
    while piece := stream.read(CHUNK):
        yield piece


class Storage:
    """What every backend does. Names are checked by `valid`: a read of any other name
    finds nothing, a write of one is a programming error (ValueError)."""

    kind = ""

    def save(self, area: str, name: str, data: bytes | BinaryIO) -> None:
        """Store the bytes (or everything a file object reads) under the name, replacing
        any file of that name. StorageError or another OSError when it cannot."""
        raise NotImplementedError

    def open(self, area: str, name: str | None) -> StoredFile | None:
        raise NotImplementedError

    def sizes(self, area: str, names: Iterable[str | None]) -> dict[str, int]:
        """The size of each named file there is (names of no file are left out)."""
        raise NotImplementedError

    def delete(self, area: str, names: Iterable[str | None]) -> None:
        """Remove the named files; names of no file are no error."""
        raise NotImplementedError

    def listing(self, area: str) -> dict[str, int]:
        """Every file of the area and its size, by name in order."""
        raise NotImplementedError

    def names(self, area: str) -> list[str]:
        return list(self.listing(area))

    def read(self, area: str, name: str | None) -> bytes | None:
        """A small file's bytes whole (an import's text), or None."""
        stored = self.open(area, name)
        return None if stored is None else stored.read()

    def exists(self, area: str, name: str | None) -> bool:
        return bool(self.sizes(area, [name]))

    def total_size(self, area: str, names: Iterable[str | None]) -> int:
        """What the named files take, each counted once; a missing file takes nothing."""
        return sum(self.sizes(area, names).values())


def _wanted(area: str, names: Iterable[str | None]) -> list[str]:
    return sorted({name for name in names if name and valid(area, name)})


class LocalStorage(Storage):
    """instance/uploads/<area>/<name>, as faka always kept them."""

    kind = "local"

    def __init__(self, root: Path):
        self.root = root

    def folder(self, area: str) -> Path:
        """The area's folder, made when missing (a write needs it)."""
        path = self._path(area)
        path.mkdir(parents=True, exist_ok=True)
        return path

    def _path(self, area: str) -> Path:
        # Reads make no folder: a backup or a move looks here on hosts that keep nothing here.
        if area not in AREAS:
            raise ValueError(f"no such storage area: {area!r}")
        return self.root / area

    def save(self, area: str, name: str, data: bytes | BinaryIO) -> None:
        _check(area, name)
        folder = self.folder(area)
        # Written aside and renamed into place: a reader never sees half a file, and a
        # failure (a full disk) leaves nothing of it behind.
        temporary = folder / f".{name}.{secrets.token_hex(4)}.tmp"
        try:
            with os.fdopen(os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600), "wb") as fh:
                for piece in _pieces(data):
                    fh.write(piece)
                fh.flush()
                os.fsync(fh.fileno())
            os.replace(temporary, folder / name)
        finally:
            temporary.unlink(missing_ok=True)

    def open(self, area: str, name: str | None) -> StoredFile | None:
        # Opened now, not when the first chunk is sent: a file removed or replaced after
        # this still reads whole, as it was. A symbolic link is never followed.
        if name is None or not valid(area, name):
            return None
        try:
            fd = os.open(self._path(area) / name, os.O_RDONLY | os.O_NOFOLLOW)
        except (FileNotFoundError, NotADirectoryError):
            return None
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # a symbolic link
                return None
            raise
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            os.close(fd)
            return None
        modified = datetime.fromtimestamp(info.st_mtime, UTC)
        return StoredFile(name, info.st_size, _FileChunks(os.fdopen(fd, "rb")), modified)

    def sizes(self, area: str, names: Iterable[str | None]) -> dict[str, int]:
        folder = self._path(area)
        found = {}
        for name in _wanted(area, names):
            try:
                info = os.lstat(folder / name)
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISREG(info.st_mode):  # not a symbolic link, a folder, a device
                found[name] = info.st_size
        return found

    def delete(self, area: str, names: Iterable[str | None]) -> None:
        folder = self._path(area)
        for name in _wanted(area, names):
            (folder / name).unlink(missing_ok=True)

    def listing(self, area: str) -> dict[str, int]:
        folder = self._path(area)
        if not folder.is_dir():
            return {}
        return self.sizes(area, (p.name for p in folder.iterdir() if valid(area, p.name)))


class _FileChunks(Iterator[bytes]):
    """An open file's bytes, chunk by chunk; closed at the end, or by the response that
    stops early (a HEAD request, a client gone)."""

    def __init__(self, fh: BinaryIO):
        self._fh = fh

    def __next__(self) -> bytes:
        piece = self._fh.read(CHUNK) if not self._fh.closed else b""
        if not piece:
            self.close()
            raise StopIteration
        return piece

    def close(self) -> None:
        self._fh.close()


class DatabaseStorage(Storage):
    """The tables stored_files and stored_file_chunks of the app's own database."""

    kind = "database"

    def save(self, area: str, name: str, data: bytes | BinaryIO) -> None:
        _check(area, name)
        # The new version is written whole under a hidden name, then takes the name in the
        # same transaction as the old version goes: until the commit every reader gets the
        # old one, after it the new one, never a file that is missing or half written.
        try:
            with db.engine.begin() as conn:
                file_id = conn.execute(
                    insert(StoredFileRow)
                    .values(area=area, name=f".{secrets.token_hex(8)}", size=0, created_at=utcnow())
                    .returning(_files.c.id)
                ).scalar_one()
                size = 0
                for seq, piece in enumerate(_pieces(data)):
                    conn.execute(insert(StoredChunk).values(file_id=file_id, seq=seq, data=piece))
                    size += len(piece)
                conn.execute(delete(StoredFileRow).where(_files.c.area == area, _files.c.name == name))
                conn.execute(update(StoredFileRow).where(_files.c.id == file_id).values(name=name, size=size))
        except SQLAlchemyError as exc:
            raise _failed("store", area, name, exc) from exc

    def open(self, area: str, name: str | None) -> StoredFile | None:
        if name is None or not valid(area, name):
            return None
        # The reader engine, taken now: the chunks are read after the view has returned,
        # outside the app context, while the response goes out.
        engine = reader_engine()
        try:
            head = _first(engine, _HEAD, {"area": area, "name": name})
        except SQLAlchemyError as exc:
            raise _failed("read", area, name, exc) from exc
        if head is None:
            return None
        file_id, size, created_at = head
        return StoredFile(name, size, _database_chunks(engine, file_id, size, f"{area}/{name}"), created_at)

    def read(self, area: str, name: str | None) -> bytes | None:
        # A file replaced while it was read (a key rotation rewriting an import) is read
        # again, whole, in its new version.
        try:
            return super().read(area, name)
        except FileGone:
            return super().read(area, name)

    def sizes(self, area: str, names: Iterable[str | None]) -> dict[str, int]:
        wanted = _wanted(area, names)
        found: dict[str, int] = {}
        if not wanted:
            return found
        try:
            with db.engine.connect() as conn:
                for batch in _batches(wanted):
                    query = select(_files.c.name, _files.c.size).where(_files.c.area == area, _files.c.name.in_(batch))
                    found.update({name: size for name, size in conn.execute(query)})
        except SQLAlchemyError as exc:
            raise _failed("measure", area, wanted[0], exc) from exc
        return found

    def delete(self, area: str, names: Iterable[str | None]) -> None:
        wanted = _wanted(area, names)
        if not wanted:
            return
        try:
            with db.engine.begin() as conn:  # the chunks go with their file (ON DELETE CASCADE)
                for batch in _batches(wanted):
                    conn.execute(delete(StoredFileRow).where(_files.c.area == area, _files.c.name.in_(batch)))
        except SQLAlchemyError as exc:
            raise _failed("delete", area, wanted[0], exc) from exc

    def listing(self, area: str) -> dict[str, int]:
        if area not in AREAS:
            raise ValueError(f"no such storage area: {area!r}")
        query = select(_files.c.name, _files.c.size).where(_files.c.area == area).order_by(_files.c.name)
        try:
            with db.engine.connect() as conn:
                return {name: size for name, size in conn.execute(query)}
        except SQLAlchemyError as exc:
            raise StorageError(f"could not list the stored files of {area}: {_reason(exc)}") from exc


def _batches(names: list[str]) -> Iterator[list[str]]:
    # PostgreSQL takes at most 65,535 parameters a statement; a big shop's names are more.
    for start in range(0, len(names), BATCH):
        yield names[start : start + BATCH]


def _database_chunks(engine: Engine, file_id: int, size: int, label: str) -> Iterator[bytes]:
    for seq in range(-(-size // CHUNK)):
        try:
            row = _first(engine, _CHUNK, {"file_id": file_id, "seq": seq})
        except SQLAlchemyError as exc:
            raise StorageError(f"could not read {label}: {_reason(exc)}") from exc
        if row is None:  # removed or replaced while it was being sent: the response ends short
            raise FileGone(f"{label} was removed while it was read")
        yield bytes(row[0])


def _first(engine: Engine, statement: Select[Any], params: dict[str, Any]) -> Row[Any] | None:
    """The first row, on a connection taken from the pool for this one statement; once more
    on a new connection when the server dropped the pooled one (a restart, a failover):
    SQLAlchemy then replaces the pool's other connections too."""
    try:
        with engine.connect() as conn:
            return conn.execute(statement, params).first()
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
    with engine.connect() as conn:
        return conn.execute(statement, params).first()


def _reason(exc: SQLAlchemyError) -> str:
    # The driver's own message: SQLAlchemy's would repeat the statement and its parameters,
    # a whole chunk of the file among them.
    return str(getattr(exc, "orig", None) or type(exc).__name__).strip()


def _failed(doing: str, area: str, name: str, exc: SQLAlchemyError) -> StorageError:
    return StorageError(f"could not {doing} {area}/{name} in the database: {_reason(exc)}")


# -- the app's backend ----------------------------------------------------------------------


def init_app(app: Flask) -> None:
    kind = app.config.get("UPLOAD_STORAGE") or "local"
    if kind not in BACKENDS:
        raise RuntimeError(f"FAKA_UPLOAD_STORAGE={kind!r} is not a storage faka knows: use local or database")
    if kind == "database" and app.config["SQLALCHEMY_DATABASE_URI"].startswith("sqlite"):
        raise RuntimeError(
            "FAKA_UPLOAD_STORAGE=database needs PostgreSQL (DATABASE_URL): on SQLite, one machine's "
            "database, keep the uploads in the instance folder (FAKA_UPLOAD_STORAGE=local)"
        )
    app.extensions[_EXTENSION] = backend(kind, app.instance_path)


def backend(kind: str, instance_path: str) -> Storage:
    if kind == "database":
        return DatabaseStorage()
    return LocalStorage(Path(instance_path) / "uploads")


def storage() -> Storage:
    """The storage FAKA_UPLOAD_STORAGE chose for this app."""
    return current_app.extensions[_EXTENSION]


# -- moving between backends ------------------------------------------------------------------


@dataclass
class AreaMove:
    copied: int = 0
    skipped: int = 0  # already in the target: left as it is there
    deleted: int = 0  # removed from the source: the target holds the same bytes
    only_in_source: int = 0  # kept in the source: missing from the target, or other bytes there
    bytes: int = 0  # copied


@dataclass
class MoveReport:
    areas: dict[str, AreaMove] = field(default_factory=dict)


class CopyMismatch(Exception):
    """A copy read back differs from its source: the source is kept."""


class MoveRefused(Exception):
    """Removing the source's files is asked of a process that does not use the target."""


def move_files(
    source: Storage,
    target: Storage,
    delete_source: bool = False,
    progress: Callable[[str, AreaMove], None] | None = None,
) -> MoveReport:
    """Copy every file of every area from `source` into `target`, and read each copy back
    to compare its SHA-256 with the source's. A file the target has already is left as it
    is there: the target may be in use, and a name never names other bytes (a key rotation
    rewrites an import in the storage in use only). Safe to run again after an
    interruption: what was copied is skipped.

    With `delete_source` nothing is copied: the shop runs on `target` by then (MoveRefused
    otherwise), where a file missing was deleted since the switch and must not come back.
    A source file goes only when the target holds the same bytes (SHA-256); the others
    stay, counted as only in the source."""
    if delete_source and storage().kind != target.kind:
        raise MoveRefused(
            f"--delete-source removes the {source.kind} storage's files once the {target.kind} storage holds "
            f"them, and runs only once faka uses the {target.kind} storage (FAKA_UPLOAD_STORAGE={target.kind}): "
            f"this process uses the {storage().kind} storage"
        )
    report = MoveReport()
    for area in AREAS:
        moved = report.areas[area] = AreaMove()
        present = target.listing(area)
        for name in source.names(area):
            if delete_source:
                _release(source, target, area, name, present, moved)
            elif name in present:
                moved.skipped += 1
            else:
                _copy(source, target, area, name, moved)
        if progress:
            progress(area, moved)
    return report


def _copy(source: Storage, target: Storage, area: str, name: str, moved: AreaMove) -> None:
    stored = source.open(area, name)
    if stored is None:  # removed meanwhile (an import its job finished)
        return
    digest = hashlib.sha256()
    target.save(area, name, _reader(_hashed(stored.chunks, digest)))
    copy = _opened(target, area, name)
    if copy.size != stored.size or _sha256(copy.chunks) != digest.hexdigest():
        raise CopyMismatch(f"{area}/{name}: the copy does not read back as its source")
    moved.copied += 1
    moved.bytes += stored.size


def _release(source: Storage, target: Storage, area: str, name: str, present: dict[str, int], moved: AreaMove) -> None:
    """Remove the source's file if the target holds the same bytes."""
    stored = source.open(area, name)
    if stored is None:
        return
    kept = target.open(area, name) if name in present else None
    try:
        same = kept is not None and kept.size == stored.size and _sha256(kept.chunks) == _sha256(stored.chunks)
    finally:
        stored.close()
        if kept is not None:
            kept.close()
    if same:
        source.delete(area, [name])
        moved.deleted += 1
    else:
        moved.only_in_source += 1


def _opened(backend: Storage, area: str, name: str) -> StoredFile:
    stored = backend.open(area, name)
    if stored is None:
        raise CopyMismatch(f"{area}/{name} went missing from the {backend.kind} storage during the move")
    return stored


def _hashed(chunks: Iterator[bytes], digest: "hashlib._Hash") -> Iterator[bytes]:
    for piece in chunks:
        digest.update(piece)
        yield piece


def _sha256(chunks: Iterable[bytes]) -> str:
    digest = hashlib.sha256()
    for piece in chunks:
        digest.update(piece)
    return digest.hexdigest()
