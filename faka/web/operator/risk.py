"""Risk control: the live monitor of the risk engine's events with held orders to decide,
the blacklist, and the security events log."""

from flask import abort, flash, redirect, render_template, request, url_for
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from flask_babel import ngettext
from flask_login import current_user
from flask_wtf import FlaskForm
from wtforms import SelectField, StringField, TextAreaField
from wtforms.validators import NumberRange, Optional

from faka.catalog.models import DELIVERY_MANUAL
from faka.core import clock
from faka.core.errors import DomainError, NotFound
from faka.core.money import format_money
from faka.payments import holds
from faka.risk import blacklist, engine, monitor, security_events
from faka.risk.models import BlacklistEntry, SecurityEvent
from faka.web.charts import bar_chart_svg
from faka.web.fields import IntegerField
from faka.web.htmx import wants_partial
from faka.web.operator import NAV, bp
from faka.web.pagination import page_arg, page_number

# How long a one-click entry lasts (days; 0: until removed).
EXPIRY_CHOICES = [("1", _l("for 1 day")), ("30", _l("for 30 days")), ("0", _l("permanently"))]
DEFAULT_EXPIRY = "30"
CHART_CAPTIONS = {
    monitor.HOUR: _l("Hits per 5 minutes"),
    monitor.DAY: _l("Hits per hour"),
    monitor.WEEK: _l("Hits per day"),
}
SECURITY_PER_PAGE = 50


class ExpiryForm(FlaskForm):
    days = SelectField(_l("Blacklist"), choices=EXPIRY_CHOICES, default=DEFAULT_EXPIRY)


class QuickBlacklistForm(ExpiryForm):
    """One click on an event: blacklist what it recorded (the button says which)."""

    kind = SelectField(choices=[(kind, kind) for kind in monitor.EVENT_VALUES])


class RefuseForm(FlaskForm):
    reason = TextAreaField(
        _l("Why it is refused"), description=_l("Recorded in the audit log. The buyer is refunded in full.")
    )


class BlacklistForm(FlaskForm):
    kind = SelectField(_l("What"), choices=list(blacklist.KIND_LABELS.items()))
    value = StringField(
        _p("blacklist", "Value"),
        description=_l(
            "buyer@example.com, example.com (and its subdomains), 203.0.113.7 or 203.0.113.0/24, "
            "or a device id from the risk monitor"
        ),
    )
    reason = StringField(_l("Reason"), description=_l("Required; up to 500 characters."))
    days = IntegerField(
        _l("Expires after (days)"),
        description=_l("Leave empty to keep the entry until it is removed."),
        validators=[Optional(), NumberRange(1, 3650, message=_l("A whole number of days from 1 to 3650."))],
    )


def _days(value: str) -> int | None:
    return int(value) or None


def _flash_added(entry: BlacklistEntry, days: int | None) -> None:
    if days:
        flash(
            ngettext(
                "%(value)s is on the blacklist for %(num)s day.",
                "%(value)s is on the blacklist for %(num)s days.",
                days,
                value=entry.value,
            ),
            "info",
        )
    else:
        flash(_("%(value)s is on the blacklist until you remove it.", value=entry.value), "info")


# -- the live monitor -----------------------------------------------------------------------


def _rule_charts(series: list[monitor.RuleSeries], window: monitor.Window) -> list:
    caption = CHART_CAPTIONS[window.since]
    return [
        (
            s,
            bar_chart_svg(
                list(zip(window.labels, s.counts)), width=360, height=150, money=False, label=f"{s.label}: {caption}"
            ),
        )
        for s in series
    ]


def _monitor(status: int = 200, **extra):
    filters = monitor.Filters.parse(request.args)
    found = monitor.events(filters, page_number())
    context = dict(
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        filters=filters,
        rule_labels=engine.RULE_LABELS,
        action_labels=monitor.ACTION_LABELS,
        checkpoint_labels=monitor.CHECKPOINT_LABELS,
        since_labels=monitor.SINCE_LABELS,
        quick_form=QuickBlacklistForm(formdata=None),
    )
    if wants_partial():
        return render_template("operator/_risk_events.html", **context), status
    window = monitor.window(filters.since)
    series = monitor.hits_by_rule(window)
    extra.setdefault("refuse_form", RefuseForm(formdata=None))
    return render_template(
        "operator/risk.html",
        held=holds.held_orders(),
        series=series,
        charts=_rule_charts(series, window),
        chart_caption=CHART_CAPTIONS[filters.since],
        **context,
        **extra,
    ), status


def _back_to_monitor():
    return redirect(
        url_for("operator.risk_monitor", **monitor.Filters.parse(request.args).as_args(), page=page_arg()), 303
    )


@bp.get("/risk")
def risk_monitor():
    return _monitor()


@bp.post("/risk/events/<int:event_id>/blacklist")
def risk_event_blacklist(event_id: int):
    form = QuickBlacklistForm()
    if not form.validate():
        return _monitor(400, error=_("Choose what to blacklist and for how long."))
    days = _days(form.days.data)
    try:
        entry = monitor.blacklist_from_event(
            event_id, form.kind.data, _("Risk event #%(id)s", id=event_id), days, current_user.id
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _monitor(400, error=exc.message)
    _flash_added(entry, days)
    return _back_to_monitor()


@bp.post("/risk/held/<int:order_id>/release")
def held_release(order_id: int):
    try:
        order = holds.release(order_id, current_user.id)
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _monitor(409, error=exc.message)
    if order.product.delivery_type == DELIVERY_MANUAL:
        flash(_("Order %(number)s released: its seller delivers it now.", number=order.number), "info")
    else:
        flash(_("Order %(number)s released: its goods are on their way to the buyer.", number=order.number), "info")
    return _back_to_monitor()


@bp.post("/risk/held/<int:order_id>/refuse")
def held_refuse(order_id: int):
    form = RefuseForm()
    try:
        order = holds.refuse(order_id, current_user.id, form.reason.data)
    except NotFound:
        abort(404)
    except holds.RefusalReasonRequired as exc:
        return _monitor(400, refuse_form=form, refuse_error=exc.message, refuse_order_id=order_id)
    except DomainError as exc:
        return _monitor(409, error=exc.message)
    flash(
        _(
            "Order %(number)s refused: %(amount)s goes back to the buyer and its keys are on sale again.",
            number=order.number,
            amount=format_money(order.total, order.currency),
        ),
        "info",
    )
    return _back_to_monitor()


# -- the blacklist -------------------------------------------------------------------------


def _blacklist_page(form: BlacklistForm, status: int = 200, error=None):
    kind = request.args.get("kind", "")
    kind = kind if kind in BlacklistEntry.KINDS else ""
    found = blacklist.entries_page(kind=kind or None, page=page_number())
    return render_template(
        "operator/blacklist.html",
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        kind=kind,
        kind_labels=blacklist.KIND_LABELS,
        form=form,
        error=error,
        now=clock.now(),
    ), status


@bp.get("/blacklist")
def blacklist_list():
    return _blacklist_page(BlacklistForm(formdata=None))


@bp.post("/blacklist")
def blacklist_add():
    form = BlacklistForm()
    if not form.validate():
        return _blacklist_page(form, 400)
    try:
        entry = blacklist.add(
            form.kind.data,
            form.value.data,
            form.reason.data,
            actor_id=current_user.id,
            expires_at=blacklist.expiry(form.days.data),
        )
    except DomainError as exc:
        return _blacklist_page(form, 400, error=exc.message)
    _flash_added(entry, form.days.data)
    return redirect(url_for("operator.blacklist_list"), 303)


@bp.post("/blacklist/<int:entry_id>/remove")
def blacklist_remove(entry_id: int):
    try:
        blacklist.remove(entry_id, actor_id=current_user.id)
    except NotFound:
        abort(404)
    flash(_("The entry is off the blacklist."), "info")
    kind = request.args.get("kind", "")
    return redirect(
        url_for("operator.blacklist_list", kind=kind if kind in BlacklistEntry.KINDS else None, page=page_arg()), 303
    )


# -- security events -----------------------------------------------------------------------


def _security_filters() -> dict:
    kind = request.args.get("kind", "")
    return {"kind": kind if kind in SecurityEvent.KINDS else "", "ip": request.args.get("ip", "").strip()[:45]}


def _security_page(status: int = 200, error=None):
    filters = _security_filters()
    found = security_events.recent(filters["kind"] or None, filters["ip"] or None, page_number(), SECURITY_PER_PAGE)
    return render_template(
        "operator/security.html",
        rows=found.items,
        total=found.total,
        page=found.page,
        pages=found.pages,
        filters=filters,
        kind_labels=security_events.KIND_LABELS,
        expiry_form=ExpiryForm(formdata=None),
        error=error,
    ), status


@bp.get("/security")
def security_log():
    return _security_page()


@bp.post("/security/<int:event_id>/blacklist")
def security_event_blacklist(event_id: int):
    form = ExpiryForm()
    if not form.validate():
        return _security_page(400, error=_("Choose how long to blacklist the address."))
    days = _days(form.days.data)
    try:
        entry = monitor.blacklist_security_source(
            event_id, _("Security event #%(id)s", id=event_id), days, current_user.id
        )
    except NotFound:
        abort(404)
    except DomainError as exc:
        return _security_page(400, error=exc.message)
    _flash_added(entry, days)
    return redirect(
        url_for("operator.security_log", **{k: v for k, v in _security_filters().items() if v}, page=page_arg()), 303
    )


NAV.append(("operator.risk_monitor", _l("Risk monitor")))
NAV.append(("operator.blacklist_list", _l("Blacklist")))
NAV.append(("operator.security_log", _l("Security events")))
