"""WeChat Pay API v3 Native."""
from faka.payments.base import Gateway


class WechatGateway(Gateway):
    name = "wechat"
