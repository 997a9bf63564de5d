"""Risk: rules' hits and events, the blacklist, security events and sign-ins."""

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class SignIn(db.Model):
    """A successful back-office login: where from (IP) and which browser (the keyed hash
    of its device cookie). Orders placed from a merchant's own sign-in places are
    self-purchases, whose reviews do not count."""

    __tablename__ = "sign_ins"
    __table_args__ = (Index("ix_sign_ins_user_created", "user_id", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"))
    ip: Mapped[str | None] = mapped_column(String(45), index=True)
    device_hash: Mapped[str | None] = mapped_column(String(64), index=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class RiskEvent(db.Model):
    """One assessment by the risk engine that scored above zero: where it happened
    (the checkpoint), who asked (IP, device, email), what the rules found and what was
    done. The operator's live monitor lists these; merchants see those of their orders."""

    __tablename__ = "risk_events"
    __table_args__ = (
        Index("ix_risk_events_created", "created_at"),
        Index("ix_risk_events_merchant_created", "merchant_id", "created_at"),
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    checkpoint: Mapped[str] = mapped_column(String(16))  # checkout, notify, lookup, login, review, complaint
    action: Mapped[str] = mapped_column(String(12))  # allow, flag, captcha, hold, block
    score: Mapped[int]
    captcha_solved: Mapped[bool] = mapped_column(default=False)
    ip: Mapped[str | None] = mapped_column(String(45))
    device_hash: Mapped[str | None] = mapped_column(String(64))
    email: Mapped[str | None] = mapped_column(String(254))
    order_id: Mapped[int | None] = mapped_column(ForeignKey("orders.id"), index=True)
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"))
    product_id: Mapped[int | None] = mapped_column(ForeignKey("products.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    hits = relationship("RiskHit", order_by="RiskHit.id", lazy="selectin", viewonly=True)
    order = relationship("Order")


class RiskHit(db.Model):
    """One rule that fired in a risk event, kept as a row so hits count per rule over time."""

    __tablename__ = "risk_hits"
    __table_args__ = (Index("ix_risk_hits_rule_created", "rule", "created_at"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[int] = mapped_column(ForeignKey("risk_events.id", ondelete="CASCADE"), index=True)
    rule: Mapped[str] = mapped_column(String(32))
    score: Mapped[int]
    detail: Mapped[str] = mapped_column(String(200), default="")  # e.g. "7 orders in 10 min"
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class BlacklistEntry(db.Model):
    """Who may not buy, look up orders, review or complain: an email address, an email
    domain (and its subdomains), an IP address or network (CIDR), or a device (the keyed
    hash of its cookie). The operator's entries (merchant_id NULL) apply everywhere; a
    merchant's entries only to its own products and orders."""

    __tablename__ = "blacklist"
    __table_args__ = (Index("ix_blacklist_kind_value", "kind", "value"),)

    EMAIL = "email"
    DOMAIN = "domain"
    IP = "ip"
    DEVICE = "device"
    KINDS = (EMAIL, DOMAIN, IP, DEVICE)

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(8))
    value: Mapped[str] = mapped_column(String(254))  # normalised: lower-case email/domain, CIDR network
    reason: Mapped[str] = mapped_column(String(500))
    merchant_id: Mapped[int | None] = mapped_column(ForeignKey("merchants.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)  # None: until removed

    def active(self, now: datetime) -> bool:
        return self.expires_at is None or self.expires_at > now


class SecurityEvent(db.Model):
    """Something an attacker does that an honest visitor rarely does: a failed login, a
    failed order lookup, a form without a valid CSRF token, a notification with a bad
    signature, a probe for admin paths, a rate limit hit. The risk rules count them."""

    __tablename__ = "security_events"
    __table_args__ = (
        Index("ix_security_events_kind_ip_created", "kind", "ip", "created_at"),
        Index("ix_security_events_created", "created_at"),
    )

    LOGIN_FAILED = "login_failed"
    LOOKUP_FAILED = "lookup_failed"
    CSRF_FAILED = "csrf_failed"
    SIGNATURE_FAILED = "signature_failed"
    AMOUNT_MISMATCH = "amount_mismatch"
    ADMIN_PROBE = "admin_probe"
    RATE_LIMITED = "rate_limited"
    CAPTCHA_FAILED = "captcha_failed"
    KINDS = (
        LOGIN_FAILED,
        LOOKUP_FAILED,
        CSRF_FAILED,
        SIGNATURE_FAILED,
        AMOUNT_MISMATCH,
        ADMIN_PROBE,
        RATE_LIMITED,
        CAPTCHA_FAILED,
    )

    id: Mapped[int] = mapped_column(primary_key=True)
    kind: Mapped[str] = mapped_column(String(20))
    ip: Mapped[str | None] = mapped_column(String(45))
    device_hash: Mapped[str | None] = mapped_column(String(64))
    subject: Mapped[str | None] = mapped_column(String(200))  # the email tried, the path probed, the gateway
    detail: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class SpentChallenge(db.Model):
    """A captcha challenge already solved once: a solution is good for one request.
    Rows are useless once the challenge expires, and are deleted then."""

    __tablename__ = "spent_challenges"

    signature: Mapped[str] = mapped_column(String(128), primary_key=True)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
