"""The complaint center's rules: who may complain when, every legal and illegal step of
the state machine, deadlines on a frozen clock, and the money that follows a decision."""

import io
from datetime import timedelta

import pytest
from flask import current_app
from flask_babel import force_locale
from PIL import Image
from sqlalchemy import func, select, update
from test_ledger import alipay, new_merchant, new_operator, new_product, settled

from conftest import every_stored_file, reload, signed_notify
from faka.catalog.models import DELIVERY_MANUAL
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintImage, ComplaintMessage
from faka.core.errors import NotFound
from faka.core.storage import PRIVATE, storage
from faka.core.types import utcnow
from faka.core.uploads import InvalidImage
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger import balances, payouts, settlement
from faka.ledger.models import LedgerEntry, Withdrawal
from faka.messaging.models import OutboxEmail
from faka.ops.reconcile import reconcile
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments import notify, refunds
from faka.payments.models import PaymentNotice, Refund
from faka.platform.models import AuditEvent

FEE_BP = 300  # new_merchant's default: 3%


def sell(product, quantity: int = 1, email: str | None = "buyer@example.com") -> Order:
    with current_app.test_request_context():
        order = checkout.place_order(product.slug, quantity, email, None)
        notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    return reload(order)


@pytest.fixture
def shop(app):
    merchant = new_merchant(fee_rate_bp=FEE_BP)
    return merchant, new_product(merchant, keys=10, price=1000)


@pytest.fixture
def order(shop):
    order = sell(shop[1])
    assert order.status == Order.DELIVERED
    return order


@pytest.fixture
def operator(app):
    return new_operator()


def open_on(order, **kwargs) -> Complaint:
    kwargs.setdefault("reason", Complaint.KEY_INVALID)
    kwargs.setdefault("description", "The key says it was already used.")
    return workflow.open_complaint(order.token, **kwargs)


def png(exif: bool = False) -> bytes:
    out = io.BytesIO()
    image = Image.new("RGB", (40, 30), (200, 30, 30))
    if exif:
        data = Image.Exif()
        data[0x010F] = "SpyCam"  # Make
        image.save(out, "JPEG", exif=data)
    else:
        image.save(out, "PNG")
    return out.getvalue()


def thread(complaint) -> list[tuple[str, str | None]]:
    db.session.commit()
    return [
        (m.author, m.event)
        for m in db.session.execute(
            select(ComplaintMessage).where(ComplaintMessage.complaint_id == complaint.id).order_by(ComplaintMessage.id)
        ).scalars()
    ]


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


# -- opening ---------------------------------------------------------------------------------


def test_buyer_opens_a_complaint_with_evidence_and_the_merchant_is_told(order, shop):
    complaint = open_on(order, images=[png(), png(exif=True)])
    assert complaint.status == Complaint.OPEN
    assert complaint.merchant_id == shop[0].id and len(complaint.ref) == 20
    deadline = complaint.deadline_at - complaint.created_at
    assert deadline == timedelta(hours=48)
    assert thread(complaint) == [("buyer", "opened")]
    names = [i.name for i in db.session.execute(select(ComplaintImage)).scalars()]
    assert len(names) == 2
    for name in names:
        stored = workflow.evidence_file(complaint, name)
        assert name in storage().names(PRIVATE)
        with Image.open(io.BytesIO(stored.read())) as image:
            assert not image.getexif()  # re-encoded: the camera's metadata is gone
    email = db.session.execute(select(OutboxEmail).where(OutboxEmail.kind == "complaint_update")).scalar_one()
    assert email.to_addr == shop[0].user.email and email.merchant_id == shop[0].id
    assert count(AuditEvent, AuditEvent.action == "complaint.opened") == 1


def test_settlement_is_frozen_while_the_complaint_is_in_progress(order, shop, operator):
    merchant_id = shop[0].id
    net = 1000 - 1000 * FEE_BP // 10000
    assert balances.balance(merchant_id, settled()).available == net
    complaint = open_on(order)
    frozen = balances.balance(merchant_id, settled())
    assert (frozen.available, frozen.frozen, frozen.pending) == (0, net, 0)
    workflow.withdraw(complaint.id)
    released = balances.balance(merchant_id, settled())
    assert (released.available, released.frozen) == (net, 0)


@pytest.mark.parametrize("status", [Order.PENDING, Order.EXPIRED, Order.REFUNDED])
def test_orders_that_were_not_delivered_cannot_get_a_complaint(shop, status):
    with current_app.test_request_context():
        order = checkout.place_order(shop[1].slug, 1, "buyer@example.com", None)
    order.status = status
    db.session.commit()
    with pytest.raises(workflow.ComplaintNotAllowed):
        open_on(order)
    assert count(Complaint) == 0


def test_complaint_window_closes_days_after_delivery(order):
    late = order.delivered_at + timedelta(days=7, minutes=1)
    with pytest.raises(workflow.ComplaintNotAllowed) as refused:
        open_on(order, now=late)
    assert "7" in str(refused.value.message)  # the window's length, in any language
    assert open_on(order, now=late - timedelta(minutes=2)).status == Complaint.OPEN


def test_manual_order_can_be_complained_about_once_the_promised_time_passed(app):
    merchant = new_merchant()
    product = new_product(merchant, keys=0)
    product.delivery_type, product.manual_promise_hours = DELIVERY_MANUAL, 12
    db.session.commit()
    order = sell(product)
    assert order.status == Order.PAID
    with pytest.raises(workflow.ComplaintNotAllowed):
        open_on(order, reason=Complaint.NOT_DELIVERED, now=order.paid_at + timedelta(hours=11))
    complaint = open_on(order, reason=Complaint.NOT_DELIVERED, now=order.paid_at + timedelta(hours=13))
    assert complaint.status == Complaint.OPEN


def test_one_complaint_in_progress_per_order_and_none_after_a_decision(order, operator):
    first = open_on(order)
    with pytest.raises(workflow.ComplaintAlreadyOpen):
        open_on(order)
    workflow.withdraw(first.id)
    second = open_on(order)  # withdrawn is not decided: the buyer may try again
    workflow.post_message(second.id, "merchant", None, "Works for me.")
    workflow.escalate(second.id)
    workflow.decide(second.id, operator.id, None, "The key was activated by the buyer's own account.")
    with pytest.raises(workflow.ComplaintNotAllowed):
        open_on(order)
    assert count(Complaint) == 2


@pytest.mark.parametrize(
    "reason, description",
    [
        ("angry", "Bad key."),
        (Complaint.KEY_INVALID, "   "),
        (Complaint.KEY_INVALID, "x" * 4001),
    ],
)
def test_invalid_complaint_is_refused_and_changes_nothing(order, reason, description):
    with pytest.raises(workflow.InvalidComplaint):
        workflow.open_complaint(order.token, reason, description)
    assert count(Complaint) == 0


def test_bad_evidence_is_refused_and_leaves_no_file(order):
    before = every_stored_file(PRIVATE)
    with pytest.raises(InvalidImage):
        open_on(order, images=[png(), b"<?php echo 'not an image'; ?>"])
    with pytest.raises(workflow.TooManyImages):
        open_on(order, images=[png()] * 6)
    assert every_stored_file(PRIVATE) == before
    assert count(Complaint) == 0 and count(ComplaintImage) == 0


def test_wrong_token_or_other_merchant_cannot_load_the_complaint(order, shop):
    complaint = open_on(order)
    other = new_merchant()
    with pytest.raises(NotFound):
        workflow.complaint_for_buyer("0" * 32, complaint.ref)
    with pytest.raises(NotFound):
        workflow.complaint_for_merchant(other.id, complaint.ref)
    with pytest.raises(NotFound):
        workflow.open_complaint("0" * 32, Complaint.OTHER, "text")
    assert workflow.complaint_for_merchant(shop[0].id, complaint.ref).id == complaint.id
    assert workflow.complaint_for_buyer(order.token, complaint.ref).id == complaint.id


# -- the state machine: every step from every state ----------------------------------------------

STEPS = {
    "buyer_message": lambda c, op: workflow.post_message(c.id, "buyer", None, "Still broken."),
    "merchant_message": lambda c, op: workflow.post_message(c.id, "merchant", None, "Let me check."),
    "operator_message": lambda c, op: workflow.post_message(c.id, "operator", op.id, "Please send a screenshot."),
    "offer_refund": lambda c, op: workflow.offer_refund(c.id, None, 500),
    "offer_replacement": lambda c, op: workflow.offer_replacement(c.id, None, 1),
    "accept": lambda c, op: workflow.accept_offer(c.id),
    "escalate": lambda c, op: workflow.escalate(c.id),
    "withdraw": lambda c, op: workflow.withdraw(c.id),
    "decide_refund": lambda c, op: workflow.decide(c.id, op.id, 1000, "The key was invalid."),
    "decide_reject": lambda c, op: workflow.decide(c.id, op.id, None, "The key was used by the buyer."),
}


def _reach(state: str, order, operator) -> Complaint:
    complaint = open_on(order)
    path = {
        Complaint.OPEN: [],
        Complaint.MERCHANT_REPLIED: ["merchant_message"],
        Complaint.ESCALATED: ["merchant_message", "escalate"],
        Complaint.RESOLVED_REFUND: ["merchant_message", "escalate", "decide_refund"],
        Complaint.RESOLVED_REJECTED: ["merchant_message", "escalate", "decide_reject"],
        Complaint.RESOLVED_REPLACED: ["offer_replacement", "accept"],
        Complaint.WITHDRAWN: ["withdraw"],
    }[state]
    for step in path:
        STEPS[step](complaint, operator)
    complaint = reload(complaint)
    assert complaint.status == state
    return complaint


ACTIVE_STEPS = {
    "buyer_message": None,
    "merchant_message": None,
    "operator_message": None,
    "offer_refund": Complaint.MERCHANT_REPLIED,
    "offer_replacement": Complaint.MERCHANT_REPLIED,
    "withdraw": Complaint.WITHDRAWN,
}
LEGAL = {
    Complaint.OPEN: {**ACTIVE_STEPS, "merchant_message": Complaint.MERCHANT_REPLIED},
    Complaint.MERCHANT_REPLIED: {**ACTIVE_STEPS, "escalate": Complaint.ESCALATED},
    Complaint.ESCALATED: {
        **ACTIVE_STEPS,
        "offer_refund": None,
        "offer_replacement": None,
        "decide_refund": Complaint.RESOLVED_REFUND,
        "decide_reject": Complaint.RESOLVED_REJECTED,
    },
}


@pytest.mark.parametrize("state", Complaint.STATUSES)
@pytest.mark.parametrize("step", sorted(STEPS))
def test_every_step_from_every_state(order, operator, state, step):
    """Legal steps move the complaint where they should (None: it stays) and add one
    entry to the thread; illegal ones are refused and change nothing."""
    complaint = _reach(state, order, operator)
    before = thread(complaint)
    audits = count(AuditEvent)
    legal = LEGAL.get(state, {})
    if step in legal:
        STEPS[step](complaint, operator)
        complaint = reload(complaint)
        assert complaint.status == (legal[step] or state)
        assert len(thread(complaint)) == len(before) + 1
    else:
        with pytest.raises(workflow.IllegalStep):
            STEPS[step](complaint, operator)
        complaint = reload(complaint)
        assert complaint.status == state
        assert thread(complaint) == before
        assert count(AuditEvent) == audits


def test_buyer_accepts_an_offer_only_once_one_is_made(order, operator):
    complaint = _reach(Complaint.MERCHANT_REPLIED, order, operator)
    with pytest.raises(workflow.IllegalStep):
        workflow.accept_offer(complaint.id)
    workflow.offer_refund(complaint.id, None, 300, note="Sorry about that.")
    complaint = workflow.accept_offer(complaint.id)
    assert complaint.status == Complaint.RESOLVED_REFUND and complaint.refund_amount == 300


def test_escalated_case_can_still_be_settled_by_the_merchants_offer(order, operator):
    complaint = _reach(Complaint.ESCALATED, order, operator)
    workflow.offer_refund(complaint.id, None, 1000)
    assert workflow.accept_offer(complaint.id).status == Complaint.RESOLVED_REFUND


def test_buyer_cannot_escalate_before_the_merchants_deadline(order):
    complaint = open_on(order)
    with pytest.raises(workflow.IllegalStep) as refused:
        workflow.escalate(complaint.id)
    with force_locale("en"):
        assert "has until" in str(refused.value.message)
    late = complaint.deadline_at + timedelta(minutes=1)
    assert workflow.escalate(complaint.id, now=late).status == Complaint.ESCALATED


@pytest.mark.parametrize("amount", [0, -5, 1001, True, "500"])
def test_refund_offer_outside_the_order_total_is_refused(order, amount):
    complaint = open_on(order)
    with pytest.raises(workflow.InvalidRefundAmount):
        workflow.offer_refund(complaint.id, None, amount)
    assert reload(complaint).status == Complaint.OPEN and reload(complaint).offer_kind is None


def test_decision_needs_a_written_reason(order, operator):
    complaint = _reach(Complaint.ESCALATED, order, operator)
    with pytest.raises(workflow.DecisionReasonRequired):
        workflow.decide(complaint.id, operator.id, None, "  ")
    assert reload(complaint).status == Complaint.ESCALATED


def test_only_an_operator_decides(order, operator, shop):
    complaint = _reach(Complaint.ESCALATED, order, operator)
    with pytest.raises(NotFound):
        workflow.decide(complaint.id, shop[0].user_id, None, "I decide myself.")
    assert reload(complaint).status == Complaint.ESCALATED


def test_every_transition_is_audited(order, operator):
    complaint = open_on(order)
    workflow.post_message(complaint.id, "merchant", None, "Checking.")
    workflow.offer_refund(complaint.id, None, 200)
    workflow.escalate(complaint.id)
    workflow.decide(complaint.id, operator.id, None, "Key was fine.")
    db.session.commit()
    actions = (
        db.session.execute(
            select(AuditEvent.action).where(AuditEvent.target == f"complaint:{complaint.ref}").order_by(AuditEvent.id)
        )
        .scalars()
        .all()
    )
    assert actions == [
        "complaint.opened",
        "complaint.merchant_replied",
        "complaint.offered",
        "complaint.escalated",
        "complaint.decided",
    ]


# -- deadlines on a frozen clock ---------------------------------------------------------------------


def test_silent_merchant_is_escalated_when_the_deadline_passes(order, operator):
    complaint = open_on(order)
    opened = complaint.created_at
    assert workflow.run_deadlines(opened + timedelta(hours=47)) == workflow.DeadlineReport(0, 0)
    assert reload(complaint).status == Complaint.OPEN
    assert workflow.run_deadlines(opened + timedelta(hours=48, minutes=1)) == workflow.DeadlineReport(1, 0)
    complaint = reload(complaint)
    assert complaint.status == Complaint.ESCALATED and complaint.deadline_at is None
    assert thread(complaint)[-1] == ("system", "auto_escalated")
    operator_emails = count(OutboxEmail, OutboxEmail.kind == "complaint_update", OutboxEmail.user_id == operator.id)
    assert operator_emails == 1
    # Running again (another worker, the next tick) changes nothing.
    assert workflow.run_deadlines(opened + timedelta(hours=49)) == workflow.DeadlineReport(0, 0)
    assert len(thread(complaint)) == 2


def test_merchant_answer_stops_its_clock_and_a_silent_buyer_is_closed(order):
    complaint = open_on(order)
    answered = complaint.created_at + timedelta(hours=1)
    workflow.post_message(complaint.id, "merchant", None, "Try again now, I reset it.", now=answered)
    assert workflow.run_deadlines(answered + timedelta(days=3)) == workflow.DeadlineReport(0, 0)
    assert reload(complaint).status == Complaint.MERCHANT_REPLIED
    assert workflow.run_deadlines(answered + timedelta(days=7, minutes=1)) == workflow.DeadlineReport(0, 1)
    complaint = reload(complaint)
    assert complaint.status == Complaint.WITHDRAWN
    assert thread(complaint)[-1] == ("system", "auto_closed")


def test_reconciler_runs_the_complaint_deadlines(order):
    complaint = open_on(order)
    complaint.deadline_at = utcnow() - timedelta(minutes=1)
    db.session.commit()
    report = reconcile()
    assert report.escalated == 1
    assert reload(complaint).status == Complaint.ESCALATED


# -- money follows the decision ------------------------------------------------------------------------


def entries(order) -> dict[str, int]:
    db.session.commit()
    return dict(
        db.session.execute(select(LedgerEntry.kind, LedgerEntry.amount).where(LedgerEntry.order_id == order.id)).all()
    )


def test_partial_refund_takes_back_its_share_of_sale_and_fee(order, shop, operator):
    complaint = _reach(Complaint.ESCALATED, order, operator)
    workflow.decide(complaint.id, operator.id, 400, "Half the codes were used.")
    order = reload(order)
    assert (order.status, order.refunded_amount) == (Order.PARTIALLY_REFUNDED, 400)
    fee = 1000 * FEE_BP // 10000
    assert entries(order) == {"sale": 1000, "fee": -fee, "refund": -400, "fee_return": fee * 400 // 1000}
    assert balances.balance(shop[0].id, settled()).available == 1000 - fee - 400 + 12
    assert settlement.reconcile_books() == []


def test_full_refund_returns_the_whole_fee(order, shop):
    complaint = open_on(order)
    workflow.offer_refund(complaint.id, None, 1000)
    workflow.accept_offer(complaint.id)
    order = reload(order)
    assert (order.status, order.refunded_amount) == (Order.REFUNDED, 1000)
    assert entries(order) == {"sale": 1000, "fee": -30, "refund": -1000, "fee_return": 30}
    balance = balances.balance(shop[0].id, settled())
    assert (balance.available, balance.frozen) == (0, 0)
    assert settlement.reconcile_books() == []


def test_refund_of_money_already_paid_out_leaves_a_negative_balance_that_blocks_withdrawals(order, shop, operator):
    merchant = shop[0]
    account = alipay(merchant)
    later = settled()
    payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 970, now=later)
    complaint = open_on(order, now=order.delivered_at + timedelta(days=5))
    workflow.post_message(complaint.id, "merchant", None, "No.", now=later)
    workflow.escalate(complaint.id, now=later)
    workflow.decide(complaint.id, operator.id, 1000, "The key never worked.", now=later)
    balance = balances.balance(merchant.id, later + timedelta(minutes=1))
    assert balance.available == -970
    sell(shop[1])  # a new sale: pending, it does not cover the debt yet
    with pytest.raises(payouts.InsufficientBalance):
        payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 100, now=later + timedelta(minutes=2))
    assert count(Withdrawal) == 1


def test_sandbox_refund_goes_back_through_the_gateway(order):
    complaint = open_on(order)
    workflow.offer_refund(complaint.id, None, 250)
    workflow.accept_offer(complaint.id)  # sync jobs: the gateway call runs at once
    refund = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    assert (refund.status, refund.amount, refund.gateway) == (Refund.DONE, 250, "sandbox")
    assert refund.reference.startswith("SBXR") and refund.complaint_id == complaint.id
    assert refunds.execute(refund.id) is False  # a second run changes nothing


def test_gateway_without_refund_api_leaves_a_manual_refund_for_the_operator(order, operator):
    # A gateway this platform cannot refund through took the payment (refunds follow the payment).
    order.gateway = "bank-transfer"
    db.session.execute(update(PaymentNotice).where(PaymentNotice.order_id == order.id).values(gateway="bank-transfer"))
    db.session.commit()
    complaint = open_on(order)
    workflow.offer_refund(complaint.id, None, 1000)
    workflow.accept_offer(complaint.id)
    refund = db.session.execute(select(Refund).where(Refund.order_id == order.id)).scalar_one()
    assert refund.status == Refund.MANUAL
    due = refunds.refunds(Refund.MANUAL)
    assert due.total == 1 and due.items[0][1].number == order.number
    refunds.mark_paid(refund.id, operator.id, "ALIPAY-20261126-0001")
    refund = reload(refund)
    assert (refund.status, refund.reference, refund.paid_by) == (Refund.PAID, "ALIPAY-20261126-0001", operator.id)
    with pytest.raises(refunds.RefundAlreadyPaid):
        refunds.mark_paid(refund.id, operator.id, "again")


def test_replacement_keys_are_delivered_like_a_delivery(shop, operator):
    order = sell(shop[1], quantity=2)
    first_keys = {k.id for k in reload(order).keys}
    complaint = open_on(order)
    workflow.offer_replacement(complaint.id, None, 1, note="Here is a fresh one.")
    available = count(CardKey, CardKey.product_id == shop[1].id, CardKey.status == CardKey.AVAILABLE)
    complaint = workflow.accept_offer(complaint.id)
    assert complaint.status == Complaint.RESOLVED_REPLACED
    sold = {k.id for k in reload(order).keys if k.status == CardKey.SOLD}
    assert first_keys < sold and len(sold) == 3
    assert count(CardKey, CardKey.product_id == shop[1].id, CardKey.status == CardKey.AVAILABLE) == available - 1
    assert count(OutboxEmail, OutboxEmail.kind == "order_replacement", OutboxEmail.order_id == order.id) == 1
    assert reload(order).status == Order.DELIVERED and entries(order) == {"sale": 2000, "fee": -60}


def test_replacement_needs_stock_when_offered_and_when_accepted(shop):
    order = sell(shop[1])
    complaint = open_on(order)
    with pytest.raises(workflow.ReplacementNotPossible):
        workflow.offer_replacement(complaint.id, None, 2)  # more than bought
    workflow.offer_replacement(complaint.id, None, 1)
    db.session.execute(
        CardKey.__table__.update()
        .where(CardKey.product_id == shop[1].id, CardKey.status == CardKey.AVAILABLE)
        .values(status=CardKey.VOID)
    )
    db.session.commit()
    with pytest.raises(workflow.ReplacementOutOfStock):
        workflow.accept_offer(complaint.id)
    assert reload(complaint).status == Complaint.MERCHANT_REPLIED


# -- who hears about it ---------------------------------------------------------------------------------


def test_each_message_emails_the_other_parties_with_their_link(order, shop, operator):
    complaint = open_on(order)
    db.session.execute(OutboxEmail.__table__.delete())
    db.session.commit()
    workflow.post_message(complaint.id, "merchant", shop[0].user_id, "Which key?")
    emails = db.session.execute(select(OutboxEmail)).scalars().all()
    assert [e.to_addr for e in emails] == ["buyer@example.com"]
    from faka.messaging.mail import build_message

    text = build_message(emails[0], "shop@example.com").get_body(("plain",)).get_content()
    assert f"/order/{order.token}/complaint/{complaint.ref}" in text and "Which key?" in text

    workflow.escalate(complaint.id)
    recipients = {e.to_addr for e in db.session.execute(select(OutboxEmail)).scalars()} - {"buyer@example.com"}
    assert recipients == {shop[0].user.email, operator.email}


def test_complaint_rate_reaches_the_merchant_dashboard(order, shop):
    from faka.platform.analytics import dashboard

    open_on(order)
    figures = dashboard(shop[0].id)
    assert figures.today.complaints == 1 and figures.today.complaint_rate == 1.0


def test_operator_case_file_masks_the_keys_and_reveal_is_audited(order, operator):
    complaint = open_on(order)
    case = workflow.case_file(complaint)
    plain = workflow.reveal_keys(complaint.id, operator.id)
    assert len(case.masked_goods) == 1 and case.masked_goods[0] == "••••" + plain[0][-4:]
    assert plain[0] not in case.masked_goods[0]
    assert [n.amount for n in case.notices] == [1000]
    assert count(AuditEvent, AuditEvent.action == workflow.KEYS_REVEALED, AuditEvent.actor_id == operator.id) == 1


def test_order_page_shows_the_partial_refund_and_keeps_the_goods(order, operator, client):
    complaint = _reach(Complaint.ESCALATED, order, operator)
    workflow.decide(complaint.id, operator.id, 400, "Half of it did not work.")
    page = client.get(f"/order/{order.token}?lang=en").get_data(as_text=True)
    assert "¥4.00 of it refunded to you" in page
    assert page.count('class="card-key"') == 1
    status = client.get(f"/order/{order.token}/status")
    assert status.status_code == 286


def test_an_order_never_delivered_is_refunded_in_full_or_not_at_all(app, operator):
    # A manual order past its promised time: paid, not delivered, nobody credited yet. A
    # part refund would leave the rest of the buyer's money with nobody.
    merchant = new_merchant()
    product = new_product(merchant, keys=0, price=1000)
    product.delivery_type, product.manual_promise_hours = DELIVERY_MANUAL, 12
    db.session.commit()
    order = sell(product)
    complaint = open_on(order, reason=Complaint.NOT_DELIVERED, now=order.paid_at + timedelta(hours=13))
    with pytest.raises(refunds.UndeliveredRefundInFull):
        workflow.offer_refund(complaint.id, None, 400)
    assert reload(complaint).offer_kind is None
    workflow.escalate(complaint.id, now=order.paid_at + timedelta(days=5))
    with pytest.raises(refunds.UndeliveredRefundInFull):
        workflow.decide(complaint.id, operator.id, 400, "Half back")
    assert reload(order).status == Order.PAID and reload(order).refunded_amount == 0
    workflow.decide(complaint.id, operator.id, 1000, "Never delivered: all back")
    assert reload(order).status == Order.REFUNDED and reload(order).refunded_amount == 1000
    assert settlement.reconcile_books() == []


def test_the_books_report_an_undelivered_order_refunded_in_part(app):
    merchant = new_merchant()
    product = new_product(merchant, keys=0, price=1000)
    product.delivery_type = DELIVERY_MANUAL
    db.session.commit()
    order = sell(product)
    db.session.execute(
        update(Order).where(Order.id == order.id).values(status=Order.PARTIALLY_REFUNDED, refunded_amount=400)
    )
    db.session.commit()
    found = [m for m in settlement.reconcile_books() if m.kind == settlement.UNDELIVERED_PART_REFUND]
    assert [(m.reference, m.expected, m.found) for m in found] == [(order.number, 1000, 400)]
