"""Themes in a phone's Chromium (360 px): the light/dark switch is remembered by the browser
across reloads and pages and shown before the first paint; a phone set to dark gets dark
pages, with or without JavaScript; and from an empty install, the operator's accent colour
and picture grid reach the home page, where axe-core finds no contrast problem in either mode
(docs/themes.md). The server half is tests/web/test_theme.py."""

import pyotp
import pytest
from playwright.sync_api import expect
from sqlalchemy import select
from test_accessibility import axe_violations, readable

from conftest import no_horizontal_scroll, with_totp
from faka.accounts.models import User
from faka.extensions import db
from faka.platform import theme
from faka.platform.settings import site_settings

PHONE = {"viewport": {"width": 360, "height": 800}, "is_mobile": True, "has_touch": True}
BACKGROUNDS = {"light": "rgb(245, 246, 248)", "dark": "rgb(18, 20, 23)"}
OWNER, PASSWORD = "owner@xinghe.example", "open-the-shop-2026"

# Set by an init script: <html data-theme> as it was when <body> was first parsed, i.e.
# before anything could be painted.
THEME_AT_FIRST_PAINT = """new MutationObserver((changes, observer) => {
    if (document.body) {
        window.themeAtBody = document.documentElement.getAttribute('data-theme');
        observer.disconnect();
    }
}).observe(document, {childList: true, subtree: true});"""


def background(page) -> str:
    return page.evaluate("getComputedStyle(document.documentElement).backgroundColor")


def rgb(colour: str) -> str:
    r, g, b = (int(colour[i : i + 2], 16) for i in (1, 3, 5))
    return f"rgb({r}, {g}, {b})"


def stored_choice(page):
    return page.evaluate("localStorage.getItem('faka-theme')")


def serious(page) -> list[dict]:
    return [v for v in axe_violations(page) if v["impact"] in ("serious", "critical")]


def test_the_switch_turns_a_light_phone_dark_and_the_browser_remembers_it(live_server, product, chromium):
    _app, base = live_server
    context = chromium.new_context(**PHONE, color_scheme="light")
    context.add_init_script(THEME_AT_FIRST_PAINT)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.goto(f"{base}/?lang=en")
    switch = page.get_by_role("button", name="Dark mode")
    expect(switch).to_be_visible()
    expect(switch).to_have_attribute("aria-pressed", "false")
    box = switch.bounding_box()
    assert box["width"] >= 44 and box["height"] >= 44
    assert background(page) == BACKGROUNDS["light"]

    switch.tap()
    expect(switch).to_have_attribute("aria-pressed", "true")
    assert page.evaluate("document.documentElement.dataset.theme") == "dark"
    assert background(page) == BACKGROUNDS["dark"] and stored_choice(page) == "dark"
    # The phone's bar follows the page, whatever the system says.
    assert page.evaluate("[...document.querySelectorAll('meta[name=theme-color]')].map(m => m.content)") == [
        "#1b1f24",
        "#1b1f24",
    ]
    assert no_horizontal_scroll(page)

    page.reload()
    assert page.evaluate("window.themeAtBody") == "dark"  # on <html> before the body was drawn
    assert background(page) == BACKGROUNDS["dark"]
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "true")
    # A boosted link swaps the body in: the new page's switch is shown and pressed too.
    page.get_by_role("link", name="Find my order").click()
    page.wait_for_url("**/lookup")
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "true")
    assert background(page) == BACKGROUNDS["dark"]

    # Back to light: the system's own choice, so the browser forgets it and follows the system again.
    page.get_by_role("button", name="Dark mode").tap()
    expect(page.get_by_role("button", name="Dark mode")).to_have_attribute("aria-pressed", "false")
    assert stored_choice(page) is None and page.evaluate("document.documentElement.dataset.theme") is None
    assert background(page) == BACKGROUNDS["light"]
    assert errors == []
    context.close()


def test_a_phone_set_to_dark_gets_dark_pages_with_or_without_javascript(live_server, product, chromium):
    _app, base = live_server
    context = chromium.new_context(**PHONE, color_scheme="dark")
    page = context.new_page()
    page.goto(f"{base}/p/{product.slug}?lang=en")
    assert background(page) == BACKGROUNDS["dark"]
    assert page.evaluate("document.documentElement.dataset.theme") is None  # the system's choice, nothing stored
    switch = page.get_by_role("button", name="Dark mode")
    expect(switch).to_have_attribute("aria-pressed", "true")
    # Form controls follow (color-scheme): the quantity field is dark too.
    assert page.evaluate("getComputedStyle(document.querySelector('#quantity')).colorScheme") == "dark"
    switch.tap()
    assert background(page) == BACKGROUNDS["light"] and stored_choice(page) == "light"
    page.reload()
    assert background(page) == BACKGROUNDS["light"]
    context.close()

    for scheme in ("dark", "light"):
        plain = chromium.new_context(**PHONE, color_scheme=scheme, java_script_enabled=False)
        page = plain.new_page()
        page.goto(f"{base}/?lang=en")
        assert background(page) == BACKGROUNDS[scheme]
        assert page.locator("[data-theme-toggle]").is_hidden()  # a switch that could do nothing is not shown
        plain.close()


def log_in_operator(page, base: str, email: str, password: str, secret: str) -> None:
    page.goto(f"{base}/login?lang=en")
    page.fill("#email", email)
    page.fill("#password", password)
    page.locator("main button[type=submit]").click()
    page.wait_for_url("**/login/2fa")
    page.fill("#code", pyotp.TOTP(secret).now())
    page.locator("main button[type=submit]").click()
    page.wait_for_url("**/operator/")


def cards(page) -> list[dict]:
    return page.evaluate("""[...document.querySelectorAll('ul.products .product-card')].map(card => {
        const box = card.getBoundingClientRect(), thumb = card.querySelector('.thumb').getBoundingClientRect();
        return {top: box.top, left: box.left, width: box.width, thumb: thumb.width, thumbHeight: thumb.height};
    })""")


def test_from_an_empty_install_the_operators_colour_and_grid_reach_a_phone_at_aa_in_both_modes(
    live_server, make_product, chromium
):
    app, base = live_server
    # As README's "Opening a real shop" says: no demo, an operator running a shop of their own.
    done = app.test_cli_runner().invoke(
        args=["create-operator", "--email", OWNER, "--password", PASSWORD, "--shop", "星河数码"]
    )
    assert done.exit_code == 0, done.output
    secret = with_totp(db.session.scalar(select(User).where(User.email == OWNER)))  # the QR code, scanned
    for n in range(3):
        make_product(keys=4, price=1200 + n, title=f"原神 创世结晶 {60 * (n + 1)}")

    console = chromium.new_context(**PHONE)
    desk = console.new_page()
    log_in_operator(desk, base, OWNER, PASSWORD, secret)
    desk.goto(f"{base}/operator/settings?lang=en")
    # Too light to read: refused, with a darker shade offered; nothing is saved.
    desk.fill("#accent_color", "#ffd43b")
    desk.get_by_role("button", name="Save appearance").click()
    expect(desk.locator("#appearance .alert")).to_contain_text("#ffd43b is too light to read as text on the page")
    assert site_settings()["accent_color"] == ""
    desk.fill("#accent_color", "#7048e8")
    assert desk.input_value("#accent_picker") == "#7048e8"  # theme.js keeps the picker in step
    desk.get_by_label("Picture grid: large pictures, two across on a phone").check()
    desk.get_by_role("button", name="Save appearance").click()
    desk.wait_for_url("**appearance=saved**")
    db.session.commit()
    assert (site_settings()["accent_color"], site_settings()["layout"]) == ("#7048e8", "grid")
    assert no_horizontal_scroll(desk)

    shades = theme.palette("#7048e8")
    buyer = chromium.new_context(**PHONE)
    page = buyer.new_page()
    page.goto(f"{base}/?lang=en")
    first, second, third = cards(page)
    assert first["top"] == second["top"] < third["top"]  # two across
    assert first["width"] == pytest.approx(second["width"], abs=1) and first["width"] < 170
    assert first["thumb"] == pytest.approx(first["width"], abs=2) and first["thumbHeight"] == pytest.approx(
        first["thumb"], abs=1
    )
    assert page.locator(".product-card .price").first.evaluate("e => getComputedStyle(e).color") == rgb(
        shades.light.accent
    )
    assert no_horizontal_scroll(page)
    product_page = page.locator(".product-card").first.get_attribute("href") + "?lang=en"
    for mode in ("light", "dark"):
        page.emulate_media(color_scheme=mode)
        for path in ("/?lang=en", product_page):
            page.goto(base + path)
            price = page.locator(".price").first.evaluate("e => getComputedStyle(e).color")
            assert price == rgb(getattr(shades, mode).accent)
            violations = serious(page)
            assert not violations, f"axe-core on {path}, {mode} mode, accent #7048e8:\n{readable(violations)}"

    # The list again: one card a row, the picture a small square beside the text.
    desk.goto(f"{base}/operator/settings?lang=en")
    desk.get_by_label("List: a small picture beside each product's name").check()
    desk.get_by_role("button", name="Save appearance").click()
    desk.wait_for_url("**appearance=saved**")
    page.goto(f"{base}/?lang=en")
    first, second, _third = cards(page)
    assert second["top"] > first["top"] and first["width"] > 300 and first["thumb"] == pytest.approx(88, abs=1)
    console.close()
    buyer.close()
