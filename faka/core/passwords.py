"""Password hashing (argon2id).

Back-office passwords use argon2's default cost. Query passwords protect one order each,
are checked once per lookup (rate-limited) and are hashed on every checkout, so they use a
lighter argon2id cost that keeps checkout fast while staying far from a plain hash.
"""

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError

_login_hasher = PasswordHasher()
_query_hasher = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1)
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
