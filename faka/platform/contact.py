"""How buyers reach the operator: QQ, WeChat, Telegram, an email address and a free-text
note, each optional, set on the console's settings page (keys CONTACT_KEYS in
faka/platform/settings.py). Every buyer page's footer, the error pages and a checkout the
risk engine refuses show them.

Sites set up before these existed have one free-text `contact` setting; it is shown
while all of the new ones are empty.
"""

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l

CONTACT_KEYS = ("contact_qq", "contact_wechat", "contact_telegram", "contact_email", "contact_note")
MAX_LENGTHS = {
    "contact_qq": 12,
    "contact_wechat": 40,
    "contact_telegram": 100,
    "contact_email": 254,
    "contact_note": 200,
}

QQ_RE = re.compile(r"^[1-9][0-9]{4,11}$")
# A WeChat ID (6 to 20 letters, digits, - and _, starting with a letter) or the phone
# number it was registered with.
WECHAT_RE = re.compile(r"^(?:[A-Za-z][-_A-Za-z0-9]{5,19}|\+?[0-9]{6,15})$")
TELEGRAM_HANDLE_RE = re.compile(r"^@?([A-Za-z][A-Za-z0-9_]{4,31})$")
# A t.me link: a user, channel or bot name, or a group's invitation (t.me/+code, t.me/joinchat/code).
TELEGRAM_LINK_RE = re.compile(
    r"^(?:https?://)?(?:t\.me|telegram\.me)/((?:\+|joinchat/)[A-Za-z0-9_-]{5,64}|[A-Za-z][A-Za-z0-9_]{4,31})/?$",
    re.IGNORECASE,
)
EMAIL_RE = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")

PROBLEMS = {
    "contact_qq": _l("A QQ number is 5 to 12 digits."),
    "contact_wechat": _l(
        "A WeChat ID is 6 to 20 letters, digits, - or _, starting with a letter (or the phone number it uses)."
    ),
    "contact_telegram": _l("Enter a Telegram username (@name, 5 to 32 letters, digits or _) or a t.me link."),
    "contact_email": _l("Enter a valid email address."),
}


def problem(key: str, value: str):
    """Why `value` is not a valid setting `key` (one of CONTACT_KEYS), or None. Empty is
    fine: every way of contact is optional."""
    if not value or key == "contact_note":
        return None
    valid = {
        "contact_qq": QQ_RE.match(value),
        "contact_wechat": WECHAT_RE.match(value),
        "contact_telegram": TELEGRAM_HANDLE_RE.match(value) or TELEGRAM_LINK_RE.match(value),
        "contact_email": EMAIL_RE.match(value) and len(value) <= MAX_LENGTHS["contact_email"],
    }[key]
    return None if valid else PROBLEMS[key]


def telegram_link(value: str) -> tuple[str, str]:
    """(the text shown, the https://t.me/ address) of a valid Telegram setting."""
    handle = TELEGRAM_HANDLE_RE.match(value)
    if handle:
        return f"@{handle.group(1)}", f"https://t.me/{handle.group(1)}"
    path = TELEGRAM_LINK_RE.match(value).group(1)
    return (
        f"@{path}" if path[0].isalpha() and not path.lower().startswith("joinchat/") else f"t.me/{path}",
        f"https://t.me/{path}",
    )


@dataclass(frozen=True)
class Channel:
    kind: str  # "qq", "wechat", "telegram", "email" or "note"
    label: object  # what it is, or None for the note
    text: str  # what the buyer reads (and copies, for QQ and WeChat)
    href: str | None = None

    @property
    def copyable(self) -> bool:
        return self.kind in ("qq", "wechat")


LABELS = {"qq": "QQ", "wechat": _l("WeChat"), "telegram": "Telegram", "email": _l("Email")}


def channels(values: dict[str, str]) -> list[Channel]:
    """The ways of contact set in the site settings `values`, in the order shown; the old
    single `contact` text while none of the new ones is set. Values saved before
    validation existed are shown as text."""
    found = []
    qq, wechat = values.get("contact_qq", ""), values.get("contact_wechat", "")
    telegram, email = values.get("contact_telegram", ""), values.get("contact_email", "")
    if qq:
        found.append(Channel("qq", LABELS["qq"], qq))
    if wechat:
        found.append(Channel("wechat", LABELS["wechat"], wechat))
    if telegram:
        text, href = telegram_link(telegram) if problem("contact_telegram", telegram) is None else (telegram, None)
        found.append(Channel("telegram", LABELS["telegram"], text, href))
    if email:
        found.append(
            Channel(
                "email", LABELS["email"], email, f"mailto:{email}" if problem("contact_email", email) is None else None
            )
        )
    note = values.get("contact_note", "") or ("" if found else values.get("contact", ""))
    if note:
        found.append(Channel("note", None, note))
    return found
