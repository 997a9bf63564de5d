"""The state /healthz reports."""

from sqlalchemy import func, select, text

from faka.catalog.models import Product
from faka.core import clock, tasks
from faka.extensions import db
from faka.orders.delivery import awaiting_delivery
from faka.orders.models import Order
from faka.payments import holds
from faka.payments.notify import silent_gateways


def host_health() -> tuple[bool, dict]:
    """Whether this web host can serve buyers: its database answers. What a load balancer
    asks: Redis and the worker are shared by every host, so taking a host out of rotation
    for them would only take every host out (/healthz reports them)."""
    try:
        db.session.execute(text("SELECT 1"))
        healthy, database = True, {"ok": True}
    except Exception as exc:  # noqa: BLE001 - any database failure means this host cannot serve
        healthy, database = False, {"ok": False, "error": type(exc).__name__}
    finally:
        db.session.rollback()
    return healthy, {"status": "ok" if healthy else "unhealthy", "database": database}


def health() -> tuple[bool, dict]:
    report: dict = {}
    healthy = True
    try:
        db.session.execute(text("SELECT 1"))
        oldest = db.session.execute(
            select(func.min(Order.paid_at)).join(Product, Order.product_id == Product.id).where(*awaiting_delivery())
        ).scalar()
        report["database"] = {"ok": True}
        report["oldest_paid_undelivered_seconds"] = (
            round((clock.now() - oldest).total_seconds(), 1) if oldest is not None else None
        )
        # Paid orders the risk engine held wait for an operator, not for the worker.
        report["held_orders"] = holds.held_count()
        # A warning, not a failure: the site still works, but payments may go unnoticed.
        report["silent_gateways"] = [
            {
                "gateway": s.gateway,
                "payments_started": s.payments_started,
                "last_notify_at": s.last_notify_at.isoformat() if s.last_notify_at else None,
            }
            for s in silent_gateways()
        ]
    except Exception as exc:  # noqa: BLE001 - any database failure is "unhealthy"
        db.session.rollback()
        healthy = False
        report["database"] = {"ok": False, "error": type(exc).__name__}
    finally:
        db.session.rollback()

    runner = tasks.runner()
    if runner.mode == tasks.MODE_RQ:
        try:
            runner.redis.ping()
            report["redis"] = {"ok": True}
            report["worker"] = runner.status()
            healthy = healthy and report["worker"]["alive"]
        except Exception as exc:  # noqa: BLE001 - any Redis failure is "unhealthy"
            healthy = False
            report["redis"] = {"ok": False, "error": type(exc).__name__}
            report["worker"] = {"mode": runner.mode, "alive": False}
    else:
        report["redis"] = {"ok": None, "configured": False}
        report["worker"] = runner.status()
    report["status"] = "ok" if healthy else "unhealthy"
    return healthy, report
