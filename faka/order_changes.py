"""Which orders changed, as PostgreSQL tells every web process.

A trigger on `orders` (migration 0011) sends NOTIFY faka_orders with the order's token
whenever its row changes; PostgreSQL delivers it when the change commits. Each web
process listens on a connection of its own, in a daemon thread started by its first
poll, and notes which tokens changed. A poll of an unfinished order then reuses its last
read of the row while nothing was said about the order since, for at most
STATUS_TRUST_SECONDS. It reads again after a notification, whenever the listener is not
connected (reads made before it reconnected are not trusted: notifications may have been
missed meanwhile), and always on SQLite.
"""
import logging
import threading
from typing import Callable

import psycopg
from flask import current_app
from sqlalchemy import event

from faka.extensions import db

logger = logging.getLogger(__name__)

CHANNEL = "faka_orders"
_LISTENER = "faka_order_changes"
MAX_NOTED = 100_000  # tokens remembered before the notes start afresh (and every read is re-done)
RECONNECT_SECONDS = 1.0


class Listener:
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
        """Taken before reading an order: what has been heard so far (None while not
        listening, when no read can be trusted)."""
        with self._lock:
            return (self._epoch, self._count) if self._listening else None

    def unchanged_since(self, token: str, mark: tuple[int, int]) -> bool:
        with self._lock:
            return self._listening and mark[0] == self._epoch and self._noted.get(token, 0) <= mark[1]

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

    def _run(self) -> None:
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
                logger.warning("order changes: not listening (%s); status polls read the database until it is back",
                               type(exc).__name__)
            finally:
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


_starting = threading.Lock()


def listener() -> Listener | None:
    """This process's listener, started on first use: None on SQLite or when
    STATUS_TRUST_SECONDS is 0. It stops when the app's engine is disposed."""
    app = current_app._get_current_object()
    if app.config["STATUS_TRUST_SECONDS"] <= 0 or db.engine.dialect.name != "postgresql":
        return None
    found = app.extensions.get(_LISTENER)
    if found is None:
        with _starting:
            found = app.extensions.get(_LISTENER)
            if found is None:
                engine = db.engine
                found = Listener(engine.url.set(drivername="postgresql").render_as_string(hide_password=False))
                app.extensions[_LISTENER] = found
                event.listen(engine, "engine_disposed", lambda _engine: app.extensions.pop(_LISTENER, found).stop(),
                             once=True)
    return found


def current(token: str, read: Callable[[str], object]):
    """read(token), or the last read of this order while it can be trusted (see above).
    Only unfinished orders are kept: a finished one never changes again, and its widget
    is answered from the rendering cache."""
    heard = listener()
    if heard is None:
        return read(token)
    cache = current_app.extensions["faka_pagecache"]
    kept = cache.get(("order-read", token))
    if kept is not None and heard.unchanged_since(token, kept[0]):
        return kept[1]
    mark = heard.mark()  # before the read: a change heard after it means the read may be stale
    found = read(token)
    if mark is not None and found is not None and not found.is_final:
        cache.set(("order-read", token), (mark, found), current_app.config["STATUS_TRUST_SECONDS"])
    return found
