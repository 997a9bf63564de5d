"""When the upload storage fails or changes under a request: a database storage that
cannot be reached is a message or a 503 to retry, never an error page; a key import is
queued only with its file; a key rotation never brings back the file of an import that
finished meanwhile."""

import errno
from contextlib import contextmanager

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import event, func, select, text
from test_product_images import picture_bytes

from conftest import ENCRYPTION_KEY, TEST_DATABASE, csrf_from, every_stored_file, login
from faka.catalog import images
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintMessage
from faka.core import storage as storage_module
from faka.core.storage import IMPORTS, PRIVATE, storage
from faka.core.uploads import StorageUnavailable, store_image
from faka.extensions import db
from faka.inventory import keys
from faka.inventory.models import KeyImport
from faka.platform import key_rotation

UNAVAILABLE_EN = "The stored files cannot be reached right now. Nothing was changed; please try again later."
UNREADABLE_EN = "Uploaded files cannot be read right now. Please try again in a moment."


@pytest.fixture(params=["local", "database"])
def storage_app(request, app, make_app):
    if request.param == "database" and TEST_DATABASE == "sqlite":
        pytest.skip("the database storage needs PostgreSQL")
    chosen = make_app(UPLOAD_STORAGE=request.param)
    with chosen.app_context():
        yield chosen


@pytest.fixture
def database_app(app, make_app):
    if TEST_DATABASE == "sqlite":
        pytest.skip("the database storage needs PostgreSQL")
    chosen = make_app(UPLOAD_STORAGE="database")
    with chosen.app_context():
        yield chosen


@contextmanager
def storage_down():
    """The database storage failing for real, as it does when its server is gone: every
    statement on its tables fails."""
    db.session.commit()
    with db.engine.begin() as conn:
        conn.execute(text("ALTER TABLE stored_files RENAME TO stored_files_away"))
    try:
        yield
    finally:
        db.session.rollback()
        with db.engine.begin() as conn:
            conn.execute(text("ALTER TABLE stored_files_away RENAME TO stored_files"))


def seller_client(app, merchant):
    client = app.test_client()
    with client.session_transaction() as session:
        session["lang"] = "en"
    login(client, merchant.user)
    return client


# -- the database storage cannot be reached ---------------------------------------------------------


def test_a_quota_check_without_the_storage_is_a_message(database_app, merchant, make_product):
    product = make_product(keys=0)
    images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=1)])
    url = f"/merchant/products/{product.slug}/images"
    client = seller_client(database_app, merchant)
    token = csrf_from(client.get(url).text)
    with storage_down():
        response = client.post(
            url,
            content_type="multipart/form-data",
            data={"csrf_token": token, "role": "gallery", "image": (picture_bytes(seed=2), "g.png")},
        )
    assert response.status_code == 400 and UNAVAILABLE_EN in response.text
    assert len(images.merchant_images(merchant.id, product.slug)[1].gallery) == 0


def test_quota_checks_of_licences_and_evidence_without_the_storage_refuse_with_a_message(
    database_app, merchant, place, pay, product
):
    order = place(product)
    pay(order)
    merchant.licence_image = store_image(picture_bytes(seed=3))
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "Already used.", [picture_bytes(seed=4)])
    before = every_stored_file(PRIVATE)
    with storage_down():
        with pytest.raises(StorageUnavailable):
            images.storage_used(merchant.id)
        with pytest.raises(StorageUnavailable):
            workflow.post_message(complaint.id, "buyer", None, "Another screenshot.", [picture_bytes(seed=5)])
    assert db.session.scalar(select(func.count()).select_from(ComplaintMessage)) == 1
    assert every_stored_file(PRIVATE) == before  # the refused evidence left nothing


def test_an_image_the_storage_cannot_read_is_a_503_to_retry(database_app, merchant):
    merchant.licence_image = store_image(picture_bytes(seed=6))
    db.session.commit()
    client = seller_client(database_app, merchant)
    with storage_down():
        response = client.get("/merchant/qualification/licence")
    assert response.status_code == 503 and response.headers["Retry-After"] == "30"
    assert UNREADABLE_EN in response.text
    assert client.get("/merchant/qualification/licence").status_code == 200  # and once it is back, it shows


# -- a big key import's file ------------------------------------------------------------------------------


@contextmanager
def failing_writes(kind: str, monkeypatch):
    """The storage refusing a write: a full disk renaming the written file into place, or
    the database storage gone."""
    if kind == "local":

        def disk_full(*_args):
            raise OSError(errno.ENOSPC, "No space left on device")

        monkeypatch.setattr(storage_module.os, "replace", disk_full)
        yield
        monkeypatch.undo()
    else:
        with storage_down():
            yield


def test_an_import_whose_file_cannot_be_stored_is_a_message_and_queues_nothing(
    storage_app, merchant, make_product, monkeypatch
):
    product = make_product(keys=0)
    client = seller_client(storage_app, merchant)
    url = f"/merchant/products/{product.slug}/keys"
    token = csrf_from(client.get(url).text)
    text = "\n".join(f"NOT-STORED-{i:05d}" for i in range(keys.JOB_THRESHOLD_LINES + 1))
    with failing_writes(storage().kind, monkeypatch):
        response = client.post(url, data={"csrf_token": token, "keys": text, "separator": "newline"})
    assert response.status_code == 400
    assert "The keys could not be stored for the import." in response.text
    assert db.session.scalar(select(func.count()).select_from(KeyImport)) == 0
    assert every_stored_file(IMPORTS) == set()


def test_an_import_whose_row_cannot_be_committed_leaves_no_file(storage_app, merchant, make_product):
    product = make_product(keys=0)
    session = db.session()

    def refuse(_session):
        raise RuntimeError("the database refused the commit")

    event.listen(session, "before_commit", refuse, once=True)
    with pytest.raises(RuntimeError):
        keys.start_import(merchant.id, product.variants[0], "LOST-1\nLOST-2")
    assert db.session.scalar(select(func.count()).select_from(KeyImport)) == 0
    assert every_stored_file(IMPORTS) == set()


# -- key rotation and the imports' jobs -------------------------------------------------------------------


def rotated_app(make_app, kind: str):
    """The shop with a new key in front of the old one, as `rotate-keys` runs it."""
    return make_app(UPLOAD_STORAGE=kind, ENCRYPTION_KEYS=f"{Fernet.generate_key().decode()},{ENCRYPTION_KEY}")


def test_rotation_never_brings_back_the_file_of_an_import_that_finished_meanwhile(
    storage_app, make_app, merchant, make_product, monkeypatch
):
    kind = storage().kind
    product = make_product(keys=0)
    job = keys.start_import(merchant.id, product.variants[0], "ROTATED-1\nROTATED-2")
    job_id, name = job.id, f"{job.public_id}.fernet"
    with rotated_app(make_app, kind).app_context():
        store, real_read, finished = storage(), storage().read, []

        def job_finishes_once_read(area, stored_name):
            data = real_read(area, stored_name)
            if stored_name == name and not finished:
                finished.append(None)
                finished[0] = keys.run_import(job_id)  # the worker, while the rotation works
            return data

        monkeypatch.setattr(store, "read", job_finishes_once_read)
        key_rotation.rotate_all()
        monkeypatch.undo()
        assert finished and finished[0].status == KeyImport.DONE and finished[0].added == 2
        assert store.read(IMPORTS, name) is None  # the keys' ciphertext is not kept forever
        assert every_stored_file(IMPORTS) == set()


def test_rotation_re_encrypts_waiting_imports_and_removes_those_their_job_left(
    storage_app, make_app, merchant, make_product
):
    kind = storage().kind
    product = make_product(keys=0)
    waiting = keys.start_import(merchant.id, product.variants[0], "WAITING-1")
    left = keys.start_import(merchant.id, product.variants[0], "LEFT-1")
    db.session.get(KeyImport, left.id).status = KeyImport.DONE  # its job could not remove its file
    db.session.commit()
    with rotated_app(make_app, kind).app_context():
        report = key_rotation.rotate_all()[key_rotation.IMPORT_FILES]
        assert report.older == 1 and report.current == 0
        assert every_stored_file(IMPORTS) == {f"{waiting.public_id}.fernet"}
        assert key_rotation.check()[key_rotation.IMPORT_FILES].current == 1
        assert keys.run_import(waiting.id).added == 1
