"""Moving a shop's rows between databases as portable values: the backup's data format and
`flask copy-db` (SQLite to PostgreSQL, or back).

Rows are read from a consistent snapshot (one read transaction: on SQLite a WAL
snapshot, on PostgreSQL REPEATABLE READ) table by table in foreign-key order, and written
to a database whose schema Alembic built at the same revision, in one transaction: a
failed copy leaves the target as empty as it was. Tables are read by reflection, not
from the models, so a backup of an older schema version restores into that version.

Values are what JSON holds: integers, strings, booleans, null; datetimes travel as ISO
8601 UTC strings and are turned back into datetimes by the target column's type.
"""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime

from sqlalchemy import Connection, DateTime, Engine, Integer, MetaData, Table, create_engine, func, select, text
from sqlalchemy.exc import ArgumentError, DBAPIError

from faka.core.db import configure_sqlite
from faka.core.instance import database_uri

BATCH = 1000
VERSION_TABLE = "alembic_version"
# init-db enables the sandbox gateway in a new database: that row is no data of a shop.
SEEDED = {"gateway_configs"}
SEARCH_INDEX = "product_search"


class CopyError(Exception):
    """Something the operator must fix first; the message says what."""


def engine_for(url: str) -> Engine:
    """An engine for a DATABASE_URL other than the app's, set up as the app sets up its own."""
    try:
        engine = create_engine(database_uri(url))
    except ArgumentError as exc:
        raise CopyError(
            f"{url!r} is not a database URL (e.g. postgresql://faka@127.0.0.1/faka or sqlite:////var/lib/faka/faka.db)"
        ) from exc
    if engine.dialect.name == "sqlite":
        configure_sqlite(engine)
    return engine


def describe(engine: Engine) -> str:
    """The database as DATABASE_URL names it, without its password."""
    return engine.url.set(drivername=engine.url.get_backend_name()).render_as_string(hide_password=True)


@dataclass
class DatabaseState:
    revision: str | None
    tables: list[Table]  # in foreign-key order, without Alembic's
    rows: dict[str, int] = field(default_factory=dict)

    @property
    def data_rows(self) -> int:
        return sum(n for name, n in self.rows.items() if name not in SEEDED)

    def table(self, name: str) -> Table | None:
        return next((t for t in self.tables if t.name == name), None)


def inspect(conn: Connection) -> DatabaseState:
    metadata = MetaData()
    metadata.reflect(bind=conn, only=lambda name, _metadata: not _derived(name))
    revision = None
    if VERSION_TABLE in metadata.tables:
        revision = conn.execute(select(metadata.tables[VERSION_TABLE].c.version_num)).scalar()
    tables = [t for t in metadata.sorted_tables if t.name != VERSION_TABLE]
    return DatabaseState(revision, tables, row_counts(conn, tables))


def _derived(table_name: str) -> bool:
    """The storefront's search index (faka/catalog/search.py): `product_search` (on SQLite
    an FTS table, with its shadow tables `product_search_*`). Built from `products` by
    triggers, so it is not data: the target's triggers fill its own as the products arrive."""
    return table_name == SEARCH_INDEX or table_name.startswith(SEARCH_INDEX + "_")


def row_counts(conn: Connection, tables: list[Table]) -> dict[str, int]:
    return {t.name: conn.execute(select(func.count()).select_from(t)).scalar_one() for t in tables}


@contextmanager
def snapshot(engine: Engine) -> Iterator[Connection]:
    """A read-only connection that sees the database as it was at its first read."""
    with engine.connect() as conn:
        if conn.dialect.name == "postgresql":
            conn = conn.execution_options(isolation_level="REPEATABLE READ", postgresql_readonly=True)
        with conn.begin():
            yield conn


def export_rows(conn: Connection, table: Table) -> Iterator[list[dict]]:
    """The table's rows in primary-key order, in batches, as JSON-ready dicts."""
    result = conn.execution_options(yield_per=BATCH).execute(select(table).order_by(*table.primary_key.columns))
    for part in result.partitions():
        yield [{name: _portable(value) for name, value in row._mapping.items()} for row in part]


def _portable(value):
    if isinstance(value, datetime):
        # SQLite hands back naive datetimes, which faka always stores in UTC.
        return (value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)).isoformat()
    return value


def import_rows(conn: Connection, table: Table, rows: list[dict]) -> None:
    unknown = set().union(*rows) - set(table.columns.keys()) if rows else set()
    if unknown:
        raise CopyError(f"{table.name} has no column {', '.join(sorted(unknown))}: the schemas differ")
    dates = {c.name for c in table.columns if isinstance(c.type, DateTime)}
    naive = conn.dialect.name == "sqlite"
    native = [
        {k: (_datetime(v, naive) if k in dates and isinstance(v, str) else v) for k, v in row.items()} for row in rows
    ]
    try:
        conn.execute(table.insert(), native)
    except DBAPIError as exc:
        raise CopyError(f"{table.name}: the database refused a row ({exc.orig})") from exc


def _datetime(value: str, naive: bool) -> datetime:
    moment = datetime.fromisoformat(value)
    moment = moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)
    return moment.replace(tzinfo=None) if naive else moment


def clear(conn: Connection, tables: list[Table]) -> None:
    for table in reversed(tables):
        conn.execute(table.delete())


def drop_everything(conn: Connection) -> None:
    """Drop every table, Alembic's too: for a database whose schema is at another revision."""
    metadata = MetaData()
    metadata.reflect(bind=conn)
    metadata.drop_all(bind=conn)


def reset_sequences(conn: Connection, tables: list[Table]) -> None:
    """Rows came with their ids; PostgreSQL's id sequences must continue after them."""
    if conn.dialect.name != "postgresql":
        return
    for table in tables:
        keys = list(table.primary_key.columns)
        if len(keys) != 1 or not isinstance(keys[0].type, Integer):
            continue
        conn.execute(
            text(
                f'SELECT setval(pg_get_serial_sequence(:table, :column), COALESCE(MAX("{keys[0].name}"), 0) + 1, false) '
                f'FROM "{table.name}"'
            ),
            {"table": table.name, "column": keys[0].name},
        )


def load(
    conn: Connection,
    state: DatabaseState,
    tables: Iterator[tuple[str, Iterator[list[dict]]]],
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Write (table name, batches of rows) into the tables of `state`, in the order given
    (foreign-key order), then reset sequences. Returns the rows written per table."""
    written = {}
    for name, batches in tables:
        table = state.table(name)
        if table is None:
            raise CopyError(f"the target database has no table {name}: the schemas differ")
        written[name] = 0
        for rows in batches:
            import_rows(conn, table, rows)
            written[name] += len(rows)
        if progress:
            progress(name, written[name])
    reset_sequences(conn, state.tables)
    return written


@dataclass
class CopyReport:
    source: dict[str, int]  # rows per table in the source snapshot
    target: dict[str, int]  # rows per table in the target afterwards


def copy_database(
    source: Engine, target: Engine, force: bool = False, progress: Callable[[str, int], None] | None = None
) -> CopyReport:
    """Copy every row of `source` into `target`, which must be migrated to the same
    revision (`flask init-db` with DATABASE_URL set to it) and hold no data unless `force`."""
    if describe(source) == describe(target):
        raise CopyError(f"{describe(source)} is both the source and the target")
    with snapshot(source) as src, target.begin() as dst:
        have, want = inspect(src), inspect(dst)
        if have.revision is None:
            raise CopyError(f"{describe(source)} has no schema revision: run `flask --app faka init-db` on it first")
        if not want.tables:
            raise CopyError(
                f"{describe(target)} has no tables: create them first with `DATABASE_URL=... flask --app faka init-db`"
            )
        if want.revision != have.revision:
            raise CopyError(
                f"the schemas differ: {describe(source)} is at revision {have.revision}, "
                f"{describe(target)} at {want.revision}; run `flask --app faka init-db` on both"
            )
        if want.data_rows and not force:
            raise CopyError(
                f"{describe(target)} already holds data ({want.data_rows} rows): copy into an empty "
                f"database, or pass --force to replace its data"
            )
        clear(dst, want.tables)
        load(dst, want, ((t.name, export_rows(src, t)) for t in have.tables), progress)
        after = row_counts(dst, want.tables)
        differ = {name: (n, after.get(name)) for name, n in have.rows.items() if after.get(name) != n}
        if differ:
            raise CopyError(
                "row counts differ after the copy: " + ", ".join(f"{k} {a} → {b}" for k, (a, b) in differ.items())
            )
    return CopyReport(have.rows, after)
