"""Errors a user can cause. Routes turn them into messages; nothing has changed when
one is raised."""

from flask_babel import lazy_gettext as _l
from flask_babel.speaklater import LazyString


class DomainError(Exception):
    message = _l("The request could not be completed.")

    def __init__(self, message: str | LazyString | None = None) -> None:
        super().__init__(message or self.message)
        if message is not None:
            self.message = message


class NotFound(DomainError):
    message = _l("Not found.")


class OutOfStock(DomainError):
    message = _l("Not enough stock for that quantity. Please choose fewer or try again later.")


class StockHeld(OutOfStock):
    """The keys are there, but unpaid orders already hold as many as they may."""

    message = _l(
        "Too many unpaid orders hold this product right now. Try a smaller quantity, or again in a few minutes."
    )


class NotForSale(DomainError):
    message = _l("This product is not on sale right now.")


class InvalidQuantity(DomainError):
    message = _l("That quantity is not allowed for this product.")


class InvalidNotify(DomainError):
    """A gateway notification failed verification (signature, order, amount, currency)."""

    message = _l("Payment notification rejected.")


class LookupFailed(DomainError):
    message = _l(
        "No order matches. Check the order number or email, and the query password (or, for an order "
        "placed without one, its email)."
    )
