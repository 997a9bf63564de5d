"""易支付 / EPay (MD5 or RSA)."""
from faka.payments.base import Gateway


class EpayGateway(Gateway):
    name = "epay"
