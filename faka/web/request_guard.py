"""The edge of every request: what reaches a view from the URL, the query string and the
form is text a person could have typed, and numbers that fit the database.

- A query string or form body that is not UTF-8 is refused with a 400 page that says so
  (urlencoded bodies and query strings are checked byte by byte; in a multipart form the
  parser marks such bytes with U+FFFD, which no browser sends for text typed in UTF-8).
- Control characters (C0, DEL, C1) are removed from every query-string and form value.
  Line breaks and tabs are text only in the multi-line fields, MULTILINE_FIELDS (the
  textareas: descriptions, keys, messages, reasons, policies, PEM keys); in every other
  field, as browsers do for a one-line input, CR, LF and the Unicode line and paragraph
  separators are removed and a tab becomes a space. So a title, a name or an email can
  never carry a line break into an email header or a log line.
- A path with a control character names nothing (404), nor does an `<int:>` path
  parameter above the largest id a database holds.
- Payment notifications (pay.notify) keep their values exactly as sent: their signature
  covers every byte, and the gateway's own check refuses what does not verify. Only one
  holding a NUL is refused (400): no provider sends one, and PostgreSQL cannot log it.

An upload route reads its body late, once it knows the request may upload
(faka/web/uploads.py), and calls guard_form() then.

BadInput is the 400 these checks (and faka/web/pagination.py's page_number(), which every
list's `?page=` goes through) raise: its error page shows its message.
"""

import re
from urllib.parse import parse_qsl

from flask import current_app, request
from flask_babel import lazy_gettext as _l
from werkzeug.datastructures import ImmutableMultiDict
from werkzeug.exceptions import BadRequest, NotFound
from werkzeug.routing import IntegerConverter, ValidationError

NOT_UTF8 = _l(
    "The request contains text that is not valid UTF-8. Go back, check what you typed or pasted, and try again."
)
NOT_TEXT = _l("The request contains a character that is not text.")

# The names of the fields whose value may span lines: every textarea of every page
# (tests/slow/test_fuzz_routes.py fails on a textarea missing here).
MULTILINE_FIELDS = frozenset(
    {
        # the forms' TextAreaFields: descriptions, keys, delivered content, messages, reasons, replies
        "body",
        "choices",
        "content",
        "description",
        "description_md",
        "fixed_content",
        "keys",
        "note",
        "reason",
        "refund_policy",
        "text",
        "words",
        # the console's site settings: the announcement and the Markdown policies
        "announcement",
        "privacy_policy",
        "terms",
        # the gateways' keys (PEM keys and certificates are several lines)
        "alipay_public_key",
        "apiv3_key",
        "app_private_key",
        "merchant_private_key",
        "platform_public_key",
        "secret_key",
    }
)
# Endpoints whose input is passed on exactly as it came.
EXACT_ENDPOINTS = frozenset({"pay.notify"})

_CONTROL = "\x00-\x08\x0b\x0c\x0e-\x1f\x7f-\x9f"
_LINE = "\t\n\r\u2028\u2029"
_MULTILINE_JUNK = re.compile(f"[{_CONTROL}]")
_ONE_LINE_JUNK = re.compile(f"[{_CONTROL}{_LINE}]")
_ONE_LINE = {ord(c): None for c in "\n\r\u2028\u2029"} | {ord("\t"): " "}
_PATH_JUNK = re.compile(f"[{_CONTROL}\t\n\r]")
_FORM_TYPES = ("application/x-www-form-urlencoded", "multipart/form-data")

# The largest id a row can have: ids are INTEGER columns, which PostgreSQL keeps in 32
# signed bits (it refuses a larger value in a query, where SQLite finds no row). A larger
# path parameter names no row.
MAX_ID = 2**31 - 1


class BadInput(BadRequest):
    """A 400 whose error page shows `message`, written for the person who sent it."""

    def __init__(self, message):
        super().__init__()
        self.message = message


def _one_line(value: str) -> str:
    return _MULTILINE_JUNK.sub("", value).translate(_ONE_LINE)


def _multiline(value: str) -> str:
    return _MULTILINE_JUNK.sub("", value)


def _cleaned(values: ImmutableMultiDict, multiline: frozenset) -> ImmutableMultiDict:
    """The values with control characters removed (line breaks kept in `multiline` names);
    the same object when nothing needed it, as for nearly every request."""

    def junk(name, value):
        return isinstance(value, str) and (_MULTILINE_JUNK if name in multiline else _ONE_LINE_JUNK).search(value)

    items = list(values.items(multi=True))
    if not any(junk(name, value) for name, value in items):
        return values
    return type(values)(
        (name, (_multiline if name in multiline else _one_line)(value) if isinstance(value, str) else value)
        for name, value in items
    )


def _is_utf8(encoded: bytes) -> bool:
    """Whether a query string or urlencoded body is UTF-8, percent-escapes included."""
    try:
        parse_qsl(encoded.decode("utf-8"), keep_blank_values=True, errors="strict")
    except UnicodeDecodeError:
        return False
    return True


def _refuse(message) -> None:
    # The error page reads the query string (its language): give it one that parses.
    request.args = request.form = ImmutableMultiDict()
    raise BadInput(message)


def guard_request() -> None:
    if _PATH_JUNK.search(request.path):
        raise NotFound()
    if request.query_string and not _is_utf8(request.query_string):
        _refuse(NOT_UTF8)
    if request.endpoint not in EXACT_ENDPOINTS:
        request.args = _cleaned(request.args, frozenset())
    # An upload route reads its body only once it has decided the request may upload at
    # all, and bounded it (faka/web/uploads.py); it calls guard_form() then.
    if not getattr(current_app.view_functions.get(request.endpoint), "reads_form_late", False):
        guard_form()


def guard_form() -> None:
    """The checks of the request's body: UTF-8, then control characters."""
    if request.method in ("GET", "HEAD") or request.mimetype not in _FORM_TYPES:
        form_body = False
    elif request.mimetype == "multipart/form-data":
        form_body = True
        if any("\ufffd" in value for value in request.form.values()):
            _refuse(NOT_UTF8)
    else:
        form_body = True
        if not _is_utf8(request.get_data(cache=True)):
            _refuse(NOT_UTF8)
    if request.endpoint in EXACT_ENDPOINTS:
        # As sent, but never with a NUL: no provider sends one, and the notify log
        # (PostgreSQL text) could not record it.
        if b"\x00" in request.get_data(cache=True) or any(
            "\x00" in value for values in (request.args, request.form) for value in values.values()
        ):
            raise BadInput(NOT_TEXT)
    elif form_body:
        request.form = _cleaned(request.form, MULTILINE_FIELDS)


class DatabaseIdConverter(IntegerConverter):
    """`<int:...>`: a whole number that can be a database id, else the URL names nothing."""

    def __init__(self, map, fixed_digits=0, min=None, max=MAX_ID, signed=False):  # noqa: A002 - werkzeug's names
        super().__init__(map, fixed_digits=fixed_digits, min=min, max=max, signed=signed)

    def to_python(self, value: str) -> int:
        if len(value) > len(str(MAX_ID)) or not value.isascii():
            raise ValidationError()
        return super().to_python(value)


def init_app(app) -> None:
    """Before every other hook (rate limits and CSRF checks read the request too)."""
    app.url_map.converters["int"] = DatabaseIdConverter
    app.before_request(guard_request)
