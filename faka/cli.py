"""`flask --app faka <command>`: the commands an operator scripts a deployment with."""

import shutil
import textwrap
from pathlib import Path

import click
from flask import current_app
from flask.cli import FlaskGroup
from flask_migrate import upgrade
from sqlalchemy.exc import OperationalError

from faka import create_app
from faka.accounts import users
from faka.core import crypto, storage, tasks
from faka.extensions import db
from faka.ops import tasks as ops_tasks
from faka.ops.doctor import FAIL, OK, WARN, run_checks
from faka.ops.seed import DEMO_MERCHANT, DEMO_OPERATOR, DEMO_RESELLER
from faka.ops.seed import seed_demo as seed
from faka.payments.gateways import GATEWAYS, configure_gateway, ensure_sandbox
from faka.platform import backup as backups
from faka.platform import dbcopy, key_rotation
from faka.platform import retention as retention_service
from faka.platform.dbcopy import describe


def main() -> None:
    """The `faka` command (pyproject.toml): `flask --app faka` by a shorter name, so
    `faka init-db`, `faka doctor`, `faka run`."""
    FlaskGroup(create_app=create_app).main()


def init_app(app) -> None:
    for command in (init_db, seed_demo, create_operator, reconcile, retention, rotate_keys, gateway_config):
        app.cli.add_command(command)
    app.cli.add_command(doctor)
    for command in (backup, restore, copy_db, storage_move):
        app.cli.add_command(command)


@click.command("init-db")
def init_db():
    """Create or upgrade the database schema (Alembic migrations)."""
    upgrade()

    ensure_sandbox(enabled=False)  # a real shop's sandbox stays off until the operator turns it on
    click.echo("database is at the latest schema")


@click.command("seed-demo")
def seed_demo():
    """Create the demo shop (operator, merchant, products with keys) if absent."""

    created = seed()
    click.echo("demo data created" if created else "demo data already present")
    click.echo(f"  operator: {DEMO_OPERATOR[0]} / {DEMO_OPERATOR[1]}")
    click.echo(f"  merchant: {DEMO_MERCHANT[0]} / {DEMO_MERCHANT[1]}")
    click.echo(f"  reseller: {DEMO_RESELLER[0]} / {DEMO_RESELLER[1]}")


@click.command("create-operator")
@click.option("--email", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--shop", "shop_name", default=None, help="Single-shop mode: the operator also runs this shop, approved.")
def create_operator(email: str, password: str, shop_name: str | None):
    """Create an operator (platform administrator) account."""

    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="--password")
    try:
        users.create_operator(email, password, shop_name)
    except users.AccountExists as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"operator {email} created" + (f", running the shop {shop_name}" if shop_name else ""))


@click.command("reconcile")
def reconcile():
    """Expire stale reservations; re-enqueue undelivered orders, unsent emails and refunds;
    ask gateways about payments in flight; move complaints past their deadline."""
    report = ops_tasks.reconcile()
    tasks.runner().wait_idle()
    click.echo(
        f"expired {report['expired']} orders, re-enqueued {report['deliveries']} deliveries, "
        f"{report['emails']} emails and {report['refunds']} refunds; asked about {report['payment_checks']} "
        f"payments in flight; escalated {report['escalated']} and closed {report['closed']} complaints "
        f"past their deadline"
    )


@click.command("retention")
def retention():
    """Hash IP addresses older than 30 days; delete old security and risk events and spent
    captcha challenges; empty old gateway notification bodies (see faka/platform/retention.py)."""

    report = retention_service.run()
    click.echo(
        f"hashed {report.ips_hashed} IP addresses; deleted {report.security_events_deleted} security events, "
        f"{report.risk_events_deleted} risk events and {report.challenges_deleted} spent captcha challenges; "
        f"emptied {report.notify_bodies_emptied} gateway notification bodies"
    )


@click.command("rotate-keys")
@click.option(
    "--check",
    "check_only",
    is_flag=True,
    help="Only check that the newest key alone opens every stored secret; exit 1 if not.",
)
@click.option("--add-key", is_flag=True, help="Put a new key in front of instance/encryption.keys, to rotate to.")
@click.option(
    "--retire", is_flag=True, help="Once the check passes, drop the older keys from instance/encryption.keys."
)
def rotate_keys(check_only: bool, add_key: bool, retire: bool):
    """Re-encrypt every stored secret with the newest encryption key.

    The steps: add a key in front (--add-key, or in FAKA_ENCRYPTION_KEYS), restart the web
    and worker processes, run rotate-keys, then --check and --retire (or drop the older
    keys from FAKA_ENCRYPTION_KEYS)."""

    if check_only + add_key + retire > 1:
        raise click.UsageError("use one of --check, --add-key and --retire")
    if add_key:
        try:
            path = key_rotation.add_key()
        except key_rotation.KeysInEnvironment as exc:
            raise click.ClickException(
                "the keys come from FAKA_ENCRYPTION_KEYS: put a new key in front of it yourself (make one with "
                '`python -c "from cryptography.fernet import Fernet; print(Fernet.generate_key().decode())"`), '
                "restart, then run rotate-keys"
            ) from exc
        click.echo(
            f"added a new key in front of {path}. Restart the web and worker processes so that all of them "
            f"know it, then run `flask --app faka rotate-keys`."
        )
        return
    if retire:
        try:
            dropped = key_rotation.retire_older_keys()
        except key_rotation.KeysInEnvironment as exc:
            raise click.ClickException(
                "the keys come from FAKA_ENCRYPTION_KEYS: once `rotate-keys --check` passes, "
                "keep only its first key and restart"
            ) from exc
        except key_rotation.OlderKeysStillNeeded as exc:
            _echo_key_check(exc.report)
            raise SystemExit(1) from exc
        click.echo(
            f"dropped {dropped} older key(s) from {crypto.key_file()}; it keeps the newest only. "
            f"Backups made before keep the keys they need."
            if dropped
            else "only one key is configured: nothing to retire"
        )
        return
    if check_only:
        if not _echo_key_check(key_rotation.check()):
            raise SystemExit(1)
        return
    report = key_rotation.rotate_all()
    for label, tally in report.items():
        if tally.total:
            click.echo(
                f"  {label:<34} {tally.older:>7} re-encrypted, {tally.current:>7} already with the newest key"
                + (f", {tally.unreadable} unreadable" if tally.unreadable else "")
            )
    click.echo(
        f"re-encrypted {sum(t.older for t in report.values())} secrets with the newest key "
        f"({sum(t.current for t in report.values())} already were)"
    )
    if _unreadable_warning(report):
        raise SystemExit(1)


def _echo_key_check(report) -> bool:
    """Print what the check found; True when the older keys can go."""

    total = sum(t.total for t in report.values())
    older = {label: t.older for label, t in report.items() if t.older}
    if older:
        click.echo(
            f"{sum(older.values())} of {total} stored secrets still need an older key "
            f"({_per_place(older)}): run `flask --app faka rotate-keys`, then check again",
            err=True,
        )
    unreadable = _unreadable_warning(report)
    if older or unreadable:
        return False
    keys = len(crypto.vault().keys)
    click.echo(
        f"all {total} stored secrets open with the newest key alone"
        + (
            f": the {keys - 1} older key(s) can be removed (`rotate-keys --retire`, or from FAKA_ENCRYPTION_KEYS)"
            if keys > 1
            else ""
        )
    )
    return True


def _unreadable_warning(report) -> bool:
    unreadable = {label: t.unreadable for label, t in report.items() if t.unreadable}
    if unreadable:
        click.echo(
            f"{sum(unreadable.values())} stored secrets open with no configured key ({_per_place(unreadable)}): "
            f"the key that encrypted them is missing; put it back (after the newest) in FAKA_ENCRYPTION_KEYS "
            f"or instance/encryption.keys",
            err=True,
        )
    return bool(unreadable)


def _per_place(counts: dict[str, int]) -> str:
    return ", ".join(f"{label} {n}" for label, n in counts.items())


@click.command("gateway-config")
@click.argument("gateway")
@click.argument("settings", nargs=-1)
@click.option("--enable/--disable", default=None, help="Turn the gateway on or off.")
def gateway_config(gateway: str, settings: tuple[str, ...], enable: bool | None):
    """Configure a payment gateway: GATEWAY key=value ... (stored encrypted)."""

    if gateway not in GATEWAYS:
        raise click.BadParameter(f"known gateways: {', '.join(sorted(GATEWAYS))}", param_hint="GATEWAY")
    values = {}
    for item in settings:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise click.BadParameter(f"{item!r} is not key=value", param_hint="SETTINGS")
        values[key] = value
    try:
        configure_gateway(gateway, values, enabled=enable)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{gateway}: updated {', '.join(sorted(values)) or 'nothing'}"
        + ("" if enable is None else f"; enabled={enable}")
    )


@click.command("doctor")
@click.option(
    "--backup-dir",
    envvar="FAKA_BACKUP_DIR",
    default=None,
    metavar="DIR",
    help="Where `flask backup` writes (default: FAKA_BACKUP_DIR, else <instance>/backups).",
)
def doctor(backup_dir: str | None):
    """Check this deployment (secrets, HTTPS, proxy, database, Redis, worker, SMTP,
    gateways, translations, disk, permissions) and say what to fix. Exits 1 when a
    check fails; warnings alone exit 0."""
    checks = run_checks(backup_dir)
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    marks = {
        OK: click.style("ok  ", fg="green"),
        WARN: click.style("WARN", fg="yellow"),
        FAIL: click.style("FAIL", fg="red", bold=True),
    }
    # URLs, paths and commands stay whole on a line: break only at spaces.
    wrap = textwrap.TextWrapper(width=width - 5, break_long_words=False, break_on_hyphens=False)
    for check in checks:
        click.echo(f"{marks[check.status]} " + "\n       ".join(wrap.wrap(f"{check.name}: {check.found}")))
        if check.fix:
            click.echo("       " + "\n         ".join(wrap.wrap(f"fix: {check.fix}")))
    counts = {status: sum(c.status == status for c in checks) for status in (OK, WARN, FAIL)}
    click.echo(f"\n{counts[OK]} ok, {counts[WARN]} warning(s), {counts[FAIL]} failure(s)")
    if counts[FAIL]:
        raise SystemExit(1)


@click.command("backup")
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="The archive to write.")
@click.option(
    "--dir",
    "folder",
    envvar="FAKA_BACKUP_DIR",
    type=click.Path(file_okay=False, path_type=Path),
    help="Without --out, a dated archive goes here (default: FAKA_BACKUP_DIR, else instance/backups).",
)
@click.option("--keep", type=click.IntRange(min=1), help="Then delete all but the newest KEEP dated archives there.")
def backup(out: Path | None, folder: Path | None, keep: int | None):
    """Write the database, the encryption and secret keys and the uploads to one archive
    (tar.gz, readable by its owner only: it opens every secret the shop stores)."""

    result = backups.create_backup(out or backups.default_path(folder))
    manifest = result.manifest
    click.echo(
        f"backup written to {result.path} ({_size(result.size)}): {len(manifest['tables'])} tables, "
        f"{sum(t['rows'] for t in manifest['tables'])} rows, {manifest['uploads']['files']} uploaded files, "
        f"{manifest['database']} schema {manifest['alembic_revision'] or '(none)'}"
    )
    for note in result.notes:
        click.echo(note, err=True)
    click.echo("It holds the encryption keys: keep it as safe as them, and copy it off this server.")
    if keep:
        removed = backups.prune(result.path.parent, keep)
        if removed:
            click.echo(f"deleted {len(removed)} older archive(s), keeping the newest {keep}")


@click.command("restore")
@click.argument("archive", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--yes", is_flag=True, help="Do not ask before restoring.")
@click.option("--force", is_flag=True, help="Replace a database that already holds data.")
def restore(archive: Path, yes: bool, force: bool):
    """Restore a backup into this instance: database, keys, uploads. Then start faka."""
    try:
        manifest = backups.read_manifest(archive)
        state = backups.target_state()
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(
        f"{archive}: {manifest['database']} backup of {manifest['created_at']}, schema "
        f"{manifest['alembic_revision']}, {sum(t['rows'] for t in manifest['tables'])} rows, "
        f"{manifest['uploads']['files']} uploaded files"
    )
    click.echo(f"into {describe(db.engine)}, instance folder {current_app.instance_path}")
    if state.data_rows:
        if not force:
            raise click.ClickException(
                f"the database already holds data ({state.data_rows} rows): restore into an "
                f"empty database, or pass --force to replace everything in it"
            )
        click.echo(
            f"This replaces the {state.data_rows} rows in it, and its key files (set aside as *.before-restore)."
        )
    if not yes:
        click.confirm("Restore?", abort=True)
    try:
        report = backups.restore_backup(archive, force=force)
    except backups.BackupError as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"  {'table':<22} {'backup':>9} {'restored':>9}")
    for table in manifest["tables"]:
        if table["rows"] or report.restored.get(table["name"]):
            click.echo(f"  {table['name']:<22} {table['rows']:>9} {report.restored.get(table['name'], 0):>9}")
    click.echo(f"all {len(manifest['tables'])} tables hold the rows the manifest lists (empty ones not shown)")
    if report.upgraded_from:
        click.echo(f"upgraded the schema from {report.upgraded_from} to {report.head}")
    click.echo(
        f"restored {report.uploads} uploaded files; wrote the encryption keys to {report.key_file} and the "
        f"secret key to {report.secret_file}"
    )
    for note in report.notes:
        click.echo(note, err=True)
    for path in report.kept:
        click.echo(f"the replaced shop's {path.name.removesuffix('.before-restore')} is kept as {path}")
    if manifest["keys"]["encryption_keys_from"] == "environment":
        click.echo(
            f"The backed-up shop took its keys from the environment. To do so here too, set "
            f"FAKA_ENCRYPTION_KEYS to the lines of {report.key_file} joined by commas (and SECRET_KEY to "
            f"{report.secret_file}), then delete those files."
        )
    if report.encryption_keys_env_differs:
        click.echo(
            f"FAKA_ENCRYPTION_KEYS is set here and differs from the backup's keys, which the restored data "
            f"needs: unset it (faka then reads {report.key_file}) or set it to that file's keys.",
            err=True,
        )
    if report.secret_key_env_differs:
        click.echo(
            f"SECRET_KEY is set here and differs from the backup's: sessions, signed links and captcha "
            f"signatures of the old shop stop working. Unset it (faka then reads {report.secret_file}) or "
            f"set it to that file's content.",
            err=True,
        )
    sampled = sum(t.total for t in report.sample.values())
    if report.undecryptable:
        click.echo(
            f"{report.undecryptable} of {sampled} sampled secrets do not decrypt with the backup's keys: the "
            f"archive's keys do not match its data",
            err=True,
        )
        raise SystemExit(1)
    click.echo(f"{sampled} sampled secrets decrypt with the restored keys. Start faka.")


@click.command("copy-db")
@click.option("--to", "target", metavar="DATABASE_URL", help="Copy this app's database into that (empty) one.")
@click.option("--from", "source", metavar="DATABASE_URL", help="Copy that database into this app's (empty) one.")
@click.option("--force", is_flag=True, help="Replace the data of a target that is not empty.")
def copy_db(target: str | None, source: str | None, force: bool):
    """Copy every row between this app's database and another, e.g. SQLite to PostgreSQL.
    Stop faka first; the target must be migrated (init-db) to the same revision."""
    if bool(target) == bool(source):
        raise click.UsageError("give one of --to and --from")
    try:
        other = dbcopy.engine_for(target or source)
    except dbcopy.CopyError as exc:
        raise click.ClickException(str(exc)) from exc
    origin, destination = (db.engine, other) if target else (other, db.engine)
    click.echo(f"copying {dbcopy.describe(origin)} into {dbcopy.describe(destination)}")
    try:
        report = dbcopy.copy_database(
            origin,
            destination,
            force=force,
            progress=lambda name, rows: rows and click.echo(f"  {name:<22} {rows:>9} rows"),
        )
    except dbcopy.CopyError as exc:
        raise click.ClickException(str(exc)) from exc
    except OperationalError as exc:
        raise click.ClickException(f"cannot use the database: {exc.orig}") from exc
    finally:
        other.dispose()
    click.echo(
        f"copied {sum(report.source.values())} rows in {len(report.source)} tables; every count matches the source"
    )
    if target:
        click.echo(f"Next: set DATABASE_URL to {dbcopy.describe(destination)} (with its password) and start faka.")


@click.command("storage-move")
@click.option("--to", "target", type=click.Choice(storage.BACKENDS), required=True, help="The storage to fill.")
@click.option(
    "--delete-source",
    is_flag=True,
    help="Once faka uses TARGET: copy nothing, remove each file of the other storage that TARGET holds the same.",
)
def storage_move(target: str, delete_source: bool):
    """Copy every uploaded file from the other storage into TARGET (local: the instance
    folder, database: PostgreSQL), verified, skipping files already there; safe to run
    again. Then set FAKA_UPLOAD_STORAGE to TARGET and restart faka; later, --delete-source
    empties the other storage."""
    if target == "database" and db.engine.dialect.name == "sqlite":
        raise click.ClickException("the database storage needs PostgreSQL: set DATABASE_URL first (copy-db)")
    source = "local" if target == "database" else "database"
    if delete_source:
        click.echo(f"removing from the {source} storage the uploads the {target} storage holds the same")
    else:
        click.echo(f"copying the uploads from the {source} storage into the {target} storage")

    def tell(area: str, moved: storage.AreaMove) -> None:
        if delete_source:
            click.echo(f"  {area:<9} {moved.deleted:>6} removed, only in source: {moved.only_in_source}")
        else:
            click.echo(f"  {area:<9} {moved.copied:>6} copied ({_size(moved.bytes)}), {moved.skipped:>6} already there")

    try:
        report = storage.move_files(
            storage.backend(source, current_app.instance_path),
            storage.backend(target, current_app.instance_path),
            delete_source=delete_source,
            progress=tell,
        )
    except storage.MoveRefused as exc:
        raise click.ClickException(str(exc)) from exc
    except (storage.CopyMismatch, OSError) as exc:
        raise click.ClickException(f"{exc}; nothing copied so far is lost: run the command again") from exc
    if delete_source:
        kept = sum(moved.only_in_source for moved in report.areas.values())
        click.echo(
            f"{sum(moved.deleted for moved in report.areas.values())} files removed from the {source} storage; "
            f"only in source: {kept}"
            + (f" (kept: deleted from the {target} storage since the switch, or other bytes there)" if kept else "")
        )
        return
    copied = sum(moved.copied for moved in report.areas.values())
    skipped = sum(moved.skipped for moved in report.areas.values())
    click.echo(
        f"{copied} files copied ({_size(sum(m.bytes for m in report.areas.values()))}) and verified, "
        f"{skipped} already there"
    )
    if current_app.config["UPLOAD_STORAGE"] != target:
        click.echo(f"Next: set FAKA_UPLOAD_STORAGE={target} on every web host and worker, and restart them.")


def _size(n: int) -> str:
    for unit in ("bytes", "KB", "MB", "GB"):
        if n < 1024 or unit == "GB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
