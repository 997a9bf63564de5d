"""API keys as a service: making, checking and revoking them, idempotency records, and the
retention of what the API records."""

from datetime import timedelta

import pytest
from sqlalchemy import select

from conftest import count, reload
from faka.accounts import api_keys
from faka.accounts.api_keys import ApiKeyDraft, InvalidApiKey
from faka.accounts.models import ApiCall, ApiIdempotencyKey, ApiKey
from faka.core import clock
from faka.core.errors import NotFound
from faka.extensions import db
from faka.platform import retention
from faka.platform.models import AuditEvent


def draft(**fields) -> ApiKeyDraft:
    return ApiKeyDraft(**{"name": "ERP", "scopes": ["products:read"], "language": "zh_CN", **fields})


def test_a_key_is_stored_as_a_hash_with_its_prefix(merchant):
    key, token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    assert token.startswith("fk_live_") and len(token) == len("fk_live_") + 43
    stored = reload(key)
    assert stored.token_hash == api_keys.token_digest(token) != token
    assert stored.prefix == token[:14]
    assert api_keys.find_key(token).id == key.id
    assert api_keys.find_key(token[:-1] + ("A" if token[-1] != "A" else "B")) is None
    assert api_keys.find_key("sk_" + token) is None
    audit = db.session.execute(select(AuditEvent).where(AuditEvent.action == "api_key.created")).scalar_one()
    assert audit.actor_id == merchant.user_id and token not in (audit.after or "")


def test_scopes_are_known_ones_in_order_and_write_stands_for_read(merchant):
    key, _token = api_keys.create_key(
        merchant.id, merchant.user_id, draft(scopes=["keys:read", "products:write", "products:read"])
    )
    assert key.scopes == "products:write keys:read"
    assert api_keys.has_scope(key, "products:read") and api_keys.has_scope(key, "products:write")
    assert api_keys.has_scope(key, "keys:read") and not api_keys.has_scope(key, "keys:write")
    assert not api_keys.has_scope(key, "orders:read")


@pytest.mark.parametrize(
    "fields, field",
    [
        ({"scopes": []}, "scopes"),
        ({"scopes": ["products:admin"]}, "scopes"),
        ({"name": "  "}, "name"),
        ({"name": "x" * 61}, "name"),
        ({"allowed_ips": "10.0.0.256"}, "allowed_ips"),
        ({"allowed_ips": " ".join(f"10.0.0.{i}" for i in range(21))}, "allowed_ips"),
        ({"expires_at": "past"}, "expires_at"),
        ({"expires_at": "far"}, "expires_at"),
    ],
)
def test_a_key_that_cannot_be_made_says_why_and_nothing_is_stored(merchant, fields, field):
    if fields.get("expires_at") == "past":
        fields["expires_at"] = clock.now() - timedelta(minutes=1)
    elif fields.get("expires_at") == "far":
        fields["expires_at"] = clock.now() + timedelta(days=4 * 365)
    with pytest.raises(InvalidApiKey) as refused:
        api_keys.create_key(merchant.id, merchant.user_id, draft(**fields))
    assert refused.value.field == field
    assert count(ApiKey) == 0


def test_at_most_twenty_active_keys(merchant):
    keys = [api_keys.create_key(merchant.id, merchant.user_id, draft())[0] for _ in range(api_keys.MAX_ACTIVE_KEYS)]
    with pytest.raises(api_keys.TooManyApiKeys):
        api_keys.create_key(merchant.id, merchant.user_id, draft())
    api_keys.revoke_key(merchant.id, keys[0].id, merchant.user_id)
    api_keys.create_key(merchant.id, merchant.user_id, draft())
    assert count(ApiKey) == api_keys.MAX_ACTIVE_KEYS + 1


def test_the_allow_list_is_normalised_and_matches_ipv4_and_ipv6(merchant):
    key, _token = api_keys.create_key(
        merchant.id, merchant.user_id, draft(allowed_ips="203.0.113.7, 198.51.100.9/24 2001:DB8::/32 203.0.113.7")
    )
    assert key.allowed_ips.split() == ["203.0.113.7/32", "198.51.100.0/24", "2001:db8::/32"]
    assert api_keys.address_allowed(key, "198.51.100.200")
    assert api_keys.address_allowed(key, "::ffff:203.0.113.7")  # an IPv4 client of a dual-stack server
    assert api_keys.address_allowed(key, "2001:db8:1::5")
    assert not api_keys.address_allowed(key, "203.0.113.8")
    assert not api_keys.address_allowed(key, None)
    mapped, _token = api_keys.create_key(merchant.id, merchant.user_id, draft(allowed_ips="::ffff:192.0.2.9"))
    assert mapped.allowed_ips == "192.0.2.9/32" and api_keys.address_allowed(mapped, "192.0.2.9")
    open_key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    assert open_key.allowed_ips is None and api_keys.address_allowed(open_key, "192.0.2.1")


def test_states_revocation_and_expiry(merchant, frozen_clock):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft(expires_at=clock.now() + timedelta(hours=1)))
    assert api_keys.key_state(key) == api_keys.ACTIVE
    frozen_clock.advance(hours=1)
    assert api_keys.key_state(key) == api_keys.EXPIRED
    api_keys.revoke_key(merchant.id, key.id, merchant.user_id)
    revoked_at = reload(key).revoked_at
    api_keys.revoke_key(merchant.id, key.id, merchant.user_id)  # again: nothing changes
    assert reload(key).revoked_at == revoked_at
    assert api_keys.key_state(key) == api_keys.REVOKED
    assert count(AuditEvent, AuditEvent.action == "api_key.revoked") == 1


def test_another_merchants_key_is_not_found(merchant, make_product):
    from faka.accounts import users

    other = users.create_merchant("other@shop.test", "merchant-pass-1", "Other", approved=True)
    key, _token = api_keys.create_key(other.id, other.user_id, draft())
    with pytest.raises(NotFound):
        api_keys.get_key(merchant.id, key.id)
    with pytest.raises(NotFound):
        api_keys.revoke_key(merchant.id, key.id, merchant.user_id)
    assert reload(key).revoked_at is None
    assert api_keys.merchant_keys(merchant.id) == []


def test_a_call_is_logged_and_last_use_written_at_most_once_a_minute(merchant, frozen_clock):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    api_keys.record_call(key.id, merchant.id, "GET", "/api/v1/products", 200, "192.0.2.1")
    first_use = reload(key).last_used_at
    frozen_clock.advance(seconds=30)
    api_keys.record_call(key.id, merchant.id, "GET", "/api/v1/products/" + "x" * 300, 404, "192.0.2.1")
    assert reload(key).last_used_at == first_use
    frozen_clock.advance(seconds=31)
    api_keys.record_call(key.id, merchant.id, "POST", "/api/v1/products", 201, None)
    assert reload(key).last_used_at > first_use
    page = api_keys.calls(merchant.id, 1)
    assert [(call.status, name) for call, name, _prefix in page.items] == [(201, "ERP"), (404, "ERP"), (200, "ERP")]
    assert len(page.items[1][0].path) == api_keys.CALL_PATH_MAX


# -- idempotency --------------------------------------------------------------------------


def test_the_same_request_is_recognised_whatever_its_jsons_spacing_and_order():
    one = api_keys.request_digest("POST", "/api/v1/products", b'{"a": 1, "b": [1, 2]}')
    assert one == api_keys.request_digest("POST", "/api/v1/products", b'{"b":[1,2],"a":1}')
    assert one != api_keys.request_digest("POST", "/api/v1/products", b'{"a": 2, "b": [1, 2]}')
    assert one != api_keys.request_digest("POST", "/api/v1/other", b'{"a": 1, "b": [1, 2]}')
    assert api_keys.request_digest("POST", "/x", b"not json") != api_keys.request_digest("POST", "/x", b"not json!")


def test_a_claim_then_its_answer_replayed_and_refused_for_another_request(merchant):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    first = api_keys.claim(key.id, "k", "digest-1")
    assert first.outcome == api_keys.NEW
    assert api_keys.claim(key.id, "k", "digest-1").outcome == api_keys.IN_PROGRESS
    api_keys.finish(first.record_id, 201, {"body": '{"secret": "whsec_x"}', "content_type": "application/json"})
    record = db.session.execute(select(ApiIdempotencyKey)).scalar_one()
    assert "whsec_x" not in record.response_ciphertext
    replay = api_keys.claim(key.id, "k", "digest-1")
    assert (replay.outcome, replay.status, replay.answer["body"]) == (api_keys.REPLAY, 201, '{"secret": "whsec_x"}')
    assert api_keys.claim(key.id, "k", "digest-2").outcome == api_keys.MISMATCH


def test_a_released_claim_is_free_and_a_stale_one_is_taken_over(merchant, frozen_clock):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    claimed = api_keys.claim(key.id, "k", "d")
    api_keys.release(claimed.record_id)
    assert count(ApiIdempotencyKey) == 0
    api_keys.claim(key.id, "k", "d")  # its request dies before answering
    frozen_clock.advance(minutes=3)
    assert api_keys.claim(key.id, "k", "d").outcome == api_keys.NEW


def test_an_answer_is_kept_for_a_day(merchant, frozen_clock):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    claimed = api_keys.claim(key.id, "k", "d")
    api_keys.finish(claimed.record_id, 200, {"body": "{}", "content_type": "application/json"})
    frozen_clock.advance(hours=23, minutes=59)
    assert api_keys.claim(key.id, "k", "d").outcome == api_keys.REPLAY
    frozen_clock.advance(minutes=2)
    assert api_keys.claim(key.id, "k", "other").outcome == api_keys.NEW


# -- retention ----------------------------------------------------------------------------


def test_retention_hashes_old_call_addresses_and_deletes_old_calls_and_expired_answers(merchant):
    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    now = clock.now()
    for days in (91, 45, 1):
        db.session.add(
            ApiCall(
                api_key_id=key.id,
                merchant_id=merchant.id,
                method="GET",
                path="/api/v1/products",
                status=200,
                ip="192.0.2.44",
                created_at=now - timedelta(days=days),
            )
        )
    for hours in (-1, 1):
        db.session.add(
            ApiIdempotencyKey(
                api_key_id=key.id,
                key=f"k{hours}",
                request_hash="d",
                created_at=now - timedelta(hours=24),
                expires_at=now + timedelta(hours=hours),
            )
        )
    db.session.commit()

    report = retention.run(now)
    assert (report.api_calls_deleted, report.idempotency_keys_deleted) == (1, 1)
    ips = db.session.execute(select(ApiCall.ip).order_by(ApiCall.created_at)).scalars().all()
    assert ips == [retention.hash_ip("192.0.2.44"), "192.0.2.44"]  # 45 days old, then 1 day old
    assert db.session.execute(select(ApiIdempotencyKey.key)).scalars().all() == ["k1"]


def test_an_answer_no_encryption_key_opens_counts_as_expired(merchant):
    from cryptography.fernet import Fernet

    key, _token = api_keys.create_key(merchant.id, merchant.user_id, draft())
    claimed = api_keys.claim(key.id, "k", "d")
    api_keys.finish(claimed.record_id, 201, {"body": "{}", "content_type": "application/json"})
    record = db.session.get(ApiIdempotencyKey, claimed.record_id)
    record.response_ciphertext = Fernet(Fernet.generate_key()).encrypt(b"{}").decode()  # a removed key's
    db.session.commit()
    assert api_keys.claim(key.id, "k", "d").outcome == api_keys.NEW
    assert count(ApiIdempotencyKey) == 1
