"""faka: a self-hosted shop for digital goods with automatic delivery."""

from faka.web.app import Faka


def create_app(config_overrides: dict | None = None) -> Faka:
    # Imported here, not at the top: importing one faka module (a task in the worker, a
    # migration, a test helper) must not load the whole web app and CLI.
    from faka import cli
    from faka.config import Config
    from faka.core import cache, crypto, instance, storage, tasks
    from faka.core import db as database
    from faka.extensions import csrf, db, htmx, limiter, login_manager, migrate
    from faka.web import device, i18n, register_blueprints, request_guard, security, templating
    from faka.web.shop import referral

    app = Faka(__name__, instance_path=instance.instance_path(), instance_relative_config=True)
    app.config.from_object(Config)
    app.config.update(config_overrides or {})
    instance.init_app(app)
    request_guard.init_app(app)

    db.init_app(app)
    database.init_app(app)
    migrate.init_app(app, db, directory=instance.migrations_path(), render_as_batch=True)
    crypto.init_app(app)
    storage.init_app(app)
    login_manager.init_app(app)
    csrf.init_app(app)
    htmx.init_app(app)
    limiter.init_app(app)
    i18n.init_app(app)
    templating.init_app(app)
    cache.init_app(app)
    security.init_app(app)
    device.init_app(app)
    referral.init_app(app)  # `?ref=` promoter links: the referral cookie and the click
    tasks.init_app(app)

    register_blueprints(app)
    cli.init_app(app)
    return app
