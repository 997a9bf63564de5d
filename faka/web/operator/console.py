"""Platform dashboard and operations views."""

from flask import abort, current_app, make_response, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from faka.catalog.models import Product
from faka.core import clock
from faka.core.errors import NotFound
from faka.extensions import db
from faka.growth import programmes
from faka.messaging import mail
from faka.messaging.mail import smtp_configured
from faka.messaging.models import OutboxEmail
from faka.ops import first_run
from faka.ops.health import health
from faka.orders import delivery
from faka.orders.models import Order
from faka.payments.notify import silent_gateways
from faka.platform.stats import platform_stats
from faka.web.access import fresh_login_required
from faka.web.charts import daily_sales_chart
from faka.web.operator import NAV, bp

LIST_LIMIT = 100


@bp.get("/")
def dashboard():
    setup = first_run.platform_setup(current_user.id, current_app.config["BACKUP_DIR"])
    stats = platform_stats()
    return render_template(
        "operator/dashboard.html",
        setup=setup,
        stats=stats,
        chart=daily_sales_chart(stats.daily, current_app.config["CURRENCY"]),
        console_endpoints=set(current_app.view_functions),
        silent=silent_gateways(),
        growth=programmes.programme_figures(),
    )


def _flatten(report: dict, prefix: str = "") -> list[tuple[str, object]]:
    rows = []
    for key, value in report.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            rows.extend(_flatten(value, f"{name}."))
        else:
            rows.append((name, value))
    return rows


def _paid_undelivered(now):
    orders = (
        db.session.execute(
            select(Order)
            .join(Product, Order.product_id == Product.id)
            .where(*delivery.awaiting_delivery())
            .order_by(Order.paid_at)
            .limit(LIST_LIMIT)
        )
        .scalars()
        .all()
    )
    return [(order, int((now - order.paid_at).total_seconds() // 60) if order.paid_at else None) for order in orders]


@bp.get("/operations")
def operations():
    now = clock.now()
    healthy, report = health()
    unsent = (
        db.session.execute(
            select(OutboxEmail)
            .where(OutboxEmail.status.in_((OutboxEmail.QUEUED, OutboxEmail.FAILED)))
            .order_by(OutboxEmail.id.desc())
            .limit(LIST_LIMIT)
        )
        .scalars()
        .all()
    )
    unfulfilled = (
        db.session.execute(
            select(Order).where(Order.status == Order.PAID_UNFULFILLED).order_by(Order.paid_at).limit(LIST_LIMIT)
        )
        .scalars()
        .all()
    )
    return render_template(
        "operator/operations.html",
        healthy=healthy,
        health_rows=_flatten(report),
        emails=unsent,
        undelivered=_paid_undelivered(now),
        unfulfilled=unfulfilled,
        smtp_configured=smtp_configured(),
    )


@bp.get("/outbox")
def outbox():
    emails = db.session.execute(select(OutboxEmail).order_by(OutboxEmail.id.desc()).limit(LIST_LIMIT)).scalars().all()
    return render_template("operator/outbox.html", emails=emails, smtp_configured=smtp_configured())


@bp.post("/outbox/<int:email_id>/resend")
def outbox_resend(email_id: int):
    """Put a failed (or stuck) email back in the queue and send it again."""
    try:
        mail.resend(email_id, current_user.id)
    except NotFound:
        abort(404)
    except mail.AlreadySent:
        abort(409)
    back = "operator.outbox" if request.form.get("back") == "outbox" else "operator.operations"
    return redirect(url_for(back), 303)


@bp.get("/outbox/<int:email_id>")
@fresh_login_required()
def outbox_read(email_id: int):
    """A queued (or sent) email as its recipient reads it, for passing a link on by hand
    while SMTP is not set up; a delivery's goods stay hidden (faka/messaging/mail.py, read_email)."""
    try:
        email = mail.read_email(email_id, current_user.id)
    except NotFound:
        abort(404)
    response = make_response(
        render_template("operator/outbox_email.html", email=email, smtp_configured=smtp_configured())
    )
    response.headers["Cache-Control"] = "private, no-store"  # may hold a sign-in link
    return response


NAV.append(("operator.dashboard", _l("Dashboard")))
NAV.append(("operator.operations", _l("Operations")))
