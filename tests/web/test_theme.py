"""Themes: the custom properties of faka.css and their dark twin, the operator's accent colour
(checked for contrast, derived for dark mode, sent as a cached stylesheet), the layout of the
product cards, the site icon and the web app manifest (docs/themes.md). The browser half, with
the switch and axe in both modes, is tests/slow/test_theme_browser.py."""

import io
import json
import re
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from sqlalchemy import select

from conftest import count, csrf_from, login, with_totp
from faka.accounts import users
from faka.accounts.models import User
from faka.core.storage import PRIVATE, storage
from faka.core.uploads import stored_image
from faka.extensions import db
from faka.platform import theme
from faka.platform.models import AuditEvent
from faka.platform.settings import site_settings
from faka.web.shop.brand import short_name

CSS = (Path(__file__).resolve().parents[2] / "faka" / "static" / "css" / "faka.css").read_text(encoding="utf-8")
ICON_URL = re.compile(r'<link rel="icon" href="([^"]+)" type="([^"]+)">')
TOUCH_URL = re.compile(r'<link rel="apple-touch-icon" href="([^"]+)">')
THEME_URL = re.compile(r'<link rel="stylesheet" href="(/site/theme\.css\?v=[0-9a-f]+)">')


@pytest.fixture
def ops(app):
    """The operator's console, in English."""
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(operator)
    console = app.test_client()
    login(console, operator)
    console.get("/operator/settings?lang=en")
    return console


def post(console, url: str, data: dict, **kwargs):
    page = console.get("/operator/settings")
    return console.post(url, data={"csrf_token": csrf_from(page.text), **data}, **kwargs)


def appearance(console, **data):
    return post(console, "/operator/settings/appearance", {"layout": "list", **data})


def upload_icon(console, data: bytes, name: str = "icon.png"):
    return post(
        console, "/operator/settings/favicon", {"favicon": (io.BytesIO(data), name)}, content_type="multipart/form-data"
    )


def picture(width: int, height: int, mode: str = "RGBA", kind: str = "PNG") -> bytes:
    image = Image.new(mode, (width, height), (0, 0, 0, 0) if mode == "RGBA" else (30, 90, 200))
    image.paste(
        (30, 90, 200, 255) if mode == "RGBA" else (200, 60, 20),
        (width // 4, height // 4, width * 3 // 4, height * 3 // 4),
    )
    out = io.BytesIO()
    image.save(out, kind)
    return out.getvalue()


def audits(action: str) -> list[AuditEvent]:
    return list(db.session.scalars(select(AuditEvent).where(AuditEvent.action == action)))


def text(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.text)).replace("&#39;", "'")


# -- faka.css: the variables, both themes ----------------------------------------------------


def declarations(block: str) -> dict[str, str]:
    return dict(re.findall(r"(--[\w-]+):\s*([^;]+);", block))


def root_blocks() -> tuple[dict, dict, dict]:
    """faka.css's light :root, and the dark theme of its media query and of data-theme=dark."""
    light = re.search(r"^:root \{(.*?)^\}", CSS, re.S | re.M).group(1)
    media = re.search(
        r"@media \(prefers-color-scheme: dark\) \{\s*:root:not\(\[data-theme=light\]\) \{(.*?)\}", CSS, re.S
    )
    forced = re.search(r"^:root\[data-theme=dark\] \{(.*?)^\}", CSS, re.S | re.M).group(1)
    return declarations(light), declarations(media.group(1)), declarations(forced)


def test_colours_come_only_from_custom_properties_and_both_dark_blocks_agree():
    light, dark, forced = root_blocks()
    assert dark == forced
    assert set(dark) <= set(light)  # dark mode redefines colours only, never adds a name light lacks
    assert "color-scheme: dark" in CSS and "color-scheme: light" in CSS
    # Outside the variables, no literal colour, radius or rem of spacing is left (other helpers' blocks included).
    rules = re.sub(r"--[\w-]+:\s*[^;]+;", "", CSS)
    rules = re.sub(r"/\*.*?\*/", "", rules, flags=re.S)
    assert re.findall(r"#[0-9a-fA-F]{3,8}\b|rgba?\(|hsla?\(", rules) == []
    assert re.findall(r"border-radius:[^;}]*\d(?:px|%)", rules) == []
    assert re.findall(r"(?<![-\w])(?:padding|margin|gap)[-a-z]*:[^;}]*\d(?:rem|px)", rules) == []
    used = set(re.findall(r"var\((--[\w-]+)", CSS)) - {name for name in re.findall(r"var\((--altcha-[\w-]+)", CSS)}
    assert used <= set(light), used - set(light)


def test_the_default_accent_and_surfaces_are_what_theme_py_computes_with():
    light, dark, _forced = root_blocks()
    assert light["--accent"] == theme.DEFAULT_ACCENT
    assert (light["--subtle"], light["--bg"], light["--card"].replace("#fff", "#ffffff")) == theme.LIGHT_SURFACES
    assert (dark["--bg"], dark["--card"], dark["--subtle"]) == theme.DARK_SURFACES
    assert dark["--card"] == theme.BAR_COLOURS["dark"] and dark["--bg"] == theme.PAGE_COLOURS["dark"]
    shades = theme.palette(theme.DEFAULT_ACCENT).dark.properties()
    assert {name: dark[name] for name in shades} == shades


# The text colours faka.css puts on each surface, by variable: every pair must read at AA.
TEXT_ON = {
    "--bg": ("--fg", "--muted", "--accent", "--ok", "--bad"),
    "--card": ("--fg", "--muted", "--accent", "--ok", "--bad", "--info-fg"),
    "--subtle": ("--fg", "--muted", "--accent"),
    "--field": ("--fg",),
    "--button": ("--fg",),
    "--sunken": ("--fg", "--muted"),
    "--accent": ("--accent-fg",),
    "--accent-tint-2": ("--accent-strong",),
    "--accent-tint": ("--accent-strong", "--fg", "--accent"),  # a chosen option's price
    "--ok-bg": ("--ok", "--fg"),
    "--bad-bg": ("--bad", "--fg"),
    "--warn-bg": ("--warn-fg", "--fg"),
    "--info-bg": ("--info-fg",),
    "--mine-bg": ("--fg",),
    "--highlight-bg": ("--fg", "--accent"),
    "--toast-bg": ("--toast-fg",),
    "--ok": ("--on-ok",),
}


@pytest.mark.parametrize("mode", ["light", "dark"])
def test_every_text_colour_reads_at_aa_on_its_surface(mode):
    light, dark, _forced = root_blocks()
    values = {**light, **dark} if mode == "dark" else light
    hex6 = {name: theme.parse_hex(value) for name, value in values.items() if theme.parse_hex(value)}
    poor = [
        (fg, bg, round(theme.contrast(hex6[fg], hex6[bg]), 2))
        for bg, fgs in TEXT_ON.items()
        for fg in fgs
        if theme.contrast(hex6[fg], hex6[bg]) < theme.AA_TEXT
    ]
    assert poor == []


# -- the accent colour ------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 0xFFFFFF))
def test_any_accent_the_form_takes_reads_at_aa_in_both_modes(number):
    colour = f"#{number:06x}"
    if theme.accent_problem(colour) is not None:
        # Refused: the darker shade it names passes.
        darker = theme.shade_reaching(colour, theme.LIGHT_SURFACES, theme.AA_TEXT, lighter=False)
        assert theme.accent_problem(darker) is None
        return
    shades = theme.palette(colour)
    for mode, surfaces in (("light", theme.LIGHT_SURFACES), ("dark", theme.DARK_SURFACES)):
        s = getattr(shades, mode)
        assert all(theme.contrast(s.accent, surface) >= theme.AA_TEXT for surface in surfaces), (mode, s)
        assert theme.contrast(s.accent_fg, s.accent) >= theme.AA_TEXT
        assert theme.contrast(s.accent, s.accent_tint) >= theme.AA_TEXT
        assert min(theme.contrast(s.accent_strong, tint) for tint in (s.accent_tint, s.accent_tint_2)) >= theme.AA_TEXT


def test_a_fresh_shop_uses_fakas_own_colours_and_links_no_theme_stylesheet(client):
    home = client.get("/?lang=en")
    assert not THEME_URL.search(home.text) and '<body class="layout-list"' in home.text
    head = home.text[: home.text.index("</head>")]
    # The switch's script comes before the stylesheets (no flash of the other theme); both bar colours are named.
    assert head.index("/static/js/theme.js") < head.index("/static/css/faka.css")
    assert '<script src="/static/js/theme.js"></script>' in head  # not deferred
    assert re.findall(r'<meta name="theme-color" media="\(prefers-color-scheme: (\w+)\)" content="(#\w+)"', head) == [
        ("light", "#ffffff"),
        ("dark", "#1b1f24"),
    ]
    assert '<meta name="color-scheme" content="light dark">' in head
    # Without JavaScript the switch stays hidden; its name says what it does.
    switch = re.search(r"<button[^>]*data-theme-toggle[^>]*>.*?</button>", home.text, re.S).group(0)
    assert " hidden" in switch and 'aria-pressed="false"' in switch and "Dark mode" in switch


def test_the_operator_sets_a_colour_and_a_grid_every_page_shows_them(ops, client):
    response = appearance(ops, accent_color="#1971C2", layout="grid")
    assert response.status_code == 303 and response.headers["Location"].endswith("appearance=saved#appearance")
    assert (site_settings()["accent_color"], site_settings()["layout"]) == ("#1971c2", "grid")
    [event] = audits("site.theme")
    assert event.actor_id == db.session.scalar(select(User.id).where(User.email == "ops@example.com"))
    assert json.loads(event.before) == {"accent_color": "", "layout": "list"}
    assert json.loads(event.after) == {"accent_color": "#1971c2", "layout": "grid"}
    assert "Saved." in text(ops.get(response.headers["Location"]))

    for path in ("/", "/lookup", "/login"):
        page = client.get(path).text
        assert '<body class="layout-grid"' in page
        url = THEME_URL.search(page).group(1)
    stylesheet = client.get(url)
    assert stylesheet.status_code == 200 and stylesheet.mimetype == "text/css"
    assert stylesheet.headers["Cache-Control"] == "public, max-age=31536000, immutable"
    assert "Set-Cookie" not in stylesheet.headers and "Vary" not in stylesheet.headers
    css = stylesheet.text
    assert ":root { --accent: #1971c2; --accent-fg: #ffffff;" in css
    dark = theme.palette("#1971c2").dark
    assert f":root[data-theme=dark] {{ --accent: {dark.accent};" in css
    assert f"@media (prefers-color-scheme: dark) {{ :root:not([data-theme=light]) {{ --accent: {dark.accent};" in css
    assert min(theme.contrast(dark.accent, surface) for surface in theme.DARK_SURFACES) >= 4.5
    # An old URL (another colour's) still gets the current colours, but only briefly.
    stale = client.get("/site/theme.css?v=0123456789abcdef")
    assert stale.text == css and stale.headers["Cache-Control"] == "public, max-age=60"

    # Saving the same again changes nothing and records nothing.
    assert appearance(ops, accent_color="#1971c2", layout="grid").status_code == 303
    assert len(audits("site.theme")) == 1
    # "Use faka's own colour": no stylesheet any more.
    assert appearance(ops, accent_color="#1971c2", layout="grid", accent_default="1").status_code == 303
    assert site_settings()["accent_color"] == "" and not THEME_URL.search(client.get("/").text)


def test_without_javascript_the_colour_picker_counts_when_the_text_was_left_alone(ops):
    assert appearance(ops, accent_color="#1971c2").status_code == 303
    # The text still shows the saved colour; the picker was moved: the picker's colour is taken.
    assert appearance(ops, accent_color="#1971c2", accent_picker="#7048E8").status_code == 303
    assert site_settings()["accent_color"] == "#7048e8"
    # Both changed (theme.js keeps them equal, or the operator typed): the text wins.
    assert appearance(ops, accent_color="#2f9e44", accent_picker="#7048e8").status_code == 400
    assert appearance(ops, accent_color="#1864ab", accent_picker="#000000").status_code == 303
    assert site_settings()["accent_color"] == "#1864ab"


@pytest.mark.parametrize(
    "data, field, message",
    [
        (
            {"accent_color": "#ffd43b"},
            "accent_color",
            "#ffd43b is too light to read as text on the page: its contrast is 1.28:1",
        ),
        ({"accent_color": "#FFFFFF"}, "accent_color", "and links and prices need at least 4.5:1"),
        ({"accent_color": "red"}, "accent_color", "Enter a colour as # and six hex digits, e.g. #c2410c."),
        ({"accent_color": "#12345g"}, "accent_color", "Enter a colour as # and six hex digits"),
        ({"accent_color": "#1971c2; } body { display: none"}, "accent_color", "Enter a colour as # and six hex digits"),
        ({"accent_color": "#1971c2", "layout": "carousel"}, "layout", "Choose a list or a picture grid."),
        ({"accent_color": "#1971c2", "layout": ""}, "layout", "Choose a list or a picture grid."),
        ({"accent_color": "x" * 33}, "accent_color", "Field cannot be longer than 32 characters."),
    ],
)
def test_a_bad_colour_or_layout_changes_nothing_and_says_why(ops, client, data, field, message):
    before = site_settings()
    response = post(ops, "/operator/settings/appearance", {"layout": "list", **data})
    assert response.status_code == 400 and message in text(response)
    assert site_settings() == before and audits("site.theme") == []
    assert re.search(r'class="field[\w ]* invalid"', response.text)
    assert not THEME_URL.search(client.get("/").text)


def test_a_refused_colour_names_a_darker_shade_that_is_taken(ops):
    response = appearance(ops, accent_color="#0ca678")
    darker = re.search(r"The same colour darker, (#[0-9a-f]{6}), passes\.", text(response)).group(1)
    assert appearance(ops, accent_color=darker).status_code == 303
    assert site_settings()["accent_color"] == darker


# -- the site icon and the manifest --------------------------------------------------------------


def test_the_manifest_names_the_shop_and_faka_icons_until_one_is_uploaded(ops, client):
    post(
        ops, "/operator/settings", {**{k: v for k, v in site_settings().items()}, "site_name": "星河数码科技官方旗舰店"}
    )
    manifest = client.get("/site/manifest.webmanifest")
    assert manifest.status_code == 200 and manifest.mimetype == "application/manifest+json"
    assert "Set-Cookie" not in manifest.headers and manifest.headers["Cache-Control"] == "public, max-age=300"
    body = manifest.json
    assert body["name"] == "星河数码科技官方旗舰店" and body["short_name"] == "星河数码科技"
    assert (body["start_url"], body["display"]) == ("/", "standalone")
    assert body["theme_color"] == "#ffffff" and body["background_color"] == "#f5f6f8"
    assert [(i["sizes"], i["type"]) for i in body["icons"]] == [("192x192", "image/png"), ("512x512", "image/png")]
    for icon in body["icons"]:
        served = client.get(icon["src"])
        assert served.status_code == 200
        assert Image.open(io.BytesIO(served.data)).size == tuple(int(n) for n in icon["sizes"].split("x"))
    home = client.get("/").text
    assert '<link rel="manifest" href="/site/manifest.webmanifest">' in home
    assert ICON_URL.search(home).groups() == ("/static/icons/favicon.svg", "image/svg+xml")
    touch = client.get(TOUCH_URL.search(home).group(1))
    assert Image.open(io.BytesIO(touch.data)).size == (180, 180)


@pytest.mark.parametrize(
    "name, expected",
    [("faka", "faka"), ("My Very Long Shop Name", "My Very Long"), ("星河数码科技官方旗舰店", "星河数码科技")],
)
def test_short_name_fits_under_an_icon(name, expected):
    assert short_name(name) == expected


def test_an_uploaded_icon_becomes_the_favicon_the_touch_icon_and_the_manifests(ops, client):
    response = upload_icon(ops, picture(600, 560))  # nearly square: padded, not cropped
    assert response.status_code == 303 and response.headers["Location"].endswith("icon=saved#site-icon")
    names = site_settings()["favicon"].split()
    assert len(names) == 4
    [event] = audits("site.favicon")
    assert json.loads(event.before) == {"favicon": ""} and json.loads(event.after) == {"favicon": " ".join(names)}

    home = client.get("/").text
    favicon, kind = ICON_URL.search(home).groups()
    assert (favicon, kind) == (f"/site/icons/{names[0]}", "image/png")
    assert TOUCH_URL.search(home).group(1) == f"/site/icons/{names[1]}"
    manifest = client.get("/site/manifest.webmanifest").json
    assert [i["src"] for i in manifest["icons"]] == [f"/site/icons/{names[2]}", f"/site/icons/{names[3]}"]
    for name, size in zip(names, (32, 180, 192, 512)):
        served = client.get(f"/site/icons/{name}")
        assert served.status_code == 200 and served.mimetype == "image/png"
        assert served.headers["Cache-Control"] == "public, max-age=31536000, immutable"
        assert "Set-Cookie" not in served.headers
        icon = Image.open(io.BytesIO(served.data))
        assert icon.size == (size, size)
        if size == 180:  # iOS paints transparency black: the touch icon is opaque, on white
            assert icon.mode == "RGB" and icon.getpixel((0, 0)) == (255, 255, 255)
        else:
            assert icon.mode == "RGBA" and icon.getpixel((0, 0))[3] == 0

    # A new one replaces it: the old files go, their URLs are gone.
    assert upload_icon(ops, picture(512, 512, "RGB", "JPEG"), "icon.jpg").status_code == 303
    assert all(stored_image(name) is None for name in names)
    assert client.get(f"/site/icons/{names[0]}").status_code == 404
    # Back to faka's own.
    newer = site_settings()["favicon"].split()
    assert (
        post(ops, "/operator/settings/favicon", {"remove": "1"}, content_type="multipart/form-data").status_code == 303
    )
    assert site_settings()["favicon"] == "" and all(stored_image(name) is None for name in newer)
    assert ICON_URL.search(client.get("/").text).group(1) == "/static/icons/favicon.svg"
    assert len(audits("site.favicon")) == 3


def stored_files() -> set[str]:
    return set(storage().names(PRIVATE))


@pytest.mark.parametrize(
    "data, name, message",
    [
        (b'<svg xmlns="http://www.w3.org/2000/svg"/>', "icon.svg", "Upload a PNG, JPEG or WebP image of at most 5 MB."),
        (b"", "empty.png", "Upload a PNG, JPEG or WebP image of at most 5 MB."),
        (picture(300, 300)[:200], "cut.png", "Upload a PNG, JPEG or WebP image of at most 5 MB."),
        (picture(120, 120), "small.png", "The icon is too small: it needs at least 180 × 180 pixels"),
        (picture(800, 300), "banner.png", "The icon must be square, or nearly (at most 5:4)"),
        (picture(300, 400), "tall.png", "The icon must be square, or nearly (at most 5:4)"),
    ],
)
def test_a_bad_icon_changes_nothing_and_says_why(ops, client, data, name, message):
    assert upload_icon(ops, picture(256, 256)).status_code == 303
    before, files = site_settings()["favicon"], stored_files()
    response = upload_icon(ops, data, name)
    assert response.status_code == 400 and message in text(response)
    assert site_settings()["favicon"] == before and stored_files() == files
    assert len(audits("site.favicon")) == 1
    assert ICON_URL.search(client.get("/").text).group(1) == f"/site/icons/{before.split()[0]}"


def test_only_the_current_icons_files_are_served(ops, client):
    assert client.get("/site/icons/" + "0" * 32 + ".png").status_code == 404
    assert client.get("/site/icons/..%2Finstance.db").status_code == 404
    assert upload_icon(ops, picture(200, 200)).status_code == 303
    assert client.get("/site/icons/" + "0" * 32 + ".png").status_code == 404


# -- who may change it ----------------------------------------------------------------------------


FORMS = [
    ("/operator/settings/appearance", lambda: {"accent_color": "#1971c2", "layout": "grid"}),
    ("/operator/settings/favicon", lambda: {"favicon": (io.BytesIO(picture(256, 256)), "icon.png")}),
]


@pytest.mark.parametrize("url, data", FORMS)
def test_the_forms_need_the_csrf_token(ops, url, data):
    files = stored_files()
    response = ops.post(url, data=data(), content_type="multipart/form-data")
    assert response.status_code == 400 and "The form expired" in text(response)
    assert site_settings()["accent_color"] == "" and site_settings()["favicon"] == "" and stored_files() == files
    assert count(AuditEvent, AuditEvent.action.like("site.%")) == 0


@pytest.mark.parametrize("url, data", FORMS)
@pytest.mark.parametrize("who", ["anonymous", "merchant"])
def test_only_an_operator_may_change_the_look(app, merchant, url, data, who):
    visitor = app.test_client()
    if who == "merchant":
        login(visitor, merchant.user)
    page = visitor.get("/lookup")
    response = visitor.post(
        url, data={**data(), "csrf_token": csrf_from(page.text)}, content_type="multipart/form-data"
    )
    assert response.status_code == 403 or "/login" in response.headers["Location"]
    assert site_settings()["accent_color"] == "" and site_settings()["favicon"] == ""
