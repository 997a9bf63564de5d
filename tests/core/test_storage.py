"""The upload storage (faka/core/storage.py): the instance folder and the database behave
alike; the database streams a file chunk by chunk without holding a connection; quotas,
the key-import job, key rotation and backups work from whichever storage holds the files."""

import io
import json
import random
import secrets
import tarfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from PIL import Image
from sqlalchemy import event, func, select, text
from test_backup import flask, opened, scratch_database, stamped  # noqa: F401  (stamped: a fixture)
from test_product_images import picture_bytes

from conftest import ENCRYPTION_KEY, TEST_DATABASE, TEST_REDIS_URL, login, run_worker
from faka import create_app
from faka.catalog import images
from faka.core import tasks
from faka.core.crypto import make_vault
from faka.core.db import reader_engine
from faka.core.storage import (
    CHUNK,
    IMPORTS,
    PRIVATE,
    PRODUCTS,
    DatabaseStorage,
    LocalStorage,
    StoredChunk,
    StoredFileRow,
    storage,
)
from faka.core.uploads import ShopStorageFull, store_image
from faka.extensions import db
from faka.inventory import keys
from faka.inventory.models import CardKey, KeyImport
from faka.platform import backup, key_rotation
from faka.platform.settings import set_setting

NEEDS_POSTGRESQL = "the database storage needs PostgreSQL (FAKA_UPLOAD_STORAGE=database is refused on SQLite)"


def noise_png(side: int) -> bytes:
    """A PNG that does not compress: side × side × 3 bytes and a little more."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(side).randbytes(side * side * 3)).save(out, "PNG")
    return out.getvalue()


def private_name(suffix: str = ".png") -> str:
    return secrets.token_hex(16) + suffix


@pytest.fixture
def database_app(app, make_app):
    """An app with FAKA_UPLOAD_STORAGE=database, on the suite's (PostgreSQL) database."""
    if TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    database = make_app(UPLOAD_STORAGE="database")
    with database.app_context():
        yield database


@pytest.fixture
def database_app_alone(app, make_app, monkeypatch, tmp_path):
    """database_app with an instance folder of its own, where no upload is (the suite's
    instance folder holds those of the tests that kept them in the folder)."""
    if TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(tmp_path / "instance"))
    database = make_app(UPLOAD_STORAGE="database")
    with database.app_context():
        yield database


@pytest.fixture(params=["local", "database"])
def backend(request, app, tmp_path):
    """Each storage, empty: the local one in a folder of its own."""
    if request.param == "local":
        return LocalStorage(tmp_path / "uploads")
    if TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    return DatabaseStorage()


# -- both backends alike ------------------------------------------------------------------------


def test_a_file_is_stored_read_measured_listed_and_deleted(backend):
    big = random.Random(1).randbytes(2 * CHUNK + 123)
    backend.save(PRIVATE, "b" * 32 + ".png", big)
    backend.save(PRIVATE, "a" * 32 + ".jpg", b"small")
    backend.save(PRODUCTS, "c" * 64 + ".webp", b"")  # an empty file is a file
    backend.save(IMPORTS, "d" * 32 + ".fernet", io.BytesIO(b"gAAAA-ciphertext"))  # a file object too

    stored = backend.open(PRIVATE, "b" * 32 + ".png")
    assert stored.size == len(big)
    pieces = list(stored.chunks)
    assert b"".join(pieces) == big and [len(p) for p in pieces] == [CHUNK, CHUNK, 123]
    assert backend.read(PRIVATE, "a" * 32 + ".jpg") == b"small"
    assert backend.read(PRODUCTS, "c" * 64 + ".webp") == b"" and backend.exists(PRODUCTS, "c" * 64 + ".webp")
    assert backend.read(IMPORTS, "d" * 32 + ".fernet") == b"gAAAA-ciphertext"

    assert backend.names(PRIVATE) == ["a" * 32 + ".jpg", "b" * 32 + ".png"]
    assert backend.listing(PRIVATE) == {"a" * 32 + ".jpg": 5, "b" * 32 + ".png": len(big)}
    assert backend.names(PRODUCTS) == ["c" * 64 + ".webp"] and backend.names(IMPORTS) == ["d" * 32 + ".fernet"]
    names = ["a" * 32 + ".jpg", "b" * 32 + ".png", "b" * 32 + ".png", "e" * 32 + ".png", None]
    assert backend.sizes(PRIVATE, names) == {"a" * 32 + ".jpg": 5, "b" * 32 + ".png": len(big)}
    assert backend.total_size(PRIVATE, names) == len(big) + 5  # each once; a missing file takes nothing
    assert backend.total_size(PRODUCTS, ["b" * 32 + ".png"]) == 0  # another area's file is not this one's

    backend.save(PRIVATE, "b" * 32 + ".png", b"replaced")
    assert backend.read(PRIVATE, "b" * 32 + ".png") == b"replaced"
    backend.delete(PRIVATE, ["b" * 32 + ".png", "e" * 32 + ".png", None])
    assert backend.open(PRIVATE, "b" * 32 + ".png") is None and not backend.exists(PRIVATE, "b" * 32 + ".png")
    assert backend.names(PRIVATE) == ["a" * 32 + ".jpg"]


@pytest.mark.parametrize("name", ["../secret.key", "a/b.png", ".hidden.png", "", None, "x" * 200, "a b.png"])
def test_names_that_are_not_ours_never_reach_the_storage(backend, name):
    assert backend.open(PRIVATE, name) is None and backend.read(PRIVATE, name) is None
    assert backend.sizes(PRIVATE, [name]) == {} and not backend.exists(PRIVATE, name)
    backend.delete(PRIVATE, [name])
    with pytest.raises(ValueError):
        backend.save(PRIVATE, name, b"x")
    with pytest.raises(ValueError):
        backend.save("../uploads", "a" * 32 + ".png", b"x")


def test_a_write_that_fails_half_way_leaves_nothing(backend, tmp_path):
    class Breaks(io.RawIOBase):
        """Hands out one chunk, then fails as a full disk or a dropped upload would."""

        def __init__(self):
            self.given = False

        def read(self, size=-1):
            if self.given:
                raise OSError("the source went away")
            self.given = True
            return b"x" * CHUNK

    name = private_name()
    with pytest.raises(OSError):
        backend.save(PRIVATE, name, Breaks())
    assert backend.names(PRIVATE) == [] and backend.open(PRIVATE, name) is None
    if backend.kind == "local":
        assert list((tmp_path / "uploads" / PRIVATE).iterdir()) == []  # no temporary file either
    else:
        assert db.session.scalar(select(func.count()).select_from(StoredChunk)) == 0


def test_the_local_storage_keeps_the_layout_faka_always_had(app, make_app):
    local = make_app(UPLOAD_STORAGE="local")
    with local.app_context():
        name = store_image(picture_bytes())
        assert storage().kind == "local"
        assert (Path(app.instance_path) / "uploads" / "private" / name).read_bytes() == storage().read(PRIVATE, name)


def test_a_file_is_read_after_the_server_dropped_the_pooled_connections(database_app):
    name = private_name()
    storage().save(PRIVATE, name, b"still here" * 50_000)
    assert storage().read(PRIVATE, name) is not None  # the reader's pooled connections are open
    with db.engine.connect() as conn:  # as a restart or a failover would
        conn.execute(
            text(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE datname = current_database() AND pid <> pg_backend_pid()"
            )
        )
    assert storage().read(PRIVATE, name) == b"still here" * 50_000


# -- serving: streamed, with the same headers from either storage --------------------------------------


@pytest.fixture(params=["local", "database"])
def serving_app(request, app, make_app):
    if request.param == "database" and TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    served = make_app(UPLOAD_STORAGE=request.param)
    with served.app_context():
        yield served


def test_a_big_image_is_streamed_in_chunks_holding_no_connection_between_them(serving_app):
    data = noise_png(700)  # about 1.4 MB: six chunks
    assert len(data) > 1024 * 1024
    name = private_name()
    storage().save(PRIVATE, name, data)
    set_setting("logo", name)
    db.session.commit()

    reads = []
    reader = reader_engine()
    listener = lambda *args: reads.append(args[2])  # noqa: E731
    event.listen(reader, "before_cursor_execute", listener)
    try:
        response = serving_app.test_client().get(f"/site/logo/{name}", buffered=False)
        assert response.status_code == 200 and response.is_streamed
        assert response.content_length == len(data) and response.mimetype == "image/png"
        pieces = []
        for piece in response.response:
            pieces.append(piece)
            # Between two chunks the request holds neither a connection nor a transaction.
            assert db.engine.pool.checkedout() == 0 and reader.pool.checkedout() == 0
        response.close()
    finally:
        event.remove(reader, "before_cursor_execute", listener)
    assert b"".join(pieces) == data
    assert len(pieces) == -(-len(data) // CHUNK) and max(len(p) for p in pieces) == CHUNK
    if storage().kind == "database":
        assert len(reads) == 1 + len(pieces)  # the size, then one short query per chunk, as it is sent


def test_public_images_are_revalidated_by_name_and_private_ones_never_cached(serving_app, merchant, make_product):
    logo = store_image(picture_bytes())
    set_setting("logo", logo)
    db.session.commit()
    client = serving_app.test_client()
    served = client.get(f"/site/logo/{logo}")
    assert served.status_code == 200 and served.headers["ETag"] == f'"{logo}"'
    assert served.headers["Cache-Control"] == "public, max-age=86400"
    assert served.headers["Content-Disposition"] == f"inline; filename={logo}"
    assert "sandbox" in served.headers["Content-Security-Policy"]
    assert served.last_modified is not None
    again = client.get(f"/site/logo/{logo}", headers={"If-None-Match": f'"{logo}"'})
    assert again.status_code == 304 and again.data == b""
    since = client.get(f"/site/logo/{logo}", headers={"If-Modified-Since": served.headers["Last-Modified"]})
    assert since.status_code == 304

    product = make_product(keys=0)
    [cover] = images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=5)])
    served = client.get(f"/images/{cover.thumb_webp}")
    assert served.status_code == 200 and served.mimetype == "image/webp"
    assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert (
        client.get(f"/images/{cover.thumb_webp}", headers={"If-None-Match": served.headers["ETag"]}).status_code == 304
    )

    merchant.licence_image = store_image(picture_bytes(seed=6))
    db.session.commit()
    seller = serving_app.test_client()
    login(seller, merchant.user)
    licence = seller.get("/merchant/qualification/licence")
    assert licence.status_code == 200 and licence.data == storage().read(PRIVATE, merchant.licence_image)
    assert licence.headers["Cache-Control"] == "private, no-store" and "ETag" not in licence.headers
    assert "Last-Modified" not in licence.headers
    assert licence.headers["Cross-Origin-Resource-Policy"] == "same-origin"
    # A private image is never answered from a browser's copy: it may have lost access since.
    for asked in (f'"{merchant.licence_image}"', "*"):
        again = seller.get("/merchant/qualification/licence", headers={"If-None-Match": asked})
        assert again.status_code == 200 and again.data == licence.data and "ETag" not in again.headers


def test_a_browser_holding_a_public_image_is_answered_from_its_name_alone(
    serving_app, merchant, make_product, monkeypatch
):
    logo = store_image(picture_bytes())
    set_setting("logo", logo)
    product = make_product(keys=0)
    [cover] = images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=5)])
    db.session.commit()

    def untouched(*_args, **_kwargs):
        raise AssertionError("the storage was asked")

    for attribute in ("open", "sizes", "read", "listing"):
        monkeypatch.setattr(storage(), attribute, untouched)
    client = serving_app.test_client()
    held = client.get(f"/site/logo/{logo}", headers={"If-None-Match": f'"{logo}"'})
    assert held.status_code == 304 and held.headers["ETag"] == f'"{logo}"'
    assert held.headers["Cache-Control"] == "public, max-age=86400"
    held = client.get(f"/images/{cover.detail_webp}", headers={"If-None-Match": f'"{cover.detail_webp}"'})
    assert held.status_code == 304 and held.headers["Cache-Control"] == "public, max-age=31536000, immutable"


def test_a_head_request_reads_no_chunk(serving_app):
    data = noise_png(400)
    name = private_name()
    storage().save(PRIVATE, name, data)
    set_setting("logo", name)
    db.session.commit()
    statements = []
    reader = reader_engine()
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(reader, "before_cursor_execute", listener)
    try:
        head = serving_app.test_client().head(f"/site/logo/{name}")
    finally:
        event.remove(reader, "before_cursor_execute", listener)
    assert head.status_code == 200 and head.content_length == len(data) and head.data == b""
    assert not [sql for sql in statements if "stored_file_chunks" in sql]


def test_a_local_file_removed_or_replaced_once_opened_is_read_as_it_was(tmp_path):
    local = LocalStorage(tmp_path / "uploads")
    name, first = private_name(), random.Random(2).randbytes(3 * CHUNK)
    local.save(PRIVATE, name, first)
    removed = local.open(PRIVATE, name)
    local.delete(PRIVATE, [name])
    assert removed.read() == first  # not a short answer under a 200 and the full length

    local.save(PRIVATE, name, first)
    replaced = local.open(PRIVATE, name)
    local.save(PRIVATE, name, b"the next version")
    assert replaced.read() == first and local.read(PRIVATE, name) == b"the next version"


def test_symbolic_links_in_the_folder_are_never_followed(tmp_path):
    local = LocalStorage(tmp_path / "uploads")
    secret = tmp_path / "secret.key"
    secret.write_bytes(b"not an upload")
    name = private_name()
    (local.folder(PRIVATE) / name).symlink_to(secret)
    (local.folder(PRIVATE) / private_name()).symlink_to(tmp_path / "dangling.png")
    assert local.open(PRIVATE, name) is None and local.read(PRIVATE, name) is None
    assert local.listing(PRIVATE) == {} and local.sizes(PRIVATE, [name]) == {} and not local.exists(PRIVATE, name)


def test_a_file_replaced_while_it_is_read_is_read_whole_in_its_new_version(database_app):
    name = f"{secrets.token_hex(16)}.fernet"
    old, new = b"o" * (2 * CHUNK + 10), b"n" * (3 * CHUNK + 20)
    storage().save(IMPORTS, name, old)
    reader, replaced = reader_engine(), []

    def replace_at_the_second_chunk(_conn, _cursor, _statement, parameters, *_args):
        if not replaced and isinstance(parameters, dict) and parameters.get("seq") == 1:
            replaced.append(True)
            storage().save(IMPORTS, name, new)  # a key rotation rewriting the import

    event.listen(reader, "before_cursor_execute", replace_at_the_second_chunk)
    try:
        read = storage().read(IMPORTS, name)
    finally:
        event.remove(reader, "before_cursor_execute", replace_at_the_second_chunk)
    assert replaced and read == new
    assert db.session.scalar(select(func.count()).select_from(StoredFileRow)) == 1


# -- the database storage's users ----------------------------------------------------------------


def test_refused_on_sqlite_at_start(base_config, tmp_path):
    if TEST_DATABASE != "sqlite":
        pytest.skip("the refusal is SQLite's")
    with pytest.raises(RuntimeError, match="FAKA_UPLOAD_STORAGE=database needs PostgreSQL"):
        create_app(
            {**base_config, "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path}/x.db", "UPLOAD_STORAGE": "database"}
        )
    with pytest.raises(RuntimeError, match="use local or database"):
        create_app({**base_config, "UPLOAD_STORAGE": "s3"})


def test_quotas_count_the_files_in_the_database(database_app, merchant, make_product):
    product = make_product(keys=0)
    images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=1)])
    merchant.licence_image = store_image(picture_bytes(seed=2))
    db.session.commit()
    in_database = db.session.scalar(select(func.sum(StoredFileRow.size)))
    assert (
        in_database > 0
        and not (Path(database_app.instance_path) / "uploads" / PRIVATE / merchant.licence_image).exists()
    )
    assert images.storage_used(merchant.id) == in_database  # four renditions and the licence

    database_app.config["MERCHANT_STORAGE_QUOTA"] = in_database + 100
    with pytest.raises(ShopStorageFull):
        images.add_images(merchant.id, product.slug, "gallery", [picture_bytes(seed=3)])
    assert db.session.scalar(select(func.sum(StoredFileRow.size))) == in_database  # the refused files went again


def test_the_import_job_reads_its_keys_from_the_database(make_app, redis_conn, merchant, make_product):
    if TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    product = make_product(keys=0)
    worker_app = make_app(JOBS_MODE="rq", REDIS_URL=TEST_REDIS_URL, UPLOAD_STORAGE="database")
    with worker_app.app_context():
        text = "\n".join(f"DB-IMPORT-{i:05d}" for i in range(2500))
        job = keys.start_import(merchant.id, product.variants[0], text)
        tasks.enqueue("inventory.tasks.import_keys", job.id, job_id=f"import-{job.id}")
        name = f"{job.public_id}.fernet"
        waiting = storage().read(IMPORTS, name)
        assert waiting is not None and b"DB-IMPORT" not in waiting  # encrypted, in the database
        assert not (Path(worker_app.instance_path) / "uploads" / IMPORTS / name).exists()

        run_worker(worker_app)
        db.session.commit()
        done = db.session.get(KeyImport, job.id)
        assert done.status == KeyImport.DONE and done.added == 2500
        assert db.session.scalar(select(func.count()).select_from(CardKey)) == 2500
        assert storage().read(IMPORTS, name) is None  # read, then removed


def test_key_rotation_re_encrypts_import_files_in_the_database(make_app, merchant, make_product):
    if TEST_DATABASE == "sqlite":
        pytest.skip(NEEDS_POSTGRESQL)
    product = make_product(keys=0)
    new_key = Fernet.generate_key().decode()
    with make_app(UPLOAD_STORAGE="database").app_context():
        job = keys.start_import(merchant.id, product.variants[0], "ROTATE-1\nROTATE-2")
        name = f"{job.public_id}.fernet"
        before = storage().read(IMPORTS, name)
    with make_app(UPLOAD_STORAGE="database", ENCRYPTION_KEYS=f"{new_key},{ENCRYPTION_KEY}").app_context():
        assert key_rotation.check()[key_rotation.IMPORT_FILES].older == 1
        assert key_rotation.rotate_all()[key_rotation.IMPORT_FILES].older == 1
        after = storage().read(IMPORTS, name)
        assert after != before
        assert json.loads(make_vault(new_key).decrypt(after.decode()))["text"] == "ROTATE-1\nROTATE-2"
        assert key_rotation.check()[key_rotation.IMPORT_FILES].current == 1


def test_a_backup_carries_the_database_files_and_a_restore_puts_them_in_either_storage(
    database_app_alone,
    stamped,
    merchant,
    make_product,
    base_config,
    monkeypatch,
    tmp_path,  # noqa: F811
):
    product = make_product(keys=0)
    [cover] = images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=7)])
    big = noise_png(700)
    logo = private_name()
    storage().save(PRIVATE, logo, big)
    job = keys.start_import(merchant.id, product.variants[0], "BACKED-UP-1\nBACKED-UP-2")
    files = {
        (area, name): storage().read(area, name)
        for area, name in [(PRIVATE, logo), (IMPORTS, f"{job.public_id}.fernet")]
        + [(PRODUCTS, name) for name in cover.names]
    }

    archive = tmp_path / "shop.tar.gz"
    result = backup.create_backup(archive)
    assert result.manifest["uploads"] == {
        "files": 6,
        "bytes": sum(len(data) for data in files.values()),
        "storage": "database",
        "from": {"local": 0, "database": 6},
    }
    assert result.notes == []
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert {n for n in names if n.startswith("uploads/")} == {f"uploads/{a}/{n}" for a, n in files}
        assert all(tar.extractfile(f"uploads/{a}/{n}").read() == data for (a, n), data in files.items())
    assert not [n for n in names if n in ("data/stored_files.jsonl", "data/stored_file_chunks.jsonl")]

    env = {"FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY, "SECRET_KEY": "test-secret"}
    # Into another PostgreSQL database that keeps its uploads in the database too...
    with scratch_database("storage") as url:
        restored = tmp_path / "into-database"
        target = {**env, "FAKA_INSTANCE_PATH": str(restored), "DATABASE_URL": url, "FAKA_UPLOAD_STORAGE": "database"}
        run = flask(target, "restore", str(archive), "--yes")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "restored 6 uploaded files" in run.stdout
        assert not (restored / "uploads").exists() or not any((restored / "uploads").rglob("*.*"))
        with opened(base_config, monkeypatch, restored, url, UPLOAD_STORAGE="database"):
            assert {(a, n): storage().read(a, n) for a, n in files} == files
    # ...and into a fresh instance that keeps them in its folder.
    restored = tmp_path / "into-folder"
    run = flask(
        {**env, "FAKA_INSTANCE_PATH": str(restored), "FAKA_UPLOAD_STORAGE": "local"}, "restore", str(archive), "--yes"
    )
    assert run.returncode == 0, run.stdout + run.stderr
    assert {(a, n): (restored / "uploads" / a / n).read_bytes() for a, n in files} == files
