"""Fake payment providers for end-to-end tests: 易支付, Alipay, WeChat Pay (and the official
account's OAuth), Stripe and epusdt, each speaking its documented protocol over real HTTP
on another origin (127.0.0.1:<port>), with its own keys, secrets and ids. They verify what
faka sends as the provider would (refusing with the provider's own error answer), sign
what they send themselves, and record both.

Their fixtures are a pytest plugin (tests/conftest.py: `pytest_plugins`):

- `live_shop`: faka on a real port, BASE_URL set to it (the test runs in its app context).
- `fake_providers`: the fakes' server, one per test module; `providers`: the same, with the
  records of earlier tests forgotten.
- `providers.configure("alipay", mode="wap")` enables faka's gateway pointed at its fake.
- The fakes' pay pages are plain HTML; their pay button is `button.pay`.
- `providers.alipay.pay_qr(providers.alipay.qr_for(order.number))` (WeChat alike): the phone
  app scanning the QR code and paying; `providers.wechat.pay_jsapi(params)`: WeChat's JSAPI
  payment sheet (expose it to the page as WeixinJSBridge.invoke).
- `providers.<name>.received`, `.refused()`, `.notifications(order_number)` (each with
  faka's answer), `.replay(sent)`, `.hold_notifications` / `.release()`.

See tests/payments/gateways/test_fake_providers.py for whole purchases.
"""

from fakes.common import Received, Sent
from fakes.providers import FakeProviders, LiveShop, fake_providers, live_shop, providers

__all__ = ["FakeProviders", "LiveShop", "Received", "Sent", "fake_providers", "live_shop", "providers"]
