"""Access decorators for the back office."""
from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user


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
            return view(*args, **kwargs)

        return wrapped

    return decorator


operator_required = role_required("operator")
merchant_required = role_required("merchant")
