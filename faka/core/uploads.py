"""Uploaded images: validated by their content, re-encoded, kept out of static/.

Pillow decodes the upload (whatever its name or declared type claims), refuses anything
that is not a real PNG/JPEG/WebP image or is too large in pixels, and writes a fresh PNG
or JPEG, which drops metadata (EXIF location, camera serials) and any payload hidden
after the image data. Files live in the `private` area of the storage (faka/core/storage.py:
instance/uploads/private, or the database) under random names, and are served only through
views that check who is asking.

Decoding is what costs memory and time (a 25-megapixel picture takes 100 MB and more), so
a request's pictures are first measured from their headers, all of them, before any is
decoded (`check_pixels`): each at most `PixelBudget.each`, all together at most
`PixelBudget.together`. What a merchant or an order may keep stored is bounded too
(`ShopStorageFull`, `EvidenceFull`), counted from the stored files themselves.
"""

import io
import logging
import re
import secrets
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import PurePosixPath

from flask import current_app
from flask_babel import lazy_gettext as _l
from PIL import Image, UnidentifiedImageError

from faka.core.errors import DomainError
from faka.core.storage import PRIVATE, StoredFile, storage

MB = 1024 * 1024
MAX_UPLOAD_BYTES = 5 * MB
MAX_PIXELS = 25_000_000
MAX_REQUEST_PIXELS = 60_000_000
ALLOWED_FORMATS = {"PNG", "JPEG", "WEBP"}
# What store_image (and faka/catalog/images.py) writes, by the name it gives:
# nothing else is ever served.
CONTENT_TYPES = {".png": "image/png", ".jpg": "image/jpeg", ".webp": "image/webp"}
STORED_NAME = re.compile(r"[0-9a-f]{32}\.(?:png|jpg)")
# What Pillow raises for a file that is not a (whole) image of a kind it reads.
UNREADABLE = (UnidentifiedImageError, OSError, ValueError, SyntaxError, EOFError)

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class PixelBudget:
    """How large, in pixels, the pictures of one request may be: each, and all together."""

    each: int
    together: int


ONE_PICTURE = PixelBudget(MAX_PIXELS, MAX_PIXELS)  # a licence, the site logo
EVIDENCE_PIXELS = PixelBudget(MAX_PIXELS, MAX_REQUEST_PIXELS)  # a complaint's post, up to 5 pictures


def megapixels(pixels: int) -> str:
    return f"{pixels / 1_000_000:g}"


def megabytes(size: int) -> str:
    return f"{size / MB:.1f}".removesuffix(".0")


class InvalidImage(DomainError):
    message = _l("Upload a PNG, JPEG or WebP image of at most 5 MB.")


class ImageNotStored(DomainError):
    message = _l("The image could not be stored. Please try again later.")


class StorageUnavailable(DomainError):
    """The storage could not be read (the database gone): nothing was changed."""

    message = _l("The stored files cannot be reached right now. Nothing was changed; please try again later.")


class TooManyPixels(DomainError):
    """Pictures larger than their budget, found from their headers before any was decoded."""

    def __init__(self, budget: PixelBudget):
        if budget.together > budget.each:
            super().__init__(
                _l(
                    "Too large to take: each picture may have at most %(each)s megapixels, and all the "
                    "pictures of one upload together at most %(together)s megapixels.",
                    each=megapixels(budget.each),
                    together=megapixels(budget.together),
                )
            )
        else:
            super().__init__(
                _l("Too large to take: a picture may have at most %(each)s megapixels.", each=megapixels(budget.each))
            )


class ShopStorageFull(DomainError):
    """The merchant's stored files (product images and licence) would pass their quota."""

    def __init__(self, used: int, quota: int):
        super().__init__(
            _l(
                "Your shop's pictures take %(used)s MB of the %(quota)s MB it may store. Remove some "
                "product images first, or ask the platform for more room.",
                used=megabytes(used),
                quota=megabytes(quota),
            )
        )


class EvidenceFull(DomainError):
    """The complaint images of one order would pass their quota."""

    def __init__(self, used: int, quota: int):
        super().__init__(
            _l(
                "The complaint images of this order take %(used)s MB of the %(quota)s MB one order may "
                "keep. Send it without images, or with fewer or smaller ones.",
                used=megabytes(used),
                quota=megabytes(quota),
            )
        )


def merchant_quota() -> int:
    """Bytes one merchant may keep: its product images and its licence image."""
    return current_app.config["MERCHANT_STORAGE_QUOTA"]


def evidence_quota() -> int:
    """Bytes of complaint images one order may keep, whoever posted them."""
    return current_app.config["ORDER_EVIDENCE_QUOTA"]


def stored_size(names: Iterable[str | None]) -> int:
    """What the named private files (each counted once) take; a missing file takes nothing."""
    return measured(PRIVATE, names)


def measured(area: str, names: Iterable[str | None]) -> int:
    """What the named files of the area take, for a quota; StorageUnavailable when the
    storage cannot say, so the user is told to try again rather than shown an error page."""
    try:
        return storage().total_size(area, names)
    except OSError as exc:
        log.error("could not measure stored files: %s", exc)
        raise StorageUnavailable() from exc


def check_pixels(
    uploads: list[bytes],
    budget: PixelBudget,
    max_bytes: int = MAX_UPLOAD_BYTES,
    formats: frozenset[str] | set[str] = ALLOWED_FORMATS,
    error: type[DomainError] = InvalidImage,
) -> None:
    """Refuse a request's uploads from what their headers say, before any is decoded: each
    must be one of `formats`, at most `max_bytes` long and `budget.each` pixels large, and
    all together at most `budget.together` pixels (TooManyPixels names both)."""
    total = 0
    for data in uploads:
        if not data or len(data) > max_bytes:
            raise error()
        try:
            with Image.open(io.BytesIO(data)) as probe:  # reads the header only
                if probe.format not in formats:
                    raise error()
                pixels = probe.width * probe.height
        except Image.DecompressionBombError as exc:  # Pillow's own ceiling, far above ours
            raise TooManyPixels(budget) from exc
        except UNREADABLE as exc:
            raise error() from exc
        if pixels > budget.each:
            raise TooManyPixels(budget)
        total += pixels
    if total > budget.together:
        raise TooManyPixels(budget)


def decode(
    data: bytes,
    max_bytes: int = MAX_UPLOAD_BYTES,
    max_pixels: int = MAX_PIXELS,
    formats: frozenset[str] | set[str] = ALLOWED_FORMATS,
    error: type[DomainError] = InvalidImage,
) -> Image.Image:
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
    except (*UNREADABLE, Image.DecompressionBombError) as exc:
        raise error() from exc


def store_image(data: bytes) -> str:
    """Validate and re-encode an uploaded image; returns its stored file name."""
    check_pixels([data], ONE_PICTURE)
    with decode(data) as image:
        has_alpha = image.mode in ("RGBA", "LA", "P")
        clean = image.convert("RGBA" if has_alpha else "RGB")
    clean.info.clear()  # a JPEG's comment would be written back from here
    out = io.BytesIO()
    if has_alpha:
        clean.save(out, "PNG", optimize=True)
    else:
        clean.save(out, "JPEG", quality=88)
    return store_encoded(out.getvalue(), ".png" if has_alpha else ".jpg")


def store_encoded(data: bytes, suffix: str) -> str:
    """Keep re-encoded image bytes under a new random name (returned), or ImageNotStored."""
    name = secrets.token_hex(16) + suffix
    try:
        storage().save(PRIVATE, name, data)
    except OSError as exc:
        # A full disk or quota, or the database gone: nothing stays half-written (the
        # storage sees to it), and the user is told to try again rather than shown an error page.
        log.error("could not store an uploaded image: %s", exc)
        raise ImageNotStored() from exc
    return name


def delete_images(names: Iterable[str | None]) -> None:
    """Remove stored images no row names any more (a refused upload's, a replaced one's)."""
    try:
        storage().delete(PRIVATE, [name for name in names if name and STORED_NAME.fullmatch(name)])
    except OSError as exc:  # an orphan file costs only space
        log.warning("could not remove uploaded images: %s", exc)


def stored_image(name: str | None) -> StoredFile | None:
    """The stored image of a name we generated, or None: a name of any other shape (a path,
    "..", another extension) never reaches the storage."""
    if not name or not STORED_NAME.fullmatch(name):
        return None
    return storage().open(PRIVATE, name)


def content_type(name: str) -> str:
    """The image type of a stored file, from the format it was re-encoded to."""
    return CONTENT_TYPES[PurePosixPath(name).suffix]
