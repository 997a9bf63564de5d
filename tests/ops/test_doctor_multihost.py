"""`flask doctor` on several web hosts behind a load balancer (docs/topology.md): once the
operator says so (FAKA_WEB_HOSTS), each piece the hosts must share and do not is named with
its fix; a one-machine shop hears nothing of it, whatever its upload storage. And the
balancer's own health check, /healthz/host."""

import secrets
import socket
from urllib.parse import urlsplit

import pytest
from sqlalchemy import make_url
from test_doctor import deployment, line  # noqa: F401 - the production-like set-up, bent one setting at a time

from conftest import TEST_DATABASE, TEST_REDIS_URL
from faka.extensions import db
from faka.ops import doctor
from faka.platform.models import Setting

ON_POSTGRESQL = TEST_DATABASE != "sqlite"
HOSTS = "Several web hosts:"
REDIS_HERE = doctor._redis_where(TEST_REDIS_URL)


def this_machine() -> str:
    """This machine's name, when it leads to 127.0.0.1 where the test's servers listen: a
    server named as a private network's DNS names it, not by a loopback address."""
    name = socket.gethostname()
    try:
        address = socket.gethostbyname(name)
    except OSError:
        address = None
    if address != "127.0.0.1":
        pytest.skip(f"this machine's name ({name}) does not lead to 127.0.0.1, where the test's servers listen")
    return name


def test_one_machine_hears_nothing_of_several_hosts(deployment):
    result = deployment.doctor()
    assert HOSTS not in result.output and "Database pooler" not in result.output


@pytest.mark.skipif(not ON_POSTGRESQL, reason="uploads are kept in the database only on PostgreSQL")
def test_uploads_in_the_database_on_one_machine_are_no_sign_of_several_hosts(deployment):
    result = deployment.doctor(UPLOAD_STORAGE="database", REDIS_URL=None, JOBS_MODE=None)
    assert HOSTS not in result.output
    assert result.output.count("REDIS_URL is not set") == 1  # said once, by the Redis check


@pytest.mark.skipif(not ON_POSTGRESQL, reason="several hosts need PostgreSQL: on SQLite that check fails")
def test_several_hosts_sharing_everything_pass(deployment, base_config):
    name = this_machine()
    redis = urlsplit(TEST_REDIS_URL)
    shared = {
        "WEB_HOSTS": 3,
        "UPLOAD_STORAGE": "database",
        "REDIS_URL": redis._replace(netloc=f"{name}:{redis.port or 6379}").geturl(),
        "SQLALCHEMY_DATABASE_URI": make_url(base_config["SQLALCHEMY_DATABASE_URI"])
        .set(host=name)
        .render_as_string(hide_password=False),
    }
    result = deployment.doctor(**shared)
    assert "recorded SECRET_KEY's fingerprint (a keyed hash, not the key)" in line(result, f"ok {HOSTS} recorded")
    check = line(result, f"ok {HOSTS} 3 hosts share")
    assert "PostgreSQL, Redis, and the uploads in the database" in check and "no sticky sessions" in check
    assert "0 warning(s), 0 failure(s)" in result.output, result.output
    # The next host compares its key with the one recorded.
    assert f"ok {HOSTS} SECRET_KEY is the one {socket.gethostname()} recorded" in deployment.doctor(**shared).output


@pytest.mark.skipif(not ON_POSTGRESQL, reason="several hosts need PostgreSQL")
def test_a_host_with_another_secret_key_than_the_first_fails(deployment):
    first = deployment.doctor(WEB_HOSTS=2, UPLOAD_STORAGE="database")
    assert f"ok {HOSTS} recorded SECRET_KEY's fingerprint" in first.output
    with deployment.app().app_context():
        recorded = db.session.get(Setting, doctor.SECRET_FINGERPRINT).value
    assert deployment.config["SECRET_KEY"] not in recorded and socket.gethostname() in recorded

    result = deployment.doctor(WEB_HOSTS=2, UPLOAD_STORAGE="database", SECRET_KEY=secrets.token_hex(32))
    assert result.exit_code == 1
    check = line(result, f"FAIL {HOSTS} this host's SECRET_KEY is not the one {socket.gethostname()} recorded")
    assert "refused by the other" in check and "set the same SECRET_KEY in every host's environment file" in check
    assert "delete from settings where key = 'secret_key_fingerprint'" in check


def test_each_piece_several_hosts_do_not_share_is_named_with_its_fix(deployment):
    result = deployment.doctor(
        WEB_HOSTS=2,
        SECRET_KEY=None,
        ENCRYPTION_KEYS=None,
        REDIS_URL=None,
        JOBS_MODE=None,
        BASE_URL="http://127.0.0.1:5000",
    )
    assert result.exit_code == 1
    secret = line(result, f"FAIL {HOSTS} SECRET_KEY is generated into {deployment.instance / 'secret.key'}")
    assert "refused by the next" in secret and "set the same SECRET_KEY in every host's environment file" in secret
    keys = line(
        result, f"FAIL {HOSTS} the encryption keys are generated into {deployment.instance / 'encryption.keys'}"
    )
    assert "set the same FAKA_ENCRYPTION_KEYS" in keys
    # Said once, by the Redis check, in the words of several hosts.
    redis = line(result, "WARN Redis and worker: REDIS_URL is not set")
    assert "each host counts its own rate limits" in redis and "set the same REDIS_URL on every host" in redis
    assert result.output.count("REDIS_URL is not set") == 1
    uploads = line(result, f"FAIL {HOSTS} uploads are kept in {deployment.instance / 'uploads'} on this host")
    assert "flask --app faka storage-move --to database" in uploads and "FAKA_UPLOAD_STORAGE=database" in uploads
    assert "load balancer's address" in line(result, f"WARN {HOSTS} FAKA_BASE_URL is not set")
    if ON_POSTGRESQL:
        assert "the database is SQLite" not in result.output
    else:
        assert "copy-db --to postgresql://" in line(result, f"FAIL {HOSTS} the database is SQLite")


def test_servers_named_by_a_loopback_address_are_not_for_other_hosts(deployment):
    result = deployment.doctor(WEB_HOSTS=2, UPLOAD_STORAGE="database" if ON_POSTGRESQL else "local")
    redis = line(result, f"WARN {HOSTS} REDIS_URL names this host ({REDIS_HERE})")
    assert "unless Redis runs on this host, other hosts cannot reach it" in redis
    assert "Redis server's private address" in redis
    if not ON_POSTGRESQL:
        return  # SQLite fails for several hosts anyway
    database = line(result, f"WARN {HOSTS} DATABASE_URL names this host")
    assert "unless PostgreSQL runs on this host, other hosts cannot reach it" in database
    # Through a PgBouncer of each host's own, a loopback DATABASE_URL is how it should be.
    pooled = deployment.doctor(WEB_HOSTS=2, UPLOAD_STORAGE="database", DATABASE_POOLER="pgbouncer")
    assert "DATABASE_URL names this host" not in pooled.output


def test_a_web_host_leaves_the_backups_to_the_host_whose_timer_takes_them(deployment, tmp_path, monkeypatch):
    empty = tmp_path / "no-archive-here"
    empty.mkdir()
    timer = tmp_path / "timers.target.wants" / "faka-backup.timer"
    monkeypatch.setattr(doctor, "BACKUP_TIMER", timer)

    web_host = line(deployment.doctor("--backup-dir", str(empty), WEB_HOSTS=2), "ok Backups:")
    assert "not taken on this host" in web_host and "faka-backup.timer not enabled" in web_host
    assert "`faka doctor` there checks them" in web_host
    # The host that takes them, and one machine, are told of a missing archive as before.
    assert "WARN Backups: no archive in" in deployment.doctor("--backup-dir", str(empty)).output
    timer.parent.mkdir()
    timer.touch()
    assert "WARN Backups: no archive in" in deployment.doctor("--backup-dir", str(empty), WEB_HOSTS=2).output
    timer.unlink()
    # Archives on a host are checked wherever they are.
    assert "ok Backups: 1 archive(s)" in deployment.doctor(WEB_HOSTS=2).output


def test_a_pooler_on_sqlite_does_nothing_and_says_so(deployment):
    if ON_POSTGRESQL:
        pytest.skip("on PostgreSQL tests/slow/test_pgbouncer.py checks the pooler through a real PgBouncer")
    check = line(deployment.doctor(DATABASE_POOLER="pgbouncer"), "WARN Database pooler:")
    assert "does nothing: the database is not PostgreSQL" in check


def test_an_unknown_pooler_stops_the_start_with_what_to_set(make_app):
    with pytest.raises(ValueError, match="FAKA_DATABASE_POOLER='pgpool'.*pgbouncer"):
        make_app(fresh=True, DATABASE_POOLER="pgpool")


# -- the load balancer's check ------------------------------------------------------------


def test_a_host_stays_in_rotation_while_the_shared_worker_is_down(make_app, redis_conn):
    """/healthz fails without a worker, on every host at once: a balancer asking it would
    take them all out. /healthz/host asks only what this host needs to serve."""
    client = make_app(JOBS_MODE="rq", REDIS_URL=TEST_REDIS_URL).test_client()
    assert client.get("/healthz").status_code == 503
    answer = client.get("/healthz/host")
    assert answer.status_code == 200 and answer.json == {"status": "ok", "database": {"ok": True}}


def test_a_host_without_its_database_leaves_rotation(app, make_app, tmp_path):
    unreachable = "postgresql://faka@127.0.0.1:1/faka" if ON_POSTGRESQL else f"sqlite:///{tmp_path}/missing/faka.db"
    answer = make_app(fresh=True, SQLALCHEMY_DATABASE_URI=unreachable).test_client().get("/healthz/host")
    assert answer.status_code == 503
    assert answer.json["status"] == "unhealthy" and answer.json["database"]["ok"] is False
