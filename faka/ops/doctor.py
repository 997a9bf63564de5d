"""`flask --app faka doctor`: checks a deployment and says what to fix.

Each check looks at one thing an operator can get wrong when moving from `make run` to a
server (secrets, HTTPS, the proxy, the database schema, Redis and the worker, SMTP, the
gateways' notify URLs, translations, disk and file permissions) and returns a Check:
OK, WARN (works, but read this) or FAIL (something buyers or the operator will notice).
Nothing here sends an email or changes data, but for one row: on several web hosts the
first doctor run records SECRET_KEY's fingerprint for the others to compare theirs with
(secret_key_shared). Run it as the service user with the service's environment
(deploy/faka does both), since what it checks is that environment.

The operator console's first-run checklist (faka/ops/first_run.py) asks the cheap
checks one by one, without network calls: base_url, backups, smtp(probe=False),
real_gateway and sandbox_off.
"""

import hashlib
import hmac
import ipaddress
import json
import os
import shutil
import smtplib
import socket
import ssl
import stat
import time
from dataclasses import dataclass
from email.utils import parseaddr
from pathlib import Path
from urllib.parse import urlsplit

import psycopg
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from flask import current_app
from sqlalchemy import make_url, text
from sqlalchemy.exc import IntegrityError
from werkzeug.middleware.proxy_fix import ProxyFix

from faka.core import tasks
from faka.core.crypto import KEY_FILE
from faka.core.db import listen_url, write_transaction
from faka.extensions import db
from faka.messaging.mail import smtp_config
from faka.orders import status_signal
from faka.payments.gateways import enabled_gateways
from faka.payments.notify import silent_gateways
from faka.platform import key_rotation
from faka.platform.models import Setting

OK, WARN, FAIL = "ok", "warn", "fail"

SECRET_FILE = "secret.key"
MIN_SECRET_LENGTH = 32
ARCHIVES = "faka-*.tar.gz"  # as faka.platform.backup names them
# `systemctl enable faka-backup.timer` links it here: the host that takes the backups.
BACKUP_TIMER = Path("/etc/systemd/system/timers.target.wants/faka-backup.timer")
BACKUP_MAX_AGE_HOURS = 48  # a daily timer that missed one run is late, two is broken
DISK_FAIL_BYTES = 512 * 1024**2
DISK_WARN_BYTES = 2 * 1024**3
DISK_WARN_FRACTION = 0.10
SMTP_PROBE_TIMEOUT = 10
REDIS_TIMEOUT = 5
DATABASE_TIMEOUT = 5
SHOWN_PATHS = 5  # how many offending files a check names
SECRETS_SAMPLE = 3  # stored secrets decrypted per place (card keys, gateway settings, ...)
SECRET_FINGERPRINT = "secret_key_fingerprint"  # the Setting row secret_key_shared() keeps


@dataclass(frozen=True)
class Check:
    name: str
    status: str  # OK, WARN or FAIL
    found: str
    fix: str = ""


def run_checks(backup_dir: str | None = None) -> list[Check]:
    checks = [
        secret_key(),
        encryption_keys(),
        backups(backup_dir),
        base_url(),
        proxy(),
        cookies_and_hsts(),
    ]
    reached = database()
    checks.append(reached)
    if current_app.config.get("DATABASE_POOLER"):
        checks.append(database_pooler())
    if reached.status == OK:
        if db.engine.dialect.name == "sqlite":
            checks.append(sqlite())
        checks.extend([stored_secrets(), smtp(), gateways()])
    else:
        checks.append(
            Check(
                "SMTP and payment gateways",
                WARN,
                "not checked: their settings live in the database",
                "fix the database, then run doctor again",
            )
        )
    checks.extend(redis_and_worker())
    if current_app.config.get("WEB_HOSTS", 1) > 1:
        checks.extend(several_hosts(database_reached=reached.status == OK))
    checks.extend([translations(), disk_space(), instance_permissions()])
    db.session.rollback()
    return checks


# -- secrets ----------------------------------------------------------------------------


def _generated_secret() -> Path | None:
    """The instance folder's generated secret.key when it is the key in use."""
    key = current_app.config.get("SECRET_KEY") or ""
    generated = Path(current_app.instance_path) / SECRET_FILE
    return generated if generated.exists() and generated.read_text().strip() == key else None


def secret_key() -> Check:
    name = "Secret key"
    key = current_app.config.get("SECRET_KEY") or ""
    generated = _generated_secret()
    if generated is not None:
        return Check(
            name,
            WARN,
            f"generated into {generated} (fine for a demo)",
            f"set SECRET_KEY in the environment file; use the value in {generated} so that nobody is signed out",
        )
    if len(key) < MIN_SECRET_LENGTH:
        return Check(
            name,
            FAIL,
            f"SECRET_KEY is only {len(key)} characters: sessions and CSRF tokens can be forged",
            "set SECRET_KEY to the output of: python3 -c 'import secrets; print(secrets.token_hex(32))'",
        )
    return Check(name, OK, f"set in the environment ({len(key)} characters)")


def encryption_keys() -> Check:
    name = "Encryption keys"
    configured = current_app.config.get("ENCRYPTION_KEYS")
    if configured:
        count = len([k for k in configured.replace("\n", ",").split(",") if k.strip()])
        return Check(
            name,
            OK,
            f"{count} key(s) from FAKA_ENCRYPTION_KEYS; without them card keys and gateway "
            f"secrets cannot be read: keep a copy outside this server",
        )
    path = Path(current_app.instance_path) / KEY_FILE
    return Check(
        name,
        WARN,
        f"generated into {path}: lose this file and every card key and gateway secret is lost",
        "put its content in FAKA_ENCRYPTION_KEYS in the environment file, and keep a copy outside "
        "this server (a password manager)",
    )


def stored_secrets() -> Check:
    """A few of each kind of stored secret decrypt with the keys in force, as after a restore
    (faka/platform/key_rotation.py): keys that are there but wrong (another host's, a
    regenerated file) lose every card key as surely as missing ones."""
    name = "Stored secrets"
    sample = key_rotation.check(sample=SECRETS_SAMPLE)
    total = sum(tally.total for tally in sample.values())
    unreadable = {place: tally.unreadable for place, tally in sample.items() if tally.unreadable}
    if unreadable:
        places = ", ".join(f"{place} ({count})" for place, count in unreadable.items())
        return Check(
            name,
            FAIL,
            f"{sum(unreadable.values())} of {total} sampled do not decrypt with this host's encryption keys: "
            f"{places}; card keys cannot be delivered nor gateway settings read",
            "set FAKA_ENCRYPTION_KEYS to the keys they were saved with (with several hosts, the same on every "
            "host and worker); `faka rotate-keys --check` then counts every stored secret",
        )
    if not total:
        return Check(name, OK, "none stored yet")
    return Check(name, OK, f"the {total} sampled (card keys, gateway settings, ...) decrypt with this host's keys")


def backups(backup_dir: str | None) -> Check:
    """The archives `flask backup` writes: to `backup_dir` (FAKA_BACKUP_DIR), else to
    <instance>/backups, as faka-<date>-<time>.tar.gz. With several web hosts only the host
    whose faka-backup.timer is enabled keeps archives; the others have nothing to check."""
    name = "Backups"
    folder = Path(backup_dir) if backup_dir else Path(current_app.instance_path) / "backups"
    schedule = (
        "schedule `flask --app faka backup --keep 14` daily (deploy/systemd/faka-backup.timer), "
        "and copy the archives off this server"
    )
    archived = folder.is_dir() and any(folder.glob(ARCHIVES))
    if not archived and current_app.config.get("WEB_HOSTS", 1) > 1 and not BACKUP_TIMER.exists():
        return Check(
            name,
            OK,
            f"not taken on this host (no archive in {folder}, faka-backup.timer not enabled): with several web "
            f"hosts one host, a worker host, takes them (docs/topology.md); `faka doctor` there checks them",
        )
    if not folder.is_dir():
        if backup_dir:
            return Check(
                name,
                FAIL,
                f"{folder} does not exist",
                f"create it for the service user: install -d -m 700 -o faka -g faka {folder}",
            )
        return Check(name, WARN, f"no backup yet ({folder} does not exist)", schedule)
    archives = sorted(folder.glob(ARCHIVES), key=lambda p: p.stat().st_mtime)
    if not archives:
        return Check(
            name,
            WARN,
            f"no archive in {folder} yet",
            "run the backup once now (systemctl start faka-backup.service) and check the timer: "
            "systemctl list-timers faka-backup.timer",
        )
    exposed = [p.name for p in archives if p.stat().st_mode & (stat.S_IRWXG | stat.S_IRWXO)]
    if exposed:
        return Check(
            name,
            FAIL,
            f"{', '.join(exposed[:SHOWN_PATHS])} in {folder} can be read by other users, and "
            f"an archive opens every secret of the shop",
            f"chmod 600 {folder}/{ARCHIVES}",
        )
    newest = archives[-1]
    hours = (time.time() - newest.stat().st_mtime) / 3600
    if hours > BACKUP_MAX_AGE_HOURS:
        return Check(
            name,
            FAIL,
            f"the newest archive, {newest.name}, is {hours:.0f} hours old: backups stopped",
            "look at journalctl -u faka-backup.service and systemctl list-timers faka-backup.timer",
        )
    return Check(
        name,
        OK,
        f"{len(archives)} archive(s) in {folder}, the newest {hours:.0f} hours old; they hold "
        f"the encryption keys: copy them off this server to a place as safe as the keys",
    )


# -- HTTPS and the proxy ----------------------------------------------------------------


def _public_https(url: str) -> str | None:
    """Why `url` is not a public HTTPS address, or None when it is."""
    parts = urlsplit(url)
    if parts.scheme != "https":
        return "is not HTTPS"
    host = parts.hostname or ""
    if host == "localhost" or host.endswith(".localhost") or not host:
        return "points at this machine"
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        return None
    if address.is_loopback or address.is_private or address.is_unspecified:
        return "is not a public address"
    return None


def base_url() -> Check:
    name = "Base URL"
    url = current_app.config["BASE_URL"]
    problem = _public_https(url)
    if problem:
        return Check(
            name,
            FAIL,
            f"FAKA_BASE_URL={url} {problem}: emails link there and gateways send payment notifications there",
            "set FAKA_BASE_URL=https://<your domain> in the environment file",
        )
    return Check(name, OK, f"FAKA_BASE_URL={url}")


def _trusted_proxies() -> int:
    wrapped = current_app.wsgi_app
    return wrapped.x_for if isinstance(wrapped, ProxyFix) else 0


def proxy() -> Check:
    name = "Reverse proxy"
    proxies = _trusted_proxies()
    https = urlsplit(current_app.config["BASE_URL"]).scheme == "https"
    if proxies:
        return Check(
            name, OK, f"FAKA_PROXY_COUNT={proxies}: client addresses and the scheme come from X-Forwarded-For/-Proto"
        )
    if https:
        return Check(
            name,
            FAIL,
            "FAKA_PROXY_COUNT is not set but the site is served over HTTPS by a proxy: every "
            "visitor has the proxy's address, so one visitor's rate limit or blacklisting "
            "hits all of them",
            "set FAKA_PROXY_COUNT=1 (Caddy or nginx in front of gunicorn)",
        )
    return Check(
        name,
        WARN,
        "FAKA_PROXY_COUNT is not set (right only when nothing is in front of gunicorn)",
        "behind Caddy or nginx set FAKA_PROXY_COUNT=1",
    )


def cookies_and_hsts() -> Check:
    name = "Secure cookies and HSTS"
    cfg = current_app.config
    https = urlsplit(cfg["BASE_URL"]).scheme == "https"
    secure, hsts = cfg.get("SESSION_COOKIE_SECURE"), cfg.get("HSTS")
    if not https:
        if secure:
            return Check(
                name,
                FAIL,
                "FAKA_SECURE_COOKIES is on but FAKA_BASE_URL is not HTTPS: browsers drop "
                "the session cookie, so nobody can sign in",
                "serve the site over HTTPS, or unset FAKA_SECURE_COOKIES",
            )
        return Check(
            name, WARN, "off (the site is not HTTPS)", "after moving to HTTPS set FAKA_SECURE_COOKIES=1 and FAKA_HSTS=1"
        )
    missing = [var for var, on in (("FAKA_SECURE_COOKIES", secure), ("FAKA_HSTS", hsts)) if not on]
    if missing:
        return Check(
            name,
            WARN,
            f"{' and '.join(missing)} not set: only requests the proxy marks as HTTPS get them",
            f"set {'=1 and '.join(missing)}=1 in the environment file",
        )
    return Check(name, OK, "cookies are Secure and every response carries HSTS")


# -- database ---------------------------------------------------------------------------


def database() -> Check:
    name = "Database"
    url = db.engine.url.render_as_string(hide_password=True)
    try:
        with db.engine.connect() as connection:
            connection.execute(text("SELECT 1"))
            current = set(MigrationContext.configure(connection).get_current_heads())
    except Exception as exc:  # noqa: BLE001 - any failure to connect is what the operator must see
        return Check(
            name,
            FAIL,
            f"{url} cannot be reached: {type(exc).__name__}: {str(exc).splitlines()[0][:200]}",
            "check DATABASE_URL, that the server runs, and the role's password",
        )
    heads = set(ScriptDirectory(current_app.extensions["migrate"].directory).get_heads())
    if current != heads:
        at = ", ".join(sorted(current)) or "no migration"
        return Check(
            name,
            FAIL,
            f"{url} is at {at}, the code expects {', '.join(sorted(heads))}",
            "back up, then run `flask --app faka init-db` and restart faka-web and faka-worker",
        )
    return Check(name, OK, f"{url}, at the latest migration")


def sqlite() -> Check:
    mode = db.session.execute(text("PRAGMA journal_mode")).scalar()
    db.session.rollback()
    return Check(
        "SQLite",
        WARN,
        f"{db.engine.url.database} (journal {mode}): fine for one VPS with the web and the worker on it",
        "back it up with `flask --app faka backup` (never copy the file while faka runs); for a second "
        "machine or heavy traffic move to PostgreSQL with `flask --app faka copy-db`",
    )


def database_pooler() -> Check:
    """FAKA_DATABASE_POOLER is set: faka prepares no statements, and LISTENs (for the
    order-status polls) on FAKA_DATABASE_LISTEN_URL, a direct connection, or not at all."""
    name = "Database pooler"
    cfg = current_app.config
    pooler = cfg["DATABASE_POOLER"]
    if db.engine.dialect.name != "postgresql":
        return Check(
            name,
            WARN,
            f"FAKA_DATABASE_POOLER={pooler} does nothing: the database is not PostgreSQL",
            "unset FAKA_DATABASE_POOLER",
        )
    url = listen_url(cfg)
    if url is None:
        return Check(
            name,
            WARN,
            f"FAKA_DATABASE_POOLER={pooler} and no FAKA_DATABASE_LISTEN_URL: a LISTEN cannot go through a "
            f"pooler in transaction mode, so nothing hears order changes and every status poll (each waiting "
            f"buyer's, every 2 seconds) reads the database",
            "set FAKA_DATABASE_LISTEN_URL to a direct connection to PostgreSQL (its own host and port, not the "
            "pooler's); each web process holds one connection there",
        )
    listen = make_url(url)
    where = listen.render_as_string(hide_password=True)
    pooled = db.engine.url
    if (listen.host, listen.port or 5432) == (pooled.host, pooled.port or 5432):
        return Check(
            name,
            FAIL,
            f"FAKA_DATABASE_LISTEN_URL ({where}) is the pooler's address, as DATABASE_URL: the LISTEN ends with "
            f"its transaction, and polls trust reads that are out of date for up to FAKA_STATUS_TRUST_SECONDS",
            "point FAKA_DATABASE_LISTEN_URL at PostgreSQL itself, not at the pooler",
        )
    try:
        with psycopg.connect(url, autocommit=True, connect_timeout=DATABASE_TIMEOUT) as connection:
            connection.execute(f"LISTEN {status_signal.CHANNEL}")
    except psycopg.Error as exc:
        return Check(
            name,
            FAIL,
            f"FAKA_DATABASE_LISTEN_URL ({where}) cannot be reached: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}",
            "check FAKA_DATABASE_LISTEN_URL, that PostgreSQL accepts this host there, and the role's password",
        )
    return Check(
        name,
        OK,
        f"FAKA_DATABASE_POOLER={pooler}: no prepared statements; order changes are heard on {where}",
    )


# -- jobs -------------------------------------------------------------------------------


def redis_and_worker() -> list[Check]:
    if tasks.runner().mode != tasks.MODE_RQ:
        if current_app.config.get("WEB_HOSTS", 1) > 1:
            return [
                Check(
                    "Redis and worker",
                    WARN,
                    "REDIS_URL is not set: each host counts its own rate limits (they let several times as much "
                    "through), runs jobs in its own threads, and hears of no other host's changes to cached pages",
                    "set the same REDIS_URL on every host and run faka-worker (docs/topology.md)",
                )
            ]
        return [
            Check(
                "Redis and worker",
                WARN,
                "REDIS_URL is not set: jobs run in a thread of each web process, "
                "and each process keeps its own rate limits",
                "for more than one gunicorn worker set REDIS_URL and run worker.py (deploy/faka-worker.service)",
            )
        ]
    # Imported here, not at the top: the console imports this module for its opening
    # checklist, and a shop without REDIS_URL never loads Redis or RQ (as in core/tasks).
    from redis import Redis
    from rq import Queue, Worker
    from rq.cron import CronScheduler

    url = current_app.config["REDIS_URL"]
    where = _redis_where(url)
    # Its own connection with timeouts: an address that never answers must not hang the doctor.
    redis = Redis.from_url(url, socket_connect_timeout=REDIS_TIMEOUT, socket_timeout=REDIS_TIMEOUT)
    try:
        redis.ping()
        queue = Queue(current_app.config["RQ_QUEUE"], connection=redis)
        workers, waiting = len(Worker.all(queue=queue)), queue.count
        schedulers = len(CronScheduler.all(redis))
    except Exception as exc:  # noqa: BLE001 - any Redis failure is what the operator must see
        return [
            Check(
                "Redis",
                FAIL,
                f"{where} cannot be reached: {type(exc).__name__}",
                "check REDIS_URL and that redis-server runs (systemctl status redis-server)",
            )
        ]
    finally:
        redis.close()
    checks = [Check("Redis", OK, f"{where} answers")]
    if not workers:
        checks.append(
            Check(
                "Worker",
                FAIL,
                f'no worker listens on the queue "{queue.name}" ({waiting} job(s) '
                f"waiting): paid orders are not delivered",
                "start it: systemctl enable --now faka-worker; then journalctl -u faka-worker",
            )
        )
    elif not schedulers:
        checks.append(
            Check(
                "Worker",
                FAIL,
                f"{workers} worker(s) alive, but none schedules the reconciler (all "
                f"started with --no-cron): stuck orders and unsent emails stay so",
                "run at least one worker without --no-cron",
            )
        )
    else:
        checks.append(
            Check("Worker", OK, f"{workers} worker(s) alive, {waiting} job(s) waiting, the reconciler scheduled")
        )
    return checks


# -- several web hosts -----------------------------------------------------------------


def several_hosts(database_reached: bool) -> list[Check]:
    """What every web host behind a load balancer must share (docs/topology.md): a Check
    for each piece missing, or one OK. Asked when FAKA_WEB_HOSTS is above 1. Whether Redis
    is set and answers is redis_and_worker()'s to say; whether the encryption keys open
    what is stored, stored_secrets()'."""
    name = "Several web hosts"
    cfg = current_app.config
    hosts = cfg["WEB_HOSTS"]
    checks = []
    secret = _generated_secret()
    if secret is not None:
        checks.append(
            Check(
                name,
                FAIL,
                f"SECRET_KEY is generated into {secret} on this host: each host makes its own, so a sign-in, "
                f"a form or a captcha from one host is refused by the next",
                "set the same SECRET_KEY in every host's environment file",
            )
        )
    elif database_reached and db.engine.dialect.name != "sqlite" and len(cfg["SECRET_KEY"]) >= MIN_SECRET_LENGTH:
        checks.extend(secret_key_shared())  # a short one fails secret_key(); it is not recorded
    if not cfg.get("ENCRYPTION_KEYS"):
        checks.append(
            Check(
                name,
                FAIL,
                f"the encryption keys are generated into {Path(current_app.instance_path) / KEY_FILE} on this "
                f"host: card keys and secrets saved through one host cannot be read by another",
                "set the same FAKA_ENCRYPTION_KEYS in every host's environment file (this file's content if the "
                "shop already runs on this host)",
            )
        )
    if db.engine.dialect.name == "sqlite":
        checks.append(
            Check(
                name,
                FAIL,
                f"the database is SQLite, a file on this host ({db.engine.url.database}): other hosts cannot share it",
                "move to PostgreSQL (`flask --app faka copy-db --to postgresql://...`) and set the same "
                "DATABASE_URL on every host",
            )
        )
    elif not cfg.get("DATABASE_POOLER") and _on_this_host(db.engine.url.host):
        checks.append(
            Check(
                name,
                WARN,
                f"DATABASE_URL names this host ({db.engine.url.render_as_string(hide_password=True)}): unless "
                f"PostgreSQL runs on this host, other hosts cannot reach it",
                "set DATABASE_URL to the database server's private address, the same on every host (or a local "
                "PgBouncer with FAKA_DATABASE_POOLER=pgbouncer: docs/topology.md)",
            )
        )
    redis_url = cfg.get("REDIS_URL")
    if redis_url and _redis_on_this_host(redis_url):
        checks.append(
            Check(
                name,
                WARN,
                f"REDIS_URL names this host ({_redis_where(redis_url)}): unless Redis runs on this host, other hosts cannot reach "
                f"it, and each host counts its own rate limits and hears no other host's cache changes",
                "set REDIS_URL to the Redis server's private address, the same on every host (docs/topology.md)",
            )
        )
    if cfg.get("UPLOAD_STORAGE") != "database":
        checks.append(
            Check(
                name,
                FAIL,
                f"uploads are kept in {Path(current_app.instance_path) / 'uploads'} on this host: images, "
                f"licences and evidence uploaded through another host are missing here",
                "`flask --app faka storage-move --to database`, then FAKA_UPLOAD_STORAGE=database on every host",
            )
        )
    if urlsplit(cfg["BASE_URL"]).hostname in ("127.0.0.1", "localhost", "::1"):
        checks.append(
            Check(
                name,
                WARN,
                f"FAKA_BASE_URL is not set ({cfg['BASE_URL']}): emails, gateways' notify URLs and passkeys must "
                f"name the load balancer's address",
                "set FAKA_BASE_URL=https://<your domain> on every host",
            )
        )
    if any(check.status != OK for check in checks):
        return checks
    shared = "the secrets from the environment, PostgreSQL, " + ("Redis, " if redis_url else "")
    return [
        *checks,
        Check(
            name,
            OK,
            f"{hosts} hosts share {shared}and the uploads in the database; sessions are signed cookies, so the "
            f"load balancer needs no sticky sessions",
        ),
    ]


def _on_this_host(host: str | None) -> bool:
    """Whether a server address means this machine: none (a local socket), localhost or loopback."""
    if not host or host == "localhost" or host.endswith(".localhost") or host.startswith("/"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _redis_on_this_host(url: str) -> bool:
    parts = urlsplit(url)
    return parts.scheme == "unix" or _on_this_host(parts.hostname)


def _redis_where(url: str) -> str:
    """REDIS_URL without its password."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return f"unix://{parts.path}"
    return f"{parts.scheme}://{parts.hostname}:{parts.port or 6379}{parts.path}"


def _fingerprint(secret: str) -> str:
    """A keyed hash that tells SECRET_KEYs apart and, for a key of 32+ random characters,
    reveals nothing of it."""
    return hmac.new(secret.encode(), b"faka.secret-key-fingerprint", hashlib.sha256).hexdigest()[:32]


def secret_key_shared() -> list[Check]:
    """This host's SECRET_KEY against the fingerprint the first host to run doctor recorded
    in the database (written here, once, if none is there yet). Nothing else can tell: a
    wrong key in an environment file looks as good as the right one until sign-ins fail."""
    name = "Several web hosts"
    mine = _fingerprint(current_app.config["SECRET_KEY"])
    row = db.session.get(Setting, SECRET_FINGERPRINT)
    if row is None:
        record = {"fingerprint": mine, "host": socket.gethostname(), "at": time.strftime("%Y-%m-%d", time.gmtime())}
        try:
            with write_transaction():
                db.session.add(Setting(key=SECRET_FINGERPRINT, value=json.dumps(record)))
        except IntegrityError:  # another host's doctor recorded it at the same moment
            row = db.session.get(Setting, SECRET_FINGERPRINT)
        else:
            return [
                Check(
                    name,
                    OK,
                    "recorded SECRET_KEY's fingerprint (a keyed hash, not the key) in the database: `faka doctor` "
                    "on the other hosts checks that theirs is the same",
                )
            ]
    try:
        recorded = json.loads(row.value)
        theirs, host, at = recorded["fingerprint"], recorded["host"], recorded["at"]
    except (ValueError, TypeError, KeyError):
        theirs, host, at = row.value, "another host", "earlier"
    db.session.rollback()
    if hmac.compare_digest(mine, str(theirs)):
        return [Check(name, OK, f"SECRET_KEY is the one {host} recorded ({at})")]
    return [
        Check(
            name,
            FAIL,
            f"this host's SECRET_KEY is not the one {host} recorded ({at}): a sign-in, a form or a captcha "
            f"from one of them is refused by the other",
            "set the same SECRET_KEY in every host's environment file; if it was changed on every host on purpose, "
            f"forget the old one (in psql: delete from settings where key = '{SECRET_FINGERPRINT}') and run "
            f"`faka doctor` again",
        )
    ]


# -- email ------------------------------------------------------------------------------


def smtp(probe: bool = True) -> Check:
    """The SMTP settings in force; with `probe`, also connect and log in as sending would
    (without probe nothing leaves this machine: the settings alone are judged)."""

    name = "SMTP"
    cfg = smtp_config()
    db.session.rollback()
    if not cfg.server:
        return Check(
            name,
            WARN,
            "not configured: emails (delivered keys, complaints, password resets) wait in the outbox",
            "set MAIL_SERVER and the other MAIL_* variables, or save SMTP settings in the operator console",
        )
    where = (
        f"{cfg.server}:{cfg.port} ({'SSL' if cfg.use_ssl else 'STARTTLS' if cfg.use_tls else 'plain'}, {cfg.source})"
    )
    if probe:
        try:
            _probe_smtp(cfg)
        except (OSError, smtplib.SMTPException) as exc:
            return Check(
                name,
                FAIL,
                f"{where}: {type(exc).__name__}: {str(exc)[:200]}",
                "check the server, the port, the TLS mode and the credentials; outgoing port 25 is often "
                "blocked on VPSes: use 465 (MAIL_USE_SSL) or 587 (MAIL_USE_TLS)",
            )
    answers = "answers" if probe else "is set (not contacted)"
    _name, sender = parseaddr(cfg.sender)
    domain = sender.rpartition("@")[2]
    if not domain or domain == "localhost" or "." not in domain:
        return Check(
            name,
            WARN,
            f"{where} {answers}, but the sender is {cfg.sender!r}: mail servers reject or bin it",
            'set MAIL_DEFAULT_SENDER to an address of your domain, e.g. "Shop <no-reply@example.com>"',
        )
    if cfg.username and not (cfg.use_ssl or cfg.use_tls):
        return Check(
            name,
            WARN,
            f"{where} {answers}, but the password crosses the network in clear",
            "set MAIL_USE_TLS=1 (port 587) or MAIL_USE_SSL=1 (port 465)",
        )
    login = " and accepts the login" if cfg.username and probe else ""
    return Check(name, OK, f"{where} {answers}{login}; sender {cfg.sender}")


def _probe_smtp(cfg) -> None:
    """Connect, greet, start TLS and log in as sending would, then quit without sending."""
    timeout = min(cfg.timeout, SMTP_PROBE_TIMEOUT)
    context = ssl.create_default_context()
    if cfg.use_ssl:
        client = smtplib.SMTP_SSL(cfg.server, cfg.port, timeout=timeout, context=context)
    else:
        client = smtplib.SMTP(cfg.server, cfg.port, timeout=timeout)
    with client:
        client.ehlo()
        if cfg.use_tls:
            client.starttls(context=context)
            client.ehlo()
        if cfg.username:
            client.login(cfg.username, cfg.password or "")


# -- payments ---------------------------------------------------------------------------


def _enabled_gateways() -> list[str]:

    return [gateway for gateway, _label in enabled_gateways()]


def real_gateway(enabled: list[str] | None = None) -> Check:
    """A gateway that takes real money (anything but the sandbox) is enabled."""
    name = "Payment gateways"
    enabled = _enabled_gateways() if enabled is None else enabled
    real = [g for g in enabled if g != "sandbox"]
    if not real:
        return Check(
            name,
            FAIL,
            "only the sandbox is enabled: it takes test payments, not money"
            if enabled
            else "none enabled: buyers cannot pay",
            "configure one in the operator console (/operator/gateways) or with "
            "`flask --app faka gateway-config <gateway> key=value ... --enable`",
        )
    return Check(name, OK, f"enabled: {', '.join(real)}")


def sandbox_off(enabled: list[str] | None = None) -> Check:
    name = "Sandbox gateway"
    enabled = _enabled_gateways() if enabled is None else enabled
    if "sandbox" in enabled:
        return Check(
            name,
            FAIL,
            "the sandbox gateway is enabled: anyone can pay for goods with a test payment",
            "`flask --app faka gateway-config sandbox --disable` before selling",
        )
    return Check(name, OK, "off")


def gateways() -> Check:

    name = "Payment gateways"
    enabled = _enabled_gateways()
    silent = [s.gateway for s in silent_gateways()]
    db.session.rollback()
    if not enabled:
        return real_gateway(enabled)
    base = current_app.config["BASE_URL"].rstrip("/")
    urls = {g: base + current_app.url_map.bind("").build("pay.notify", {"gateway": g}) for g in enabled}
    listed = "; ".join(f"{g}: {url}" for g, url in urls.items())
    sandbox = sandbox_off(enabled)
    if sandbox.status != OK:
        return Check(name, sandbox.status, f"{sandbox.found} ({listed})", sandbox.fix)
    bad = [g for g, url in urls.items() if _public_https(url)]
    if bad:
        return Check(
            name,
            FAIL,
            f"notify URLs not public HTTPS ({listed}): providers cannot reach them",
            "fix FAKA_BASE_URL, then enter the notify URLs in each provider's console",
        )
    if silent:
        return Check(
            name,
            WARN,
            f"{', '.join(silent)}: buyers were sent to pay but no notification arrived ({listed})",
            "check the notify URL in the provider's console and that the proxy lets POST /pay/<gateway>/notify through",
        )
    return Check(name, OK, f"notify URLs: {listed}")


# -- the machine ------------------------------------------------------------------------


def translations() -> Check:
    name = "Translations"
    missing, stale, found = [], [], 0
    for folder in current_app.extensions["babel"].translation_directories:
        for po in sorted(Path(folder).glob("*/LC_MESSAGES/*.po")):
            found += 1
            mo = po.with_suffix(".mo")
            if not mo.exists():
                missing.append(po.parent.parent.name)
            elif mo.stat().st_mtime < po.stat().st_mtime:
                stale.append(po.parent.parent.name)
    fix = "run `pybabel compile -d faka/translations` in the install folder, then restart faka-web and faka-worker"
    if not found:
        return Check(name, FAIL, "no catalogue found: pages would show English only", "reinstall faka from git")
    if missing:
        return Check(name, FAIL, f"not compiled: {', '.join(missing)} (those pages show English)", fix)
    if stale:
        return Check(name, WARN, f"compiled before their last change: {', '.join(stale)}", fix)
    return Check(name, OK, f"{found} catalogue(s) compiled")


def disk_space() -> Check:
    name = "Disk space"
    folder = current_app.instance_path
    usage = shutil.disk_usage(folder)
    found = f"{usage.free / 1024**3:.1f} GB free of {usage.total / 1024**3:.1f} GB where {folder} lives"
    fix = "free space (old backups, journalctl --vacuum-size=200M, apt clean) or grow the disk"
    if usage.free < DISK_FAIL_BYTES:
        return Check(name, FAIL, found + ": uploads, key imports and the database will fail", fix)
    if usage.free < DISK_WARN_BYTES or usage.free < usage.total * DISK_WARN_FRACTION:
        return Check(name, WARN, found, fix)
    return Check(name, OK, found)


def instance_permissions() -> Check:
    name = "Instance folder"
    folder = Path(current_app.instance_path)
    mode = folder.stat().st_mode
    if not os.access(folder, os.W_OK | os.X_OK):
        return Check(
            name,
            FAIL,
            f"{folder} is not writable by this user: uploads and key imports fail",
            f"chown -R faka:faka {folder}",
        )
    if mode & stat.S_IWOTH:
        return Check(name, FAIL, f"{folder} is writable by every user of this machine", f"chmod 750 {folder}")
    if not mode & stat.S_IXOTH:
        return Check(name, OK, f"{folder} is closed to other users ({stat.filemode(mode)})")
    exposed = [p for p in sorted(folder.rglob("*")) if p.is_file() and p.stat().st_mode & stat.S_IROTH]
    if exposed:
        shown = ", ".join(str(p.relative_to(folder)) for p in exposed[:SHOWN_PATHS])
        more = f" and {len(exposed) - SHOWN_PATHS} more" if len(exposed) > SHOWN_PATHS else ""
        return Check(
            name,
            FAIL,
            f"every user of this machine can read {shown}{more} in {folder}",
            f"chmod 750 {folder} (and chmod -R o-rwx {folder})",
        )
    return Check(
        name,
        WARN,
        f"{folder} is open to other users ({stat.filemode(mode)}), though no file in it is readable to them",
        f"chmod 750 {folder}",
    )
