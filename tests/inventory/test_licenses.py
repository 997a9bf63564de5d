"""License checks (faka/inventory/licenses.py): what a sold key answers, the one answer for
every key that must stay secret, the statuses a sale can reach, and the seats."""

from datetime import timedelta

import pytest
from sqlalchemy import event, select, update

from conftest import count, key_texts, reload, run_together
from faka.catalog import products
from faka.catalog.models import DELIVERY_FIXED, DELIVERY_MANUAL
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.crypto import vault
from faka.core.errors import NotFound
from faka.extensions import db
from faka.inventory import licenses
from faka.inventory.keys import import_keys
from faka.inventory.models import CardKey, KeyActivation
from faka.orders.models import Order
from faka.platform.models import AuditEvent


@pytest.fixture
def licensed(make_product):
    return make_product(keys=6, title="Photo Editor Pro", license_checks=True, activation_limit=2)


@pytest.fixture
def sold(licensed, place, pay):
    """A delivered order of one key of a product with license checks: (order, its key)."""
    order = place(licensed)
    pay(order)
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order, key_texts(order)[0]


def ask(product, key, instance=None, name=None):
    return licenses.LicenseRequest(product.slug, key, instance, name)


def test_a_sold_key_is_valid_for_its_product(licensed, sold):
    order, key = sold
    found = licenses.validate(ask(licensed, key))
    assert found.valid and found.status == licenses.SOLD
    assert (found.product_id, found.product_name) == (licensed.slug, "Photo Editor Pro")
    assert found.sold_at == reload(order).keys[0].sold_at
    assert (found.activations, found.activation_limit) == (0, 2)
    assert found.instance_active is None  # no instance was asked about


def test_the_key_is_found_as_the_buyer_types_it_with_spaces_around(licensed, sold):
    request = licenses.license_request({"product_id": f" {licensed.slug} ", "key": f"  {sold[1]}\t"})
    assert licenses.validate(request).valid


def _misses(make_product, licensed, sold, place, pay):
    """Every kind of key a check must not reveal, each as (description, request)."""
    _order, key = sold
    reserved = key_texts(place(licensed))[0]  # held by an unpaid order
    in_stock, voided = _stock_texts(licensed)[:2]
    db.session.execute(update(CardKey).where(CardKey.id == _key_id(licensed, voided)).values(status=CardKey.VOID))
    db.session.commit()
    other = make_product(keys=2, license_checks=True)
    off = make_product(keys=0, license_checks=False)
    import_keys(off.variants[0], "OFF-PRODUCT-KEY-123456")
    pay(place(off))
    return [
        ("a key that does not exist", ask(licensed, "NO-SUCH-KEY-0000")),
        ("a key in stock", ask(licensed, in_stock)),
        ("a key reserved by an unpaid order", ask(licensed, reserved)),
        ("a key voided before it was ever sold", ask(licensed, voided)),
        ("a sold key asked for with another product", ask(other, key)),
        ("a sold key of a product with license checks off", ask(off, "OFF-PRODUCT-KEY-123456")),
        ("a product that does not exist", licenses.LicenseRequest("0123456789abcdef", key)),
    ]


def _stock_texts(product) -> list[str]:
    rows = db.session.execute(
        select(CardKey.ciphertext)
        .where(CardKey.product_id == product.id, CardKey.status == CardKey.AVAILABLE)
        .order_by(CardKey.id)
    ).scalars()
    return [vault().decrypt(c) for c in rows]


def _key_id(product, text: str) -> int:
    return db.session.scalar(
        select(CardKey.id).where(CardKey.product_id == product.id, CardKey.fingerprint == vault().fingerprint(text))
    )


def test_every_key_that_is_not_a_sale_gets_the_same_answer_as_one_that_does_not_exist(
    make_product, licensed, sold, place, pay
):
    answers = []
    for what, request in _misses(make_product, licensed, sold, place, pay):
        with pytest.raises(licenses.LicenseNotFound) as refused:
            licenses.validate(request)
        answers.append((what, refused.value.code, str(refused.value.message)))
        for call in (licenses.activate, licenses.deactivate):
            with pytest.raises(licenses.LicenseNotFound):
                call(licenses.LicenseRequest(request.product_id, request.key, "laptop-1"))
    assert len({(code, message) for _what, code, message in answers}) == 1
    assert answers[0][1] == "not_found"
    assert count(KeyActivation) == 0  # no miss took a seat


def test_a_key_in_stock_costs_the_database_exactly_what_a_missing_key_does(make_product, licensed, sold, place, pay):
    """Not the same answer only: the same statements, in the same order (no early return
    in Python for a key that exists), so timing cannot tell them apart either."""
    misses = _misses(make_product, licensed, sold, place, pay)
    runs = {}
    for what, request in misses:
        statements = []

        def record(conn, cursor, statement, parameters, context, executemany, statements=statements):
            statements.append(statement)

        db.session.commit()  # each starts outside a transaction, as a request does
        event.listen(db.engine, "before_cursor_execute", record)
        try:
            for call in (licenses.validate, licenses.activate):
                with pytest.raises(licenses.LicenseNotFound):
                    call(licenses.LicenseRequest(request.product_id, request.key, "laptop-1"))
        finally:
            event.remove(db.engine, "before_cursor_execute", record)
        runs[what] = statements
    assert all(statements == runs["a key that does not exist"] for statements in runs.values()), runs
    # One lookup per call, nothing written.
    assert [s.split()[0] for s in runs["a key that does not exist"] if s != "BEGIN"] == ["SELECT", "SELECT"]


def test_a_refunded_order_makes_its_key_refunded_not_valid(licensed, sold):
    order, key = sold
    licenses.activate(ask(licensed, key, "laptop-1"))
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, "The key does not work")
    workflow.offer_refund(complaint.id, None, order.total)
    workflow.accept_offer(complaint.id)
    assert reload(order).status == Order.REFUNDED
    found = licenses.validate(ask(licensed, key, "laptop-1"))
    assert (found.valid, found.status, found.instance_active) == (False, licenses.REFUNDED, True)
    with pytest.raises(licenses.LicenseNotValid) as refused:
        licenses.activate(ask(licensed, key, "laptop-2"))
    assert refused.value.code == "license_refunded"
    # The program may still give its seat back.
    assert licenses.deactivate(ask(licensed, key, "laptop-1")).result == licenses.DEACTIVATED
    assert count(KeyActivation, KeyActivation.deactivated_at.is_(None)) == 0


def test_a_complaint_in_progress_keeps_the_key_valid_but_disputed(licensed, sold, operator):
    order, key = sold
    complaint = workflow.open_complaint(order.token, Complaint.NOT_AS_DESCRIBED, "Not the version described")
    found = licenses.validate(ask(licensed, key))
    assert (found.valid, found.status) == (True, licenses.DISPUTED)
    # The merchant stayed silent; escalated to the platform's arbitration: still valid.
    workflow.escalate(complaint.id, now=clock.now() + timedelta(days=10))
    assert licenses.activate(ask(licensed, key, "laptop-1")).status == licenses.DISPUTED
    # Rejected: the sale stands.
    workflow.decide(complaint.id, operator.id, None, "The product is as described.")
    assert licenses.validate(ask(licensed, key)).status == licenses.SOLD


def test_a_partial_refund_leaves_the_key_valid(licensed, sold):
    order, key = sold
    complaint = workflow.open_complaint(order.token, Complaint.NOT_AS_DESCRIBED, "Half the features missing")
    workflow.offer_refund(complaint.id, None, order.total // 2)
    workflow.accept_offer(complaint.id)
    assert reload(order).status == Order.PARTIALLY_REFUNDED
    found = licenses.validate(ask(licensed, key))
    assert (found.valid, found.status) == (True, licenses.SOLD)


def test_a_sold_key_withdrawn_later_is_voided(licensed, sold):
    order, key = sold
    db.session.execute(update(CardKey).where(CardKey.order_id == order.id).values(status=CardKey.VOID))
    db.session.commit()
    found = licenses.validate(ask(licensed, key))
    assert (found.valid, found.status) == (False, licenses.VOIDED)
    with pytest.raises(licenses.LicenseNotValid) as refused:
        licenses.activate(ask(licensed, key, "laptop-1"))
    assert refused.value.code == "license_voided"


def test_seats_up_to_the_limit_idempotent_per_instance_and_freed_by_deactivating(licensed, sold):
    _order, key = sold
    first = licenses.activate(ask(licensed, key, "laptop-1", "Anna's laptop"))
    assert (first.result, first.activations, first.instance_active) == (licenses.ACTIVATED, 1, True)
    again = licenses.activate(ask(licensed, key, "laptop-1"))
    assert (again.result, again.activations) == (licenses.ALREADY_ACTIVE, 1)
    assert licenses.activate(ask(licensed, key, "desktop-7")).activations == 2
    with pytest.raises(licenses.ActivationLimitReached) as full:
        licenses.activate(ask(licensed, key, "tablet-3"))
    assert full.value.code == "activation_limit_reached"
    assert (full.value.license.activations, full.value.license.activation_limit) == (2, 2)
    assert count(KeyActivation) == 2

    freed = licenses.deactivate(ask(licensed, key, "laptop-1"))
    assert (freed.result, freed.activations, freed.instance_active) == (licenses.DEACTIVATED, 1, False)
    assert licenses.deactivate(ask(licensed, key, "laptop-1")).result == licenses.NOT_ACTIVE
    assert licenses.deactivate(ask(licensed, key, "never-seen")).result == licenses.NOT_ACTIVE
    assert licenses.activate(ask(licensed, key, "tablet-3")).activations == 2
    # An instance that comes back takes its old row again, its name kept.
    licenses.deactivate(ask(licensed, key, "desktop-7"))
    back = licenses.activate(ask(licensed, key, "laptop-1"))
    assert (back.result, back.activations) == (licenses.ACTIVATED, 2)
    seat = db.session.execute(select(KeyActivation).where(KeyActivation.instance_id == "laptop-1")).scalar_one()
    assert (seat.instance_name, seat.deactivated_at) == ("Anna's laptop", None)
    validated = licenses.validate(ask(licensed, key, "desktop-7"))
    assert (validated.activations, validated.instance_active) == (2, False)


def test_without_a_limit_any_number_of_instances_activate(make_product, place, pay):
    product = make_product(keys=2, license_checks=True, activation_limit=None)
    order = place(product)
    pay(order)
    key = key_texts(order)[0]
    for i in range(12):
        licenses.activate(ask(product, key, f"pc-{i}"))
    found = licenses.validate(ask(product, key))
    assert (found.activations, found.activation_limit) == (12, None)


def test_turning_license_checks_off_hides_the_key_again(licensed, sold):
    _order, key = sold
    licenses.activate(ask(licensed, key, "laptop-1"))
    licensed.license_checks = False
    db.session.commit()
    with pytest.raises(licenses.LicenseNotFound):
        licenses.validate(ask(licensed, key))


def test_two_installations_racing_for_the_last_seat_get_one_seat(app, licensed, sold):
    _order, key = sold
    licenses.activate(ask(licensed, key, "laptop-1"))
    slug = licensed.slug

    def race(i):
        try:
            return licenses.activate(licenses.LicenseRequest(slug, key, f"racer-{i}")).result
        except licenses.ActivationLimitReached:
            return "full"

    results, errors = run_together(app, 4, race)
    assert not errors
    assert sorted(results) == [licenses.ACTIVATED, "full", "full", "full"]
    assert count(KeyActivation, KeyActivation.deactivated_at.is_(None)) == 2


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ([], None),
        ({"key": "K"}, "product_id"),
        ({"product_id": "abc"}, "key"),
        ({"product_id": "abc", "key": 12345}, "key"),
        ({"product_id": "abc", "key": "x" * 2001}, "key"),
        ({"product_id": "abc", "key": "KEY\x00"}, "key"),
        ({"product_id": "a" * 33, "key": "K"}, "product_id"),
        ({"product_id": "abc", "key": "K", "instance_id": "i" * 129}, "instance_id"),
        ({"product_id": "abc", "key": "K", "instance_id": "pc", "instance_name": ["x"]}, "instance_name"),
    ],
)
def test_malformed_requests_name_the_field(app, body, field):
    with pytest.raises(licenses.InvalidLicenseRequest) as refused:
        licenses.license_request(body)
    assert refused.value.field == field


def test_activating_needs_an_instance(app, licensed, sold):
    with pytest.raises(licenses.InvalidLicenseRequest) as refused:
        licenses.activate(licenses.license_request({"product_id": licensed.slug, "key": sold[1]}))
    assert refused.value.field == "instance_id"


# -- what the merchant sees and does ------------------------------------------------------------


def test_the_merchant_sees_each_keys_seats_and_frees_one(licensed, sold, merchant):
    order, key = sold
    licenses.activate(ask(licensed, key, "laptop-1", "Anna's laptop"))
    licenses.activate(ask(licensed, key, "desktop-7"))
    licenses.deactivate(ask(licensed, key, "desktop-7"))
    [seats] = licenses.order_seats(merchant.id, order.id)
    assert (seats.number, seats.hint, seats.active) == (1, f"…{key[-4:]}", 1)
    assert [s.instance_id for s in seats.seats] == ["laptop-1", "desktop-7"]  # active first

    seat = seats.seats[0]
    licenses.end_seat(merchant.id, order.id, seat.id, merchant.user_id)
    seat = reload(seat)
    assert seat.deactivated_by == KeyActivation.BY_MERCHANT
    assert licenses.validate(ask(licensed, key)).activations == 0
    assert count(AuditEvent, AuditEvent.action == "license.deactivated") == 1


def test_another_merchant_can_neither_see_nor_free_the_seats(licensed, sold):
    from test_ledger import new_merchant

    order, key = sold
    licenses.activate(ask(licensed, key, "laptop-1"))
    stranger = new_merchant()
    seat_id = db.session.scalar(select(KeyActivation.id))
    with pytest.raises(NotFound):
        licenses.order_seats(stranger.id, order.id)
    with pytest.raises(NotFound):
        licenses.end_seat(stranger.id, order.id, seat_id, stranger.user_id)
    assert licenses.validate(ask(licensed, key)).activations == 1


def test_an_order_of_a_product_without_license_checks_shows_no_seats(make_product, place, pay, merchant):
    product = make_product(keys=2)
    order = place(product)
    pay(order)
    assert licenses.order_seats(merchant.id, order.id) == []


# -- the product's setting ------------------------------------------------------------------


def _draft(category, **fields):
    return products.ProductDraft(title="Editor", category_id=category.id, price=1000, **fields)


def test_the_merchant_turns_license_checks_on_with_a_limit(merchant, category):
    saved = products.save_product(merchant.id, _draft(category, license_checks=True, activation_limit=3))
    assert (reload(saved).license_checks, reload(saved).activation_limit) == (True, 3)


@pytest.mark.parametrize(
    "fields",
    [
        {"license_checks": True, "delivery_type": DELIVERY_FIXED, "fixed_content": "same for all"},
        {"license_checks": True, "delivery_type": DELIVERY_MANUAL},
        {"license_checks": True, "reusable_key": True},
        {"license_checks": True, "activation_limit": 0},
        {"license_checks": True, "activation_limit": 10_001},
    ],
)
def test_license_checks_are_refused_where_no_key_is_sold_to_one_buyer(merchant, category, fields):
    from faka.catalog.models import Product

    with pytest.raises(products.InvalidProduct):
        products.save_product(merchant.id, _draft(category, **fields))
    assert count(Product) == 0
