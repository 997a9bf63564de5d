"""Password hashing (argon2id).

Back-office passwords use argon2's default cost (64 MiB, 3 passes). Query passwords are
hashed on every checkout and checked on every lookup, so they use a lighter profile: each
protects one order's keys, which also sit behind a 128-bit token, and lookups are
rate-limited per address, so online guessing is slow whatever the hash costs. What the
hash defends is the buyer's password (often reused elsewhere) after a database leak, and
there no profile goes below OWASP's minimum for argon2id: of its equivalent
configurations, 7 MiB and 5 passes is the cheapest here (about 19 ms of CPU a hash).
Hashes made with an earlier profile keep verifying: each hash carries its parameters.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_login_hasher = PasswordHasher()
# OWASP Password Storage Cheat Sheet, argon2id: m=7168 KiB, t=5, p=1 (equal in strength to
# its 19 MiB / 2 passes); tests/core/test_passwords.py holds it to that floor.
QUERY_PROFILE = {"memory_cost": 7 * 1024, "time_cost": 5, "parallelism": 1}
_query_hasher = PasswordHasher(
    time_cost=QUERY_PROFILE["time_cost"],
    memory_cost=QUERY_PROFILE["memory_cost"],
    parallelism=QUERY_PROFILE["parallelism"],
)
# Verified against when no order matches, so a miss costs as much as a wrong password.
_DUMMY_QUERY_HASH = _query_hasher.hash("faka-timing-equaliser")


def hash_login_password(password: str) -> str:
    return _login_hasher.hash(password)


def verify_login_password(stored: str, password: str) -> bool:
    return _verify(_login_hasher, stored, password)


def hash_query_password(password: str) -> str:
    return _query_hasher.hash(password)


def verify_query_password(stored: str | None, password: str) -> bool:
    if stored is None:
        _verify(_query_hasher, _DUMMY_QUERY_HASH, password)
        return False
    return _verify(_query_hasher, stored, password)


def _verify(hasher: PasswordHasher, stored: str, password: str) -> bool:
    try:
        return hasher.verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False
