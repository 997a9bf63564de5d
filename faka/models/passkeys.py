from datetime import datetime

from sqlalchemy import BigInteger, ForeignKey, LargeBinary, String
from sqlalchemy.orm import Mapped, mapped_column

from faka.extensions import db
from faka.models.types import UTCDateTime, utcnow


class Passkey(db.Model):
    """A WebAuthn credential of a back-office user (faka/services/passkeys.py): a second
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
