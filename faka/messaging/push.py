"""Push channels: short messages to a merchant's or the operator's phone.

A channel belongs to a merchant, or to the platform (merchant_id None: the operators'). It
is one of the kinds in push_providers.PROVIDERS (Telegram bot, Bark, WeCom, DingTalk and
Feishu robots, Server酱, PushPlus), with its settings (tokens, keys, signing secrets)
stored encrypted, the events it takes and the language its messages are written in.

Events: where something happens, `emit()` (inside that write transaction) records one
PushMessage per active channel of the owner that takes the event, its short text
rendered there and then in the channel's language, and enqueues
`messaging.tasks.send_push`, sent once the transaction commits. A message holds the
order's number, the product, the amount, at most a masked buyer email and a back-office
link; never a key, a secret or a buyer's full email.

Sending: `deliver()` makes one attempt through the address guard (outbound.post). A
failure that trying again may cure (no answer, HTTP 429 or 5xx, the provider's "too many
messages") is retried on RETRY_AFTER, by RQ and by the reconciler (`due_message_ids`),
up to MAX_ATTEMPTS; any other (a wrong token, a removed robot) fails the message at once.
After PAUSE_AFTER messages in a row failed, the channel pauses itself and its owner gets
an email; the channel's page says why. Any message sent resets the count.

"Send a test" sends one message at once, in the request, through the same path, and is
not retried. It is sent even to a paused channel; when it goes through, a channel paused
after failures is resumed (one its owner paused stays paused). A failed test does not
count towards pausing.
"""

import json
import logging
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Final

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from sqlalchemy import delete, func, select

from faka.accounts.models import ROLE_OPERATOR, Merchant, User
from faka.catalog import variants
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.money import format_money
from faka.core.pagination import Page, paginate
from faka.core.text import mask_email
from faka.extensions import db
from faka.messaging import outbound
from faka.messaging.mail import queue_email
from faka.messaging.models import PushChannel, PushMessage
from faka.messaging.push_providers import KINDS, PROVIDERS, InvalidPushSettings, Outcome, Provider
from faka.platform.settings import site_settings

__all__ = ["InvalidPushSettings", "KINDS", "PROVIDERS"]

log = logging.getLogger(__name__)

# -- events ---------------------------------------------------------------------------------

# The events' names (Final: constants, and not audit actions, which read alike).
ORDER_PAID: Final = "order.paid"
ORDER_MANUAL: Final = "order.manual"
ORDER_HELD: Final = "order.held"
STOCK_LOW: Final = "stock.low"
STOCK_OUT: Final = "stock.out"
COMPLAINT_OPENED: Final = "complaint.opened"
COMPLAINT_ESCALATED: Final = "complaint.escalated"
COMPLAINT_DECIDED: Final = "complaint.decided"
WITHDRAWAL_APPROVED: Final = "withdrawal.approved"
WITHDRAWAL_PAID: Final = "withdrawal.paid"
WITHDRAWAL_REJECTED: Final = "withdrawal.rejected"
MERCHANT_REVIEW: Final = "merchant.review"
GATEWAY_FAILING: Final = "gateway.failing"
TEST = "test"  # "send a test": not subscribable

MERCHANT_EVENTS = (
    ORDER_PAID,
    ORDER_MANUAL,
    STOCK_LOW,
    STOCK_OUT,
    COMPLAINT_OPENED,
    COMPLAINT_ESCALATED,
    COMPLAINT_DECIDED,
    WITHDRAWAL_APPROVED,
    WITHDRAWAL_PAID,
    WITHDRAWAL_REJECTED,
    ORDER_HELD,
)
PLATFORM_EVENTS = (MERCHANT_REVIEW, ORDER_HELD, GATEWAY_FAILING, COMPLAINT_ESCALATED)

EVENT_LABELS = {
    ORDER_PAID: _l("Order paid"),
    ORDER_MANUAL: _l("Manual order waiting for delivery"),
    ORDER_HELD: _l("Order held for review"),
    STOCK_LOW: _l("Stock running low"),
    STOCK_OUT: _l("Sold out"),
    COMPLAINT_OPENED: _l("Complaint opened"),
    COMPLAINT_ESCALATED: _l("Complaint escalated to the platform"),
    COMPLAINT_DECIDED: _l("Complaint decided"),
    WITHDRAWAL_APPROVED: _l("Withdrawal approved"),
    WITHDRAWAL_PAID: _l("Withdrawal paid"),
    WITHDRAWAL_REJECTED: _l("Withdrawal rejected"),
    MERCHANT_REVIEW: _l("Merchant waiting for review"),
    GATEWAY_FAILING: _l("Payment gateway failing"),
    TEST: _l("Test message"),
}
STATUS_LABELS = {
    PushMessage.PENDING: _l("Queued"),
    PushMessage.SENT: _p("push", "Sent"),
    PushMessage.FAILED: _l("Failed"),
}
KIND_LABELS = {kind: provider.label for kind, provider in PROVIDERS.items()}

MAX_CHANNELS = 10  # per owner
MAX_NAME = 60
LOG_PAGE_SIZE = 20
TIMEOUT_SECONDS = 10
PAUSE_AFTER = 5  # messages failed in a row
ALERT_EVERY = timedelta(hours=24)  # stock alerts: at most once a day per product and channel
MAX_PRODUCT_TITLE = 40
RETRY_AFTER, MAX_ATTEMPTS = outbound.RETRY_AFTER, outbound.MAX_ATTEMPTS  # as for webhooks
EMAIL_CHANNEL_PAUSED = "push_channel_paused"


class UnknownPushKind(DomainError):
    message = _l("Choose a kind of channel from the list.")


class InvalidPushEvents(DomainError):
    message = _l("Choose at least one event from the list.")


class InvalidChannelName(DomainError):
    message = _l("Name the channel, in up to 60 characters.")


class InvalidPushLanguage(DomainError):
    message = _l("Choose a language from the list.")


class TooManyChannels(DomainError):
    message = _l("You already have the maximum number of push channels (10).")


class PushFailed(Exception):
    """An attempt failed and will be tried again; raised so the job is retried."""


# -- channels ---------------------------------------------------------------------------------


def events_for(merchant_id: int | None) -> tuple[str, ...]:
    """The events a merchant's channel (or, with None, a platform channel) may take."""
    return MERCHANT_EVENTS if merchant_id is not None else PLATFORM_EVENTS


def create_channel(
    merchant_id: int | None, kind: str, name: str, settings: dict[str, Any], events, locale: str | None = None
) -> PushChannel:
    """Add a channel for a merchant (or, with None, for the platform). Its settings are
    checked by its kind and stored encrypted."""
    provider = _provider(kind)
    name, events, locale = _valid_name(name), _valid_events(events, merchant_id), _valid_locale(locale)
    cleaned = provider.normalise(settings)
    with write_transaction():
        count = db.session.scalar(select(func.count()).select_from(PushChannel).where(_owner(merchant_id)))
        if count >= MAX_CHANNELS:
            raise TooManyChannels()
        channel = PushChannel(
            merchant_id=merchant_id,
            kind=kind,
            name=name,
            settings_ciphertext=vault().encrypt(json.dumps(cleaned)),
            events=events,
            locale=locale,
            consecutive_failures=0,
            created_at=clock.now(),
        )
        db.session.add(channel)
    return channel


def update_channel(
    channel_id: int,
    merchant_id: int | None,
    name: str | None = None,
    settings: dict[str, Any] | None = None,
    events=None,
    locale: str | None = None,
) -> PushChannel:
    """Change a channel's name, settings, events or language (None leaves one as it is).
    In `settings`, a secret left empty keeps the saved one; any other field left empty is
    cleared."""
    name = _valid_name(name) if name is not None else None
    events = _valid_events(events, merchant_id) if events is not None else None
    locale = _valid_locale(locale) if locale is not None else None
    ciphertext = None
    if settings is not None:
        # Checked before the write transaction: a Bark server's address is looked up in DNS.
        channel = _owned(channel_id, merchant_id)
        provider, saved = PROVIDERS[channel.kind], _settings(channel)
        merged = {
            field.name: str(settings.get(field.name) or "").strip()
            or (saved.get(field.name, "") if field.secret else "")
            for field in provider.fields
        }
        ciphertext = vault().encrypt(json.dumps(provider.normalise(merged)))
    with write_transaction():
        channel = _owned(channel_id, merchant_id)
        if ciphertext is not None:
            channel.settings_ciphertext = ciphertext
        if name is not None:
            channel.name = name
        if events is not None:
            channel.events = events
        if locale is not None:
            channel.locale = locale
    return channel


def pause_channel(channel_id: int, merchant_id: int | None) -> PushChannel:
    """The owner stops the channel's messages until they resume it; messages still
    queued are dropped."""
    with write_transaction():
        channel = _owned(channel_id, merchant_id)
        channel.paused_at = clock.now()
        channel.paused_reason = PushChannel.PAUSED_BY_OWNER
    return channel


def resume_channel(channel_id: int, merchant_id: int | None) -> PushChannel:
    """Start sending again (after a pause by the owner or after failures), its count of
    failures back at zero. Messages dropped while it was paused are not sent."""
    with write_transaction():
        channel = _owned(channel_id, merchant_id)
        channel.paused_at = None
        channel.paused_reason = None
        channel.consecutive_failures = 0
    return channel


def delete_channel(channel_id: int, merchant_id: int | None) -> None:
    """Remove the channel and its log; messages still queued are dropped."""
    with write_transaction():
        channel = _owned(channel_id, merchant_id)
        db.session.execute(delete(PushMessage).where(PushMessage.channel_id == channel.id))
        db.session.delete(channel)


def list_channels(merchant_id: int | None) -> list[PushChannel]:
    return list(db.session.execute(select(PushChannel).where(_owner(merchant_id)).order_by(PushChannel.id)).scalars())


def get_channel(channel_id: int, merchant_id: int | None) -> PushChannel:
    """The owner's channel; NotFound for anyone else's (a merchant never reaches the
    platform's, nor the platform a merchant's)."""
    return _owned(channel_id, merchant_id)


def channel_log(channel_id: int, merchant_id: int | None, page: int = 1) -> Page:
    """One page of the channel's messages, newest first, LOG_PAGE_SIZE a page, not counted."""
    channel = _owned(channel_id, merchant_id)
    query = (
        select(PushMessage)
        .where(PushMessage.channel_id == channel.id)
        .order_by(PushMessage.created_at.desc(), PushMessage.id.desc())
    )
    return paginate(query, page, LOG_PAGE_SIZE, count=False)


def messages_query(channel_id: int, merchant_id: int | None, status: str | None = None):
    """The channel's messages (one entity, for the API's cursor pages), optionally of one
    status; NotFound for anyone else's channel."""
    channel = _owned(channel_id, merchant_id)
    query = select(PushMessage).where(PushMessage.channel_id == channel.id)
    if status is not None:
        query = query.where(PushMessage.status == status)
    return query


@dataclass(frozen=True)
class SettingHint:
    name: str
    label: Any
    shown: str  # a secret's last four characters only
    secret: bool


def setting_hints(channel: PushChannel) -> list[SettingHint]:
    """What the owner may see of the saved settings: a secret only by its last four
    characters (…4f2a), never whole."""
    saved = _settings(channel)
    hints = []
    for field in PROVIDERS[channel.kind].fields:
        value = saved.get(field.name, "")
        if value:
            hints.append(SettingHint(field.name, field.label, value[-4:] if field.secret else value, field.secret))
    return hints


def last_failure(channel: PushChannel) -> PushMessage | None:
    """The channel's latest failed message (what its page says a pause was about)."""
    return db.session.execute(
        select(PushMessage)
        .where(PushMessage.channel_id == channel.id, PushMessage.status == PushMessage.FAILED)
        .order_by(PushMessage.id.desc())
        .limit(1)
    ).scalar_one_or_none()


def _owner(merchant_id: int | None):
    return PushChannel.merchant_id.is_(None) if merchant_id is None else PushChannel.merchant_id == merchant_id


def _owned(channel_id: int, merchant_id: int | None) -> PushChannel:
    channel = db.session.execute(
        select(PushChannel).where(PushChannel.id == channel_id, _owner(merchant_id))
    ).scalar_one_or_none()
    if channel is None:
        raise NotFound()
    return channel


def _provider(kind: str) -> Provider:
    if kind not in PROVIDERS:
        raise UnknownPushKind()
    return PROVIDERS[kind]


def _settings(channel: PushChannel) -> dict[str, str]:
    return json.loads(vault().decrypt(channel.settings_ciphertext))


def _valid_name(name: str | None) -> str:
    name = " ".join((name or "").split())
    if not name or len(name) > MAX_NAME:
        raise InvalidChannelName()
    return name


def _valid_events(events, merchant_id: int | None) -> str:
    if isinstance(events, str):
        events = events.split(",")
    allowed = events_for(merchant_id)
    chosen = {e.strip() for e in events or () if e and e.strip()}
    if not chosen or not chosen <= set(allowed):
        raise InvalidPushEvents()
    return ",".join(e for e in allowed if e in chosen)


def _valid_locale(locale: str | None) -> str:
    languages = current_app.config["LANGUAGES"]
    if locale is None:
        return current_app.config["BABEL_DEFAULT_LOCALE"]
    if locale not in languages:
        raise InvalidPushLanguage()
    return locale


# -- events -----------------------------------------------------------------------------------


def has_subscribers(merchant_id: int | None, *events: str) -> bool:
    """Whether an active channel of the owner takes any of `events` (a cheap read, so a
    hook can skip its write transaction when nobody listens)."""
    return any(
        any(event in subscribed.split(",") for event in events)
        for subscribed in db.session.execute(
            select(PushChannel.events).where(_owner(merchant_id), PushChannel.paused_at.is_(None))
        ).scalars()
    )


def emit(
    event: str,
    merchant_id: int | None,
    facts: dict[str, Any],
    link: tuple[str, dict] | None = None,
    subject: str | None = None,
    every: timedelta | None = None,
) -> list[int]:
    """Record `event` for each active channel of the owner (a merchant, or None: the
    platform) that takes it, inside the caller's write_transaction(), and enqueue the
    sending (it goes out once the transaction commits). `facts` fill the event's text;
    values may be lazy strings (labels), rendered in each channel's language. `link` is a
    back-office page (endpoint, values). With `subject` and `every`, a channel that got
    this event about this subject within `every` gets nothing. Returns the message ids."""
    if event not in events_for(merchant_id):
        raise ValueError(f"push event {event} is not for this owner")
    channels = [
        channel
        for channel in db.session.execute(
            select(PushChannel).where(_owner(merchant_id), PushChannel.paused_at.is_(None)).order_by(PushChannel.id)
        ).scalars()
        if event in channel.events.split(",")
    ]
    if channels and subject and every:
        recent = set(
            db.session.execute(
                select(PushMessage.channel_id).where(
                    PushMessage.channel_id.in_([c.id for c in channels]),
                    PushMessage.event == event,
                    PushMessage.subject == subject,
                    PushMessage.created_at >= clock.now() - every,
                )
            ).scalars()
        )
        channels = [c for c in channels if c.id not in recent]
    url = _absolute(*link) if link else None
    messages = [_new_message(channel, event, facts, url, subject) for channel in channels]
    db.session.flush()
    ids = [m.id for m in messages]
    enqueue_messages(ids)
    return ids


def send_event(event: str, merchant_id: int | None, facts: dict[str, Any], **options) -> list[int]:
    """`emit` in a write transaction of its own, for a hook that runs after its caller's
    committed; none is opened when nobody listens."""
    if not has_subscribers(merchant_id, event):
        return []
    with write_transaction():
        return emit(event, merchant_id, facts, **options)


def enqueue_messages(message_ids: Iterable[int]) -> None:
    for message_id in message_ids:
        tasks.enqueue("messaging.tasks.send_push", message_id, job_id=f"push-{message_id}")


def due_message_ids(now: datetime) -> list[int]:
    """Queued messages whose next attempt is due by RETRY_AFTER (for the reconciler)."""
    return outbound.due_ids(PushMessage, now)


def _new_message(channel: PushChannel, event: str, facts: dict[str, Any], link: str | None, subject: str | None):
    title, text = render(event, facts, channel.locale)
    message = PushMessage(
        channel_id=channel.id,
        event=event,
        subject=subject,
        title=title[:200],
        text=text,
        link=link,
        status=PushMessage.PENDING,
        attempts=0,
        created_at=clock.now(),
    )
    db.session.add(message)
    return message


def _absolute(endpoint: str, values: dict) -> str:
    """A back-office page's address as its owner opens it (FAKA_BASE_URL)."""
    return current_app.config["BASE_URL"].rstrip("/") + current_app.url_map.bind("").build(endpoint, values)


# -- the hooks' facts ------------------------------------------------------------------------


def _product(title: str) -> str:
    return title if len(title) <= MAX_PRODUCT_TITLE else title[: MAX_PRODUCT_TITLE - 1] + "…"


def order_facts(order) -> dict[str, Any]:
    """What an order's messages say of it (never its goods, never the buyer's full email)."""
    return {
        "number": order.number,
        "product": _product(order.title),
        "quantity": order.quantity,
        "total": format_money(order.total, order.currency),
        "buyer": mask_email(order.email),
        "hours": order.product.manual_promise_hours,
        "shop": order.merchant.name,
    }


def order_paid_listeners(order) -> bool:
    """Whether anyone takes a push about this paid order."""
    return has_subscribers(order.merchant_id, ORDER_PAID, ORDER_MANUAL, ORDER_HELD) or (
        order.is_held and has_subscribers(None, ORDER_HELD)
    )


def order_paid(order, manual: bool) -> list[int]:
    """Inside the payment hook's transaction: order paid; for a product the merchant
    delivers by hand, waiting for them; held by the risk rules, to the merchant and the
    operator."""
    facts = order_facts(order)
    mine = ("merchant.order_detail", {"number": order.number})
    ids = emit(ORDER_PAID, order.merchant_id, facts, mine)
    if manual and not order.is_held:
        ids += emit(ORDER_MANUAL, order.merchant_id, facts, mine)
    if order.is_held:
        ids += emit(ORDER_HELD, order.merchant_id, facts, mine)
        ids += emit(ORDER_HELD, None, facts, ("operator.risk_monitor", {}))
    return ids


def manual_order_waiting(order) -> list[int]:
    """Inside the caller's transaction: the order waits for its merchant to deliver it by
    hand (its server failed to, for a product delivered from the merchant's server)."""
    return emit(
        ORDER_MANUAL, order.merchant_id, order_facts(order), ("merchant.order_detail", {"number": order.number})
    )


def watches_stock(product) -> bool:
    return product.uses_key_stock and has_subscribers(product.merchant_id, STOCK_LOW, STOCK_OUT)


def stock_changed(product, variant, available: int, running_low: bool) -> list[int]:
    """Inside the delivery hook's transaction: the last key of a variant went (sold out),
    or its stock fell to its alert threshold (`running_low`, when its email alert goes
    out). Each at most once a day per variant and channel."""
    facts = {
        "product": _product(variants.label(product, variant)),
        "available": available,
        "threshold": variant.low_stock_threshold,
    }
    if product.has_choice:
        link = ("merchant.product_keys", {"slug": product.slug, "variant": variant.key})
        subject = f"variant:{variant.id}"
    else:
        link = ("merchant.product_keys", {"slug": product.slug})
        subject = f"product:{product.id}"
    if available == 0:
        return emit(STOCK_OUT, product.merchant_id, facts, link, subject=subject, every=ALERT_EVERY)
    if running_low:
        return emit(STOCK_LOW, product.merchant_id, facts, link, subject=subject, every=ALERT_EVERY)
    return []


def complaint_event(event: str, complaint, order, reason=None) -> list[int]:
    """Inside the complaint step's transaction: opened, escalated (to the merchant and, as
    the platform now decides, the operator) or decided."""
    facts = {
        "number": order.number,
        "product": _product(order.title),
        "reason": reason or "",
        "deadline": complaint.deadline_at,
        "refund": format_money(complaint.refund_amount, order.currency) if complaint.refund_amount else "",
    }
    ids = emit(event, complaint.merchant_id, facts, ("merchant.complaint_detail", {"ref": complaint.ref}))
    if event == COMPLAINT_ESCALATED:
        ids += emit(event, None, facts, ("operator.complaint_case", {"ref": complaint.ref}))
    return ids


def withdrawal_event(withdrawal, currency: str) -> list[int]:
    """Inside the operator's decision's transaction: approved, paid or rejected."""
    facts = {
        "id": withdrawal.id,
        "amount": format_money(withdrawal.amount, currency),
        "reason": withdrawal.reason or "",
    }
    return emit(f"withdrawal.{withdrawal.status}", withdrawal.merchant_id, facts, ("merchant.money_overview", {}))


def merchant_submitted(merchant) -> list[int]:
    """Inside the submission's transaction: a merchant waits for the operator's review."""
    facts = {"shop": merchant.name, "time": merchant.submitted_at}
    return emit(MERCHANT_REVIEW, None, facts, ("operator.merchant_detail", {"merchant_id": merchant.id}))


def gateways_failing(silent: Iterable, labels: dict[str, Any], every: timedelta) -> list[int]:
    """Gateways buyers were sent to pay with but whose provider stays silent (the
    reconciler asks notify.silent_gateways): each at most once per `every`."""
    ids: list[int] = []
    for gateway in silent:
        if not has_subscribers(None, GATEWAY_FAILING):
            break
        facts = {
            "gateway": labels.get(gateway.gateway, gateway.gateway),
            "count": gateway.payments_started,
            "last": gateway.last_notify_at,
        }
        ids += send_event(
            GATEWAY_FAILING,
            None,
            facts,
            link=("operator.notify_log", {"gateway": gateway.gateway}),
            subject=f"gateway:{gateway.gateway}",
            every=every,
        )
    return ids


# -- the texts --------------------------------------------------------------------------------


def _withdrawal_reason(f):
    return [_("Reason: %(reason)s", reason=f["reason"][:200])] if f["reason"] else []


# Each event's title and lines, from its facts (already text, in the channel's language).
_TEXTS = {
    ORDER_PAID: lambda f: (
        _("New order paid: %(total)s", total=f["total"]),
        [
            _(
                "Order %(number)s: %(product)s × %(quantity)s",
                number=f["number"],
                product=f["product"],
                quantity=f["quantity"],
            )
        ]
        + ([_("Buyer: %(buyer)s", buyer=f["buyer"])] if f["buyer"] else []),
    ),
    ORDER_MANUAL: lambda f: (
        _("Order to deliver by hand: %(number)s", number=f["number"]),
        [_("%(product)s × %(quantity)s, %(total)s", product=f["product"], quantity=f["quantity"], total=f["total"])]
        + ([_("Deliver it within %(hours)s hours.", hours=f["hours"])] if f["hours"] else []),
    ),
    ORDER_HELD: lambda f: (
        _("Order held for review: %(number)s", number=f["number"]),
        [
            _("%(product)s, %(total)s, shop %(shop)s", product=f["product"], total=f["total"], shop=f["shop"]),
            _("Its goods wait until the operator releases or refuses it."),
        ],
    ),
    STOCK_LOW: lambda f: (
        _("Low stock: %(product)s", product=f["product"]),
        [_("%(available)s keys left (alert at %(threshold)s).", available=f["available"], threshold=f["threshold"])],
    ),
    STOCK_OUT: lambda f: (
        _("Sold out: %(product)s", product=f["product"]),
        [_("The last key was sold. Add keys so that buyers can order it again.")],
    ),
    COMPLAINT_OPENED: lambda f: (
        _("Complaint about order %(number)s", number=f["number"]),
        [_("%(product)s: %(reason)s", product=f["product"], reason=f["reason"])]
        + ([_("Answer before %(time)s.", time=f["deadline"])] if f["deadline"] else []),
    ),
    COMPLAINT_ESCALATED: lambda f: (
        _("Complaint escalated: order %(number)s", number=f["number"]),
        [_("%(product)s: the platform will decide.", product=f["product"])],
    ),
    COMPLAINT_DECIDED: lambda f: (
        _("Complaint decided: order %(number)s", number=f["number"]),
        [
            _("Refund to the buyer: %(amount)s.", amount=f["refund"])
            if f["refund"]
            else _("The complaint was rejected.")
        ],
    ),
    WITHDRAWAL_APPROVED: lambda f: (
        _("Withdrawal #%(id)s approved: %(amount)s", id=f["id"], amount=f["amount"]),
        [_("The payment to your payout account is on its way.")],
    ),
    WITHDRAWAL_PAID: lambda f: (
        _("Withdrawal #%(id)s paid: %(amount)s", id=f["id"], amount=f["amount"]),
        [_("The money was sent to your payout account.")],
    ),
    WITHDRAWAL_REJECTED: lambda f: (
        _("Withdrawal #%(id)s rejected: %(amount)s", id=f["id"], amount=f["amount"]),
        _withdrawal_reason(f) + [_("The amount is available again.")],
    ),
    MERCHANT_REVIEW: lambda f: (
        _("Merchant waiting for review: %(shop)s", shop=f["shop"]),
        [_("Qualification submitted %(time)s.", time=f["time"])],
    ),
    GATEWAY_FAILING: lambda f: (
        _("Payment gateway may be failing: %(gateway)s", gateway=f["gateway"]),
        [
            _("%(count)s payments started in the last hours, but no payment notification arrived.", count=f["count"]),
            _("Last notification: %(time)s", time=f["last"]) if f["last"] else _("No notification has ever arrived."),
        ],
    ),
    TEST: lambda f: (
        _("Test message from %(site)s", site=f["site"]),
        [_('The push channel "%(channel)s" works.', channel=f["channel"])],
    ),
}


def render(event: str, facts: dict[str, Any], locale: str) -> tuple[str, str]:
    """The event's title and text in `locale`."""
    with force_locale(locale):
        shown = {name: _as_text(value) for name, value in facts.items()}
        title, lines = _TEXTS[event](shown)
    return " ".join(title.split()), "\n".join(" ".join(line.split()) for line in lines)


def _as_text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, datetime):
        return clock.local_time(value)
    return str(value)


# -- sending ----------------------------------------------------------------------------------


def send_test(channel_id: int, merchant_id: int | None) -> PushMessage:
    """Send a test message to the channel now (paused or not) and return it, sent or
    failed with the provider's answer. A channel paused after failures resumes when the
    test goes through."""
    with write_transaction():
        channel = _owned(channel_id, merchant_id)
        facts = {"site": site_settings()["site_name"], "channel": channel.name}
        message = _new_message(channel, TEST, facts, None, None)
        db.session.flush()
        message_id = message.id
    deliver(message_id)
    db.session.rollback()  # read the outcome as recorded
    return db.session.get(PushMessage, message_id)


def deliver(message_id: int) -> bool:
    """One attempt at a queued message (the send_push job). True when sent now; False when
    there was nothing to do (sent, failed, its channel gone or paused) or it failed for
    good. Raises PushFailed when it failed and will be tried again, so RQ retries it; the
    attempt is recorded first."""
    row = db.session.execute(
        select(PushMessage, PushChannel)
        .join(PushChannel, PushMessage.channel_id == PushChannel.id)
        .where(PushMessage.id == message_id)
    ).first()
    if row is None or row[0].status != PushMessage.PENDING:
        db.session.rollback()  # end the job's read: the worker's session outlives it
        return False
    message, channel = row
    if channel.paused and message.event != TEST:
        _record(message_id, None, Outcome(False, error="channel paused"), attempted=False)
        return False
    provider = PROVIDERS[channel.kind]
    settings = _settings(channel)
    request = provider.request(settings, message.title, message.text, message.link)
    db.session.rollback()  # hold no transaction while waiting on the provider

    answer = outbound.post(request.url, request.body, request.headers, timeout=TIMEOUT_SECONDS)
    outcome = provider.outcome(answer)
    if outcome.error:
        outcome = Outcome(False, outcome.code, _scrub(outcome.error, settings), outcome.retry)
    status = _record(message_id, answer.status, outcome)
    if status == PushMessage.PENDING:
        raise PushFailed(f"push message {message_id}: {outcome.error}")
    return outcome.sent


def _scrub(text: str, settings: dict[str, str]) -> str:
    """An error as stored and logged: no setting of the channel in it (a provider may
    echo one back)."""
    for value in settings.values():
        if len(value) >= 6:
            text = text.replace(value, "…")
    return text


def _record(message_id: int, http_status: int | None, outcome: Outcome, attempted: bool = True) -> str | None:
    """Write down an attempt (or, not `attempted`, a message dropped unsent) and what it
    did to the channel. Returns the message's status."""
    now = clock.now()
    paused_now = False
    with write_transaction():
        message = db.session.get(PushMessage, message_id)
        if message is None or message.status != PushMessage.PENDING:
            return None  # deleted, or a concurrent attempt settled it
        channel = db.session.get(PushChannel, message.channel_id)
        is_test = message.event == TEST
        if attempted:
            message.attempts += 1
            message.http_status = http_status
            message.provider_code = (outcome.code or "")[:40] or None
        if outcome.sent:
            message.status = PushMessage.SENT
            message.sent_at = now
            message.last_error = None
            channel.consecutive_failures = 0
            channel.last_sent_at = now
            if is_test and channel.paused_reason == PushChannel.PAUSED_AFTER_FAILURES:
                channel.paused_at = None
                channel.paused_reason = None
        else:
            message.last_error = (outcome.error or "failed")[:500]
            if not attempted or is_test or not outcome.retry or message.attempts >= MAX_ATTEMPTS:
                message.status = PushMessage.FAILED
                if attempted and not is_test:
                    channel.consecutive_failures += 1
                    if channel.consecutive_failures >= PAUSE_AFTER and not channel.paused:
                        channel.paused_at = now
                        channel.paused_reason = PushChannel.PAUSED_AFTER_FAILURES
                        _tell_owner_paused(channel, message.last_error)
                        paused_now = True
        status, event, channel_id, attempts = message.status, message.event, channel.id, message.attempts
    if outcome.sent:
        log.info("push message %s (%s) sent to channel %s", message_id, event, channel_id)
    else:
        log.warning(
            "push message %s (%s) to channel %s: attempt %s failed (%s), now %s",
            message_id,
            event,
            channel_id,
            attempts,
            outcome.error,
            status,
        )
    if paused_now:
        log.warning("push channel %s paused after %s failed messages in a row", channel_id, PAUSE_AFTER)
    return status


def _tell_owner_paused(channel: PushChannel, error: str) -> None:
    """Email the channel's owner (the merchant, or every operator) that it paused itself."""
    if channel.merchant_id is not None:
        merchant = db.session.get(Merchant, channel.merchant_id)
        recipients = [(merchant.notify_email or merchant.user.email, merchant.user_id, merchant.id)]
        endpoint = "merchant.push_channel"
    else:
        recipients = [
            (email, user_id, None)
            for user_id, email in db.session.execute(select(User.id, User.email).where(User.role == ROLE_OPERATOR))
        ]
        endpoint = "operator.push_channel"
    with force_locale(channel.locale):
        subject = _("Push channel paused: %(name)s", name=channel.name)
        context = {
            "channel_name": channel.name,
            "kind": str(KIND_LABELS[channel.kind]),
            "failures": PAUSE_AFTER,
            "error": error[:300],
            "link": _absolute(endpoint, {"channel_id": channel.id}),
        }
    for address, user_id, merchant_id in recipients:
        email = queue_email(
            EMAIL_CHANNEL_PAUSED, address, subject, context, channel.locale, user_id=user_id, merchant_id=merchant_id
        )
        tasks.enqueue("messaging.tasks.send_email", email.id, job_id=f"email-{email.id}")
