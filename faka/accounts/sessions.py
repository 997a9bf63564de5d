"""Server-side sessions: each login is a row in user_sessions; the session cookie holds
its random id, so a session can be ended from the server (logout, the sessions page, a
password reset, two-factor set-up), and ends at an absolute limit however active it is.
"""

import hashlib
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, or_, select, update

from faka.accounts.models import User, UserSession
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import NotFound
from faka.extensions import db
from faka.platform.models import AuditEvent

# A session's last_seen_at is written at most this often: a request does not cost a write.
SESSION_SEEN_EVERY = timedelta(minutes=1)


class SessionGone(NotFound):
    message = _l("That session has already ended.")


@dataclass(frozen=True)
class ActiveSession:
    id: int
    created_at: datetime
    last_seen_at: datetime
    expires_at: datetime
    ip: str | None
    device: str | None
    current: bool  # the browser asking


def _session_digest(session_id: str) -> str:
    return hashlib.sha256(session_id.encode()).hexdigest()


def _idle_limit() -> timedelta:
    return current_app.permanent_session_lifetime


def session_lifetime(user: User) -> timedelta:
    """How long a session may last however active it is: shorter for operators."""
    hours = current_app.config["SESSION_MAX_HOURS_OPERATOR" if user.is_operator else "SESSION_MAX_HOURS_MERCHANT"]
    return timedelta(hours=hours)


def _live(now: datetime):
    return (
        UserSession.revoked_at.is_(None),
        UserSession.expires_at > now,
        UserSession.last_seen_at > now - _idle_limit(),
    )


def start_session(
    user_id: int,
    ip: str | None = None,
    user_agent: str | None = None,
    now: datetime | None = None,
    logged_in_at: datetime | None = None,
    expires_at: datetime | None = None,
) -> str:
    """Add a new session of the user to the caller's transaction; returns its random id,
    for the session cookie (only its hash is stored). It ends `session_lifetime` after
    now, or at `expires_at` (a renewed session keeps its login's limit). Ended sessions
    of every account are deleted meanwhile: nothing of them is left to show or check,
    and their addresses are not kept."""
    now = now or clock.now()
    session_id = secrets.token_urlsafe(32)
    db.session.execute(
        delete(UserSession).where(
            or_(
                UserSession.revoked_at.is_not(None),
                UserSession.expires_at <= now,
                UserSession.last_seen_at <= now - _idle_limit(),
            )
        )
    )
    db.session.add(
        UserSession(
            user_id=user_id,
            token_hash=_session_digest(session_id),
            created_at=logged_in_at or now,
            last_seen_at=now,
            expires_at=expires_at or now + session_lifetime(db.session.get(User, user_id)),
            ip=(ip or "")[:45] or None,
            user_agent=(user_agent or "")[:120] or None,
        )
    )
    return session_id


def renew_session(
    user_id: int, current: str | None, ip: str | None, user_agent: str | None, now: datetime | None = None
) -> tuple[int, str]:
    """End every session of the user, the one asking (`current`, its id) included, and
    start the asking browser's again under a new id, inside the caller's transaction: a
    copy of its cookie taken before is worthless too. The renewed session keeps its
    login time and absolute limit. Returns how many other sessions ended, and the new id."""
    now = now or clock.now()
    asking = (
        db.session.execute(
            select(UserSession.created_at, UserSession.expires_at).where(
                UserSession.token_hash == _session_digest(current), UserSession.user_id == user_id, *_live(now)
            )
        ).first()
        if isinstance(current, str) and current
        else None
    )
    ended = end_all_sessions(user_id, now=now)
    session_id = start_session(user_id, ip, user_agent, now, *(asking or ()))
    return ended - (asking is not None), session_id


def session_user(user_id: int, session_id: str | None, now: datetime | None = None) -> User | None:
    """The user of a live session (not ended, not past its absolute limit, not idle too
    long) whose cookie names this user and this session id; else None. Notes the
    session as seen, at most once a minute."""
    if not isinstance(session_id, str) or not session_id:
        return None
    now = now or clock.now()
    row = db.session.execute(
        select(UserSession.id, UserSession.last_seen_at).where(
            UserSession.token_hash == _session_digest(session_id), UserSession.user_id == user_id, *_live(now)
        )
    ).first()
    if row is None:
        return None
    if now - row.last_seen_at >= SESSION_SEEN_EVERY:
        with write_transaction():
            db.session.execute(
                update(UserSession)
                .where(UserSession.id == row.id, UserSession.last_seen_at <= now - SESSION_SEEN_EVERY)
                .values(last_seen_at=now)
            )
    return db.session.get(User, user_id)


def end_session(session_id: str | None) -> None:
    """Log out: the session with this id ends, whichever copies of its cookie exist."""
    if not isinstance(session_id, str) or not session_id:
        return
    with write_transaction():
        db.session.execute(
            update(UserSession)
            .where(UserSession.token_hash == _session_digest(session_id), UserSession.revoked_at.is_(None))
            .values(revoked_at=clock.now())
        )


def end_all_sessions(user_id: int, except_current: str | None = None, now: datetime | None = None) -> int:
    """End every session of the user, but the one with id `except_current`, inside the
    caller's transaction (a password reset, two-factor set-up or reset). Returns how
    many ended."""
    where = [UserSession.user_id == user_id, UserSession.revoked_at.is_(None)]
    if except_current:
        where.append(UserSession.token_hash != _session_digest(except_current))
    return db.session.execute(update(UserSession).where(*where).values(revoked_at=now or clock.now())).rowcount


def active_sessions(user_id: int, current: str | None, now: datetime | None = None) -> list[ActiveSession]:
    """The user's live sessions, the one asking (`current`, its id) first, then the most
    recently seen."""
    now = now or clock.now()
    current_digest = _session_digest(current) if isinstance(current, str) and current else None
    rows = db.session.execute(
        select(UserSession)
        .where(UserSession.user_id == user_id, *_live(now))
        .order_by(UserSession.last_seen_at.desc(), UserSession.id.desc())
    ).scalars()
    found = [
        ActiveSession(
            row.id,
            row.created_at,
            row.last_seen_at,
            row.expires_at,
            row.ip,
            row.user_agent,
            row.token_hash == current_digest,
        )
        for row in rows
    ]
    return sorted(found, key=lambda s: not s.current)


def revoke_session(user_id: int, session_row_id: int) -> None:
    """End one of the user's own sessions from the sessions page; SessionGone for a
    session that is not theirs or has already ended."""
    now = clock.now()
    with write_transaction():
        ended = db.session.execute(
            update(UserSession)
            .where(UserSession.id == session_row_id, UserSession.user_id == user_id, *_live(now))
            .values(revoked_at=now)
        )
        if ended.rowcount != 1:
            raise SessionGone()
        db.session.add(
            AuditEvent(
                actor_id=user_id, action="session.revoked", target=f"user:{user_id}", detail=f"session:{session_row_id}"
            )
        )


def sign_out_other_sessions(
    user_id: int, current: str | None, ip: str | None, user_agent: str | None
) -> tuple[int, str]:
    """End every session of the user but the one asking, which goes on under a new id
    (renew_session); returns how many ended, and that id."""
    with write_transaction():
        ended, session_id = renew_session(user_id, current, ip, user_agent)
        db.session.add(
            AuditEvent(
                actor_id=user_id, action="session.revoked_others", target=f"user:{user_id}", detail=f"{ended} ended"
            )
        )
    return ended, session_id
