"""Cursor pagination of list answers: `?cursor=&limit=` in, `{"items": [...],
"next_cursor": "..."}` out, `next_cursor` null on the last page.

Lists run in the order of their objects' ids (oldest first), so a page never shifts when
objects are added meanwhile. The cursor is opaque to programs (today, the last id of the
page, encoded); an unreadable one answers 400 `invalid_cursor`.
"""

import base64
import binascii
from collections.abc import Callable, Sequence

from flask_babel import lazy_gettext as _l
from sqlalchemy import Select

from faka.extensions import db
from faka.web.api.v1.errors import ApiError
from faka.web.request_guard import MAX_ID

INVALID_CURSOR = _l("This cursor is not one of ours: pass `next_cursor` from the previous page as it came.")


def encode_cursor(last_id: int) -> str:
    return base64.urlsafe_b64encode(f"id:{last_id}".encode()).decode().rstrip("=")


def decode_cursor(cursor: str | None) -> int:
    """The id after which the page starts (0: from the first)."""
    if cursor is None:
        return 0
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode("ascii")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        text = ""
    label, _sep, number = text.partition(":")
    if label != "id" or not number.isdigit() or not 0 < int(number) <= MAX_ID or len(number) > 19:
        raise ApiError(400, "invalid_cursor", INVALID_CURSOR, {"cursor": [str(INVALID_CURSOR)]})
    return int(number)


def page_of_rows(rows: Sequence, cursor: str | None, limit: int, key: Callable = lambda row: row.id) -> dict:
    """A page of objects already loaded (a merchant's products: few), in `key` order."""
    after = decode_cursor(cursor)
    ordered = sorted((row for row in rows if key(row) > after), key=key)
    return _page(ordered[: limit + 1], limit, key)


def page_of_query(statement: Select, id_column, cursor: str | None, limit: int) -> dict:
    """A page of what `statement` selects (one entity, already scoped to the merchant),
    by `id_column`: one query, limit + 1 rows."""
    after = decode_cursor(cursor)
    rows = list(
        db.session.execute(
            statement.where(id_column > after).order_by(None).order_by(id_column).limit(limit + 1)
        ).scalars()
    )
    key = getattr(id_column, "key", "id")
    return _page(rows, limit, lambda row: getattr(row, key))


def _page(rows: list, limit: int, key: Callable) -> dict:
    more = len(rows) > limit
    items = rows[:limit]
    return {"items": items, "next_cursor": encode_cursor(key(items[-1])) if more and items else None}
