"""Goods moderation: the queue of products waiting for an operator (held by a prohibited
word, or reported by buyers), the operator's decisions, and buyers' reports.

Moderation states of a product: "pending" (waiting for an operator), "approved" (may be
on sale), "rejected" (refused before it was ever shown), "taken_down" (removed from sale
after it was shown). Only "approved" products reach the storefront (faka/catalog/storefront.py);
the operator's reason is stored in Product.moderation_reason, which only the merchant and
the operators see. Every operator decision is written to the audit log in its transaction.
"""

import re
from dataclasses import dataclass, field
from datetime import datetime

from flask_babel import lazy_gettext as _l
from sqlalchemy import select
from sqlalchemy.orm import selectinload

from faka.catalog import storefront
from faka.catalog.models import Product, ProductReport
from faka.core.db import write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.types import utcnow
from faka.extensions import db
from faka.platform import audit
from faka.platform.settings import set_setting, site_settings

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
TAKEN_DOWN = "taken_down"
# States only an operator can lift: a merchant's edit sends them back to PENDING, never
# straight to APPROVED (see products.save_product).
HELD_BY_OPERATOR = (REJECTED, TAKEN_DOWN)

REPORT_REASONS = {
    "pirated": _l("Pirated or cracked goods"),
    "illegal": _l("Illegal goods"),
    "fraud": _l("Fraud or scam"),
    "not_as_described": _l("Not as described"),
    "other": _l("Other"),
}
MAX_REPORT_TEXT = 1000
MAX_REASON = 500
MAX_WORD = 30
MAX_WORDS = 300  # 300 × 31 characters stay within the setting's 10,000


class ModerationError(DomainError):
    message = _l("This product cannot be moderated that way in its current state.")


class ReasonRequired(DomainError):
    message = _l("Write a reason of at most 500 characters: the merchant sees it.")


class InvalidReport(DomainError):
    message = _l("Choose a reason for the report and write at most 1000 characters.")


class InvalidWords(DomainError):
    message = _l("Write at most 300 prohibited words, one per line, each at most 30 characters.")


@dataclass
class QueueItem:
    product: Product
    reports: list[ProductReport] = field(default_factory=list)

    @property
    def since(self) -> datetime:
        """When the product started waiting: its oldest open report, or its creation."""
        times = [r.created_at for r in self.reports]
        if self.product.moderation == PENDING:
            times.append(self.product.created_at)
        return min(times)

    @property
    def report_count(self) -> int:
        return len(self.reports)


def queue() -> list[QueueItem]:
    """Products waiting for moderation and products with open reports, oldest first."""
    reports = (
        db.session.execute(
            select(ProductReport).where(ProductReport.status == ProductReport.OPEN).order_by(ProductReport.id)
        )
        .scalars()
        .all()
    )
    reported_ids = {r.product_id for r in reports}
    condition = Product.moderation == PENDING
    if reported_ids:
        condition = condition | Product.id.in_(reported_ids)
    products = (
        db.session.execute(
            select(Product).where(Product.deleted_at.is_(None), condition).options(selectinload(Product.merchant))
        )
        .scalars()
        .all()
    )
    items = {p.id: QueueItem(p) for p in products}
    for report in reports:
        if report.product_id in items:
            items[report.product_id].reports.append(report)
    return sorted(items.values(), key=lambda item: (item.since, item.product.id))


def product_id_for(slug: str) -> int:
    """The id of the (not deleted) product with this slug, or NotFound."""
    product_id = db.session.execute(
        select(Product.id).where(Product.slug == slug, Product.deleted_at.is_(None))
    ).scalar_one_or_none()
    if product_id is None:
        raise NotFound()
    return product_id


def _product_for_update(product_id: int) -> Product:
    product = db.session.execute(
        select(Product).where(Product.id == product_id, Product.deleted_at.is_(None)).with_for_update()
    ).scalar_one_or_none()
    if product is None:
        raise NotFound()  # the caller's write_transaction() rolls back
    return product


def _clean_reason(reason: str | None) -> str:
    reason = (reason or "").strip()
    if not reason or len(reason) > MAX_REASON:
        raise ReasonRequired()
    return reason


def _close_reports(product_id: int, status: str, operator_id: int) -> int:
    reports = (
        db.session.execute(
            select(ProductReport).where(
                ProductReport.product_id == product_id, ProductReport.status == ProductReport.OPEN
            )
        )
        .scalars()
        .all()
    )
    for report in reports:
        report.status, report.resolved_at, report.resolved_by = status, utcnow(), operator_id
    return len(reports)


def _decide(
    product_id: int,
    operator_id: int,
    action: str,
    allowed_from: tuple[str, ...],
    new_state: str,
    reason: str | None,
    report_status: str,
) -> Product:
    with write_transaction():
        product = _product_for_update(product_id)
        if product.moderation not in allowed_from:
            raise ModerationError()
        before = {"moderation": product.moderation, "moderation_reason": product.moderation_reason}
        product.moderation, product.moderation_reason = new_state, reason
        closed = _close_reports(product.id, report_status, operator_id)
        audit.record(
            operator_id,
            action,
            f"product:{product.id}",
            before=before,
            after={"moderation": new_state, "moderation_reason": reason, "reports_closed": closed},
            detail=reason or "",
        )
    return product


def approve(product_id: int, operator_id: int) -> Product:
    """Put the product (back) on sale. For a product on sale that buyers reported, this
    keeps it on sale and dismisses the open reports."""
    return _decide(
        product_id,
        operator_id,
        "moderation.approved",
        (PENDING, REJECTED, TAKEN_DOWN, APPROVED),
        APPROVED,
        None,
        ProductReport.DISMISSED,
    )


def reject(product_id: int, operator_id: int, reason: str) -> Product:
    """Refuse a product waiting for moderation; the merchant sees the reason."""
    reason = _clean_reason(reason)
    return _decide(product_id, operator_id, "moderation.rejected", (PENDING,), REJECTED, reason, ProductReport.ACTED)


def take_down(product_id: int, operator_id: int, reason: str) -> Product:
    """Remove an approved product from sale; the merchant sees the reason."""
    reason = _clean_reason(reason)
    return _decide(
        product_id, operator_id, "moderation.taken_down", (APPROVED,), TAKEN_DOWN, reason, ProductReport.ACTED
    )


def dismiss_report(report_id: int, operator_id: int) -> ProductReport:
    with write_transaction():
        report = db.session.get(ProductReport, report_id, with_for_update=True)
        if report is None:
            raise NotFound()
        if report.status != ProductReport.OPEN:
            raise ModerationError(_l("This report is already closed."))
        report.status, report.resolved_at, report.resolved_by = ProductReport.DISMISSED, utcnow(), operator_id
        audit.record(
            operator_id,
            "moderation.report_dismissed",
            f"product_report:{report.id}",
            before={"status": ProductReport.OPEN},
            after={"status": ProductReport.DISMISSED},
            detail=f"product:{report.product_id}",
        )
    return report


def normalise_words(text: str) -> str:
    """One word per line, trimmed, without blanks or repeats (case-insensitive)."""
    words, seen = [], set()
    for word in re.split(r"[\r\n,，]+", text or ""):
        word = word.strip()
        if word and word.lower() not in seen:
            seen.add(word.lower())
            words.append(word)
    if len(words) > MAX_WORDS or any(len(w) > MAX_WORD for w in words):
        raise InvalidWords()
    return "\n".join(words)


def prohibited_words() -> str:
    return site_settings()["prohibited_words"]


def set_prohibited_words(text: str, operator_id: int) -> str:
    """Replace the prohibited words. They apply to products saved from now on."""
    value = normalise_words(text)
    with write_transaction():  # the change and its audit event together
        before = site_settings()["prohibited_words"]
        audit.record(
            operator_id,
            "moderation.words_changed",
            "setting:prohibited_words",
            before={"prohibited_words": before},
            after={"prohibited_words": value},
        )
        set_setting("prohibited_words", value, commit=False)
    return value


def report_product(slug: str, reason: str, text: str, ip: str | None) -> ProductReport:
    """A buyer's report of a product on sale; it joins the moderation queue."""
    text = (text or "").strip()
    if reason not in REPORT_REASONS or len(text) > MAX_REPORT_TEXT:
        raise InvalidReport()
    product = storefront.product_listing(slug).product  # NotFound unless on sale
    report = ProductReport(product_id=product.id, reason=reason, text=text, ip=(ip or None) and ip[:45])
    with write_transaction():
        db.session.add(report)
    return report
