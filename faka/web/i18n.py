"""Language choice: zh_CN by default, English on request (?lang=en, remembered in the session).

The app speaks of languages by the codes in LANGUAGES ("zh_CN", "en"). Babel parses
"zh_CN" as the CLDR locale zh_Hans_CN, which is why the Chinese catalogue lives in
faka/translations/zh_Hans_CN.
"""

from functools import cache

from babel import Locale
from flask import current_app, g, has_request_context, request, session

from faka.extensions import babel
from faka.platform.settings import cached_site_settings


def current_language() -> str:
    """The language code chosen for this request (the default outside a request)."""
    if not has_request_context():
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if "language" not in g:
        languages = current_app.config["LANGUAGES"]
        chosen = request.args.get("lang")
        if chosen in languages:
            session["lang"] = chosen
        elif session.get("lang") in languages:
            chosen = session["lang"]
        else:
            chosen = _site_default(languages)
        g.language = chosen
    return g.language


@cache
def _parsed(language: str) -> Locale:
    return Locale.parse(language)


def _select_locale() -> Locale:
    # A parsed Locale, so Flask-Babel does not parse the code again on every request.
    return _parsed(current_language())


def _site_default(languages: list[str]) -> str:

    chosen = cached_site_settings().get("default_language")
    return chosen if chosen in languages else current_app.config["BABEL_DEFAULT_LOCALE"]


def init_app(app) -> None:
    babel.init_app(app, locale_selector=_select_locale)
