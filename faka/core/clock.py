"""The current time, in one place so that services agree on it, and times as people read
them (UTC in the database, the reader's zone on the page)."""

from datetime import datetime

from flask_babel import format_datetime

from faka.core.types import utcnow

now = utcnow


def local_time(value: datetime | None) -> str:
    return format_datetime(value, "yyyy-MM-dd HH:mm") if value else ""
