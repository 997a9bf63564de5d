"""Access decorators for the back office."""

import time
from functools import wraps

from flask import abort, redirect, request, session, url_for
from flask_login import current_user

from faka.accounts import twofactor
from faka.web.htmx import from_htmx


def back_office(allowed):
    """Only logged-in users for whom `allowed(user)` holds. Anonymous HTMX/JSON requests
    get 403, anonymous pages a redirect to the login with `next=`; operators without a
    second factor are sent to set one up before anything else."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if not current_user.is_authenticated:
                if from_htmx() or request.accept_mimetypes.best == "application/json":
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


# When the logged-in user last confirmed their password (and second factor) at /reauth.
REAUTH_AT = "reauth_at"


def recently_reauthenticated(max_age: int) -> bool:
    confirmed = session.get(REAUTH_AT)
    return isinstance(confirmed, (int, float)) and 0 <= time.time() - confirmed <= max_age


def fresh_login_required(max_age: int = 300, back_to=None):
    """For views that show secrets (buyers' keys, stock keys): the user must have
    re-entered their password (and second-factor code) within `max_age` seconds, or is
    sent to /reauth first. `back_to(**view_args)` names the page to return to, for POST
    views (the user then repeats the action); GET views return to themselves. HTMX
    requests get HX-Redirect, so the whole page goes to the re-authentication form."""

    def decorator(view):
        @wraps(view)
        def wrapped(*args, **kwargs):
            if recently_reauthenticated(max_age):
                return view(*args, **kwargs)
            if back_to is not None:
                next_url = back_to(**kwargs)
            else:
                next_url = request.full_path.rstrip("?") if request.method == "GET" else None
            target = url_for("auth.reauth", next=next_url)
            if from_htmx():
                return "", 200, {"HX-Redirect": target}
            return redirect(target, 303)

        return wrapped

    return decorator
