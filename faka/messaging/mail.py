"""Sending the emails in the outbox over SMTP.

The outbox row is written in the same transaction as the event it reports, so an email
is never lost: without SMTP configured it waits in the outbox (the operator sees it), and
when SMTP is down the job fails, is retried, and the reconciler queues it again.
"""

import json
import logging
import re
import smtplib
import ssl
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import make_msgid

from flask import current_app, render_template
from flask_babel import force_locale
from flask_babel import gettext as _
from flask_babel import lazy_gettext as _l
from flask_babel import lazy_pgettext as _p
from jinja2 import TemplateNotFound
from sqlalchemy import and_, func, or_, select, update

from faka.accounts.models import Merchant
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import NotFound
from faka.extensions import db
from faka.inventory.keys import delivered_items
from faka.inventory.models import CardKey
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order
from faka.platform import audit
from faka.platform.settings import site_settings

log = logging.getLogger(__name__)

# The delivery emails: queued by orders/delivery.py and complaints/workflow.py, rendered here
# with the goods.
EMAIL_ORDER_DELIVERED = "order_delivered"
EMAIL_ORDER_REPLACEMENT = "order_replacement"  # the goods again, after a complaint's replacement

# What the operator's outbox calls each kind of email. The other kinds are named by the
# modules that queue them (EMAIL_* in faka/accounts/users.py, accounts/review.py,
# complaints/workflow.py, ledger/payouts.py, messaging/notifications.py), which import this one.
KIND_LABELS = {
    "verify_email": _l("Email address confirmation"),
    "password_reset": _l("Password reset link"),
    "account_exists": _l("Sign-up with a registered address"),
    EMAIL_ORDER_DELIVERED: _l("Order delivery"),
    EMAIL_ORDER_REPLACEMENT: _l("Replacement keys"),
    "complaint_update": _l("Complaint update"),
    "withdrawal_status": _l("Withdrawal decision"),
    "payout_account_added": _l("Payout account added"),
    "merchant_review": _l("Merchant review decision"),
    "substore_review": _l("Sub-store or promoter decision"),  # growth/programmes.py
    "two_factor_reset": _l("Two-factor authentication reset"),
    "merchant_manual_order": _l("Order to deliver by hand"),
    "merchant_low_stock": _l("Low stock alert"),
    "push_channel_paused": _l("Push channel paused"),
    "restock_confirm": _l("Back-in-stock request confirmation"),  # messaging/restock.py
    "restock_notice": _l("Back in stock"),
}
STATUS_LABELS = {
    OutboxEmail.QUEUED: _l("Queued"),
    OutboxEmail.SENT: _p("email", "Sent"),
    OutboxEmail.FAILED: _l("Failed"),
}

# When the reconciler tries a queued email again, counted from when it was queued: the
# first retry at its next run, later ones further apart, so an SMTP server that is down
# for hours does not use up MAIL_MAX_ATTEMPTS within minutes (the reconciler runs every
# minute) and the email still goes out once it answers again.
# A claim lasts this many SMTP timeouts: a connection, EHLO/TLS/login and the message.
CLAIM_FACTOR = 4
RETRY_AFTER = (
    timedelta(0),
    timedelta(0),
    timedelta(minutes=5),
    timedelta(minutes=15),
    timedelta(hours=1),
    timedelta(hours=3),
    timedelta(hours=6),
    timedelta(hours=12),
)


class MailNotConfigured(Exception):
    pass


class AlreadySent(Exception):
    """`resend` of an email that was sent: there is nothing to send again."""


@dataclass(frozen=True)
class SmtpConfig:
    server: str | None
    port: int
    use_tls: bool  # STARTTLS
    use_ssl: bool
    username: str | None
    password: str | None
    sender: str
    timeout: int
    source: str  # "console" or "environment"


def smtp_config() -> SmtpConfig:
    """The SMTP settings in force: the ones the operator saved in the console, or else the
    MAIL_* environment."""
    cfg = current_app.config
    saved = site_settings()
    if saved.get("smtp_server"):
        password = saved.get("smtp_password")
        return SmtpConfig(
            server=saved["smtp_server"],
            port=int(saved.get("smtp_port") or 25),
            use_tls=saved.get("smtp_security") == "starttls",
            use_ssl=saved.get("smtp_security") == "ssl",
            username=saved.get("smtp_username") or None,
            password=vault().decrypt(password) if password else None,
            sender=saved.get("smtp_sender") or cfg["MAIL_DEFAULT_SENDER"],
            timeout=cfg["MAIL_TIMEOUT"],
            source="console",
        )
    return SmtpConfig(
        server=cfg.get("MAIL_SERVER"),
        port=cfg["MAIL_PORT"],
        use_tls=cfg["MAIL_USE_TLS"],
        use_ssl=cfg["MAIL_USE_SSL"],
        username=cfg.get("MAIL_USERNAME"),
        password=cfg.get("MAIL_PASSWORD"),
        sender=cfg["MAIL_DEFAULT_SENDER"],
        timeout=cfg["MAIL_TIMEOUT"],
        source="environment",
    )


def smtp_configured() -> bool:
    return bool(smtp_config().server)


def due_email_ids(now) -> list[int]:
    """Queued emails whose next attempt is due by RETRY_AFTER (for the reconciler); past
    the end of the schedule, at every run until MAIL_MAX_ATTEMPTS."""
    last = len(RETRY_AFTER) - 1
    due = or_(
        *(
            and_(OutboxEmail.attempts == n, OutboxEmail.created_at <= now - wait)
            for n, wait in enumerate(RETRY_AFTER[:last])
        ),
        and_(OutboxEmail.attempts >= last, OutboxEmail.created_at <= now - RETRY_AFTER[last]),
    )
    return list(
        db.session.execute(
            select(OutboxEmail.id).where(OutboxEmail.status == OutboxEmail.QUEUED, due).order_by(OutboxEmail.id)
        ).scalars()
    )


def send_outbox_email(email_id: int) -> bool:
    """Send one queued email. Returns True when sent now; raises when SMTP fails so the
    job is retried. An email already sent, given up on, or being sent by another copy of
    the job (claimed) is left alone."""
    cfg = smtp_config()
    if not cfg.server or not _claim(email_id, cfg.timeout):
        db.session.rollback()  # end the job's read (the settings): the worker's session outlives it
        return False
    email = db.session.get(OutboxEmail, email_id)
    message = build_message(email, cfg.sender)
    db.session.rollback()  # release the read transaction while talking to SMTP
    try:
        _smtp_send(message, cfg)
    except (OSError, smtplib.SMTPException) as exc:
        _record_failure(email_id, exc)
        raise
    with write_transaction():
        email = db.session.get(OutboxEmail, email_id)
        email.status = OutboxEmail.SENT
        email.sent_at = clock.now()
        email.attempts += 1
        email.last_error = None
        email.claimed_until = None
        kind = email.kind
    log.info("email %s (%s) sent", email_id, kind)
    return True


def _claim(email_id: int, smtp_timeout: int) -> bool:
    """Take a queued email for one sending attempt, atomically. The claim outlasts the
    SMTP conversation; one left by a worker that died runs out by itself."""
    now = clock.now()
    with write_transaction():
        claimed = db.session.execute(
            update(OutboxEmail)
            .where(
                OutboxEmail.id == email_id,
                OutboxEmail.status == OutboxEmail.QUEUED,
                or_(OutboxEmail.claimed_until.is_(None), OutboxEmail.claimed_until <= now),
            )
            .values(claimed_until=now + timedelta(seconds=CLAIM_FACTOR * max(smtp_timeout, 1)))
        ).rowcount
    return claimed == 1


def _record_failure(email_id: int, exc: Exception) -> None:
    with write_transaction():
        email = db.session.get(OutboxEmail, email_id)
        email.claimed_until = None
        email.attempts += 1
        email.last_error = f"{type(exc).__name__}: {exc}"[:500]
        if email.attempts >= current_app.config["MAIL_MAX_ATTEMPTS"]:
            email.status = OutboxEmail.FAILED
        attempts = email.attempts
    log.warning("email %s: SMTP failed (attempt %s): %s", email_id, attempts, type(exc).__name__)


def resend(email_id: int, operator_id: int) -> None:
    """Put a failed (or stuck) email back in the queue and send it again (the operator's
    outbox). NotFound for no such email, AlreadySent for one that was sent."""
    with write_transaction():
        email = db.session.get(OutboxEmail, email_id)
        if email is None:
            raise NotFound()
        if email.status == OutboxEmail.SENT:
            raise AlreadySent()
        before = {"status": email.status, "attempts": email.attempts}
        email.status = OutboxEmail.QUEUED
        email.attempts = 0
        email.last_error = None
        audit.record(
            operator_id,
            "outbox.resend",
            f"email:{email_id}",
            before=before,
            after={"status": email.status, "attempts": 0},
        )
        tasks.enqueue(
            "messaging.tasks.send_email", email_id, job_id=f"email-{email_id}-resend-{int(clock.now().timestamp())}"
        )


def queue_email(
    kind: str,
    to_addr: str,
    subject: str,
    context: dict,
    locale: str = "zh_CN",
    user_id: int | None = None,
    merchant_id: int | None = None,
) -> OutboxEmail:
    """Add an email to the outbox inside the caller's transaction. It is rendered from
    templates email/<kind>.txt (and .html when present) with `context` (JSON values), and
    sent by "messaging.tasks.send_email", which the caller enqueues inside its write_transaction() (or
    after committing)."""
    if len(subject) > OutboxEmail.SUBJECT_MAX:  # a long product title and option name
        subject = subject[: OutboxEmail.SUBJECT_MAX - 1] + "…"
    email = OutboxEmail(
        kind=kind,
        to_addr=to_addr,
        subject=subject,
        locale=locale,
        user_id=user_id,
        merchant_id=merchant_id,
        payload_ciphertext=vault().encrypt(json.dumps(context)),
    )
    db.session.add(email)
    db.session.flush()
    return email


def queue_owner_email(kind: str, owner: Merchant, subject: object, context: dict) -> OutboxEmail:
    """queue_email to an account's owner about the operator's decision on it, in the
    platform's default language; `subject` a lazy string, translated into it."""
    locale = current_app.config["BABEL_DEFAULT_LOCALE"]
    with force_locale(locale):
        subject = str(subject)
    return queue_email(kind, owner.user.email, subject, context, locale, user_id=owner.user_id, merchant_id=owner.id)


def _header_line(text: str) -> str:
    """`text` on one line, for an email header. Python's email refuses a header value with
    a line break (it could inject headers), which would stop the email at every retry: a
    subject built from an old product title or shop name holding one is sent with its
    lines joined by spaces instead."""
    return " ".join(text.splitlines())


def build_message(email: OutboxEmail, sender: str) -> EmailMessage:
    subject, text, html = _render(email)
    message = EmailMessage()
    message["Subject"] = _header_line(subject)
    message["From"] = sender
    message["To"] = email.to_addr
    message["Message-ID"] = make_msgid(domain="faka")
    message.set_content(text)
    if html is not None:
        message.add_alternative(html, subtype="html")
    return message


def _render(email: OutboxEmail, for_operator: bool = False) -> tuple[str, str, str | None]:
    """The email's subject, text and HTML body (None when it has no HTML template). For
    the operator's reader a delivery's goods are left out, and so is its order link."""
    site = site_settings()
    base_url = current_app.config["BASE_URL"].rstrip("/")
    with force_locale(email.locale):
        template = email.kind
        if email.kind in DELIVERY_EMAILS:
            # The goods are read from the order when sending, never stored in the outbox.
            order = db.session.execute(select(Order).where(Order.id == email.order_id)).scalar_one()
            if for_operator:
                items = [MASKED] * _goods_count(order)
                order_url = f"{base_url}/order/{MASKED}"
            else:
                items, order_url = delivered_items(order), f"{base_url}/order/{order.token}"
            context = {"order": order, "items": items, "order_url": order_url}
            if email.kind == EMAIL_ORDER_REPLACEMENT:
                subject = _(
                    "Replacement keys for your order %(number)s: %(title)s",
                    number=order.number,
                    title=order.title,
                )
            else:
                subject = _("Your order %(number)s: %(title)s", number=order.number, title=order.title)
            template = EMAIL_ORDER_DELIVERED
        else:
            context = json.loads(vault().decrypt(email.payload_ciphertext)) if email.payload_ciphertext else {}
            subject = email.subject or ""
        context.update(site=site, base_url=base_url)
        text = render_template(f"email/{template}.txt", **context)
        if for_operator:
            return subject, ORDER_LINK_RE.sub(f"/order/{MASKED}", text), None
        try:
            html = render_template(f"email/{template}.html", **context)
        except TemplateNotFound:
            html = None
    return subject, text, html


# -- reading the outbox -------------------------------------------------------------------

DELIVERY_EMAILS = (EMAIL_ORDER_DELIVERED, EMAIL_ORDER_REPLACEMENT)
MASKED = "••••••••"
# A buyer's order page shows the goods: its address (in delivery and complaint emails) is
# as secret as they are.
ORDER_LINK_RE = re.compile(r"/order/[0-9A-Za-z_-]{16,}")
LINK_RE = re.compile(r"https?://[^\s<>\"']+")


@dataclass(frozen=True)
class ReadEmail:
    """An outbox email as the operator reads it: see read_email."""

    id: int
    kind: str
    status: str
    to_addr: str
    created_at: datetime
    sent_at: datetime | None
    subject: str
    text: str
    goods_hidden: bool

    @property
    def links(self) -> list[str]:
        """The addresses in the text the recipient would open, to be copied and passed on."""
        return [link for link in dict.fromkeys(LINK_RE.findall(self.text)) if MASKED not in link]


def read_email(email_id: int, operator_id: int) -> ReadEmail:
    """An email in the outbox as its recipient gets it (the text part), for an operator
    without SMTP who passes a verification or password-reset link on by hand. Only a
    buyer's goods stay hidden: a delivery's keys, and links to a buyer's order page,
    which shows them. Every reading is in the audit log. NotFound for no such email."""
    email = db.session.get(OutboxEmail, email_id)
    if email is None:
        raise NotFound()
    subject, text, _html = _render(email, for_operator=True)
    read = ReadEmail(
        id=email.id,
        kind=email.kind,
        status=email.status,
        to_addr=email.to_addr,
        created_at=email.created_at,
        sent_at=email.sent_at,
        subject=subject,
        text=text,
        goods_hidden=email.kind in DELIVERY_EMAILS,
    )
    db.session.rollback()  # discard the read (begin_write would commit it): only the audit record is written
    with write_transaction():
        audit.record(operator_id, "outbox.read", f"email:{email_id}", detail=f"{read.kind} to {read.to_addr}")
    return read


def _goods_count(order: Order) -> int:
    """How many goods a delivery email lists, counted without decrypting any."""
    if order.status not in Order.SHOWS_GOODS:
        return 0
    if order.delivery_ciphertext:
        return 1
    return (
        db.session.scalar(
            select(func.count())
            .select_from(CardKey)
            .where(CardKey.order_id == order.id, CardKey.status == CardKey.SOLD)
        )
        or 0
    )


def _smtp_send(message: EmailMessage, cfg: SmtpConfig) -> None:
    if cfg.use_ssl:
        client = smtplib.SMTP_SSL(cfg.server, cfg.port, timeout=cfg.timeout, context=ssl.create_default_context())
    else:
        client = smtplib.SMTP(cfg.server, cfg.port, timeout=cfg.timeout)
    with client:
        if cfg.use_tls:
            client.starttls(context=ssl.create_default_context())
        if cfg.username:
            client.login(cfg.username, cfg.password or "")
        client.send_message(message)


def send_test_email(to_addr: str) -> None:
    """Send a short message to `to_addr` now, over the configured SMTP server, bypassing
    the outbox so the operator sees at once whether SMTP works. Raises MailNotConfigured
    without MAIL_SERVER, and OSError / smtplib.SMTPException when sending fails."""
    cfg = smtp_config()
    if not cfg.server:
        raise MailNotConfigured()
    site = site_settings()
    message = EmailMessage()
    message["Subject"] = _header_line(_("Test email from %(site)s", site=site["site_name"]))
    message["From"] = cfg.sender
    message["To"] = to_addr
    message["Message-ID"] = make_msgid(domain="faka")
    message.set_content(_("This is a test email: the shop can send email with its SMTP settings."))
    db.session.rollback()  # hold no transaction while talking to SMTP
    _smtp_send(message, cfg)
