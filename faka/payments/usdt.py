"""USDT-TRC20 through an epusdt-compatible service."""
from faka.payments.base import Gateway


class UsdtGateway(Gateway):
    name = "usdt"
