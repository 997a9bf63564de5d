"""Push channels: the events reach the owner's phone, through a local WeCom robot; retries
with back-off, automatic pause, secrets at rest, the address guard and owners' scopes."""

import io
import json
from dataclasses import dataclass, field
from datetime import timedelta

import pytest
from flask import current_app
from PIL import Image
from sqlalchemy import select
from werkzeug import Response

from conftest import count, key_texts, reload, run_worker, signed_notify, with_totp
from faka.accounts import onboarding, users
from faka.catalog.models import DELIVERY_MANUAL
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core.clock import local_time
from faka.core.errors import NotFound
from faka.extensions import db
from faka.ledger import payouts
from faka.ledger.models import LedgerEntry, PayoutAccount
from faka.messaging import mail, push
from faka.messaging.models import OutboxEmail, PushChannel, PushMessage
from faka.ops.reconcile import reconcile
from faka.orders import checkout
from faka.orders.models import Order
from faka.payments.gateways import configure_gateway
from faka.payments.models import PaymentAttempt
from faka.risk.models import SignIn

SHOP_KEY = "shop-robot-key-0001"
PLATFORM_KEY = "platform-robot-key-0002"
OK = (200, {"errcode": 0, "errmsg": "ok"})


@pytest.fixture
def app(make_app):
    """The robot listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@dataclass
class Robot:
    """A WeCom group robot: what each key received, and what it answers next."""

    received: list[tuple[str, str]] = field(default_factory=list)
    answers: list[tuple[int, dict]] = field(default_factory=list)

    def answer(self, request):
        self.received.append((request.args["key"], request.get_json()["text"]["content"]))
        status, body = self.answers.pop(0) if self.answers else OK
        return Response(json.dumps(body), status, content_type="application/json")

    def texts(self, key: str = SHOP_KEY) -> list[str]:
        return [text for to, text in self.received if to == key]


@pytest.fixture
def robot(app, httpserver) -> Robot:
    app.config["PUSH_PROVIDER_URLS"] = {kind: httpserver.url_for("/").rstrip("/") for kind in push.KINDS}
    robot = Robot()
    httpserver.expect_request("/cgi-bin/webhook/send", method="POST").respond_with_handler(robot.answer)
    return robot


def shop_channel(merchant, events=push.MERCHANT_EVENTS, locale="en") -> PushChannel:
    return push.create_channel(merchant.id, "wecom", "Phone", {"key": SHOP_KEY}, events, locale)


def platform_channel(events=push.PLATFORM_EVENTS) -> PushChannel:
    return push.create_channel(None, "wecom", "Ops group", {"key": PLATFORM_KEY}, events, "en")


def messages(*where) -> list[PushMessage]:
    db.session.commit()
    return list(db.session.execute(select(PushMessage).where(*where).order_by(PushMessage.id)).scalars())


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


# -- events ---------------------------------------------------------------------------------------


def test_paid_order_pushes_a_short_message_with_a_masked_buyer(product, merchant, place, pay, robot):
    shop_channel(merchant)
    order = place(product, 2, email="alice.buyer@example.com")
    pay(order)
    assert reload(order).status == Order.DELIVERED

    (text,) = robot.texts()
    assert text == (
        "New order paid: ¥20.00\n"
        f"Order {order.number}: Test product × 2\n"
        "Buyer: al***@example.com\n"
        f"http://localhost/merchant/orders/{order.number}"
    )
    assert "alice.buyer" not in text
    for key in key_texts(order):
        assert key not in text
    (message,) = messages()
    assert (message.event, message.status, message.attempts, message.provider_code) == ("order.paid", "sent", 1, "0")
    assert reload(message).text.startswith(f"Order {order.number}")  # the log keeps the short text


def test_only_the_events_a_channel_takes_reach_it(product, merchant, place, pay, robot):
    shop_channel(merchant, events=["stock.low"])
    pay(place(product))
    assert robot.received == [] and messages() == []


def test_manual_order_asks_the_merchant_to_deliver(make_product, merchant, place, pay, robot):
    shop_channel(merchant, events=["order.manual"])
    order = place(make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="Top-up"))
    pay(order)
    (text,) = robot.texts()
    assert text.startswith(f"Order to deliver by hand: {order.number}\nTop-up × 1, ¥10.00\n")
    assert "Deliver it within 24 hours." in text


def test_held_order_reaches_the_merchant_and_the_operator(make_product, merchant, place, pay, robot):
    shop_channel(merchant)
    platform_channel()
    product = make_product(keys=3, risk_hold_at=20, title="Held product")
    db.session.add(SignIn(user_id=merchant.user_id, ip="203.0.113.7"))  # the buyer is the shop's owner
    db.session.commit()
    with current_app.test_request_context():
        order = checkout.place_order(product.slug, 1, "buyer@example.com", "secret-1", client_ip="203.0.113.7")
    pay(order)
    assert reload(order).is_held

    assert [t.split("\n")[0] for t in robot.texts()] == [
        "New order paid: ¥10.00",
        f"Order held for review: {order.number}",
    ]
    (ops,) = robot.texts(PLATFORM_KEY)
    assert ops.startswith(f"Order held for review: {order.number}\nHeld product, ¥10.00, shop Test Shop\n")
    assert ops.endswith("http://localhost/operator/risk")


def test_low_stock_then_sold_out_each_once(make_product, merchant, place, pay, robot):
    shop_channel(merchant, events=["stock.low", "stock.out"])
    product = make_product(keys=3, low_stock_threshold=2, title="Game card")
    for _ in range(3):
        pay(place(product))
    assert robot.texts() == [
        f"Low stock: Game card\n2 keys left (alert at 2).\nhttp://localhost/merchant/products/{product.slug}/keys",
        "Sold out: Game card\nThe last key was sold. Add keys so that buyers can order it again.\n"
        f"http://localhost/merchant/products/{product.slug}/keys",
    ]


def test_sold_out_needs_no_low_stock_threshold(make_product, merchant, place, pay, robot):
    shop_channel(merchant, events=["stock.out"])
    product = make_product(keys=1, title="Last one")
    pay(place(product))
    assert [t.split("\n")[0] for t in robot.texts()] == ["Sold out: Last one"]


def test_complaint_opened_escalated_and_decided(product, merchant, operator, place, pay, robot, frozen_clock):
    shop_channel(merchant)
    platform_channel()
    order = place(product)
    pay(order)
    complaint = workflow.open_complaint(reload(order).token, Complaint.KEY_INVALID, "Already used")
    deadline = local_time(complaint.deadline_at)
    workflow.escalate(complaint.id, now=frozen_clock.now + timedelta(days=30))
    workflow.decide(complaint.id, operator.id, 500, "Partly used")

    link = f"http://localhost/merchant/complaints/{complaint.ref}"
    assert robot.texts()[1:] == [
        f"Complaint about order {order.number}\nTest product: The key does not work\nAnswer before {deadline}.\n{link}",
        f"Complaint escalated: order {order.number}\nTest product: the platform will decide.\n{link}",
        f"Complaint decided: order {order.number}\nRefund to the buyer: ¥5.00.\n{link}",
    ]
    assert robot.texts(PLATFORM_KEY) == [
        f"Complaint escalated: order {order.number}\nTest product: the platform will decide.\n"
        f"http://localhost/operator/complaints/{complaint.ref}"
    ]


def test_a_chinese_channel_reads_the_reason_in_chinese(product, merchant, place, pay, robot):
    shop_channel(merchant, events=["complaint.opened"], locale="zh_CN")
    order = place(product)
    pay(order)
    workflow.open_complaint(reload(order).token, Complaint.KEY_INVALID, "Already used")
    (text,) = robot.texts()
    assert "卡密无效" in text or "无法使用" in text  # the reason's label, in the channel's language


def test_withdrawal_decisions(product, merchant, operator, place, pay, robot):
    shop_channel(merchant, events=["withdrawal.approved", "withdrawal.paid", "withdrawal.rejected"])
    pay(place(product))
    pay(place(product))
    for entry in db.session.scalars(select(LedgerEntry).where(LedgerEntry.merchant_id == merchant.id)):
        entry.available_at = entry.created_at - timedelta(days=1)
    db.session.commit()
    with_totp(merchant.user)
    account = payouts.add_payout_account(merchant.id, PayoutAccount.ALIPAY, "Zhang San", "13800138000")
    first = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 500)
    second = payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 600)
    payouts.approve_withdrawal(first.id, operator.id)
    payouts.mark_withdrawal_paid(first.id, operator.id, reference="ZFB-1")
    payouts.reject_withdrawal(second.id, operator.id, "Account name does not match")

    money = "http://localhost/merchant/money"
    assert robot.texts() == [
        f"Withdrawal #{first.id} approved: ¥5.00\nThe payment to your payout account is on its way.\n{money}",
        f"Withdrawal #{first.id} paid: ¥5.00\nThe money was sent to your payout account.\n{money}",
        f"Withdrawal #{second.id} rejected: ¥6.00\nReason: Account name does not match\n"
        f"The amount is available again.\n{money}",
    ]


def test_merchant_waiting_for_review_reaches_the_operator(app, robot):
    platform_channel(events=["merchant.review"])
    applicant = users.create_merchant("applicant@shop.test", "merchant-pass-2", "Applicant Shop")
    onboarding.submit_qualification(
        applicant.id, onboarding.Qualification("Zhang San Ltd", "company", "91110000MA01ABCD2X", "139"), png_bytes()
    )
    (text,) = robot.texts(PLATFORM_KEY)
    assert text.startswith("Merchant waiting for review: Applicant Shop\nQualification submitted ")
    assert text.endswith(f"http://localhost/operator/merchants/{applicant.id}")
    assert "91110000MA01ABCD2X" not in text  # the ID number is not for a phone's lock screen


def test_failing_gateway_reaches_the_operator_once(product, place, robot):
    platform_channel(events=["gateway.failing"])
    configure_gateway("epay", {"api_url": "https://pay.example.invalid", "pid": "1001", "key": "k"}, enabled=True)
    for _ in range(3):
        db.session.add(PaymentAttempt(order_id=place(product).id, gateway="epay", method="wap"))
    db.session.commit()
    reconcile()
    reconcile()
    (text,) = robot.texts(PLATFORM_KEY)
    assert text.startswith("Payment gateway may be failing: EPay\n3 payments started")
    assert "No notification has ever arrived." in text and text.endswith("/operator/payments?gateway=epay")


def test_events_of_another_owner_are_not_taken(merchant, app):
    with pytest.raises(push.InvalidPushEvents):
        push.create_channel(merchant.id, "wecom", "Phone", {"key": SHOP_KEY}, ["merchant.review"])
    with pytest.raises(push.InvalidPushEvents):
        push.create_channel(None, "wecom", "Ops", {"key": SHOP_KEY}, ["order.paid"])
    with pytest.raises(push.InvalidPushEvents):
        push.create_channel(merchant.id, "wecom", "Phone", {"key": SHOP_KEY}, [])
    assert count(PushChannel) == 0


# -- failures, retries, pausing ------------------------------------------------------------------------


def test_a_failed_attempt_backs_off_then_the_reconciler_sends_it(product, merchant, place, pay, robot, frozen_clock):
    shop_channel(merchant, events=["order.paid"])
    robot.answers = [(503, {"errcode": -1, "errmsg": "system busy"})]
    order = place(product)
    assert pay(order).text == "success"  # a push cannot fail the gateway's answer
    (message,) = messages()
    assert (message.status, message.attempts, message.http_status, message.provider_code) == (
        "pending",
        1,
        503,
        "-1",
    )
    assert reconcile().pushes == 0  # not due yet: it backs off
    frozen_clock.advance(seconds=61)
    assert reconcile().pushes == 1
    message = reload(message)
    assert (message.status, message.attempts, message.last_error) == ("sent", 2, None)
    assert len(robot.texts()) == 2 and robot.texts()[0] == robot.texts()[1]


def test_a_provider_rate_limit_is_retried_but_a_wrong_key_is_not(product, merchant, place, pay, robot):
    shop_channel(merchant, events=["order.paid"])
    robot.answers = [(200, {"errcode": 45009, "errmsg": "api freq out of limit"})]
    pay(place(product))
    robot.answers = [(200, {"errcode": 93000, "errmsg": "invalid webhook url"})]
    pay(place(product))
    first, second = messages()
    assert (first.status, first.provider_code) == ("pending", "45009")
    assert (second.status, second.attempts, second.provider_code) == ("failed", 1, "93000")


def test_a_message_gives_up_after_the_last_attempt(product, merchant, place, pay, robot, frozen_clock):
    shop_channel(merchant, events=["order.paid"])
    robot.answers = [(500, {})] * push.MAX_ATTEMPTS
    pay(place(product))
    for _ in range(push.MAX_ATTEMPTS):
        frozen_clock.advance(hours=7)
        reconcile()
    (message,) = messages()
    assert (message.status, message.attempts) == ("failed", push.MAX_ATTEMPTS)
    assert len(robot.received) == push.MAX_ATTEMPTS
    assert reload(push.list_channels(merchant.id)[0]).consecutive_failures == 1


def test_repeated_failures_pause_the_channel_and_tell_the_merchant(make_product, merchant, place, pay, robot):
    channel = shop_channel(merchant, events=["order.paid"])
    product = make_product(keys=10)
    robot.answers = [(200, {"errcode": 93000, "errmsg": "invalid webhook url"})] * push.PAUSE_AFTER
    for _ in range(push.PAUSE_AFTER):
        pay(place(product))
    channel = reload(channel)
    assert channel.paused_reason == PushChannel.PAUSED_AFTER_FAILURES and channel.paused_at is not None
    (email,) = db.session.scalars(select(OutboxEmail).where(OutboxEmail.kind == push.EMAIL_CHANNEL_PAUSED)).all()
    assert email.to_addr == merchant.user.email and email.subject == "Push channel paused: Phone"
    body = mail.build_message(email, "faka <no-reply@localhost>").get_content()
    assert 'The push channel "Phone" (WeCom group robot (企业微信)) failed to deliver 5 messages in a row' in body
    assert "The last error: 93000 invalid webhook url" in body
    assert f"http://localhost/merchant/push/{channel.id}" in body and SHOP_KEY not in body

    pay(place(product))  # paused: nothing more is sent, nor recorded
    assert len(robot.received) == push.PAUSE_AFTER and len(messages()) == push.PAUSE_AFTER

    test = push.send_test(channel.id, merchant.id)  # the robot was fixed: a test resumes it
    assert test.status == "sent"
    channel = reload(channel)
    assert (channel.paused_at, channel.consecutive_failures) == (None, 0)
    pay(place(product))
    assert len(robot.received) == push.PAUSE_AFTER + 2


def test_a_failed_test_neither_counts_nor_resumes(merchant, robot):
    channel = shop_channel(merchant)
    robot.answers = [(200, {"errcode": 93000, "errmsg": "invalid webhook url"})] * 2
    assert push.send_test(channel.id, merchant.id).status == "failed"
    assert reload(channel).consecutive_failures == 0
    push.pause_channel(channel.id, merchant.id)
    assert push.send_test(channel.id, merchant.id).status == "failed"
    assert reload(channel).paused_reason == PushChannel.PAUSED_BY_OWNER


def test_a_channel_paused_by_its_owner_drops_what_was_queued(product, merchant, place, pay, robot, frozen_clock):
    channel = shop_channel(merchant, events=["order.paid"])
    robot.answers = [(503, {})]
    pay(place(product))
    push.pause_channel(channel.id, merchant.id)
    frozen_clock.advance(minutes=2)
    reconcile()
    (message,) = messages()
    assert (message.status, message.last_error) == ("failed", "channel paused")
    assert reload(channel).consecutive_failures == 0  # not the channel's failure
    assert push.send_test(channel.id, merchant.id).status == "sent"
    assert reload(channel).paused_reason == PushChannel.PAUSED_BY_OWNER  # still paused: the owner's choice
    push.resume_channel(channel.id, merchant.id)
    pay(place(product))
    assert messages()[-1].status == "sent"


def test_sent_by_a_real_worker(app, rq_app, merchant, product, place, robot):
    rq_app.config.update(WEBHOOK_ALLOW_PRIVATE=True, PUSH_PROVIDER_URLS=app.config["PUSH_PROVIDER_URLS"])
    shop_channel(merchant, events=["order.paid"])
    order = place(product)
    assert rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    assert messages()[0].status == "pending" and robot.received == []  # queued, not sent in the request
    run_worker(rq_app)
    assert messages()[0].status == "sent" and len(robot.received) == 1


# -- secrets, the address guard, owners ---------------------------------------------------------------


def test_settings_are_encrypted_and_shown_only_by_their_end(merchant, app):
    channel = push.create_channel(
        merchant.id,
        "dingtalk",
        "Group",
        {"access_token": "a" * 60 + "4f2a", "secret": "SEC" + "b" * 60 + "9c1d"},
        ["order.paid"],
    )
    stored = reload(channel).settings_ciphertext
    assert "aaaa" not in stored and "SEC" not in stored
    assert [(h.name, h.shown) for h in push.setting_hints(channel)] == [("access_token", "4f2a"), ("secret", "9c1d")]
    push.update_channel(channel.id, merchant.id, settings={"access_token": "", "secret": ""}, name="Shop group")
    assert [h.shown for h in push.setting_hints(reload(channel))] == ["4f2a", "9c1d"]  # empty keeps them


def test_the_address_guard_refuses_private_addresses(make_app, httpserver, merchant):
    app = make_app(WEBHOOK_ALLOW_PRIVATE=False)
    with app.app_context():
        with pytest.raises(push.InvalidPushSettings) as refused:
            push.create_channel(
                merchant.id,
                "bark",
                "iPhone",
                {"device_key": "ynJ5Ft4atkMkWeo2", "server": httpserver.url_for("/")},
                ["order.paid"],
            )
        assert refused.value.field == "server"
        # A provider's address that resolves to this machine is refused at the connection.
        app.config["PUSH_PROVIDER_URLS"] = {
            **app.config["PUSH_PROVIDER_URLS"],
            "wecom": httpserver.url_for("/").rstrip("/"),
        }
        channel = push.create_channel(merchant.id, "wecom", "Phone", {"key": SHOP_KEY}, ["order.paid"])
        message = push.send_test(channel.id, merchant.id)
        assert message.status == "failed" and "not public" in message.last_error
        assert httpserver.log == []


def test_an_owner_reaches_only_its_own_channels(merchant, app, robot):
    mine = shop_channel(merchant)
    platform = platform_channel()
    other = users.create_merchant("other@shop.test", "merchant-pass-3", "Other Shop", approved=True)
    for channel_id, owner in ((mine.id, other.id), (mine.id, None), (platform.id, merchant.id)):
        for act, args in (
            (push.get_channel, ()),
            (push.update_channel, ("Mine now",)),
            (push.pause_channel, ()),
            (push.send_test, ()),
            (push.channel_log, ()),
            (push.delete_channel, ()),
        ):
            with pytest.raises(NotFound):
                act(channel_id, owner, *args)
    assert robot.received == [] and count(PushChannel) == 2 and reload(mine).name == "Phone"


def test_an_owner_has_at_most_ten_channels(merchant, app):
    for i in range(push.MAX_CHANNELS):
        push.create_channel(
            merchant.id, "pushplus", f"Phone {i}", {"token": "be8652e98bd04139a13e1bffcd6d0f71"}, ["order.paid"]
        )
    with pytest.raises(push.TooManyChannels):
        push.create_channel(
            merchant.id, "pushplus", "One more", {"token": "be8652e98bd04139a13e1bffcd6d0f71"}, ["order.paid"]
        )
    push.create_channel(None, "pushplus", "Ops", {"token": "be8652e98bd04139a13e1bffcd6d0f71"}, ["gateway.failing"])


def test_deleting_a_channel_deletes_its_log(product, merchant, place, pay, robot):
    channel = shop_channel(merchant, events=["order.paid"])
    pay(place(product))
    push.delete_channel(channel.id, merchant.id)
    assert count(PushChannel) == 0 and count(PushMessage) == 0
