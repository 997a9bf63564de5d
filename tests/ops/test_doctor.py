"""`flask --app faka doctor`: each check passes on a production set-up and fails, with its
fix, when that one thing is wrong. Real Redis, a real worker.py, a real SMTP server."""

import os
import secrets
import shutil
import stat
import subprocess
import sys
import time
from collections import namedtuple
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text

from conftest import ENCRYPTION_KEY, TEST_DATABASE, TEST_REDIS_URL, free_port
from faka.extensions import db
from faka.payments.gateways import configure_gateway

ROOT = Path(__file__).resolve().parents[2]
DAY = 86400

Result = namedtuple("Result", "exit_code output")


class Deployment:
    """A production-like configuration (HTTPS base URL behind one proxy, secrets in the
    environment, Redis, SMTP, a real gateway, a recent backup) that one test bends at a time."""

    def __init__(self, make_app, tmp_path: Path, smtp):
        self.make_app = make_app
        self.instance = tmp_path / "instance"
        self.instance.mkdir(mode=0o700)
        self.backups = tmp_path / "backups"
        self.backups.mkdir()
        archive = self.backups / "faka-20260101-030000.tar.gz"
        archive.write_bytes(b"archive")
        archive.chmod(0o600)
        self.config = {
            "SECRET_KEY": secrets.token_hex(32),
            "BASE_URL": "https://shop.example.com",
            "SESSION_COOKIE_SECURE": True,
            "HSTS": True,
            "JOBS_MODE": "rq",
            "REDIS_URL": TEST_REDIS_URL,
            "MAIL_SERVER": "127.0.0.1",
            "MAIL_PORT": smtp.port,
            "MAIL_DEFAULT_SENDER": "Shop <no-reply@shop.example.com>",
        }

    def app(self, **overrides):
        return self.make_app(**{**self.config, **overrides})

    def doctor(self, *args, **overrides) -> Result:
        app = self.app(**overrides)
        with app.app_context():
            result = app.test_cli_runner().invoke(args=["doctor", "--backup-dir", str(self.backups), *args])
        assert result.exception is None or isinstance(result.exception, SystemExit), result.output
        return Result(result.exit_code, words(result))


def words(result) -> str:
    """The output with its line breaks as spaces: lines are wrapped for the terminal."""
    return " ".join(result.output.split())


@pytest.fixture
def deployment(make_app, tmp_path, monkeypatch, redis_conn, smtp):
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(tmp_path / "instance"))
    monkeypatch.setenv("FAKA_PROXY_COUNT", "1")
    setup = Deployment(make_app, tmp_path, smtp)
    with setup.app().app_context():
        configure_gateway("sandbox", {}, enabled=False)
        configure_gateway("epay", {"api_url": "https://pay.example.com/", "pid": "1001", "key": "k" * 32}, enabled=True)
        _stamp_latest_migration()
    _register_worker(redis_conn)
    yield setup
    with setup.app().app_context():
        db.session.execute(text("DROP TABLE IF EXISTS alembic_version"))
        db.session.commit()


def _stamp_latest_migration():
    """Record the newest migration as applied, as `flask init-db` does (the test schema
    comes from the models, which equal the migrations: see test_cli.py)."""
    from alembic.script import ScriptDirectory
    from flask import current_app

    head = ScriptDirectory(current_app.extensions["migrate"].directory).get_current_head()
    db.session.execute(
        text("CREATE TABLE IF NOT EXISTS alembic_version (version_num VARCHAR(32) NOT NULL PRIMARY KEY)")
    )
    db.session.execute(text("DELETE FROM alembic_version"))
    db.session.execute(text("INSERT INTO alembic_version (version_num) VALUES (:v)"), {"v": head})
    db.session.commit()


def _register_worker(redis_conn):
    """What a running worker.py leaves in Redis: a worker on the queue and its cron scheduler."""
    from rq import Queue, SimpleWorker
    from rq.cron import CronScheduler

    SimpleWorker([Queue("faka-test", connection=redis_conn)], connection=redis_conn).register_birth()
    CronScheduler(connection=redis_conn).register_birth()


def line(result: Result, start: str) -> str:
    """The printed check that starts with `start` (status mark and name), up to the next check."""
    index = result.output.find(start)
    assert index >= 0, f"{start!r} not in: {result.output}"
    rest = result.output[index + len(start) :]
    ends = [rest.find(mark) for mark in (" ok ", " WARN ", " FAIL ") if rest.find(mark) >= 0]
    return start + rest[: min(ends)] if ends else start + rest


# -- the whole -------------------------------------------------------------------------


def test_production_deployment_passes_with_a_real_worker(deployment, redis_conn, base_config):
    redis_conn.flushdb()
    with worker_process(deployment, base_config):
        result = deployment.doctor()
    assert result.exit_code == 0, result.output
    assert "FAIL" not in result.output
    assert "ok Worker: 1 worker(s) alive" in result.output and "the reconciler scheduled" in result.output
    assert "ok Payment gateways: notify URLs: epay: https://shop.example.com/pay/epay/notify" in result.output
    assert "ok SMTP: 127.0.0.1:" in result.output
    assert "ok Database:" in result.output and "at the latest migration" in result.output
    expected_warnings = 1 if TEST_DATABASE == "sqlite" else 0  # "fine for one VPS"
    assert f"{expected_warnings} warning(s), 0 failure(s)" in result.output


def test_warnings_alone_exit_zero(deployment):
    result = deployment.doctor(SECRET_KEY=None)
    assert result.exit_code == 0
    check = line(result, "WARN Secret key:")
    assert f"generated into {deployment.instance / 'secret.key'}" in check
    assert "set SECRET_KEY in the environment file" in check


# -- secrets ---------------------------------------------------------------------------


def test_short_secret_key_fails(deployment):
    result = deployment.doctor(SECRET_KEY="change-me")
    assert result.exit_code == 1
    check = line(result, "FAIL Secret key:")
    assert "only 9 characters" in check and "secrets.token_hex(32)" in check


def test_encryption_keys_from_the_environment_or_a_generated_file(deployment):
    assert "ok Encryption keys: 1 key(s) from FAKA_ENCRYPTION_KEYS" in deployment.doctor().output
    result = deployment.doctor(ENCRYPTION_KEYS=None)
    check = line(result, "WARN Encryption keys:")
    assert str(deployment.instance / "encryption.keys") in check
    assert "put its content in FAKA_ENCRYPTION_KEYS" in check and "keep a copy outside this server" in check
    assert (
        "ok Encryption keys: 2 key(s)" in deployment.doctor(ENCRYPTION_KEYS=f"{ENCRYPTION_KEY},{ENCRYPTION_KEY}").output
    )


def test_stored_secrets_must_open_with_the_keys_in_force(deployment, make_product):
    make_product(keys=1)  # a card key, beside the gateways' settings, saved with ENCRYPTION_KEY
    assert "ok Stored secrets: the 3 sampled (card keys, gateway settings, ...) decrypt" in deployment.doctor().output

    other = Fernet.generate_key().decode()  # a key as good as the right one, but not it
    result = deployment.doctor(ENCRYPTION_KEYS=other)
    assert result.exit_code == 1
    check = line(result, "FAIL Stored secrets: 3 of 3 sampled do not decrypt with this host's encryption keys")
    assert "card_keys.ciphertext (1)" in check and "gateway_configs.settings_ciphertext (2)" in check
    assert "set FAKA_ENCRYPTION_KEYS to the keys they were saved with" in check
    # A new key in front of the old one (a rotation under way) still opens them.
    assert "ok Stored secrets: the 3 sampled" in deployment.doctor(ENCRYPTION_KEYS=f"{other},{ENCRYPTION_KEY}").output


def test_backups_missing_stale_exposed_or_recent(deployment, tmp_path):
    assert "ok Backups: 1 archive(s)" in deployment.doctor().output

    archive = next(deployment.backups.iterdir())
    archive.chmod(0o644)
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Backups:")
    assert f"{archive.name} in {deployment.backups} can be read by other users" in check
    assert f"chmod 600 {deployment.backups}/faka-*.tar.gz" in check
    archive.chmod(0o600)

    three_days_ago = time.time() - 3 * DAY
    os.utime(archive, (three_days_ago, three_days_ago))
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Backups:")
    assert f"{archive.name}, is 72 hours old: backups stopped" in check and "journalctl -u faka-backup.service" in check

    archive.rename(archive.with_name("notes.txt"))  # not an archive `flask backup` wrote
    check = line(deployment.doctor(), "WARN Backups:")
    assert "no archive" in check and "systemctl start faka-backup.service" in check

    app = deployment.app()
    with app.app_context():
        missing, default, from_env = (
            app.test_cli_runner().invoke(args=["doctor", *args], env=env)
            for args, env in (
                (["--backup-dir", str(tmp_path / "nowhere")], {}),
                ([], {"FAKA_BACKUP_DIR": ""}),
                ([], {"FAKA_BACKUP_DIR": str(tmp_path / "nowhere")}),
            )
        )
    assert missing.exit_code == 1 and f"install -d -m 700 -o faka -g faka {tmp_path / 'nowhere'}" in words(missing)
    assert from_env.exit_code == 1 and f"{tmp_path / 'nowhere'} does not exist" in words(from_env)
    # Without a folder, where `flask backup` writes by default.
    assert f"WARN Backups: no backup yet ({deployment.instance / 'backups'} does not exist)" in words(default)
    assert "faka-backup.timer" in words(default)


# -- HTTPS and the proxy ---------------------------------------------------------------


@pytest.mark.parametrize(
    "url, problem",
    [
        ("http://shop.example.com", "is not HTTPS"),
        ("http://127.0.0.1:5000", "is not HTTPS"),
        ("https://localhost", "points at this machine"),
        ("https://127.0.0.1", "is not a public address"),
        ("https://192.168.1.20", "is not a public address"),
    ],
)
def test_base_url_must_be_public_https(deployment, url, problem):
    result = deployment.doctor(BASE_URL=url, SESSION_COOKIE_SECURE=False, HSTS=False)
    assert result.exit_code == 1
    check = line(result, "FAIL Base URL:")
    assert f"FAKA_BASE_URL={url} {problem}" in check and "set FAKA_BASE_URL=https://<your domain>" in check
    # The gateways are told to notify that address too.
    assert "FAIL Payment gateways: notify URLs not public HTTPS" in result.output


def test_https_without_proxy_count_fails(deployment, monkeypatch):
    monkeypatch.delenv("FAKA_PROXY_COUNT")
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Reverse proxy:")
    assert "every visitor has the proxy's address" in check and "set FAKA_PROXY_COUNT=1" in check
    monkeypatch.setenv("FAKA_PROXY_COUNT", "2")
    assert "ok Reverse proxy: FAKA_PROXY_COUNT=2" in deployment.doctor().output


def test_secure_cookies_and_hsts(deployment):
    check = line(deployment.doctor(SESSION_COOKIE_SECURE=False), "WARN Secure cookies and HSTS:")
    assert "FAKA_SECURE_COOKIES not set" in check and "set FAKA_SECURE_COOKIES=1" in check
    check = line(deployment.doctor(HSTS=False), "WARN Secure cookies and HSTS:")
    assert "set FAKA_HSTS=1" in check
    result = deployment.doctor(BASE_URL="http://shop.example.com")
    check = line(result, "FAIL Secure cookies and HSTS:")
    assert "nobody can sign in" in check and "unset FAKA_SECURE_COOKIES" in check
    assert "ok Secure cookies and HSTS" in deployment.doctor().output


# -- database --------------------------------------------------------------------------


def test_database_behind_the_code_fails(deployment):
    with deployment.app().app_context():
        db.session.execute(text("DELETE FROM alembic_version"))
        db.session.commit()
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Database:")
    assert "is at no migration, the code expects" in check and "flask --app faka init-db" in check


def test_database_unreachable_fails_and_skips_what_needs_it(deployment):
    result = deployment.doctor(SQLALCHEMY_DATABASE_URI=f"postgresql://faka:secret-pw@127.0.0.1:{free_port()}/faka")
    assert result.exit_code == 1
    check = line(result, "FAIL Database:")
    assert "cannot be reached: OperationalError" in check and "check DATABASE_URL" in check
    assert "secret-pw" not in result.output
    assert "WARN SMTP and payment gateways: not checked" in result.output


@pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="the SQLite note")
def test_sqlite_is_a_warning_with_backup_advice(deployment):
    check = line(deployment.doctor(), "WARN SQLite:")
    assert "(journal wal): fine for one VPS" in check and "flask --app faka copy-db" in check


# -- Redis and the worker --------------------------------------------------------------


def test_redis_unreachable_fails(deployment):
    result = deployment.doctor(REDIS_URL=f"redis://127.0.0.1:{free_port()}/0")
    assert result.exit_code == 1
    check = line(result, "FAIL Redis:")
    assert "cannot be reached: ConnectionError" in check and "systemctl status redis-server" in check


def test_without_redis_jobs_run_in_the_web_process(deployment):
    result = deployment.doctor(REDIS_URL=None, JOBS_MODE=None)
    assert result.exit_code == 0
    assert "REDIS_URL is not set" in line(result, "WARN Redis and worker:")


def test_no_worker_fails(deployment, redis_conn):
    redis_conn.flushdb()
    result = deployment.doctor()
    assert result.exit_code == 1
    assert "ok Redis:" in result.output
    check = line(result, "FAIL Worker:")
    assert 'no worker listens on the queue "faka-test"' in check and "systemctl enable --now faka-worker" in check


def test_worker_without_the_reconciler_fails(deployment, redis_conn, base_config):
    redis_conn.flushdb()
    with worker_process(deployment, base_config, "--no-cron"):
        result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Worker:")
    assert "1 worker(s) alive, but none schedules the reconciler" in check and "without --no-cron" in check


class worker_process:
    """`python worker.py` against the test database and Redis, until it has registered."""

    def __init__(self, deployment, base_config, *args):
        self.env = {
            **os.environ,
            "FAKA_INSTANCE_PATH": str(deployment.instance),
            "DATABASE_URL": base_config["SQLALCHEMY_DATABASE_URI"],
            "REDIS_URL": TEST_REDIS_URL,
            "FAKA_RQ_QUEUE": "faka-test",
            "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY,
            "SECRET_KEY": deployment.config["SECRET_KEY"],
            "FAKA_RECONCILE_INTERVAL": "3600",
        }
        self.args = args

    def __enter__(self):
        from redis import Redis
        from rq import Queue, Worker
        from rq.cron import CronScheduler

        self.process = subprocess.Popen(
            [sys.executable, "-m", "faka.worker", *self.args],
            cwd=ROOT,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        conn = Redis.from_url(TEST_REDIS_URL)
        want_cron = "--no-cron" not in self.args
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            assert self.process.poll() is None, self.process.stderr.read().decode()
            if Worker.all(queue=Queue("faka-test", connection=conn)) and (CronScheduler.all(conn) or not want_cron):
                return self
            time.sleep(0.1)
        raise AssertionError("worker.py did not register in 30 s")

    def __exit__(self, *exc):
        self.process.terminate()
        self.process.wait(timeout=30)
        self.process.stderr.close()


# -- email -----------------------------------------------------------------------------


def test_smtp_reachable_sends_nothing(deployment, smtp):
    check = line(deployment.doctor(), "ok SMTP:")
    assert f"127.0.0.1:{smtp.port} (plain, environment) answers" in check
    assert smtp.messages == []


def test_smtp_closed_port_fails(deployment):
    port = free_port()
    result = deployment.doctor(MAIL_PORT=port)
    assert result.exit_code == 1
    check = line(result, "FAIL SMTP:")
    assert f"127.0.0.1:{port} (plain, environment): ConnectionRefusedError" in check
    assert "use 465 (MAIL_USE_SSL) or 587 (MAIL_USE_TLS)" in check


def test_smtp_starttls_refused_by_the_server_fails(deployment):
    check = line(deployment.doctor(MAIL_USE_TLS=True), "FAIL SMTP:")
    assert "(STARTTLS, environment): SMTPNotSupportedError" in check


def test_smtp_not_configured_or_sender_on_localhost_warns(deployment):
    result = deployment.doctor(MAIL_SERVER=None)
    assert result.exit_code == 0
    check = line(result, "WARN SMTP:")
    assert "emails (delivered keys, complaints, password resets) wait in the outbox" in check and "MAIL_SERVER" in check
    check = line(deployment.doctor(MAIL_DEFAULT_SENDER="faka <no-reply@localhost>"), "WARN SMTP:")
    assert "set MAIL_DEFAULT_SENDER to an address of your domain" in check


# -- payments --------------------------------------------------------------------------


def test_enabled_sandbox_fails(deployment):
    with deployment.app().app_context():
        configure_gateway("sandbox", {}, enabled=True)
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Payment gateways:")
    assert "anyone can pay for goods with a test payment" in check
    assert "flask --app faka gateway-config sandbox --disable" in check


def test_no_gateway_enabled_fails(deployment):
    with deployment.app().app_context():
        configure_gateway("epay", {}, enabled=False)
    result = deployment.doctor()
    assert result.exit_code == 1
    assert "buyers cannot pay" in line(result, "FAIL Payment gateways:")


# -- the machine -----------------------------------------------------------------------


def test_uncompiled_or_stale_translations(deployment, tmp_path):
    catalogues = tmp_path / "translations"
    shutil.copytree(ROOT / "faka" / "translations", catalogues, ignore=shutil.ignore_patterns("*.mo"))
    result = deployment.doctor(BABEL_TRANSLATION_DIRECTORIES=str(catalogues))
    assert result.exit_code == 1
    check = line(result, "FAIL Translations:")
    assert "not compiled: en, zh_Hans_CN" in check and "pybabel compile -d faka/translations" in check

    for po in catalogues.glob("*/LC_MESSAGES/messages.po"):
        shutil.copy(
            ROOT / "faka" / "translations" / po.relative_to(catalogues).with_suffix(".mo"), po.with_suffix(".mo")
        )
        os.utime(po.with_suffix(".mo"), (time.time() - DAY, time.time() - DAY))
    check = line(deployment.doctor(BABEL_TRANSLATION_DIRECTORIES=str(catalogues)), "WARN Translations:")
    assert "compiled before their last change: en, zh_Hans_CN" in check
    assert "ok Translations: 2 catalogue(s) compiled" in deployment.doctor().output


def test_full_disk_fails(deployment, monkeypatch):
    from faka.ops import doctor

    usage = namedtuple("usage", "total used free")
    monkeypatch.setattr(doctor.shutil, "disk_usage", lambda path: usage(20 * 1024**3, 19.8 * 1024**3, 200 * 1024**2))
    result = deployment.doctor()
    assert result.exit_code == 1
    check = line(result, "FAIL Disk space:")
    assert (
        "0.2 GB free of 20.0 GB" in check and "the database will fail" in check and "journalctl --vacuum-size" in check
    )


def test_instance_folder_permissions(deployment):
    assert "ok Instance folder:" in deployment.doctor().output and "drwx------" in deployment.doctor().output

    deployment.instance.chmod(0o755)
    check = line(deployment.doctor(), "WARN Instance folder:")
    assert "no file in it is readable to them" in check and f"chmod 750 {deployment.instance}" in check

    evidence = deployment.instance / "uploads" / "private" / "evidence.png"
    evidence.parent.mkdir(parents=True)
    evidence.write_bytes(b"png")
    evidence.chmod(0o644)
    result = deployment.doctor()
    assert result.exit_code == 1
    assert "every user of this machine can read uploads/private/evidence.png" in line(result, "FAIL Instance folder:")

    deployment.instance.chmod(0o777)
    result = deployment.doctor()
    assert "is writable by every user of this machine" in line(result, "FAIL Instance folder:")
    deployment.instance.chmod(stat.S_IRWXU)
