"""Merchant onboarding: the qualification a merchant submits for review."""

import re
from dataclasses import dataclass

from flask_babel import lazy_gettext as _l
from sqlalchemy import select

from faka.accounts.models import Merchant
from faka.catalog.images import storage_used
from faka.core import clock
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.uploads import ShopStorageFull, delete_images, merchant_quota, store_image, stored_size
from faka.extensions import db
from faka.messaging import push

ENTITY_TYPES = ("individual", "company")
ENTITY_TYPE_LABELS = {"individual": _l("Individual"), "company": _l("Company")}
# Mainland resident ID (18 chars, last may be X) or unified social credit code (18 chars).
ID_NUMBER = re.compile(r"^[0-9A-Z]{15,20}$")


class QualificationLocked(DomainError):
    message = _l("Your qualification is approved or under review; contact the operator to change it.")


class InvalidQualification(DomainError):
    message = _l("Check the qualification details.")


@dataclass(frozen=True)
class Qualification:
    legal_name: str
    entity_type: str
    id_number: str
    contact: str


def merchant_for_user(user_id: int) -> Merchant | None:
    return db.session.execute(select(Merchant).where(Merchant.user_id == user_id)).scalar_one_or_none()


def _locked(merchant: Merchant) -> bool:
    return merchant.status in (Merchant.APPROVED, Merchant.FROZEN) or (
        merchant.status == Merchant.PENDING and merchant.submitted_at is not None
    )


def check_can_submit(merchant_id: int) -> None:
    """QualificationLocked unless the merchant may (re)submit now: asked before an uploaded
    licence image is even read."""
    if _locked(db.session.get(Merchant, merchant_id)):
        raise QualificationLocked()


def submit_qualification(merchant_id: int, details: Qualification, licence_image: bytes | None) -> Merchant:
    """Store the merchant's qualification and put it in the review queue.

    A merchant that is pending without a submission, or was rejected, may (re)submit; the
    image is required the first time and kept when not replaced. The image is stored only
    once the merchant may submit and within the shop's storage quota; a refused submission
    keeps no file, and a replaced image's file goes.
    """
    id_number = details.id_number.strip().upper().replace(" ", "")
    if details.entity_type not in ENTITY_TYPES or not ID_NUMBER.match(id_number):
        raise InvalidQualification(_l("Enter the 18-character ID number or unified social credit code."))
    check_can_submit(merchant_id)
    image_name = store_image(licence_image) if licence_image else None
    try:
        with write_transaction():
            merchant = db.session.get(Merchant, merchant_id, with_for_update=True)
            if _locked(merchant):
                raise QualificationLocked()
            if image_name is None and merchant.licence_image is None:
                raise InvalidQualification(_l("Upload a photo or scan of the ID or business licence."))
            replaced = None
            if image_name:
                used, quota = storage_used(merchant_id, leaving_licence=True), merchant_quota()
                if used + stored_size([image_name]) > quota:
                    raise ShopStorageFull(used, quota)
                replaced, merchant.licence_image = merchant.licence_image, image_name
            merchant.legal_name = details.legal_name.strip()
            merchant.entity_type = details.entity_type
            merchant.id_number_ciphertext = vault().encrypt(id_number)
            merchant.contact = details.contact.strip()
            merchant.status = Merchant.PENDING
            merchant.rejection_reason = None
            merchant.submitted_at = clock.now()
            push.merchant_submitted(merchant)  # the operator's channels: a merchant to review
    except BaseException:  # rolled back: the new image's file goes too
        delete_images([image_name])
        raise
    delete_images([replaced])
    return merchant


def masked_id_number(merchant: Merchant) -> str:
    if not merchant.id_number_ciphertext:
        return ""
    number = vault().decrypt(merchant.id_number_ciphertext)
    return number[:3] + "*" * (len(number) - 7) + number[-4:]
