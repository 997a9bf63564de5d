"""Extension objects, bound to the app in create_app()."""

from flask_babel import Babel
from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_login import LoginManager
from flask_migrate import Migrate
from flask_sqlalchemy import SQLAlchemy
from flask_wtf import CSRFProtect
from htmx_flask import Htmx
from sqlalchemy import MetaData
from sqlalchemy.orm import DeclarativeBase


class Base(DeclarativeBase):
    # Named constraints keep Alembic migrations identical on SQLite and PostgreSQL.
    metadata = MetaData(
        naming_convention={
            "ix": "ix_%(column_0_label)s",
            "uq": "uq_%(table_name)s_%(column_0_N_name)s",
            "ck": "ck_%(table_name)s_%(constraint_name)s",
            "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
            "pk": "pk_%(table_name)s",
        }
    )


class RouteLimiter(Limiter):
    """Flask-Limiter for an app that limits routes only.

    Route limits (`@limiter.limit`) are checked by their decorators. The extension's extra
    pass before every request only serves default, application and blueprint limits; faka
    sets none, so the pass is skipped while there are none (it cost each request about a
    third of the framework's own overhead, including the polled status endpoint).
    """

    def _check_request_limit(self, callable_name=None, in_middleware=True):
        manager = self.limit_manager
        if in_middleware and not (manager.default_limits or manager.application_limits or manager._blueprint_limits):
            return
        super()._check_request_limit(callable_name=callable_name, in_middleware=in_middleware)


db = SQLAlchemy(model_class=Base)
migrate = Migrate()
login_manager = LoginManager()
csrf = CSRFProtect()
babel = Babel()
limiter = RouteLimiter(key_func=get_remote_address)
htmx = Htmx()
