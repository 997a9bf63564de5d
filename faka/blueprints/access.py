"""Access decorators for the back office."""
from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user

from faka.services import twofactor


def role_required(role: str):
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                if request.headers.get("HX-Request") or request.accept_mimetypes.best == "application/json":
                    abort(403)
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")), 303)
            if current_user.role != role:
                abort(403)
            if twofactor.needs_setup(current_user):
                # Operators work only with a second factor: set it up before anything else.
                return redirect(url_for("auth.two_factor_setup"), 303)
            return view(*args, **kwargs)

        return wrapped

    return decorator


operator_required = role_required("operator")
merchant_required = role_required("merchant")
