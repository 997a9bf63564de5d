"""Database set-up: SQLite pragmas and write transactions that never deadlock.

SQLite allows one writer. A transaction that reads first and writes later can fail
with SQLITE_BUSY at the write, whatever the busy timeout, because another writer got in
between. Services that change data therefore call `begin_write()`, which on SQLite opens
the transaction with BEGIN IMMEDIATE (the write lock is taken up front and waiters queue
on the busy timeout); PostgreSQL runs a normal transaction and relies on row locks.
"""
from flask import current_app
from sqlalchemy import create_engine, event
from sqlalchemy.engine import Engine
from sqlalchemy.exc import DBAPIError

from faka.extensions import db

SQLITE_BUSY_TIMEOUT_MS = 15000
_IMMEDIATE = "faka_immediate"
_SINGLE_READ = "faka_single_read"
_READER = "faka_read_engine"


def init_app(app) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine)


def configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection, _record):
        # Let SQLAlchemy issue BEGIN itself, so we can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn):
        options = conn.get_execution_options()
        if options.get(_SINGLE_READ):
            return  # one SELECT is atomic on its own: no transaction needed
        if options.get(_IMMEDIATE):
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        else:
            conn.exec_driver_sql("BEGIN")


def is_postgresql() -> bool:
    return db.engine.dialect.name == "postgresql"


def begin_write() -> None:
    """Start the session's next transaction as a write transaction.

    Ends any read-only transaction the request already had open (committing nothing), so
    that on SQLite the write lock is taken before the first read of the service.
    """
    session = db.session()
    if session.in_transaction():
        session.commit()
    session.connection(execution_options={_IMMEDIATE: True})


def read_row(statement, params: dict):
    """The first row of one read-only statement, run outside the request's session and
    without a transaction (a single SELECT needs none): the cheapest read there is, for
    endpoints polled many times a second."""
    if db.engine.dialect.name != "postgresql":
        with db.engine.connect() as conn:
            return conn.execution_options(**{_SINGLE_READ: True}).execute(statement, params).first()
    try:
        return _read_autocommit(statement, params)
    except DBAPIError as exc:
        if not exc.connection_invalidated:
            raise
        # The server went away since this connection was last used (a restart): once more,
        # on a new connection, instead of pinging before every read.
        return _read_autocommit(statement, params)


def _read_autocommit(statement, params: dict):
    with _reader().connect() as conn:
        return conn.execute(statement, params).first()


def _reader() -> Engine:
    """PostgreSQL: a small engine of the app's own whose connections stay in autocommit,
    for read_row. Switching one of the main pool's connections to autocommit and back
    costs more than the read itself. It is disposed with the app's engine."""
    app = current_app._get_current_object()
    reader = app.extensions.get(_READER)
    if reader is None:
        engine = db.engine
        reader = create_engine(engine.url, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=4)
        app.extensions[_READER] = reader
        event.listen(engine, "engine_disposed", lambda _engine: app.extensions.pop(_READER, reader).dispose(),
                     once=True)
    return reader
