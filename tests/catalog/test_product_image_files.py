"""product_images in write_transaction(): a commit that fails after the files were written
removes them, whichever layer the commit is called through."""

import pytest
from sqlalchemy import event, select
from test_product_images import picture_bytes

from faka.catalog import images
from faka.catalog.models import ProductImage
from faka.core.storage import PRODUCTS, storage
from faka.extensions import db


@pytest.fixture(autouse=True)
def empty_media(app):
    storage().delete(PRODUCTS, storage().names(PRODUCTS))
    yield
    storage().delete(PRODUCTS, storage().names(PRODUCTS))


def stored_files() -> set[str]:
    return set(storage().names(PRODUCTS))


def test_a_failed_commit_of_the_image_rows_removes_the_files_it_wrote(product):
    session = db.session()
    flushed = []

    def note(session, _context):
        flushed.extend(o for o in session.new if isinstance(o, ProductImage))

    def refuse(_session):
        if flushed:
            raise RuntimeError("the database went away")

    event.listen(session, "after_flush", note)
    event.listen(session, "before_commit", refuse)
    try:
        with pytest.raises(RuntimeError):
            images.add_images(product.merchant_id, product.slug, "cover", [picture_bytes()])
    finally:
        event.remove(session, "after_flush", note)
        event.remove(session, "before_commit", refuse)
    assert flushed  # the rows were written, and the files with them
    db.session.rollback()
    assert db.session.scalars(select(ProductImage).where(ProductImage.product_id == product.id)).all() == []
    assert stored_files() == set()


def test_a_refused_upload_writes_no_file_and_a_good_one_is_kept(product):
    images.add_images(product.merchant_id, product.slug, "cover", [picture_bytes()])
    kept = stored_files()
    assert kept
    with pytest.raises(images.TooManyFiles):
        images.add_images(product.merchant_id, product.slug, "cover", [picture_bytes(seed=1)] * 2)
    assert stored_files() == kept
    [cover] = db.session.scalars(select(ProductImage).where(ProductImage.product_id == product.id)).all()
    images.remove_image(product.merchant_id, product.slug, cover.id)
    assert stored_files() == set()
