"""The order-status listener's log (faka/orders/status_signal.py): every web process tries
its LISTEN connection again each RECONNECT_SECONDS while PostgreSQL cannot be reached, and
the journal gets one warning for the outage, not one a second from each process."""

import logging
import time

import psycopg
import pytest

from conftest import TEST_DATABASE
from faka.orders import status_signal

UNREACHABLE = "postgresql://faka@127.0.0.1:1/faka"  # nothing listens on port 1: refused at once
DEADLINE = 5.0


def warnings(caplog) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == status_signal.__name__ and r.levelno == logging.WARNING and "not listening" in r.getMessage()
    ]


def eventually(check) -> None:
    end = time.monotonic() + DEADLINE
    while not check():
        assert time.monotonic() < end, "not within the deadline"
        time.sleep(0.01)


def test_an_outage_is_logged_once_however_often_the_listener_tries_again(monkeypatch, caplog):
    monkeypatch.setattr(status_signal, "RECONNECT_SECONDS", 0.01)
    caplog.set_level(logging.WARNING, logger=status_signal.__name__)
    attempts = []
    connect = psycopg.connect
    monkeypatch.setattr(psycopg, "connect", lambda *args, **kwargs: attempts.append(1) or connect(*args, **kwargs))

    listener = status_signal.Listener(UNREACHABLE)
    try:
        eventually(lambda: len(attempts) >= 20)
    finally:
        listener.stop()
    assert listener.mark() is None
    assert warnings(caplog) == [
        "order changes: not listening (OperationalError); status polls read the database until it is back"
    ]


@pytest.mark.skipif(TEST_DATABASE == "sqlite", reason="the listener LISTENs on PostgreSQL")
def test_a_listener_cut_off_says_so_once_and_listens_again(caplog):
    caplog.set_level(logging.WARNING, logger=status_signal.__name__)
    name = f"faka-listener-test-{time.monotonic_ns()}"
    listener = status_signal.Listener(f"{TEST_DATABASE}?application_name={name}")
    try:
        eventually(lambda: listener.mark() is not None)
        before = listener.mark()
        assert warnings(caplog) == []

        with psycopg.connect(TEST_DATABASE, autocommit=True) as admin:  # as a restarted server would
            cut = admin.execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE application_name = %s", (name,)
            ).fetchall()
        assert cut == [(True,)]

        eventually(lambda: (now := listener.mark()) is not None and now[0] > before[0])  # listening anew
        assert len(warnings(caplog)) == 1
    finally:
        listener.stop()
