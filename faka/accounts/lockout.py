"""Locks and delays after wrong answers.

Wrong login passwords never lock an account (anyone who knows the email could lock its
owner out): they slow down the one address they come from, for that one account, with
growing delays and then the captcha (login_delay; login.authenticate counts them). A lock is left for wrong second-factor codes and wrong re-authentication
passwords, which need the password or an open session (record_failed_login).
"""

from datetime import timedelta

from sqlalchemy import func, select

from faka.accounts.models import User
from faka.core import clock
from faka.extensions import db
from faka.platform.models import AuditEvent

# Wrong login passwords for one account from one address (or, from a browser that has
# logged in to the account before, from that browser): the first FREE_LOGIN_FAILURES
# cost nothing; then each try needs the captcha and waits LOGIN_DELAY, doubled for each
# further failure, up to MAX_LOGIN_DELAY. Failures older than LOGIN_FAILURE_MEMORY, or
# made before that browser's last login there, are forgotten.
FREE_LOGIN_FAILURES = 3
LOGIN_DELAY = timedelta(seconds=5)
MAX_LOGIN_DELAY = timedelta(hours=1)
LOGIN_FAILURE_MEMORY = timedelta(hours=24)
# Wrong second-factor codes or re-authentication passwords: the fifth in a row locks the
# account. The first lock lasts LOCKOUT; each further lock within LOCKOUT_MEMORY doubles
# it, up to MAX_LOCKOUT: a guesser who waits out the lock gets fewer tries per hour each time.
MAX_FAILED_LOGINS = 5
LOCKOUT = timedelta(minutes=15)
MAX_LOCKOUT = timedelta(hours=24)
LOCKOUT_MEMORY = timedelta(hours=24)


def is_locked(user: User, now=None) -> bool:
    return bool(user.locked_until and user.locked_until > (now or clock.now()))


def lockout_for(user: User, now) -> timedelta:
    """How long the account's next lock lasts: doubled for each lock in the last day."""
    earlier = (
        db.session.scalar(
            select(func.count())
            .select_from(AuditEvent)
            .where(
                AuditEvent.action == "login.locked",
                AuditEvent.target == f"user:{user.id}",
                AuditEvent.created_at > now - LOCKOUT_MEMORY,
            )
        )
        or 0
    )
    return min(LOCKOUT * 2 ** min(earlier, 10), MAX_LOCKOUT)


def record_failed_login(user: User, now=None) -> None:
    """Count a wrong second-factor code or re-authentication password inside the
    caller's transaction; the fifth in a row locks the account for a while, longer each
    time."""
    now = now or clock.now()
    user.failed_logins += 1
    if user.failed_logins >= MAX_FAILED_LOGINS:
        user.locked_until = now + lockout_for(user, now)
        user.failed_logins = 0
        db.session.add(AuditEvent(action="login.locked", target=f"user:{user.id}", created_at=now))


def login_delay(failures: int) -> timedelta:
    """How long the next try waits after this many recent wrong passwords."""
    if failures < FREE_LOGIN_FAILURES:
        return timedelta(0)
    return min(LOGIN_DELAY * 2 ** min(failures - FREE_LOGIN_FAILURES, 20), MAX_LOGIN_DELAY)
