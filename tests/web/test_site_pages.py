"""The operator's words reach buyers: the terms, refund and privacy policies as pages of
their own, the contact in every page's footer, on error pages and on a refused checkout,
and the consent to the terms above the Buy button."""

import re

import pyotp
import pytest
from sqlalchemy import select

from conftest import count, csrf_from, login, no_horizontal_scroll
from faka.accounts import users
from faka.core.crypto import vault
from faka.extensions import db
from faka.orders.models import Order
from faka.platform.models import AuditEvent
from faka.platform.settings import set_setting, site_settings
from faka.risk import blacklist

CONTACT = {
    "contact_qq": "12345678",
    "contact_wechat": "faka_shop",
    "contact_telegram": "@fakashop",
    "contact_email": "help@shop.example",
    "contact_note": "每天 9:00–22:00 在线",
}


@pytest.fixture
def ops(app):
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    client = app.test_client()
    login(client, operator)
    return client


def save_settings(ops, **changes):
    """Post the settings form as the operator would: every field as it is, with `changes`."""
    page = ops.get("/operator/settings?lang=en")
    assert page.status_code == 200
    values = {k: v for k, v in site_settings().items() if k not in ("open_registration", "require_terms_consent")}
    db.session.rollback()
    values.update(open_registration="1", csrf_token=csrf_from(page.text))
    values.update(changes)
    return ops.post("/operator/settings?lang=en", data=values)


def with_contact(**values):
    for key, value in {**CONTACT, **values}.items():
        set_setting(key, value)


# -- the policy pages ---------------------------------------------------------------------


def test_the_terms_page_shows_the_operators_markdown_sanitised(ops, client):
    terms = (
        "# 服务条款\n\n虚拟商品**一经发货不退不换**。\n\n<script>alert('x')</script>\n\n"
        "[click](javascript:alert(1)) and <img src=x onerror=alert(2)>"
    )
    assert save_settings(ops, terms=terms).status_code == 303
    page = client.get("/terms?lang=en")
    assert page.status_code == 200
    html = page.text
    assert "<strong>一经发货不退不换</strong>" in html and "<h1>服务条款</h1>" in html
    # Raw HTML is shown as text at most, never as a tag; the javascript: link is not a link.
    assert "<script>alert" not in html and "&lt;script&gt;alert" in html
    assert "<img src=x" not in html and 'href="javascript:' not in html
    assert re.search(r"<title>Terms of service · ", html)


@pytest.mark.parametrize(
    "path, key, title",
    [
        ("/terms", "terms", "Terms of service"),
        ("/refund-policy", "refund_policy", "Refund policy"),
        ("/privacy", "privacy_policy", "Privacy policy"),
    ],
)
def test_each_policy_page_shows_its_own_text_or_says_it_is_not_published(client, path, key, title):
    empty = client.get(f"{path}?lang=en")
    assert empty.status_code == 200 and f"<h1>{title}</h1>" in empty.text and "Not published yet." in empty.text
    set_setting(key, f"The {key} text.")
    page = client.get(f"{path}?lang=en").text
    assert f"The {key} text." in page and "Not published yet." not in page


def test_policy_text_limits_are_kept(ops):
    assert save_settings(ops, privacy_policy="x" * 50001).status_code == 400
    assert site_settings()["privacy_policy"] == ""


# -- the footer -----------------------------------------------------------------------------


def footer(html: str) -> str:
    return html[html.index('<footer class="footer">') :]


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_every_buyer_page_footer_links_the_policies_and_shows_the_contact(client, product, place, lang):
    with_contact()
    order = place(product)
    for url in ("/", f"/p/{product.slug}", "/lookup", f"/order/{order.token}", "/terms", "/no-such-page"):
        html = footer(client.get(f"{url}?lang={lang}").text)
        for href in ('href="/terms"', 'href="/refund-policy"', 'href="/privacy"'):
            assert href in html, (url, href)
        assert 'href="mailto:help@shop.example"' in html
        assert 'href="https://t.me/fakashop"' in html and "@fakashop" in html
        assert re.search(r'id="footer-contact-qq">12345678<', html)
        assert 'data-copy="footer-contact-qq"' in html and 'data-copy="footer-contact-wechat"' in html
        assert re.search(r'id="footer-contact-wechat">faka_shop<', html)
        assert "每天 9:00–22:00 在线" in html
    page = client.get(f"/?lang={lang}").text
    assert ('lang="en"' if lang == "en" else 'lang="zh-CN"') in page
    if lang == "en":
        assert "Terms of service" in footer(page) and "Contact us" in footer(page) and "WeChat" in footer(page)


def test_the_footer_shows_only_what_is_set(client):
    set_setting("contact_email", "help@shop.example")
    html = footer(client.get("/?lang=en").text)
    assert "mailto:help@shop.example" in html
    assert "QQ" not in html and "t.me" not in html and "data-copy" not in html
    set_setting("contact_email", "")
    html = footer(client.get("/?lang=en").text)
    assert "Contact us" not in html and 'href="/terms"' in html


def test_the_old_single_contact_shows_until_the_new_ones_are_set(ops, client):
    set_setting("contact", "QQ群 123456 / 邮件 old@shop.example")
    assert "QQ群 123456 / 邮件 old@shop.example" in footer(client.get("/").text)
    settings_page = ops.get("/operator/settings?lang=en").text  # offered in the note field, to keep or change
    shown = re.search(r'id="contact_note" name="contact_note" value="([^"]*)"', settings_page).group(1)
    assert shown == "QQ群 123456 / 邮件 old@shop.example"
    assert save_settings(ops, contact_qq="7654321", contact_note=shown).status_code == 303
    saved = site_settings()
    assert saved["contact"] == "" and saved["contact_note"] == "QQ群 123456 / 邮件 old@shop.example"
    html = footer(client.get("/").text)
    assert "7654321" in html and html.count("QQ群 123456") == 1


# -- the contact settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    "key, value, message",
    [
        ("contact_qq", "12a45", "A QQ number is 5 to 12 digits."),
        ("contact_qq", "0123", "A QQ number is 5 to 12 digits."),
        ("contact_wechat", "ab", "A WeChat ID is 6 to 20 letters"),
        ("contact_wechat", "has space here", "A WeChat ID is 6 to 20 letters"),
        ("contact_telegram", "https://example.com/fakashop", "Enter a Telegram username"),
        ("contact_telegram", "@abc", "Enter a Telegram username"),
        ("contact_email", "not-an-address", "Enter a valid email address."),
        ("contact_note", "x" * 201, "At most 200 characters."),
    ],
)
def test_a_bad_contact_is_refused_with_a_message_and_nothing_changes(ops, key, value, message):
    before = site_settings()
    response = save_settings(ops, site_name="Changed name", **{key: value})
    assert response.status_code == 400
    assert message in response.text and "Nothing was saved" in response.text
    assert site_settings() == before
    assert count(AuditEvent, AuditEvent.action == "site.settings") == 0


def test_a_bad_contact_is_explained_in_chinese_too(ops):
    page = ops.get("/operator/settings")
    values = {k: v for k, v in site_settings().items() if k not in ("open_registration", "require_terms_consent")}
    db.session.rollback()
    response = ops.post(
        "/operator/settings?lang=zh_CN", data={**values, "csrf_token": csrf_from(page.text), "contact_qq": "qq-number"}
    )
    assert response.status_code == 400 and 'lang="zh-CN"' in response.text
    assert site_settings()["contact_qq"] == ""


@pytest.mark.parametrize(
    "telegram, shown, href",
    [
        ("@fakashop", "@fakashop", "https://t.me/fakashop"),
        ("fakashop", "@fakashop", "https://t.me/fakashop"),
        ("https://t.me/fakashop", "@fakashop", "https://t.me/fakashop"),
        ("t.me/+AbCdEf12345", "t.me/+AbCdEf12345", "https://t.me/+AbCdEf12345"),
    ],
)
def test_good_contacts_are_saved_audited_and_shown(ops, client, telegram, shown, href):
    response = save_settings(
        ops,
        contact_qq="12345678",
        contact_wechat="+8613800138000",
        contact_telegram=telegram,
        contact_email="help@shop.example",
    )
    assert response.status_code == 303
    html = footer(client.get("/?lang=en").text)
    assert f'href="{href}"' in html and f">{shown}</a>" in html and "+8613800138000" in html
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == "site.settings")).scalar_one()
    assert "12345678" in event.after and "contact_qq" in event.before


# -- error pages and a refused checkout ------------------------------------------------------


def main_part(html: str) -> str:
    return html[html.index("<main>") : html.index("</main>")]


@pytest.mark.parametrize("lang", ["en", "zh_CN"])
def test_error_pages_name_the_operators_contact(client, lang):
    with_contact()
    page = client.get(f"/no-such-page?lang={lang}")
    assert page.status_code == 404
    body = main_part(page.text)
    assert "mailto:help@shop.example" in body and 'id="error-contact-qq">12345678<' in body
    if lang == "en":
        assert "Need help? Contact us:" in body


def test_an_error_page_without_a_contact_set_offers_none(client):
    body = main_part(client.get("/no-such-page?lang=en").text)
    assert "Need help" not in body and "Back to the shop" in body


def buy(client, product, lang="en", **fields):
    page = client.get(f"/p/{product.slug}?lang={lang}")
    return client.post(
        f"/p/{product.slug}/buy?lang={lang}",
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": 1,
            "email": "buyer@example.com",
            "query_password": "secret-1",
            **fields,
        },
    )


def test_a_checkout_the_risk_engine_blocks_names_the_contact(client, product):
    with_contact()
    blacklist.add("email", "fraud@example.com", "chargebacks", actor_id=None)
    refused = buy(client, product, email="fraud@example.com")
    assert refused.status_code == 403
    body = main_part(refused.text)
    assert "This request cannot be accepted. If you think this is a mistake, contact us:" in body
    assert "mailto:help@shop.example" in body and 'id="refusal-contact-qq">12345678<' in body
    assert "please contact the site" not in body
    assert count(Order) == 0


def test_a_block_without_a_contact_set_keeps_the_plain_message(client, product):
    blacklist.add("email", "fraud@example.com", "chargebacks", actor_id=None)
    refused = buy(client, product, email="fraud@example.com")
    assert refused.status_code == 403
    assert "This request cannot be accepted. If you think this is a mistake, please contact the site." in refused.text


def test_other_checkout_errors_do_not_show_the_contact(client, make_product):
    with_contact()
    product = make_product(keys=1)
    response = buy(client, product, quantity=5)
    assert response.status_code in (400, 409)
    assert "refusal-contact" not in response.text


# -- consent to the terms --------------------------------------------------------------------


def test_the_product_page_says_ordering_means_agreeing_to_the_terms(client, product):
    html = client.get(f"/p/{product.slug}?lang=en").text
    form = html[html.index('<form class="buy"') : html.index("</form>", html.index('<form class="buy"'))]
    line = form.index("By ordering you agree to the")
    assert line < form.index('<button type="submit" class="primary"')
    assert re.search(r'By ordering you agree to the <a href="/terms"[^>]*>terms of service</a>', form)
    assert 'name="agree_terms"' not in form
    assert buy(client, product).status_code == 303  # no tick needed
    assert count(Order) == 1


def test_a_required_tick_refuses_the_order_until_the_buyer_gives_it(ops, client, product):
    assert save_settings(ops, require_terms_consent="1").status_code == 303
    assert site_settings()["require_terms_consent"] == "1"
    page = client.get(f"/p/{product.slug}?lang=en").text
    assert 'type="checkbox"' in page and 'name="agree_terms"' in page
    assert "I have read and agree to the" in page and "By ordering you agree" not in page

    refused = buy(client, product)
    assert refused.status_code == 400
    assert "Tick the box to agree to the terms of service before ordering." in refused.text
    assert count(Order) == 0

    placed = buy(client, product, agree_terms="y")
    assert placed.status_code == 303 and "/pay/" in placed.headers["Location"]
    assert count(Order) == 1


def test_the_tick_is_off_by_default_and_unticking_the_setting_turns_it_off(ops, client, product):
    assert site_settings()["require_terms_consent"] == "0"
    assert save_settings(ops, require_terms_consent="1").status_code == 303
    assert save_settings(ops).status_code == 303  # the box left unticked
    assert site_settings()["require_terms_consent"] == "0"
    assert buy(client, product).status_code == 303


# -- on a phone ----------------------------------------------------------------------------


def test_footer_and_a_policy_page_fit_a_phone(live_server, phone):
    app, base = live_server
    with_contact(
        contact_telegram="https://t.me/a_rather_long_channel_name",
        contact_email="customer-service-desk@a-long-shop-domain.example",
    )
    set_setting(
        "terms",
        "# 服务条款\n\n"
        + "虚拟商品一经发货，除卡密无效外不退不换。" * 8
        + "\n\n| 项目 | 说明 |\n|---|---|\n| 退款 | 卡密无效时全额退款 |",
    )
    phone.goto(f"{base}/?lang=zh_CN")
    phone.locator(".footer").scroll_into_view_if_needed()
    phone.screenshot(path="/tmp/policies-footer.png", full_page=True)
    assert no_horizontal_scroll(phone)
    assert phone.locator(".footer a[href='/terms']").is_visible()
    phone.locator(".footer a[href='/terms']").click()
    phone.wait_for_url(f"{base}/terms")
    assert phone.locator(".description h1").inner_text() == "服务条款"
    phone.screenshot(path="/tmp/policies-terms.png", full_page=True)
    assert no_horizontal_scroll(phone)
    assert phone.console_errors == []
