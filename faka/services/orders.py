"""Finding an order again without an account."""
from sqlalchemy import select

from faka.extensions import db
from faka.models import Order
from faka.services.errors import LookupFailed
from faka.services.passwords import verify_query_password

MAX_ORDERS_PER_EMAIL_LOOKUP = 50


def find_by_number(number: str, query_password: str) -> Order:
    """The order with this number and query password. An unknown number and a wrong
    password fail the same way, and take the same time."""
    order = db.session.execute(select(Order).where(Order.number == number.strip())).scalar_one_or_none()
    stored = order.query_password_hash if order is not None else None
    if not verify_query_password(stored, query_password) or order is None:
        raise LookupFailed()
    return order


def find_by_email(email: str, query_password: str) -> list[Order]:
    """This email's recent orders whose query password matches, newest first."""
    orders = db.session.execute(
        select(Order)
        .where(Order.email == email.strip().lower())
        .order_by(Order.created_at.desc())
        .limit(MAX_ORDERS_PER_EMAIL_LOOKUP)
    ).scalars().all()
    matches = [o for o in orders if o.query_password_hash and verify_query_password(o.query_password_hash, query_password)]
    if not matches:
        verify_query_password(None, query_password)
        raise LookupFailed()
    return matches
