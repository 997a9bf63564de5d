"""The merchant's product images: cover and gallery.

Plain forms (multipart upload, one button per move or removal), so the page works without
JavaScript; each change answers 303 back to the page, or the page again with the reason
it was refused (400), nothing having changed.
"""

from flask import abort, g, redirect, request, url_for

from faka.catalog import images as product_images
from faka.catalog.models import ProductImage
from faka.core.errors import DomainError, NotFound
from faka.core.uploads import ShopStorageFull, StorageUnavailable
from faka.web.merchant import bp, render, scoped
from faka.web.security import image_response
from faka.web.uploads import UploadLimit, accepts_upload, back_office_uploads

IMAGES_UPLOAD = UploadLimit(files=product_images.MAX_GALLERY, file_bytes=product_images.MAX_UPLOAD_BYTES)


def _page(slug: str, status: int = 200, error: str | None = None, role: str | None = None):
    product, images = product_images.merchant_images(g.merchant.id, slug)
    return render(
        "merchant/product_images.html",
        status,
        product=product,
        images=images,
        error=error,
        error_role=role,
        max_gallery=product_images.MAX_GALLERY,
    )


@bp.get("/products/<slug>/images")
@scoped
def product_images_page(slug: str):
    return _page(slug)


def _upload_refused(slug: str):
    # Another merchant's product (NotFound: a 404), a shop out of room or a storage that
    # cannot say how much room is left is answered before the files are read.
    try:
        product_images.check_room(g.merchant.id, slug)
    except (ShopStorageFull, StorageUnavailable) as exc:
        return _page(slug, 400, exc.message)
    return None


@bp.post("/products/<slug>/images")
@scoped
@back_office_uploads
@accepts_upload(IMAGES_UPLOAD, refused=_upload_refused)
def product_images_upload(slug: str):
    role = request.form.get("role", "")
    if role not in ProductImage.ROLES:
        abort(400)
    # One byte over the limit is enough to refuse the file; the rest is never read.
    uploads = [
        upload.read(product_images.MAX_UPLOAD_BYTES + 1)
        for upload in request.files.getlist("image")
        if upload and upload.filename
    ]
    try:
        product_images.add_images(g.merchant.id, slug, role, uploads)
    except NotFound:
        raise  # another merchant's product: a 404 (scoped)
    except DomainError as exc:
        return _page(slug, 400, exc.message, role)
    return redirect(url_for("merchant.product_images_page", slug=slug, _anchor=role), 303)


@bp.post("/products/<slug>/images/<int:image_id>/delete")
@scoped
def product_image_delete(slug: str, image_id: int):
    product_images.remove_image(g.merchant.id, slug, image_id)
    return redirect(url_for("merchant.product_images_page", slug=slug), 303)


@bp.post("/products/<slug>/images/<int:image_id>/move")
@scoped
def product_image_move(slug: str, image_id: int):
    offset = {"earlier": -1, "later": 1}.get(request.form.get("direction", ""))
    if offset is None:
        abort(400)
    product_images.move_image(g.merchant.id, slug, image_id, offset)
    return redirect(url_for("merchant.product_images_page", slug=slug, _anchor="gallery"), 303)


@bp.get("/products/<slug>/images/file/<name>")
@scoped
def product_image_file(slug: str, name: str):
    """The back office's preview of the merchant's own image, whether or not the product is
    on sale (the public route serves only products on sale)."""
    stored = product_images.merchant_file(g.merchant.id, slug, name)
    if stored is None:
        abort(404)
    return image_response(stored)
