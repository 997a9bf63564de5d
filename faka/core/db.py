"""Database set-up: SQLite pragmas and write transactions that never deadlock.

SQLite allows one writer. A transaction that reads first and writes later can fail
with SQLITE_BUSY at the write, whatever the busy timeout, because another writer got in
between. Services that change data therefore write inside `write_transaction()` (or, in the code
not yet moved to it, call `begin_write()`), which on SQLite opens the transaction with
BEGIN IMMEDIATE (the write lock is taken up front and waiters queue on the busy timeout);
PostgreSQL runs a normal transaction and relies on row locks.

Behind a pooler in transaction mode (DATABASE_POOLER, docs/topology.md) each transaction
may run on another server connection, so nothing may outlive one: psycopg's prepared
statements are turned off for every engine the app makes (connect_args), and LISTEN goes
to a direct connection (listen_url), or nowhere.
"""

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from functools import cache
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from sqlalchemy import Select, create_engine, event, make_url
from sqlalchemy.engine import Connection, Dialect, Engine
from sqlalchemy.orm import Session

from faka.extensions import Base, db

if TYPE_CHECKING:
    # What models derive from. mypy cannot take `db.Model`, an attribute, as a base class
    # (python/mypy#8603), so it sees the declarative base Flask-SQLAlchemy builds it from.
    class Model(Base):
        __abstract__ = True

else:
    Model = db.Model

SQLITE_BUSY_TIMEOUT_MS = 15000
_IMMEDIATE = "faka_immediate"
_READER = "faka_read_engine"
_AFTER_COMMIT = "faka_after_commit"
POOLERS = ("pgbouncer",)


def init_app(app: Flask) -> None:
    with app.app_context():
        engine = db.engine
        if engine.dialect.name == "sqlite":
            configure_sqlite(engine)


def connect_args(config: Mapping[str, Any]) -> dict[str, Any]:
    """psycopg's connect arguments for DATABASE_URL. psycopg prepares a statement on the
    server after its fifth run on a connection and runs it by name from then on; behind a
    transaction pooler the next transaction may get another server connection, where no
    such statement exists ("prepared statement "_pg3_0" does not exist"), or one where
    another client's statement of that name does. So, behind one, nothing is prepared."""
    pooler = config.get("DATABASE_POOLER")
    if pooler is None:
        return {}
    if pooler not in POOLERS:
        raise ValueError(
            f"FAKA_DATABASE_POOLER={pooler!r}: set it to {' or '.join(POOLERS)} for a pooler in transaction "
            f"mode, or leave it unset for a direct connection or a pooler in session mode"
        )
    return {"prepare_threshold": None}


def engine_options(config: Mapping[str, Any]) -> dict[str, Any]:
    """SQLALCHEMY_ENGINE_OPTIONS with what DATABASE_POOLER asks of a PostgreSQL engine."""
    options = dict(config["SQLALCHEMY_ENGINE_OPTIONS"])
    extra = connect_args(config)
    if extra and config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        options["connect_args"] = {**options.get("connect_args", {}), **extra}
    return options


def listen_url(config: Mapping[str, Any]) -> str | None:
    """Where a process LISTENs for PostgreSQL's notifications, as a libpq URL:
    DATABASE_LISTEN_URL, else DATABASE_URL; None behind a transaction pooler without a
    direct URL, since a LISTEN made through it lasts only until its transaction ends."""
    url = config.get("DATABASE_LISTEN_URL") or (
        None if config.get("DATABASE_POOLER") else config["SQLALCHEMY_DATABASE_URI"]
    )
    if not url:
        return None
    # Whatever the scheme says (postgres://, postgresql+psycopg://), psycopg wants postgresql://.
    return make_url(url).set(drivername="postgresql").render_as_string(hide_password=False)


def configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy issue BEGIN itself, so we can choose IMMEDIATE.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def on_begin(conn: Connection) -> None:
        if conn.get_execution_options().get(_IMMEDIATE):
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


@contextmanager
def write_transaction(*, commit_on: tuple[type[BaseException], ...] = ()) -> Iterator[None]:
    """One write transaction: `with write_transaction(): ...` commits when the block ends
    and rolls back when it raises. Jobs enqueued inside it (jobs.enqueue) are sent only
    once it has committed, so a worker never looks for rows that are not there yet, and
    never when it rolled back. An exception of a `commit_on` type commits what was written
    before it (a failed attempt that must stay recorded) and is raised on. Transactions do
    not nest."""
    session = db.session()
    if _AFTER_COMMIT in session.info:
        raise RuntimeError("write_transaction() inside write_transaction()")
    begin_write()
    pending: list[Callable[[], None]] = []
    session.info[_AFTER_COMMIT] = pending
    committed = False
    try:
        try:
            yield
        except commit_on:
            _commit(session)
            committed = True
            raise
        except BaseException:
            session.rollback()
            raise
        _commit(session)
        committed = True
    finally:
        session.info.pop(_AFTER_COMMIT, None)
        if committed:
            for send in pending:
                send()


def _commit(session: Session) -> None:
    try:
        session.commit()
    except BaseException:
        session.rollback()
        raise


def after_commit(send: Callable[[], None]) -> bool:
    """Hold `send` until the open write_transaction() commits (dropped if it rolls back);
    False when there is none, for the caller to send now."""
    pending = db.session().info.get(_AFTER_COMMIT)
    if pending is None:
        return False
    pending.append(send)
    return True


def read_row(statement: Select[Any], params: dict[str, Any]) -> tuple[Any, ...] | None:
    """The first row of one read-only SELECT, run on a bare pooled connection outside any
    transaction (a single SELECT needs none): the cheapest read there is, for endpoints
    polled many times a second.

    SQLAlchemy's execution and result machinery costs several times the query itself at
    this size, so the statement is compiled once per database and only its columns' own
    type conversions are applied to the row. `params` are plain values (strings,
    numbers) that need no conversion, which `_prepare` checks.
    """
    engine = reader_engine()
    prepared = _prepare(statement, engine.dialect)
    try:
        return prepared.first(engine, params)
    except _Disconnected:
        # The server went away since this connection was last used (a restart): once more,
        # on a new connection, instead of pinging before every read.
        return prepared.first(engine, params)


class _Disconnected(Exception):
    pass


class _Prepared:
    def __init__(self, statement: Select[Any], dialect: Dialect) -> None:
        compiled = statement.compile(dialect=dialect)
        for name, bind in compiled.binds.items():
            if bind.type.dialect_impl(dialect).bind_processor(dialect) is not None:
                raise ValueError(f"read_row: parameter {name!r} needs a conversion; use the session instead")
        self.sql = compiled.string
        self.defaults = compiled.params
        self.positional = tuple(compiled.positiontup or ()) if compiled.positional else None
        self.processors = tuple(
            column.type.dialect_impl(dialect).result_processor(dialect, None) for column in statement.selected_columns
        )

    def first(self, engine: Engine, params: dict[str, Any]) -> tuple[Any, ...] | None:
        values = {**self.defaults, **params}
        arguments = values if self.positional is None else tuple(values[name] for name in self.positional)
        connection = engine.raw_connection()
        try:
            cursor = connection.cursor()
            try:
                cursor.execute(self.sql, arguments)
                row = cursor.fetchone()
            finally:
                cursor.close()
        except engine.dialect.loaded_dbapi.Error as exc:
            if engine.dialect.is_disconnect(exc, connection, None):
                # As SQLAlchemy does on a lost connection: the pool's other connections
                # went with the server, so none of them is used again.
                connection.invalidate(exc)
                engine.dispose()
                raise _Disconnected from exc
            raise
        finally:
            connection.close()
        if row is None:
            return None
        return tuple(value if process is None else process(value) for process, value in zip(self.processors, row))


@cache
def _prepare(statement: Select[Any], dialect: Dialect) -> _Prepared:
    return _Prepared(statement, dialect)


def reader_engine() -> Engine:
    """A small engine of the app's own for read_row, whose connections stay in
    autocommit and go back to its pool without a reset (a single SELECT leaves no
    transaction to end). Switching one of the main pool's connections to autocommit and
    back costs more than the read itself. It is disposed with the app's engine."""
    # current_app is typed as the Flask app it stands for, not as the proxy it is.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    reader = app.extensions.get(_READER)
    if reader is None:
        engine = db.engine
        if engine.dialect.name == "postgresql":
            reader = create_engine(
                engine.url,
                isolation_level="AUTOCOMMIT",
                pool_size=1,
                max_overflow=4,
                pool_reset_on_return=None,
                connect_args=connect_args(app.config),
            )
        else:
            reader = create_engine(engine.url, pool_reset_on_return=None)
            configure_sqlite(reader)  # autocommit, and the same pragmas
        app.extensions[_READER] = reader
        event.listen(
            engine, "engine_disposed", lambda _engine: app.extensions.pop(_READER, reader).dispose(), once=True
        )
    return reader
