"""The storefront's look that the operator picks: an accent colour and a layout of the
product cards (docs/themes.md).

faka.css holds every colour as a custom property, light on :root and dark under
`prefers-color-scheme` or `data-theme="dark"`. The accent is the one the operator may change,
so it is checked here against WCAG's AA contrast for text (4.5:1), in both modes:

- light mode uses the colour as picked, and refuses one that is too light to read as text
  on the page (a link, a price), naming a darker shade of the same hue that passes;
- dark mode derives its own shade: the same hue made lighter until it reaches 4.5:1 on the
  dark page and cards. So no colour the form takes can fail AA in either mode.

Button text on the accent is white or near-black, whichever passes; the pale tints (the
home page's heading, the current page in the back office) and the text on them come from
the accent's hue too. Everything is computed in Python, once per accent, and sent as a small
stylesheet (faka/web/shop/brand.py): no inline style, and nothing for the browser to compute.
"""

import colorsys
import re
from dataclasses import dataclass
from functools import cache

from flask_babel import lazy_gettext as _l

DEFAULT_ACCENT = "#c2410c"
LAYOUTS = ("list", "grid")
AA_TEXT = 4.5
# Text on the tints is held to more than AA, as the default design's is (#862e00 on #ffe8cc, 8:1).
STRONG_TEXT = 7.0

# The surfaces text in the accent sits on, per mode: faka.css's --subtle, --bg and --card (in
# dark mode the tinted notices are no lighter than --subtle).
LIGHT_SURFACES = ("#f1f3f5", "#f5f6f8", "#ffffff")
DARK_SURFACES = ("#121417", "#1b1f24", "#262b32")
WHITE, INK = "#ffffff", "#111317"
# The top bar's colour in each mode (faka.css's --card), which phones paint their status bar in.
BAR_COLOURS = {"light": "#ffffff", "dark": "#1b1f24"}
PAGE_COLOURS = {"light": "#f5f6f8", "dark": "#121417"}  # --bg: the manifest's splash screen

HEX = re.compile(r"#?([0-9a-fA-F]{6}|[0-9a-fA-F]{3})")


def parse_hex(text: str) -> str | None:
    """'#C2410C', 'c2410c' or '#c41' as '#c2410c'; None for anything else."""
    match = HEX.fullmatch(text.strip())
    if match is None:
        return None
    digits = match.group(1).lower()
    if len(digits) == 3:
        digits = "".join(d * 2 for d in digits)
    return "#" + digits


def _rgb(colour: str) -> tuple[float, float, float]:
    return tuple(int(colour[i : i + 2], 16) / 255 for i in (1, 3, 5))  # type: ignore[return-value]


def _hex(rgb: tuple[float, float, float]) -> str:
    return "#" + "".join(f"{round(min(max(c, 0.0), 1.0) * 255):02x}" for c in rgb)


def luminance(colour: str) -> float:
    """WCAG 2's relative luminance of an sRGB colour."""
    r, g, b = (c / 12.92 if c <= 0.04045 else ((c + 0.055) / 1.055) ** 2.4 for c in _rgb(colour))
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def contrast(a: str, b: str) -> float:
    """WCAG 2's contrast ratio of two colours, 1 to 21."""
    high, low = sorted((luminance(a), luminance(b)), reverse=True)
    return (high + 0.05) / (low + 0.05)


def _with_lightness(colour: str, lightness: float, saturation: float | None = None) -> str:
    hue, _lightness, sat = colorsys.rgb_to_hls(*_rgb(colour))
    return _hex(colorsys.hls_to_rgb(hue, lightness, sat if saturation is None else saturation))


def shade_reaching(colour: str, surfaces: tuple[str, ...], ratio: float, lighter: bool) -> str:
    """The colour itself if it reaches `ratio` on every surface, else the nearest shade of its
    hue (lighter or darker, in steps of 1% of lightness) that does. Luminance only grows as
    lightness does, so the search always ends: at worst at white or black."""
    _hue, start, _sat = colorsys.rgb_to_hls(*_rgb(colour))
    step = 0.01 if lighter else -0.01
    lightness, shade = start, colour
    while min(contrast(shade, surface) for surface in surfaces) < ratio:
        lightness += step
        if not 0 <= lightness <= 1:
            return WHITE if lighter else "#000000"
        shade = _with_lightness(colour, lightness)
    return shade


def tint_under(text: str, colour: str, lightness: float, saturation: float, lighter: bool) -> str:
    """A tint of `colour` at `lightness` that `text` reads on at AA: made lighter (or darker)
    in steps of 1% until it does. The accent reads on the page, so the search ends before
    white (or black)."""
    shade = _with_lightness(colour, lightness, saturation)
    step = 0.01 if lighter else -0.01
    while contrast(text, shade) < AA_TEXT and 0 <= lightness + step <= 1:
        lightness += step
        shade = _with_lightness(colour, lightness, saturation)
    return shade


def text_on(colour: str) -> str:
    """White on a colour when it reads at AA, else near-black (one of the two always does)."""
    return WHITE if contrast(WHITE, colour) >= AA_TEXT else INK


@dataclass(frozen=True)
class Shades:
    """The accent's custom properties in one mode (faka.css names them --accent...)."""

    accent: str
    accent_fg: str  # text on the accent (buttons)
    accent_tint: str  # a pale surface of the accent's hue (the home page's heading)
    accent_tint_2: str  # a stronger one (the back office's current page, borders)
    accent_strong: str  # text on the tints

    def properties(self) -> dict[str, str]:
        return {
            "--accent": self.accent,
            "--accent-fg": self.accent_fg,
            "--accent-tint": self.accent_tint,
            "--accent-tint-2": self.accent_tint_2,
            "--accent-strong": self.accent_strong,
        }


@dataclass(frozen=True)
class Palette:
    light: Shades
    dark: Shades


@cache
def palette(accent: str) -> Palette:
    """The shades of an accent that passed accent_problem(), for both modes."""
    _hue, _lightness, saturation = colorsys.rgb_to_hls(*_rgb(accent))
    # The accent is also text on the pale tint (a chosen option's price): the tint gives way.
    light_tint = tint_under(accent, accent, 0.95, saturation, lighter=True)
    light_tint_2 = _with_lightness(accent, 0.9)
    light = Shades(
        accent=accent,
        accent_fg=text_on(accent),
        accent_tint=light_tint,
        accent_tint_2=light_tint_2,
        accent_strong=shade_reaching(accent, (light_tint, light_tint_2), STRONG_TEXT, lighter=False),
    )
    dark_accent = shade_reaching(accent, DARK_SURFACES, AA_TEXT, lighter=True)
    # Dark tints are the hue at low lightness, less saturated, so that they stay surfaces.
    dark_tint = tint_under(dark_accent, accent, 0.14, saturation * 0.6, lighter=False)
    dark_tint_2 = _with_lightness(accent, 0.2, saturation * 0.6)
    dark = Shades(
        accent=dark_accent,
        accent_fg=text_on(dark_accent),
        accent_tint=dark_tint,
        accent_tint_2=dark_tint_2,
        accent_strong=shade_reaching(dark_accent, (dark_tint, dark_tint_2), STRONG_TEXT, lighter=True),
    )
    return Palette(light, dark)


def accent_problem(value: str) -> object | None:
    """Why `value` cannot be the accent colour, or None ('' is the default accent)."""
    if value == "":
        return None
    colour = parse_hex(value)
    if colour is None or colour != value:
        return _l("Enter a colour as # and six hex digits, e.g. #c2410c.")
    ratio = min(contrast(colour, surface) for surface in LIGHT_SURFACES)
    if ratio < AA_TEXT:
        return _l(
            "%(colour)s is too light to read as text on the page: its contrast is %(ratio)s:1, and links "
            "and prices need at least 4.5:1. The same colour darker, %(darker)s, passes.",
            colour=colour,
            ratio=f"{int(ratio * 100) / 100:.2f}",
            darker=shade_reaching(colour, LIGHT_SURFACES, AA_TEXT, lighter=False),
        )
    return None


def normalise_accent(text: str) -> str:
    """What the form's text becomes before it is checked: '#C41' and 'c2410c' are taken."""
    return parse_hex(text) or text.strip()


def _block(selector: str, shades: Shades) -> str:
    body = "; ".join(f"{name}: {value}" for name, value in shades.properties().items())
    return f"{selector} {{ {body}; }}"


@cache
def theme_css(accent: str) -> str:
    """The stylesheet that puts `accent` in place of faka.css's default, in both modes. Its
    selectors are faka.css's own, so that, loaded after it, it wins in each mode."""
    shades = palette(accent)
    return "\n".join(
        (
            f"/* faka: the operator's accent colour {accent} (docs/themes.md) */",
            _block(":root", shades.light),
            "@media (prefers-color-scheme: dark) { " + _block(":root:not([data-theme=light])", shades.dark) + " }",
            _block(":root[data-theme=dark]", shades.dark),
            "",
        )
    )
