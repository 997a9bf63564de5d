"""The risk engine: abnormal-transaction monitoring at every door a buyer or an attacker
comes through.

Each checkpoint (checkout, payment notification, order lookup, login, review, complaint)
describes who is asking as `Signals`. The rules of that checkpoint look at them; each
rule that fires adds its score and a plain-language reason. The total maps to an action
through the site's thresholds (a product may be stricter):

    allow < flag < captcha < hold < block

- flag: the request goes through and the event is shown to the operator (and to the
  merchant, on its order);
- captcha: the visitor must solve a proof-of-work challenge first (checkout, lookup and
  login; elsewhere it counts as a flag);
- hold: the order is taken and paid for, but its goods wait for an operator;
- block: the request is refused and nothing changes.

Every assessment that scores is recorded as a RiskEvent with one RiskHit per rule, which
the operator's live monitor lists and charts. An honest buyer scores nothing.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache

from disposable_email_domains import blocklist as DISPOSABLE_DOMAINS
from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, bindparam, func, or_, select, text

from faka.accounts.models import Merchant, User
from faka.catalog.models import Product, ProductVariant
from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.cache import reused
from faka.core.db import begin_write, is_postgresql
from faka.core.errors import DomainError
from faka.extensions import db
from faka.growth.models import Promoter
from faka.inventory.models import CardKey
from faka.orders.models import Order, email_domain
from faka.platform import settings
from faka.risk import blacklist
from faka.risk.models import RiskEvent, RiskHit, SecurityEvent, SignIn

CHECKOUT = "checkout"
NOTIFY = "notify"
LOOKUP = "lookup"
LOGIN = "login"
REVIEW = "review"
COMPLAINT = "complaint"
CHECKPOINTS = (CHECKOUT, NOTIFY, LOOKUP, LOGIN, REVIEW, COMPLAINT)

ALLOW = "allow"
FLAG = "flag"
CAPTCHA = "captcha"
HOLD = "hold"
BLOCK = "block"
ACTIONS = (ALLOW, FLAG, CAPTCHA, HOLD, BLOCK)

# Site settings (faka/platform/settings.py) holding the score at which each action starts.
THRESHOLD_SETTINGS = {FLAG: "risk_flag_at", CAPTCHA: "risk_captcha_at", HOLD: "risk_hold_at", BLOCK: "risk_block_at"}

# -- what the rules count, and over which window --------------------------------------
VELOCITY_WINDOW = timedelta(minutes=10)
IP_ORDERS = 10  # orders from one IP address in the window
DEVICE_ORDERS = 10  # orders from one browser
EMAIL_ORDERS = 5  # orders for one email address
DOMAIN_ORDERS = 30  # orders for one email domain (a throwaway domain a bot rotates addresses on)
PENDING_ORDERS = 5  # unpaid orders one IP or browser holds at once
STOCK_SHARE = 0.5  # of a variant's unsold keys, what one buyer's unpaid orders may hold
LOOKUP_WINDOW = timedelta(minutes=15)
FAILED_LOOKUPS = 5  # then a captcha
FAILED_LOOKUPS_BLOCK = 20  # then nothing more for a while
LOGIN_WINDOW = timedelta(minutes=15)
FAILED_LOGINS = 10
FAILED_LOGINS_BLOCK = 50
NOTIFY_WINDOW = timedelta(minutes=10)
FORGED_NOTIFIES = 20  # notifications with a bad signature from one source address
AMOUNT_WINDOW = timedelta(hours=1)
AMOUNT_MISMATCHES = 3  # verified notifications whose amount was not the order's
NOISE_WINDOW = timedelta(hours=1)
NOISE_EVENTS = 20  # CSRF failures, admin-path probes, rate limits from one IP
NOISE_KINDS = (
    SecurityEvent.CSRF_FAILED,
    SecurityEvent.ADMIN_PROBE,
    SecurityEvent.RATE_LIMITED,
    SecurityEvent.CAPTCHA_FAILED,
)
COMPLAINT_WINDOW = timedelta(days=1)
COMPLAINTS = 3  # complaints from one browser or IP
REFERRED_WINDOW = timedelta(hours=1)
REFERRED_BURST = 3  # referred orders from one browser or IP, this checkout included

# -- the rules' scores ------------------------------------------------------------------
SCORES = {
    "blacklist": 100,
    "ip_velocity": 30,
    "device_velocity": 30,
    "email_velocity": 20,
    "domain_velocity": 20,
    "pending_hoarding": 50,
    "stock_hoarding": 100,
    "disposable_email": 40,
    "self_purchase": 20,
    "failed_lookups": 40,
    "failed_lookups_many": 80,
    "failed_logins": 40,
    "failed_logins_many": 80,
    "forged_notifies": 100,
    "amount_mismatches": 30,
    "security_noise": 30,
    "complaint_velocity": 20,
    # Growth (faka/growth/affiliates.py): a referred order whose buyer is the promoter
    # earns no commission; many referred orders from one browser are watched.
    "self_referral": 20,
    "referral_burst": 30,
    # Found by the review rules (faka/reviews/reviews.py): the review does not count.
    "review_self_purchase": 20,
    "review_device_orders": 20,
    "review_device_reviews": 20,
    "review_burst": 20,
}

# What each rule means, for the operator's monitor and the merchant's order list.
RULE_LABELS = {
    "blacklist": _l("On the blacklist"),
    "ip_velocity": _l("Many orders from one IP address"),
    "device_velocity": _l("Many orders from one browser"),
    "email_velocity": _l("Many orders for one email address"),
    "domain_velocity": _l("Many orders for one email domain"),
    "pending_hoarding": _l("Many unpaid orders held at once"),
    "stock_hoarding": _l("Unpaid orders holding much of the stock"),
    "disposable_email": _l("Disposable email address"),
    "self_purchase": _l("Bought from the seller's own IP or browser"),
    "failed_lookups": _l("Repeated failed order lookups"),
    "failed_lookups_many": _l("Order lookups guessed in bulk"),
    "failed_logins": _l("Repeated failed logins"),
    "failed_logins_many": _l("Logins guessed in bulk"),
    "forged_notifies": _l("Payment notifications with bad signatures"),
    "amount_mismatches": _l("Payment notifications with the wrong amount"),
    "security_noise": _l("Probing: bad form tokens, admin-path scans, rate limits"),
    "complaint_velocity": _l("Many complaints from one browser or IP"),
    "self_referral": _l("Referred by a promoter who bought it themselves"),
    "referral_burst": _l("Many referred orders from one browser"),
    "review_self_purchase": _l("Review of a self-purchase"),
    "review_device_orders": _l("Review from a browser with many orders"),
    "review_device_reviews": _l("Many reviews from one browser"),
    "review_burst": _l("Burst of reviews for one shop"),
}

# A hit's detail is stored as the rule words it below (English, like the logs); pages
# show it in their language through these patterns, one per way the rules word it.
BLACKLIST_OWNERS = {"shop": _l("Shop's blacklist"), "site": _l("Platform blacklist")}
_DETAILS = (
    (re.compile(r"(?P<count>\d+) orders in (?P<minutes>\d+) min"), _l("%(count)s orders in %(minutes)s min")),
    (
        re.compile(r"(?P<count>\d+) orders for @(?P<domain>\S+) in (?P<minutes>\d+) min"),
        _l("%(count)s orders for @%(domain)s in %(minutes)s min"),
    ),
    (re.compile(r"(?P<count>\d+) unpaid orders"), _l("%(count)s unpaid orders")),
    (re.compile(r"(?P<count>\d+) of (?P<total>\d+) keys unpaid"), _l("%(count)s of %(total)s keys unpaid")),
    (re.compile(r"(?P<count>\d+) failed in (?P<minutes>\d+) min"), _l("%(count)s failed in %(minutes)s min")),
    (re.compile(r"(?P<count>\d+) in (?P<minutes>\d+) min"), _l("%(count)s in %(minutes)s min")),
    (re.compile(r"(?P<count>\d+) in (?P<hours>\d+) h"), _l("%(count)s in %(hours)s h")),
)
_BLACKLISTED = re.compile(r"(?:(?P<owner>shop|site) )?(?P<kind>email|domain|ip|device) (?P<value>\S+)")


def hit_detail(detail: str | None) -> str:
    """A stored hit detail ("7 orders in 10 min", "site email a@b.c") in the page's
    language; anything else (a domain, an old wording) as it is."""
    detail = detail or ""
    for pattern, message in _DETAILS:
        found = pattern.fullmatch(detail)
        if found:
            return str(message) % found.groupdict()
    found = _BLACKLISTED.fullmatch(detail)
    if found:
        kind = str(blacklist.KIND_LABELS[found["kind"]])
        owner = BLACKLIST_OWNERS.get(found["owner"] or "")
        return " · ".join(filter(None, (str(owner) if owner else "", kind, found["value"])))
    return detail


@dataclass(frozen=True)
class Signals:
    """Who is asking, at which checkpoint, for what."""

    checkpoint: str
    ip: str | None = None
    device_hash: str | None = None
    email: str | None = None
    merchant_id: int | None = None
    product: Product | None = None
    quantity: int = 0
    order: Order | None = None
    now: datetime = field(default_factory=lambda: clock.now())
    # What this assessment's rules have counted, for rules that share one query.
    counted: dict = field(default_factory=dict, compare=False, repr=False)
    # The product's variant a checkout is for: its own key pool is what stock_hoarding guards.
    variant: ProductVariant | None = None
    # The promoter whose link brought the buyer to this checkout (faka/growth/).
    promoter_id: int | None = None

    @property
    def email_domain(self) -> str | None:
        return email_domain(self.email)


@dataclass(frozen=True)
class Hit:
    rule: str
    score: int
    detail: str = ""  # the figures behind it, e.g. "12 orders in 10 min"

    @property
    def label(self):
        return RULE_LABELS.get(self.rule, self.rule)


@dataclass(frozen=True)
class Verdict:
    action: str
    score: int
    hits: tuple[Hit, ...] = ()

    @property
    def rules(self) -> str:
        return " ".join(hit.rule for hit in self.hits)


ALLOWED = Verdict(ALLOW, 0)


class Refused(DomainError):
    """The risk engine stopped the request; nothing changed except the recorded event."""

    def __init__(self, verdict: Verdict, signals: Signals, captcha_solved: bool = False):
        super().__init__()
        self.verdict = verdict
        self.signals = signals
        self.captcha_solved = captcha_solved

    def record(self) -> None:
        """Record the refusal's event in its own transaction (after the rollback),
        once a minute for the same visitor and rules: a bot refused a thousand times
        shows in the monitor without a thousand writes."""
        signals = self.signals
        record_once(
            signals,
            self.verdict,
            key=(signals.checkpoint, signals.ip, signals.device_hash, self.verdict.action, self.verdict.rules),
            captcha_solved=self.captcha_solved,
        )


class CaptchaRequired(Refused):
    message = _l(
        "Please wait a moment while your browser completes a quick check, then submit again. "
        "No puzzle to solve: it runs by itself."
    )


class Blocked(Refused):
    message = _l("This request cannot be accepted. If you think this is a mistake, please contact the site.")


class StockHoarding(Blocked):
    message = _l(
        "You already have unpaid orders holding much of this product's stock. Pay for them or let them expire first."
    )


# -- thresholds -------------------------------------------------------------------------


def thresholds(product: Product | None = None) -> dict[str, int]:
    """The score at which each action starts: the site's settings, or a product's
    stricter (lower) captcha and hold thresholds."""
    values = settings.cached_site_settings()
    limits = {action: int(values[key]) for action, key in THRESHOLD_SETTINGS.items()}
    if product is not None:
        if product.risk_captcha_at:
            limits[CAPTCHA] = min(limits[CAPTCHA], product.risk_captcha_at)
        if product.risk_hold_at:
            limits[HOLD] = min(limits[HOLD], product.risk_hold_at)
    return limits


# What an action becomes where it cannot apply: no captcha outside the buyer's and the
# back office's forms, no hold where there is no order to hold.
_DOWNGRADES = {
    CHECKOUT: {},
    NOTIFY: {CAPTCHA: FLAG},
    LOOKUP: {HOLD: CAPTCHA},
    LOGIN: {HOLD: CAPTCHA},
    REVIEW: {CAPTCHA: FLAG, HOLD: FLAG},
    COMPLAINT: {CAPTCHA: FLAG, HOLD: FLAG},
}


def _action_for(score: int, checkpoint: str, limits: dict[str, int]) -> str:
    action = ALLOW
    for candidate in (FLAG, CAPTCHA, HOLD, BLOCK):
        if score >= limits[candidate]:
            action = candidate
    return _DOWNGRADES[checkpoint].get(action, action)


# -- assessing --------------------------------------------------------------------------


def assess(signals: Signals) -> Verdict:
    """Run the checkpoint's rules. Reads only."""
    hits = tuple(hit for rule in RULES[signals.checkpoint] if (hit := rule(signals)) is not None)
    if not hits:
        return ALLOWED
    score = sum(hit.score for hit in hits)
    return Verdict(_action_for(score, signals.checkpoint, thresholds(signals.product)), score, hits)


def check(signals: Signals, captcha_solved: bool = False) -> Verdict:
    """Assess a request that may be refused, inside the caller's transaction. A refusal
    rolls that transaction back, records its event and raises Blocked or
    CaptchaRequired; otherwise the verdict to apply (allow, flag or hold) is returned,
    to be recorded with `add_event`."""
    verdict = assess(signals)
    refusal = None
    if verdict.action == BLOCK:
        stock_hit = any(hit.rule == "stock_hoarding" for hit in verdict.hits)
        refusal = (StockHoarding if stock_hit else Blocked)(verdict, signals, captcha_solved)
    elif verdict.action == CAPTCHA and not captcha_solved:
        refusal = CaptchaRequired(verdict, signals)
    if refusal is not None:
        db.session.rollback()  # kept: discards the caller's transaction (maybe a write_transaction()) before the record
        refusal.record()
        raise refusal
    return verdict


_BUYER_LOCK_CLASS = 7307  # the advisory-lock namespace of checkouts per buyer


def serialise_buyer(signals: Signals) -> None:
    """Make one buyer's (IP address's, browser's) checkouts take turns until commit, so
    the counting rules see each other's orders: on PostgreSQL with a transaction-scoped
    advisory lock per value, taken in a fixed order so two checkouts cannot deadlock.
    SQLite's write transactions already take turns."""
    if not is_postgresql():
        return
    values = sorted(v for v in (signals.ip, signals.device_hash) if v)
    if values:
        # One statement; PostgreSQL evaluates a select list left to right.
        locks = ", ".join(f"pg_advisory_xact_lock(:cls, hashtext(:v{i}))" for i in range(len(values)))
        db.session.execute(
            text(f"SELECT {locks}"), {"cls": _BUYER_LOCK_CLASS, **{f"v{i}": value for i, value in enumerate(values)}}
        )


def add_event(
    signals: Signals, verdict: Verdict, order_id: int | None = None, captcha_solved: bool = False
) -> RiskEvent | None:
    """Add the event of a scoring verdict to the caller's transaction."""
    if not verdict.hits:
        return None
    order = signals.order
    product = signals.product
    event = RiskEvent(
        checkpoint=signals.checkpoint,
        action=verdict.action,
        score=verdict.score,
        captcha_solved=captcha_solved,
        ip=(signals.ip or "")[:45] or None,
        device_hash=signals.device_hash,
        email=(signals.email or "")[:254] or None,
        order_id=order_id if order_id is not None else (order.id if order is not None else None),
        merchant_id=signals.merchant_id,
        product_id=product.id if product is not None else None,
        created_at=signals.now,
    )
    db.session.add(event)
    db.session.flush()
    for hit in verdict.hits:
        db.session.add(
            RiskHit(event_id=event.id, rule=hit.rule, score=hit.score, detail=hit.detail[:200], created_at=signals.now)
        )
    return event


def record(signals: Signals, verdict: Verdict, captcha_solved: bool = False) -> None:
    """Record the event of a refused request in its own transaction."""
    if not verdict.hits:
        return
    # Kept as begin_write()/commit: check() records from inside callers' write_transaction() blocks, which do not nest.
    begin_write()
    add_event(signals, verdict, captcha_solved=captcha_solved)
    db.session.commit()


RECORD_ONCE_SECONDS = 60


def record_once(signals: Signals, verdict: Verdict, key, captcha_solved: bool = False) -> None:
    """Record a refusal at most once a minute per key in this process: a flood of
    refused requests shows in the monitor without a write per request."""
    cache = current_app.extensions["faka_pagecache"]
    cache_key = ("risk-recorded",) + tuple(key)
    if cache.get(cache_key) is None:
        cache.set(cache_key, True, RECORD_ONCE_SECONDS)  # first, so simultaneous refusals record once
        record(signals, verdict, captcha_solved=captcha_solved)


def note(signals: Signals, rule: str, detail: str = "") -> None:
    """Add a single rule's finding (made elsewhere, e.g. by the review rules) as a flag
    event to the caller's transaction."""
    score = SCORES[rule]
    hit = Hit(rule, score, detail)
    add_event(signals, Verdict(_action_for(score, signals.checkpoint, thresholds(signals.product)), score, (hit,)))


# -- the rules ------------------------------------------------------------------------


def _hit(rule: str, detail: str = "") -> Hit:
    return Hit(rule, SCORES[rule], detail)


def _count(query, params: dict | None = None) -> int:
    return db.session.scalar(query, params) or 0


def blacklisted(signals: Signals) -> Hit | None:
    entry = blacklist.match(
        blacklist.Who(signals.ip, signals.device_hash, signals.email), merchant_id=signals.merchant_id, now=signals.now
    )
    if entry is None:
        return None
    owner = "shop" if entry.merchant_id else "site"
    return _hit("blacklist", f"{owner} {entry.kind} {entry.value}")


def _buyer_counts(signals: Signals) -> dict[str, int]:
    """What a checkout's counting rules count (orders in the velocity window per IP
    address, browser, email and email domain; unpaid orders the buyer holds, and how many
    keys of this variant they hold; the buyer's security noise), in one statement for all
    of them: a checkout runs every one, and one pass over their indexes (combined by the
    database) costs far less than six statements."""
    counts = signals.counted.get("buyer")
    if counts is not None:
        return counts
    values = {
        "ip": signals.ip,
        "device": signals.device_hash,
        "email": (signals.email or "").strip().lower(),
        "domain": signals.email_domain,
    }
    names = tuple(name for name in ("ip", "device", "email", "domain") if values[name])
    counts = {}
    if names:
        variant_id = signals.variant.id if signals.variant is not None else None
        query = _buyer_counts_query(names, variant_id is not None)
        row = db.session.execute(
            query,
            {
                "since": signals.now - VELOCITY_WINDOW,
                "now": signals.now,
                "events_since": signals.now - NOISE_WINDOW,
                "variant": variant_id,
                **{name: values[name] for name in names},
            },
        ).one()
        counts = dict(zip(row._fields, (value or 0 for value in row)))
    signals.counted["buyer"] = counts
    return counts


@cache
def _buyer_counts_query(names: tuple[str, ...], of_variant: bool):
    # Built once for each set of signals present: every checkout runs it.
    recent = Order.created_at > bindparam("since")
    conditions = {
        "ip": and_(recent, Order.client_ip == bindparam("ip")),
        "device": and_(recent, Order.device_hash == bindparam("device")),
        "email": and_(recent, Order.email == bindparam("email")),
        "domain": and_(recent, Order.email_domain == bindparam("domain")),
    }
    wanted = {name: conditions[name] for name in names}
    columns = [func.count().filter(condition).label(name) for name, condition in wanted.items()]
    buyer = [
        {"ip": Order.client_ip, "device": Order.device_hash}[name] == bindparam(name)
        for name in names
        if name in ("ip", "device")
    ]
    if buyer:
        unpaid = and_(Order.status == Order.PENDING, Order.expires_at > bindparam("now"), or_(*buyer))
        wanted["pending"] = unpaid
        columns.append(func.count().filter(unpaid).label("pending"))
        if of_variant:
            # An unpaid order holds exactly its quantity of reserved keys until it expires.
            columns.append(
                func.sum(Order.quantity).filter(and_(unpaid, Order.variant_id == bindparam("variant"))).label("held")
            )
        columns.append(
            _security_events_query(NOISE_KINDS, "ip" in names, "device" in names).scalar_subquery().label("noise")
        )
    return select(*columns).select_from(Order).where(or_(*wanted.values()))


def ip_velocity(signals: Signals) -> Hit | None:
    if not signals.ip:
        return None
    count = _buyer_counts(signals)["ip"]
    return _hit("ip_velocity", f"{count} orders in 10 min") if count >= IP_ORDERS else None


def device_velocity(signals: Signals) -> Hit | None:
    if not signals.device_hash:
        return None
    count = _buyer_counts(signals)["device"]
    return _hit("device_velocity", f"{count} orders in 10 min") if count >= DEVICE_ORDERS else None


def email_velocity(signals: Signals) -> Hit | None:
    if not (signals.email or "").strip():
        return None
    count = _buyer_counts(signals)["email"]
    return _hit("email_velocity", f"{count} orders in 10 min") if count >= EMAIL_ORDERS else None


def domain_velocity(signals: Signals) -> Hit | None:
    domain = signals.email_domain
    if not domain:
        return None
    count = _buyer_counts(signals)["domain"]
    return _hit("domain_velocity", f"{count} orders for @{domain} in 10 min") if count >= DOMAIN_ORDERS else None


def pending_hoarding(signals: Signals) -> Hit | None:
    if not (signals.ip or signals.device_hash):
        return None
    count = _buyer_counts(signals)["pending"]
    return _hit("pending_hoarding", f"{count} unpaid orders") if count >= PENDING_ORDERS else None


def stock_hoarding(signals: Signals) -> Hit | None:
    """A buyer who already holds unpaid reservations of this variant (each variant has its
    own keys) may not raise them past STOCK_SHARE of what is left unsold. A first order is
    never refused by this."""

    product, variant = signals.product, signals.variant
    if product is None or variant is None or not (signals.ip or signals.device_hash) or not product.uses_key_stock:
        return None
    held = _buyer_counts(signals)["held"]
    if held == 0:
        return None  # no unpaid order of this variant: the usual checkout ends here
    available = _count(
        select(func.count())
        .select_from(CardKey)
        .where(CardKey.variant_id == variant.id, CardKey.status == CardKey.AVAILABLE)
    )
    wanted = held + signals.quantity
    if wanted > STOCK_SHARE * (available + held):
        return _hit("stock_hoarding", f"{wanted} of {available + held} keys unpaid")
    return None


def disposable_email(signals: Signals) -> Hit | None:
    domain = signals.email_domain
    if not domain:
        return None
    labels = domain.split(".")
    # The domain itself or any parent: throwaway services hand out subdomains too.
    if any(".".join(labels[i:]) in DISPOSABLE_DOMAINS for i in range(len(labels) - 1)):
        return _hit("disposable_email", domain)
    return None


def self_purchase(signals: Signals) -> Hit | None:
    if signals.merchant_id is None or not (signals.ip or signals.device_hash):
        return None
    places = reused(("sign-in-places", signals.merchant_id), lambda: _sign_in_places(signals.merchant_id))
    return _hit("self_purchase") if {signals.ip, signals.device_hash} & places else None


def _sign_in_places(merchant_id: int) -> frozenset[str]:
    """The addresses and browsers the merchant has signed in from. Every checkout asks,
    so they are kept for PAGE_CACHE_SECONDS within this process (payment asks again)."""
    rows = db.session.execute(
        select(SignIn.ip, SignIn.device_hash)
        .join(Merchant, Merchant.user_id == SignIn.user_id)
        .where(Merchant.id == merchant_id)
    )
    return frozenset(value for row in rows for value in row if value)


def _security_events(kind: str | tuple[str, ...], signals: Signals, window: timedelta, by_device: bool = True) -> int:
    """Security events of this kind (or kinds) in the window from the buyer's IP address
    or (when `by_device`) browser."""
    kinds = (kind,) if isinstance(kind, str) else kind
    by_ip, by_device = bool(signals.ip), by_device and bool(signals.device_hash)
    if not (by_ip or by_device):
        return 0
    return _count(
        _security_events_query(kinds, by_ip, by_device),
        {"events_since": signals.now - window, "ip": signals.ip, "device": signals.device_hash},
    )


@cache
def _security_events_query(kinds: tuple[str, ...], by_ip: bool, by_device: bool):
    places = [SecurityEvent.ip == bindparam("ip")] if by_ip else []
    if by_device:
        places.append(SecurityEvent.device_hash == bindparam("device"))
    return (
        select(func.count())
        .select_from(SecurityEvent)
        .where(SecurityEvent.kind.in_(kinds), SecurityEvent.created_at > bindparam("events_since"), or_(*places))
    )


def _failures(signals: Signals, kind: str, window: timedelta, rule: str, few: int, many: int) -> Hit | None:
    """A few failures of one kind from this IP or browser: `rule`; many: `<rule>_many`."""
    count = _security_events(kind, signals, window)
    detail = f"{count} failed in {int(window.total_seconds() // 60)} min"
    if count >= many:
        return _hit(f"{rule}_many", detail)
    return _hit(rule, detail) if count >= few else None


def failed_lookups(signals: Signals) -> Hit | None:
    return _failures(
        signals, SecurityEvent.LOOKUP_FAILED, LOOKUP_WINDOW, "failed_lookups", FAILED_LOOKUPS, FAILED_LOOKUPS_BLOCK
    )


def failed_logins(signals: Signals) -> Hit | None:
    return _failures(
        signals, SecurityEvent.LOGIN_FAILED, LOGIN_WINDOW, "failed_logins", FAILED_LOGINS, FAILED_LOGINS_BLOCK
    )


def forged_notifies(signals: Signals) -> Hit | None:
    """Many notifications with bad signatures from one source address: the address is
    refused before any verification work until the window passes."""
    count = _security_events(SecurityEvent.SIGNATURE_FAILED, signals, NOTIFY_WINDOW, by_device=False)
    return _hit("forged_notifies", f"{count} in 10 min") if count >= FORGED_NOTIFIES else None


def amount_mismatches(signals: Signals) -> Hit | None:
    count = _security_events(SecurityEvent.AMOUNT_MISMATCH, signals, AMOUNT_WINDOW, by_device=False)
    return _hit("amount_mismatches", f"{count} in 1 h") if count >= AMOUNT_MISMATCHES else None


def security_noise(signals: Signals) -> Hit | None:
    if signals.checkpoint == CHECKOUT:
        count = _buyer_counts(signals).get("noise", 0)  # counted with the orders
    else:
        count = _security_events(NOISE_KINDS, signals, NOISE_WINDOW)
    return _hit("security_noise", f"{count} in 1 h") if count >= NOISE_EVENTS else None


def complaint_velocity(signals: Signals) -> Hit | None:
    places = [
        column == value
        for column, value in ((Order.client_ip, signals.ip), (Order.device_hash, signals.device_hash))
        if value
    ]
    if not places:
        return None
    count = _count(
        select(func.count())
        .select_from(Complaint)
        .join(Order, Complaint.order_id == Order.id)
        .where(Complaint.created_at > signals.now - COMPLAINT_WINDOW, or_(*places))
    )
    return _hit("complaint_velocity", f"{count} in 24 h") if count >= COMPLAINTS else None


def order_blacklisted(signals: Signals) -> Hit | None:
    """At payment: the order's buyer (as recorded at checkout) is now blacklisted."""
    order = signals.order
    entry = blacklist.match(
        blacklist.Who(order.client_ip, order.device_hash, order.email), merchant_id=order.merchant_id, now=signals.now
    )
    return _hit("blacklist", f"{entry.kind} {entry.value}") if entry is not None else None


def order_self_purchase(signals: Signals) -> Hit | None:
    order = signals.order
    return self_purchase(
        Signals(
            NOTIFY, ip=order.client_ip, device_hash=order.device_hash, merchant_id=order.merchant_id, now=signals.now
        )
    )


def referral_burst(signals: Signals) -> Hit | None:
    """A checkout through a promoter's link from a browser (or address) that placed
    REFERRED_BURST referred orders within REFERRED_WINDOW: bought commissions."""
    if signals.promoter_id is None:
        return None
    places = [
        column == value
        for column, value in ((Order.device_hash, signals.device_hash), (Order.client_ip, signals.ip))
        if value
    ]
    if not places:
        return None
    count = _count(
        select(func.count())
        .select_from(Order)
        .where(Order.promoter_id.is_not(None), Order.created_at > signals.now - REFERRED_WINDOW, or_(*places))
    )
    return _hit("referral_burst", f"{count + 1} in 1 h") if count + 1 >= REFERRED_BURST else None


def order_self_referral(signals: Signals) -> Hit | None:
    """At payment: the referred order's buyer is the promoter: the order came from one
    of the promoter's sign-in addresses or browsers, or to their own email."""
    order = signals.order
    if order is None or order.promoter_id is None:
        return None
    account_id, email = db.session.execute(
        select(Merchant.id, User.email)
        .join(User, User.id == Merchant.user_id)
        .join(Promoter, Promoter.merchant_id == Merchant.id)
        .where(Promoter.id == order.promoter_id)
    ).one()
    places = reused(("sign-in-places", account_id), lambda: _sign_in_places(account_id))
    if {order.client_ip, order.device_hash} & places or (order.email and order.email == email.lower()):
        return _hit("self_referral")
    return None


RULES = {
    CHECKOUT: (
        blacklisted,
        ip_velocity,
        device_velocity,
        email_velocity,
        domain_velocity,
        pending_hoarding,
        stock_hoarding,
        disposable_email,
        self_purchase,
        security_noise,
        referral_burst,
    ),
    # A notification is assessed twice: its source before verification (forged_notifies,
    # amount_mismatches), and the paid order after (PAID_RULES).
    NOTIFY: (forged_notifies, amount_mismatches),
    LOOKUP: (blacklisted, failed_lookups, security_noise),
    LOGIN: (failed_logins, security_noise),
    REVIEW: (blacklisted,),
    COMPLAINT: (blacklisted, complaint_velocity),
}
PAID_RULES = (order_blacklisted, order_self_purchase, order_self_referral)


def assess_paid_order(order: Order, now: datetime) -> Verdict:
    """The rules run once an order is paid: a hit at hold level or above holds delivery
    (money already received cannot be refused, only refunded)."""
    signals = Signals(
        NOTIFY,
        order.client_ip,
        order.device_hash,
        order.email,
        order.merchant_id,
        order.product,
        order.quantity,
        order,
        now,
    )
    hits = tuple(hit for rule in PAID_RULES if (hit := rule(signals)) is not None)
    if not hits:
        return ALLOWED
    score = sum(hit.score for hit in hits)
    action = _action_for(score, NOTIFY, thresholds(order.product))
    return Verdict(HOLD if action == BLOCK else action, score, hits)


def flag_order(order: Order, verdict: Verdict) -> None:
    """Write a verdict's rules onto the order (what the merchant sees), and hold its
    delivery when the verdict says so."""
    names = set((order.risk_flags or "").split()) | {hit.rule for hit in verdict.hits}
    order.risk_flags = " ".join(sorted(names))[:200] or None
    if verdict.action == HOLD and order.held_at is None:
        order.held_at = clock.now()
