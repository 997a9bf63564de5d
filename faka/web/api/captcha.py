"""The captcha widget's challenge: a fresh signed proof-of-work puzzle as JSON."""

from flask import Blueprint, current_app, jsonify

from faka.extensions import limiter
from faka.risk import captcha

bp = Blueprint("captcha", __name__)


def _challenge_limit():
    return current_app.config["RATELIMIT_CAPTCHA"]


@bp.get("/captcha/challenge")
@limiter.limit(_challenge_limit)
def challenge():
    response = jsonify(captcha.challenge())
    response.headers["Cache-Control"] = "no-store"  # each one is good for a single solution
    return response


@bp.app_template_global()
def captcha_field() -> str:
    """The form field the widget posts its solution in (templates/_captcha.html)."""
    return captcha.FIELD
