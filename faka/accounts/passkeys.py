"""Passkeys (WebAuthn, with py_webauthn): a second factor next to the authenticator app,
and a way to sign in with no email and no password.

The relying party is the site's public address (FAKA_BASE_URL): its host is the RP id and
its origin is the only one accepted, exactly. Browsers allow WebAuthn only on a domain
name over HTTPS, or on localhost: on any other address (the default http://127.0.0.1:5000
of `make run`) passkeys are simply not offered (`relying_party()` is None).

Each ceremony has a fresh 32-byte challenge that the browser's session keeps for five
minutes (the caller stores it; see faka/web/auth/passkeys.py) and that is spent here on
first use (a SpentChallenge row), so an assertion replayed with an old copy of the cookie
is refused. New passkeys must be discoverable (resident) and verify the user (PIN,
fingerprint, face): the same passkey then signs in without the password. As a second
factor or a confirmation, user presence is enough: the password or the session is the
other factor.

A failed assertion for a known account (the second step of a login, /reauth, confirming
a payout) is a failed-login security event and counts toward the account's lockout like a
wrong code. At the passwordless sign-in nobody is known yet: a failure is a security event
for the address (the risk rules count those), and an unknown passkey gets the same answer
as a wrong signature. A signature counter that goes back means a copied authenticator: the
assertion is refused and the event says so.
"""

import base64
import hashlib
import hmac
import ipaddress
import json
import logging
import re
import time
from dataclasses import dataclass
from datetime import timedelta
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import delete, func, select
from sqlalchemy.exc import IntegrityError
from webauthn import (
    generate_authentication_options,
    generate_registration_options,
    verify_authentication_response,
    verify_registration_response,
)
from webauthn.helpers import options_to_json_dict
from webauthn.helpers.exceptions import WebAuthnException
from webauthn.helpers.structs import (
    AuthenticatorSelectionCriteria,
    AuthenticatorTransport,
    PublicKeyCredentialDescriptor,
    ResidentKeyRequirement,
    UserVerificationRequirement,
)

from faka.accounts import lockout, sessions, twofactor
from faka.accounts.models import Passkey, User
from faka.core import clock
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.platform.models import AuditEvent
from faka.platform.settings import site_settings
from faka.risk import engine, security_events
from faka.risk.models import SecurityEvent, SpentChallenge

log = logging.getLogger(__name__)

CHALLENGE_SECONDS = 300
MAX_PASSKEYS = 10  # per account
MAX_NAME = 60
MAX_RESPONSE = 64 * 1024  # a real response is a few kilobytes
_TRANSPORTS = frozenset(t.value for t in AuthenticatorTransport)
_NAME_JUNK = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
# What py_webauthn (and cbor2 under it) raise for a response it cannot read.
_UNREADABLE = (WebAuthnException, ValueError, TypeError, KeyError, IndexError, OverflowError, AttributeError)


# -- errors -------------------------------------------------------------------------------


class PasskeysUnavailable(DomainError):
    message = _l("Passkeys work only when the site is opened at its own address (a domain name over HTTPS).")


class PasskeyRefused(DomainError):
    """One answer for every refused assertion: a wrong signature, another site, an
    unknown or removed passkey, another account's passkey, a replay."""

    message = _l("That passkey was not accepted. Try again, or use another way to sign in.")

    def __init__(self, reason: str = "refused", user_id: int | None = None):
        super().__init__()
        self.reason = reason  # for the security event, never shown
        self.user_id = user_id  # the passkey's owner, when the passkey is known


class CopiedPasskey(PasskeyRefused):
    message = _l(
        "That passkey was refused: its signature counter went back, which happens when an "
        "authenticator has been copied. Sign in another way and remove this passkey."
    )


class ChallengeExpired(DomainError):
    message = _l("The passkey request expired or was already used. Please try again.")


class RegistrationFailed(DomainError):
    message = _l("The passkey could not be added. Please try again.")


class AlreadyRegistered(DomainError):
    message = _l("That passkey is already on an account.")


class TooManyPasskeys(DomainError):
    message = _l("An account can have at most 10 passkeys. Remove one first.")


class InvalidName(DomainError):
    message = _l("Give the passkey a name of 1 to 60 characters.")


class PasskeyGone(NotFound):
    message = _l("That passkey has already been removed.")


class LastSecondFactor(DomainError):
    message = _l(
        "Operator accounts must keep a second factor: add another passkey or turn on the "
        "authenticator app before removing this one."
    )


# -- the relying party --------------------------------------------------------------------


@dataclass(frozen=True)
class RelyingParty:
    id: str  # the site's host name
    origin: str  # scheme://host[:port], as a browser writes it
    name: str


def relying_party() -> RelyingParty | None:
    """The site as WebAuthn knows it, from FAKA_BASE_URL; None where browsers refuse
    WebAuthn: an IP address, or plain HTTP anywhere but localhost."""
    parts = urlsplit(current_app.config["BASE_URL"])
    host = parts.hostname
    try:
        port = parts.port
    except ValueError:
        return None
    if not host or parts.scheme not in ("http", "https"):
        return None
    try:
        ipaddress.ip_address(host)
    except ValueError:
        pass
    else:
        return None
    if parts.scheme == "http" and host != "localhost" and not host.endswith(".localhost"):
        return None
    default_port = 443 if parts.scheme == "https" else 80
    origin = f"{parts.scheme}://{host}" + (f":{port}" if port and port != default_port else "")
    return RelyingParty(host, origin, site_settings()["site_name"] or host)


def available(request_host: str | None) -> bool:
    """Whether passkeys can work for a page served at `request_host` (the Host header):
    the site's address allows WebAuthn and the visitor is on it."""
    rp = relying_party()
    host = (request_host or "").rsplit(":", 1)[0].strip("[]").lower() if request_host else ""
    return rp is not None and host == rp.id


def _rp() -> RelyingParty:
    rp = relying_party()
    if rp is None:
        raise PasskeysUnavailable()
    return rp


# -- ceremonies ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Ceremony:
    """What the browser needs (`options`, JSON for navigator.credentials.create/get) and
    what the caller keeps until the answer comes (`challenge`)."""

    options: dict
    challenge: bytes


@dataclass(frozen=True)
class Proof:
    """A browser's answer (`response`: the PublicKeyCredential as JSON) to the challenge
    issued at `issued_at` (a Unix time) and kept by the caller since; from `ip` and the
    browser `device_hash`, for the security events."""

    response: object
    challenge: bytes
    issued_at: float
    ip: str | None = None
    device_hash: str | None = None


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64url(text: str) -> bytes:
    if not isinstance(text, str) or not text or len(text) > 2048 or not re.fullmatch(r"[A-Za-z0-9_-]+={0,2}", text):
        raise ValueError("not base64url")
    return base64.urlsafe_b64decode(text.rstrip("=") + "=" * (-len(text.rstrip("=")) % 4))


def _user_handle(user_id: int) -> str:
    """The WebAuthn user handle of an account: the one its passkeys already carry, else a
    keyed hash of its id (no email, no guessable number on the authenticator)."""
    existing = db.session.scalar(select(Passkey.user_handle).where(Passkey.user_id == user_id).limit(1))
    if existing:
        return existing
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    return b64url(hmac.new(secret, f"faka.webauthn-user:{user_id}".encode(), hashlib.sha256).digest())


def _descriptors(passkeys) -> list[PublicKeyCredentialDescriptor]:
    return [
        PublicKeyCredentialDescriptor(
            id=_unb64url(p.credential_id),
            transports=[AuthenticatorTransport(t) for t in (p.transports or "").split(",") if t in _TRANSPORTS] or None,
        )
        for p in passkeys
    ]


def user_passkeys(user_id: int) -> list[Passkey]:
    return list(db.session.execute(select(Passkey).where(Passkey.user_id == user_id).order_by(Passkey.id)).scalars())


def has_passkey(user_id: int) -> bool:
    return bool(db.session.scalar(select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id)))


def registration_options(user_id: int) -> Ceremony:
    """Options to make a new passkey for the user: discoverable, user-verifying, and none
    of the authenticators that already hold one of theirs."""
    rp = _rp()
    user = db.session.get(User, user_id)
    options = generate_registration_options(
        rp_id=rp.id,
        rp_name=rp.name,
        user_name=user.email,
        user_display_name=user.email,
        user_id=_unb64url(_user_handle(user_id)),
        timeout=CHALLENGE_SECONDS * 1000,
        authenticator_selection=AuthenticatorSelectionCriteria(
            resident_key=ResidentKeyRequirement.REQUIRED, user_verification=UserVerificationRequirement.REQUIRED
        ),
        exclude_credentials=_descriptors(user_passkeys(user_id)),
    )
    db.session.rollback()  # kept: ends this read-only transaction (nothing was written)
    return Ceremony(options_to_json_dict(options), options.challenge)


def authentication_options(user_id: int | None = None) -> Ceremony:
    """Options to sign with a passkey: any of the site's (passwordless sign-in, the
    browser offers the passkeys it holds; user verification required), or one of this
    user's (a second factor or a confirmation; user verification preferred)."""
    rp = _rp()
    allowed = _descriptors(user_passkeys(user_id)) if user_id is not None else []
    db.session.rollback()  # kept: ends this read-only transaction (nothing was written)
    options = generate_authentication_options(
        rp_id=rp.id,
        timeout=CHALLENGE_SECONDS * 1000,
        allow_credentials=allowed,
        user_verification=UserVerificationRequirement.REQUIRED
        if user_id is None
        else UserVerificationRequirement.PREFERRED,
    )
    return Ceremony(options_to_json_dict(options), options.challenge)


def _spend(proof: Proof, now) -> None:
    """The challenge is good for one answer, within CHALLENGE_SECONDS: ChallengeExpired
    otherwise (also for an old copy of the cookie that still holds it)."""
    if not isinstance(proof.challenge, bytes) or not 0 <= time.time() - proof.issued_at <= CHALLENGE_SECONDS:
        raise ChallengeExpired()
    try:
        with write_transaction():
            db.session.execute(delete(SpentChallenge).where(SpentChallenge.expires_at <= now))
            db.session.add(
                SpentChallenge(
                    signature="passkey:" + hashlib.sha256(proof.challenge).hexdigest(),
                    expires_at=now + timedelta(seconds=CHALLENGE_SECONDS + 60),
                )
            )
    except IntegrityError:  # rolled back: already spent
        raise ChallengeExpired() from None


def _response_dict(response) -> dict:
    if isinstance(response, str):
        if len(response) > MAX_RESPONSE:
            raise PasskeyRefused("response too large")
        try:
            response = json.loads(response)
        except ValueError:
            raise PasskeyRefused("response not JSON") from None
    if not isinstance(response, dict) or not isinstance(response.get("rawId"), str):
        raise PasskeyRefused("response malformed")
    return response


# -- registration -------------------------------------------------------------------------


@dataclass(frozen=True)
class Registered:
    passkey_id: int
    recovery_codes: list[str] | None  # new codes, shown once: the account's first second factor
    session_id: str | None  # the asking browser's new session id, when the others were ended


def clean_name(name: str | None) -> str:
    return " ".join(_NAME_JUNK.sub("", name or "").split())


def register(
    user_id: int,
    proof: Proof,
    name: str | None,
    default_name: str | None = None,
    current_session: str | None = None,
    ip: str | None = None,
    user_agent: str | None = None,
) -> Registered:
    """Add the passkey the browser made for the options of `registration_options`.

    When it is the account's first second factor (no authenticator app, no passkey yet),
    the account gets recovery codes, its way back if the device is lost, and its other
    sessions end (whoever logged in with the password alone), as turning on the
    authenticator app does; the asking browser goes on under a new session id."""
    rp = _rp()
    name = clean_name(name)[:MAX_NAME] or clean_name(default_name)[:MAX_NAME] or str(_l("Passkey"))
    now = clock.now()
    _spend(proof, now)
    response = _response_dict(proof.response)
    try:
        verified = verify_registration_response(
            credential=response,
            expected_challenge=proof.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            require_user_verification=True,
        )
    except _UNREADABLE as exc:
        log.info("passkey registration refused for user %s: %s", user_id, type(exc).__name__)
        raise RegistrationFailed() from None
    transports = response.get("response", {}).get("transports") if isinstance(response.get("response"), dict) else None
    transports = (
        ",".join(t for t in transports if isinstance(t, str) and t in _TRANSPORTS)[:200]
        if isinstance(transports, list)
        else None
    )
    credential_id = b64url(verified.credential_id)
    codes = hashes = None
    try:
        with write_transaction():
            user = db.session.get(User, user_id, with_for_update=True)
            count = db.session.scalar(select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id))
            if count >= MAX_PASSKEYS:
                raise TooManyPasskeys()
            if db.session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id)) is not None:
                raise AlreadyRegistered()
            first = not user.totp_enabled and count == 0
            handle = _user_handle(user_id)
            db.session.add(
                Passkey(
                    user_id=user_id,
                    credential_id=credential_id,
                    public_key=verified.credential_public_key,
                    sign_count=verified.sign_count,
                    user_handle=handle,
                    transports=transports or None,
                    name=name,
                    created_at=now,
                )
            )
            session_id = None
            if first:
                codes, hashes = twofactor.new_recovery_codes()
                user.recovery_codes = hashes
                _ended, session_id = sessions.renew_session(user_id, current_session, ip, user_agent, now)
            db.session.flush()
            passkey_id = db.session.scalar(select(Passkey.id).where(Passkey.credential_id == credential_id))
            db.session.add(
                AuditEvent(
                    actor_id=user_id,
                    action="passkey.added",
                    target=f"user:{user_id}",
                    detail=f"passkey:{passkey_id}" + (" (first second factor)" if first else ""),
                )
            )
    except IntegrityError:  # rolled back
        raise AlreadyRegistered() from None
    return Registered(passkey_id, codes, session_id)


def rename(user_id: int, passkey_id: int, name: str) -> None:
    name = clean_name(name)
    if not name or len(name) > MAX_NAME:
        raise InvalidName()
    with write_transaction():
        passkey = _own(user_id, passkey_id)
        passkey.name = name
        db.session.add(
            AuditEvent(
                actor_id=user_id, action="passkey.renamed", target=f"user:{user_id}", detail=f"passkey:{passkey_id}"
            )
        )


def remove(user_id: int, passkey_id: int) -> bool:
    """Remove one of the user's passkeys. An operator keeps at least one second factor
    (LastSecondFactor); a merchant removing the last one turns two-factor authentication
    off, recovery codes included. Returns whether a second factor is left."""
    with write_transaction():
        user = db.session.get(User, user_id, with_for_update=True)
        passkey = _own(user_id, passkey_id)
        others = db.session.scalar(
            select(func.count()).select_from(Passkey).where(Passkey.user_id == user_id, Passkey.id != passkey_id)
        )
        last = not user.totp_enabled and others == 0
        if last and user.is_operator:
            raise LastSecondFactor()
        db.session.delete(passkey)
        if last:
            user.recovery_codes = None
        db.session.add(
            AuditEvent(
                actor_id=user_id,
                action="passkey.removed",
                target=f"user:{user_id}",
                detail=f"passkey:{passkey_id}" + (" (two-factor authentication off)" if last else ""),
            )
        )
    return not last


def remove_all(user_id: int) -> int:
    """Remove every passkey of the user inside the caller's transaction (an operator's
    reset of a merchant's two-factor authentication). Returns how many."""
    return db.session.execute(delete(Passkey).where(Passkey.user_id == user_id)).rowcount


def _own(user_id: int, passkey_id: int) -> Passkey:
    passkey = db.session.get(Passkey, passkey_id, with_for_update=True)
    if passkey is None or passkey.user_id != user_id:
        raise PasskeyGone()
    return passkey


# -- signing ------------------------------------------------------------------------------


def _verified(rp: RelyingParty, proof: Proof, user_id: int | None, require_uv: bool) -> tuple[Passkey, int]:
    """The passkey that signed `proof` (locked in the caller's transaction) and its new
    signature counter, for `_used`; PasskeyRefused otherwise. With `user_id`, only that
    user's passkeys. Writes nothing."""
    response = _response_dict(proof.response)
    try:
        credential_id = b64url(_unb64url(response["rawId"]))
    except ValueError:
        raise PasskeyRefused("credential id malformed") from None
    where = [Passkey.credential_id == credential_id]
    if user_id is not None:
        where.append(Passkey.user_id == user_id)
    passkey = db.session.execute(select(Passkey).where(*where).with_for_update()).scalar_one_or_none()
    if passkey is None:
        raise PasskeyRefused("unknown passkey" if user_id is None else "not a passkey of this account")
    handle = response.get("response", {}).get("userHandle") if isinstance(response.get("response"), dict) else None
    if handle not in (None, "") and handle != passkey.user_handle:
        raise PasskeyRefused("user handle does not match")
    try:
        verified = verify_authentication_response(
            credential=response,
            expected_challenge=proof.challenge,
            expected_rp_id=rp.id,
            expected_origin=rp.origin,
            credential_public_key=passkey.public_key,
            credential_current_sign_count=0,
            require_user_verification=require_uv,
        )
    except _UNREADABLE as exc:
        # The library's reasons name no secret: another origin, the wrong challenge,
        # a bad signature, no user verification.
        raise PasskeyRefused(f"passkey:{passkey.id} {str(exc)[:200]}") from None
    stored = passkey.sign_count or 0
    if (verified.new_sign_count > 0 or stored > 0) and verified.new_sign_count <= stored:
        raise CopiedPasskey(
            f"passkey:{passkey.id} signature counter went back from {stored} to "
            f"{verified.new_sign_count}: a copied authenticator?",
            passkey.user_id,
        )
    return passkey, verified.new_sign_count


def _used(passkey: Passkey, sign_count: int, now) -> None:
    """Note an accepted signature of the passkey: its counter and last use."""
    passkey.sign_count = sign_count
    passkey.last_used_at = now


def _refused_event(exc: PasskeyRefused, ip, device_hash, subject: str, purpose: str, now) -> None:
    security_events.add(
        SecurityEvent.LOGIN_FAILED,
        ip,
        device_hash,
        subject=subject,
        detail=f"passkey ({purpose}): {exc.reason}",
        now=now,
    )
    if isinstance(exc, CopiedPasskey):
        db.session.add(
            AuditEvent(
                actor_id=None,
                action="passkey.copy_suspected",
                target=f"user:{exc.user_id}",
                detail=exc.reason,
                created_at=now,
            )
        )


def sign_in(proof: Proof, ip: str | None = None, device_hash: str | None = None) -> User:
    """A passwordless sign-in: the user whose passkey signed the challenge, with user
    verification. Refused (PasskeyRefused, the same for every reason) and recorded as a
    failed login of the address otherwise; a locked account stays locked
    (twofactor.AccountLocked). The risk engine may refuse the address (risk.Blocked)."""
    rp = _rp()
    now = clock.now()
    try:
        _spend(proof, now)
    except ChallengeExpired:
        security_events.record(
            SecurityEvent.LOGIN_FAILED,
            ip,
            device_hash,
            subject="passkey",
            detail="passkey (sign-in): challenge expired or used",
            now=now,
        )
        raise
    signals = engine.Signals(engine.LOGIN, ip, device_hash, now=now)
    # A refusal keeps only its failed-login event (not the risk event, not the passkey's
    # use): nothing else is written before it is added, and it is committed, then raised.
    with write_transaction(commit_on=(PasskeyRefused, twofactor.AccountLocked)):
        # A passkey signed with user verification proves a person at a real device: more
        # than the captcha would.
        verdict = engine.check(signals, captcha_solved=True)
        try:
            passkey, sign_count = _verified(rp, proof, None, True)
        except PasskeyRefused as exc:
            _refused_event(exc, ip, device_hash, "passkey", "sign-in", now)
            raise
        user = db.session.get(User, passkey.user_id, with_for_update=True)
        if lockout.is_locked(user, now):
            security_events.add(
                SecurityEvent.LOGIN_FAILED,
                ip,
                device_hash,
                subject=f"user:{user.id}",
                detail="passkey (sign-in): locked",
                now=now,
            )
            raise twofactor.AccountLocked()
        engine.add_event(signals, verdict, captcha_solved=True)
        _used(passkey, sign_count, now)
        user.failed_logins = 0
        user.locked_until = None
    return user


def verify_second_factor(
    user_id: int, proof: Proof, ip: str | None = None, device_hash: str | None = None, purpose: str = "second factor"
) -> User:
    """The user, when one of their passkeys signed `proof`: the second step of a login, a
    re-authentication, a confirmation before money moves. A refusal counts toward the
    account's lockout as a wrong code does: PasskeyRefused, or twofactor.AccountLocked
    once locked; an expired or spent challenge does not count (ChallengeExpired)."""
    rp = _rp()
    now = clock.now()
    try:
        _spend(proof, now)
    except ChallengeExpired:
        security_events.record(
            SecurityEvent.LOGIN_FAILED,
            ip,
            device_hash,
            subject=f"user:{user_id}",
            detail=f"passkey ({purpose}): challenge expired or used",
            now=now,
        )
        raise
    # A refusal keeps its failed-login event and the failure's count: committed, then raised.
    with write_transaction(commit_on=(PasskeyRefused, twofactor.AccountLocked)):
        user = db.session.get(User, user_id, with_for_update=True)
        if user is None:
            raise PasskeyRefused()  # nothing written: committing it writes nothing either
        if lockout.is_locked(user, now):
            security_events.add(
                SecurityEvent.LOGIN_FAILED,
                ip,
                device_hash,
                subject=f"user:{user_id}",
                detail=f"passkey ({purpose}): locked",
                now=now,
            )
            raise twofactor.AccountLocked()
        try:
            passkey, sign_count = _verified(rp, proof, user_id, False)
        except PasskeyRefused as exc:
            lockout.record_failed_login(user, now)
            _refused_event(exc, ip, device_hash, f"user:{user_id}", purpose, now)
            raise (twofactor.AccountLocked() if lockout.is_locked(user, now) else exc) from None
        _used(passkey, sign_count, now)
        user.failed_logins = 0
        user.locked_until = None
    return user


def second_factors(user_id: int) -> tuple[bool, bool]:
    """Whether the user has (an authenticator app, a passkey)."""
    user = db.session.get(User, user_id)
    if user is None:
        return False, False
    return user.totp_enabled, has_passkey(user_id)
