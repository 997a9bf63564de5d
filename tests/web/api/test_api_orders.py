"""The orders resource: the back office's order list, order page, manual delivery and
resend behind JSON, with what an order shows of its buyer and goods."""

from datetime import timedelta

from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import key_texts, reload
from faka.accounts.models import Merchant
from faka.catalog import checkout_fields
from faka.catalog.models import DELIVERY_MANUAL
from faka.core.crypto import vault
from faka.extensions import db
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order


def paid(place, pay, product, **options) -> Order:
    order = place(product, **options)
    pay(order)
    return reload(order)


def test_list_pages_oldest_first_with_the_buyer_masked_and_keys_only_counted(
    api, make_product, place, pay, other_product
):
    product = make_product(keys=5, title="Steam card")
    first = place(product, 2, email="alice.buyer@example.com")
    pay(first)
    second = place(product, email="bob@example.com")
    third = place(product, email=None)
    foreign = paid(place, pay, other_product, email="someone.else@example.com")

    page = api.get("/api/v1/orders?limit=2")
    assert page.status_code == 200
    body = page.get_json()
    assert [o["number"] for o in body["items"]] == [first.number, second.number]
    listed = body["items"][0]
    assert listed["email"] == "al***@example.com"
    assert listed["status"] == "delivered" and listed["keys_delivered"] == 2 and listed["content_delivered"] is False
    assert listed["product"] == {"id": product.slug, "title": "Steam card", "delivery_type": "auto"}
    assert (listed["quantity"], listed["unit_price"], listed["total"], listed["currency"]) == (2, 1000, 2000, "CNY")
    assert listed["paid_at"] and listed["delivered_at"] and listed["refunded_at"] is None
    for key in key_texts(first):
        assert key not in page.get_data(as_text=True)

    rest = api.get(f"/api/v1/orders?limit=2&cursor={body['next_cursor']}").get_json()
    assert [o["number"] for o in rest["items"]] == [third.number]
    assert rest["items"][0]["email"] is None and rest["next_cursor"] is None
    assert foreign.number not in page.get_data(as_text=True) + str(rest)


def test_filters_combine_and_the_email_matches_whole(api, make_product, place, pay, frozen_clock):
    steam, xbox = make_product(keys=5, title="Steam"), make_product(keys=5, title="Xbox")
    early = paid(place, pay, steam, email="Alice@Example.com")
    frozen_clock.advance(hours=2)
    late = place(xbox, email="alice@example.com")
    other = place(steam, email="bob@example.com")

    def numbers(query: str) -> list[str]:
        answer = api.get(f"/api/v1/orders?{query}")
        assert answer.status_code == 200, answer.get_json()
        return [o["number"] for o in answer.get_json()["items"]]

    assert numbers("status=delivered") == [early.number]
    assert numbers("status=pending") == [late.number, other.number]
    assert numbers(f"product={xbox.slug}") == [late.number]
    assert numbers("email=ALICE@example.com") == [early.number, late.number]
    assert numbers("email=alice") == []
    assert numbers(f"number={other.number}") == [other.number]
    cut = (early.created_at + timedelta(hours=1)).isoformat()
    assert numbers(f"created_from={cut.replace('+', '%2B')}") == [late.number, other.number]
    assert numbers(f"created_to={cut.replace('+', '%2B')}") == [early.number]
    naive = (early.created_at + timedelta(hours=1)).replace(tzinfo=None).isoformat()
    assert numbers(f"created_to={naive}&product={steam.slug}&status=delivered") == [early.number]


def test_invalid_filters_are_named(api):
    answer = api.get("/api/v1/orders?status=lost&created_from=yesterday&limit=500")
    assert answer.status_code == 422
    assert set(answer.get_json()["error"]["fields"]) == {"status", "created_from", "limit"}
    far = api.get("/api/v1/orders?created_from=0001-01-01T00:00:00%2B14:00")
    assert far.status_code == 422 and "created_from" in far.get_json()["error"]["fields"]


def test_one_order_shows_the_buyer_whole_with_answers_and_timeline(api, make_product, place, pay, other_product):
    product = make_product(keys=2)
    order = place(product, email="alice.buyer@example.com")
    pay(order)

    answer = api.get(f"/api/v1/orders/{order.number}")
    assert answer.status_code == 200
    body = answer.get_json()
    assert body["email"] == "alice.buyer@example.com"
    assert [e["what"] for e in body["timeline"]][:3] == ["created", "paid", "delivered"]
    assert body["keys_delivered"] == 1
    assert key_texts(order)[0] not in answer.get_data(as_text=True)

    theirs = paid(place, pay, other_product)
    missing = api.get("/api/v1/orders/NO-SUCH-ORDER")
    foreign = api.get(f"/api/v1/orders/{theirs.number}")
    assert foreign.status_code == missing.status_code == 404
    assert foreign.get_json() == missing.get_json()


def test_answers_are_masked_in_lists_and_whole_on_one_order(api, make_product, client):
    product = make_product(keys=2)
    field = checkout_fields.add_field(product.merchant_id, product.slug, checkout_fields.FieldDraft(label="Game UID"))
    from flask import current_app

    from faka.orders import checkout

    with current_app.test_request_context():
        order = checkout.place_order(product.slug, 1, "a@example.com", "secret-1", answers={field.key: "UID-123456"})
    listed = api.get("/api/v1/orders").get_json()["items"][0]["answers"]
    whole = api.get(f"/api/v1/orders/{order.number}").get_json()["answers"]
    assert listed == [{"field": field.key, "label": "Game UID", "value": "U***6"}]
    assert whole == [{"field": field.key, "label": "Game UID", "value": "UID-123456"}]


def test_a_manual_order_is_delivered_with_what_the_merchant_sends(api, client, make_product, place, pay, smtp, app):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    order = paid(place, pay, make_product(keys=0, delivery_type=DELIVERY_MANUAL))
    listed = api.get("/api/v1/orders?status=paid").get_json()["items"]
    assert [(o["number"], o["awaiting_delivery"]) for o in listed] == [(order.number, True)]

    done = api.post(f"/api/v1/orders/{order.number}/deliver", json={"content": "充值完成，订单号 GS-7788\n"})
    assert done.status_code == 200
    body = done.get_json()
    assert body["status"] == "delivered" and body["content_delivered"] is True and body["awaiting_delivery"] is False
    assert "GS-7788" not in done.get_data(as_text=True)  # the goods are never shown back
    order = reload(order)
    assert vault().decrypt(order.delivery_ciphertext) == "充值完成，订单号 GS-7788"
    assert "GS-7788" in client.get(f"/order/{order.token}").text
    (to_buyer,) = [m for m in smtp.messages if m["To"] == "buyer@example.com"]
    assert "GS-7788" in to_buyer.get_body(("plain",)).get_content()
    kinds = db.session.execute(select(LedgerEntry.kind).where(LedgerEntry.order_id == order.id)).scalars().all()
    assert sorted(kinds) == ["fee", "sale"]


def test_manual_delivery_is_refused_with_the_back_offices_messages(api, make_product, place, pay):
    manual = paid(place, pay, make_product(keys=0, delivery_type=DELIVERY_MANUAL))
    empty = api.post(f"/api/v1/orders/{manual.number}/deliver", json={"content": "  \n "})
    assert empty.status_code == 422
    assert empty.get_json()["error"] == {
        "code": "invalid",
        "message": "Enter what to deliver.",
        "fields": {"content": ["Enter what to deliver."]},
    }
    too_long = api.post(f"/api/v1/orders/{manual.number}/deliver", json={"content": "x" * 5001})
    assert too_long.status_code == 422 and "content" in too_long.get_json()["error"]["fields"]
    assert reload(manual).status == "paid" and reload(manual).delivery_ciphertext is None

    automatic = paid(place, pay, make_product(keys=2))
    refused = api.post(f"/api/v1/orders/{automatic.number}/deliver", json={"content": "something"})
    assert refused.status_code == 422
    assert refused.get_json()["error"] == {
        "code": "not_deliverable",
        "message": "Only a paid order of a manual-delivery product can be delivered by hand.",
    }
    unpaid = place(make_product(keys=0, delivery_type=DELIVERY_MANUAL))
    assert error_code(api.post(f"/api/v1/orders/{unpaid.number}/deliver", json={"content": "x"})) == "not_deliverable"


def test_a_retried_delivery_with_its_idempotency_key_delivers_once(api, make_product, place, pay):
    order = paid(place, pay, make_product(keys=0, delivery_type=DELIVERY_MANUAL))
    headers = {"Idempotency-Key": "deliver-1"}
    first = api.post(f"/api/v1/orders/{order.number}/deliver", json={"content": "CODE-1"}, headers=headers)
    again = api.post(f"/api/v1/orders/{order.number}/deliver", json={"content": "CODE-1"}, headers=headers)
    assert first.status_code == again.status_code == 200
    assert again.headers["Idempotent-Replayed"] == "true" and again.get_json() == first.get_json()
    assert db.session.scalar(select(OutboxEmail.id).where(OutboxEmail.order_id == order.id)) is not None


def test_resend_queues_the_delivery_email_again(api, app, make_product, place, pay, smtp):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    order = paid(place, pay, make_product(keys=1))
    assert len(smtp.messages) == 1
    answer = api.post(f"/api/v1/orders/{order.number}/resend")
    assert answer.status_code == 202
    assert answer.get_json()["number"] == order.number
    assert [m["To"] for m in smtp.messages] == ["buyer@example.com", "buyer@example.com"]
    assert key_texts(order)[0] in smtp.messages[1].get_body(("plain",)).get_content()

    pending = place(make_product(keys=1))
    refused = api.post(f"/api/v1/orders/{pending.number}/resend")
    assert refused.status_code == 422 and error_code(refused) == "not_resendable"
    no_email = paid(place, pay, make_product(keys=1), email=None)
    assert error_code(api.post(f"/api/v1/orders/{no_email.number}/resend")) == "not_resendable"
    assert len(smtp.messages) == 2


def test_writes_need_the_write_scope_and_an_open_shop(client, make_key, merchant, make_product, place, pay):
    order = paid(place, pay, make_product(keys=0, delivery_type=DELIVERY_MANUAL))
    reader = ApiClient(client, make_key(scopes=["orders:read"]))
    assert reader.get(f"/api/v1/orders/{order.number}").status_code == 200
    refused = reader.post(f"/api/v1/orders/{order.number}/deliver", json={"content": "x"})
    assert refused.status_code == 403 and error_code(refused) == "insufficient_scope"
    other_area = ApiClient(client, make_key(scopes=["products:write"]))
    assert error_code(other_area.get("/api/v1/orders")) == "insufficient_scope"

    writer = ApiClient(client, make_key(scopes=["orders:write"]))
    reload(merchant).status = Merchant.FROZEN
    db.session.commit()
    frozen = writer.post(f"/api/v1/orders/{order.number}/deliver", json={"content": "x"})
    assert frozen.status_code == 403 and error_code(frozen) == "merchant_frozen"
    assert writer.get("/api/v1/orders").status_code == 200
    assert reload(order).status == "paid"
