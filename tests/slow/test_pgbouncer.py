"""faka through a real PgBouncer in transaction mode (docs/topology.md), the pooler a
managed PostgreSQL usually sits behind: each transaction may run on another server
connection, so nothing may outlive one. With FAKA_DATABASE_POOLER=pgbouncer the whole
purchase works through it, each statement run more often than psycopg's threshold for
preparing it (5); without the setting the same repetition fails, which shows the test can.
Order changes are heard on FAKA_DATABASE_LISTEN_URL, a direct connection."""

import os
import shutil
import tempfile
import time
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import make_url, select
from sqlalchemy.exc import DBAPIError

from chaos_tools import Process, wait_until
from conftest import TEST_DATABASE, TEST_REDIS_URL, csrf_from, free_port, login, run_worker, signed_notify
from faka.extensions import db
from faka.ops import doctor
from faka.orders import status_signal
from faka.orders.models import Order

pytestmark = pytest.mark.skipif(
    TEST_DATABASE == "sqlite", reason="PgBouncer pools PostgreSQL's connections: this runs in the PostgreSQL part"
)

ROUNDS = 7  # more than psycopg's prepare_threshold (5): each statement would be prepared by now
# Server connections the pool holds, so that consecutive transactions change server: an odd
# number, since the pool's ping before each checkout is a transaction of its own.
SERVERS = 3
# pgbouncer's `-u`: it refuses to run as root, and its files must be readable by that user.
RUN_AS = ["-u", "nobody"] if os.geteuid() == 0 else []


@pytest.fixture(scope="module")
def pgbouncer(tmp_path_factory):
    """The URL of a PgBouncer in transaction mode in front of the test database."""
    binary = shutil.which("pgbouncer") or shutil.which("pgbouncer", path="/usr/sbin:/usr/local/sbin")
    assert binary, "pgbouncer is not installed: apt-get install pgbouncer (.ci/run does)"
    database = make_url(TEST_DATABASE)
    folder = Path(tempfile.mkdtemp(prefix="faka-pgbouncer-"))
    port = free_port()
    (folder / "users.txt").write_text(f'"{database.username}" ""\n')
    (folder / "pgbouncer.ini").write_text(
        f"""[databases]
{database.database} = host={database.host} port={database.port or 5432} dbname={database.database}

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = {port}
unix_socket_dir =
auth_type = trust
auth_file = {folder / "users.txt"}
pool_mode = transaction
default_pool_size = {SERVERS}
; Each transaction takes the server connection idle longest rather than the one used last,
; as a busy pool does anyway: a statement that outlives its transaction then fails at once.
server_round_robin = 1
logfile =
pidfile =
"""
    )
    for path in (folder, *folder.iterdir()):
        path.chmod(0o755 if path.is_dir() else 0o644)
    process = Process(
        "pgbouncer",
        [binary, *RUN_AS, str(folder / "pgbouncer.ini")],
        os.environ.copy(),
        tmp_path_factory.mktemp("logs"),
    )
    url = database.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
    try:
        wait_until(lambda: _answers(url), timeout=10, what=process.output)
        _fill_the_pool(url)
        yield url
    finally:
        process.kill()
        shutil.rmtree(folder, ignore_errors=True)


def _answers(url: str) -> bool:
    try:
        with psycopg.connect(url, connect_timeout=1, autocommit=True) as connection:
            connection.execute("SELECT 1")
        return True
    except psycopg.OperationalError:
        return False


def _fill_the_pool(url: str) -> None:
    """Transactions open side by side, so the pool holds SERVERS server connections."""
    connections = [psycopg.connect(url) for _ in range(SERVERS)]
    for connection in connections:
        connection.execute("SELECT 1")
    for connection in connections:
        connection.commit()
        connection.close()


def shop_through(make_app, url, **config):
    return make_app(SQLALCHEMY_DATABASE_URI=url, DATABASE_POOLER="pgbouncer", **config)


def browser(app, number):
    """A browser and an address of their own: no risk rule sees one buyer buying again."""
    client = app.test_client()
    client.environ_base["REMOTE_ADDR"] = f"198.51.100.{number + 1}"
    return client


def test_a_shop_runs_through_pgbouncer_in_transaction_mode(
    app, make_app, make_product, merchant, pgbouncer, redis_conn
):
    product = make_product(keys=ROUNDS)
    shop = shop_through(
        make_app,
        pgbouncer,
        DATABASE_LISTEN_URL=TEST_DATABASE,
        JOBS_MODE="rq",
        REDIS_URL=TEST_REDIS_URL,
        STATUS_TRUST_SECONDS=60,  # a poll trusts its last read until the listener hears of a change
    )
    started = time.monotonic()
    numbers = []
    for i in range(ROUNDS):
        buyer = browser(shop, i)
        page = buyer.get(f"/p/{product.slug}")
        form = {
            "csrf_token": csrf_from(page.text),
            "quantity": 1,
            "email": f"b{i}@example.com",
            "query_password": "pw-1",
        }
        placed = buyer.post(f"/p/{product.slug}/buy", data=form)
        assert placed.status_code == 303, placed.text[:300]
        token = placed.headers["Location"].rsplit("/", 1)[-1]
        assert buyer.get(f"/order/{token}/status").status_code == 200  # waiting for payment

        with shop.app_context():
            notify = signed_notify(db.session.execute(select(Order).where(Order.token == token)).scalar_one())
        assert buyer.post("/pay/sandbox/notify", data=notify).status_code < 400
        run_worker(shop)  # a real RQ worker delivers, through PgBouncer

        def delivered(token=token, buyer=buyer):
            answer = buyer.get(f"/order/{token}/status")
            return answer.status_code == 286 and 'class="card-key"' in answer.text

        wait_until(delivered, timeout=3, interval=0.05, what=f"order {i} delivered and heard of")
        with shop.app_context():
            number = db.session.execute(select(Order.number).where(Order.token == token)).scalar_one()
        numbers.append(number)
        lookup = buyer.post(
            "/lookup",
            data={"csrf_token": csrf_from(buyer.get("/lookup").text), "query": number, "query_password": "pw-1"},
        )
        assert lookup.status_code == 200 and f"/order/{token}" in lookup.text

    desk = shop.test_client()
    login(desk, merchant.user)
    for _ in range(ROUNDS):
        orders = desk.get("/merchant/orders")
        assert orders.status_code == 200
    assert all(number in orders.text for number in numbers)
    with shop.app_context():
        watcher = status_signal.watcher()
        assert isinstance(watcher, status_signal.Listener) and watcher.mark() is not None
    print(f"\n{ROUNDS} purchases through PgBouncer in {time.monotonic() - started:.1f} s")


def test_without_the_pooler_setting_a_repeated_statement_fails_through_pgbouncer(app, make_app, pgbouncer):
    naive = make_app(SQLALCHEMY_DATABASE_URI=pgbouncer)
    with naive.app_context(), pytest.raises(DBAPIError, match="prepared statement"):
        for _ in range(3 * ROUNDS):
            db.session.execute(select(Order.id).where(Order.token == "0" * 32)).all()
            db.session.commit()


def test_behind_the_pooler_without_a_direct_url_polls_read_the_database(app, make_app, make_product, place, pgbouncer):
    shop = shop_through(make_app, pgbouncer, STATUS_TRUST_SECONDS=60)
    order = place(make_product(keys=1))
    poll = shop.test_client()
    with shop.app_context():
        assert status_signal.watcher() is None
    assert poll.get(f"/order/{order.token}/status").status_code == 200
    assert poll.post("/pay/sandbox/notify", data=signed_notify(order)).status_code < 400
    delivered = poll.get(f"/order/{order.token}/status")  # read afresh: nothing to trust
    assert delivered.status_code == 286 and 'class="card-key"' in delivered.text


def test_doctor_checks_the_listen_url_behind_the_pooler(app, make_app, pgbouncer):
    shop = shop_through(make_app, pgbouncer)
    with shop.app_context():
        missing = doctor.database_pooler()
        assert missing.status == doctor.WARN and "every status poll" in missing.found
        assert "FAKA_DATABASE_LISTEN_URL" in missing.fix

        shop.config["DATABASE_LISTEN_URL"] = pgbouncer
        pooled = doctor.database_pooler()
        assert pooled.status == doctor.FAIL and "is the pooler's address" in pooled.found

        shop.config["DATABASE_LISTEN_URL"] = make_url(TEST_DATABASE).set(port=free_port()).render_as_string()
        unreachable = doctor.database_pooler()
        assert unreachable.status == doctor.FAIL and "cannot be reached" in unreachable.found

        shop.config["DATABASE_LISTEN_URL"] = TEST_DATABASE
        direct = doctor.database_pooler()
        assert direct.status == doctor.OK and "no prepared statements" in direct.found
