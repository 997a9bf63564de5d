"""Stripe Checkout."""
from faka.payments.base import Gateway


class StripeGateway(Gateway):
    name = "stripe"
