"""A variant taken off sale takes its stock with it: keys that unpaid orders held come back
void, not on sale; an import into it adds nothing, even one that was already running; and a
complaint's replacement keys come from the order's own variant only."""

from datetime import timedelta

import pytest
from flask import current_app
from sqlalchemy import func, select

from conftest import reload, signed_notify
from faka.catalog import storefront, variants
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core import clock
from faka.extensions import db
from faka.inventory import keys, stock
from faka.inventory.models import CardKey, KeyImport
from faka.orders import checkout
from faka.payments import notify


@pytest.fixture
def card(make_product):
    """A product of two options, ¥50 (4 keys) and ¥100 (2 keys)."""
    product = make_product(keys=4, price=5000, title="Google Play 礼品卡")
    variants.add_variant(
        product.merchant_id, product.slug, variants.VariantDraft(name="面值 ¥100", price=10000), first_name="面值 ¥50"
    )
    product = reload(product)
    keys.import_keys(product.live_variants[1], "HUNDRED-1\nHUNDRED-2")
    return product


def counts(variant) -> dict[str, int]:
    rows = db.session.execute(
        select(CardKey.status, func.count()).where(CardKey.variant_id == variant.id).group_by(CardKey.status)
    )
    return dict(rows.all())


def buy(product, variant, quantity=1):
    with current_app.test_request_context():
        return checkout.place_order(product.slug, quantity, "buyer@example.com", None, variant_key=variant.key)


def test_keys_held_by_an_unpaid_order_come_back_void_after_their_variant_is_deleted(card):
    fifty, hundred = card.live_variants
    pending = buy(card, fifty)
    assert variants.delete_variant(card.merchant_id, card.slug, fifty.key) == 3  # the unsold ones

    with db.session.begin():
        stock.expire_stale_orders(clock.now() + timedelta(days=1))
    assert reload(pending).status == "expired"
    assert counts(fifty) == {CardKey.VOID: 4}  # none back on sale
    assert counts(hundred) == {CardKey.AVAILABLE: 2}
    # The storefront counts only what can be bought: the ¥100 keys.
    assert storefront.available_stock([card.id]) == {card.id: 2}


def test_an_import_into_a_deleted_variant_adds_nothing(card):
    fifty = card.live_variants[0]
    variants.delete_variant(card.merchant_id, card.slug, fifty.key)
    with pytest.raises(keys.VariantWithdrawn):
        keys.import_keys(fifty, "LATE-1\nLATE-2")
    assert CardKey.AVAILABLE not in counts(fifty)


def test_a_running_import_stops_when_its_variant_is_deleted(card, monkeypatch):
    """The merchant deletes the option while a big import is half done: the keys added so far
    were voided with it, and the rest are not added."""
    fifty = card.live_variants[0]
    monkeypatch.setattr(keys, "CHUNK_LINES", 3)
    job = keys.start_import(card.merchant_id, fifty, "\n".join(f"BIG-{i}" for i in range(9)))
    recorded = keys._record_progress

    def delete_after_first_chunk(import_id, processed, report):
        recorded(import_id, processed, report)
        if processed == 3:
            variants.delete_variant(card.merchant_id, card.slug, fifty.key)

    monkeypatch.setattr(keys, "_record_progress", delete_after_first_chunk)
    keys.run_import(job.id)

    finished = db.session.get(KeyImport, job.id)
    assert (finished.status, finished.error) == (KeyImport.FAILED, "variant deleted")
    assert counts(fifty) == {CardKey.VOID: 7}  # 4 first keys + the 3 of the first chunk
    assert db.session.scalar(select(func.count()).select_from(CardKey).where(CardKey.fingerprint.like("%"))) == 9


def test_a_replacement_offer_counts_only_the_orders_own_variant(card):
    fifty, hundred = card.live_variants
    order = buy(card, hundred)
    notify.handle_notify("sandbox", signed_notify(order), {}, b"")
    buy(card, hundred)  # the other ¥100 key, held by another buyer
    assert reload(order).status == "delivered" and CardKey.AVAILABLE not in counts(hundred)
    complaint = workflow.open_complaint(
        order.token, reason=Complaint.KEY_INVALID, description="The key was already used."
    )
    # Four ¥50 keys are on sale, but a ¥100 order is replaced with ¥100 keys or not at all.
    with pytest.raises(workflow.ReplacementOutOfStock):
        workflow.offer_replacement(complaint.id, None, 1)
    keys.import_keys(hundred, "HUNDRED-3")
    workflow.offer_replacement(complaint.id, None, 1)
    assert reload(complaint).offer_quantity == 1


def test_delivering_a_deleted_variants_last_order_sends_no_low_stock_alert(card):
    from faka.messaging.models import OutboxEmail
    from faka.messaging.notifications import EMAIL_LOW_STOCK

    fifty = card.live_variants[0]
    variants.update_variant(
        card.merchant_id,
        card.slug,
        fifty.key,
        variants.VariantDraft(name="面值 ¥50", price=5000, low_stock_threshold=10),
    )
    pending = buy(card, fifty)
    variants.delete_variant(card.merchant_id, card.slug, fifty.key)
    notify.handle_notify("sandbox", signed_notify(pending), {}, b"")
    assert reload(pending).status == "delivered"  # the buyer who was paying still gets the key
    assert db.session.scalar(select(func.count()).where(OutboxEmail.kind == EMAIL_LOW_STOCK)) == 0
