"""Where the buyer pays from, read off the browser's User-Agent.

A way of paying works in some places only. WeChat Pay's H5 page refuses to open inside
WeChat (JSAPI pays there), WeChat and QQ block Alipay's pages, the Alipay app cannot open
WeChat Pay, and a desktop buyer needs a QR code or a desktop page rather than a phone
page. Each gateway says what it does for each kind of client (`Gateway.method_for`); the
pay page shows the "open in your browser" guidance where a gateway can do nothing.
"""

import re

from flask_babel import lazy_gettext as _l

DESKTOP = "desktop"
PHONE = "phone"  # a phone or tablet browser (Safari, Chrome, the vendors' own browsers)
WECHAT = "wechat"  # WeChat's in-app browser, on a phone or in the PC client
QQ = "qq"  # QQ's in-app browser (not QQ Browser, which is an ordinary browser)
WEIBO = "weibo"
ALIPAY = "alipay"  # the Alipay app's in-app browser

KINDS = (DESKTOP, PHONE, WECHAT, QQ, WEIBO, ALIPAY)
APP_NAMES = {WECHAT: _l("WeChat"), QQ: _l("QQ"), WEIBO: _l("Weibo"), ALIPAY: _l("the Alipay app")}
IN_APP = frozenset({WECHAT, QQ, WEIBO, ALIPAY})
PHONES = frozenset({PHONE, WECHAT, QQ, WEIBO, ALIPAY})

# Checked in this order: WeChat's Android browser also names QQ's browser core (MQQBrowser).
_IN_APP_MARKS = (
    (WECHAT, re.compile(r"MicroMessenger", re.IGNORECASE)),
    (ALIPAY, re.compile(r"AlipayClient", re.IGNORECASE)),
    (WEIBO, re.compile(r"\bWeibo\b|__weibo__", re.IGNORECASE)),
    (QQ, re.compile(r"(?:^|\s)QQ/\d")),
)
_PHONE_MARKS = re.compile(r"Mobi|Android|iPhone|iPad|iPod|HarmonyOS|OpenHarmony|Windows Phone", re.IGNORECASE)


def client_kind(user_agent: str | None) -> str:
    """One of KINDS for a User-Agent header (DESKTOP when there is none)."""
    user_agent = (user_agent or "")[:512]
    for kind, mark in _IN_APP_MARKS:
        if mark.search(user_agent):
            return kind
    return PHONE if _PHONE_MARKS.search(user_agent) else DESKTOP


def app_name(kind: str) -> str:
    """The in-app browser's app, as the pay page names it ("WeChat")."""
    return str(APP_NAMES.get(kind, kind))
