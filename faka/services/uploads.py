"""Uploaded images: validated by their content, re-encoded, kept out of static/.

Pillow decodes the upload (whatever its name or declared type claims), refuses anything
that is not a real PNG/JPEG/WebP image or is too large in pixels, and writes a fresh PNG
or JPEG, which drops metadata (EXIF location, camera serials) and any payload hidden
after the image data. Files live in instance/uploads/private under random names and are
served only through views that check who is asking.
"""
import io
import logging
import re
import secrets
from pathlib import Path

from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError

from faka.services.errors import DomainError

MAX_UPLOAD_BYTES = 5 * 1024 * 1024
MAX_PIXELS = 25_000_000
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}
# What store_image (and faka/services/product_images.py) writes, by the name it gives:
# nothing else is ever served.
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(?:png|jpg)")

log = logging.getLogger(__name__)


class InvalidImage(DomainError):
    message = _l("Upload a PNG, JPEG or WebP image of at most 5 MB.")


class ImageNotStored(DomainError):
    message = _l("The image could not be stored. Please try again later.")


def private_dir() -> Path:
    path = Path(current_app.instance_path) / "uploads" / "private"
    path.mkdir(parents=True, exist_ok=True)
    return path


def decode(data: bytes, max_bytes: int = MAX_UPLOAD_BYTES, max_pixels: int = MAX_PIXELS,
           formats: frozenset[str] | set[str] = ALLOWED_FORMATS, error: type[DomainError] = InvalidImage) -> Image.Image:
    """The upload decoded (its first frame), or `error`: it must be one of `formats` by its
    content, at most `max_bytes` long and `max_pixels` large (checked from the header,
    before anything is decompressed), and whole (a truncated file fails to load)."""
    if not data or len(data) > max_bytes:
        raise error()
    try:
        with Image.open(io.BytesIO(data)) as probe:
            if probe.format not in formats or probe.width * probe.height > max_pixels:
                raise error()
            probe.verify()
        image = Image.open(io.BytesIO(data))
        try:
            image.load()
        except BaseException:
            image.close()
            raise
        return image
    except (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError, Image.DecompressionBombError) as exc:
        raise error() from exc


def store_image(data: bytes) -> str:
    """Validate and re-encode an uploaded image; returns its stored file name."""
    with decode(data) as image:
        has_alpha = image.mode in ("RGBA", "LA", "P")
        clean = image.convert("RGBA" if has_alpha else "RGB")
    clean.info.clear()  # a JPEG's comment would be written back from here
    name = secrets.token_hex(16) + (".png" if has_alpha else ".jpg")
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, "PNG", optimize=True)
    else:
        clean.save(out, "JPEG", quality=88)
    path = None
    try:
        path = private_dir() / name
        path.write_bytes(out.getvalue())
    except OSError as exc:
        # A full disk or quota: nothing may stay half-written, and the user is told to
        # try again rather than shown an error page.
        if path is not None:
            path.unlink(missing_ok=True)
        log.error("could not store an uploaded image: %s", exc)
        raise ImageNotStored() from exc
    return name


def image_path(name: str | None) -> Path | None:
    """The stored file for a name we generated, or None: a name of any other shape (a path,
    "..", another extension) never reaches the file system."""
    if not name or not STORED_NAME.fullmatch(name):
        return None
    path = private_dir() / name
    return path if path.is_file() else None


def content_type(path: Path) -> str:
    """The image type of a stored file, from the format it was re-encoded to."""
    return CONTENT_TYPES[path.suffix]
