"""What happens when a gateway says an order was paid."""

import json
import logging
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from urllib.parse import urlencode

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, exists, func, or_, select
from sqlalchemy.exc import IntegrityError

from faka.core import clock, tasks
from faka.core.db import write_transaction
from faka.core.errors import DomainError, InvalidNotify, NotFound
from faka.core.pagination import Page, paginate
from faka.extensions import db
from faka.growth import affiliates
from faka.inventory import stock
from faka.messaging import notifications
from faka.orders.models import Order
from faka.payments.gateways import GATEWAYS, GatewayUnavailable, gateway_settings, get_gateway
from faka.payments.gateways.base import (
    CannotQuery,
    Gateway,
    IgnoredNotify,
    Notice,
    NotifyAnswer,
    OrderRef,
    PaymentStart,
)
from faka.payments.gateways.clients import DESKTOP
from faka.payments.models import GatewayConfig, NotifyLog, PaymentAttempt, PaymentNotice, Refund
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent

log = logging.getLogger(__name__)

OUTCOME_PAID = "paid"
OUTCOME_LATE_PAID = "late_paid"  # paid after expiry or cancelling, keys still available
OUTCOME_UNFULFILLED = "unfulfilled"  # paid after expiry or cancelling, no keys left: refund due
OUTCOME_DUPLICATE = (
    PaymentNotice.DUPLICATE
)  # a second payment for an order already paid: refunded (see _refund_duplicate)
# Outcomes that only the notify log knows: nothing was paid by them.
OUTCOME_REPLAY = "replay"  # the same notification again
OUTCOME_WAITING = "waiting"  # the provider says the order is not paid (yet)
OUTCOME_REJECTED = "rejected"  # failed verification
OUTCOME_IGNORED = "ignored"  # authentic, but about nothing we track
# What the operator's payment pages call each outcome.
OUTCOME_LABELS = {
    OUTCOME_PAID: _l("Paid"),
    OUTCOME_LATE_PAID: _l("Paid late, delivered"),
    OUTCOME_UNFULFILLED: _l("Paid late, out of stock: refund due"),
    OUTCOME_DUPLICATE: _l("Paid twice: refund due"),
    OUTCOME_REPLAY: _l("Repeated notification"),
    OUTCOME_WAITING: _l("Not paid yet"),
    OUTCOME_REJECTED: _l("Failed verification"),
    OUTCOME_IGNORED: _l("Not about an order here"),
}

MAX_LOGGED_BODY = 64 * 1024
QUERY_AFTER = timedelta(seconds=30)  # give the notification a head start before asking
LATE_QUERY_WINDOW = timedelta(hours=24)  # expired and cancelled orders are still asked about this long
QUERY_BATCH = 100  # orders asked about per reconciler run
SILENCE_WINDOW = timedelta(hours=6)  # a gateway with payments but no notification this long is suspect
SILENCE_MIN_PAYMENTS = 3  # ... when at least this many buyers were sent to pay with it


class AmountMismatch(InvalidNotify):
    """An authentic notification for another amount or currency than the order's."""


class SourceBlocked(InvalidNotify):
    """The notification's source address sent too many bad notifications lately."""


@dataclass(frozen=True)
class NotifyResult:
    gateway: Gateway
    notice: Notice
    order: Order
    replay: bool
    refund_id: int | None = None  # the refund of this payment, when it paid for an order already paid


def start_payment(order: Order, client: str = DESKTOP, payer: str | None = None) -> PaymentStart:
    """Ask the order's gateway how the buyer in `client` (faka.payments.gateways.clients) pays, and
    note that a payment may now be in flight: on the order (with the provider's reference
    for it), so the reconciler can ask the provider about it should its notification
    never arrive, and as one more PaymentAttempt, so a payment with this gateway is still
    accepted after the buyer switches the order to another."""
    payment = get_gateway(order.gateway).create_payment(order_ref(order, client=client, payer=payer))
    with write_transaction():
        fresh = db.session.get_one(Order, order.id, populate_existing=True)
        now = clock.now()
        fresh.payment_started_at = fresh.payment_started_at or now
        reference = payment.reference[:128] if payment.reference else None
        if reference:
            fresh.payment_ref = reference
        db.session.add(
            PaymentAttempt(
                order_id=fresh.id,
                gateway=order.gateway,
                method=(payment.method or "")[:20],
                reference=reference,
                created_at=now,
            )
        )
    return payment


def order_ref(order: Order, client: str = DESKTOP, payer: str | None = None, gateway: str | None = None) -> OrderRef:
    """What a gateway (the order's, unless `gateway` names an earlier one it was sent to
    pay with) is told about the order: amount and currency as the order holds them, the
    addresses the provider sends the buyer and its notifications to, and where the buyer
    pays from."""
    base = current_app.config["BASE_URL"].rstrip("/")
    return OrderRef(
        number=order.number,
        token=order.token,
        total=order.total,
        currency=order.currency,
        subject=order.product.title,
        notify_url=base + _path("pay.notify", gateway=gateway or order.gateway),
        return_url=_path("orders.show", token=order.token),
        base_url=base,
        expires_at=order.expires_at,
        client_ip=order.client_ip,
        client=client,
        payer=payer,
    )


def _path(endpoint: str, **values) -> str:
    # A path on this site, also from jobs, which have no request to build URLs from.
    return current_app.url_map.bind("").build(endpoint, values)


def refusal(gateway_name: str) -> NotifyAnswer:
    """The failure answer of a gateway whose notification was refused (plain "fail" for
    a gateway we do not know or have disabled)."""
    cls = GATEWAYS.get(gateway_name)
    return cls({}).answer(False) if cls is not None else NotifyAnswer("fail", status=400)


def acknowledgement(gateway_name: str) -> NotifyAnswer:
    """The success answer for an authentic notification we had nothing to do with."""
    return GATEWAYS[gateway_name]({}).answer(True)


def handle_notify(
    gateway_name: str,
    form: Mapping[str, str],
    headers: Mapping[str, str],
    body: bytes,
    source_ip: str | None = None,
) -> NotifyResult:
    """Verify a notification and record the payment exactly once.

    Raises InvalidNotify (and changes nothing but the notify log) for a bad signature, an
    unknown order, or a mismatched gateway, amount or currency. A replay of an accepted
    notification changes nothing and returns `replay=True`, so the route still answers
    the gateway's success body. Every notification, accepted or not, is logged.
    """
    _refuse_blocked_source(source_ip)
    gateway = get_gateway(gateway_name)
    received = _Received(gateway_name, NotifyLog.NOTIFY, source_ip, _logged_headers(headers), _logged_body(form, body))
    try:
        notice = gateway.verify_notify(form, headers, body)
    except InvalidNotify as exc:
        _log_refusal(received, str(exc), verified=False, order_number=_claimed_order(form))
        raise
    except IgnoredNotify as exc:
        with write_transaction(commit_on=(IgnoredNotify,)):
            _log(received, _claimed_order(form), verified=True, outcome=OUTCOME_IGNORED, reason=str(exc)[:500])
            raise
    return _apply_notice(gateway, received, notice)


def _refuse_blocked_source(source_ip: str | None) -> None:
    """A source address that recently sent many forged notifications is refused before
    any verification work, and not logged again: a flood costs two reads per request.
    Wrong amounts in authentic notifications only flag their source: it is the
    provider's own server, whose other notifications must still arrive. The risk event
    is recorded once a minute."""
    signals = engine.Signals(engine.NOTIFY, ip=source_ip)
    verdict = engine.assess(signals)
    if verdict.hits:
        engine.record_once(signals, verdict, key=("notify", source_ip, verdict.action))
    if verdict.action == engine.BLOCK:
        raise SourceBlocked(f"source {source_ip} blocked: {verdict.rules}")
    db.session.rollback()  # ends the risk checks' read snapshot: none is held open across the verification


def _claimed_order(form: Mapping[str, str]) -> str | None:
    """The order number a refused form notification claims to be about, so the operator
    finds it in the order's history (it proves nothing: it failed verification)."""
    for name in ("out_trade_no", "order_no", "order_id"):
        value = form.get(name) if form else None
        if isinstance(value, str) and value:
            return value
    return None


def check_payment(order_id: int) -> NotifyResult | None:
    """Ask the providers whether the order was paid (the buyer's "I have paid" button,
    and the reconciler for payments in flight): every gateway with a query API that the
    order was sent to pay with (the buyer may have switched, and still paid with an
    earlier one) and its current gateway, in the order the buyer chose them, until one
    confirms a payment. That payment is applied exactly as its notification would have
    been. Returns None when none of them reports one (yet); raises CannotQuery when none
    of them has a query API. A provider's error (or an answer that does not verify) does
    not keep the others from being asked; when none reports a payment, the first error
    propagates, so a job is retried."""
    order = db.session.get(Order, order_id)
    if order is None:
        db.session.rollback()
        raise NotFound()
    names = [name for name in _gateways_sent_to(order) if can_query(name)]
    refs = {name: order_ref(order, gateway=name) for name in names}
    db.session.rollback()  # no transaction held open across the provider calls
    if not names:
        raise CannotQuery(f"order {order.number}: no gateway it was sent to pay with has a query API")
    failure = None
    for name in names:
        try:
            result = _query(name, refs[name])
        except GatewayUnavailable:
            continue  # disabled since: its payments are not accepted either
        except Exception as exc:  # noqa: BLE001 - raised below unless another gateway finds the payment
            db.session.rollback()  # the failed query may have left the session's transaction broken
            failure = failure or exc
            continue
        if result is not None:
            return result
    if failure is not None:
        raise failure
    return None


def _gateways_sent_to(order: Order) -> list[str]:
    """The gateways the order was sent to pay with, first chosen first, then its current
    one (which the buyer may not have opened yet), each once."""
    attempted = db.session.execute(
        select(PaymentAttempt.gateway).where(PaymentAttempt.order_id == order.id).order_by(PaymentAttempt.id)
    ).scalars()
    return list(dict.fromkeys([*attempted, order.gateway]))


def _query(gateway_name: str, ref: OrderRef) -> NotifyResult | None:
    gateway = get_gateway(gateway_name)
    db.session.rollback()  # no transaction held open across the provider call
    received = _Received(gateway_name, NotifyLog.QUERY, None, None, None)
    try:
        notice = gateway.query(ref)
    except InvalidNotify as exc:
        _log_refusal(received, str(exc), verified=False, order_number=ref.number)
        raise
    if notice is None:
        with write_transaction():
            _log(received, ref.number, verified=True, outcome=OUTCOME_WAITING)
        return None
    return _apply_notice(gateway, received, notice)


def can_query(gateway_name: str) -> bool:
    """Whether the gateway has a query API (it implements Gateway.query)."""
    cls = GATEWAYS.get(gateway_name)
    return cls is not None and cls.query is not Gateway.query


def can_check(order: Order) -> bool:
    """Whether check_payment can ask anyone about the order: a gateway it was sent to pay
    with, or its current one, has a query API (for the "I have paid" and "Ask the
    provider now" buttons)."""
    return any(can_query(name) for name in _gateways_sent_to(order))


def payments_in_flight(now=None, limit: int = QUERY_BATCH) -> list[int]:
    """Orders a buyer was sent to pay that are still unpaid (pending, or expired or
    cancelled within LATE_QUERY_WINDOW: a late payment is still honoured), of which a
    gateway it was sent to pay with, or its current one, can be asked; oldest first. The
    reconciler enqueues a check for each."""
    now = now or clock.now()
    names = [name for name in GATEWAYS if can_query(name)]
    if not names:
        return []
    late = now - LATE_QUERY_WINDOW
    sent_to_queryable = exists().where(PaymentAttempt.order_id == Order.id, PaymentAttempt.gateway.in_(names))
    return list(
        db.session.execute(
            select(Order.id)
            .where(
                or_(Order.gateway.in_(names), sent_to_queryable),
                Order.payment_started_at.is_not(None),
                Order.payment_started_at <= now - QUERY_AFTER,
                or_(
                    Order.status == Order.PENDING,
                    and_(Order.status == Order.EXPIRED, Order.expires_at >= late),
                    and_(Order.status == Order.CANCELLED, Order.cancelled_at >= late),
                ),
            )
            .order_by(Order.payment_started_at)
            .limit(limit)
        ).scalars()
    )


@dataclass(frozen=True)
class ExtraPayment:
    """A payment the buyer made for an order already paid, as the order page tells it."""

    amount: int  # minor units
    currency: str
    returned: bool  # the buyer has it back (through the gateway, or paid back by hand)


def extra_payments(order_id: int) -> list[ExtraPayment]:
    """The order's extra payments (paid twice), first first, and whether each went back."""
    rows = db.session.execute(
        select(PaymentNotice.amount, PaymentNotice.currency, Refund.status)
        .outerjoin(Refund, Refund.payment_notice_id == PaymentNotice.id)
        .where(PaymentNotice.order_id == order_id, PaymentNotice.outcome == OUTCOME_DUPLICATE)
        .order_by(PaymentNotice.id)
    ).all()
    return [ExtraPayment(amount, currency, status in Refund.RETURNED) for amount, currency, status in rows]


class GatewayTestFailed(DomainError):
    message = _l("The gateway could not be tested.")


def test_gateway(name: str) -> str:
    """Ask the provider about an order number that does not exist. An answer that
    verifies ("not paid") proves the credentials, the keys and the network path; the
    result, or why it failed, is returned for the operator. Never a secret."""
    if not can_query(name):
        raise GatewayTestFailed(
            _l(
                "This gateway offers no API to ask about a payment, so it cannot be tested from "
                "here; make a small real payment instead."
            )
        )
    _row, settings = gateway_settings(name)
    db.session.rollback()  # no transaction held open across the provider call
    base = current_app.config["BASE_URL"].rstrip("/")
    probe = OrderRef(
        number="FAKATEST" + secrets.token_hex(6),
        token="0" * 32,
        total=1,
        currency=current_app.config["CURRENCY"],
        subject="faka connection test",
        notify_url=base + _path("pay.notify", gateway=name),
        return_url="/",
        base_url=base,
    )
    try:
        found = GATEWAYS[name](settings).query(probe)
    except InvalidNotify as exc:
        raise GatewayTestFailed(
            _l("The provider answered, but the answer did not verify: %(reason)s", reason=str(exc))
        ) from exc
    except Exception as exc:  # noqa: BLE001 - whatever went wrong is what the operator needs to see
        raise GatewayTestFailed(
            _l("The provider could not be asked: %(error)s", error=f"{type(exc).__name__}: {str(exc)[:200]}")
        ) from exc
    if found is not None:
        raise GatewayTestFailed(_l("The provider reports a payment for a test order number: check the settings."))
    return str(_l("The provider answered and its answer verified: the settings work."))


@dataclass(frozen=True)
class SilentGateway:
    gateway: str
    payments_started: int  # orders sent to pay with it within SILENCE_WINDOW
    last_notify_at: datetime | None  # the last verified notification, ever


def silent_gateways(now: datetime | None = None) -> list[SilentGateway]:
    """Enabled gateways that buyers were sent to pay with in the last SILENCE_WINDOW but
    whose provider sent no verified notification in that time: most often the notify URL
    is wrong or a firewall/CDN blocks the provider. (The sandbox is paid by the buyer's
    own browser, so it is left out.)"""
    now = now or clock.now()
    since = now - SILENCE_WINDOW
    enabled = [
        name
        for name in db.session.execute(select(GatewayConfig.name).where(GatewayConfig.enabled.is_(True))).scalars()
        if name != "sandbox"
    ]
    if not enabled:
        return []
    started = dict(
        db.session.execute(
            select(PaymentAttempt.gateway, func.count(PaymentAttempt.order_id.distinct()))
            .where(PaymentAttempt.gateway.in_(enabled), PaymentAttempt.created_at >= since)
            .group_by(PaymentAttempt.gateway)
        )
        .tuples()
        .all()
    )
    last = dict(
        db.session.execute(
            select(NotifyLog.gateway, func.max(NotifyLog.received_at))
            .where(NotifyLog.gateway.in_(enabled), NotifyLog.via == NotifyLog.NOTIFY, NotifyLog.verified.is_(True))
            .group_by(NotifyLog.gateway)
        )
        .tuples()
        .all()
    )
    return [
        SilentGateway(name, started[name], last.get(name))
        for name in enabled
        if started.get(name, 0) >= SILENCE_MIN_PAYMENTS and (last.get(name) is None or last[name] < since)
    ]


def notify_history(
    order_number: str | None = None, gateway: str | None = None, page: int = 1, per_page: int = 50
) -> Page:
    """One page of the notify log, newest first, counted."""
    conditions = []
    if order_number:
        conditions.append(NotifyLog.order_number == order_number.strip())
    if gateway:
        conditions.append(NotifyLog.gateway == gateway)
    return paginate(
        select(NotifyLog).where(*conditions).order_by(NotifyLog.received_at.desc(), NotifyLog.id.desc()),
        page,
        per_page,
    )


@dataclass(frozen=True)
class _Received:
    gateway: str
    via: str
    source_ip: str | None
    headers: str | None
    body: str | None


def _apply_notice(gateway: Gateway, received: _Received, notice: Notice, _retry: bool = True) -> NotifyResult:
    try:
        with write_transaction():
            result, enqueue_delivery, outcome = _record(gateway, received.gateway, notice)
            _log(received, notice.order_number, verified=True, outcome=outcome)
            if enqueue_delivery and not result.order.is_held:
                tasks.enqueue("orders.tasks.deliver_order", result.order.id, job_id=f"deliver-{result.order.id}")
            if result.refund_id is not None:
                tasks.enqueue("payments.tasks.refund_payment", result.refund_id, job_id=f"refund-{result.refund_id}")
    except IntegrityError:
        if not _retry:
            raise
        # A concurrent copy of the same notification committed first: this time it is a replay.
        return _apply_notice(gateway, received, notice, _retry=False)
    except InvalidNotify as exc:
        _log_refusal(
            received,
            str(exc),
            verified=False,
            order_number=notice.order_number,
            mismatch=isinstance(exc, AmountMismatch),
        )
        raise
    if enqueue_delivery:
        _notify_merchant_paid(result.order.id)
    return result


def _log(received: _Received, order_number: str | None, verified: bool, outcome: str, reason: str | None = None):
    db.session.add(
        NotifyLog(
            gateway=received.gateway,
            via=received.via,
            order_number=(order_number or "")[:32] or None,
            verified=verified,
            outcome=outcome,
            reason=reason,
            source_ip=received.source_ip,
            headers=received.headers,
            body=received.body,
            received_at=clock.now(),
        )
    )


def _log_refusal(
    received: _Received, reason: str, verified: bool, order_number: str | None = None, mismatch: bool = False
) -> None:
    """Log a refused notification; one the provider sent (not our own query's answer) is
    also a security event, which the risk rules count per source address."""
    with write_transaction():
        _log(received, order_number, verified, OUTCOME_REJECTED, reason[:500])
        if received.via == NotifyLog.NOTIFY:
            kind = SecurityEvent.AMOUNT_MISMATCH if mismatch else SecurityEvent.SIGNATURE_FAILED
            security_events.add(kind, received.source_ip, subject=received.gateway, detail=reason[:500])


_SECRET_NAMES = re.compile(r"secret|password|passwd|token|key", re.IGNORECASE)
LOGGED_HEADERS = (
    "Content-Type",
    "User-Agent",
    "Wechatpay-Serial",
    "Wechatpay-Timestamp",
    "Wechatpay-Nonce",
    "Wechatpay-Signature",
    "Stripe-Signature",
)


def _logged_headers(headers: Mapping[str, str]) -> str:
    return json.dumps({name: headers.get(name) for name in LOGGED_HEADERS if headers.get(name)}, ensure_ascii=False)


def _logged_body(form: Mapping[str, str], body: bytes) -> str:
    """The notification as received, cut at MAX_LOGGED_BODY; form fields whose names say
    they hold a secret are redacted."""
    if form:
        return urlencode([(k, "[redacted]" if _SECRET_NAMES.search(k) else v) for k, v in form.items()])[
            :MAX_LOGGED_BODY
        ]
    return body[:MAX_LOGGED_BODY].decode("utf-8", "replace")


def _notify_merchant_paid(order_id: int) -> None:
    # Must never fail the gateway's answer: the payment is already recorded.

    try:
        notifications.order_paid(order_id)
    except Exception:
        db.session.rollback()  # whatever the failed notifications left open or broken must not outlive them
        log.exception("order %s: merchant notifications for the payment failed", order_id)


def _record(gateway: Gateway, gateway_name: str, notice: Notice) -> tuple[NotifyResult, bool, str]:
    order = db.session.execute(
        select(Order).where(Order.number == notice.order_number).with_for_update()
    ).scalar_one_or_none()
    if order is None:
        raise InvalidNotify(f"unknown order {notice.order_number}")
    if order.gateway != gateway_name and not _was_sent_to(order, gateway_name):
        raise InvalidNotify(f"order {order.number} was not placed with {gateway_name}")
    if notice.amount != order.total or notice.currency != order.currency:
        raise AmountMismatch(
            f"order {order.number}: amount {notice.amount} {notice.currency} != {order.total} {order.currency}"
        )
    existing = db.session.execute(
        select(PaymentNotice).where(PaymentNotice.gateway == gateway_name, PaymentNotice.trade_no == notice.trade_no)
    ).scalar_one_or_none()
    if existing is not None:
        if existing.order_id != order.id:
            raise InvalidNotify(f"trade {notice.trade_no} already recorded for another order")
        return NotifyResult(gateway, notice, order, replay=True), False, OUTCOME_REPLAY
    if not notice.paid:
        return NotifyResult(gateway, notice, order, replay=False), False, OUTCOME_WAITING

    now = clock.now()
    outcome = _apply_payment(order, now)
    if outcome in (OUTCOME_PAID, OUTCOME_LATE_PAID):
        _assess_paid(order, now)
        affiliates.fix_commission(order, now)
    payment = PaymentNotice(
        gateway=gateway_name,
        trade_no=notice.trade_no,
        order_id=order.id,
        amount=notice.amount,
        currency=notice.currency,
        outcome=outcome,
        received_at=now,
    )
    db.session.add(payment)
    db.session.flush()
    refund_id = None
    if outcome == OUTCOME_DUPLICATE:
        refund_id = _refund_duplicate(order, payment, now)
    if outcome in (OUTCOME_UNFULFILLED, OUTCOME_DUPLICATE):
        log.warning("order %s: payment %s needs a refund (%s)", order.number, notice.trade_no, outcome)
    result = NotifyResult(gateway, notice, order, replay=False, refund_id=refund_id)
    return result, outcome in (OUTCOME_PAID, OUTCOME_LATE_PAID), outcome


def _was_sent_to(order: Order, gateway_name: str) -> bool:
    """Whether the buyer was sent to pay the order with this gateway (before switching)."""
    return db.session.execute(
        select(exists().where(PaymentAttempt.order_id == order.id, PaymentAttempt.gateway == gateway_name))
    ).scalar_one()


def _refund_duplicate(order: Order, payment: PaymentNotice, now) -> int:
    """A second payment of an order already paid goes back to the buyer, through the
    gateway that took it (refunds.execute, enqueued after the commit; `manual` on
    /operator/refunds where that gateway cannot refund). The merchant never had this
    money: no ledger entry, neither credit nor debit."""
    refund = Refund(
        order_id=order.id,
        merchant_id=order.merchant_id,
        payment_notice_id=payment.id,
        amount=payment.amount,
        gateway=payment.gateway,
        status=Refund.PENDING,
        note=f"duplicate payment {payment.trade_no}",
        created_at=now,
    )
    db.session.add(refund)
    db.session.flush()
    return refund.id


def _assess_paid(order: Order, now) -> None:
    """The risk rules for a paid order: they may flag it or hold its delivery."""
    verdict = engine.assess_paid_order(order, now)
    if verdict.hits:
        engine.add_event(
            engine.Signals(
                engine.NOTIFY,
                order.client_ip,
                order.device_hash,
                order.email,
                order.merchant_id,
                order.product,
                order.quantity,
                order,
                now,
            ),
            verdict,
        )
        engine.flag_order(order, verdict)


def _apply_payment(order: Order, now) -> str:
    if order.status == Order.PENDING:
        order.mark_paid(now)
        return OUTCOME_PAID
    if order.status in Order.UNPAID_CLOSED:
        # Honour a late payment (after expiry, or after the buyer cancelled) if stock
        # remains; never drop it. Its coupon use, given back when the order closed, is
        # taken again: the buyer did pay with the discount.
        if order.coupon_id:
            stock.change_coupon_uses(order.coupon_id, 1)
        needs_keys = order.product.uses_key_stock
        if not needs_keys or stock.reserve_keys(order, order.quantity, until=now, now=now):
            order.mark_paid(now)
            return OUTCOME_LATE_PAID
        order.mark_unfulfilled(now)
        return OUTCOME_UNFULFILLED
    return OUTCOME_DUPLICATE
