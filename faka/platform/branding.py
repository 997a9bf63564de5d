"""The operator's choices of how the storefront looks: the accent colour, the layout of the
product cards, and the site's icon (the favicon, the home-screen icons of the web app
manifest). Each change is saved with its audit event in one transaction (docs/themes.md).

An uploaded icon is validated and decoded like every upload (faka/core/uploads.py), padded
to a square, and written as four PNGs: 32 px for the browser tab, 180 px for iOS's home
screen (on white: iOS shows transparency as black) and 192 and 512 px for the manifest.
"""

import io

from flask_babel import lazy_gettext as _l
from PIL import Image

from faka.core.db import write_transaction
from faka.core.errors import DomainError
from faka.core.uploads import ONE_PICTURE, check_pixels, decode, delete_images, store_encoded
from faka.platform import audit, theme
from faka.platform import settings as site_config

ICON_SIZES = (32, 180, 192, 512)
APPLE_TOUCH_SIZE = 180
MIN_ICON_SIDE = 180
MAX_ICON_ASPECT = 1.25  # a wider picture is a banner: padded to a square it would be a thin strip


class InvalidAppearance(DomainError):
    """A colour or layout the form cannot take; `errors` says why, by field."""

    message = _l("Nothing was saved: please correct the fields marked below.")

    def __init__(self, errors: dict[str, object]):
        super().__init__()
        self.errors = errors


class IconTooSmall(DomainError):
    message = _l(
        "The icon is too small: it needs at least %(side)s × %(side)s pixels (512 × 512 looks sharp everywhere).",
        side=MIN_ICON_SIDE,
    )


class IconNotSquare(DomainError):
    message = _l("The icon must be square, or nearly (at most 5:4): crop the picture and upload it again.")


def set_appearance(actor_id: int, accent: str, layout: str) -> bool:
    """Save the accent colour ('' for the default) and the layout; False if nothing changed."""
    values = {"accent_color": theme.normalise_accent(accent), "layout": layout}
    errors = site_config.validate(values)
    if errors:
        raise InvalidAppearance(errors)
    with write_transaction():
        current = site_config.site_settings()
        changed = {key: value for key, value in values.items() if value != current[key]}
        if not changed:
            return False
        for key, value in changed.items():
            site_config.set_setting(key, value, commit=False)
        audit.record(actor_id, "site.theme", "settings", before={key: current[key] for key in changed}, after=changed)
    return True


def set_favicon(actor_id: int, data: bytes | None) -> bool:
    """Make the uploaded picture the site's icon, or with None go back to faka's own;
    False if nothing changed (no icon to remove)."""
    names = store_icons(data) if data is not None else []
    new = " ".join(names)
    try:
        with write_transaction():
            old = site_config.site_settings()["favicon"]
            if old == new:
                return False
            site_config.set_setting("favicon", new, commit=False)
            audit.record(actor_id, "site.favicon", "settings", before={"favicon": old}, after={"favicon": new})
    except BaseException:
        delete_images(names)
        raise
    delete_images(old.split())  # nothing else names the old icon's files
    return True


def icon_names(value: str) -> dict[int, str]:
    """The stored icon's file names by size, from the `favicon` setting ({} for none)."""
    names = value.split()
    return dict(zip(ICON_SIZES, names)) if len(names) == len(ICON_SIZES) else {}


def store_icons(data: bytes) -> list[str]:
    """Validate an uploaded picture and write its icons, one file per size in ICON_SIZES;
    returns their names in that order."""
    check_pixels([data], ONE_PICTURE)
    with decode(data) as image:
        width, height = image.size
        if min(width, height) < MIN_ICON_SIDE:
            raise IconTooSmall()
        if max(width, height) > MAX_ICON_ASPECT * min(width, height):
            raise IconNotSquare()
        side = max(width, height)
        square = Image.new("RGBA", (side, side), (0, 0, 0, 0))
        square.paste(image.convert("RGBA"), ((side - width) // 2, (side - height) // 2))
    written: list[str] = []
    try:
        for size in ICON_SIZES:
            icon = square.resize((size, size), Image.Resampling.LANCZOS)
            if size == APPLE_TOUCH_SIZE:
                backed = Image.new("RGBA", icon.size, (255, 255, 255, 255))
                icon = Image.alpha_composite(backed, icon).convert("RGB")
            out = io.BytesIO()
            icon.save(out, "PNG", optimize=True)
            written.append(store_encoded(out.getvalue(), ".png"))
    except BaseException:
        # The storage failed (ImageNotStored): no icon stays without its other sizes, and
        # the operator is told to try again.
        delete_images(written)
        raise
    return written
