"""`flask storage-move`: an operator moves a shop's uploads from the instance folder into
PostgreSQL and back, and every image is served as it was."""

import re

import pytest
from sqlalchemy import func, select
from test_product_images import picture_bytes

from conftest import TEST_DATABASE, login
from faka.catalog import images
from faka.core.storage import AREAS, IMPORTS, PRIVATE, PRODUCTS, DatabaseStorage, StoredFileRow, storage
from faka.core.uploads import store_image
from faka.extensions import db
from faka.inventory import keys
from faka.inventory.models import KeyImport
from faka.platform.settings import set_setting

HEADERS = ("Content-Type", "Content-Length", "Cache-Control", "ETag", "Content-Security-Policy")


@pytest.fixture
def hosts(make_app, monkeypatch, tmp_path):
    """The same shop (the suite's database) with its uploads in a fresh instance folder,
    and with them in the database."""
    if TEST_DATABASE == "sqlite":
        pytest.skip("the database storage needs PostgreSQL")
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(tmp_path / "instance"))
    return make_app(UPLOAD_STORAGE="local"), make_app(UPLOAD_STORAGE="database")


def served(app, urls: list[str], merchant) -> dict:
    client = app.test_client()
    login(client, merchant.user)
    answers = {}
    for url in urls:
        response = client.get(url)
        assert response.status_code == 200, url
        answers[url] = (response.data, {name: response.headers.get(name) for name in HEADERS})
    return answers


def move(app, *args: str) -> str:
    result = app.test_cli_runner().invoke(args=["storage-move", *args])
    assert result.exit_code == 0, result.output
    return result.output


def area_line(output: str, area: str) -> tuple[int, int]:
    """(copied, already there), or with --delete-source (removed, only in source), from the
    command's line for the area."""
    line = re.search(rf"^  {area} .*$", output, re.M).group(0)
    found = re.search(r"(\d+) copied .*?(\d+) already there", line) or re.search(
        r"(\d+) removed, only in source: (\d+)", line
    )
    return int(found.group(1)), int(found.group(2))


def on_disk(app) -> set[tuple[str, str]]:
    with app.app_context():
        return {(area, name) for area in AREAS for name in storage().names(area)}


def in_database() -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(StoredFileRow))


def test_uploads_move_into_the_database_and_back_and_are_served_the_same(hosts, merchant, make_product):
    local, database = hosts
    product = make_product(keys=0)
    with local.app_context():
        [cover] = images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=11)])
        logo = store_image(picture_bytes(seed=12))
        set_setting("logo", logo)
        merchant.licence_image = store_image(picture_bytes(seed=13))
        job_id = keys.start_import(merchant.id, product.variants[0], "MOVED-1\nMOVED-2\nMOVED-3").id
        db.session.commit()
        urls = [f"/images/{name}" for name in cover.names] + [
            f"/site/logo/{logo}",
            "/merchant/qualification/licence",
            f"/merchant/products/{product.slug}/images/file/{cover.thumb_jpeg}",
        ]
    before = served(local, urls, merchant)
    files = on_disk(local)
    assert len(files) == 7 and in_database() == 0

    # Copied, verified, the source kept; a second run finds everything there.
    with local.app_context():
        output = move(local, "--to", "database")
    assert "copying the uploads from the local storage into the database storage" in output
    assert area_line(output, PRIVATE) == (2, 0)
    assert area_line(output, PRODUCTS) == (4, 0) and area_line(output, IMPORTS) == (1, 0)
    assert "7 files copied" in output and "Next: set FAKA_UPLOAD_STORAGE=database" in output
    assert in_database() == 7 and on_disk(local) == files
    with database.app_context():
        again = move(database, "--to", "database")
    assert "0 files copied" in again and "7 already there" in again and "Next:" not in again
    assert served(database, urls, merchant) == before

    # Moving on: the files already there are compared byte for byte, then the local ones go.
    with database.app_context():
        output = move(database, "--to", "database", "--delete-source")
    assert area_line(output, PRODUCTS) == (4, 0) and area_line(output, PRIVATE) == (2, 0)
    assert "7 files removed from the local storage; only in source: 0" in output
    assert on_disk(local) == set() and in_database() == 7
    assert served(database, urls, merchant) == before

    # And back into the instance folder; once the shop uses it, the database is emptied.
    with database.app_context():
        output = move(database, "--to", "local")
    assert area_line(output, PRODUCTS) == (4, 0) and area_line(output, IMPORTS) == (1, 0)
    assert "Next: set FAKA_UPLOAD_STORAGE=local" in output
    with local.app_context():
        output = move(local, "--to", "local", "--delete-source")
    assert area_line(output, PRODUCTS) == (4, 0) and area_line(output, IMPORTS) == (1, 0)
    assert on_disk(local) == files and in_database() == 0
    assert served(local, urls, merchant) == before
    with local.app_context():
        assert keys.run_import(job_id).added == 3  # the waiting import's keys came along
        assert db.session.get(KeyImport, job_id).status == KeyImport.DONE


def test_a_copy_that_does_not_read_back_keeps_the_source(hosts, monkeypatch):
    local, database = hosts
    with local.app_context():
        name = store_image(picture_bytes(seed=14))
    real_save = DatabaseStorage.save

    def loses_a_byte(self, area, stored_name, data):
        real_save(self, area, stored_name, data.read()[:-1])

    monkeypatch.setattr(DatabaseStorage, "save", loses_a_byte)
    with local.app_context():
        result = local.test_cli_runner().invoke(args=["storage-move", "--to", "database"])
    assert result.exit_code == 1
    assert f"private/{name}: the copy does not read back as its source" in result.output
    assert "run the command again" in result.output
    assert (PRIVATE, name) in on_disk(local)


def test_the_database_storage_is_refused_on_sqlite(runner):
    if TEST_DATABASE != "sqlite":
        pytest.skip("the refusal is SQLite's")
    result = runner.invoke(args=["storage-move", "--to", "database"])
    assert result.exit_code == 1 and "the database storage needs PostgreSQL" in result.output


def test_delete_source_after_the_switch_brings_nothing_back_and_keeps_what_differs(hosts, merchant, make_product):
    local, database = hosts
    product = make_product(keys=0)
    with local.app_context():
        [cover] = images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=15)])
        cover_id, cover_files = cover.id, cover.names
        gone = store_image(picture_bytes(seed=16))
        job = keys.start_import(merchant.id, product.variants[0], "STALE-1\nSTALE-2")
        name = f"{job.public_id}.fernet"
        stale = storage().read(IMPORTS, name)
        move(local, "--to", "database")
    with database.app_context():
        # Since the switch: the shop deleted a file and rewrote another (a key rotation
        # re-encrypts an import: other bytes of the same length).
        images.remove_image(merchant.id, product.slug, cover_id)
        storage().delete(PRIVATE, [gone])
        rewritten = stale[:-8] + b"A" * 8
        storage().save(IMPORTS, name, rewritten)
        assert len(rewritten) == len(stale)

        output = move(database, "--to", "database", "--delete-source")
        assert "removing from the local storage the uploads the database storage holds the same" in output
        assert area_line(output, PRODUCTS) == (0, 4) and area_line(output, PRIVATE) == (0, 1)
        assert area_line(output, IMPORTS) == (0, 1) and "only in source: 6" in output
        # Nothing came back into the storage in use, nothing there was overwritten.
        assert storage().names(PRODUCTS) == [] and not storage().exists(PRIVATE, gone)
        assert storage().read(IMPORTS, name) == rewritten
    assert on_disk(local) == {(PRODUCTS, n) for n in cover_files} | {(PRIVATE, gone), (IMPORTS, name)}


def test_delete_source_is_refused_until_the_shop_uses_the_target(app, hosts):
    local, database = hosts
    with local.app_context():
        name = store_image(picture_bytes(seed=17))
        result = local.test_cli_runner().invoke(args=["storage-move", "--to", "database", "--delete-source"])
    assert result.exit_code == 1 and "runs only once faka uses the database storage" in result.output
    with database.app_context():
        result = database.test_cli_runner().invoke(args=["storage-move", "--to", "local", "--delete-source"])
    assert result.exit_code == 1 and "FAKA_UPLOAD_STORAGE=local" in result.output
    assert on_disk(local) == {(PRIVATE, name)} and in_database() == 0
