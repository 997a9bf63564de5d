"""Every page in Chinese: one shop with data in every state, every GET page of the
storefront, the merchant back office and the operator console rendered in zh_CN, and
no raw identifier (`fee_return`, `merchant.approved`, `individual`) or untranslated
English word left in what a person reads.

What is checked is the visible text: tags, scripts, styles and attributes are dropped,
and so are values that are data (emails, addresses, order numbers, hashes, amounts, the
shop's own names, which this shop writes in Chinese). What remains is matched against
(a) the pattern of a code identifier (snake_case, dotted), (b) every stored identifier
value the code uses (statuses, kinds, outcomes, actions, rules), and (c) the English
words of the catalogue's translated messages. ALLOWED lists the English that belongs on
a Chinese page.
"""

import re
import secrets
from datetime import timedelta
from html.parser import HTMLParser
from io import BytesIO
from pathlib import Path

import pytest
from babel.messages.pofile import read_po
from PIL import Image
from sqlalchemy import select

from conftest import csrf_from, expire_and_reconcile, login, reload, with_totp
from faka.accounts import review as merchant_review
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog import categories, checkout_fields, images, moderation, variants
from faka.catalog.models import (
    DELIVERY_FIXED,
    DELIVERY_MANUAL,
    DELIVERY_REMOTE,
    KIND_CHOICE,
    KIND_EMAIL,
    KIND_NUMBER,
    KIND_PHONE,
    KIND_TEXT,
    Product,
)
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintMessage
from faka.core import clock
from faka.core.crypto import vault
from faka.extensions import db
from faka.inventory import keys
from faka.ledger import balances, payouts, settlement
from faka.ledger.models import LedgerEntry, PayoutAccount, Withdrawal
from faka.messaging import push
from faka.messaging.models import EVENTS as WEBHOOK_EVENTS
from faka.messaging.models import OutboxEmail, PushChannel, PushMessage, WebhookDelivery, WebhookEndpoint
from faka.orders import checkout, coupons
from faka.orders.models import Order, RemoteDeliveryAttempt
from faka.payments import notify, refunds
from faka.payments.gateways import GATEWAYS
from faka.payments.models import NotifyLog, PaymentNotice, Refund
from faka.platform import audit
from faka.reviews import reviews
from faka.risk import blacklist, engine, security_events
from faka.risk.models import BlacklistEntry, SecurityEvent

ROOT = Path(__file__).resolve().parents[2]
CATALOGUE = ROOT / "faka/translations/zh_Hans_CN/LC_MESSAGES/messages.po"

# English that is right on a Chinese page: names of brands, products and standards, and
# abbreviations Chinese uses as they are. Lower case; matched as whole words.
ALLOWED = {
    "faka",  # the software's name
    "stripe",
    "usdt",
    "trc20",
    "trc",
    "epay",
    "qq",
    "telegram",
    "paypal",  # payment and chat brands
    "google",
    "microsoft",
    "authenticator",
    "authy",  # authenticator apps named in the 2FA set-up
    "https",
    "http",
    "smtp",
    "ssl",
    "tls",
    "starttls",
    "csv",
    "api",
    "totp",
    "2fa",
    "ip",
    "url",
    "uid",
    "id",
    "json",
    "hmac",
    "sha256",
    "cidr",
    "png",
    "jpeg",
    "jpg",
    "webp",
    "gif",
    "svg",
    "utf",
    "gbk",
    "markdown",
    "webhook",
    "webhooks",
    "captcha",
    "cdn",
    "dns",
    "pid",
    "key",
    "md5",
    "rsa",
    "ok",
}

# Every value the code stores for a status, kind, outcome, action or rule: none of them
# may reach a Chinese page as it is (a label stands for it).
IDENTIFIERS = {
    *(
        getattr(Order, n)
        for n in (
            "PENDING",
            "PAID",
            "DELIVERED",
            "EXPIRED",
            "CANCELLED",
            "PAID_UNFULFILLED",
            "REFUNDED",
            "PARTIALLY_REFUNDED",
        )
    ),
    *(getattr(LedgerEntry, n) for n in ("SALE", "FEE", "REFUND", "FEE_RETURN", "WITHDRAWAL", "WITHDRAWAL_RETURN")),
    *(getattr(Withdrawal, n) for n in ("REQUESTED", "APPROVED", "PAID", "REJECTED")),
    *(getattr(Refund, n) for n in ("PENDING", "DONE", "MANUAL", "PAID")),
    *(getattr(Merchant, n) for n in ("PENDING", "APPROVED", "REJECTED", "FROZEN")),
    "individual",
    "company",
    *PayoutAccount.KINDS,
    *BlacklistEntry.KINDS,
    *SecurityEvent.KINDS,
    *notify.OUTCOME_LABELS,
    *(
        getattr(Complaint, n)
        for n in (
            "OPEN",
            "MERCHANT_REPLIED",
            "ESCALATED",
            "RESOLVED_REFUND",
            "RESOLVED_REPLACED",
            "RESOLVED_REJECTED",
            "WITHDRAWN",
        )
    ),
    *workflow.REASON_LABELS,
    *workflow.AUTHOR_LABELS,
    *WEBHOOK_EVENTS,
    *engine.RULE_LABELS,
    *(getattr(WebhookDelivery, n) for n in ("PENDING", "DELIVERED", "FAILED")),
    *(getattr(OutboxEmail, n) for n in ("QUEUED", "SENT", "FAILED")),
    "verify_email",
    "password_reset",
    "account_exists",
    "complaint_update",
    "withdrawal_status",
    "order_delivered",
    "order_replacement",
    "merchant_review",
    "two_factor_reset",
    "merchant_manual_order",
    "merchant_low_stock",
    "duplicate_in_batch",
    "already_in_stock",
    "invalid",
    "checkout",
    "notify",
    "lookup",
    "login",
    "review",
    "complaint",
    "allow",
    "flag",
    "hold",
    "block",
    "auto",
    "fixed",
    "manual",
    "percent",
    "text",
    "number",
    "email",
    "phone",
    "choice",
    "taken_down",
    "info_requested",
    "unfrozen",
    *GATEWAYS,
}

DATA_PATTERNS = [
    re.compile(r"[\w.+-]+@[\w-]+(\.[\w-]+)*"),  # email addresses (no-reply@localhost too)
    re.compile(r"https?://\S+"),  # addresses
    re.compile(r"(?<![\w/])/?[\w.-]+(/[\w.-]+)+|(?<![\w/])/[\w.-]+"),  # paths (/terms, deploy/systemd/…)
    re.compile(r"\b[\w-]+(\.[\w-]+)*\.(com|cn|net|org|test|io|me|plus|example)\b"),  # host and domain names
    re.compile(r"\b[0-9a-f]{8,}\b", re.I),  # hashes, tokens, order numbers
    re.compile(r"\b\d+(\.\d+){3}(/\d+)?\b"),  # IPv4 addresses and networks
    re.compile(r"\b\d[\d,]*(\.\d+)?\b"),  # amounts, counts, rates
]
SNAKE = re.compile(r"\b[a-z][a-z0-9]*(?:_[a-z0-9]+)+\b")
DOTTED = re.compile(r"\b[a-z][a-z0-9_]*(?:\.[a-z0-9_]+)+\b")
WORD = re.compile(r"\b[A-Za-z][A-Za-z0-9]*\b")


class VisibleText(HTMLParser):
    """The text a person reads: no tags, attributes, scripts, styles or templates. The
    content of <code>, <pre> and <textarea> is data (keys, payloads, recorded values,
    what was typed), and an element marked lang="en" is English on purpose (the language
    switcher's "English", the doctor's findings, which are its CLI's words)."""

    SKIP = {"script", "style", "template", "code", "pre", "textarea", "svg"}

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.skipping = None  # (tag, nesting) of the element whose content is skipped
        self.parts = []

    def handle_starttag(self, tag, attrs):
        if self.skipping:
            if tag == self.skipping[0]:
                self.skipping = (tag, self.skipping[1] + 1)
        elif tag in self.SKIP or (dict(attrs).get("lang") or "").startswith("en"):
            self.skipping = (tag, 1)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if self.skipping and tag == self.skipping[0]:
            nesting = self.skipping[1] - 1
            self.skipping = (tag, nesting) if nesting else None

    def handle_data(self, data):
        if not self.skipping:
            self.parts.append(data)


def visible_text(html: str) -> str:
    parser = VisibleText()
    parser.feed(html)
    return " ".join(" ".join(parser.parts).split())


def english_words() -> set[str]:
    """The words of the English messages that Chinese translates (a word the Chinese
    keeps, like "Webhook" or "SMTP", is not one)."""
    with open(CATALOGUE, "rb") as fh:
        catalogue = read_po(fh)
    english, kept = set(), set()
    for message in catalogue:
        if not message.id or not message.string:
            continue
        ids = message.id if isinstance(message.id, tuple) else (message.id,)
        strings = message.string if isinstance(message.string, tuple) else (message.string,)
        for text in ids:
            english |= {w.lower() for w in WORD.findall(re.sub(r"%\(\w+\)s|<[^>]+>", " ", text))}
        for text in strings:
            kept |= {w.lower() for w in WORD.findall(text)}
    return {w for w in english - kept if len(w) > 2}


def problems_in(text: str, data: list[str], english: set[str]) -> list[str]:
    for value in sorted(data, key=len, reverse=True):
        text = text.replace(value, " ")
    for pattern in DATA_PATTERNS:
        text = pattern.sub(" ", text)
    found = [f"identifier {m}" for m in SNAKE.findall(text) + DOTTED.findall(text)]
    for word in WORD.findall(text):
        low = word.lower()
        if low in ALLOWED:
            continue
        if low in IDENTIFIERS:
            found.append(f"raw value {word}")
        elif low in english:
            found.append(f"English {word}")
    return sorted(set(found))


# -- the shop ---------------------------------------------------------------------------


def picture() -> bytes:
    out = BytesIO()
    Image.new("RGB", (320, 240), (40, 120, 200)).save(out, "PNG")
    return out.getvalue()


def delivered(place, pay, product, email="buyer@example.com") -> Order:
    order = place(product, email=email)
    assert pay(order).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


def add_merchant(name: str, status: str, entity_type: str, **fields) -> Merchant:
    merchant = users.create_merchant(f"m{secrets.token_hex(4)}@shop.test", "merchant-pass-1", name)
    merchant.status = status
    merchant.legal_name, merchant.entity_type, merchant.contact = "李四", entity_type, "微信 lisi"
    merchant.submitted_at = clock.now()
    for key, value in fields.items():
        setattr(merchant, key, value)
    db.session.commit()
    return merchant


class Shop:
    """What the pages are rendered from; `data` are the strings that are the shop's own
    values (names, titles, typed text) rather than the interface's words."""

    def __init__(self):
        self.data = []


@pytest.fixture
def shop(app, merchant, operator, category, make_product, place, pay) -> Shop:
    s = Shop()
    now = clock.now()
    s.merchant, s.operator = merchant, operator
    with_totp(merchant.user)
    merchant.name = "星辰小店"
    merchant.legal_name, merchant.entity_type, merchant.contact = "张三", "individual", "QQ 10001"
    merchant.submitted_at, merchant.fee_rate_bp = now, 250
    db.session.commit()
    s.pending = add_merchant("待审小店", Merchant.PENDING, "company")
    add_merchant("冻结小店", Merchant.FROZEN, "individual", rejection_reason="违规经营")
    add_merchant("被拒小店", Merchant.REJECTED, "company", rejection_reason="资料不全")

    # The catalogue: a hidden category, products of every delivery type and moderation state.
    hidden = categories.create("隐藏分类", "Hidden cards", operator.id)
    categories.set_hidden(hidden.id, True, operator.id)
    s.product = make_product(keys=40, price=10000, title="星辰点卡", description_md="充值卡")
    s.manual = make_product(keys=0, price=5000, title="人工代充", delivery_type=DELIVERY_MANUAL)
    make_product(
        keys=0,
        price=3000,
        title="共享账号",
        delivery_type=DELIVERY_FIXED,
        fixed_content_ciphertext=vault().encrypt("账号 abc 密码 123"),
    )
    for title, state in (
        ("待审商品", moderation.PENDING),
        ("被拒商品", moderation.REJECTED),
        ("下架商品", moderation.TAKEN_DOWN),
    ):
        make_product(keys=1, title=title, moderation=state, moderation_reason="违禁内容")
    make_product(keys=1, title="隐藏商品", visible=False)
    s.topup = make_product(keys=5, price=2000, title="游戏充值")
    # A product of three variants (规格), one of them sold out.
    s.gift = make_product(keys=3, price=5000, title="礼品卡")
    tiered = variants.VariantDraft(name="面值 100", price=9800, tiers=[(3, 9500)])
    variants.add_variant(merchant.id, s.gift.slug, tiered, first_name="面值 50")
    variants.add_variant(merchant.id, s.gift.slug, variants.VariantDraft(name="面值 200", price=19000))
    keys.import_keys(reload(s.gift).live_variants[1], "GIFT-100-1\nGIFT-100-2")
    answers = {}
    for kind, label, answer in (
        (KIND_NUMBER, "游戏 UID", "123456"),
        (KIND_TEXT, "角色名", "勇者"),
        (KIND_EMAIL, "联系邮箱", "uid@example.com"),
        (KIND_PHONE, "手机号", "13800138000"),
        (KIND_CHOICE, "区服", "官服"),
    ):
        field = checkout_fields.add_field(
            merchant.id,
            s.topup.slug,
            checkout_fields.FieldDraft(
                label=label,
                kind=kind,
                required=kind != KIND_PHONE,
                choices="官服\n渠道服" if kind == KIND_CHOICE else None,
            ),
        )
        answers[field.key] = answer
    images.add_images(merchant.id, s.product.slug, "cover", [picture()])
    moderation.report_product(s.product.slug, "other", "描述不符", ip="198.51.100.7")

    # Orders in every state.
    s.orders = {}
    s.orders["delivered"] = delivered(place, pay, s.product)
    s.orders["pending"] = place(s.product)
    with app.test_request_context():
        topup = checkout.place_order(s.topup.slug, 1, "buyer@example.com", "secret-1", answers=answers)
    pay(topup)
    s.orders["answers"] = reload(topup)
    manual = place(s.manual)
    pay(manual)
    s.orders["manual"] = reload(manual)
    with app.test_request_context():
        gift = checkout.place_order(s.gift.slug, 1, "buyer@example.com", None, variant_key=s.gift.live_variants[1].key)
    pay(gift)
    s.orders["variant"] = reload(gift)
    s.orders["expired"] = place(s.product)
    expire_and_reconcile(s.orders["expired"])
    s.orders["cancelled"] = place(s.product)
    s.orders["cancelled"].status, s.orders["cancelled"].cancelled_at = Order.CANCELLED, now
    s.orders["held"] = place(s.product)
    held = s.orders["held"]
    held.status, held.paid_at, held.held_at, held.risk_flags = Order.PAID, now, now, "disposable_email ip_velocity"
    # A "from my server" order whose server failed: it waits for the merchant.
    s.remote = make_product(
        keys=0,
        price=9900,
        title="加速器年度授权",
        delivery_type=DELIVERY_REMOTE,
        remote_url="https://licences.example.invalid/faka",
        remote_secret_ciphertext=vault().encrypt("ddsec_" + "5a" * 32),
    )
    s.orders["fell_back"] = fell_back = place(s.remote)
    fell_back.status, fell_back.paid_at, fell_back.manual_fallback_at = Order.PAID, now, now
    for number, code, error in ((1, 500, "HTTP 500"), (2, 200, "expected 1 keys, got 0"), (3, None, "TimeoutError")):
        db.session.add(
            RemoteDeliveryAttempt(
                order_id=fell_back.id, number=number, started_at=now, finished_at=now, status_code=code, error=error
            )
        )
    s.orders["unfulfilled"] = place(s.product)
    s.orders["unfulfilled"].status, s.orders["unfulfilled"].paid_at = Order.PAID_UNFULFILLED, now
    db.session.commit()
    s.orders["refunded"] = delivered(place, pay, s.product)
    refunds.refund_order(s.orders["refunded"].id, merchant.id, operator.id, allowed_statuses=(Order.DELIVERED,))

    # Complaints in every state, each on an order of its own.
    def complaint(reason=Complaint.KEY_INVALID) -> Complaint:
        order = delivered(place, pay, s.product)
        return workflow.open_complaint(order.token, reason, "卡密无效，无法充值")

    s.complaints = {Complaint.OPEN: complaint(Complaint.NOT_DELIVERED)}
    c = complaint(Complaint.NOT_AS_DESCRIBED)
    s.complaints[Complaint.MERCHANT_REPLIED] = workflow.offer_refund(c.id, merchant.user_id, 500, "退一半")
    c = complaint()
    workflow.post_message(c.id, ComplaintMessage.MERCHANT, merchant.user_id, "请提供截图")
    s.complaints[Complaint.ESCALATED] = workflow.escalate(c.id, now=now + timedelta(days=30))
    c = complaint(Complaint.OTHER)
    workflow.escalate(c.id, now=now + timedelta(days=30))
    s.complaints[Complaint.RESOLVED_REFUND] = workflow.decide(c.id, operator.id, 5000, "证据充分，部分退款")
    c = complaint()
    workflow.offer_replacement(c.id, merchant.user_id, 1)
    s.complaints[Complaint.RESOLVED_REPLACED] = workflow.accept_offer(c.id)
    c = complaint()
    workflow.escalate(c.id, now=now + timedelta(days=30))
    s.complaints[Complaint.RESOLVED_REJECTED] = workflow.decide(c.id, operator.id, None, "卡密经核实有效")
    s.complaints[Complaint.WITHDRAWN] = workflow.withdraw(complaint().id)
    workflow.reveal_keys(s.complaints[Complaint.ESCALATED].id, operator.id)

    # Reviews: one answered, one hidden by the operator.
    review = reviews.submit_review(s.orders["delivered"].token, 5, "很好用")
    reviews.reply(merchant.id, review.id, "谢谢惠顾")
    other = reviews.submit_review(s.complaints[Complaint.OPEN].order.token, 1, "差评")
    reviews.hide(other.id, operator.id, "辱骂")

    # Money: every ledger kind, withdrawals in every state, refunds in every state.
    for entry in db.session.scalars(select(LedgerEntry).where(LedgerEntry.merchant_id == merchant.id)):
        entry.available_at = now - timedelta(days=1)
    db.session.commit()
    account = payouts.add_payout_account(merchant.id, PayoutAccount.ALIPAY, "张三", "13800138000")
    payouts.add_payout_account(merchant.id, PayoutAccount.BANK, "张三", "6222020200112233445")
    payouts.add_payout_account(merchant.id, PayoutAccount.USDT, "张三", "TR7NHqjeKQxGTCi8q8ZY4pL8otSzgjLj6t")
    withdrawals = [payouts.request_withdrawal(merchant.id, merchant.user_id, account.id, 1000 + i) for i in range(4)]
    payouts.approve_withdrawal(withdrawals[1].id, operator.id)
    payouts.approve_withdrawal(withdrawals[2].id, operator.id)
    payouts.mark_withdrawal_paid(withdrawals[2].id, operator.id, reference="ZFB2026001")
    payouts.reject_withdrawal(withdrawals[3].id, operator.id, "账户信息有误")
    settlement.reveal_payout_account(withdrawals[0].id, operator.id)
    for status in (Refund.PENDING, Refund.DONE, Refund.MANUAL, Refund.PAID):
        order = delivered(place, pay, s.product)
        db.session.add(
            Refund(
                order_id=order.id,
                merchant_id=merchant.id,
                amount=100,
                gateway="sandbox",
                status=status,
                reference="RF2026" if status == Refund.PAID else None,
            )
        )
    db.session.commit()

    # Payments: a notification of every outcome, and notices of every kind.
    for outcome in notify.OUTCOME_LABELS:
        db.session.add(
            NotifyLog(
                gateway="sandbox",
                order_number=s.orders["delivered"].number,
                verified=True,
                outcome=outcome,
                reason="签名错误" if outcome == "rejected" else None,
                source_ip="203.0.113.5",
                body="a=1",
            )
        )
    for outcome in ("late_paid", "unfulfilled", "duplicate"):
        db.session.add(
            PaymentNotice(
                gateway="sandbox",
                trade_no=secrets.token_hex(6),
                order_id=s.orders["delivered"].id,
                amount=100,
                currency="CNY",
                outcome=outcome,
            )
        )
    db.session.commit()

    # Risk: every rule, action and checkpoint; every security event kind; the blacklist.
    actions = [engine.ALLOW, engine.FLAG, engine.CAPTCHA, engine.HOLD, engine.BLOCK]
    checkpoints = [engine.CHECKOUT, engine.NOTIFY, engine.LOOKUP, engine.LOGIN, engine.REVIEW, engine.COMPLAINT]
    for i, rule in enumerate(engine.RULE_LABELS):
        signals = engine.Signals(
            checkpoints[i % len(checkpoints)],
            ip="198.51.100.9",
            email="x@mailinator.com",
            merchant_id=merchant.id,
            now=now,
        )
        engine.add_event(
            signals,
            engine.Verdict(actions[i % len(actions)], 50, (engine.Hit(rule, 50, "10 次"),)),
            order_id=s.orders["held"].id,
        )
    for kind in SecurityEvent.KINDS:
        security_events.record(kind, "198.51.100.10", subject="admin")
    blacklist.add(BlacklistEntry.EMAIL, "bad@example.com", "欺诈", actor_id=operator.id)
    blacklist.add(BlacklistEntry.DOMAIN, "mailinator.com", "一次性邮箱", actor_id=operator.id)
    blacklist.add(
        BlacklistEntry.IP, "198.51.100.0/24", "刷单", actor_id=operator.id, expires_at=now - timedelta(days=1)
    )
    blacklist.add(BlacklistEntry.DEVICE, "a" * 64, "刷单", actor_id=operator.id)
    blacklist.add(
        BlacklistEntry.EMAIL, "ugly@example.com", "恶意投诉", actor_id=merchant.user_id, merchant_id=merchant.id
    )
    db.session.commit()

    # Webhooks: an endpoint with a delivery of every status.
    # (Written directly: creating one through the service resolves its host name.)
    endpoint = WebhookEndpoint(
        merchant_id=merchant.id,
        url="https://hooks.example.com/faka",
        secret_ciphertext=vault().encrypt("whsec"),
        events=",".join(WEBHOOK_EVENTS),
    )
    db.session.add(endpoint)
    db.session.flush()
    for event, status in zip(WEBHOOK_EVENTS, ("pending", "delivered", "failed", "delivered", "failed")):
        db.session.add(
            WebhookDelivery(
                endpoint_id=endpoint.id,
                event=event,
                payload="{}",
                status=status,
                attempts=1,
                response_code=200 if status == "delivered" else 500,
            )
        )
    db.session.commit()
    s.endpoint = endpoint

    # Push channels of the merchant and of the platform, one of them paused after failures,
    # with a message in every state in each log.
    s.push_channels = {}
    for owner, kind, settings in (
        (merchant.id, "telegram", {"bot_token": "123456789:" + "A" * 35, "chat_id": "-1001234567890"}),
        (None, "wecom", {"key": "wecom-key-1"}),
    ):
        channel = push.create_channel(owner, kind, "手机", settings, push.events_for(owner))
        for status in (PushMessage.PENDING, PushMessage.SENT, PushMessage.FAILED):
            db.session.add(
                PushMessage(channel_id=channel.id, event=push.TEST, title="测试", text="测试消息", status=status)
            )
        s.push_channels[owner] = channel
    channel = db.session.get(PushChannel, s.push_channels[None].id)
    channel.paused_at, channel.paused_reason = now, PushChannel.PAUSED_AFTER_FAILURES
    db.session.commit()

    # A key import (a job), coupons of both kinds, emails of every kind and status.
    s.key_import = keys.start_import(merchant.id, s.product.variants[0], "K1\nK1\n" + "\x01bad\n")
    keys.run_import(s.key_import.id)
    coupons.create_coupon(merchant.id, "SPRING10", "percent", 1000)
    coupons.create_coupon(
        merchant.id, "MINUS5", "fixed", 500, product_id=s.product.id, expires_at=now + timedelta(days=7), usage_limit=10
    )
    kinds = [
        "verify_email",
        "password_reset",
        "account_exists",
        "complaint_update",
        "withdrawal_status",
        "order_delivered",
        "order_replacement",
        "merchant_review",
        "two_factor_reset",
        "merchant_manual_order",
        "merchant_low_stock",
        "push_channel_paused",
    ]
    for i, kind in enumerate(kinds):
        db.session.add(
            OutboxEmail(
                kind=kind,
                to_addr=f"to{i}@example.com",
                subject="主题",
                status=(OutboxEmail.QUEUED, OutboxEmail.SENT, OutboxEmail.FAILED)[i % 3],
                last_error="timeout" if i % 3 == 2 else None,
            )
        )
    db.session.commit()

    # The operator's other decisions, and an event of every other kind the audit log names.
    merchant_review.set_terms(operator.id, merchant.id, 250, 3)
    merchant_review.request_info(operator.id, s.pending.id, "请补充营业执照")
    moderation.set_prohibited_words("赌博\n枪支", operator.id)
    for action in audit.ACTION_LABELS:
        audit.record(operator.id, action, f"merchant:{merchant.id}", detail="记录")
    db.session.commit()
    s.data = [
        "星辰小店",
        "待审小店",
        "张三",
        "李四",
        "星辰点卡",
        "SPRING10",
        "MINUS5",
        "ZFB2026001",
        "RF2026",
        "K1",
        "bad",
        "timeout",
        "a=1",
        "admin",
        "10 次",
        "Game cards",
        "Hidden cards",
        "faka_ref",  # the referral cookie's name, in the privacy policy
    ]  # the categories' English names
    return s


# -- the pages ----------------------------------------------------------------------------

# GET routes not rendered here, and why.
SKIPPED = {
    "static": "files, not pages",
    "health.healthz": "JSON for monitoring",
    "health.healthz_host": "JSON for load balancers",
    "captcha.challenge": "JSON for the captcha widget",
    "pay.notify": "answers payment providers, not people",
    "catalog.product_image": "an image",
    "catalog.logo": "an image",
    "brand.icon": "an image",
    "brand.theme_css": "a stylesheet",
    "brand.manifest": "JSON for browsers (the site's name is the operator's)",
    "merchant.product_image_file": "an image",
    "merchant.licence_image": "an image",
    "operator.merchant_licence": "an image",
    "complaints.evidence": "an image",
    "merchant.complaint_evidence": "an image",
    "operator.complaint_evidence": "an image",
    "orders.keys_txt": "the buyer's keys as a text file: data only",
    "substore.logo": "an image",
    "merchant.substore_logo": "an image",
    "merchant.substore_complaint_evidence": "an image",
    # The reseller's read-only view of a complaint on its sub-store's order: its Chinese
    # is checked in tests/growth/test_resale_backoffice.py.
    "merchant.substore_complaint": "a reseller's view, tested in tests/growth",
    "merchant.substore_complaint_thread": "a reseller's view, tested in tests/growth",
    "merchant.order_export": "CSV with machine-readable column names, for spreadsheets",
    "operator.audit_csv": "CSV with machine-readable column names, for spreadsheets",
}


def client_for(app, user=None, **session_values):
    client = app.test_client()
    with client.session_transaction() as session:
        session["lang"] = "zh_CN"
        session.update(session_values)
    if user is not None:
        login(client, user)
    return client


POLL = (200, 286)  # a polled region answers 286 once what it shows is final


def restock_token(shop: Shop) -> str:
    """The token of a back-in-stock request waiting for the shop's product (its pages:
    faka/web/shop/restock.py)."""
    import hashlib

    from faka.messaging.models import RestockRequest

    token = "zh-pages-restock-token"
    digest = hashlib.sha256(token.encode()).hexdigest()
    if db.session.scalar(select(RestockRequest.id).where(RestockRequest.token_hash == digest)) is None:
        variant = shop.product.variants[0]
        db.session.add(
            RestockRequest(
                token_hash=digest, variant_id=variant.id, product_id=variant.product_id, email="w@example.com"
            )
        )
        db.session.commit()
    return token


def sub_store(shop: Shop) -> str:
    """The code of an approved reseller's sub-store selling the shop's product (its pages:
    faka/web/shop/substore.py), with the resale programme open."""
    from faka.growth.models import ResaleTerms, SubStore, SubStoreItem
    from faka.platform import settings

    code = "zh-pages-store"
    if db.session.scalar(select(SubStore.id).where(SubStore.code == code)) is None:
        settings.set_setting("resale_enabled", "1")
        reseller = users.create_merchant("reseller@zh-pages.test", "reseller-pass-1", "月光分销", approved=True)
        store = SubStore(
            merchant_id=reseller.id, code=code, name="月光小铺", announcement="欢迎光临", contact="QQ 5551234"
        )
        store.status = SubStore.APPROVED
        db.session.add(store)
        db.session.flush()
        variant = shop.product.variants[0]
        db.session.add(
            ResaleTerms(
                variant_id=variant.id,
                product_id=variant.product_id,
                merchant_id=variant.product.merchant_id,
                floor_price=100,
            )
        )
        db.session.add(
            SubStoreItem(
                substore_id=store.id, variant_id=variant.id, product_id=variant.product_id, price=variant.price + 100
            )
        )
        db.session.commit()
    return code


def promoter_code(shop: Shop) -> str:
    """The link code of the shop's merchant as a promoter, with the programme open."""
    from faka.growth import affiliates
    from faka.platform import settings

    settings.set_setting("affiliate_enabled", "1")
    return affiliates.become_promoter(shop.merchant.id, shop.merchant.user_id).code


def page_urls(shop: Shop) -> dict[str, list[tuple[str, str, int]]]:
    """Endpoint -> [(who, url, expected status)] for every page this test renders."""

    s, merchant = shop, shop.merchant
    orders = [o for o in s.orders.values()] + [c.order for c in s.complaints.values()]
    complaint_refs = [(c.order.token, c.ref) for c in s.complaints.values()]
    buyer, seller, desk = "buyer", "merchant", "operator"
    products = list(db.session.scalars(select(Product).where(Product.merchant_id == merchant.id)))
    on_sale = [p for p in products if p.visible and p.moderation == moderation.APPROVED]
    field_key = s.topup.checkout_fields[0].key
    email = db.session.scalar(select(OutboxEmail).where(OutboxEmail.payload_ciphertext.is_not(None)))
    merchants = list(db.session.scalars(select(Merchant)))
    urls = {
        "catalog.product": [(buyer, f"/p/{p.slug}", 200) for p in on_sale],
        "catalog.product_reviews": [(buyer, f"/p/{s.product.slug}/reviews", 200)],
        "checkout.preview": [
            (buyer, f"/p/{s.product.slug}/quote?quantity=2&coupon=SPRING10", 200),
            (buyer, f"/p/{s.gift.slug}/quote?quantity=9&variant={s.gift.live_variants[1].key}", 200),
            (buyer, f"/p/{s.gift.slug}/quote?quantity=1", 200),
        ],
        "catalog.shop": [(buyer, f"/shop/{merchant.public_id}", 200)],
        "substore.store": [(buyer, f"/s/{sub_store(s)}", 200), (buyer, "/s/no-such-store", 404)],
        "substore.product": [(buyer, f"/s/{sub_store(s)}/p/{s.product.slug}", 200)],
        "operator.growth_substore": [(desk, f"/operator/growth/substores/{sub_store(s)}", 200)],
        "merchant.promoter_link": [(seller, "/merchant/promoter/link?url=/", 200)],
        "operator.growth_promoter": [(desk, f"/operator/growth/promoters/{promoter_code(s)}", 200)],
        "catalog.shop_reviews": [(buyer, f"/shop/{merchant.public_id}/reviews", 200)],
        "orders.show": [(buyer, f"/order/{o.token}", 200) for o in orders],
        "orders.status": [(buyer, f"/order/{o.token}/status", POLL) for o in orders],
        "orders.review": [(buyer, f"/order/{s.orders['delivered'].token}/review", 200)],
        "complaints.start": [(buyer, f"/order/{s.orders['delivered'].token}/complaint", 200)],
        "complaints.show": [(buyer, f"/order/{token}/complaint/{ref}", 200) for token, ref in complaint_refs],
        "complaints.thread": [(buyer, f"/order/{token}/complaint/{ref}/thread", POLL) for token, ref in complaint_refs],
        "pay.start": [(buyer, f"/pay/{s.orders['pending'].token}", 200)],
        "pay.state": [(buyer, f"/pay/{s.orders['pending'].token}/state", POLL)],
        "pay.payer": [(buyer, f"/pay/{s.orders['pending'].token}/payer", 400)],  # no sign-in state: the refusal page
        "auth.reset": [(buyer, f"/reset/{users.password_reset_token(s.pending.user)}", 200)],
        "auth.verify_email": [(buyer, "/verify/not-a-token", 400)],
        "restock.status": [(buyer, f"/restock/{restock_token(s)}", 200), (buyer, "/restock/not-a-token", 404)],
        "restock.cancel_page": [(buyer, f"/restock/{restock_token(s)}/cancel", 200)],
        "auth.login_2fa": [("pending_2fa", "/login/2fa", 200)],
        "auth.two_factor_setup": [("new_merchant", "/account/2fa/setup", 200)],
        "auth.recovery_codes": [("new_codes", "/account/2fa/recovery-codes", 200)],
        "auth.two_factor": [(seller, "/account/2fa", 200), (desk, "/account/2fa", 200)],
        "auth.sessions": [(seller, "/account/sessions", 200), (desk, "/account/sessions", 200)],
        "auth.reauth": [(seller, "/reauth", 200)],
        "passkeys.manage": [(seller, "/account/passkeys", 200), (desk, "/account/passkeys", 200)],
        "passkeys.add": [("operator_confirmed", "/account/passkeys/add", 200)],
        "merchant.order_detail": [(seller, f"/merchant/orders/{o.number}", 200) for o in orders],
        "merchant.complaint_detail": [(seller, f"/merchant/complaints/{ref}", 200) for _t, ref in complaint_refs],
        "merchant.complaint_thread": [
            (seller, f"/merchant/complaints/{ref}/thread", POLL) for _t, ref in complaint_refs
        ],
        "merchant.product_edit": [(seller, f"/merchant/products/{p.slug}/edit", 200) for p in products],
        "merchant.product_fields": [(seller, f"/merchant/products/{s.topup.slug}/fields", 200)],
        "merchant.variant_edit": [
            (seller, f"/merchant/products/{s.gift.slug}/variants/{s.gift.live_variants[1].key}", 200)
        ],
        "merchant.product_field_edit": [(seller, f"/merchant/products/{s.topup.slug}/fields/{field_key}", 200)],
        "merchant.product_images_page": [(seller, f"/merchant/products/{s.product.slug}/images", 200)],
        "merchant.product_server": [(seller, f"/merchant/products/{s.remote.slug}/server", 200)],
        "merchant.product_keys": [(seller, f"/merchant/products/{p.slug}/keys", 200) for p in (s.product, s.manual)],
        "merchant.key_import": [(seller, f"/merchant/imports/{s.key_import.public_id}", 200)],
        "merchant.push_new": [(seller, f"/merchant/push/new/{kind}", 200) for kind in push.KINDS],
        "merchant.push_channel": [(seller, f"/merchant/push/{s.push_channels[merchant.id].id}", 200)],
        "operator.push_new": [(desk, f"/operator/push/new/{kind}", 200) for kind in push.KINDS],
        "operator.push_channel": [(desk, f"/operator/push/{s.push_channels[None].id}", 200)],
        "merchant.webhook_detail": [(seller, f"/merchant/webhooks/{s.endpoint.id}", 200)],
        "merchant.money_overview": [(seller, "/merchant/money", 200)]
        + [(seller, f"/merchant/money?kind={k}", 200) for k in balances.LEDGER_KINDS],
        "merchant.complaint_list": [
            (seller, "/merchant/complaints", 200),
            (seller, "/merchant/complaints?status=all", 200),
        ],
        "merchant.review_list": [(seller, f"/merchant/reviews?only={only}", 200) for only in ("all", "unanswered")],
        "operator.complaint_case": [(desk, f"/operator/complaints/{ref}", 200) for _t, ref in complaint_refs],
        "operator.complaint_case_thread": [
            (desk, f"/operator/complaints/{ref}/thread", POLL) for _t, ref in complaint_refs
        ],
        "operator.complaint_queue": [
            (desk, "/operator/complaints", 200),
            (desk, "/operator/complaints?status=all", 200),
        ],
        "operator.merchant_detail": [(desk, f"/operator/merchants/{m.id}", 200) for m in merchants],
        "operator.merchants": [(desk, "/operator/merchants", 200)]
        + [(desk, f"/operator/merchants?status={st}", 200) for st in ("pending", "frozen", "all")],
        "operator.outbox_read": [("operator_confirmed", f"/operator/outbox/{email.id}", 200)],
        "operator.refund_list": [(desk, f"/operator/refunds?status={st}", 200) for st in ("manual", "all")],
        "operator.withdrawals": [(desk, f"/operator/withdrawals?status={st}", 200) for st in ("open", "all")],
        "operator.review_list": [
            (desk, f"/operator/reviews?only={only}", 200) for only in ("all", "suspicious", "hidden")
        ],
        "operator.notify_log": [
            (desk, "/operator/payments", 200),
            (desk, f"/operator/payments?order={s.orders['delivered'].number}", 200),
        ],
        "operator.security_log": [(desk, "/operator/security", 200)],
        "operator.risk_monitor": [(desk, "/operator/risk?since=7d", 200)],
        "operator.blacklist_list": [(desk, "/operator/blacklist", 200)],
        "operator.audit_log": [(desk, "/operator/audit", 200), (desk, "/operator/audit?page=2", 200)],
    }
    # Every other GET route without arguments, as the role its address belongs to.
    from flask import current_app

    for rule in current_app.url_map.iter_rules():
        if rule.endpoint.startswith("api_v1."):
            continue  # the merchant REST API: JSON for programs, its messages tested in tests/web/api
        if "GET" not in rule.methods or rule.endpoint in urls or rule.endpoint in SKIPPED:
            continue
        assert not rule.arguments - set(rule.defaults or ()), f"{rule.rule}: add its pages to page_urls or SKIPPED"
        who = desk if rule.rule.startswith("/operator") else seller if rule.rule.startswith("/merchant") else buyer
        urls[rule.endpoint] = [(who, rule.rule, 200)]
    return urls


def test_every_page_in_chinese_shows_no_identifier_or_english(app, shop):
    import time

    from faka.accounts.twofactor import seal
    from faka.web.auth.views import NEW_RECOVERY_CODES, PENDING_2FA

    clients = {
        "buyer": client_for(app),
        "merchant": client_for(app, shop.merchant.user),
        "operator": client_for(app, shop.operator),
        "operator_confirmed": client_for(app, shop.operator, reauth_at=int(time.time())),
        "pending_2fa": client_for(app, **{PENDING_2FA: {"uid": shop.operator.id, "until": int(time.time()) + 300}}),
        "new_merchant": client_for(app, shop.pending.user),
        "new_codes": client_for(app, shop.merchant.user, **{NEW_RECOVERY_CODES: seal("aaaa-bbbb cccc-dddd")}),
    }
    english = english_words()
    found, visited = [], 0
    for _endpoint, pages in sorted(page_urls(shop).items()):
        for who, url, expected in pages:
            response = clients[who].get(url)
            visited += 1
            if response.status_code not in (expected if isinstance(expected, tuple) else (expected,)):
                found.append(f"{url} ({who}): status {response.status_code}, expected {expected}")
                continue
            for problem in problems_in(visible_text(response.text), shop.data, english):
                found.append(f"{url} ({who}): {problem}")
    # The report of a small key import, which only its POST renders: every kind of line.
    keys_url = f"/merchant/products/{shop.product.slug}/keys"
    response = clients["merchant"].post(
        keys_url,
        data={
            "csrf_token": csrf_from(clients["merchant"].get(keys_url).text),
            "separator": "newline",
            "keys": "NEW-1\nNEW-1\nK1\n\x01bad\n",
        },
    )
    assert response.status_code == 200
    found += [f"POST {keys_url}: {p}" for p in problems_in(visible_text(response.text), shop.data, english)]
    assert visited > 100
    assert not found, f"{len(found)} problems:\n" + "\n".join(found)


# -- the labels themselves ------------------------------------------------------------------

# Where the code names an audit action: audit.record(actor, "x.y", ...), AuditEvent(action="x.y"),
# the complaint and moderation steps' helpers, and module constants (RAN = "retention.ran").
RECORDED = re.compile(
    r"""(?:audit\.record\(|_audit\()[^,]+,\s*"([a-z0-9_]+\.[a-z0-9_]+)"|action="([a-z0-9_]+\.[a-z0-9_]+)"|"""
    r"""(?:_step|_decide)\([^)]*?"([a-z0-9_]+\.[a-z0-9_]+)"|^[A-Z_]+ = "([a-z0-9_]+\.[a-z0-9_]+)"\s*$""",
    re.M,
)


def test_every_audit_action_the_code_records_has_a_label():
    # Actions built at run time (f"merchant.{decision}", f"refund.{status}",
    # f"withdrawal.{to}") are listed in ACTION_LABELS by hand and rendered above.
    source = "\n".join(p.read_text() for p in (ROOT / "faka").rglob("*.py"))
    recorded = {name for match in RECORDED.findall(source) for name in match if name}
    recorded &= {a for a in recorded if a.split(".")[0] in {a.split(".")[0] for a in audit.ACTION_LABELS}}
    assert len(recorded) > 30
    assert sorted(recorded - set(audit.ACTION_LABELS)) == []


def test_an_unknown_audit_action_reads_as_words(app):
    with app.test_request_context("/?lang=zh_CN"):
        assert audit.action_label("shop.thing_done") == "shop thing done"
        assert audit.action_label("merchant.2fa_reset") == "重置商户的两步验证"


def test_risk_details_are_shown_in_the_pages_language(app):
    with app.test_request_context("/?lang=zh_CN"):
        assert engine.hit_detail("7 orders in 10 min") == "10 分钟内 7 单"
        assert engine.hit_detail("site email a@mailinator.com") == "平台黑名单 · 邮箱地址 · a@mailinator.com"
        assert engine.hit_detail("mailinator.com") == "mailinator.com"  # data, as it is
    with app.app_context(), app.test_request_context("/?lang=en"):  # a new g: the language is cached there
        assert engine.hit_detail("7 orders in 10 min") == "7 orders in 10 min"


def test_a_fee_rate_reads_as_a_percentage():
    from faka.web.templating import fee_rate

    assert [fee_rate(bp) for bp in (0, 250, 300, 333, 5000)] == ["0%", "2.5%", "3%", "3.33%", "50%"]
