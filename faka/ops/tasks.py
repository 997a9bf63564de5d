"""The periodic reconciler, run by name ("ops.tasks.reconcile") by faka-worker's
scheduler or, without Redis, by a timer thread of the web process."""

from faka.ops import reconcile as reconciler


def reconcile() -> dict:
    report = reconciler.reconcile()
    return {
        "expired": report.expired,
        "deliveries": report.deliveries,
        "emails": report.emails,
        "refunds": report.refunds,
        "escalated": report.escalated,
        "closed": report.closed,
        "payment_checks": report.payment_checks,
        "retention": report.retention,
    }
