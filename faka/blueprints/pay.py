"""Sending the buyer to pay, and receiving gateway notifications."""
import logging

import segno
from requests import RequestException
from flask import Blueprint, abort, current_app, make_response, redirect, render_template, request, url_for
from markupsafe import Markup

from faka.blueprints.limits import token_misses
from faka.extensions import csrf, limiter
from faka.models import Order
from faka.payments.base import CannotQuery, GatewayError, IgnoredNotify
from faka.services import checkout, orders, payments
from faka.services.errors import InvalidNotify, NotFound

log = logging.getLogger(__name__)

bp = Blueprint("pay", __name__, url_prefix="/pay")


@bp.get("/<token>")
@token_misses
def start(token: str):
    order = checkout.order_by_token(token)
    if order is None:
        abort(404)
    if order.status != order.PENDING:
        return redirect(url_for("orders.show", token=token), 303)
    try:
        payment = payments.start_payment(order)
    except NotFound:
        abort(404)
    except (GatewayError, RequestException) as exc:
        log.warning("order %s: %s could not start the payment: %s", order.number, order.gateway, exc)
        return render_template("pay/unavailable.html", order=order), 502
    if payment.redirect_url:
        return redirect(payment.redirect_url, 303)
    if order.gateway == "sandbox":
        return render_template("pay/sandbox.html", order=order, payment=payment)
    qr = Markup(segno.make(payment.qr_text, error="m").svg_inline(scale=5, dark="#111", title=order.number)) \
        if payment.qr_text else None
    return render_template("pay/provider.html", order=order, payment=payment, qr=qr,
                           can_check=payments.can_query(order.gateway), checked=request.args.get("checked"))


@bp.get("/<token>/state")
@token_misses
def state(token: str):
    """Polled by the pay page: a line while the order waits for payment; once it is paid
    (or expired) the browser is sent to the order page."""
    order = orders.order_status(token)
    if order is None:
        abort(404)
    if order.status != Order.PENDING:
        response = make_response("", 200)
        response.headers["HX-Redirect"] = url_for("orders.show", token=token)
        return response
    return render_template("pay/_waiting.html", order=order)


def _check_limit():
    return current_app.config["RATELIMIT_CHECKOUT"]


@bp.post("/<token>/check")
@limiter.limit(_check_limit)
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
        result = payments.handle_notify(gateway, form, request.headers, request.get_data(cache=True),
                                        source_ip=request.remote_addr)
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
