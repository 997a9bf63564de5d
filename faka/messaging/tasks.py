"""Sending what the outbox, the webhook log and the push log hold, enqueued by name
("messaging.tasks.send_email")."""

from faka.messaging import mail, push, restock, webhooks


def send_email(email_id: int) -> bool:
    return mail.send_outbox_email(email_id)


def send_webhook(delivery_id: int) -> bool:
    return webhooks.deliver(delivery_id)


def send_push(message_id: int) -> bool:
    return push.deliver(message_id)


def restock_notices(variant_id: int) -> int:
    """Keys were imported into this variant: tell the buyers waiting for it (once)."""
    return restock.notify_restocked(variant_id)
