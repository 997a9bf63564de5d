"""Product images: a merchant's cover and gallery, checked, re-encoded and stored.

An upload is judged by its content: Pillow must decode it as a PNG, JPEG, WebP or GIF
(whatever its name or declared type says) of at most MAX_UPLOAD_BYTES and MAX_PIXELS, the
files of one upload together at most MAX_REQUEST_PIXELS (all read from the headers, before
anything is decompressed), and at least MIN_SIDE pixels each way. It is turned upright by
its EXIF orientation, converted to sRGB, flattened onto white, and written afresh in two
sizes, each as WebP and JPEG:

- thumb: a THUMB_SIDE square, cropped from the middle, for the product cards;
- detail: at most DETAIL_SIDE either way, uncropped, for the product page and share cards.

Nothing of the upload's metadata survives (EXIF, GPS, camera serials, ICC profiles,
comments): the new files are encoded from pixels only. Each file is named by the SHA-256
of its bytes, so one picture uploaded twice is one file, and a name, once served, never
changes content (the public route lets browsers keep it for a year).

Files live in the `products` area of the storage (faka/core/storage.py: instance/uploads/
products, or the database). A change either happens whole or not at all: each file is
complete once stored (the storage writes it aside, or in one transaction of its own), the
rows are committed after the files are there, and a failure on the way (a full disk, a
database error) removes what this change wrote. A file goes when no image names it any more:
the files are shared by every merchant who uploads the same picture, so each removal looks
again, under the lock every image change takes, whether an image names the file by then.

A merchant's files (those its products' images name, and its licence image) may take at
most MERCHANT_STORAGE_QUOTA bytes together (`storage_used`).
"""

import hashlib
import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from flask_babel import lazy_gettext as _l
from PIL import Image, ImageCms, ImageOps
from sqlalchemy import or_, select, text
from sqlalchemy.exc import SQLAlchemyError

from faka.accounts.models import Merchant
from faka.catalog.models import Product, ProductImage
from faka.catalog.products import get_product
from faka.core.db import is_postgresql, write_transaction
from faka.core.errors import DomainError, NotFound
from faka.core.storage import PRODUCTS, StoredFile, storage
from faka.core.uploads import (
    ImageNotStored,
    PixelBudget,
    ShopStorageFull,
    check_pixels,
    decode,
    measured,
    merchant_quota,
    stored_size,
)
from faka.extensions import db

log = logging.getLogger(__name__)

MAX_UPLOAD_BYTES = 10 * 1024 * 1024
MAX_PIXELS = 40_000_000  # a 48-megapixel phone photo is refused; 12 MP and its like pass
MAX_REQUEST_PIXELS = 100_000_000  # a full gallery of 12-megapixel photos passes
PIXELS = PixelBudget(MAX_PIXELS, MAX_REQUEST_PIXELS)
MIN_SIDE = 200
MAX_GALLERY = 5
FORMATS = frozenset({"PNG", "JPEG", "WEBP", "GIF"})
THUMB_SIDE = 320
DETAIL_SIDE = 1200
WEBP_QUALITY = 80
JPEG_QUALITY = 85

STORED_NAME = re.compile(r"[0-9a-f]{64}\.(webp|jpg)")
_FILES_LOCK = 7311  # the advisory lock that serialises image changes on PostgreSQL


class InvalidProductImage(DomainError):
    message = _l(
        "Upload a PNG, JPEG, WebP or GIF image of at most 10 MB and 40 megapixels, "
        "at least 200 × 200 pixels. This file is not one, or it is damaged."
    )


class NoImageChosen(DomainError):
    message = _l("Choose an image to upload.")


class GalleryFull(DomainError):
    message = _l("The gallery holds at most 5 images. Remove one to add another.")


class AlreadyInGallery(DomainError):
    message = _l("This image is already in the gallery.")


class TooManyFiles(DomainError):
    message = _l("Upload one image as the cover.")


@dataclass(frozen=True)
class Rendition:
    name: str
    data: bytes
    width: int
    height: int


@dataclass(frozen=True)
class Encoded:
    thumb_webp: Rendition
    thumb_jpeg: Rendition
    detail_webp: Rendition
    detail_jpeg: Rendition

    @property
    def renditions(self) -> tuple[Rendition, ...]:
        return (self.thumb_webp, self.thumb_jpeg, self.detail_webp, self.detail_jpeg)


@dataclass
class ShownImages:
    """What the storefront shows of a product: its cover and, on its own page, its gallery."""

    cover: ProductImage | None = None
    gallery: list[ProductImage] = field(default_factory=list)

    @property
    def first(self) -> ProductImage | None:
        return self.cover or (self.gallery[0] if self.gallery else None)


def initial(title: str | None) -> str:
    """What a product without a picture shows: the first letter, digit or character of its
    title ("【官方】王者荣耀" -> "官", "steam card" -> "S")."""
    return next((c.upper() for c in title or "" if c.isalnum()), "·")


# -- encoding (no I/O) --------------------------------------------------------------------


def encode(data: bytes) -> Encoded:
    """The upload's four files, or InvalidProductImage."""
    with decode(data, MAX_UPLOAD_BYTES, MAX_PIXELS, FORMATS, InvalidProductImage) as image:
        upright = _srgb_on_white(_upright(image), image.info.get("icc_profile"))
    if min(upright.size) < MIN_SIDE:
        raise InvalidProductImage()
    thumb = ImageOps.fit(upright, (THUMB_SIDE, THUMB_SIDE), Image.Resampling.LANCZOS)
    detail = upright.copy()
    detail.thumbnail((DETAIL_SIDE, DETAIL_SIDE), Image.Resampling.LANCZOS)
    return Encoded(_webp(thumb), _jpeg(thumb), _webp(detail), _jpeg(detail))


def _upright(image: Image.Image) -> Image.Image:
    """The picture turned as its EXIF orientation says it is to be seen (a phone stores a
    portrait photo sideways and says so). A damaged EXIF block leaves it as it is."""
    try:
        return ImageOps.exif_transpose(image)
    except (OSError, ValueError, SyntaxError, KeyError, TypeError):
        log.info("ignored an image's unreadable EXIF orientation")
        return image


def _srgb_on_white(image: Image.Image, icc: bytes | None) -> Image.Image:
    """RGB pixels in sRGB: a photo in another colour space (an iPhone's Display P3, a
    print shop's CMYK) keeps its colours once its profile is gone, and transparency shows
    the cards' white."""
    has_alpha = image.has_transparency_data
    if icc and image.mode in ("RGB", "RGBA", "CMYK", "L"):
        try:
            image = ImageCms.profileToProfile(
                image,
                ImageCms.ImageCmsProfile(io.BytesIO(icc)),
                ImageCms.createProfile("sRGB"),
                outputMode="RGBA" if image.mode == "RGBA" else "RGB",
            )
        except (ImageCms.PyCMSError, OSError, ValueError, TypeError):
            log.info("ignored an image's unreadable colour profile")
    image = image.convert("RGBA" if has_alpha else "RGB")
    if image.mode == "RGBA":
        image = Image.alpha_composite(Image.new("RGBA", image.size, (255, 255, 255, 255)), image)
    clean = image.convert("RGB")
    # What the upload said about itself rides along in .info, and some encoders write
    # parts of it back (a JPEG's comment): the renditions start from pixels only.
    clean.info.clear()
    return clean


def _webp(image: Image.Image) -> Rendition:
    out = io.BytesIO()
    image.save(out, "WEBP", quality=WEBP_QUALITY, method=4)
    return _rendition(out.getvalue(), ".webp", image)


def _jpeg(image: Image.Image) -> Rendition:
    out = io.BytesIO()
    image.save(out, "JPEG", quality=JPEG_QUALITY, optimize=True, progressive=True)
    return _rendition(out.getvalue(), ".jpg", image)


def _rendition(data: bytes, suffix: str, image: Image.Image) -> Rendition:
    return Rendition(hashlib.sha256(data).hexdigest() + suffix, data, image.width, image.height)


# -- files ----------------------------------------------------------------------------------


def name_columns(name: str | None) -> tuple | None:
    """The columns a requested file name can be in, or None for a name of any other shape
    (a path, "..", another extension), which is then never looked up anywhere."""
    match = STORED_NAME.fullmatch(name or "")
    if match is None:
        return None
    if match.group(1) == "webp":
        return (ProductImage.thumb_webp, ProductImage.detail_webp)
    return (ProductImage.thumb_jpeg, ProductImage.detail_jpeg)


def _write_files(encoded: list[Encoded]) -> list[str]:
    """Store every rendition; returns the names of the files this call stored. A file that
    is already there (the same bytes: its name is their hash) is left alone. When the
    storage fails the files stored so far are removed again and ImageNotStored is raised."""
    created: list[str] = []
    renditions = {r.name: r for e in encoded for r in e.renditions}
    try:
        present = storage().sizes(PRODUCTS, renditions)
        for name, rendition in renditions.items():
            if present.get(name) == len(rendition.data):
                continue
            storage().save(PRODUCTS, name, rendition.data)
            created.append(name)
    except OSError as exc:
        # A full disk or quota, or the database gone: nothing may stay half-written, and
        # the merchant is told to try again rather than shown an error page. Still under
        # the lock: no other change has seen these files yet.
        _remove(created)
        log.error("could not store a product image: %s", exc)
        raise ImageNotStored() from exc
    return created


def _remove(names: list[str]) -> None:
    try:
        storage().delete(PRODUCTS, names)
    except OSError as exc:  # an orphan file costs only space
        log.warning("could not remove product image files %s: %s", ", ".join(names), exc)


def _remove_unreferenced(names: set[str] | list[str]) -> None:
    """Remove those of the files no image names, looked at under the lock. Called once a
    change has ended (committed or rolled back): another merchant's upload of the same
    picture may have found a file there and committed an image naming it meanwhile."""
    if not names:
        return
    try:
        with _files_locked():
            _remove(_unreferenced(set(names)))
    except SQLAlchemyError as exc:  # the database gone: an orphan file costs only space
        log.warning("could not look whether product image files are still named: %s", exc)


def _unreferenced(names: set[str]) -> list[str]:
    """The files among `names` that no image names any more."""
    if not names:
        return []
    columns = (ProductImage.thumb_webp, ProductImage.thumb_jpeg, ProductImage.detail_webp, ProductImage.detail_jpeg)
    still = set()
    for column in columns:
        still.update(db.session.execute(select(column).where(column.in_(names))).scalars())
    return [name for name in sorted(names - still) if STORED_NAME.fullmatch(name)]


@contextmanager
def _files_locked() -> Iterator[None]:
    """A write transaction in which no other image change runs: the check that a file is
    still named, and its removal, must not interleave with an upload of the same picture.
    SQLite's write lock does that already; PostgreSQL takes an advisory lock."""
    with write_transaction():
        if is_postgresql():
            db.session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": _FILES_LOCK})
        yield


# -- the merchant's changes ---------------------------------------------------------------------


def merchant_images(merchant_id: int, slug: str) -> tuple[Product, ShownImages]:
    """The merchant's own product (NotFound for anyone else's) and all its images."""
    product = get_product(merchant_id, slug)
    return product, _images_of(product.id)


def check_room(merchant_id: int, slug: str) -> Product:
    """Whether the merchant may add images to this product, asked before the upload is
    read: the product is theirs (NotFound) and their shop has room left (ShopStorageFull)."""
    product = get_product(merchant_id, slug)
    used, quota = storage_used(merchant_id), merchant_quota()
    if used >= quota:
        raise ShopStorageFull(used, quota)
    return product


def storage_used(merchant_id: int, leaving_image: int | None = None, leaving_licence: bool = False) -> int:
    """Bytes the merchant's files take: those its products' images name (a deleted
    product's too: its files stay) and its licence image, leaving out an image or licence
    about to be replaced."""
    used = measured(PRODUCTS, _merchant_files(merchant_id, leaving_image))
    return used if leaving_licence else used + _licence_size(merchant_id)


def _licence_size(merchant_id: int) -> int:
    return stored_size([db.session.scalar(select(Merchant.licence_image).where(Merchant.id == merchant_id))])


def _merchant_files(merchant_id: int, leaving_image: int | None = None) -> set[str]:
    columns = (ProductImage.thumb_webp, ProductImage.thumb_jpeg, ProductImage.detail_webp, ProductImage.detail_jpeg)
    query = (
        select(*columns).join(Product, Product.id == ProductImage.product_id).where(Product.merchant_id == merchant_id)
    )
    if leaving_image is not None:
        query = query.where(ProductImage.id != leaving_image)
    return {name for row in db.session.execute(query) for name in row}


def _check_quota(merchant_id: int, encoded: list[Encoded], leaving_image: int | None) -> None:
    """ShopStorageFull unless the new files (those the merchant's images do not name
    already) fit in what is left of the quota."""
    files = _merchant_files(merchant_id, leaving_image)
    adding = {r.name: len(r.data) for e in encoded for r in e.renditions if r.name not in files}
    used, quota = measured(PRODUCTS, files) + _licence_size(merchant_id), merchant_quota()
    if used + sum(adding.values()) > quota:
        raise ShopStorageFull(used, quota)


def add_images(merchant_id: int, slug: str, role: str, uploads: list[bytes]) -> list[ProductImage]:
    """Add uploaded images to the merchant's product: one as the cover (replacing the one
    there), or up to MAX_GALLERY in the gallery. All or nothing: one bad file refuses them
    all. Everything that can be known without decoding is checked before anything is."""
    if role not in ProductImage.ROLES:
        raise NotFound()
    product = check_room(merchant_id, slug)  # another merchant's product is a 404 before anything else
    if not uploads:
        raise NoImageChosen()
    if role == ProductImage.COVER and len(uploads) > 1:
        raise TooManyFiles()
    if len(uploads) > MAX_GALLERY or (
        role == ProductImage.GALLERY and len(_images_of(product.id).gallery) + len(uploads) > MAX_GALLERY
    ):
        raise GalleryFull()
    check_pixels(uploads, PIXELS, MAX_UPLOAD_BYTES, FORMATS, InvalidProductImage)
    encoded = [encode(data) for data in uploads]  # before any lock: the slow part

    created: list[str] = []
    try:
        with _files_locked():
            product = get_product(merchant_id, slug)
            current = _images_of(product.id)
            replaced = []
            if role == ProductImage.GALLERY:
                if len(current.gallery) + len(encoded) > MAX_GALLERY:
                    raise GalleryFull()
                shown = {image.detail_jpeg for image in current.gallery}
                for e in encoded:
                    if e.detail_jpeg.name in shown:
                        raise AlreadyInGallery()
                    shown.add(e.detail_jpeg.name)
            elif current.cover is not None:
                replaced.append(current.cover)
            _check_quota(merchant_id, encoded, replaced[0].id if replaced else None)
            created = _write_files(encoded)
            leaving = {name for image in replaced for name in image.names}
            for image in replaced:
                db.session.delete(image)
            start = len(current.gallery)
            images = [
                _row(product.id, role, start + i if role == ProductImage.GALLERY else 0, e)
                for i, e in enumerate(encoded)
            ]
            db.session.add_all(images)
            db.session.flush()
    except BaseException:
        # Rolled back (the commit too may have failed): the files this call wrote go,
        # unless another upload of the same picture took them since.
        _remove_unreferenced(created)
        raise
    _remove_unreferenced(leaving)
    return images


def _row(product_id: int, role: str, position: int, e: Encoded) -> ProductImage:
    return ProductImage(
        product_id=product_id,
        role=role,
        position=position,
        thumb_webp=e.thumb_webp.name,
        thumb_jpeg=e.thumb_jpeg.name,
        detail_webp=e.detail_webp.name,
        detail_jpeg=e.detail_jpeg.name,
        thumb_width=e.thumb_jpeg.width,
        thumb_height=e.thumb_jpeg.height,
        detail_width=e.detail_jpeg.width,
        detail_height=e.detail_jpeg.height,
    )


def remove_image(merchant_id: int, slug: str, image_id: int) -> None:
    """Remove one of the product's images; its files go unless another image names them."""
    with _files_locked():
        product = get_product(merchant_id, slug)
        image = _own_image(product.id, image_id)
        names = set(image.names)
        db.session.delete(image)
        db.session.flush()
        if image.role == ProductImage.GALLERY:
            _renumber(_images_of(product.id).gallery)
    _remove_unreferenced(names)


def move_image(merchant_id: int, slug: str, image_id: int, offset: int) -> None:
    """Move a gallery image one place earlier (offset -1) or later (+1)."""
    with write_transaction():
        product = get_product(merchant_id, slug)
        image = _own_image(product.id, image_id)
        gallery = _images_of(product.id).gallery
        if image.role != ProductImage.GALLERY or offset not in (-1, 1):
            raise NotFound()
        index = gallery.index(image)
        other = index + offset
        if 0 <= other < len(gallery):
            gallery[index], gallery[other] = gallery[other], gallery[index]
            _renumber(gallery)


def _own_image(product_id: int, image_id: int) -> ProductImage:
    image = db.session.get(ProductImage, image_id)
    if image is None or image.product_id != product_id:
        raise NotFound()
    return image


def _renumber(gallery: list[ProductImage]) -> None:
    for position, image in enumerate(gallery):
        image.position = position


def _images_of(product_id: int) -> ShownImages:
    return shown_images([product_id], galleries=True).get(product_id, ShownImages())


# -- what is shown ------------------------------------------------------------------------------


def shown_images(product_ids: list[int], galleries: bool = False) -> dict[int, ShownImages]:
    """Each product's cover (and gallery, in order, when asked), in one query."""
    if not product_ids:
        return {}
    query = select(ProductImage).where(ProductImage.product_id.in_(product_ids))
    if not galleries:
        query = query.where(ProductImage.role == ProductImage.COVER)
    shown: dict[int, ShownImages] = {}
    for image in db.session.execute(query.order_by(ProductImage.position, ProductImage.id)).scalars():
        entry = shown.setdefault(image.product_id, ShownImages())
        if image.role == ProductImage.COVER:
            entry.cover = image
        else:
            entry.gallery.append(image)
    return shown


def merchant_file(merchant_id: int, slug: str, name: str) -> StoredFile | None:
    """A file of the merchant's own product (for the back office's previews), or None."""
    condition = named(name)
    if condition is None:
        return None
    product = get_product(merchant_id, slug)
    known = db.session.execute(
        select(ProductImage.id).where(ProductImage.product_id == product.id, condition).limit(1)
    ).first()
    return existing(name) if known else None


def named(name: str | None):
    """The condition "an image names this file", or None for a name of any other shape,
    which then never reaches the database or the storage."""
    columns = name_columns(name)
    return None if columns is None else or_(*(column == name for column in columns))


def existing(name: str) -> StoredFile | None:
    """The stored file of a name found in the database, if it is there."""
    return storage().open(PRODUCTS, name)
