"""The shapes of the orders, coupons, complaints, money, webhooks and push-channels
resources (the shared pieces, and the conventions, are schemas.py's).

What an answer never holds: a delivered key or a manual delivery's text (counts only: the
back office's order page does not show them either), a webhook secret (but once, in the
answer that made it), a push channel's tokens (only their last four characters, as its
back-office page shows them). A buyer's email is masked in lists and whole on one order,
as in the back office.
"""

from datetime import UTC, datetime

from marshmallow import fields, validate

from faka.complaints.models import Complaint, ComplaintMessage
from faka.complaints.workflow import MERCHANT_FILTERS
from faka.core.errors import NotFound
from faka.ledger.balances import LEDGER_KINDS
from faka.messaging import push
from faka.messaging.models import EVENTS, PushMessage, WebhookDelivery
from faka.orders.coupons import MAX_AMOUNT, MAX_USAGE_LIMIT
from faka.orders.models import Coupon, Order
from faka.web.api.v1.schemas import Count, PageArgsSchema, Schema, Text, page_schema
from faka.web.request_guard import MAX_ID

ORDER_STATUSES = (
    Order.PENDING,
    Order.PAID,
    Order.DELIVERED,
    Order.EXPIRED,
    Order.CANCELLED,
    Order.PAID_UNFULFILLED,
    Order.REFUNDED,
    Order.PARTIALLY_REFUNDED,
)
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(9000, 1, 1, tzinfo=UTC)


class Moment(fields.AwareDateTime):
    """A time in a request: ISO 8601, UTC when it names no offset, between 1970 and 9000
    (so no offset can carry it past what the database stores)."""

    default_error_messages = {"range": "Not a time between 1970 and 9000."}

    def __init__(self, **kwargs):
        super().__init__(default_timezone=UTC, **kwargs)

    def _deserialize(self, value, attr, data, **kwargs):
        moment = super()._deserialize(value, attr, data, **kwargs)
        try:
            moment = moment.astimezone(UTC)
        except (OverflowError, ValueError):
            raise self.make_error("range") from None
        if not EARLIEST <= moment < LATEST:
            raise self.make_error("range")
        return moment


def id_parameter(name: str) -> list[dict]:
    """The documentation of an integer id in a path. The rule takes it as text (`row_id`
    reads it), so that any id, however large, answers 404 in JSON rather than failing
    the URL converter or the database's integer."""
    schema = {"type": "integer", "minimum": 1, "maximum": MAX_ID}
    return [{"in": "path", "name": name, "required": True, "schema": schema}]


def row_id(text: str) -> int:
    """The id a path names, or NotFound unless it is one a row can have."""
    if not (text.isascii() and text.isdigit()) or len(text) > len(str(MAX_ID)) or not 0 < int(text) <= MAX_ID:
        raise NotFound()
    return int(text)


def _described(text: str, **kwargs) -> dict:
    return {"metadata": {"description": text}, **kwargs}


# -- orders ---------------------------------------------------------------------------------


class OrderFilterArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(ORDER_STATUSES), load_default=None)
    product = Text(
        validate=validate.Length(max=64), load_default=None, **_described("A product's id: its orders only.")
    )
    created_from = Moment(load_default=None, **_described("Orders placed at or after this time."))
    created_to = Moment(load_default=None, **_described("Orders placed before this time."))
    email = Text(
        validate=validate.Length(max=254),
        load_default=None,
        **_described("The buyer's whole email address (not a part of it); case does not matter."),
    )
    number = Text(validate=validate.Length(max=40), load_default=None, **_described("One order number."))


class OrderProductSchema(Schema):
    id = fields.String(required=True, **_described("The product's public id."))
    title = fields.String(required=True)
    delivery_type = fields.String(required=True)


class OrderVariantSchema(Schema):
    key = fields.String(required=True, **_described("The variant's public id (as in the product's `variants`)."))
    name = fields.String(
        required=True,
        allow_none=True,
        **_described("Its name as the buyer chose it; null when the product offered no choice."),
    )


class AnswerSchema(Schema):
    field = fields.String(required=True, **_described("The checkout field's id (its key)."))
    label = fields.String(required=True, **_described("The question as it was asked."))
    value = fields.String(required=True)


class OrderSchema(Schema):
    number = fields.String(required=True, **_described("The order's public id, as the buyer knows it."))
    status = fields.String(required=True, validate=validate.OneOf(ORDER_STATUSES))
    product = fields.Nested(OrderProductSchema, required=True)
    variant = fields.Nested(OrderVariantSchema, required=True, **_described("What the buyer chose of the product."))
    quantity = fields.Integer(required=True)
    unit_price = fields.Integer(required=True, **_described("Minor units (fen)."))
    discount = fields.Integer(required=True, **_described("Taken off by a coupon, minor units."))
    total = fields.Integer(required=True, **_described("What the buyer paid (or is to pay), minor units."))
    refunded_amount = fields.Integer(required=True, **_described("Given back to the buyer, minor units."))
    currency = fields.String(required=True)
    coupon_id = fields.Integer(required=True, allow_none=True)
    email = fields.String(
        required=True,
        allow_none=True,
        **_described("The buyer's email: masked (ab***@qq.com) in lists, whole when you read one order."),
    )
    answers = fields.List(
        fields.Nested(AnswerSchema),
        required=True,
        **_described("What the buyer answered to the checkout fields: masked in lists, whole on one order."),
    )
    risk_flags = fields.List(
        fields.String(), required=True, **_described("The platform's risk checks that noticed this order.")
    )
    held = fields.Boolean(required=True, **_described("Paid, and held for the platform's review before delivery."))
    awaiting_delivery = fields.Boolean(
        required=True,
        **_described("Paid and waiting for you to deliver it by hand (POST .../deliver)."),
    )
    keys_delivered = fields.Integer(
        required=True, **_described("Card keys sold to this order (the keys themselves are never shown here).")
    )
    content_delivered = fields.Boolean(
        required=True, **_described("Whether fixed, shared or hand-written content was delivered (never shown here).")
    )
    created_at = fields.DateTime(required=True)
    expires_at = fields.DateTime(required=True, **_described("Unpaid by then, the order expires."))
    paid_at = fields.DateTime(required=True, allow_none=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)
    refunded_at = fields.DateTime(required=True, allow_none=True)
    cancelled_at = fields.DateTime(required=True, allow_none=True)


class TimelineEventSchema(Schema):
    what = fields.String(
        required=True, **_described("created, paid, delivered, emailed, refunded, expired or cancelled.")
    )
    at = fields.DateTime(required=True)


class OrderDetailSchema(OrderSchema):
    timeline = fields.List(fields.Nested(TimelineEventSchema), required=True)


OrderPageSchema = page_schema(OrderSchema, "OrderPage")


class ManualDeliverySchema(Schema):
    content = Text(
        multiline=True,
        required=True,
        validate=validate.Length(max=5000),
        **_described("What the buyer receives (at most 5,000 characters), shown on their order page and emailed."),
    )


# -- coupons --------------------------------------------------------------------------------


class CouponArgsSchema(PageArgsSchema):
    active = fields.Boolean(load_default=None, **_described("Only coupons switched on (true) or off (false)."))


class CouponSchema(Schema):
    id = fields.Integer(required=True)
    code = fields.String(required=True)
    kind = fields.String(required=True, validate=validate.OneOf((Coupon.FIXED, Coupon.PERCENT)))
    value = fields.Integer(
        required=True, **_described("fixed: minor units off the order; percent: basis points (1000 = 10 %).")
    )
    product = fields.String(
        required=True, allow_none=True, **_described("The product's id it is limited to; null: all your products.")
    )
    min_amount = fields.Integer(required=True, **_described("The least order total it applies to, minor units."))
    usage_limit = fields.Integer(required=True, allow_none=True, **_described("null: no limit."))
    used_count = fields.Integer(required=True)
    expires_at = fields.DateTime(required=True, allow_none=True, **_described("null: never."))
    active = fields.Boolean(required=True, **_described("Switched on. false: buyers can no longer use it."))
    created_at = fields.DateTime(required=True)


class CouponCreateSchema(Schema):
    code = Text(
        required=True,
        max_length=32,
        **_described("3 to 32 letters, digits, hyphens or underscores; upper-cased. Unique among your coupons."),
    )
    kind = fields.String(required=True, validate=validate.OneOf((Coupon.FIXED, Coupon.PERCENT)))
    value = Count(
        0,
        MAX_AMOUNT,
        required=True,
        **_described("fixed: minor units off the order; percent: basis points, 1 to 9999 (orders cannot be free)."),
    )
    product = Text(
        allow_none=True,
        load_default=None,
        validate=validate.Length(max=64),
        **_described("A product's id to limit it to; leave out for all your products."),
    )
    min_amount = Count(0, MAX_AMOUNT, load_default=0, **_described("Minor units."))
    usage_limit = Count(0, MAX_USAGE_LIMIT, allow_none=True, load_default=None, **_described("null: no limit."))
    expires_at = Moment(allow_none=True, load_default=None, **_described("In the future; null: never."))


class CouponUpdateSchema(Schema):
    active = fields.Boolean(**_described("false switches it off; true on again."))
    min_amount = Count(0, MAX_AMOUNT, **_described("Minor units."))
    usage_limit = Count(0, MAX_USAGE_LIMIT, allow_none=True, **_described("null: no limit."))
    expires_at = Moment(allow_none=True, **_described("In the future; null: never."))


CouponPageSchema = page_schema(CouponSchema, "CouponPage")


# -- complaints -----------------------------------------------------------------------------


class ComplaintArgsSchema(PageArgsSchema):
    status = fields.String(
        validate=validate.OneOf(MERCHANT_FILTERS),
        load_default="all",
        **_described("`active` (in progress), `all` (the default), or one status."),
    )


class OfferSchema(Schema):
    kind = fields.String(required=True, validate=validate.OneOf((Complaint.OFFER_REFUND, Complaint.OFFER_REPLACEMENT)))
    amount = fields.Integer(required=True, allow_none=True, **_described("A refund's amount, minor units."))
    quantity = fields.Integer(required=True, allow_none=True, **_described("Replacement keys."))


class ComplaintSchema(Schema):
    ref = fields.String(required=True, **_described("The complaint's public id."))
    order = fields.String(required=True, **_described("The order's number."))
    status = fields.String(required=True, validate=validate.OneOf(Complaint.STATUSES))
    reason = fields.String(required=True, validate=validate.OneOf(Complaint.REASONS))
    description = fields.String(required=True, **_described("The buyer's words."))
    deadline_at = fields.DateTime(
        required=True,
        allow_none=True,
        **_described("Whoever acts next must by then: you while `open`, the buyer after your answer."),
    )
    offer = fields.Nested(OfferSchema, required=True, allow_none=True)
    refund_amount = fields.Integer(required=True, allow_none=True, **_described("What the resolution refunded."))
    resolution_note = fields.String(required=True, allow_none=True, **_described("The platform's written reason."))
    created_at = fields.DateTime(required=True)
    updated_at = fields.DateTime(required=True)
    escalated_at = fields.DateTime(required=True, allow_none=True)
    resolved_at = fields.DateTime(required=True, allow_none=True)


class ComplaintMessageSchema(Schema):
    id = fields.Integer(required=True)
    author = fields.String(
        required=True,
        validate=validate.OneOf(
            (ComplaintMessage.BUYER, ComplaintMessage.MERCHANT, ComplaintMessage.OPERATOR, ComplaintMessage.SYSTEM)
        ),
    )
    event = fields.String(
        required=True, allow_none=True, **_described("A step of the case (opened, offer, escalated ...); null: words.")
    )
    body = fields.String(required=True)
    images = fields.Integer(required=True, **_described("Evidence images attached (see them in the back office)."))
    created_at = fields.DateTime(required=True)


class ComplaintDetailSchema(ComplaintSchema):
    messages = fields.List(
        fields.Nested(ComplaintMessageSchema), required=True, **_described("The thread, oldest first.")
    )


class ComplaintReplySchema(Schema):
    body = Text(multiline=True, required=True, max_length=4000, **_described("Your message to the buyer."))


ComplaintPageSchema = page_schema(ComplaintSchema, "ComplaintPage")


# -- money ----------------------------------------------------------------------------------


class BalanceSchema(Schema):
    available = fields.Integer(required=True, **_described("Settled: yours to withdraw."))
    pending = fields.Integer(required=True, **_described("Credited, still in the settlement hold."))
    frozen = fields.Integer(required=True, **_described("Of orders with a complaint in progress."))
    withdrawing = fields.Integer(required=True, **_described("Requested or approved, not yet paid out."))
    withdrawn = fields.Integer(required=True, **_described("Paid out."))
    total = fields.Integer(required=True, **_described("pending + available + frozen: what the platform owes you."))
    currency = fields.String(required=True)


class LedgerArgsSchema(PageArgsSchema):
    kind = fields.String(validate=validate.OneOf(LEDGER_KINDS), load_default=None)
    created_from = Moment(load_default=None, **_described("Entries written at or after this time."))
    created_to = Moment(load_default=None, **_described("Entries written before this time."))


class LedgerEntrySchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(LEDGER_KINDS))
    amount = fields.Integer(required=True, **_described("Signed, minor units."))
    order = fields.String(required=True, allow_none=True, **_described("The order's number, for order entries."))
    withdrawal_id = fields.Integer(required=True, allow_none=True)
    available_at = fields.DateTime(required=True, **_described("When it settles (leaves the hold)."))
    created_at = fields.DateTime(required=True)


LedgerPageSchema = page_schema(LedgerEntrySchema, "LedgerPage")


# -- webhooks -------------------------------------------------------------------------------

EVENT_NAMES = fields.String(validate=validate.OneOf(EVENTS))
DELIVERY_STATUSES = (WebhookDelivery.PENDING, WebhookDelivery.DELIVERED, WebhookDelivery.FAILED)


class WebhookSchema(Schema):
    id = fields.Integer(required=True)
    url = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    enabled = fields.Boolean(required=True)
    created_at = fields.DateTime(required=True)


class WebhookWithSecretSchema(WebhookSchema):
    secret = fields.String(
        required=True,
        **_described("The signing secret (whsec_...), in this answer only: keep it, it is never shown again."),
    )


class WebhookCreateSchema(Schema):
    url = Text(required=True, max_length=500, **_described("http:// or https:// on the public internet."))
    events = fields.List(
        EVENT_NAMES,
        validate=validate.Length(1, len(EVENTS)),
        **_described("The events to send; leave out for all of them."),
    )


class WebhookUpdateSchema(Schema):
    url = Text(max_length=500)
    events = fields.List(EVENT_NAMES, validate=validate.Length(1, len(EVENTS)))
    enabled = fields.Boolean(**_described("false: events are not sent (a test still is)."))


class DeliveryArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(DELIVERY_STATUSES), load_default=None)


class DeliverySchema(Schema):
    id = fields.String(required=True, **_described("The event's `id`, as your endpoint received it (whd_...)."))
    event = fields.String(required=True)
    status = fields.String(required=True, validate=validate.OneOf(DELIVERY_STATUSES))
    attempts = fields.Integer(required=True)
    response_code = fields.Integer(required=True, allow_none=True, **_described("Your endpoint's last HTTP status."))
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    delivered_at = fields.DateTime(required=True, allow_none=True)


WebhookListSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(WebhookSchema), required=True)}, name="WebhookList"
)
DeliveryPageSchema = page_schema(DeliverySchema, "WebhookDeliveryPage")


# -- push channels --------------------------------------------------------------------------

MESSAGE_STATUSES = (PushMessage.PENDING, PushMessage.SENT, PushMessage.FAILED)
PUSH_LANGUAGES = ("zh_CN", "en")


class SettingSchema(Schema):
    name = fields.String(required=True)
    value = fields.String(required=True, **_described("A secret's last four characters only."))
    secret = fields.Boolean(required=True)


class PushChannelSchema(Schema):
    id = fields.Integer(required=True)
    kind = fields.String(required=True, validate=validate.OneOf(push.KINDS))
    name = fields.String(required=True)
    events = fields.List(fields.String(), required=True)
    language = fields.String(required=True, **_described("The language its messages are written in."))
    settings = fields.List(fields.Nested(SettingSchema), required=True)
    paused = fields.Boolean(required=True)
    paused_reason = fields.String(
        required=True,
        allow_none=True,
        **_described("owner: you paused it; failures: it paused itself after messages failed in a row."),
    )
    paused_at = fields.DateTime(required=True, allow_none=True)
    consecutive_failures = fields.Integer(required=True)
    last_sent_at = fields.DateTime(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)


def _push_input(required: bool) -> dict:
    def need(**kwargs):
        return {"required": True} if required else kwargs

    return {
        "name": Text(max_length=push.MAX_NAME, **need(), **_described('For you, e.g. "My phone".')),
        "settings": fields.Dict(
            keys=Text(validate=validate.Length(1, 40)),
            values=Text(validate=validate.Length(max=1000)),
            **need(),
            **_described(
                "The kind's settings by name (its tokens, keys, chat id: see the push channel docs)."
                + ("" if required else " Only those that change; a secret left out is kept.")
            ),
        ),
        "events": fields.List(
            fields.String(validate=validate.OneOf(push.MERCHANT_EVENTS)),
            validate=validate.Length(1, len(push.MERCHANT_EVENTS)),
            **_described("The events to push" + ("; leave out for all of them." if required else ".")),
        ),
        "language": fields.String(
            validate=validate.OneOf(PUSH_LANGUAGES),
            **_described("Of the messages" + ("; leave out for your key's." if required else ".")),
        ),
    }


PushChannelCreateSchema = Schema.from_dict(
    {"kind": fields.String(required=True, validate=validate.OneOf(push.KINDS)), **_push_input(required=True)},
    name="PushChannelCreate",
)
PushChannelUpdateSchema = Schema.from_dict(
    {
        **_push_input(required=False),
        "paused": fields.Boolean(**_described("true pauses it (queued messages are dropped); false resumes it.")),
    },
    name="PushChannelUpdate",
)
PushChannelListSchema = Schema.from_dict(
    {"items": fields.List(fields.Nested(PushChannelSchema), required=True)}, name="PushChannelList"
)


class PushMessageArgsSchema(PageArgsSchema):
    status = fields.String(validate=validate.OneOf(MESSAGE_STATUSES), load_default=None)


class PushMessageSchema(Schema):
    id = fields.Integer(required=True)
    event = fields.String(required=True)
    title = fields.String(required=True)
    text = fields.String(required=True, **_described("Never a key, a secret or a buyer's whole email."))
    status = fields.String(required=True, validate=validate.OneOf(MESSAGE_STATUSES))
    attempts = fields.Integer(required=True)
    http_status = fields.Integer(required=True, allow_none=True)
    provider_code = fields.String(required=True, allow_none=True, **_described("The provider's own code, if any."))
    last_error = fields.String(required=True, allow_none=True)
    created_at = fields.DateTime(required=True)
    sent_at = fields.DateTime(required=True, allow_none=True)


PushMessagePageSchema = page_schema(PushMessageSchema, "PushMessagePage")
