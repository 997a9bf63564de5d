"""The order page's status poll: what it reads, in which language, and what it leaves alone."""

import html
import re
import sqlite3
import threading
import time

import psycopg
import pytest
from sqlalchemy import bindparam, select, text

from faka.core.db import is_postgresql, read_row
from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db
from faka.orders import delivery
from faka.orders import lookup as orders
from faka.orders import status_signal as order_changes
from faka.orders.models import Order
from tests.conftest import TEST_DATABASE, signed_notify


def polling_url(page_html: str) -> str:
    return html.unescape(re.search(r'id="order-status"[^>]*hx-get="([^"]+)"', page_html).group(1))


def test_a_poll_racing_the_delivery_shows_the_keys(app, client, product, place, monkeypatch):
    """The poll reads the order's row fresh. If the request had already read something
    before the delivery committed (SQLite keeps that read's snapshot for the whole
    transaction), the keys must not come from that older snapshot: a delivered widget
    without its keys would stop the polling for good."""
    order = place(product)
    order.status, order.paid_at = Order.PAID, utcnow()  # paid, its keys still reserved
    db.session.commit()
    order_id, token = order.id, order.token

    def deliver_elsewhere():
        with app.app_context():
            assert delivery.deliver_order(order_id)
            db.session.remove()

    real_order_status = orders.order_status

    def racing_order_status(token):
        db.session.execute(select(Order.id).limit(1)).all()  # the request's session reads first
        worker = threading.Thread(target=deliver_elsewhere)
        worker.start()
        worker.join()
        return real_order_status(token)

    monkeypatch.setattr(orders, "order_status", racing_order_status)
    final = client.get(f"/order/{token}/status")
    assert final.status_code == 286
    assert final.text.count('class="card-key"') == 1


@pytest.mark.parametrize("language, waiting", [("en", "Waiting for payment"), ("zh_CN", "待支付")])
def test_the_poll_speaks_the_pages_language_and_sets_no_cookie(client, product, place, language, waiting):
    order = place(product)
    page = client.get(f"/order/{order.token}?lang={language}")
    url = polling_url(page.text)
    assert f"lang={language}" in url
    cookies_before = {c.key: c.value for c in client._cookies.values()}

    poll = client.get(url, headers={"HX-Request": "true"})
    assert poll.status_code == 200 and waiting in poll.text
    assert "Set-Cookie" not in poll.headers
    assert {c.key: c.value for c in client._cookies.values()} == cookies_before
    # The visitor's session (its language, its form token) is still there for the next page.
    again = client.get(f"/order/{order.token}")
    assert waiting in again.text and polling_url(again.text) == url


def test_a_poll_from_another_language_does_not_change_the_visitors_choice(client, product, place):
    order = place(product)
    client.get(f"/order/{order.token}?lang=en")
    assert "待支付" in client.get(f"/order/{order.token}/status?lang=zh_CN").text
    assert "Waiting for payment" in client.get(f"/order/{order.token}").text


def test_read_row_reads_what_the_session_reads(app, product, place):
    order = place(product)
    order.held_at = utcnow()
    db.session.commit()
    row = read_row(orders._status_query(), {"token": order.token})
    expected = tuple(db.session.execute(orders._status_query(), {"token": order.token}).one())
    db.session.rollback()
    assert row == expected
    assert row[7].tzinfo is not None and row[7] == order.expires_at  # a UTC datetime on both databases
    assert read_row(orders._status_query(), {"token": "0" * 32}) is None


def test_read_row_refuses_parameters_that_need_converting(app):
    statement = select(Order.id).where(Order.expires_at < bindparam("when", type_=UTCDateTime()))
    with pytest.raises(ValueError, match="when"):
        read_row(statement, {"when": utcnow()})


@pytest.mark.skipif(TEST_DATABASE == "sqlite", reason="a server connection to lose: PostgreSQL only")
def test_the_poll_survives_the_database_dropping_its_connections(client, product, place):
    order = place(product)
    assert client.get(f"/order/{order.token}/status").status_code == 200
    assert is_postgresql()
    db.session.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    )
    db.session.commit()
    poll = client.get(f"/order/{order.token}/status")
    assert poll.status_code == 200 and "待支付" in poll.text


# -- Polls that read only after the database says the order changed ----------------------

postgresql_only = pytest.mark.skipif(TEST_DATABASE == "sqlite", reason="NOTIFY is PostgreSQL's")
sqlite_only = pytest.mark.skipif(TEST_DATABASE != "sqlite", reason="PostgreSQL says which order changed")


@pytest.fixture
def watching(make_app, monkeypatch, request):
    """An app whose polls trust their last read (for a minute, or the seconds the test's
    `trust` parameter gives) while the database says nothing changed, its watcher ready,
    and a count of the status reads that reached the database."""
    app = make_app(STATUS_TRUST_SECONDS=getattr(request, "param", 60))
    reads = []
    real = orders.order_status
    monkeypatch.setattr(orders, "order_status", lambda token: reads.append(token) or real(token))
    with app.app_context():
        watcher = order_changes.watcher()
        assert isinstance(watcher, order_changes.Listener if is_postgresql() else order_changes.DataVersion)
        assert eventually(lambda: watcher.mark() is not None)  # PostgreSQL: listening
        yield app, reads, watcher


def eventually(condition, seconds: float = 5) -> bool:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def poll_until(client, url, wanted: str, seconds: float = 5):
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(url)
        if wanted in response.text or time.monotonic() > deadline:
            return response
        time.sleep(0.02)


def test_a_waiting_poll_reads_the_order_again_only_after_it_changed(watching, make_product, place):
    app, reads, _watcher = watching
    order = place(make_product(keys=2))
    time.sleep(order_changes.ASK_SECONDS)  # SQLite: the watcher's last answer predates these writes
    client = app.test_client()
    url = f"/order/{order.token}/status?lang=en"
    for _ in range(5):
        assert "Waiting for payment" in client.get(url).text
    assert len(reads) == 1  # the first poll read the row; nothing changed since

    assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    delivered = poll_until(client, url, "card-key")
    assert delivered.status_code == 286 and delivered.text.count('class="card-key"') == 1
    assert len(reads) == 2  # read again once the database said the order changed


def outside_faka(sql: str, **params) -> None:
    """One statement committed on a connection faka knows nothing of, as from the sqlite3
    or psql shell."""
    url = db.engine.url
    if is_postgresql():
        with psycopg.connect(url.set(drivername="postgresql").render_as_string(hide_password=False)) as conn:
            conn.execute(sql.replace(":token", "%(token)s"), params)
    else:
        conn = sqlite3.connect(url.database)
        with conn:
            conn.execute(sql, params)
        conn.close()


def test_a_change_made_outside_faka_shows_at_the_next_poll(watching, make_product, place):
    app, reads, _watcher = watching
    order = place(make_product(keys=1))
    time.sleep(order_changes.ASK_SECONDS)  # SQLite: the watcher's last answer predates these writes
    client = app.test_client()
    url = f"/order/{order.token}/status?lang=en"
    assert "Waiting for payment" in client.get(url).text
    assert "Waiting for payment" in client.get(url).text
    assert len(reads) == 1

    outside_faka("UPDATE orders SET status = 'expired' WHERE token = :token", token=order.token)
    expired = poll_until(client, url, "Expired")
    assert expired.status_code == 286 and "not paid in time" in expired.text
    assert len(reads) == 2


@sqlite_only
def test_on_sqlite_a_commit_to_any_table_makes_the_next_poll_read(watching, make_product, place):
    app, reads, _watcher = watching
    order = place(make_product(keys=1))
    time.sleep(order_changes.ASK_SECONDS)  # SQLite: the watcher's last answer predates these writes
    client = app.test_client()
    url = f"/order/{order.token}/status"
    client.get(url)
    client.get(url)
    assert len(reads) == 1
    place(make_product(keys=1))  # another buyer's order
    time.sleep(order_changes.ASK_SECONDS)  # the process's last answer has had its time
    client.get(url)
    assert len(reads) == 2
    client.get(url)
    assert len(reads) == 2


@sqlite_only
def test_on_sqlite_one_answer_serves_the_polls_of_a_moment(watching, make_product, place, monkeypatch):
    """Asking SQLite costs about what the read does, so a process asks at most every
    ASK_SECONDS: a commit just after an answer shows a moment later, not at once."""
    app, reads, _watcher = watching
    clock = [time.monotonic() + 60]
    monkeypatch.setattr(order_changes, "monotonic", lambda: clock[0])
    order = place(make_product(keys=1))
    client = app.test_client()
    url = f"/order/{order.token}/status?lang=en"
    assert "Waiting for payment" in client.get(url).text  # asked, and read
    outside_faka("UPDATE orders SET status = 'expired' WHERE token = :token", token=order.token)
    clock[0] += order_changes.ASK_SECONDS / 2
    assert "Waiting for payment" in client.get(url).text  # the last answer still serves
    assert len(reads) == 1
    clock[0] += order_changes.ASK_SECONDS  # well past the answer's moment (not a float's hair short of it)
    assert "not paid in time" in client.get(url).text  # asked again: changed
    assert len(reads) == 2


@postgresql_only
def test_without_its_listener_a_poll_reads_every_time_until_it_is_back(watching, make_product, place):
    app, reads, listener = watching
    order = place(make_product(keys=2))
    client = app.test_client()
    url = f"/order/{order.token}/status"
    client.get(url)
    client.get(url)
    assert len(reads) == 1
    db.session.execute(
        text(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND query LIKE 'LISTEN%'"
        )
    )
    db.session.commit()
    eventually(lambda: listener.mark() is None)  # until it notices
    before = len(reads)
    client.get(url)
    client.get(url)
    assert len(reads) - before in (1, 2)  # read, not reused (one poll may meet the reconnected listener)
    assert eventually(lambda: listener.mark() is not None)
    client.get(url)
    settled = len(reads)
    client.get(url)
    client.get(url)
    assert len(reads) == settled  # listening again: the read made after it is trusted


@pytest.mark.parametrize("watching", [0.3], indirect=True)
def test_a_kept_read_expires_after_the_trust_period(watching, make_product, place):
    app, reads, _watcher = watching
    order = place(make_product(keys=1))
    time.sleep(order_changes.ASK_SECONDS)  # SQLite: the watcher's last answer predates these writes
    client = app.test_client()
    client.get(f"/order/{order.token}/status")
    client.get(f"/order/{order.token}/status")
    assert len(reads) == 1
    time.sleep(0.4)
    client.get(f"/order/{order.token}/status")
    assert len(reads) == 2


def test_the_watcher_stops_with_the_engine(watching):
    app, _reads, watcher = watching
    db.engine.dispose()
    assert watcher.mark() is None  # stopped: its connection closed
    assert order_changes.watcher() is not watcher
