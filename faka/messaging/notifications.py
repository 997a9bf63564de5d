"""Telling merchants what happened to their orders and stock: emails and webhooks.

Each hook runs after the transaction that changed the order has committed (never inside
a write_transaction(): they do not nest), opens its own to record what is owed (webhook
deliveries, outbox emails), and enqueues the jobs that send them inside it, so they go
out once it has committed. A hook that fails leaves the order as it is; its callers log
the failure and carry on.

Low-stock alerts: each variant of a product has its own keys and threshold. When a
delivery leaves a variant of an auto-delivered product with at most its
`low_stock_threshold` available keys (a threshold of 0 turns alerts off), the merchant
gets a `stock.low` webhook and a `merchant_low_stock` email — at most once per variant
per LOW_STOCK_ALERT_EVERY. The outbox is the record of alerts sent: before alerting we
look for a `merchant_low_stock` email to this merchant about this variant created within
that window (the variant id is in the email's encrypted context, so the few recent
low-stock emails of the merchant are decrypted to compare). The variant's row is locked
first, so two deliveries at the same moment do not both alert.
"""

import json
import logging
from datetime import timedelta

from flask import current_app
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import func, select

from faka.accounts.models import Merchant
from faka.catalog import checkout_fields, variants
from faka.catalog.models import DELIVERY_AUTO, DELIVERY_MANUAL, Product, ProductVariant
from faka.core import clock, tasks
from faka.core.crypto import vault
from faka.core.db import write_transaction
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.messaging import push, webhooks
from faka.messaging.mail import queue_email
from faka.messaging.models import OutboxEmail
from faka.orders.models import Order

log = logging.getLogger(__name__)

EMAIL_MANUAL_ORDER = "merchant_manual_order"
EMAIL_LOW_STOCK = "merchant_low_stock"
LOW_STOCK_ALERT_EVERY = timedelta(hours=24)


def order_paid(order_id: int) -> None:
    """An order's payment was applied: `order.paid` webhook, and for a product the
    merchant delivers by hand, an email asking them to deliver it; the pushes of a paid,
    manual or held order (push.order_paid)."""
    order = db.session.get(Order, order_id)
    if order is None or not (
        _is_manual(order)
        or webhooks.has_subscribers(order.merchant_id, "order.paid")
        or push.order_paid_listeners(order)
    ):
        db.session.rollback()  # nothing to record: end the read, take no write lock
        return
    with write_transaction():
        order = db.session.get(Order, order_id)
        delivery_ids = webhooks.emit(order.merchant_id, "order.paid", order_data(order))
        email_ids = [_queue_manual_order_email(order)] if _is_manual(order) else []
        push.order_paid(order, manual=_is_manual(order))
        _enqueue(delivery_ids, email_ids)


def order_delivered(order_id: int) -> None:
    """An order was delivered: `order.delivered` webhook, then the low-stock check of its
    variant."""
    order = db.session.get(Order, order_id)
    if order is None or not (
        _watches_stock(order.product, order.variant)
        or push.watches_stock(order.product)
        or webhooks.has_subscribers(order.merchant_id, "order.delivered")
    ):
        db.session.rollback()  # nothing to record: end the read, take no write lock
        return
    with write_transaction():
        order = db.session.get(Order, order_id)
        delivery_ids = webhooks.emit(order.merchant_id, "order.delivered", order_data(order))
        email_ids = []
        product = order.product
        if _watches_stock(product, order.variant) or push.watches_stock(product):
            # Locked so that two deliveries finishing together do not both alert.
            variant = db.session.execute(
                select(ProductVariant).where(ProductVariant.id == order.variant_id).with_for_update()
            ).scalar_one()
            available = _available_keys(variant.id)
            running_low = False
            if (
                _watches_stock(product, variant)
                and available <= variant.low_stock_threshold
                and not _alerted_recently(product, variant)
            ):
                data = {
                    "product": _product_data(product),
                    "variant": _variant_data(variant),
                    "available": available,
                    "threshold": variant.low_stock_threshold,
                }
                delivery_ids += webhooks.emit(product.merchant_id, "stock.low", data)
                email_ids.append(_queue_low_stock_email(product, variant, available))
                running_low = True
            if product.uses_key_stock and _offered(product, variant):
                push.stock_changed(product, variant, available, running_low)  # sold out, or the low-stock alert
        _enqueue(delivery_ids, email_ids)


def order_refunded(order_id: int) -> None:
    """An order was refunded: `order.refunded` webhook."""
    with write_transaction():
        order = db.session.get(Order, order_id)
        if order is None:
            return  # nothing written
        delivery_ids = webhooks.emit(order.merchant_id, "order.refunded", order_data(order))
        _enqueue(delivery_ids, [])


def remote_delivery_failed(order_id: int) -> None:
    """A "from my server" order whose server failed every attempt now waits for the
    merchant to deliver it by hand (faka/orders/remote_delivery.py): the manual-order
    email, saying why, and the "manual order waiting" push."""
    with write_transaction():
        order = db.session.get(Order, order_id)
        if order is None or order.status != Order.PAID or order.manual_fallback_at is None:
            return  # delivered by hand or refunded meanwhile: nothing to ask for
        email_ids = [_queue_manual_order_email(order, server_failed=True)]
        push.manual_order_waiting(order)
        _enqueue([], email_ids)


def _is_manual(order: Order) -> bool:
    return order.product.delivery_type == DELIVERY_MANUAL


def _watches_stock(product: Product, variant: ProductVariant) -> bool:
    return product.delivery_type == DELIVERY_AUTO and variant.low_stock_threshold > 0 and _offered(product, variant)


def _offered(product: Product, variant: ProductVariant) -> bool:
    """Still for sale: a deleted variant's or product's last pending order being delivered
    says nothing about stock the merchant must top up."""
    return variant.deleted_at is None and product.deleted_at is None


def order_data(order: Order) -> dict:
    """What webhooks say about an order, with the buyer's answers to the product's checkout
    fields in full (the merchant's system may top up the game UID itself). Never the
    delivered goods."""

    def unix(when):
        return int(when.timestamp()) if when else None

    return {
        "order": {
            "number": order.number,
            "status": order.status,
            "quantity": order.quantity,
            "unit_price": order.unit_price,
            "discount": order.discount,
            "total": order.total,
            "currency": order.currency,
            "buyer_email": order.email,
            "created_at": unix(order.created_at),
            "paid_at": unix(order.paid_at),
            "delivered_at": unix(order.delivered_at),
            "refunded_at": unix(order.refunded_at),
            "refunded_amount": order.refunded_amount,
        },
        "product": _product_data(order.product),
        # What the buyer chose: its key, and its name as it read then (null when the
        # product offered no choice).
        "variant": {"key": order.variant.key, "name": order.variant_name},
        "answers": checkout_fields.webhook_answers(order.id),
    }


def _product_data(product: Product) -> dict:
    return {"id": product.id, "slug": product.slug, "title": product.title, "delivery_type": product.delivery_type}


def _variant_data(variant: ProductVariant) -> dict:
    # A product without a choice: its one variant's name, if any, is not shown to buyers.
    return {"key": variant.key, "name": variant.name if variant.product.has_choice else None}


def merchant_email(merchant: Merchant) -> str:
    return merchant.notify_email or merchant.user.email


def _locale() -> str:
    return current_app.config.get("BABEL_DEFAULT_LOCALE", "zh_CN")


def _queue_manual_order_email(order: Order, server_failed: bool = False) -> int:
    locale = _locale()
    with force_locale(locale):
        subject = _("New order %(number)s to deliver: %(title)s", number=order.number, title=order.title)
    context = {
        "merchant_name": order.merchant.name,
        "order_number": order.number,
        "product_title": order.title,  # with the variant the buyer chose
        "quantity": order.quantity,
        "total": order.total,
        "currency": order.currency,
        "promise_hours": order.product.manual_promise_hours,
        "server_failed": server_failed,  # a "from my server" order its server did not deliver
    }
    email = queue_email(
        EMAIL_MANUAL_ORDER, merchant_email(order.merchant), subject, context, locale, merchant_id=order.merchant_id
    )
    return email.id


def _queue_low_stock_email(product: Product, variant: ProductVariant, available: int) -> int:
    locale = _locale()
    title = variants.label(product, variant)
    with force_locale(locale):
        subject = _("Low stock: %(title)s", title=title)
    context = {
        "merchant_name": product.merchant.name,
        "product_id": product.id,
        "variant_id": variant.id,
        "product_title": title,
        "available": available,
        "threshold": variant.low_stock_threshold,
    }
    email = queue_email(
        EMAIL_LOW_STOCK, merchant_email(product.merchant), subject, context, locale, merchant_id=product.merchant_id
    )
    return email.id


def _alerted_recently(product: Product, variant: ProductVariant) -> bool:
    recent = db.session.execute(
        select(OutboxEmail.payload_ciphertext).where(
            OutboxEmail.kind == EMAIL_LOW_STOCK,
            OutboxEmail.merchant_id == product.merchant_id,
            OutboxEmail.created_at >= clock.now() - LOW_STOCK_ALERT_EVERY,
        )
    ).scalars()
    for ciphertext in recent:
        if ciphertext:
            context = json.loads(vault().decrypt(ciphertext))
            if context.get("product_id") == product.id and context.get("variant_id", variant.id) == variant.id:
                return True
    return False


def _available_keys(variant_id: int) -> int:
    return db.session.scalar(
        select(func.count())
        .select_from(CardKey)
        .where(CardKey.variant_id == variant_id, CardKey.status == CardKey.AVAILABLE)
    )


def _enqueue(delivery_ids: list[int], email_ids: list[int]) -> None:
    # Called inside the hook's write_transaction(): the jobs go out once it has committed.
    webhooks.enqueue_deliveries(delivery_ids)
    for email_id in email_ids:
        tasks.enqueue("messaging.tasks.send_email", email_id, job_id=f"email-{email_id}")
