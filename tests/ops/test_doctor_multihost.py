"""`flask doctor` on several web hosts behind a load balancer (docs/topology.md): once the
operator says so (FAKA_WEB_HOSTS, or uploads kept in the database), each piece the hosts
must share and do not is named with its fix; a one-machine shop hears nothing of it. And
the balancer's own health check, /healthz/host."""

import pytest
from test_doctor import deployment, line  # noqa: F401 - the production-like set-up, bent one setting at a time

from conftest import TEST_DATABASE, TEST_REDIS_URL

ON_POSTGRESQL = TEST_DATABASE != "sqlite"
HOSTS = "Several web hosts:"


def test_one_machine_hears_nothing_of_several_hosts(deployment):
    result = deployment.doctor()
    assert HOSTS not in result.output and "Database pooler" not in result.output


@pytest.mark.skipif(not ON_POSTGRESQL, reason="several hosts need PostgreSQL: on SQLite that check fails")
def test_several_hosts_sharing_everything_pass(deployment):
    result = deployment.doctor(WEB_HOSTS=3, UPLOAD_STORAGE="database")
    check = line(result, f"ok {HOSTS}")
    assert "3 host(s)" in check and "no sticky sessions" in check
    assert "FAIL" not in result.output, result.output


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
    redis = line(result, f"WARN {HOSTS} REDIS_URL is not set")
    assert "rate limits" in redis and "set the same REDIS_URL on every host" in redis
    uploads = line(result, f"FAIL {HOSTS} uploads are kept in {deployment.instance / 'uploads'} on this host")
    assert "flask --app faka storage-move --to database" in uploads and "FAKA_UPLOAD_STORAGE=database" in uploads
    assert "load balancer's address" in line(result, f"WARN {HOSTS} FAKA_BASE_URL is not set")
    if ON_POSTGRESQL:
        assert "the database is SQLite" not in result.output
    else:
        assert "copy-db --to postgresql://" in line(result, f"FAIL {HOSTS} the database is SQLite")


@pytest.mark.skipif(not ON_POSTGRESQL, reason="uploads are kept in the database only on PostgreSQL")
def test_uploads_in_the_database_mean_several_hosts(deployment):
    result = deployment.doctor(UPLOAD_STORAGE="database", SECRET_KEY=None)
    assert f"FAIL {HOSTS} SECRET_KEY is generated" in result.output
    assert "uploads are kept in" not in result.output


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
