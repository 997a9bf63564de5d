"""Backups and moving databases: `flask backup` then `flask restore` into a fresh instance
and a fresh database, and `flask copy-db` from the shop into PostgreSQL. Either way the
shop keeps working: the same rows, the sold keys on their order pages, unsold keys sold
and delivered, evidence images served, gateway and SMTP secrets readable, the operator's
password and TOTP code accepted."""

import io
import json
import os
import re
import subprocess
import sys
import tarfile
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path

import pyotp
import pytest
from alembic.script import ScriptDirectory
from PIL import Image
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.engine import make_url
from sqlalchemy.exc import OperationalError

from conftest import ENCRYPTION_KEY, TEST_DATABASE, FreshContextClient, csrf_from, reload, signed_notify
from faka import create_app
from faka.accounts import onboarding, users
from faka.accounts.models import Merchant
from faka.catalog import checkout_fields
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core import instance, storage
from faka.core.crypto import vault
from faka.core.db import reader_engine
from faka.core.types import utcnow
from faka.extensions import db
from faka.inventory import keys
from faka.inventory.models import KeyImport
from faka.ledger import payouts
from faka.ledger.models import PayoutAccount
from faka.messaging.models import PushChannel, WebhookDelivery, WebhookEndpoint
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway, gateway_settings
from faka.platform import backup, dbcopy
from faka.platform.models import Setting
from faka.platform.settings import set_setting
from faka.reviews import reviews
from faka.risk import blacklist
from faka.risk.models import RiskEvent, RiskHit, SecurityEvent

ROOT = Path(instance.ROOT)
OPERATOR_PASSWORD = "operator-pass-1"
CARD_KEY = re.compile(r'<code class="card-key"[^>]*>([^<]+)</code>')


@dataclass
class Shop:
    """What a populated shop holds, to find again after a restore or a copy."""

    counts: dict
    delivered_token: str
    delivered_keys: list
    product_slug: str
    fixed_token: str
    fixed_content: str
    evidence_url: str
    evidence: bytes
    epay_key: str
    smtp_password: str
    operator_email: str
    totp_secret: str
    payout_id: int
    payout_number: str
    applicant_id: int
    id_number: str
    webhook_id: int
    webhook_secret: str
    import_id: int


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def populate(app, merchant, make_product, place, pay) -> Shop:
    """A shop with something in every kind of table and every kind of stored secret."""
    product = make_product(keys=8, title="Game card")
    fixed_content = "https://dl.example.invalid/course  code FAKA-42"
    fixed = make_product(
        keys=0, delivery_type="fixed", title="Course", fixed_content_ciphertext=vault().encrypt(fixed_content)
    )
    delivered = place(product, quantity=2)
    assert pay(delivered).text == "success"
    reviewed = place(product)
    pay(reviewed)
    complained = place(product)
    pay(complained)
    place(product)  # pending: its key stays reserved
    fixed_order = place(fixed)
    pay(fixed_order)
    topup = make_product(keys=0, delivery_type="manual", title="Top-up")  # a buyer's encrypted checkout answer
    make_product(  # a "from my server" product's signing secret
        keys=0,
        delivery_type="remote",
        title="Licence",
        remote_url="https://licences.example.invalid/faka",
        remote_secret_ciphertext=vault().encrypt("ddsec_4b7c"),
    )
    uid = checkout_fields.add_field(
        merchant.id, topup.slug, checkout_fields.FieldDraft(label="游戏 UID", kind="number")
    )
    with app.test_request_context():
        checkout.place_order(topup.slug, 1, None, "secret-1", answers={uid.key: "20240001"})
    reviews.submit_review(reviewed.token, 5, "Worked at once")
    complaint = workflow.open_complaint(
        complained.token, Complaint.KEY_INVALID, "The key says already used", [png_bytes()]
    )
    image = complaint.messages[0].images[0].name
    evidence_url = f"/order/{complained.token}/complaint/{complaint.ref}/evidence/{image}"
    evidence = app.test_client().get(evidence_url)
    assert evidence.status_code == 200

    configure_gateway("epay", {"api_url": "https://pay.example.invalid", "pid": "1001", "key": "epay-key-7f3a9"})
    set_setting("smtp_password", vault().encrypt("smtp-pass-5c1e"))
    set_setting("site_name", "Backup Test Shop")
    operator = users.create_operator("ops@backup.test", OPERATOR_PASSWORD)
    totp_secret = pyotp.random_base32()
    operator.totp_secret = vault().encrypt(totp_secret)
    db.session.commit()
    payout = payouts.add_payout_account(merchant.id, PayoutAccount.ALIPAY, "Zhang San", "13800138000")
    applicant = users.create_merchant("applicant@backup.test", "merchant-pass-2", "Applicant Shop")
    onboarding.submit_qualification(
        applicant.id,
        onboarding.Qualification("Zhang San Ltd", "company", "91110000MA01ABCD2X", "13900139000"),
        png_bytes(),
    )
    webhook = WebhookEndpoint(
        merchant_id=merchant.id,
        url="https://hooks.example.invalid/faka",
        secret_ciphertext=vault().encrypt("whsec-9d2b"),
        events="order.delivered",
        enabled=False,
    )
    db.session.add(webhook)
    db.session.flush()
    db.session.add(
        WebhookDelivery(
            endpoint_id=webhook.id,
            event="order.delivered",
            status=WebhookDelivery.FAILED,
            payload=vault().encrypt('{"id":"whd_1","type":"order.delivered","data":{}}'),
        )
    )
    db.session.add(
        PushChannel(
            merchant_id=merchant.id,
            kind="wecom",
            name="Phone",
            settings_ciphertext=vault().encrypt('{"key": "wecom-key-8e21"}'),
            events="order.paid",
            locale="zh_CN",
            consecutive_failures=0,
        )
    )
    db.session.commit()
    # An API key, and a POST's answer kept for its retries (encrypted).
    from faka.accounts import api_keys

    api_key, _token = api_keys.create_key(
        merchant.id, merchant.user_id, api_keys.ApiKeyDraft(name="ERP", scopes=["products:write"], language="zh_CN")
    )
    kept = api_keys.claim(api_key.id, "retry-1", "digest")
    api_keys.finish(kept.record_id, 201, {"body": '{"id": "p1"}', "content_type": "application/json"})
    blacklist.add("email", "fraud@backup.test", "chargebacks", actor_id=operator.id)
    event = RiskEvent(
        checkpoint="checkout",
        action="flag",
        score=30,
        ip="203.0.113.9",
        email="fast@backup.test",
        order_id=delivered.id,
        merchant_id=merchant.id,
        product_id=product.id,
    )
    db.session.add(event)
    db.session.flush()
    db.session.add(RiskHit(event_id=event.id, rule="velocity_ip", score=30, detail="7 orders in 10 min"))
    db.session.add(SecurityEvent(kind=SecurityEvent.LOGIN_FAILED, ip="203.0.113.9", subject="ops@backup.test"))
    db.session.commit()
    job = keys.start_import(merchant.id, product.variants[0], "IMPORTED-1\nIMPORTED-2")

    delivered = reload(delivered)
    assert delivered.status == Order.DELIVERED
    return Shop(
        counts=table_counts(),
        delivered_token=delivered.token,
        delivered_keys=sorted(vault().decrypt(k.ciphertext) for k in delivered.keys),
        product_slug=product.slug,
        fixed_token=fixed_order.token,
        fixed_content=fixed_content,
        evidence_url=evidence_url,
        evidence=evidence.data,
        epay_key="epay-key-7f3a9",
        smtp_password="smtp-pass-5c1e",
        operator_email=operator.email,
        totp_secret=totp_secret,
        payout_id=payout.id,
        payout_number="13800138000",
        applicant_id=applicant.id,
        id_number="91110000MA01ABCD2X",
        webhook_id=webhook.id,
        webhook_secret="whsec-9d2b",
        import_id=job.id,
    )


def table_counts() -> dict:
    db.session.commit()
    with db.engine.connect() as conn:
        state = dbcopy.inspect(conn)
    return state.rows


def assert_shop_works(app, shop: Shop) -> None:
    """The restored or copied shop, opened by `app`, is the shop that was backed up. Its
    uploads are where its storage keeps them (the database storage's tables hold as many
    rows as that storage has files): they are looked at by serving them."""
    uploads = set(storage.TABLES)
    assert {t: n for t, n in table_counts().items() if t not in uploads} == {
        t: n for t, n in shop.counts.items() if t not in uploads
    }
    client = app.test_client()

    page = client.get(f"/order/{shop.delivered_token}?lang=en")
    assert sorted(CARD_KEY.findall(page.text)) == shop.delivered_keys
    assert shop.fixed_content in client.get(f"/order/{shop.fixed_token}?lang=en").text
    evidence = client.get(shop.evidence_url)
    assert evidence.status_code == 200 and evidence.data == shop.evidence

    # An unsold key is sold and delivered (the sandbox gateway's secret signs the payment).
    with app.test_request_context():
        order = checkout.place_order(shop.product_slug, 1, "next@example.com", "secret-1")
    assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED
    bought = CARD_KEY.findall(client.get(f"/order/{order.token}?lang=en").text)
    assert len(bought) == 1 and bought[0] not in shop.delivered_keys

    assert gateway_settings("epay")[1]["key"] == shop.epay_key
    assert vault().decrypt(db.session.get(Setting, "smtp_password").value) == shop.smtp_password
    assert payouts.payout_account_number(db.session.get(PayoutAccount, shop.payout_id)) == shop.payout_number
    assert vault().decrypt(db.session.get(Merchant, shop.applicant_id).id_number_ciphertext) == shop.id_number
    assert vault().decrypt(db.session.get(WebhookEndpoint, shop.webhook_id).secret_ciphertext) == shop.webhook_secret
    job = keys.run_import(shop.import_id)  # the waiting import's encrypted upload came along
    assert job.status == KeyImport.DONE and job.added == 2

    login = client.post(
        "/login",
        data={
            "csrf_token": csrf_from(client.get("/login").text),
            "email": shop.operator_email,
            "password": OPERATOR_PASSWORD,
        },
    )
    assert login.status_code == 303 and login.headers["Location"].endswith("/login/2fa")
    second = client.post(
        "/login/2fa",
        data={"csrf_token": csrf_from(client.get("/login/2fa").text), "code": pyotp.TOTP(shop.totp_secret).now()},
    )
    assert second.status_code == 303
    assert "Email outbox" in client.get("/operator/outbox?lang=en").text


# -- running the CLI as an operator would ---------------------------------------------------


def flask(env: dict, *args: str) -> subprocess.CompletedProcess:
    """`flask --app faka ARGS` in a new process, with only `env` configuring faka."""
    clean = {
        k: v
        for k, v in os.environ.items()
        if k
        not in (
            "DATABASE_URL",
            "FAKA_ENCRYPTION_KEYS",
            "SECRET_KEY",
            "REDIS_URL",
            "FAKA_INSTANCE_PATH",
            "FAKA_BACKUP_DIR",
            "FAKA_UPLOAD_STORAGE",
        )
    }
    return subprocess.run(
        [sys.executable, "-m", "flask", "--app", "faka", *args],
        env={**clean, **env},
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
    )


def source_env(app) -> dict:
    return {
        "FAKA_INSTANCE_PATH": app.instance_path,
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        "SECRET_KEY": "test-secret",
    }


@contextmanager
def opened(base_config, monkeypatch, instance_path: Path, url: str | None, **config):
    """An app on another instance folder and database, as faka would start there."""
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(instance_path))
    app = create_app(
        {**base_config, "SQLALCHEMY_DATABASE_URI": url, "ENCRYPTION_KEYS": None, "SECRET_KEY": None, **config}
    )
    app.test_client_class = FreshContextClient
    try:
        with app.app_context():
            yield app
    finally:
        with app.app_context():
            app.extensions["faka_jobs"].wait_idle()
            db.session.remove()
            db.engine.dispose()


@pytest.fixture
def stamped(app):
    """The test database, built by create_all, marked as at the latest migration, as
    init-db leaves a real one."""
    head = ScriptDirectory(instance.migrations_path()).get_current_head()
    with db.engine.begin() as conn:
        conn.execute(text("CREATE TABLE alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)"))
        conn.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
    yield head
    db.session.rollback()
    with db.engine.begin() as conn:
        conn.execute(text("DROP TABLE alembic_version"))


@pytest.fixture
def shop(app, merchant, make_product, place, pay) -> Shop:
    return populate(app, merchant, make_product, place, pay)


def postgresql_server() -> str:
    """Where scratch PostgreSQL databases are made: the suite's server, or for the SQLite
    suite FAKA_TEST_POSTGRESQL (default: the Makefile's)."""
    if TEST_DATABASE != "sqlite":
        return TEST_DATABASE
    return os.environ.get("FAKA_TEST_POSTGRESQL", "postgresql://postgres@127.0.0.1:5432/test")


@contextmanager
def scratch_database(purpose: str):
    """A new, empty PostgreSQL database named after the suite's and this process (two
    suites may run at once on one server), dropped afterwards."""
    server = make_url(instance.database_uri(postgresql_server()))
    name = f"{server.database}_{purpose}_{os.getpid()}" + ("_sqlite" if TEST_DATABASE == "sqlite" else "")
    admin = create_engine(server.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
            conn.execute(text(f'CREATE DATABASE "{name}"'))
    except OperationalError as exc:
        admin.dispose()
        pytest.skip(f"no PostgreSQL server for this test: {exc.orig}")
    try:
        yield server.set(database=name).render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@contextmanager
def fresh_target(tmp_path: Path):
    """An empty database of the suite's kind for a restore: a new SQLite file in the new
    instance folder (faka's default), or a new PostgreSQL database."""
    if TEST_DATABASE == "sqlite":
        yield None
    else:
        with scratch_database("restore") as url:
            yield url


# -- backup and restore ---------------------------------------------------------------------


def test_backup_restores_a_working_shop_into_a_fresh_instance(
    app, runner, shop, stamped, base_config, monkeypatch, tmp_path
):
    archive = tmp_path / "shop.tar.gz"
    result = runner.invoke(args=["backup", "--out", str(archive)])
    assert result.exit_code == 0, result.output
    assert f"backup written to {archive}" in result.output
    assert archive.stat().st_mode & 0o777 == 0o600
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("manifest.json"))
        stored_keys = tar.extractfile("keys/encryption.keys").read().decode().split()
    assert names[0] == "manifest.json" and "keys/secret.key" in names
    assert any(n.startswith("uploads/private/") for n in names) and any(n.startswith("uploads/imports/") for n in names)
    assert manifest["alembic_revision"] == stamped and manifest["database"] == db.engine.dialect.name
    # The database storage's tables travel as uploads/ files, whichever storage holds them.
    rows = {name: n for name, n in shop.counts.items() if name not in storage.TABLES}
    assert {t["name"]: t["rows"] for t in manifest["tables"]} == rows
    assert manifest["keys"]["encryption_keys_from"] == "environment" and stored_keys == [ENCRYPTION_KEY]
    # Nothing secret is readable in the data itself.
    with tarfile.open(archive) as tar:
        data = b"".join(tar.extractfile(n).read() for n in names if n.startswith("data/"))
    for secret in (*shop.delivered_keys, shop.epay_key, shop.smtp_password, shop.totp_secret, shop.payout_number):
        assert secret.encode() not in data

    restored = tmp_path / "restored"
    with fresh_target(tmp_path) as url:
        env = {
            "FAKA_INSTANCE_PATH": str(restored),
            "FAKA_UPLOAD_STORAGE": app.config["UPLOAD_STORAGE"],  # as the restored app opens it below
            **({"DATABASE_URL": url} if url else {}),
        }
        result = flask(env, "restore", str(archive), "--yes")
        assert result.returncode == 0, result.stdout + result.stderr
        assert "hold the rows the manifest lists" in result.stdout
        assert re.search(r"\n  card_keys +(\d+) +\1\n", result.stdout)
        assert "sampled secrets decrypt with the restored keys" in result.stdout
        assert "took its keys from the environment" in result.stdout
        assert (restored / "encryption.keys").read_text().split() == [ENCRYPTION_KEY]
        assert (restored / "secret.key").read_text().strip() == "test-secret"
        assert (restored / "encryption.keys").stat().st_mode & 0o777 == 0o600

        # A second restore into the now populated database is refused, and changes nothing.
        again = flask(env, "restore", str(archive), "--yes")
        assert again.returncode != 0 and "already holds data" in again.stderr

        with opened(base_config, monkeypatch, restored, url) as restored_app:
            assert restored_app.config["SECRET_KEY"] == "test-secret"
            assert_shop_works(restored_app, shop)
            check = restored_app.test_cli_runner().invoke(args=["rotate-keys", "--check"])
            assert check.exit_code == 0 and "open with the newest key alone" in check.output


# -- the uploads of a backup ------------------------------------------------------------------------


@pytest.fixture
def alone(make_app, monkeypatch, tmp_path, stamped):
    """The shop with an instance folder of its own (the suite's holds other tests' uploads),
    configured to keep its uploads there, as a cron job's `flask backup` often is."""
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(tmp_path / "instance"))
    shop_app = make_app(UPLOAD_STORAGE="local")
    with shop_app.app_context():
        yield shop_app


def uploads_in(archive: Path) -> dict[str, bytes]:
    with tarfile.open(archive) as tar:
        return {m.name: tar.extractfile(m).read() for m in tar.getmembers() if m.name.startswith("uploads/")}


def upload_name(suffix: str = ".png") -> str:
    return os.urandom(16).hex() + suffix


def test_a_backup_run_with_the_folder_configured_carries_the_files_in_the_database(alone, tmp_path):
    folder, database = storage.storage(), storage.DatabaseStorage()
    logo, licence, shared = upload_name(), upload_name(), upload_name()
    waiting = upload_name(".fernet")
    folder.save(storage.PRIVATE, logo, b"the logo, in the folder")
    folder.save(storage.PRIVATE, shared, b"the folder's copy")
    # A shop that kept its uploads in the database (copy-db brings them along on SQLite too).
    database.save(storage.PRIVATE, licence, b"a licence, in the database")
    database.save(storage.PRIVATE, shared, b"the database's copy")
    ciphertext = vault().encrypt('{"text": "WAITING-1", "separator": "newline"}').encode()
    database.save(storage.IMPORTS, waiting, ciphertext)

    archive = tmp_path / "shop.tar.gz"
    result = alone.test_cli_runner().invoke(args=["backup", "--out", str(archive)])
    assert result.exit_code == 0, result.output
    assert "4 uploaded files" in result.output
    assert "2 uploaded files were in the database storage, though this process uses the local storage" in (
        result.output
    )
    assert uploads_in(archive) == {
        f"uploads/private/{logo}": b"the logo, in the folder",
        f"uploads/private/{shared}": b"the folder's copy",  # the configured storage's copy wins
        f"uploads/private/{licence}": b"a licence, in the database",
        f"uploads/imports/{waiting}": ciphertext,
    }
    manifest = backup_manifest(archive)
    assert manifest["uploads"]["files"] == 4 and manifest["uploads"]["from"] == {"local": 2, "database": 2}

    with fresh_target(tmp_path) as url:
        restored = tmp_path / "restored"
        env = {"FAKA_INSTANCE_PATH": str(restored), **({"DATABASE_URL": url} if url else {})}
        run = flask(env, "restore", str(archive), "--yes")
        assert run.returncode == 0, run.stdout + run.stderr
        assert "restored 4 uploaded files" in run.stdout and "manifest lists" not in run.stderr
        assert (restored / "uploads" / "imports" / waiting).read_bytes() == ciphertext


def test_a_restore_says_when_the_archive_holds_fewer_uploads_than_its_manifest(alone, tmp_path):
    names = [upload_name() for _ in range(3)]
    for name in names:
        storage.storage().save(storage.PRIVATE, name, name.encode())
    archive, damaged = tmp_path / "shop.tar.gz", tmp_path / "damaged.tar.gz"
    backup_ok = alone.test_cli_runner().invoke(args=["backup", "--out", str(archive)])
    assert backup_ok.exit_code == 0, backup_ok.output
    with tarfile.open(archive) as tar, tarfile.open(damaged, "w:gz") as copy:
        for member in tar.getmembers():
            if member.name != f"uploads/private/{names[1]}":
                copy.addfile(member, tar.extractfile(member))

    with fresh_target(tmp_path) as url:
        env = {"FAKA_INSTANCE_PATH": str(tmp_path / "restored"), **({"DATABASE_URL": url} if url else {})}
        run = flask(env, "restore", str(damaged), "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "restored 2 uploaded files" in run.stdout
    assert "the archive holds 2 uploaded files, but its manifest lists 3" in run.stderr


def test_a_backup_leaves_out_symbolic_links_and_counts_files_deleted_while_it_runs(alone, monkeypatch, tmp_path):
    store = storage.storage()
    kept, deleted = upload_name(), upload_name()
    store.save(storage.PRIVATE, kept, b"kept")
    store.save(storage.PRIVATE, deleted, b"deleted while the backup ran")
    secret = tmp_path / "elsewhere.key"
    secret.write_bytes(b"SECRET-outside-the-uploads")
    (store.folder(storage.PRIVATE) / upload_name()).symlink_to(secret)

    real_open = storage.LocalStorage.open

    def job_deletes_it_first(self, area, name):
        if name == deleted:
            self.delete(area, [name])  # a key import's job finishing, between the listing and the read
        return real_open(self, area, name)

    monkeypatch.setattr(storage.LocalStorage, "open", job_deletes_it_first)
    archive = tmp_path / "shop.tar.gz"
    result = backup.create_backup(archive)
    monkeypatch.undo()
    assert uploads_in(archive) == {f"uploads/private/{kept}": b"kept"}
    assert result.skipped == [f"private/{deleted}"] and result.manifest["uploads"]["files"] == 2
    assert "1 uploaded files were deleted while the backup was written" in result.notes[0]

    with fresh_target(tmp_path) as url:
        env = {"FAKA_INSTANCE_PATH": str(tmp_path / "restored"), **({"DATABASE_URL": url} if url else {})}
        run = flask(env, "restore", str(archive), "--yes")
    assert run.returncode == 0, run.stdout + run.stderr
    assert "restored 1 uploaded files" in run.stdout and "manifest lists" not in run.stderr


def test_a_database_file_deleted_while_the_backup_reads_it_is_left_out(alone, tmp_path):
    if TEST_DATABASE == "sqlite":
        pytest.skip("streamed reads of the database storage are PostgreSQL's")
    database = storage.DatabaseStorage()
    kept, deleted = upload_name(".fernet"), upload_name(".fernet")
    database.save(storage.IMPORTS, kept, b"k" * (2 * storage.CHUNK))
    database.save(storage.IMPORTS, deleted, b"d" * (2 * storage.CHUNK))
    reader, removed = reader_engine(), []

    def job_deletes_it_at_its_second_chunk(_conn, _cursor, _statement, parameters, *_args):
        if not removed and isinstance(parameters, dict) and parameters.get("seq") == 1:
            file_id = db.session.scalar(select(storage.StoredFileRow.id).where(storage.StoredFileRow.name == deleted))
            if parameters.get("file_id") == file_id:
                removed.append(True)
                database.delete(storage.IMPORTS, [deleted])

    event.listen(reader, "before_cursor_execute", job_deletes_it_at_its_second_chunk)
    try:
        result = backup.create_backup(tmp_path / "shop.tar.gz")
    finally:
        event.remove(reader, "before_cursor_execute", job_deletes_it_at_its_second_chunk)
    assert removed and result.skipped == [f"imports/{deleted}"]
    assert uploads_in(result.path) == {f"uploads/imports/{kept}": b"k" * (2 * storage.CHUNK)}


def backup_manifest(archive: Path) -> dict:
    with tarfile.open(archive) as tar:
        return json.load(tar.extractfile("manifest.json"))


def test_restore_refuses_a_database_that_holds_data(app, runner, shop, stamped, tmp_path):
    archive = tmp_path / "shop.tar.gz"
    assert runner.invoke(args=["backup", "--out", str(archive)]).exit_code == 0
    result = runner.invoke(args=["restore", str(archive), "--yes"])
    assert result.exit_code != 0
    assert "already holds data" in result.output and "--force" in result.output
    assert table_counts() == shop.counts


def test_restore_refuses_what_is_not_a_backup(runner, tmp_path):
    junk = tmp_path / "notes.tar.gz"
    junk.write_bytes(b"not a tarball")
    result = runner.invoke(args=["restore", str(junk), "--yes"])
    assert result.exit_code != 0 and "is not a faka backup" in result.output
    other = tmp_path / "other.tar.gz"
    with tarfile.open(other, "w:gz") as tar:
        info = tarfile.TarInfo("readme.txt")
        tar.addfile(info, io.BytesIO(b""))
    result = runner.invoke(args=["restore", str(other), "--yes"])
    assert result.exit_code != 0 and "is not a faka backup" in result.output


def test_backup_keeps_the_newest_archives(app, runner, stamped, tmp_path):
    folder = tmp_path / "backups"
    folder.mkdir()
    for age, name in enumerate(
        ("faka-20260103-000000.tar.gz", "faka-20260102-000000.tar.gz", "faka-20260101-000000.tar.gz")
    ):
        (folder / name).write_bytes(b"old")
        os.utime(folder / name, (1_700_000_000 - age * 86400,) * 2)
    (folder / "notes.txt").write_text("not ours")
    result = runner.invoke(args=["backup", "--dir", str(folder), "--keep", "2"])
    assert result.exit_code == 0, result.output
    assert "deleted 2 older archive(s)" in result.output
    left = sorted(p.name for p in folder.iterdir())
    assert "faka-20260103-000000.tar.gz" in left and "notes.txt" in left and len(left) == 3


# -- copy-db --------------------------------------------------------------------------------


def test_copy_db_moves_the_shop_into_postgresql(app, runner, shop, stamped, base_config, monkeypatch, tmp_path):
    source = source_env(app)
    with scratch_database("copy") as url:
        refused = runner.invoke(args=["copy-db", "--to", url])
        assert refused.exit_code != 0 and "has no tables" in refused.output and "init-db" in refused.output
        migrated = flask(
            {"FAKA_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url, "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY},
            "init-db",
        )
        assert migrated.returncode == 0, migrated.stderr
        result = flask(source, "copy-db", "--to", url)
        assert result.returncode == 0, result.stdout + result.stderr
        assert f"copied {sum(shop.counts.values())} rows in {len(shop.counts)} tables" in result.stdout
        assert "Next: set DATABASE_URL to postgresql://" in result.stdout
        again = runner.invoke(args=["copy-db", "--to", url])
        assert again.exit_code != 0 and "already holds data" in again.output

        # The copied shop runs on PostgreSQL with the same keys and instance folder.
        with opened(
            base_config,
            monkeypatch,
            Path(app.instance_path),
            url,
            ENCRYPTION_KEYS=ENCRYPTION_KEY,
            SECRET_KEY="test-secret",
        ) as copied:
            # New orders and keys get new ids: PostgreSQL's sequences continue after the copied rows.
            assert_shop_works(copied, shop)


def test_copy_db_refuses_databases_at_other_revisions(runner, stamped, tmp_path):
    other = tmp_path / "old.db"
    migrated = flask(
        {
            "FAKA_INSTANCE_PATH": str(tmp_path),
            "DATABASE_URL": f"sqlite:///{other}",
            "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        },
        "db",
        "upgrade",
        "c7bbc392c43b",
    )
    assert migrated.returncode == 0, migrated.stderr
    result = runner.invoke(args=["copy-db", "--to", f"sqlite:///{other}"])
    assert result.exit_code != 0 and "the schemas differ" in result.output and "c7bbc392c43b" in result.output
    result = runner.invoke(args=["copy-db", "--from", f"sqlite:///{other}"])
    assert result.exit_code != 0 and "the schemas differ" in result.output
    assert "give one of --to and --from" in runner.invoke(args=["copy-db"]).output
    assert "is not a database URL" in runner.invoke(args=["copy-db", "--to", "shop.db"]).output
    itself = db.engine.url.render_as_string(hide_password=False)
    assert "is both the source and the target" in runner.invoke(args=["copy-db", "--to", itself]).output


def test_times_survive_the_portable_format_to_the_microsecond(app):
    moment = utcnow().replace(microsecond=123456) - timedelta(days=3)
    event = SecurityEvent(kind=SecurityEvent.ADMIN_PROBE, ip="198.51.100.7", subject="/wp-admin", created_at=moment)
    db.session.add(event)
    db.session.commit()
    with dbcopy.snapshot(db.engine) as conn:
        table = dbcopy.inspect(conn).table("security_events")
        [row] = [row for batch in dbcopy.export_rows(conn, table) for row in batch if row["id"] == event.id]
    assert row["created_at"] == moment.isoformat()
    with db.engine.begin() as conn:
        conn.execute(table.delete())
        dbcopy.import_rows(conn, table, [row])
    assert reload(event).created_at == moment and reload(event).subject == "/wp-admin"
