"""Access decorators for the back office."""
from functools import wraps

from flask import abort, redirect, request, url_for
from flask_login import current_user

from faka.services import twofactor


def back_office(allowed):
    """Only logged-in users for whom `allowed(user)` holds. Anonymous HTMX/JSON requests
    get 403, anonymous pages a redirect to the login with `next=`; operators without a
    second factor are sent to set one up before anything else."""
    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                if request.headers.get("HX-Request") or request.accept_mimetypes.best == "application/json":
                    abort(403)
                return redirect(url_for("auth.login", next=request.full_path.rstrip("?")), 303)
            if not allowed(current_user):
                abort(403)
            if twofactor.needs_setup(current_user):
                return redirect(url_for("auth.two_factor_setup"), 303)
            return view(*args, **kwargs)

        return wrapped

    return decorator


operator_required = back_office(lambda user: user.is_operator)
# A shop owner: a merchant, or an operator running their own shop (single-shop mode); the
# merchant blueprint then loads the shop and refuses users without one.
merchant_required = back_office(lambda user: user.is_merchant or user.is_operator)
