"""License checks: the merchant's own software asks whether a key a buyer typed in is one
of the keys the shop sold, and takes or frees a seat of it ("activations").

A key is found by its fingerprint within one product (fingerprints are unique per
product, and the same text may be a key of two products), so a check names the product
by its public id, the slug of its shop URL.

What a check may learn, and what it may not:

- A sold key of an order in good standing (delivered, or partially refunded: the buyer
  kept the goods) is valid. While a complaint about the order is in progress (open,
  answered, or escalated to the platform's arbitration) it stays valid, with the status
  `disputed`: the sale stands until the complaint ends, and a full refund then makes it
  `refunded`. faka has no separate charge-back state: a payment reversed by the provider
  is recorded as a refund.
- A sold key whose order was refunded in full is `refunded`; a sold key later withdrawn
  from sale (status void) is `voided`. Both are answered, as not valid.
- Everything else is LicenseNotFound, one answer for all of it: no such key, a key in
  stock or reserved for an unpaid order, a key voided before it was ever sold, a product
  with license checks turned off, a product that does not exist. Each case runs the same
  single statement (the conditions are in its WHERE clause, not in Python), so neither the
  answer nor the time it takes tells a key in stock from a key that does not exist.

Seats: a product's `activation_limit` (None: unlimited) caps how many instances (an id
the merchant's program makes up for one installation) hold a key's seats at once.
Activating is idempotent per instance; deactivating frees the seat (the program's own
call, or the merchant's from the order's page). Seats keep their rows for the history.
"""

from dataclasses import dataclass, replace
from datetime import datetime
from functools import cache

from flask_babel import lazy_gettext as _l
from sqlalchemy import bindparam, exists, func, select

from faka.catalog.models import Product
from faka.complaints.models import Complaint
from faka.core import clock
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.extensions import db
from faka.inventory.keys import MAX_KEY_LENGTH
from faka.inventory.models import CardKey, KeyActivation
from faka.orders.models import Order
from faka.platform import audit

SOLD = "sold"
DISPUTED = "disputed"
REFUNDED = "refunded"
VOIDED = "voided"
VALID_STATUSES = (SOLD, DISPUTED)

# The orders whose sold keys a check answers for: good standing, or refunded in full.
GOOD_STANDING = (Order.DELIVERED, Order.PARTIALLY_REFUNDED)
ANSWERED_ORDERS = (*GOOD_STANDING, Order.REFUNDED)

PRODUCT_ID_MAX = 32  # Product.slug
ACTIVATION_LIMIT_MAX = 10_000

# What the program learns about its own call.
ACTIVATED = "activated"
ALREADY_ACTIVE = "already_active"
DEACTIVATED = "deactivated"
NOT_ACTIVE = "not_active"


class LicenseError(DomainError):
    """An answer the program gets instead of a license; `code` is stable, for programs."""

    code = "license_error"


class InvalidLicenseRequest(LicenseError):
    code = "invalid"
    message = _l("The request is not valid.")

    def __init__(self, message=None, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class LicenseNotFound(LicenseError):
    code = "not_found"
    message = _l("No sold license matches this key for this product.")


class LicenseNotValid(LicenseError):
    """The key is known but no longer valid (refunded or voided): it cannot take a seat."""

    def __init__(self, license: "License") -> None:
        super().__init__(
            _l("This license was refunded.") if license.status == REFUNDED else _l("This license was voided.")
        )
        self.code = f"license_{license.status}"
        self.license = license


class ActivationLimitReached(LicenseError):
    code = "activation_limit_reached"

    def __init__(self, license: "License") -> None:
        super().__init__(
            _l(
                "This license is already active on %(count)s of %(limit)s instances. Deactivate one first.",
                count=license.activations,
                limit=license.activation_limit,
            )
        )
        self.license = license


@dataclass(frozen=True)
class LicenseRequest:
    product_id: str
    key: str
    instance_id: str | None = None
    instance_name: str | None = None


@dataclass(frozen=True)
class License:
    """What a check answers about a known key."""

    key_id: int  # internal: never shown to the program
    status: str
    product_id: str
    product_name: str
    sold_at: datetime
    activations: int  # seats held now
    activation_limit: int | None
    instance_id: str | None = None
    instance_active: bool | None = None  # None: no instance was asked about
    result: str | None = None  # what an activate or deactivate call did

    @property
    def valid(self) -> bool:
        return self.status in VALID_STATUSES


# -- the requests -------------------------------------------------------------------------


def _text(value, field: str, limit: int, required: bool) -> str | None:
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise InvalidLicenseRequest(_l("%(field)s is required.", field=field), field)
        return None
    if not isinstance(value, str):
        raise InvalidLicenseRequest(_l("%(field)s must be a string.", field=field), field)
    value = value.strip()
    if len(value) > limit:
        raise InvalidLicenseRequest(
            _l("%(field)s is longer than %(limit)s characters.", field=field, limit=limit), field
        )
    if any(ord(ch) < 32 or 0x7F <= ord(ch) <= 0x9F for ch in value):
        raise InvalidLicenseRequest(_l("%(field)s contains a control character.", field=field), field)
    return value


def license_request(data, need_instance: bool = False) -> LicenseRequest:
    """The checked fields of a program's JSON body, or InvalidLicenseRequest naming the
    first field that is wrong. A malformed key cannot be in any stock, so refusing it
    tells nothing."""
    if not isinstance(data, dict):
        raise InvalidLicenseRequest(_l("Send a JSON object."))
    return LicenseRequest(
        product_id=_text(data.get("product_id"), "product_id", PRODUCT_ID_MAX, True),
        key=_text(data.get("key"), "key", MAX_KEY_LENGTH, True),
        instance_id=_text(data.get("instance_id"), "instance_id", KeyActivation.INSTANCE_ID_MAX, need_instance),
        instance_name=_text(data.get("instance_name"), "instance_name", KeyActivation.INSTANCE_NAME_MAX, False),
    )


# -- the one lookup -------------------------------------------------------------------------


@cache
def _lookup_statement():
    # Built once: every check runs it. Every condition that makes a key "not found" is in
    # the WHERE clause, so a key in stock costs the database what a missing key does.
    seats = (
        select(func.count())
        .where(KeyActivation.card_key_id == CardKey.id, KeyActivation.deactivated_at.is_(None))
        .scalar_subquery()
    )
    instance_seat = exists().where(
        KeyActivation.card_key_id == CardKey.id,
        KeyActivation.instance_id == bindparam("instance"),
        KeyActivation.deactivated_at.is_(None),
    )
    disputed = exists().where(Complaint.order_id == CardKey.order_id, Complaint.status.in_(Complaint.ACTIVE))
    return (
        select(
            CardKey.id,
            CardKey.status,
            CardKey.sold_at,
            Order.status,
            Product.slug,
            Product.title,
            Product.activation_limit,
            disputed,
            seats,
            instance_seat,
        )
        .select_from(Product)
        .join(CardKey, CardKey.product_id == Product.id)
        .join(Order, Order.id == CardKey.order_id)
        .where(
            Product.slug == bindparam("product"),
            Product.license_checks.is_(True),
            CardKey.fingerprint.in_(bindparam("fingerprints", expanding=True)),
            CardKey.status.in_((CardKey.SOLD, CardKey.VOID)),
            CardKey.sold_at.is_not(None),
            Order.status.in_(ANSWERED_ORDERS),
        )
        .limit(1)
    )


def _find(request: LicenseRequest) -> License:
    # Every configured encryption key's fingerprint: during a key rotation a key may still
    # carry the fingerprint of an older one.
    row = db.session.execute(
        _lookup_statement(),
        {
            "product": request.product_id,
            "fingerprints": vault().all_fingerprints(request.key),
            "instance": request.instance_id,
        },
    ).first()
    if row is None:
        raise LicenseNotFound()
    key_id, key_status, sold_at, order_status, slug, title, limit, disputed, seats, instance_seat = row
    if key_status == CardKey.VOID:
        status = VOIDED
    elif order_status == Order.REFUNDED:
        status = REFUNDED
    else:
        status = DISPUTED if disputed else SOLD
    return License(
        key_id=key_id,
        status=status,
        product_id=slug,
        product_name=title,
        sold_at=sold_at,
        activations=int(seats),
        activation_limit=limit,
        instance_id=request.instance_id,
        instance_active=bool(instance_seat) if request.instance_id else None,
    )


# -- what the program calls -----------------------------------------------------------------


def validate(request: LicenseRequest) -> License:
    """The license of this key, or LicenseNotFound. Reads only."""
    try:
        return _find(request)
    finally:
        db.session.rollback()  # ends the read transaction; nothing was written


def activate(request: LicenseRequest) -> License:
    """Give the request's instance a seat of the key (again: idempotent, and it refreshes
    the instance's name and last-seen time). LicenseNotFound, LicenseNotValid (refunded
    or voided), or ActivationLimitReached when every seat is taken."""
    if not request.instance_id:
        raise InvalidLicenseRequest(_l("%(field)s is required.", field="instance_id"), "instance_id")
    # A miss ends here, having done exactly what validate does.
    found = validate(request)
    if not found.valid:
        raise LicenseNotValid(found)
    now = clock.now()
    with write_transaction():
        _lock_key(request)
        found = _find(request)  # again under the lock: the seats may have changed since
        if not found.valid:
            raise LicenseNotValid(found)
        seat = _seat(found.key_id, request.instance_id)
        if seat is not None and seat.is_active:
            seat.last_seen_at = now
            seat.instance_name = request.instance_name or seat.instance_name
            return replace(found, instance_active=True, result=ALREADY_ACTIVE)
        if found.activation_limit is not None and found.activations >= found.activation_limit:
            raise ActivationLimitReached(found)
        if seat is None:
            seat = KeyActivation(card_key_id=found.key_id, instance_id=request.instance_id)
            db.session.add(seat)
        seat.instance_name = request.instance_name or seat.instance_name
        seat.activated_at = seat.last_seen_at = now
        seat.deactivated_at = seat.deactivated_by = None
    return replace(found, activations=found.activations + 1, instance_active=True, result=ACTIVATED)


def deactivate(request: LicenseRequest) -> License:
    """Free the instance's seat of the key; asking again changes nothing (`not_active`).
    Works for a refunded or voided key too. LicenseNotFound for a miss."""
    if not request.instance_id:
        raise InvalidLicenseRequest(_l("%(field)s is required.", field="instance_id"), "instance_id")
    validate(request)
    now = clock.now()
    with write_transaction():
        _lock_key(request)
        found = _find(request)
        seat = _seat(found.key_id, request.instance_id)
        if seat is None or not seat.is_active:
            return replace(found, instance_active=False, result=NOT_ACTIVE)
        seat.deactivated_at, seat.deactivated_by = now, KeyActivation.BY_PROGRAM
    return replace(found, activations=found.activations - 1, instance_active=False, result=DEACTIVATED)


def _lock_key(request: LicenseRequest) -> None:
    """Serialise the seat changes of one key. SQLite's immediate transaction already
    does; on PostgreSQL two activations of the last seat queue on the key's row."""
    db.session.execute(
        select(CardKey.id)
        .join(Product, Product.id == CardKey.product_id)
        .where(
            Product.slug == request.product_id,
            CardKey.fingerprint.in_(vault().all_fingerprints(request.key)),
        )
        .with_for_update(of=CardKey)
    )


def _seat(key_id: int, instance_id: str) -> KeyActivation | None:
    return db.session.execute(
        select(KeyActivation).where(KeyActivation.card_key_id == key_id, KeyActivation.instance_id == instance_id)
    ).scalar_one_or_none()


# -- what the merchant sees -----------------------------------------------------------------


@dataclass(frozen=True)
class KeySeats:
    """One sold key of an order and its seats, for the merchant's order page."""

    number: int  # 1, 2 ... in the order's key order
    hint: str  # the key's last characters, so the merchant can match a buyer's message
    seats: list[KeyActivation]

    @property
    def active(self) -> int:
        return sum(1 for seat in self.seats if seat.is_active)


def order_seats(merchant_id: int, order_id: int) -> list[KeySeats]:
    """The sold keys of the merchant's order with their seats (active first, then newest
    first). Empty when the product has license checks off and no key ever took a seat."""
    order = db.session.execute(
        select(Order).where(Order.id == order_id, Order.merchant_id == merchant_id)
    ).scalar_one_or_none()
    if order is None:
        raise NotFound()
    keys = db.session.execute(
        select(CardKey)
        .where(CardKey.order_id == order.id, CardKey.status.in_((CardKey.SOLD, CardKey.VOID)))
        .where(CardKey.sold_at.is_not(None))
        .order_by(CardKey.id)
    ).scalars()
    keys = list(keys)
    seats: dict[int, list[KeyActivation]] = {key.id: [] for key in keys}
    if keys:
        for seat in db.session.execute(
            select(KeyActivation)
            .where(KeyActivation.card_key_id.in_(seats))
            .order_by(KeyActivation.deactivated_at.is_not(None), KeyActivation.activated_at.desc())
        ).scalars():
            seats[seat.card_key_id].append(seat)
    if not order.product.license_checks and not any(seats.values()):
        return []
    v = vault()
    return [KeySeats(number, _hint(v.decrypt(key.ciphertext)), seats[key.id]) for number, key in enumerate(keys, 1)]


def _hint(key: str) -> str:
    """The last four characters of a key long enough to keep most of it hidden."""
    return f"…{key[-4:]}" if len(key) >= 12 else ""


def end_seat(merchant_id: int, order_id: int, activation_id: int, actor_id: int) -> KeyActivation:
    """The merchant frees a seat of one of their order's keys (say, a buyer's old computer
    they no longer have). Freeing a free seat changes nothing. Audited."""
    with write_transaction():
        seat = db.session.execute(
            select(KeyActivation)
            .join(CardKey, CardKey.id == KeyActivation.card_key_id)
            .join(Order, Order.id == CardKey.order_id)
            .where(KeyActivation.id == activation_id, Order.id == order_id, Order.merchant_id == merchant_id)
        ).scalar_one_or_none()
        if seat is None:
            raise NotFound()
        if seat.is_active:
            seat.deactivated_at, seat.deactivated_by = clock.now(), KeyActivation.BY_MERCHANT
            audit.record(actor_id, "license.deactivated", f"order:{order_id}", detail=f"activation={seat.id}")
    return seat
