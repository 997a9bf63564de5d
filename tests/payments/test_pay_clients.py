"""Where the buyer pays from: the client kind read off real User-Agent strings, and the way
each gateway takes the payment there (a table over every gateway and every kind).

The User-Agent strings are ones those browsers and in-app browsers send (version numbers
as seen in the wild); the gateway tables follow each provider's documented limits: WeChat
and QQ block Alipay's pages, WeChat Pay's H5 page does not open inside WeChat, and only
WeChat's own browser runs JSAPI.
"""

import pytest

from faka.payments.gateways import GATEWAYS
from faka.payments.gateways.alipay import AlipayError
from faka.payments.gateways.clients import ALIPAY, DESKTOP, KINDS, PHONE, QQ, WECHAT, WEIBO, client_kind
from faka.payments.gateways.wechat import WechatPayError

USER_AGENTS = {
    "iphone-safari": (
        PHONE,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1",
    ),
    "ipad-safari": (
        PHONE,
        "Mozilla/5.0 (iPad; CPU OS 16_6 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/16.6 Mobile/15E148 Safari/604.1",
    ),
    "android-chrome": (
        PHONE,
        "Mozilla/5.0 (Linux; Android 10; K) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Mobile Safari/537.36",
    ),
    "wechat-android": (
        WECHAT,
        "Mozilla/5.0 (Linux; Android 12; M2012K11AC Build/SKQ1.220303.001; wv) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/107.0.5304.141 Mobile "
        "Safari/537.36 XWEB/5023 MMWEBSDK/20230202 MMWEBID/4853 "
        "MicroMessenger/8.0.33.2320(0x28002151) WeChat/arm64 Weixin NetType/WIFI "
        "Language/zh_CN ABI/arm64",
    ),
    # The older X5 core also names QQ's browser core (MQQBrowser): still WeChat.
    "wechat-android-x5": (
        WECHAT,
        "Mozilla/5.0 (Linux; Android 9; MIX 3 Build/PKQ1.180729.001; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.126 MQQBrowser/6.2 TBS/044813 "
        "Mobile Safari/537.36 MMWEBID/8168 MicroMessenger/7.0.5.1440(0x27000534) "
        "Process/tools NetType/WIFI Language/zh_CN",
    ),
    "wechat-ios": (
        WECHAT,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 16_3 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.34(0x18002231) NetType/WIFI "
        "Language/zh_CN",
    ),
    "wechat-pc": (
        WECHAT,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/132.0.0.0 Safari/537.36 NetType/WIFI MicroMessenger/7.0.20.1781(0x6700143B) "
        "WindowsWechat(0x63090a13) UnifiedPCWindowsWechat(0xf2541022) XWEB/16467 Flue",
    ),
    "qq-android": (
        QQ,
        "Mozilla/5.0 (Linux; Android 10; MI 8 Build/QKQ1.190910.002; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/109.0.5414.86 MQQBrowser/6.2 TBS/046715 Mobile "
        "Safari/537.36 V1_AND_SQ_8.9.78_4548_YYB_D QQ/8.9.78.12275 NetType/WIFI WebP/0.3.0 "
        "AppId/537175315 Pixel/1080 StatusBarHeight/82 SimpleUISwitch/0 QQTheme/2099",
    ),
    "qq-ios": (
        QQ,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 12_0 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Mobile/16A366 QQ/7.7.8.421 V1_IPH_SQ_7.7.8_1_APP_A Pixel/750 Core/UIWebView "
        "Device/Apple(iPhone 6s) NetType/WIFI QBWebViewType/1",
    ),
    # QQ Browser is an ordinary browser, not QQ's in-app one.
    "qq-browser-android": (
        PHONE,
        "Mozilla/5.0 (Linux; U; Android 10; zh-cn; MI 9 Build/QKQ1.190825.002) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/66.0.3359.126 "
        "MQQBrowser/10.9 Mobile Safari/537.36",
    ),
    "qq-browser-ios": (
        PHONE,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 15_1 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Version/15.1 MQQBrowser/12.1.5 Mobile/15E148 Safari/604.1 "
        "QBWebViewUA/2 QBWebViewType/1 WKType/1",
    ),
    "qq-browser-windows": (
        DESKTOP,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/94.0.4606.71 Safari/537.36 Core/1.94.202.400 QQBrowser/11.9.5355.400",
    ),
    "weibo-ios": (
        WEIBO,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 15_0_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/15E148 Weibo (iPhone12,1__weibo__11.10.0__iphone__os15.0.2)",
    ),
    "weibo-android": (
        WEIBO,
        "Mozilla/5.0 (Linux; Android 10; LIO-AN00 Build/HUAWEILIO-AN00; wv) AppleWebKit/537.36 "
        "(KHTML, like Gecko) Version/4.0 Chrome/83.0.4103.106 Mobile Safari/537.36 "
        "Weibo (HUAWEI-LIO-AN00__weibo__11.1.3__android__android10)",
    ),
    "alipay-android": (
        ALIPAY,
        "Mozilla/5.0 (Linux; U; Android 11; zh-CN; MI 8 Lite Build/RKQ1.200826.002) "
        "AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 Chrome/69.0.3497.100 UWS/3.22.2.66 "
        "Mobile Safari/537.36 UCBS/3.22.2.66_230817192043 ChannelId(8) NebulaSDK/1.8.100112 "
        "Nebula AlipayDefined(nt:WIFI,ws:393|0|2.75) AliApp(AP/10.5.26.8000) "
        "AlipayClient/10.5.26.8000 Language/zh-Hans useStatusBar/true isConcaveScreen/true "
        "Region/CNAriver/1.0.0 DTN/2.0",
    ),
    "alipay-ios": (
        ALIPAY,
        "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6_2 like Mac OS X) AppleWebKit/605.1.15 "
        "(KHTML, like Gecko) Mobile/22G100 ChannelId(17) Ariver/1.1.0 AliApp(AP/10.8.30.6000) "
        "Nebula WK RVKType(0) AlipayDefined(nt:WIFI,ws:390|780|3.0,ac:ss) "
        "AlipayClient/10.8.30.6000 Language/zh-Hans Region/CN NebulaX/1.0.0 XRiver/10.2.58.1",
    ),
    "chrome-windows": (
        DESKTOP,
        "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) "
        "Chrome/124.0.0.0 Safari/537.36",
    ),
    "firefox-linux": (DESKTOP, "Mozilla/5.0 (X11; Linux x86_64; rv:125.0) Gecko/20100101 Firefox/125.0"),
    "safari-mac": (
        DESKTOP,
        "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15 (KHTML, like Gecko) "
        "Version/17.4 Safari/605.1.15",
    ),
    "empty": (DESKTOP, ""),
    "none": (DESKTOP, None),
}


@pytest.mark.parametrize("expected, user_agent", USER_AGENTS.values(), ids=USER_AGENTS.keys())
def test_client_kind_from_real_user_agents(expected, user_agent):
    assert client_kind(user_agent) == expected


# -- what each gateway does where -------------------------------------------------------------


def _everywhere(method):
    return dict.fromkeys(KINDS, method)


def _browsers(desktop, phone, alipay_app=None, wechat=None):
    """Desktop and phone browsers, the Alipay app, WeChat; QQ and Weibo get nothing."""
    return {DESKTOP: desktop, PHONE: phone, ALIPAY: alipay_app, WECHAT: wechat, QQ: None, WEIBO: None}


METHOD_TABLE = [
    ("sandbox", {}, _everywhere("form")),
    ("stripe", {}, _everywhere("redirect")),
    ("usdt", {}, _everywhere("redirect")),
    ("epay", {}, _browsers("redirect", "redirect")),
    ("epay", {"pay_type": "alipay"}, _browsers("redirect", "redirect", alipay_app="redirect")),
    ("epay", {"pay_type": "wxpay"}, _browsers("redirect", "redirect")),
    ("alipay", {}, _browsers("precreate", "precreate", alipay_app="precreate")),
    ("alipay", {"mode": "precreate"}, _browsers("precreate", "precreate", alipay_app="precreate")),
    ("alipay", {"mode": "wap"}, _browsers("wap", "wap", alipay_app="wap")),
    ("alipay", {"mode": "page"}, _browsers("page", "page", alipay_app="page")),
    ("alipay", {"mode": "precreate,wap,page"}, _browsers("page", "wap", alipay_app="wap")),
    ("alipay", {"mode": " wap , precreate "}, _browsers("precreate", "wap", alipay_app="wap")),
    ("alipay", {"mode": "page,precreate"}, _browsers("page", "precreate", alipay_app="precreate")),
    ("alipay", {"mode": "wap,page"}, _browsers("page", "wap", alipay_app="wap")),
    ("wechat", {}, _browsers("native", "native")),
    ("wechat", {"methods": "native"}, _browsers("native", "native")),
    ("wechat", {"methods": "native,h5,jsapi"}, _browsers("native", "h5", wechat="jsapi")),
    ("wechat", {"methods": "native,jsapi"}, _browsers("native", "native", wechat="jsapi")),
    ("wechat", {"methods": "native,h5"}, _browsers("native", "h5")),
    ("wechat", {"methods": "h5,jsapi"}, _browsers(None, "h5", wechat="jsapi")),
]


def test_the_method_table_covers_every_gateway_and_every_client():
    assert {name for name, _, _ in METHOD_TABLE} == set(GATEWAYS)
    assert all(set(expected) == set(KINDS) for _, _, expected in METHOD_TABLE)


def _setting_id(settings: dict) -> str:
    return ",".join(f"{k}={v.replace(' ', '')}" for k, v in settings.items()) or "defaults"


@pytest.mark.parametrize(
    "gateway, settings, client, method",
    [
        pytest.param(gateway, settings, client, expected[client], id=f"{gateway}-{_setting_id(settings)}-{client}")
        for gateway, settings, expected in METHOD_TABLE
        for client in KINDS
    ],
)
def test_each_gateway_chooses_its_method_by_client(gateway, settings, client, method):
    assert GATEWAYS[gateway](settings).method_for(client) == method


@pytest.mark.parametrize(
    "gateway, settings, error",
    [
        ("alipay", {"mode": "qr"}, AlipayError),
        ("alipay", {"mode": "page,app"}, AlipayError),
        ("wechat", {"methods": "native,app"}, WechatPayError),
        ("wechat", {"methods": "mweb"}, WechatPayError),
    ],
    ids=["alipay-unknown", "alipay-one-unknown", "wechat-one-unknown", "wechat-unknown"],
)
def test_an_unknown_method_name_is_a_configuration_error(gateway, settings, error):
    for client in KINDS:
        with pytest.raises(error):
            GATEWAYS[gateway](settings).method_for(client)
