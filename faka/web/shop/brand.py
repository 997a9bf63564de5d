"""The site's look as files: the operator's accent colour as a stylesheet, the site icon, and
the web app manifest that lets a phone add the shop to its home screen (docs/themes.md).

Every page links them from <head> (templates/base.html, through `brand_head()`). They are the
same for every visitor, so they carry no cookie (faka/web/security.py SESSIONLESS_PATH) and
caches may keep them: the stylesheet's URL names its content's hash, and an icon's file
name is random and never reused, so both are kept for a year.
"""

import hashlib
import json
import unicodedata
from dataclasses import dataclass
from functools import lru_cache

from flask import Blueprint, abort, make_response, request, url_for

from faka.core.uploads import stored_image
from faka.platform import branding, theme
from faka.platform.settings import cached_site_settings
from faka.web.security import IMMUTABLE, image_response, not_modified
from faka.web.templating import current_site

bp = Blueprint("brand", __name__)

SHORT_NAME_WIDTH = 12  # what a home screen shows under an icon: 12 Latin letters, 6 Chinese characters
MANIFEST_MAX_AGE = 300  # a renamed site reaches the manifest within minutes
DEFAULT_ICONS = {
    32: "icons/favicon-32.png",
    180: "icons/apple-touch-icon.png",
    192: "icons/icon-192.png",
    512: "icons/icon-512.png",
}


@lru_cache(maxsize=16)
def _stylesheet(accent: str) -> tuple[str, str]:
    """The accent's stylesheet and the short hash of it that its URL carries."""
    css = theme.theme_css(accent)
    return css, hashlib.sha256(css.encode()).hexdigest()[:16]


@dataclass(frozen=True)
class BrandHead:
    """What <head> links: the accent's stylesheet (None for faka's own colours), the icons."""

    theme_css: str | None
    favicon: str
    favicon_type: str
    apple_touch_icon: str
    bar_colours: dict[str, str]


def _icon_url(size: int, names: dict[int, str]) -> str:
    if names:
        return url_for("brand.icon", name=names[size])
    return url_for("static", filename=DEFAULT_ICONS[size])


def brand_head() -> BrandHead:
    site = current_site()
    accent = site.get("accent_color", "")
    names = branding.icon_names(site.get("favicon", ""))
    return BrandHead(
        theme_css=url_for("brand.theme_css", v=_stylesheet(accent)[1]) if accent else None,
        # faka's own icon is an SVG, sharp at any size; an uploaded one is a PNG.
        favicon=_icon_url(32, names) if names else url_for("static", filename="icons/favicon.svg"),
        favicon_type="image/png" if names else "image/svg+xml",
        apple_touch_icon=_icon_url(180, names),
        bar_colours=theme.BAR_COLOURS,
    )


def site_icon_url(favicon: str, size: int) -> str:
    """The URL of the icon of `size` px, for the value of the `favicon` setting."""
    return _icon_url(size, branding.icon_names(favicon))


bp.add_app_template_global(brand_head)
bp.add_app_template_global(site_icon_url)


@bp.get("/site/theme.css")
def theme_css():
    """The accent's custom properties. Asked for with the hash of what is current (as every
    page links it), it is kept for a year; with any other, it is the current one, briefly."""
    accent = cached_site_settings()["accent_color"] or theme.DEFAULT_ACCENT
    css, version = _stylesheet(accent)
    response = make_response(css)
    response.mimetype = "text/css"
    response.headers["Cache-Control"] = IMMUTABLE if request.args.get("v") == version else "public, max-age=60"
    return response


def short_name(name: str) -> str:
    """The site's name cut to what fits under a home-screen icon (a Chinese character is two
    Latin letters wide)."""
    width, kept = 0, []
    for char in name.strip():
        width += 2 if unicodedata.east_asian_width(char) in ("W", "F") else 1
        if width > SHORT_NAME_WIDTH:
            break
        kept.append(char)
    return "".join(kept).strip()


@bp.get("/site/manifest.webmanifest")
def manifest():
    """The web app manifest: "Add to home screen" opens the shop full-screen, with its icon."""
    site = cached_site_settings()
    names = branding.icon_names(site["favicon"])
    body = {
        "name": site["site_name"],
        "short_name": short_name(site["site_name"]),
        "start_url": "/",
        "scope": "/",
        "display": "standalone",
        "theme_color": theme.BAR_COLOURS["light"],
        "background_color": theme.PAGE_COLOURS["light"],
        "icons": [
            {"src": _icon_url(size, names), "sizes": f"{size}x{size}", "type": "image/png", "purpose": "any"}
            for size in (192, 512)
        ],
    }
    response = make_response(json.dumps(body, ensure_ascii=False))
    response.mimetype = "application/manifest+json"
    response.headers["Cache-Control"] = f"public, max-age={MANIFEST_MAX_AGE}"
    return response


@bp.get("/site/icons/<name>")
def icon(name: str):
    """One of the uploaded icon's files: only those the `favicon` setting names are served."""
    if name not in branding.icon_names(cached_site_settings()["favicon"]).values():
        abort(404)
    if (unchanged := not_modified(name, immutable=True)) is not None:
        return unchanged
    stored = stored_image(name)
    if stored is None:
        abort(404)
    return image_response(stored, private=False, immutable=True)
