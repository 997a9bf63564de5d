"""The page a list's URL asks for (`?page=`); the services page with
faka/core/pagination.py."""

from flask import request
from flask_babel import lazy_gettext as _l

from faka.web.request_guard import BadInput

NO_SUCH_PAGE = _l("There is no such page number.")
MAX_PAGE = 1_000_000


def page_number() -> int:
    """The `?page=` of a list: 1 when absent or empty, else a whole number from 1 to
    MAX_PAGE, or the request is refused (a page past the last one is simply empty)."""
    raw = request.args.get("page", "").strip()
    if not raw:
        return 1
    if not (raw.isascii() and raw.isdigit() and len(raw) <= len(str(MAX_PAGE))) or not 1 <= int(raw) <= MAX_PAGE:
        raise BadInput(NO_SUCH_PAGE)
    return int(raw)


def page_arg() -> int | None:
    """The `page` for a link back to this list: None on the first page, which the URL
    leaves out."""
    page = page_number()
    return page if page > 1 else None
