"""Are the servers the tests need running? One line saying which is not, and how to start it.

The Makefile runs it before the suite (`python tests/service_check.py postgresql://... redis://...`),
so a machine without PostgreSQL or Redis stops at once rather than with a wall of connection
errors; conftest.py asks the same at the start of a plain `pytest` run."""

import glob
import os
import sys
from urllib.parse import urlsplit


def _postgresql_start_command() -> str:
    versions = sorted(
        (os.path.basename(p) for p in glob.glob("/etc/postgresql/*")), key=lambda v: int(v) if v.isdigit() else 0
    )
    return f"pg_ctlcluster {versions[-1] if versions else '<version>'} main start"


def postgresql_problem(url: str) -> str | None:
    """None when the database at `url` accepts a connection; else the line to print."""
    import psycopg

    parts = urlsplit(url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 5432}"
    name = parts.path.lstrip("/")
    try:
        psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), connect_timeout=3).close()
    except psycopg.OperationalError as exc:
        message = str(exc)
        if "does not exist" in message and "database" in message:
            user = parts.username or "postgres"
            return (
                f'PostgreSQL on {where} has no database "{name}": create it with '
                f"psql -h {parts.hostname or 'localhost'} -U {user} -c 'CREATE DATABASE {name}'"
            )
        if "Connection refused" in message or "No such file" in message or "timeout" in message:
            return f"PostgreSQL is not running on {where}: start it with {_postgresql_start_command()}"
        return f"PostgreSQL on {where} refused the connection: {message.strip().splitlines()[-1]}"
    return None


def redis_problem(url: str) -> str | None:
    """None when Redis at `url` answers a PING; else the line to print."""
    from redis import Redis
    from redis.exceptions import ConnectionError as RedisConnectionError
    from redis.exceptions import RedisError

    parts = urlsplit(url)
    host, port = parts.hostname or "localhost", parts.port or 6379
    try:
        with Redis.from_url(url, socket_connect_timeout=2, socket_timeout=2) as conn:
            conn.ping()
    except RedisError as exc:
        if isinstance(exc, RedisConnectionError):
            return (
                f"Redis is not running on {host}:{port}: start it with "
                f"redis-server --daemonize yes --bind {host} --port {port} --save '' --appendonly no"
            )
        return f"Redis on {host}:{port} did not answer: {exc}"
    return None


def problem(url: str) -> str | None:
    """The line for the first server of `url` (postgresql://... or redis://...) that is not usable."""
    if url.startswith("postgresql"):
        return postgresql_problem(url)
    if url.startswith("redis"):
        return redis_problem(url)
    return None  # sqlite, or nothing to check


def main(urls: list[str]) -> int:
    for url in urls:
        line = problem(url)
        if line:
            print(line, file=sys.stderr)
            return 1
    return 0


if __name__ == "__main__":
    sys.exit(main([url for url in sys.argv[1:] if url]))
