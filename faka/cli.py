"""`flask --app faka <command>`: the commands an operator scripts a deployment with."""
import click
from flask_migrate import upgrade

from faka import jobs


def init_app(app) -> None:
    for command in (init_db, seed_demo, create_operator, reconcile, retention, rotate_keys, gateway_config):
        app.cli.add_command(command)
    app.cli.add_command(doctor)


@click.command("init-db")
def init_db():
    """Create or upgrade the database schema (Alembic migrations)."""
    upgrade()
    from faka.payments import ensure_sandbox

    ensure_sandbox()
    click.echo("database is at the latest schema")


@click.command("seed-demo")
def seed_demo():
    """Create the demo shop (operator, merchant, products with keys) if absent."""
    from faka.services.seed import DEMO_MERCHANT, DEMO_OPERATOR, seed_demo as seed

    created = seed()
    click.echo("demo data created" if created else "demo data already present")
    click.echo(f"  operator: {DEMO_OPERATOR[0]} / {DEMO_OPERATOR[1]}")
    click.echo(f"  merchant: {DEMO_MERCHANT[0]} / {DEMO_MERCHANT[1]}")


@click.command("create-operator")
@click.option("--email", prompt=True)
@click.option("--password", prompt=True, hide_input=True, confirmation_prompt=True)
@click.option("--shop", "shop_name", default=None, help="Single-shop mode: the operator also runs this shop, approved.")
def create_operator(email: str, password: str, shop_name: str | None):
    """Create an operator (platform administrator) account."""
    from faka.services import accounts

    if len(password) < 10:
        raise click.BadParameter("use at least 10 characters", param_hint="--password")
    try:
        accounts.create_operator(email, password, shop_name)
    except accounts.AccountExists as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"operator {email} created" + (f", running the shop {shop_name}" if shop_name else ""))


@click.command("reconcile")
def reconcile():
    """Expire stale reservations; re-enqueue undelivered orders, unsent emails and refunds;
    ask gateways about payments in flight; move complaints past their deadline."""
    report = jobs.reconcile()
    jobs.runner().wait_idle()
    click.echo(f"expired {report['expired']} orders, re-enqueued {report['deliveries']} deliveries, "
               f"{report['emails']} emails and {report['refunds']} refunds; asked about {report['payment_checks']} "
               f"payments in flight; escalated {report['escalated']} and closed {report['closed']} complaints "
               f"past their deadline")


@click.command("retention")
def retention():
    """Hash IP addresses older than 30 days; delete old security and risk events and spent
    captcha challenges; empty old gateway notification bodies (see services/retention.py)."""
    from faka.services import retention as retention_service

    report = retention_service.run()
    click.echo(f"hashed {report.ips_hashed} IP addresses; deleted {report.security_events_deleted} security events, "
               f"{report.risk_events_deleted} risk events and {report.challenges_deleted} spent captcha challenges; "
               f"emptied {report.notify_bodies_emptied} gateway notification bodies")


@click.command("rotate-keys")
def rotate_keys():
    """Re-encrypt every stored secret with the newest encryption key."""
    from faka.services.keys import rotate_all

    count = rotate_all()
    click.echo(f"re-encrypted {count} secrets with the newest key")


@click.command("gateway-config")
@click.argument("gateway")
@click.argument("settings", nargs=-1)
@click.option("--enable/--disable", default=None, help="Turn the gateway on or off.")
def gateway_config(gateway: str, settings: tuple[str, ...], enable: bool | None):
    """Configure a payment gateway: GATEWAY key=value ... (stored encrypted)."""
    from faka.payments import GATEWAYS, configure_gateway

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
    click.echo(f"{gateway}: updated {', '.join(sorted(values)) or 'nothing'}" + ("" if enable is None else f"; enabled={enable}"))


@click.command("doctor")
@click.option("--backup-dir", envvar="FAKA_BACKUP_DIR", default=None, metavar="DIR",
              help="Where `flask backup` writes (default: FAKA_BACKUP_DIR, else <instance>/backups).")
def doctor(backup_dir: str | None):
    """Check this deployment (secrets, HTTPS, proxy, database, Redis, worker, SMTP,
    gateways, translations, disk, permissions) and say what to fix. Exits 1 when a
    check fails; warnings alone exit 0."""
    import shutil
    import textwrap

    from faka.services.doctor import FAIL, OK, WARN, run_checks

    checks = run_checks(backup_dir)
    width = min(shutil.get_terminal_size((100, 24)).columns, 100)
    marks = {OK: click.style("ok  ", fg="green"), WARN: click.style("WARN", fg="yellow"),
             FAIL: click.style("FAIL", fg="red", bold=True)}
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
