"""The instance folder (SQLite file, generated keys, uploads) and settings derived from it."""

import os
import secrets
from pathlib import Path

from flask import Flask
from werkzeug.middleware.proxy_fix import ProxyFix

from faka.core.db import engine_options

ROOT = Path(__file__).resolve().parents[2]


def instance_path() -> str:
    return str(Path(os.environ.get("FAKA_INSTANCE_PATH", ROOT / "instance")).resolve())


def migrations_path() -> str:
    return str(ROOT / "migrations")


def init_app(app: Flask) -> None:
    path = Path(app.instance_path)
    path.mkdir(parents=True, exist_ok=True)
    if not app.config.get("SQLALCHEMY_DATABASE_URI"):
        app.config["SQLALCHEMY_DATABASE_URI"] = f"sqlite:///{path / 'faka.db'}"
    uri = app.config["SQLALCHEMY_DATABASE_URI"] = database_uri(app.config["SQLALCHEMY_DATABASE_URI"])
    if uri.startswith("sqlite"):
        # A local file has no server connection to go stale: skip the ping per checkout.
        app.config["SQLALCHEMY_ENGINE_OPTIONS"] = {**app.config["SQLALCHEMY_ENGINE_OPTIONS"], "pool_pre_ping": False}
    app.config["SQLALCHEMY_ENGINE_OPTIONS"] = engine_options(app.config)  # what a transaction pooler needs
    if not app.config.get("SECRET_KEY"):
        app.config["SECRET_KEY"] = _load_or_create_secret(path / "secret.key")
    if not app.config.get("RATELIMIT_STORAGE_URI"):
        # Shared counters across processes need Redis; one process can count in memory.
        app.config["RATELIMIT_STORAGE_URI"] = app.config.get("REDIS_URL") or "memory://"
    proxies = int(os.environ.get("FAKA_PROXY_COUNT", "0"))
    if proxies:
        # Behind a reverse proxy: trust its X-Forwarded-* headers for client IP and scheme.
        # Wrapping the method is how Flask documents middleware; mypy sees only a method.
        app.wsgi_app = ProxyFix(app.wsgi_app, x_for=proxies, x_proto=proxies, x_host=proxies)  # type: ignore[method-assign]


def database_uri(url: str) -> str:
    """A DATABASE_URL as SQLAlchemy wants it: PostgreSQL through psycopg 3."""
    if url.startswith("postgres://"):
        url = "postgresql://" + url[len("postgres://") :]
    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://") :]
    return url


def _load_or_create_secret(file: Path) -> str:
    if not file.exists():
        fd = os.open(file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(secrets.token_hex(32))
    return file.read_text().strip()
