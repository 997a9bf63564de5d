"""Alipay 当面付 and 手机网站支付 (RSA2)."""
from faka.payments.base import Gateway


class AlipayGateway(Gateway):
    name = "alipay"
