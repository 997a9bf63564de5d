"""The proof-of-work captcha (ALTCHA): the risk engine asks for it when a visitor looks
automated. Self-hosted, no outside service; the visitor's browser solves it by itself.

Protocol: ALTCHA proof-of-work v2 (the `altcha` library's default, spoken by the 3.x
widget), PBKDF2/SHA-256 in its deterministic mode. The server picks a counter at random
in [0, CAPTCHA_MAX_NUMBER] and publishes the first half of the key that PBKDF2 derives
from nonce + counter; the browser tries counters from 0 until its derived key starts
with that half. So the work is, on average, CAPTCHA_MAX_NUMBER / 2 PBKDF2 runs of COST
iterations, and never more than CAPTCHA_MAX_NUMBER + 1 of them; checking an answer is
one run. The parameters are HMAC-signed with a key derived from SECRET_KEY, carry an
expiry, and a solved challenge is spent on first use (SpentChallenge).
"""

import hashlib
import hmac
import secrets
from datetime import UTC, datetime, timedelta

import altcha
from flask import current_app
from sqlalchemy import delete
from sqlalchemy.exc import IntegrityError

from faka.core import clock
from faka.core.db import write_transaction
from faka.extensions import db
from faka.risk import security_events
from faka.risk.models import SecurityEvent, SpentChallenge

FIELD = "altcha"  # the form field the widget fills with its solution
ALGORITHM = "PBKDF2/SHA-256"  # native WebCrypto in every browser: a bot in C gains little per attempt
COST = 5000  # PBKDF2 iterations per attempt (the cost ALTCHA's own examples use)
TTL = timedelta(minutes=10)  # long enough to fill in a form after the check has run
MAX_PAYLOAD = 4096  # characters; a real solution is under 1000


def _key() -> bytes:
    # Derived with a purpose label, so the signing key is never the session key itself.
    secret = current_app.secret_key
    secret = secret.encode() if isinstance(secret, str) else secret
    return hmac.new(secret, b"faka.captcha", hashlib.sha256).digest()


def challenge(now: datetime | None = None) -> dict:
    """A new signed challenge for the widget, as the JSON it fetches."""
    now = now or clock.now()
    counter = secrets.randbelow(current_app.config["CAPTCHA_MAX_NUMBER"] + 1)
    return altcha.create_challenge(ALGORITHM, COST, counter=counter, expires_at=now + TTL, hmac_secret=_key()).to_dict()


def solved(form, ip: str | None = None, device_hash: str | None = None) -> bool:
    """Whether a submitted form carries a valid solution. A solution that was sent but
    fails (forged, expired, replayed) is a security event the risk rules count."""
    payload = form.get(FIELD)
    if not payload:
        return False
    if verify(payload):
        return True
    security_events.record(SecurityEvent.CAPTCHA_FAILED, ip, device_hash)
    return False


def verify(payload: str | None, now: datetime | None = None) -> bool:
    """True for a correct, unexpired solution of a challenge we signed, used once.
    Anything else, malformed input included, is False."""
    if not isinstance(payload, str) or not payload or len(payload) > MAX_PAYLOAD:
        return False
    now = now or clock.now()
    try:
        parsed = altcha.Payload.from_base64(payload)
        expires_at = parsed.challenge.parameters.expires_at
        if type(expires_at) is not int or expires_at <= now.timestamp():
            return False
        if not altcha.verify_solution(parsed, _key()).verified:
            return False
    except (ValueError, TypeError, KeyError, AttributeError, RecursionError):
        return False  # not base64, not JSON, or not shaped like a payload
    return _spend(parsed.challenge.signature, datetime.fromtimestamp(expires_at, UTC), now)


def _spend(signature: str, expires_at: datetime, now: datetime) -> bool:
    """Mark a verified challenge as used; False if it already was (a replay)."""
    try:
        with write_transaction():
            # Expired rows can no longer be replayed: deleting them here (indexed, cheap) keeps
            # the table small between the daily retention runs.
            db.session.execute(delete(SpentChallenge).where(SpentChallenge.expires_at <= now))
            db.session.add(SpentChallenge(signature=signature, expires_at=expires_at))
    except IntegrityError:  # rolled back
        return False
    return True
