"""Query-password hashing keeps to OWASP's floor for argon2id."""

import pytest
from argon2 import PasswordHasher, extract_parameters

from faka.core import passwords

# OWASP Password Storage Cheat Sheet: argon2id configurations of equal strength, as
# (memory in KiB, passes), all with parallelism 1. A profile is strong enough when it
# spends at least one of them's memory with at least its passes.
OWASP_MINIMUMS = [(47104, 1), (19456, 2), (12288, 3), (9216, 4), (7168, 5)]


def _meets_owasp(memory_cost: int, time_cost: int) -> bool:
    return any(memory_cost >= memory and time_cost >= passes for memory, passes in OWASP_MINIMUMS)


def test_query_password_profile_is_not_below_owasps_minimum():
    profile = passwords.QUERY_PROFILE
    assert _meets_owasp(profile["memory_cost"], profile["time_cost"])
    assert profile["parallelism"] == 1


@pytest.mark.parametrize(("memory_cost", "time_cost"), [(8 * 1024, 1), (7168, 4), (19455, 2)])
def test_the_floor_refuses_weaker_profiles(memory_cost, time_cost):
    assert not _meets_owasp(memory_cost, time_cost)


def test_the_timing_equaliser_is_hashed_with_the_query_profile():
    # A lookup that finds no order verifies this hash: it costs what a real one costs.
    parameters = extract_parameters(passwords._DUMMY_QUERY_HASH)
    assert parameters.type.name == "ID"
    profile = passwords.QUERY_PROFILE
    assert (parameters.memory_cost, parameters.time_cost, parameters.parallelism) == (
        profile["memory_cost"],
        profile["time_cost"],
        profile["parallelism"],
    )


def test_a_hash_made_with_the_earlier_profile_still_verifies():
    earlier = PasswordHasher(time_cost=1, memory_cost=8 * 1024, parallelism=1).hash("s3cret-query")
    assert passwords.verify_query_password(earlier, "s3cret-query")
    assert not passwords.verify_query_password(earlier, "wrong")
