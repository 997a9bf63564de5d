"""The safety net: the database says what is owed, this makes sure it happens.

Run periodically (RQ cron or the in-process timer) and by `flask reconcile`. It expires
stale reservations, re-enqueues paid-but-undelivered orders, refunds still waiting for
their gateway call (a second payment's too), and emails, webhook deliveries and push
messages due for another attempt (see mail.RETRY_AFTER, webhooks.RETRY_AFTER and
push.RETRY_AFTER), so a stopped worker,
Redis or SMTP only delays work. It asks gateways with a query API about orders whose
payment is in flight (a notification blocked by a firewall or CDN still completes the
order): every gateway the buyer was sent to pay with, also one they switched away from,
and orders expired or cancelled within a day, whose late payment is still honoured. It
moves complaints whose deadline passed (complaints.run_deadlines), and tells the
operator's push channels about gateways gone silent. Once a day it also
starts the data-retention job (retention.run: old IP addresses hashed, old logs deleted).
"""

from dataclasses import dataclass

from sqlalchemy import select

from faka.catalog.models import Product
from faka.complaints import workflow
from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.extensions import db
from faka.inventory import keys, stock
from faka.messaging import mail, push, restock, webhooks
from faka.orders import delivery
from faka.orders.models import Order
from faka.payments import notify, refunds
from faka.payments.gateways import GATEWAY_NAMES
from faka.platform import retention


@dataclass(frozen=True)
class ReconcileReport:
    expired: int
    deliveries: int
    emails: int
    webhooks: int = 0
    refunds: int = 0
    escalated: int = 0  # complaints escalated because the merchant did not answer in time
    closed: int = 0  # complaints closed because the buyer did not answer in time
    payment_checks: int = 0  # unpaid orders whose gateway is asked whether they were paid
    retention: bool = False  # the daily data-retention job was started
    imports: int = 0  # big key imports whose job was lost, queued again
    pushes: int = 0  # push messages due for another attempt
    restock: int = 0  # variants back in stock whose waiting buyers were not told yet


def reconcile() -> ReconcileReport:
    with write_transaction():
        expired = stock.expire_stale_orders(clock.now())

    undelivered = (
        db.session.execute(
            select(Order.id).join(Product, Order.product_id == Product.id).where(*delivery.awaiting_delivery())
        )
        .scalars()
        .all()
    )
    emails = []
    if mail.smtp_configured():
        emails = mail.due_email_ids(clock.now())
    pending_webhooks = webhooks.due_delivery_ids(clock.now())
    pending_pushes = push.due_message_ids(clock.now())
    pending_refunds = refunds.pending_ids()
    in_flight = notify.payments_in_flight()
    imports = keys.waiting_import_ids(clock.now())
    restocked = restock.due_variant_ids()
    db.session.rollback()  # end the read: no transaction held while the jobs go out (sync mode runs them here)

    for order_id in undelivered:
        tasks.enqueue("orders.tasks.deliver_order", order_id, job_id=f"deliver-{order_id}")
    for email_id in emails:
        tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}")
    webhooks.enqueue_deliveries(pending_webhooks)
    push.enqueue_messages(pending_pushes)
    for refund_id in pending_refunds:
        tasks.enqueue("payments.tasks.refund_payment", refund_id, job_id=f"refund-{refund_id}")
    for order_id in in_flight:
        tasks.enqueue("payments.tasks.check_payment", order_id, job_id=f"check-payment-{order_id}")
    for import_id in imports:
        tasks.enqueue("inventory.tasks.import_keys", import_id, job_id=f"import-{import_id}")
    for variant_id in restocked:
        tasks.enqueue("messaging.tasks.restock_notices", variant_id, job_id=f"restock-{variant_id}")
    deadlines = workflow.run_deadlines()
    _push_failing_gateways()
    retention_due = retention.due(clock.now())
    if retention_due:
        tasks.enqueue("platform.tasks.run_retention", job_id=f"retention-{clock.now().date().isoformat()}")
    return ReconcileReport(
        expired=expired,
        deliveries=len(undelivered),
        emails=len(emails),
        webhooks=len(pending_webhooks),
        refunds=len(pending_refunds),
        escalated=deadlines.escalated,
        closed=deadlines.closed,
        payment_checks=len(in_flight),
        retention=retention_due,
        imports=len(imports),
        pushes=len(pending_pushes),
        restock=len(restocked),
    )


def _push_failing_gateways() -> None:
    """Tell the operator's push channels about gateways gone silent (at most once per
    gateway per silence window); asked only when a channel takes that event."""
    if push.has_subscribers(None, push.GATEWAY_FAILING):
        silent = notify.silent_gateways()
        db.session.rollback()  # end the read before the pushes' own transaction
        push.gateways_failing(silent, GATEWAY_NAMES, notify.SILENCE_WINDOW)
    else:
        db.session.rollback()
