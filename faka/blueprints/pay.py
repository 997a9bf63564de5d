"""Sending the buyer to pay, and receiving gateway notifications."""
import logging

from flask import Blueprint, abort, make_response, redirect, render_template, request, url_for

from faka.extensions import csrf
from faka.services import checkout, payments
from faka.services.errors import InvalidNotify, NotFound

log = logging.getLogger(__name__)

bp = Blueprint("pay", __name__, url_prefix="/pay")


@bp.get("/<token>")
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
    if payment.redirect_url:
        return redirect(payment.redirect_url, 303)
    return render_template(f"pay/{order.gateway}.html", order=order, payment=payment)


@bp.post("/<gateway>/notify")
@csrf.exempt  # gateways cannot send our CSRF token; the signature authenticates them
def notify(gateway: str):
    try:
        result = payments.handle_notify(gateway, request.form, request.headers, request.get_data(cache=True))
    except NotFound:
        abort(404)
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
