"""Product images: a merchant's cover and gallery, checked by content, re-encoded without
metadata, stored under content-hashed names, served with long caching, shown on the cards
and the product page, and shared with Open Graph tags."""

import errno
import html
import io
import os
import random
import re
import subprocess
from pathlib import Path

import pytest
from PIL import ExifTags, Image
from sqlalchemy import event, select

from conftest import csrf_from, every_stored_file, login, no_horizontal_scroll, reload
from faka.accounts import users
from faka.catalog import images as product_images
from faka.catalog.images import MAX_GALLERY
from faka.catalog.models import ProductImage
from faka.core import storage as storage_module
from faka.core.storage import PRODUCTS, LocalStorage, storage
from faka.core.types import utcnow
from faka.extensions import db

IMMUTABLE = "public, max-age=31536000, immutable"
REFUSED_EN = "Upload a PNG, JPEG, WebP or GIF image of at most 10 MB and 40 megapixels"
NOT_STORED_EN = "The image could not be stored. Please try again later."
NOT_STORED_ZH = "图片暂时无法保存，请稍后再试。"


# -- images made with Pillow ------------------------------------------------------------------


def encoded(image: Image.Image, fmt: str, **params) -> bytes:
    out = io.BytesIO()
    image.save(out, fmt, **params)
    return out.getvalue()


def picture_bytes(fmt: str = "PNG", size=(640, 480), colour=(40, 120, 200), seed: int = 0, **params) -> bytes:
    """A picture with a red square at its top left (to tell which way up it is) and a
    little noise (so two seeds are two different pictures)."""
    image = Image.new("RGB", size, colour)
    image.paste((220, 20, 20), (0, 0, size[0] // 6, size[1] // 6))
    noise = Image.frombytes("L", (64, 64), random.Random(seed).randbytes(64 * 64)).convert("RGB")
    image.paste(noise, (size[0] - 80, size[1] - 80))
    if fmt == "GIF":
        image = image.convert("P")
    return encoded(image, fmt, **params)


def camera_jpeg() -> bytes:
    """A phone photo as it is uploaded: stored sideways with an EXIF orientation (6: turn
    it clockwise to view), the camera's make and where it was taken (GPS)."""
    image = Image.new("RGB", (600, 400), (30, 90, 200))
    image.paste((220, 20, 20), (0, 0, 100, 100))
    exif = Image.Exif()
    exif[ExifTags.Base.Orientation] = 6
    exif[ExifTags.Base.Make] = "SecretCameraMaker"
    gps = exif.get_ifd(ExifTags.IFD.GPSInfo)
    gps[ExifTags.GPS.GPSLatitudeRef] = "N"
    gps[ExifTags.GPS.GPSLatitude] = (39.0, 54.0, 26.0)
    gps[ExifTags.GPS.GPSLongitudeRef] = "E"
    gps[ExifTags.GPS.GPSLongitude] = (116.0, 23.0, 27.0)
    data = encoded(image, "JPEG", exif=exif, quality=95, comment=b"shot at home")
    assert Image.open(io.BytesIO(data)).getexif().get_ifd(ExifTags.IFD.GPSInfo)  # the GPS data is really there
    return data


def bomb_png() -> bytes:
    """50 megapixels in a few kilobytes: decoding it would take 150 MB and more."""
    return encoded(Image.new("1", (8000, 6250)), "PNG")


def oversized_png() -> bytes:
    """A real image over 10 MB (noise does not compress)."""
    data = encoded(Image.frombytes("RGB", (2100, 1800), random.Random(7).randbytes(2100 * 1800 * 3)), "PNG")
    assert len(data) > product_images.MAX_UPLOAD_BYTES
    return data


def truncated_jpeg() -> bytes:
    data = picture_bytes("JPEG", seed=3)
    return data[: len(data) * 2 // 3]


REFUSED = {
    "text renamed .png": (b"This is not an image, just text with a .png name.\n" * 20, "photo.png"),
    "over 10 MB": (oversized_png(), "big.png"),
    "truncated": (truncated_jpeg(), "cut.jpg"),
    "too small": (picture_bytes(size=(120, 90)), "tiny.png"),
    "svg": (b'<svg xmlns="http://www.w3.org/2000/svg" width="400" height="400" onload="alert(1)"/>', "logo.png"),
}


# -- fixtures and helpers ---------------------------------------------------------------------


@pytest.fixture(autouse=True)
def empty_media(app):
    """Each test starts with no stored product image files (the instance folder is shared)."""
    storage().delete(PRODUCTS, storage().names(PRODUCTS))
    yield
    storage().delete(PRODUCTS, storage().names(PRODUCTS))


def stored_files() -> set[str]:
    return every_stored_file(PRODUCTS)


def stored_bytes(name: str) -> bytes:
    return storage().read(PRODUCTS, name)


@pytest.fixture
def seller(app, merchant):
    client = app.test_client()
    with client.session_transaction() as session:
        session["lang"] = "en"
    login(client, merchant.user)
    return client


def images_url(product) -> str:
    return f"/merchant/products/{product.slug}/images"


def upload(client, product, role: str, *files):
    """Post files through the merchant's images page, as its form does."""
    page = client.get(images_url(product))
    assert page.status_code == 200
    return client.post(
        images_url(product),
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_from(page.text),
            "role": role,
            "image": [(io.BytesIO(data), name, "image/png") for data, name in files],
        },
    )


def post_action(client, product, path: str, **data):
    page = client.get(images_url(product))
    return client.post(f"{images_url(product)}/{path}", data={"csrf_token": csrf_from(page.text), **data})


def rows(product) -> list[ProductImage]:
    db.session.commit()
    return list(
        db.session.execute(
            select(ProductImage)
            .where(ProductImage.product_id == product.id)
            .order_by(ProductImage.role, ProductImage.position)
        ).scalars()
    )


def gallery(product) -> list[ProductImage]:
    return [image for image in rows(product) if image.role == ProductImage.GALLERY]


def open_stored(name: str) -> Image.Image:
    return Image.open(io.BytesIO(stored_bytes(name)))


def with_cover(client, product, data=None) -> ProductImage:
    response = upload(client, product, "cover", (data or picture_bytes(), "cover.png"))
    assert response.status_code == 303, response.text
    [cover] = [image for image in rows(product) if image.role == ProductImage.COVER]
    return cover


# -- uploading --------------------------------------------------------------------------------


def test_a_cover_is_stored_in_two_sizes_each_as_webp_and_jpeg(seller, product):
    response = upload(seller, product, "cover", (picture_bytes(size=(1600, 1200)), "cover.png"))
    assert response.status_code == 303
    assert response.headers["Location"].endswith(f"{images_url(product)}#cover")
    [cover] = rows(product)
    assert (cover.role, cover.position) == (ProductImage.COVER, 0)
    assert stored_files() == set(cover.names)

    for name, fmt, size in (
        (cover.thumb_webp, "WEBP", (320, 320)),
        (cover.thumb_jpeg, "JPEG", (320, 320)),
        (cover.detail_webp, "WEBP", (1200, 900)),
        (cover.detail_jpeg, "JPEG", (1200, 900)),
    ):
        stored = open_stored(name)
        assert (stored.format, stored.size) == (fmt, size), name
        assert re.fullmatch(r"[0-9a-f]{64}\.(webp|jpg)", name)
    assert (cover.thumb_width, cover.thumb_height, cover.detail_width, cover.detail_height) == (320, 320, 1200, 900)
    page = seller.get(images_url(product))
    assert f"/merchant/products/{product.slug}/images/file/{cover.thumb_webp}" in page.text
    assert seller.get(f"{images_url(product)}/file/{cover.thumb_jpeg}").headers["Cache-Control"] == "private, no-store"


def test_a_phone_photo_is_turned_upright_and_keeps_no_metadata(seller, product):
    cover = with_cover(seller, product, camera_jpeg())
    detail = open_stored(cover.detail_jpeg)
    assert detail.size == (400, 600)  # stored 600 × 400 sideways: shown upright
    red, blue = (220, 20, 20), (30, 90, 200)
    assert all(abs(a - b) < 40 for a, b in zip(detail.getpixel((detail.width - 20, 20)), red))  # top left went right
    assert all(abs(a - b) < 40 for a, b in zip(detail.getpixel((20, 20)), blue))
    for name in cover.names:
        stored = open_stored(name)
        raw = stored_bytes(name)
        assert not stored.getexif(), name
        assert "exif" not in stored.info and "icc_profile" not in stored.info and "comment" not in stored.info, name
        for secret in (b"Exif", b"SecretCameraMaker", b"shot at home"):
            assert secret not in raw, (name, secret)


@pytest.mark.parametrize("fmt", ["PNG", "JPEG", "WEBP", "GIF"])
def test_png_jpeg_webp_and_gif_are_accepted(seller, product, fmt):
    cover = with_cover(seller, product, picture_bytes(fmt, size=(500, 500)))
    assert open_stored(cover.detail_webp).format == "WEBP" and open_stored(cover.detail_jpeg).format == "JPEG"
    assert open_stored(cover.detail_jpeg).size == (500, 500)  # never enlarged


def test_transparency_is_flattened_onto_white(seller, product):
    image = Image.new("RGBA", (400, 400), (0, 0, 0, 0))
    image.paste((0, 128, 0, 255), (100, 100, 300, 300))
    cover = with_cover(seller, product, encoded(image, "PNG"))
    detail = open_stored(cover.detail_jpeg).convert("RGB")
    assert all(c > 245 for c in detail.getpixel((10, 10)))


@pytest.mark.parametrize("case", list(REFUSED))
def test_a_bad_upload_is_refused_with_a_message_and_nothing_stored(seller, product, case):
    data, name = REFUSED[case]
    response = upload(seller, product, "cover", (data, name))
    assert response.status_code == 400
    assert REFUSED_EN in html.unescape(response.text)
    assert rows(product) == [] and stored_files() == set()


def test_a_decompression_bomb_is_refused_with_the_pixel_limits(seller, product):
    response = upload(seller, product, "cover", (bomb_png(), "bomb.png"))
    assert response.status_code == 400
    assert (
        "each picture may have at most 40 megapixels, and all the pictures of one upload together at most 100"
        in html.unescape(response.text)
    )
    assert rows(product) == [] and stored_files() == set()


def test_a_bad_file_among_several_refuses_them_all(seller, product):
    response = upload(seller, product, "gallery", (picture_bytes(seed=1), "one.png"), (truncated_jpeg(), "two.jpg"))
    assert response.status_code == 400 and REFUSED_EN in html.unescape(response.text)
    assert rows(product) == [] and stored_files() == set()


def test_the_refusal_is_in_chinese_on_chinese_pages(app, merchant, product):
    client = app.test_client()
    login(client, merchant.user)
    response = upload(client, product, "cover", REFUSED["text renamed .png"])
    assert response.status_code == 400
    assert "请上传" in response.text and REFUSED_EN not in html.unescape(response.text)


def test_no_file_chosen_is_a_message(seller, product):
    page = seller.get(images_url(product))
    response = seller.post(
        images_url(product),
        content_type="multipart/form-data",
        data={"csrf_token": csrf_from(page.text), "role": "gallery"},
    )
    assert response.status_code == 400 and "Choose an image to upload." in response.text


def test_a_new_cover_replaces_the_old_one_and_its_files(seller, product):
    old = set(with_cover(seller, product, picture_bytes(seed=1)).names)
    new = with_cover(seller, product, picture_bytes(seed=2))
    assert [image.id for image in rows(product)] == [new.id]
    assert stored_files() == set(new.names)  # the old cover's files went with it
    assert not old & stored_files()


def test_the_same_image_twice_is_one_file(seller, product, make_product):
    other = make_product(keys=1, title="Another")
    data = picture_bytes(seed=5)
    first = with_cover(seller, product, data)
    names, first_id = set(first.names), first.id
    second = with_cover(seller, other, data)
    assert set(second.names) == names
    assert stored_files() == names  # four files, not eight

    assert post_action(seller, product, f"{first_id}/delete").status_code == 303
    assert stored_files() == names  # the other product still shows them
    assert post_action(seller, other, f"{second.id}/delete").status_code == 303
    assert stored_files() == set()


def test_the_gallery_holds_five_in_the_merchants_order(seller, product):
    response = upload(seller, product, "gallery", *[(picture_bytes(seed=i), f"{i}.png") for i in range(3)])
    assert response.status_code == 303
    response = upload(seller, product, "gallery", *[(picture_bytes(seed=i), f"{i}.png") for i in range(3, 5)])
    assert response.status_code == 303
    images = gallery(product)
    assert [image.position for image in images] == [0, 1, 2, 3, 4]
    ids, second_names = [image.id for image in images], set(images[1].names)

    full = upload(seller, product, "gallery", (picture_bytes(seed=9), "9.png"))
    assert full.status_code == 400 and "at most 5 images" in full.text
    assert len(gallery(product)) == MAX_GALLERY
    assert "The gallery is full." in seller.get(images_url(product)).text

    first, second, *_rest, last = ids
    assert post_action(seller, product, f"{second}/move", direction="earlier").status_code == 303
    assert [image.id for image in gallery(product)] == [second, first, *ids[2:]]
    assert post_action(seller, product, f"{last}/move", direction="later").status_code == 303  # already last
    assert gallery(product)[-1].id == last
    assert post_action(seller, product, f"{second}/delete").status_code == 303
    after = gallery(product)
    assert [image.position for image in after] == [0, 1, 2, 3] and [image.id for image in after] == [first, *ids[2:]]
    assert second_names.isdisjoint(stored_files())


def test_the_same_picture_twice_in_one_gallery_is_refused(seller, product):
    data = picture_bytes(seed=4)
    assert upload(seller, product, "gallery", (data, "a.png")).status_code == 303
    again = upload(seller, product, "gallery", (data, "b.png"))
    assert again.status_code == 400 and "already in the gallery" in again.text
    assert len(gallery(product)) == 1


def test_the_cover_takes_one_file(seller, product):
    response = upload(seller, product, "cover", (picture_bytes(seed=1), "a.png"), (picture_bytes(seed=2), "b.png"))
    assert response.status_code == 400 and "Upload one image as the cover." in response.text
    assert rows(product) == []


def test_the_product_pages_link_to_the_images_page(seller, product):
    assert images_url(product) in seller.get("/merchant/products").text
    assert images_url(product) in seller.get(f"/merchant/products/{product.slug}/edit").text


# -- a full disk ------------------------------------------------------------------------------


def test_a_full_disk_is_a_message_and_leaves_nothing_behind(seller, product, monkeypatch):
    with_cover(seller, product, picture_bytes(seed=1))
    before_rows, before_files = [(i.id, i.names) for i in rows(product)], stored_files()
    replaced = []
    # The instance folder writes each file aside and renames it into place: the third
    # rename fails, its temporary file written. The database fails the third write.
    local = storage().kind == "local"
    real = storage_module.os.replace if local else storage().save

    def disk_full_at_the_third_file(*args):
        if len(replaced) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        replaced.append(args[1])
        return real(*args)

    if local:
        monkeypatch.setattr(storage_module.os, "replace", disk_full_at_the_third_file)
    else:
        monkeypatch.setattr(storage(), "save", disk_full_at_the_third_file)
    response = upload(seller, product, "cover", (picture_bytes(seed=2), "new.png"))
    assert response.status_code == 400 and NOT_STORED_EN in response.text
    assert len(replaced) == 2  # two files had been written: both were removed again
    assert [(i.id, i.names) for i in rows(product)] == before_rows
    assert stored_files() == before_files  # no temporary file either

    monkeypatch.undo()
    assert upload(seller, product, "cover", (picture_bytes(seed=2), "new.png")).status_code == 303


def test_a_real_full_disk_in_chinese(app, merchant, product):
    if storage().kind != "local":
        pytest.skip("a full disk is the instance folder's (FAKA_UPLOAD_STORAGE=local)")
    folder = LocalStorage(Path(app.instance_path) / "uploads").folder(PRODUCTS)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=64k,mode=0700", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small file system cannot be mounted here: {mounted.stderr.strip()}")
    try:
        client = app.test_client()
        login(client, merchant.user)
        photo = encoded(Image.frombytes("RGB", (900, 900), random.Random(1).randbytes(900 * 900 * 3)), "PNG")
        response = upload(client, product, "cover", (photo, "noise.png"))
        assert response.status_code == 400 and NOT_STORED_ZH in response.text
        assert rows(product) == [] and os.listdir(folder) == []
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


# -- files shared with another upload of the same picture ----------------------------------------


def same_picture(product_id: int, data: bytes):
    """Another upload of the same picture, to commit while a change runs (as a second web
    host's would): call it to add an image of the product naming the picture's files.
    Returns it and the names."""
    e = product_images.encode(data)
    row = product_images._row(product_id, ProductImage.COVER, 0, e)
    columns = {c.name: getattr(row, c.name) for c in ProductImage.__table__.columns if c.name != "id"}
    columns["created_at"] = utcnow()

    def commit() -> None:
        with db.engine.begin() as conn:  # a connection of its own, as another request's
            conn.execute(ProductImage.__table__.insert().values(**columns))

    return commit, set(row.names)


def test_a_refused_upload_leaves_the_files_another_upload_took_meanwhile(merchant, product, make_product, monkeypatch):
    data, other = picture_bytes(seed=21), make_product(keys=0, title="Same picture")
    other_upload, names = same_picture(other.id, data)

    def fails_after_the_files_are_written(*args):
        raise RuntimeError("the database went away before the commit")

    monkeypatch.setattr(product_images, "_row", fails_after_the_files_are_written)
    # Once this change has rolled back, before the files it wrote go.
    event.listen(db.session(), "after_rollback", lambda _session: other_upload(), once=True)
    with pytest.raises(RuntimeError):
        product_images.add_images(merchant.id, product.slug, "cover", [data])
    assert rows(product) == [] and [set(image.names) for image in rows(other)] == [names]
    assert names <= stored_files()  # the other image's files are there: it shows


def test_a_replaced_cover_leaves_the_files_another_upload_took_meanwhile(merchant, product, make_product):
    old, other = picture_bytes(seed=22), make_product(keys=0, title="Same picture")
    product_images.add_images(merchant.id, product.slug, "cover", [old])
    other_upload, names = same_picture(other.id, old)
    flushed, done = [], []

    def meanwhile(_session):  # once the replacement has committed, before the old files go
        if flushed and not done:
            done.append(other_upload())

    session = db.session()
    event.listen(session, "after_flush", lambda *_args: flushed.append(True))
    event.listen(session, "after_commit", meanwhile)
    try:
        [cover] = product_images.add_images(merchant.id, product.slug, "cover", [picture_bytes(seed=23)])
    finally:
        event.remove(session, "after_commit", meanwhile)
    assert done and [image.names for image in rows(product)] == [cover.names]
    assert names <= stored_files()  # the other image's files are there: it shows
    assert set(cover.names) <= stored_files()

    product_images.remove_image(merchant.id, other.slug, rows(other)[0].id)
    assert not names & stored_files()  # once no image names them, they go


# -- another merchant -------------------------------------------------------------------------


def test_another_merchant_cannot_see_add_move_or_remove_images(app, seller, product):
    cover = with_cover(seller, product)
    assert upload(seller, product, "gallery", (picture_bytes(seed=3), "g.png")).status_code == 303
    [item] = gallery(product)
    rival = users.create_merchant("rival@shop.test", "merchant-pass-1", "Rival", approved=True)
    other = app.test_client()
    login(other, rival.user)
    token = csrf_from(other.get("/merchant/products").text)
    url = images_url(product)

    assert other.get(url).status_code == 404
    assert other.get(f"{url}/file/{cover.thumb_jpeg}").status_code == 404
    assert (
        other.post(
            url,
            content_type="multipart/form-data",
            data={"csrf_token": token, "role": "gallery", "image": (io.BytesIO(picture_bytes(seed=8)), "x.png")},
        ).status_code
        == 404
    )
    assert (
        other.post(url, content_type="multipart/form-data", data={"csrf_token": token, "role": "cover"}).status_code
        == 404
    )
    assert other.post(f"{url}/{cover.id}/delete", data={"csrf_token": token}).status_code == 404
    assert other.post(f"{url}/{item.id}/move", data={"csrf_token": token, "direction": "earlier"}).status_code == 404
    assert len(rows(product)) == 2 and len(stored_files()) == 8


def test_an_image_id_of_another_product_is_404(seller, product, make_product):
    other = make_product(keys=1, title="Mine too")
    cover = with_cover(seller, other)
    assert post_action(seller, product, f"{cover.id}/delete").status_code == 404
    assert len(rows(other)) == 1


# -- serving ----------------------------------------------------------------------------------


def test_images_are_served_with_their_type_and_cached_for_a_year(seller, client, product):
    cover = with_cover(seller, product)
    for name, mimetype in ((cover.thumb_webp, "image/webp"), (cover.detail_jpeg, "image/jpeg")):
        served = client.get(f"/images/{name}")
        assert served.status_code == 200 and served.mimetype == mimetype
        assert served.headers["Cache-Control"] == IMMUTABLE
        assert served.headers["X-Content-Type-Options"] == "nosniff"
        assert served.data == stored_bytes(name)
    # A logged-in merchant's session is not even read: the response never carries a cookie.
    served = seller.get(f"/images/{cover.thumb_webp}")
    assert "Set-Cookie" not in served.headers and "Cookie" not in served.headers.get("Vary", "")
    assert served.headers["Cache-Control"] == IMMUTABLE


@pytest.mark.parametrize(
    "name",
    [
        "0" * 64 + ".webp",
        "f" * 64 + ".jpg",
        "../../etc/passwd",
        "..%2f..%2fsecret",
        "A" * 64 + ".jpg",
        "0" * 64 + ".png",
        "0" * 32 + ".jpg",
        "0" * 64 + ".webp.jpg",
        "x.webp",
    ],
)
def test_unknown_names_are_404_without_touching_the_disk(seller, client, product, monkeypatch, name):
    with_cover(seller, product)

    def no_disk(*_args, **_kwargs):
        raise AssertionError("the storage was touched")

    monkeypatch.setattr(product_images, "existing", no_disk)
    for attribute in ("open", "sizes", "read", "names"):
        monkeypatch.setattr(storage(), attribute, no_disk)
    assert client.get(f"/images/{name}").status_code == 404


def test_a_malformed_name_is_not_even_looked_up(seller, client, product):
    with_cover(seller, product)
    statements = []
    listener = lambda *args: statements.append(args[2])  # noqa: E731
    event.listen(db.engine, "before_cursor_execute", listener)
    try:
        assert client.get("/images/..%2f..%2finstance%2fsecret_key").status_code == 404
        assert client.get("/images/cover.png").status_code == 404
    finally:
        event.remove(db.engine, "before_cursor_execute", listener)
    assert not [s for s in statements if "product_images" in s]


def test_images_of_products_not_on_sale_are_not_served(seller, client, product):
    cover = with_cover(seller, product)
    url = f"/images/{cover.detail_jpeg}"
    assert client.get(url).status_code == 200
    product.visible = False
    db.session.commit()
    assert client.get(url).status_code == 404
    assert (
        seller.get(f"{images_url(product)}/file/{cover.detail_jpeg}").status_code == 200
    )  # the merchant still sees it
    product.visible = True
    product.moderation = "taken_down"
    db.session.commit()
    assert client.get(url).status_code == 404


def test_a_deleted_product_keeps_nothing_visible(seller, client, product):
    cover = with_cover(seller, product)
    page = seller.get("/merchant/products")
    assert (
        seller.post(f"/merchant/products/{product.slug}/delete", data={"csrf_token": csrf_from(page.text)}).status_code
        == 303
    )
    assert reload(product).deleted_at is not None
    for name in cover.names:
        assert client.get(f"/images/{name}").status_code == 404
    assert seller.get(images_url(product)).status_code == 404
    assert seller.get(f"{images_url(product)}/file/{cover.thumb_jpeg}").status_code == 404
    assert client.get(f"/p/{product.slug}").status_code == 404
    assert cover.thumb_jpeg not in client.get("/").text


# -- what buyers see --------------------------------------------------------------------------


def picture_markup(page: str, image: ProductImage, size: str) -> str:
    files = image.size(size)
    webp, jpeg, width, height = files["webp"], files["jpeg"], files["width"], files["height"]
    match = re.search(
        rf'<picture>\s*<source type="image/webp" srcset="/images/{webp}">\s*<img src="/images/{jpeg}" '
        rf'width="{width}" height="{height}"[^>]*>\s*</picture>',
        page,
    )
    assert match, f"no <picture> of the {size} size"
    return match.group(0)


def test_cards_and_the_product_page_show_pictures_with_both_sources(seller, client, product):
    cover = with_cover(seller, product, picture_bytes(size=(1000, 750)))
    assert (
        upload(
            seller, product, "gallery", (picture_bytes(seed=1), "1.png"), (picture_bytes(seed=2), "2.png")
        ).status_code
        == 303
    )
    first, second = gallery(product)

    home = client.get("/").text
    card = picture_markup(home, cover, "thumb")
    assert 'width="320" height="320"' in card and 'alt=""' in card
    assert "image-placeholder" not in home

    page = client.get(f"/p/{product.slug}?lang=en").text
    top = picture_markup(page, cover, "detail")
    assert 'loading="lazy"' not in top and 'fetchpriority="high"' in top and 'width="1000" height="750"' in top
    for image in (first, second):
        assert 'loading="lazy"' in picture_markup(page, image, "detail")
    assert page.index(cover.detail_jpeg) < page.index(first.detail_jpeg) < page.index(second.detail_jpeg)
    assert "picture 2 of 3" in page and "product-placeholder" not in page

    shop = client.get(f"/shop/{product.merchant.public_id}").text
    picture_markup(shop, cover, "thumb")


def test_a_product_without_an_image_shows_its_initial(client, make_product):
    make_product(keys=1, title="【官方】王者荣耀点券")
    plain = make_product(keys=1, title="steam wallet")
    home = client.get("/").text
    assert "<picture>" not in home
    initials = re.findall(r'<span class="thumb image-placeholder tint-\d" aria-hidden="true">(.)</span>', home)
    assert initials == ["官", "S"]
    page = client.get(f"/p/{plain.slug}").text
    assert re.search(r'class="product-placeholder image-placeholder tint-\d" aria-hidden="true">S<', page)
    assert "<picture>" not in page and "og:image" not in page


def test_the_product_page_has_share_tags_with_absolute_urls(app, seller, client, product):
    app.config["BASE_URL"] = "https://shop.example.cn/"
    product.title = "Steam 钱包充值卡 & 礼品"
    product.price = 1234
    product.description_md = (
        "# Instant **Steam** key\n\nRedeem it in the [Steam client](https://store.steampowered.com). "
        + "Works in every region. " * 10
    )
    db.session.commit()
    cover = with_cover(seller, product, picture_bytes(size=(1200, 630)))
    page = client.get(f"/p/{product.slug}").text

    def meta(attribute: str, key: str) -> str:
        match = re.search(rf'<meta {attribute}="{re.escape(key)}" content="([^"]*)">', page)
        assert match, key
        return html.unescape(match.group(1))

    url = f"https://shop.example.cn/p/{product.slug}"
    assert meta("property", "og:type") == "product"
    assert meta("property", "og:title") == "Steam 钱包充值卡 & 礼品"
    assert meta("property", "og:url") == url
    assert meta("property", "og:image") == f"https://shop.example.cn/images/{cover.detail_jpeg}"
    assert (meta("property", "og:image:width"), meta("property", "og:image:height")) == ("1200", "630")
    assert meta("property", "product:price:amount") == "12.34"
    assert meta("property", "product:price:currency") == "CNY"
    description = meta("property", "og:description")
    assert description.startswith("Instant Steam key Redeem it in the Steam client. Works in every region.")
    assert len(description) <= 110 and description.endswith("…")
    assert not re.search(r"[#*\[\]<>]|https?:", description)
    assert meta("name", "description") == description
    assert f'<link rel="canonical" href="{url}">' in page
    # The image the share card names is served to the app that fetches it.
    assert client.get(f"/images/{cover.detail_jpeg}").status_code == 200


def test_share_tags_without_a_description_or_a_cover(client, make_product):
    product = make_product(keys=1, title="Netflix 会员", description_md="")
    page = client.get(f"/p/{product.slug}?lang=en").text
    assert re.search(r'<meta property="og:description" content="Netflix 会员 at [^"]+">', page)
    assert 'property="og:image"' not in page and 'property="og:url"' in page


def test_a_gallery_without_a_cover_shares_its_first_picture(seller, client, product):
    assert upload(seller, product, "gallery", (picture_bytes(seed=1), "1.png")).status_code == 303
    [first] = gallery(product)
    page = client.get(f"/p/{product.slug}").text
    assert f'<meta property="og:image" content="http://localhost/images/{first.detail_jpeg}">' in page
    assert 'fetchpriority="high"' in picture_markup(page, first, "detail")
    assert "image-placeholder" in client.get("/").text  # the card still needs a cover


def test_a_buy_error_page_keeps_the_pictures(seller, client, product):
    cover = with_cover(seller, product)
    page = client.get(f"/p/{product.slug}")
    refused = client.post(
        f"/p/{product.slug}/buy", data={"csrf_token": csrf_from(page.text), "quantity": "0", "email": "not-an-email"}
    )
    assert refused.status_code == 400
    picture_markup(refused.text, cover, "detail")


# -- on a phone -------------------------------------------------------------------------------


def test_the_product_page_with_pictures_fits_a_phone(live_server, merchant, make_product, phone, tmp_path):
    _app, base = live_server
    merchant.reviewed_at = utcnow()
    db.session.commit()
    product = make_product(keys=3, title="Steam 钱包充值卡 100 元", description_md="Instant key.")
    make_product(keys=3, title="王者荣耀点券 60 点")
    product_images.add_images(merchant.id, product.slug, "cover", [picture_bytes("JPEG", size=(1600, 1200), seed=1)])
    product_images.add_images(
        merchant.id,
        product.slug,
        "gallery",
        [
            picture_bytes(size=(1200, 1200), colour=(240, 180, 40), seed=2),
            picture_bytes(size=(800, 1200), colour=(60, 160, 90), seed=3),
            picture_bytes(size=(1800, 600), colour=(150, 60, 160), seed=4),
        ],
    )

    phone.goto(f"{base}/?lang=en")
    assert no_horizontal_scroll(phone)
    # A function, not an expression: Playwright polls an expression with eval(), which the
    # page's CSP refuses once the first check is false (a busy machine).
    phone.wait_for_function(
        "() => [...document.querySelectorAll('.product-card img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    assert phone.locator(".product-card .image-placeholder").count() == 1
    phone.screenshot(path=str(tmp_path / "home-360.png"), full_page=True)

    phone.goto(f"{base}/p/{product.slug}")
    assert no_horizontal_scroll(phone)
    images = phone.locator(".product-media img")
    assert images.count() == 4
    for i in range(4):
        images.nth(i).scroll_into_view_if_needed()
    phone.wait_for_function(
        "() => [...document.querySelectorAll('.product-media img')].every(i => i.complete && i.naturalWidth > 0)"
    )
    # WebP was chosen, and each picture keeps inside the page's width.
    assert phone.evaluate("document.querySelector('.product-media img').currentSrc").endswith(".webp")
    sizes = phone.evaluate("""() => {
        const row = document.querySelector('.product-media').getBoundingClientRect();
        return {left: row.left, right: row.right,
                widths: [...document.querySelectorAll('.product-media img')].map(i => i.getBoundingClientRect().width)};
    }""")
    assert 0 <= sizes["left"] and sizes["right"] <= 360
    assert all(0 < width <= sizes["right"] - sizes["left"] + 0.5 for width in sizes["widths"])  # each fits the row
    phone.evaluate("document.querySelector('.product-media').scrollLeft = 0")
    assert no_horizontal_scroll(phone)
    phone.screenshot(path=str(tmp_path / "product-360.png"), full_page=True)
    assert phone.console_errors == []
