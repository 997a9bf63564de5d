"""Has an order changed since a poll last read it? The database says so.

PostgreSQL: a trigger on `orders` (migration 0011) sends NOTIFY faka_orders with the
order's token whenever its row changes; PostgreSQL delivers it when the change commits.
Each web process listens on a connection of its own, in a daemon thread started by its
first poll, and notes which tokens changed. Reads made before the listener (re)connected
are not trusted: notifications may have been missed meanwhile. That connection goes to
DATABASE_LISTEN_URL when set: behind a pooler in transaction mode (DATABASE_POOLER) a
LISTEN would last only as long as its transaction, so without a direct URL nothing
listens there and every poll reads the database.

SQLite: `PRAGMA data_version`, asked on a connection of the process's own that never
writes, changes whenever any other connection, in any process (the sqlite3 shell
included), commits anything to the database. While it has not changed, nothing in the
database has, so neither has the order. A busy shop commits often and its polls read more
often; that is the price of needing no help from the code that writes. Asking takes
SQLite's shared-memory locks much as a read does, so a process asks at most every
ASK_SECONDS and its polls meanwhile use the last answer: a change shows at the first poll
that comes more than ASK_SECONDS after its commit.

A poll of an unfinished order reuses its last read while its database says the order has
not changed since, for at most STATUS_TRUST_SECONDS, and reads it again otherwise.
"""

import logging
import threading
from collections.abc import Callable, Hashable
from time import monotonic

import psycopg
from flask import current_app
from sqlalchemy import event
from sqlalchemy.engine import Engine

from faka.core.db import listen_url, reader_engine
from faka.extensions import db

logger = logging.getLogger(__name__)

CHANNEL = "faka_orders"
_WATCHER = "faka_order_changes"
MAX_NOTED = 100_000  # tokens remembered before the notes start afresh (and every read is re-done)
RECONNECT_SECONDS = 1.0
ASK_SECONDS = 0.02  # SQLite: how long one answer of PRAGMA data_version serves this process's polls


class Listener:
    """PostgreSQL's notifications, heard in a thread of this process."""

    def __init__(self, url: str):
        self._url = url
        self._lock = threading.Lock()
        self._noted: dict[str, int] = {}  # token -> number of the last notification about it
        self._count = 0
        self._epoch = 0  # a new one each time listening (re)starts
        self._listening = False
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="faka-order-changes", daemon=True)
        self._thread.start()

    def mark(self) -> tuple[int, int] | None:
        """What has been heard so far (None while not listening, when no read can be trusted)."""
        with self._lock:
            return (self._epoch, self._count) if self._listening else None

    def unchanged(self, token: str, then: tuple[int, int], now: tuple[int, int]) -> bool:
        """Whether nothing was heard about this order between two marks."""
        with self._lock:
            return then[0] == now[0] and self._noted.get(token, 0) <= then[1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
        first = True
        while not self._stop.is_set():
            try:
                with psycopg.connect(self._url, autocommit=True, connect_timeout=5) as conn:
                    conn.execute(f"LISTEN {CHANNEL}")
                    with self._lock:
                        self._epoch += 1
                        self._listening = True
                    while not self._stop.is_set():
                        for notice in conn.notifies(timeout=1.0):
                            self._note(notice.payload)
            except Exception as exc:  # noqa: BLE001 - whatever it was, polls read until the listener is back
                # Once per outage (a first failure, or one after listening), not at every
                # attempt: each web process retries every RECONNECT_SECONDS.
                if first or self._listening:
                    logger.warning(
                        "order changes: not listening (%s); status polls read the database until it is back",
                        type(exc).__name__,
                    )
            finally:
                first = False
                with self._lock:
                    self._listening = False
            self._stop.wait(RECONNECT_SECONDS)

    def _note(self, token: str) -> None:
        with self._lock:
            if len(self._noted) >= MAX_NOTED:
                self._noted.clear()
                self._epoch += 1
            self._count += 1
            self._noted[token] = self._count


class DataVersion:
    """SQLite's count of commits by other connections, on a connection of our own."""

    def __init__(self, reader: Engine):
        # Taken out of the reader's pool for good: the same connect arguments and pragmas,
        # autocommit, and its data_version is only comparable with itself.
        self._connection = reader.raw_connection()
        self._connection.detach()
        self._lock = threading.Lock()
        self._answer: tuple[float, int | None] = (float("-inf"), None)  # (when asked, data_version)

    def mark(self) -> int | None:
        asked, version = self._answer
        if monotonic() - asked < ASK_SECONDS:
            return version
        with self._lock:
            asked = monotonic()
            try:
                cursor = self._connection.cursor()
                try:
                    cursor.execute("PRAGMA data_version")
                    version = cursor.fetchone()[0]
                finally:
                    cursor.close()
            except Exception as exc:  # noqa: BLE001 - polls read the database instead
                logger.warning(
                    "order changes: PRAGMA data_version failed (%s); status polls read the database", type(exc).__name__
                )
                version = None
            self._answer = (asked, version)
            return version

    def unchanged(self, _token: str, then: int, now: int) -> bool:
        return then == now

    def stop(self) -> None:
        with self._lock:
            self._connection.close()
            self._answer = (float("-inf"), None)


_starting = threading.Lock()


def watcher() -> Listener | DataVersion | None:
    """This process's watcher, started on first use; it stops when the app's engine is
    disposed. None when STATUS_TRUST_SECONDS is 0, the database lives in memory, or there is
    no connection to LISTEN on (a transaction pooler without DATABASE_LISTEN_URL)."""
    app = current_app._get_current_object()
    if app.config["STATUS_TRUST_SECONDS"] <= 0:
        return None
    found = app.extensions.get(_WATCHER)
    if found is None:
        with _starting:
            found = app.extensions.get(_WATCHER)
            if found is None:
                found = _start(db.engine)
                if found is None:
                    return None
                app.extensions[_WATCHER] = found
                event.listen(
                    db.engine, "engine_disposed", lambda _engine: app.extensions.pop(_WATCHER, found).stop(), once=True
                )
    return found


def _start(engine: Engine) -> Listener | DataVersion | None:
    if engine.dialect.name == "postgresql":
        url = listen_url(current_app.config)
        return Listener(url) if url else None
    database = engine.url.database or ""
    if database in ("", ":memory:") or "mode=memory" in database:
        return None  # another connection would see another database
    return DataVersion(reader_engine())


def current(token: str, read: Callable[[str], object]):
    """read(token), or the last read of this order while it can be trusted (see above).
    Only unfinished orders are kept: a finished one never changes again, and its widget
    is answered from the rendering cache."""
    watching = watcher()
    if watching is None:
        return read(token)
    now: Hashable | None = watching.mark()  # before any read: a change after it makes the read suspect
    if now is None:
        return read(token)
    cache = current_app.extensions["faka_pagecache"]
    kept = cache.get(("order-read", token))
    if kept is not None and watching.unchanged(token, kept[0], now):
        return kept[1]
    found = read(token)
    if found is not None and not found.is_final:
        cache.set(("order-read", token), (now, found), current_app.config["STATUS_TRUST_SECONDS"])
    return found
