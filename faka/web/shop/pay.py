"""Sending the buyer to pay, and receiving gateway notifications."""

import logging
import secrets

import segno
from flask import (
    Blueprint,
    abort,
    current_app,
    flash,
    make_response,
    redirect,
    render_template,
    request,
    session,
    url_for,
)
from markupsafe import Markup
from requests import RequestException

from faka.core.errors import DomainError, InvalidNotify, NotFound
from faka.extensions import csrf, limiter
from faka.orders import checkout, lookup
from faka.orders.models import Order
from faka.payments import cashier
from faka.payments import notify as payments
from faka.payments.gateways import get_gateway
from faka.payments.gateways.base import CannotQuery, GatewayError, IgnoredNotify
from faka.payments.gateways.clients import client_kind
from faka.web.limits import token_misses

log = logging.getLogger(__name__)

bp = Blueprint("pay", __name__, url_prefix="/pay")


def _checkout_limit():
    return current_app.config["RATELIMIT_CHECKOUT"]


@bp.get("/<token>")
@token_misses
def start(token: str):
    """The pay page. It never redirects to the provider (see faka/payments/cashier.py):
    the buyer leaves by its link, which faka.js follows at once on a phone."""
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    if order.status != order.PENDING:
        return redirect(url_for("orders.show", token=token), 303)
    client = client_kind(request.user_agent.string)
    try:
        page = cashier.prepare(
            order,
            client,
            payer=session.get(_payer_key(order.gateway)),
            sign_in_callback=cashier.absolute_url("pay.payer", token=token),
            state=_sign_in_state(token),
        )
    except NotFound:
        return render_template(
            "pay/unavailable.html", order=order, alternatives=cashier.ways_to_pay(client, besides=order.gateway)
        ), 502
    except (GatewayError, RequestException) as exc:
        log.warning("order %s: %s could not start the payment: %s", order.number, order.gateway, exc)
        return render_template(
            "pay/unavailable.html", order=order, alternatives=cashier.ways_to_pay(client, besides=order.gateway)
        ), 502
    payment = page.payment
    qr = _qr_svg(payment.qr_text, order.number) if payment and payment.qr_text else None
    phone_qr = (
        _qr_svg(cashier.absolute_url("pay.start", token=token), order.number)
        if page.on_desktop and (page.leave_url or page.guidance)
        else None
    )
    response = make_response(
        render_template(
            "pay/pay.html",
            page=page,
            order=order,
            payment=payment,
            qr=qr,
            phone_qr=phone_qr,
            pay_url=cashier.absolute_url("pay.start", token=token),
            checked=request.args.get("checked"),
        )
    )
    response.headers["Cache-Control"] = "no-store"
    # Providers see which site sent the buyer (WeChat Pay's H5 page refuses a visit whose
    # Referer is not the merchant's registered domain), never the page's address: it holds
    # the order's token.
    response.headers["Referrer-Policy"] = "strict-origin-when-cross-origin"
    return response


def _qr_svg(text: str, title: str) -> Markup:
    return Markup(segno.make(text, error="m").svg_inline(scale=5, dark="#111", title=title))


def _payer_key(gateway: str) -> str:
    return f"payer:{gateway}"


def _sign_in_state(token: str) -> str:
    """A value the provider's sign-in sends back unchanged, kept in this browser's
    session: a callback that does not carry it did not start here."""
    states = session.setdefault("pay_states", {})
    if token not in states:
        states[token] = secrets.token_hex(16)  # WeChat allows [a-zA-Z0-9] only
        while len(states) > 5:
            states.pop(next(iter(states)))
        session.modified = True
    return states[token]


@bp.get("/<token>/payer")
@token_misses
def payer(token: str):
    """Back from the provider's sign-in (WeChat's OAuth): remember who pays, in this
    browser's session, and show the pay page again."""
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    expected = session.get("pay_states", {}).get(token)
    if not expected or not secrets.compare_digest(expected, request.args.get("state", "")):
        return render_template("pay/unavailable.html", order=order, alternatives=[]), 400
    if order.status == order.PENDING:
        try:
            session[_payer_key(order.gateway)] = get_gateway(order.gateway).payer_from_callback(request.args)
        except (GatewayError, RequestException, NotFound) as exc:
            log.warning("order %s: %s sign-in failed: %s", order.number, order.gateway, exc)
            return render_template("pay/unavailable.html", order=order, alternatives=[]), 502
    return redirect(url_for("pay.start", token=token), 303)


@bp.post("/<token>/method")
@limiter.limit(_checkout_limit)
@token_misses
def change_method(token: str):
    """Pay the order another way (a plain form on the pay page)."""
    try:
        checkout.change_gateway(token, request.form.get("gateway", ""))
    except NotFound as exc:
        if checkout.order_by_token(token) is None:
            abort(404)
        flash(str(exc.message), "error")
    except DomainError as exc:
        flash(str(exc.message), "error")
        return redirect(url_for("orders.show", token=token), 303)
    return redirect(url_for("pay.start", token=token), 303)


@bp.post("/<token>/cancel")
@limiter.limit(_checkout_limit)
@token_misses
def cancel(token: str):
    """The buyer cancels the unpaid order; the order page then says so."""
    try:
        checkout.cancel_order(token)
    except NotFound:
        abort(404)
    except DomainError as exc:
        flash(str(exc.message), "error")
    return redirect(url_for("orders.show", token=token), 303)


@bp.get("/<token>/state")
@token_misses
def state(token: str):
    """Polled by the pay page: a line while the order waits for payment; once it is paid
    (or expired) the browser is sent to the order page."""
    order = lookup.order_status(token)
    if order is None:
        abort(404)
    if order.status != Order.PENDING:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url_for("orders.show", token=token)
        return response
    return render_template("pay/_waiting.html", order=order)


@bp.post("/<token>/check")
@limiter.limit(_checkout_limit)
@token_misses
def check(token: str):
    """The buyer's "I have paid" button: ask the provider now instead of waiting for its
    notification."""
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    if order.status == Order.PENDING:
        try:
            paid = payments.check_payment(order.id) is not None
        except (CannotQuery, InvalidNotify):
            paid = False
        except Exception:
            # The provider is unreachable: the notification or the reconciler will still
            # complete the order; the buyer is told to wait a moment.
            log.exception("order %s: payment check with %s failed", order.number, order.gateway)
            paid = False
        if not paid:
            return redirect(url_for("pay.start", token=token, checked="waiting"), 303)
    return redirect(url_for("orders.show", token=token), 303)


def _notify_limit():
    return current_app.config["RATELIMIT_NOTIFY"]


@bp.route("/<gateway>/notify", methods=["GET", "POST"])
@limiter.limit(_notify_limit)
@csrf.exempt  # gateways cannot send our CSRF token; the signature authenticates them
def notify(gateway: str):
    # 易支付 calls its notify URL with GET, the signed fields in the query string.
    form = request.form if request.method == "POST" else request.args
    try:
        result = payments.handle_notify(
            gateway, form, request.headers, request.get_data(cache=True), source_ip=request.remote_addr
        )
    except NotFound:
        abort(404)
    except IgnoredNotify as exc:
        log.info("ignored %s notify: %s", gateway, exc)
        return _answer(payments.acknowledgement(gateway))
    except InvalidNotify as exc:
        log.warning("rejected %s notify from %s: %s", gateway, request.remote_addr, exc)
        return _answer(payments.refusal(gateway))
    if result.replay:
        log.info("replayed %s notify for order %s ignored", gateway, result.order.number)
    return_url = result.notice.return_url
    if return_url and return_url == url_for("orders.show", token=result.order.token):
        return redirect(return_url, 303)  # the sandbox's pay page is a form the buyer submits
    return _answer(result.gateway.answer(True))


def _answer(answer):
    response = make_response(answer.body, answer.status)
    response.content_type = answer.content_type
    return response
