"""What people type, made safe to store and show as plain text."""

import html
import re
import unicodedata
from functools import cache
from typing import TYPE_CHECKING, TypeGuard

import nh3
from markupsafe import Markup

if TYPE_CHECKING:  # imported where used: most requests render no Markdown
    from markdown_it import MarkdownIt  # on first use (see TYPE_CHECKING above)

_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u200b-\u200f\u202a-\u202e\u2066-\u2069\ufeff]")
_SPACES = re.compile(r"[ \t\f\v\u00a0\u3000]+")
_BLANK_LINES = re.compile(r"\n{3,}")


def is_text(value: object) -> TypeGuard[str]:
    """Whether `value` is a string with something in it: what a field of a provider's JSON
    answer must be where it names something (an order number, a trade number, an id).
    A TypeGuard, not a TypeIs: a value that fails may still be a (empty) string."""
    return isinstance(value, str) and value != ""


def clean_text(text: str | None) -> str:
    """Plain text from what a buyer or merchant typed: HTML dropped, control and
    direction-override characters removed, runs of spaces and blank lines collapsed."""
    text = html.unescape(nh3.clean(text or "", tags=set()))
    text = unicodedata.normalize("NFC", text.replace("\r\n", "\n").replace("\r", "\n"))
    text = _CONTROL.sub("", text)
    lines = [_SPACES.sub(" ", line).strip() for line in text.split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip()


def mask_email(email: str | None) -> str:
    """A buyer's email as the merchant's lists show it: ab***@qq.com (one character
    before the stars when the name is that short). Enough to tell orders apart, not
    enough to collect addresses; the order's own page shows it in full."""
    if not email:
        return ""
    local, at, domain = email.rpartition("@")
    if not at:
        local, domain = email, ""
    shown = local[:1] if len(local) <= 2 else local[:2]
    return f"{shown}***{at}{domain}"


@cache
def _markdown() -> "MarkdownIt":
    from markdown_it import MarkdownIt

    return MarkdownIt("commonmark", {"html": False, "linkify": False}).enable("table")


def markdown(text: str | None) -> Markup:
    """Merchant-written Markdown to safe HTML: raw HTML is not rendered, and the result is
    sanitised again (links get rel=noopener, scripts and handlers are stripped)."""
    html = _markdown().render(text or "")
    return Markup(nh3.clean(html, link_rel="noopener noreferrer nofollow"))
