"""The audit log: who did what to which record, with the fields before and after.

`record()` adds an event to the caller's transaction, so the event is written exactly
when the change it describes is; it never commits. Events are append-only: the ORM
refuses to update or delete one (see `_refuse_change`), and no code here offers to.
"""

import csv
import io
import json
from collections.abc import Iterator
from datetime import datetime

from flask import has_request_context, request
from flask_babel import lazy_gettext as _l
from sqlalchemy import event, select
from sqlalchemy.orm import Session

from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.platform.models import AuditEvent

PER_PAGE = 50
EXPORT_BATCH = 1000
CSV_COLUMNS = ("id", "created_at", "actor_id", "action", "target", "detail", "before", "after", "ip")

# What the console calls each action. The actions are named where they are recorded (the
# CSV export and the filter keep those names); one without a label here is shown split
# into words (see action_label), so add its label with it.
ACTION_LABELS = {
    "operator.created": _l("Operator account created"),
    "merchant.signed_up": _l("Merchant signed up"),
    "login.locked": _l("Login locked after failed attempts"),
    "password.reset": _l("Password reset"),
    "2fa.enabled": _l("Two-factor authentication turned on"),
    "2fa.disabled": _l("Two-factor authentication turned off"),
    "2fa.recovery_code_used": _l("Recovery code used"),
    "passkey.added": _l("Passkey added"),
    "passkey.renamed": _l("Passkey renamed"),
    "passkey.removed": _l("Passkey removed"),
    "passkey.copy_suspected": _l("Passkey refused: its signature counter went back (copied?)"),
    "merchant.approved": _l("Merchant approved"),
    "merchant.rejected": _l("Merchant rejected"),
    "merchant.info_requested": _l("More information requested from the merchant"),
    "merchant.frozen": _l("Merchant frozen"),
    "merchant.unfrozen": _l("Merchant unfrozen"),
    "merchant.terms": _l("Merchant terms changed"),
    "merchant.2fa_reset": _l("Merchant's two-factor authentication reset"),
    "merchant.password_reset_sent": _l("Password reset link sent to the merchant"),
    "category.created": _l("Category created"),
    "category.renamed": _l("Category renamed"),
    "category.reordered": _l("Category moved"),
    "category.hidden": _l("Category hidden"),
    "category.shown": _l("Category shown again"),
    "category.products_moved": _l("Category's products moved"),
    "category.deleted": _l("Category deleted"),
    "moderation.approved": _l("Product approved"),
    "moderation.rejected": _l("Product rejected"),
    "moderation.taken_down": _l("Product taken down"),
    "moderation.report_dismissed": _l("Product report dismissed"),
    "moderation.words_changed": _l("Prohibited words changed"),
    "keys.exported": _l("Unsold keys exported"),
    "order.refunded": _l("Order refunded"),
    "order.released": _l("Held order released"),
    "order.refused": _l("Held order refused"),
    "refund.pending": _l("Refund sent to the payment gateway"),
    "refund.done": _l("Refund made through the payment gateway"),
    "refund.manual": _l("Refund left to be paid back by hand"),
    "refund.paid": _l("Refund paid back by hand"),
    "payment.checked": _l("Payment checked with the provider"),
    "complaint.opened": _l("Complaint opened"),
    "complaint.merchant_replied": _l("Complaint answered by the seller"),
    "complaint.offered": _l("Seller's offer on a complaint"),
    "complaint.accepted": _l("Offer on a complaint accepted"),
    "complaint.escalated": _l("Complaint sent to the platform"),
    "complaint.decided": _l("Complaint decided"),
    "complaint.withdrawn": _l("Complaint withdrawn"),
    "complaint.keys_revealed": _l("Delivered keys viewed for a complaint"),
    "payout_account.added": _l("Payout account added"),
    "payout_account.removed": _l("Payout account removed"),
    "withdrawal.requested": _l("Withdrawal requested"),
    "withdrawal.approved": _l("Withdrawal approved"),
    "withdrawal.paid": _l("Withdrawal paid out"),
    "withdrawal.rejected": _l("Withdrawal rejected"),
    "withdrawal.account_revealed": _l("Payout account number viewed"),
    "settlement.daily": _l("Daily settlement check"),
    "review.hide": _l("Review hidden"),
    "review.unhide": _l("Review shown again"),
    "blacklist.added": _l("Added to the blacklist"),
    "blacklist.extended": _l("Blacklist entry extended"),
    "blacklist.removed": _l("Removed from the blacklist"),
    "outbox.read": _l("Queued email read"),
    "api_key.created": _l("API key created"),
    "api_key.revoked": _l("API key revoked"),
    "license.deactivated": _l("License activation removed"),
    "outbox.resend": _l("Email queued again"),
    "site.settings": _l("Site settings changed"),
    "site.smtp": _l("Email settings changed"),
    "site.logo": _l("Site logo changed"),
    "site.theme": _l("Site colour and layout changed"),
    "site.favicon": _l("Site icon changed"),
    "site.test_email": _l("Test email sent"),
    "gateway.update": _l("Payment gateway changed"),
    "gateway.tested": _l("Payment gateway tested"),
    "retention.ran": _l("Old records cleaned up"),
    # The growth programmes (faka/growth/programmes.py).
    "growth.settings": _l("Growth programme settings changed"),
    "substore.approved": _l("Sub-store approved"),
    "substore.rejected": _l("Sub-store rejected"),
    "substore.frozen": _l("Sub-store frozen"),
    "substore.unfrozen": _l("Sub-store unfrozen"),
    "substore.fee_rate": _l("Sub-store fee rate changed"),
    "substore.domain": _l("Sub-store domain approved"),
    "substore.domain_refused": _l("Sub-store domain refused"),
    "promoter.frozen": _l("Promoter frozen"),
    "promoter.unfrozen": _l("Promoter unfrozen"),
    "promoter.fee_rate": _l("Promoter fee rate changed"),
    # A merchant's resale terms and a reseller's own sub-store (faka/growth/resale.py).
    "resale.terms": _l("Resale terms changed"),
    "substore.applied": _l("Sub-store applied for"),
    "substore.changed": _l("Sub-store details changed"),
    "substore.reapplied": _l("Sub-store applied for again"),
    # Promoters and the products opted in (faka/growth/affiliates.py).
    "promoter.joined": _l("Became a promoter"),
    "affiliate.terms": _l("Affiliate commission changed"),
}


def action_label(action: str) -> str:
    """An action as people read it: its label, or else its name split into words
    ("shop.thing_done" -> "shop thing done") rather than the raw code."""
    label = ACTION_LABELS.get(action)
    return str(label) if label is not None else " ".join(action.replace(".", " ").replace("_", " ").split())


class AuditEventImmutable(RuntimeError):
    """Code tried to change or remove an audit event: a bug, never a user's doing."""


def record(
    actor_id: int | None,
    action: str,
    target: str | None,
    before: dict | None = None,
    after: dict | None = None,
    detail: str = "",
) -> AuditEvent:
    """Add an audit event to the current transaction (the caller commits)."""
    audit_event = AuditEvent(
        actor_id=actor_id,
        action=action,
        target=target,
        detail=detail or "",
        before=_encode(before),
        after=_encode(after),
        ip=_client_ip(),
    )
    db.session.add(audit_event)
    return audit_event


def _encode(fields: dict | None) -> str | None:
    if fields is None:
        return None
    return json.dumps(fields, sort_keys=True, default=str, ensure_ascii=False)


def _client_ip() -> str | None:
    # Only inside a request: the service stays usable from the CLI and from jobs.
    if not has_request_context() or not request.remote_addr:
        return None
    return request.remote_addr[:45]


def _query(
    action: str | None, actor_id: int | None, target: str | None, since: datetime | None, until: datetime | None
):
    query = select(AuditEvent)
    if action:
        query = query.where(AuditEvent.action == action)
    if actor_id is not None:
        query = query.where(AuditEvent.actor_id == actor_id)
    if target:
        query = query.where(AuditEvent.target == target)
    if since is not None:
        query = query.where(AuditEvent.created_at >= since)
    if until is not None:
        query = query.where(AuditEvent.created_at < until)
    return query


def search(
    action: str | None = None,
    actor_id: int | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
    page: int = 1,
) -> Page:
    """One page of matching events, newest first, counted.

    `since` is inclusive, `until` exclusive."""
    query = _query(action, actor_id, target, since, until)
    return paginate(query.order_by(AuditEvent.created_at.desc(), AuditEvent.id.desc()), page, PER_PAGE)


def export_csv(
    action: str | None = None,
    actor_id: int | None = None,
    target: str | None = None,
    since: datetime | None = None,
    until: datetime | None = None,
) -> Iterator[str]:
    """All matching events as CSV, oldest first, in pieces: the header at once, then
    EXPORT_BATCH events at a time read through a server-side cursor on PostgreSQL, in the
    order of ix_audit_events_created_id, so a year's log starts downloading at once and
    nothing sorts it all first. The caller keeps the request's session open while it
    sends them."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(CSV_COLUMNS)
    yield _taken(out)
    query = (
        _query(action, actor_id, target, since, until)
        .order_by(AuditEvent.created_at, AuditEvent.id)
        .execution_options(yield_per=EXPORT_BATCH)
    )
    for batch in db.session.execute(query).scalars().partitions():
        for e in batch:
            writer.writerow(
                [
                    e.id,
                    e.created_at.isoformat(),
                    e.actor_id or "",
                    e.action,
                    e.target or "",
                    _safe(e.detail),
                    _safe(e.before),
                    _safe(e.after),
                    e.ip or "",
                ]
            )
        yield _taken(out)


def _taken(out: io.StringIO) -> str:
    """What was written to `out` since the last call, emptying it."""
    text = out.getvalue()
    out.seek(0)
    out.truncate()
    return text


def _safe(value: str | None) -> str:
    """Keep a spreadsheet from running a cell as a formula."""
    value = value or ""
    return "'" + value if value[:1] in ("=", "+", "-", "@") else value


@event.listens_for(AuditEvent, "before_update")
@event.listens_for(AuditEvent, "before_delete")
def _refuse_change(_mapper, _connection, target):
    raise AuditEventImmutable(f"audit event {target.id} is append-only")


@event.listens_for(Session, "do_orm_execute")
def _refuse_bulk_change(state):
    """The same for `update(AuditEvent)` / `delete(AuditEvent)` run through the session,
    which skip the per-object events above."""
    if (
        (state.is_update or state.is_delete)
        and state.bind_mapper is not None
        and state.bind_mapper.class_ is AuditEvent
    ):
        raise AuditEventImmutable("audit events are append-only")
