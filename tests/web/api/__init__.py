"""Tests of the merchant REST API (/api/v1). A package, so that its module names (test_api_keys)
do not collide with the same names elsewhere (tests/accounts/test_api_keys.py)."""
