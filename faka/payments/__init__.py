"""Payments: notification handling, refunds, holds, the cashier and the gateways."""
