"""Outgoing messages: the email outbox, notifications and webhooks."""
