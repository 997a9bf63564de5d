"""Accounts: users, merchants, passkeys, and the merchants' API keys."""

import secrets
from datetime import datetime

from flask_login import UserMixin
from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from faka.core.types import UTCDateTime, utcnow
from faka.extensions import db


class Merchant(db.Model):
    """A seller on the platform; only an approved merchant's goods are on sale."""

    __tablename__ = "merchants"

    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    FROZEN = "frozen"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), unique=True)
    name: Mapped[str] = mapped_column(String(80))
    # The shop page's address (/shop/<public_id>): random, so merchants cannot be counted.
    public_id: Mapped[str] = mapped_column(String(16), unique=True, default=lambda: secrets.token_hex(6))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    fee_rate_bp: Mapped[int] = mapped_column(default=300)  # platform fee in basis points
    hold_days: Mapped[int] = mapped_column(default=3, server_default="3")  # settlement hold of each sale
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)

    # Qualification, submitted by the merchant and reviewed by an operator.
    legal_name: Mapped[str | None] = mapped_column(String(120))
    entity_type: Mapped[str | None] = mapped_column(String(12))  # individual | company
    id_number_ciphertext: Mapped[str | None] = mapped_column(Text)  # ID or licence number, encrypted
    licence_image: Mapped[str | None] = mapped_column(String(80))  # name of a file in the storage's private area
    contact: Mapped[str | None] = mapped_column(String(120))
    submitted_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    reviewed_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    rejection_reason: Mapped[str | None] = mapped_column(Text)
    notify_email: Mapped[str | None] = mapped_column(String(254))

    user = relationship("User")

    @property
    def can_sell(self) -> bool:
        return self.status == self.APPROVED


ROLE_OPERATOR = "operator"
ROLE_MERCHANT = "merchant"
ROLES = (ROLE_OPERATOR, ROLE_MERCHANT)


class User(UserMixin, db.Model):
    """A back-office login. Buyers have no account; they hold an order token instead."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(primary_key=True)
    email: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    email_verified_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    totp_secret: Mapped[str | None] = mapped_column(String(255))  # encrypted; set once confirmed
    # The 30-second time step of the last TOTP code accepted: a code is good once.
    totp_last_step: Mapped[int | None] = mapped_column()
    recovery_codes: Mapped[str | None] = mapped_column(Text)  # JSON list of argon2 hashes
    # Wrong second-factor codes and wrong re-authentication passwords (both need more than
    # the email address) lock the account for a while; wrong login passwords only slow
    # down the address they come from (faka/accounts/users.py).
    failed_logins: Mapped[int] = mapped_column(default=0)
    locked_until: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    # WebAuthn credentials (faka/accounts/passkeys.py), oldest first; written there only.
    passkeys: Mapped[list["Passkey"]] = relationship(order_by="Passkey.id", viewonly=True)  # noqa: F821

    @property
    def totp_enabled(self) -> bool:
        return self.totp_secret is not None

    @property
    def two_factor_enabled(self) -> bool:
        """A second factor is on: an authenticator app, a passkey, or both."""
        return self.totp_enabled or bool(self.passkeys)

    @property
    def is_operator(self) -> bool:
        return self.role == ROLE_OPERATOR

    @property
    def is_merchant(self) -> bool:
        return self.role == ROLE_MERCHANT


class UserSession(db.Model):
    """One logged-in browser. The session cookie carries a random id whose SHA-256 is
    stored here, so a session ends for good when its row says so (logout, revoked from
    the sessions page, a password reset, two-factor set-up) however many copies of the
    cookie exist; and at `expires_at` however active it is."""

    __tablename__ = "user_sessions"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime)
    ip: Mapped[str | None] = mapped_column(String(45))
    user_agent: Mapped[str | None] = mapped_column(String(120))  # a summary: browser, system, device
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class Passkey(db.Model):
    """A WebAuthn credential of a back-office user (faka/accounts/passkeys.py): a second
    factor, and a way to sign in without the password. Only the public key is stored;
    the private key never leaves the user's device (or their password manager)."""

    __tablename__ = "passkeys"

    id: Mapped[int] = mapped_column(primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id"), index=True)
    # The credential's id, base64url without padding, as the browser names it.
    credential_id: Mapped[str] = mapped_column(String(1400), unique=True)
    public_key: Mapped[bytes] = mapped_column(LargeBinary)  # COSE_Key
    # The authenticator's signature counter (unsigned 32-bit): a count that goes back
    # betrays a copied authenticator. Passkeys synced between devices always send 0.
    sign_count: Mapped[int] = mapped_column(BigInteger, default=0)
    # The WebAuthn user handle the credential was made for (base64url): one per user,
    # shared by their passkeys, and no email or id of ours.
    user_handle: Mapped[str] = mapped_column(String(100))
    transports: Mapped[str | None] = mapped_column(String(200))  # comma-separated hints ("internal,hybrid")
    name: Mapped[str] = mapped_column(String(60))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)


class ApiKey(db.Model):
    """A merchant's key to the REST API at /api/v1 (faka/accounts/api_keys.py). The token
    (`fk_live_` and 43 random characters) is shown once, when it is made; only its SHA-256
    is stored, with its first characters (`prefix`) for the lists. A key is never deleted:
    revoking it keeps its row for the call log."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(primary_key=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    created_by: Mapped[int | None] = mapped_column(ForeignKey("users.id"))
    name: Mapped[str] = mapped_column(String(60))
    prefix: Mapped[str] = mapped_column(String(20))  # "fk_live_" and the token's next 6 characters
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)  # hex SHA-256 of the whole token
    scopes: Mapped[str] = mapped_column(String(400))  # space-separated: "products:read keys:write"
    allowed_ips: Mapped[str | None] = mapped_column(Text)  # addresses and networks, one a line; None: any
    # The language of the key's error messages: its creator's when it was made.
    language: Mapped[str] = mapped_column(String(8))
    expires_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    last_used_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class ApiCall(db.Model):
    """One call made with an API key: the audit of the API, kept API_CALL_DAYS
    (faka/platform/retention.py, which also hashes its old addresses)."""

    __tablename__ = "api_calls"

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"), index=True)
    merchant_id: Mapped[int] = mapped_column(ForeignKey("merchants.id"), index=True)
    method: Mapped[str] = mapped_column(String(8))
    path: Mapped[str] = mapped_column(String(200))
    status: Mapped[int]
    ip: Mapped[str | None] = mapped_column(String(45))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, index=True)


class ApiIdempotencyKey(db.Model):
    """The answer to a POST sent with an `Idempotency-Key` header, per API key, so that
    the same request sent again gets the same answer instead of creating twice. Kept
    24 hours. The answer is stored encrypted: it may hold a secret (a webhook's). While
    the first request runs, `status` is None."""

    __tablename__ = "api_idempotency_keys"
    __table_args__ = (UniqueConstraint("api_key_id", "key"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    api_key_id: Mapped[int] = mapped_column(ForeignKey("api_keys.id"))
    key: Mapped[str] = mapped_column(String(255))
    request_hash: Mapped[str] = mapped_column(String(64))  # method, path and body
    status: Mapped[int | None] = mapped_column()
    response_ciphertext: Mapped[str | None] = mapped_column(Text)  # JSON: body, content type, Location
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    expires_at: Mapped[datetime] = mapped_column(UTCDateTime, index=True)
