"""License checks: the merchant's own software checks a key a buyer typed in
(faka/inventory/licenses.py; for merchants: docs/licenses.md).

Public: called from the buyer's machine, where an API key would not stay secret, so the
license key itself is the credential. What a check may reveal is decided by the lookup,
which answers a key in stock exactly as a key that does not exist.

Limits, per address: every check counts towards RATELIMIT_LICENSE; a key not found (404)
also counts towards the smaller RATELIMIT_LICENSE_MISSES, so guessing keys stops long
before checking real ones would. Over either: 429 with Retry-After, for every check from
that address (a found key is not let through, or 429 against 200 would tell a guesser
which keys are real). The limits sit above the body's parsing, so invalid bodies count
too; the views answer their errors (rather than raise them) so the miss limit sees the 404.
"""

from flask import current_app
from marshmallow import fields, validate

from faka.extensions import limiter
from faka.inventory import licenses
from faka.inventory.models import KeyActivation
from faka.web.api.v1 import schemas as s
from faka.web.api.v1.auth import public
from faka.web.api.v1.errors import error_response
from faka.web.api.v1.resource import Resource, document
from faka.web.limits import client_bucket

bp = Resource(
    "licenses",
    __name__,
    description="License checks for the merchant's own software: is this a key the shop sold, for which product, "
    "still valid? Optional activations: each installation takes one of the key's seats, up to the product's "
    "limit. No API key: the license key is the credential. A key not sold (in stock, reserved, voided unsold), "
    "a product with license checks off and a key that does not exist all answer the same 404.",
)


def _every_check_limit() -> str:
    return current_app.config["RATELIMIT_LICENSE"]


def _miss_limit() -> str:
    return current_app.config["RATELIMIT_LICENSE_MISSES"]


def _missed(response) -> bool:
    return response.status_code == 404


every_check = limiter.shared_limit(_every_check_limit, scope="license", key_func=client_bucket)
misses = limiter.shared_limit(_miss_limit, scope="license-miss", key_func=client_bucket, deduct_when=_missed)


# -- the shapes -------------------------------------------------------------------------------


def _request_fields(instance_required: bool) -> dict:
    return {
        "product_id": s.Text(
            required=True,
            validate=validate.Length(1, licenses.PRODUCT_ID_MAX),
            metadata={"description": "The product's public id, as in its shop address /p/<id>."},
        ),
        "key": s.Text(
            required=True,
            validate=validate.Length(1, licenses.MAX_KEY_LENGTH),
            metadata={"description": "The key as the buyer received it (case-sensitive; spaces around it ignored)."},
        ),
        "instance_id": s.Text(
            required=instance_required,
            allow_none=not instance_required,
            validate=validate.Length(1, KeyActivation.INSTANCE_ID_MAX),
            metadata={"description": "An id the program makes up once per installation and keeps (a UUID, say)."},
        ),
    }


CheckSchema = s.Schema.from_dict(_request_fields(instance_required=False), name="LicenseCheck")
SeatSchema = s.Schema.from_dict(
    {
        **_request_fields(instance_required=True),
        "instance_name": s.Text(
            allow_none=True,
            validate=validate.Length(max=KeyActivation.INSTANCE_NAME_MAX),
            metadata={"description": "A name people recognise the installation by (the computer's name, say)."},
        ),
    },
    name="LicenseSeat",
)


class LicenseProductSchema(s.Schema):
    id = fields.String(required=True, metadata={"description": "The product's public id."})
    name = fields.String(required=True)


class ActivationCountSchema(s.Schema):
    count = fields.Integer(required=True, metadata={"description": "Seats held now."})
    limit = fields.Integer(required=True, allow_none=True, metadata={"description": "The product's limit; null: none."})


class InstanceSchema(s.Schema):
    id = fields.String(required=True)
    active = fields.Boolean(required=True, metadata={"description": "Whether this installation holds a seat."})


class LicenseSchema(s.Schema):
    valid = fields.Boolean(required=True, metadata={"description": "true for sold and disputed."})
    status = fields.String(
        required=True,
        validate=validate.OneOf((licenses.SOLD, licenses.DISPUTED, licenses.REFUNDED, licenses.VOIDED)),
        metadata={
            "description": "sold; disputed (a complaint about the order is in progress: still valid); "
            "refunded (the order was refunded in full); voided (withdrawn after the sale)."
        },
    )
    product = fields.Nested(LicenseProductSchema, required=True)
    sold_at = fields.DateTime(required=True)
    activations = fields.Nested(ActivationCountSchema, required=True)
    instance = fields.Nested(InstanceSchema, metadata={"description": "Only when the request named an instance_id."})
    result = fields.String(
        validate=validate.OneOf(
            (licenses.ACTIVATED, licenses.ALREADY_ACTIVE, licenses.DEACTIVATED, licenses.NOT_ACTIVE)
        ),
        metadata={"description": "activate and deactivate only: what the call did."},
    )


def _license(found: licenses.License) -> dict:
    body = {
        "valid": found.valid,
        "status": found.status,
        "product": {"id": found.product_id, "name": found.product_name},
        "sold_at": found.sold_at,
        "activations": {"count": found.activations, "limit": found.activation_limit},
    }
    if found.instance_id is not None:
        body["instance"] = {"id": found.instance_id, "active": bool(found.instance_active)}
    if found.result is not None:
        body["result"] = found.result
    return body


def _answer(service, data: dict, need_instance: bool):
    try:
        return _license(service(licenses.license_request(data, need_instance=need_instance)))
    except licenses.InvalidLicenseRequest as exc:  # a field blank once trimmed
        return error_response(422, "invalid", exc.message, {exc.field or "_body": [str(exc.message)]})
    except licenses.LicenseNotFound as exc:
        return error_response(404, exc.code, exc.message)
    except (licenses.LicenseNotValid, licenses.ActivationLimitReached) as exc:
        return error_response(409, exc.code, exc.message)


# -- the operations ----------------------------------------------------------------------------


def answers(*statuses: int):
    """Document the errors an operation answers besides those of its input."""

    def decorator(view):
        document(view, responses=statuses)
        return view

    return decorator


@bp.post("/licenses/validate")
@public
@answers(404, 429)
@every_check
@misses
@bp.arguments(CheckSchema)
@bp.response(200, LicenseSchema)
def validate_license(data):
    """Check a key

    The key's license: valid or not, its status, product, sale date and seats; with `instance_id`, whether that
    installation holds a seat. Changes nothing. 404 `not_found` for every key that is not a sale of this product.
    """
    return _answer(licenses.validate, data, need_instance=False)


@bp.post("/licenses/activate")
@public
@answers(404, 409, 429)
@every_check
@misses
@bp.arguments(SeatSchema)
@bp.response(200, LicenseSchema)
def activate_license(data):
    """Take a seat for an installation

    Idempotent: an installation that already holds a seat takes nothing more (`result: already_active`). 409
    `activation_limit_reached` when every seat is taken, `license_refunded` or `license_voided` for a key that
    is no longer valid.
    """
    return _answer(licenses.activate, data, need_instance=True)


@bp.post("/licenses/deactivate")
@public
@answers(404, 429)
@every_check
@misses
@bp.arguments(SeatSchema)
@bp.response(200, LicenseSchema)
def deactivate_license(data):
    """Give an installation's seat back

    Idempotent: `result: not_active` when there was no seat to give back. Works for a refunded or voided key too.
    """
    return _answer(licenses.deactivate, data, need_instance=True)
