"""The current time, in one place so that services agree on it."""

from faka.core.types import utcnow

now = utcnow
