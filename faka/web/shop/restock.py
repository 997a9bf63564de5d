"""Back in stock: the product page's form for a sold-out variant, and the pages the emails
link to (faka/messaging/restock.py).

The product page is cached for every visitor, so its form posts here and the answer is a
page of its own (with htmx, a region that replaces the form). The links in the emails open
a page with a button: only the button's POST confirms or cancels, so a mail scanner that
follows links changes nothing.
"""

from flask import Blueprint, abort, current_app, render_template, request
from flask_babel import lazy_gettext as _l
from flask_wtf import FlaskForm
from wtforms import EmailField, StringField
from wtforms.validators import DataRequired, Email, Length, Optional

from faka.core.errors import DomainError, NotFound
from faka.extensions import limiter
from faka.messaging import restock
from faka.web.htmx import wants_partial
from faka.web.i18n import current_language
from faka.web.limits import client_bucket

bp = Blueprint("restock", __name__)


class RestockForm(FlaskForm):
    email = EmailField(
        _l("Email"),
        filters=[lambda value: value.strip() if isinstance(value, str) else value],
        validators=[
            DataRequired(_l("Enter your email.")),
            Length(max=254, message=_l("Enter a valid email address.")),
            Email(_l("Enter a valid email address."), check_deliverability=False),
        ],
    )
    variant = StringField(validators=[Optional(), Length(max=16, message=restock.ChooseOption.message)])


def _request_limit() -> str:
    # Per address (an IPv6 /64): a buyer waits for a few options, a script for many.
    return current_app.config["RATELIMIT_RESTOCK"]


def _token_miss_limit() -> str:
    return current_app.config["RATELIMIT_TOKEN_MISSES"]


def _missed(response) -> bool:
    return response.status_code == 404


def _token_known() -> bool:
    return restock.token_known(request.view_args["token"])


# Guessing tokens shares the budget of the order pages' guesses (faka/web/limits.py): only
# answers that found nothing count, and a token that exists is never refused.
token_misses = limiter.shared_limit(
    _token_miss_limit, scope="token-miss", deduct_when=_missed, exempt_when=_token_known
)


@bp.post("/p/<slug>/restock")
@limiter.limit(_request_limit, key_func=client_bucket)
def ask(slug: str):
    """Ask to be told when a sold-out variant is back. The same answer whether or not an
    email went out (see restock.request_notice)."""
    form = RestockForm()
    if not form.validate_on_submit():
        errors = form.email.errors or form.variant.errors or [restock.InvalidEmail.message]
        return _answer(slug, errors[0], 400)
    try:
        restock.request_notice(
            slug, form.variant.data or None, form.email.data, current_language(), request.remote_addr
        )
    except NotFound:
        abort(404)
    except restock.InStock as exc:
        return _answer(slug, exc.message, 409)
    except DomainError as exc:
        return _answer(slug, exc.message, 400)
    return _answer(slug, None, 200)


def _answer(slug: str, error, status: int):
    template = "restock/_answer.html" if wants_partial() else "restock/requested.html"
    return render_template(template, slug=slug, error=error, confirm_days=restock.CONFIRM_WITHIN.days), status


@bp.get("/restock/<token>")
@token_misses
def status(token: str):
    """What a confirmation link opens: the request, and a button to confirm it."""
    return _page(token, lambda: restock.request_status(token), "confirm")


@bp.post("/restock/<token>")
@token_misses
def confirm(token: str):
    # The answer is rendered, not redirected to: telling a buyer whose variant came back
    # meanwhile gives the request a new token, and this URL's would no longer open it.
    return _page(token, lambda: restock.confirm(token), "confirm")


@bp.get("/restock/<token>/cancel")
@token_misses
def cancel_page(token: str):
    """What an unsubscribe link opens: a button that stops every email of this kind."""
    return _page(token, lambda: restock.request_status(token, to_cancel=True), "cancel")


@bp.post("/restock/<token>/cancel")
@token_misses
def cancel(token: str):
    return _page(token, lambda: restock.cancel(token), "cancel")


def _page(token: str, load, action: str):
    try:
        found = load()
    except restock.InvalidLink as exc:
        return render_template("restock/status.html", request_status=None, error=exc.message), 404
    return render_template("restock/status.html", request_status=found, token=token, action=action)
