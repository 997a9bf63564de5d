"""Payment notifications: the log of every notify and query, per order or gateway, and
asking a provider about an order now."""

from flask import abort, redirect, render_template, request, url_for
from flask_babel import lazy_gettext as _l
from flask_login import current_user
from sqlalchemy import select

from faka.core.errors import InvalidNotify
from faka.extensions import db
from faka.orders.models import Order
from faka.payments import notify
from faka.payments.gateways import GATEWAYS
from faka.payments.gateways.base import CannotQuery
from faka.payments.models import PaymentNotice
from faka.platform import audit
from faka.web.operator import NAV, bp
from faka.web.pagination import page_number

NAV.append(("operator.notify_log", _l("Payment notifications")))
PER_PAGE = 50
CHECK_RESULTS = {
    "paid": _l("The provider confirmed the payment: the order is paid."),
    "waiting": _l("The provider says the order is not paid."),
    "rejected": _l("The provider's answer did not verify; see the log."),
    "unsupported": _l("This gateway has no query API: only its notification can confirm a payment."),
    "error": _l("The provider could not be reached. Try again in a moment."),
}


@bp.get("/payments")
def notify_log():
    number = request.args.get("order", "").strip()[:32]
    gateway = request.args.get("gateway", "")
    gateway = gateway if gateway in GATEWAYS else ""
    found = notify.notify_history(number or None, gateway or None, page_number(), PER_PAGE)
    order = db.session.execute(select(Order).where(Order.number == number)).scalar_one_or_none() if number else None
    notices = (
        list(
            db.session.execute(
                select(PaymentNotice).where(PaymentNotice.order_id == order.id).order_by(PaymentNotice.id)
            ).scalars()
        )
        if order is not None
        else []
    )
    return render_template(
        "operator/payments.html",
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        query={"order": number, "gateway": gateway},
        gateways=list(GATEWAYS),
        order=order,
        notices=notices,
        can_query=order is not None and notify.can_check(order),
        result=CHECK_RESULTS.get(request.args.get("checked", "")),
        silent=notify.silent_gateways(),
    )


@bp.post("/payments/<number>/check")
def check_order_payment(number: str):
    """Ask the order's provider now (re-verifying what it says), as the reconciler would."""
    order = db.session.execute(select(Order).where(Order.number == number)).scalar_one_or_none()
    if order is None:
        abort(404)
    try:
        result = "paid" if notify.check_payment(order.id) is not None else "waiting"
    except CannotQuery:
        result = "unsupported"
    except InvalidNotify:
        result = "rejected"
    except Exception:  # the provider is down or answered nonsense; the log has the rest
        db.session.rollback()
        result = "error"
    audit.record(
        current_user.id, "payment.checked", f"order:{order.id}", detail=f"gateway={order.gateway} result={result}"
    )
    db.session.commit()
    return redirect(url_for("operator.notify_log", order=number, checked=result), 303)
