"""All models, one module per aggregate; importing this package registers every table."""

from faka.models.audit import AuditEvent
from faka.models.catalog import Category, Product, ProductReport, TierPrice
from faka.models.checkout_fields import CheckoutField, OrderAnswer
from faka.models.complaints import Complaint, ComplaintImage, ComplaintMessage
from faka.models.coupons import Coupon
from faka.models.images import ProductImage
from faka.models.imports import KeyImport
from faka.models.keys import CardKey
from faka.models.mail import OutboxEmail
from faka.models.merchants import Merchant
from faka.models.money import LedgerEntry, PayoutAccount, Refund, Withdrawal
from faka.models.orders import NotifyLog, Order, PaymentAttempt, PaymentNotice
from faka.models.passkeys import Passkey
from faka.models.reviews import Review
from faka.models.risk import BlacklistEntry, RiskEvent, RiskHit, SecurityEvent, SignIn, SpentChallenge
from faka.models.settings import GatewayConfig, Setting
from faka.models.types import utcnow
from faka.models.users import User
from faka.models.webhooks import WebhookDelivery, WebhookEndpoint

__all__ = [
    "AuditEvent",
    "BlacklistEntry",
    "CardKey",
    "Complaint",
    "ComplaintImage",
    "ComplaintMessage",
    "Category",
    "CheckoutField",
    "Coupon",
    "KeyImport",
    "GatewayConfig",
    "LedgerEntry",
    "NotifyLog",
    "Merchant",
    "Order",
    "Passkey",
    "OrderAnswer",
    "OutboxEmail",
    "PaymentAttempt",
    "PaymentNotice",
    "PayoutAccount",
    "Product",
    "ProductImage",
    "ProductReport",
    "Refund",
    "Review",
    "RiskEvent",
    "RiskHit",
    "SecurityEvent",
    "Setting",
    "SignIn",
    "SpentChallenge",
    "TierPrice",
    "User",
    "WebhookDelivery",
    "WebhookEndpoint",
    "Withdrawal",
    "utcnow",
]
