"""Uploads cannot exhaust disk, CPU or memory (issue 17, finding 3): who may upload is
checked before a file is read, a refused request leaves no file, pictures are measured
from their headers before anything is decoded, every upload route is rate-limited, and
what a merchant or an order keeps on disk is bounded."""

import html
import io
import random

import pytest
from PIL import Image

from bench.findings import huge_png
from conftest import count, csrf_from, login, reload
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog.models import ProductImage
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintImage, ComplaintMessage
from faka.core import uploads
from faka.core.storage import PRIVATE, PRODUCTS, storage
from faka.extensions import db
from faka.orders.models import Order
from faka.platform.settings import site_settings

MB = 1024 * 1024
LOCKED = "Your qualification is approved or under review"
EVIDENCE_REFUSED = (
    "each picture may have at most 25 megapixels, and all the pictures of one upload together at most 60 megapixels"
)


# -- pictures -----------------------------------------------------------------------------------


def png(size=(40, 30), colour=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, colour).save(out, "PNG")
    return out.getvalue()


def noise_jpeg(side: int = 300, seed: int = 1) -> bytes:
    """A photo-like JPEG: noise does not compress, so it takes room once stored."""
    out = io.BytesIO()
    Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3)).save(out, "JPEG", quality=90)
    return out.getvalue()


def files(*blobs, field="images"):
    return {field: [(io.BytesIO(blob), f"shot{i}.png") for i, blob in enumerate(blobs)]}


def private_files() -> set[str]:
    return set(storage().names(PRIVATE))


def product_files() -> set[str]:
    return set(storage().names(PRODUCTS))


@pytest.fixture
def never_decoded(monkeypatch):
    """Fails the request (a 500) if any upload is decoded."""

    def refuse(*args, **kwargs):
        raise AssertionError("an upload was decoded")

    monkeypatch.setattr(uploads, "decode", refuse)


# -- clients and objects ------------------------------------------------------------------------


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def client_of(app, user):
    client = english(app.test_client())
    login(client, user)
    return client


def post(client, url: str, data: dict, page: str | None = None):
    """A multipart POST with the CSRF token of `page` (default: the lookup page)."""
    token = csrf_from(client.get(page or "/lookup").text)
    return client.post(url, data={"csrf_token": token, **data}, content_type="multipart/form-data")


def text_of(response) -> str:
    return html.unescape(response.text)


@pytest.fixture
def delivered(product, place, pay) -> Order:
    order = place(product)
    assert pay(order).text == "success"
    return reload(order)


@pytest.fixture
def complaint(delivered) -> Complaint:
    return workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "The key is already redeemed.")


@pytest.fixture
def seller(app, merchant):
    return client_of(app, merchant.user)


@pytest.fixture
def desk(app, operator):
    return client_of(app, operator)


def applicant(app):
    """A merchant that has not submitted its qualification, and its logged-in client."""
    merchant = users.create_merchant(f"new{count(Merchant)}@shop.test", "merchant-pass-1", "New Shop")
    return merchant, client_of(app, merchant.user)


QUALIFICATION = {
    "legal_name": "张三",
    "entity_type": "individual",
    "id_number": "11010519491231002X",
    "contact": "13800000000",
}


def submit(client, image: bytes | None = None):
    data = dict(QUALIFICATION)
    if image is not None:
        data["licence_image"] = (io.BytesIO(image), "licence.png")
    return post(client, "/merchant/qualification", data, page="/merchant/qualification")


def thread_url(order: Order, complaint: Complaint) -> str:
    return f"/order/{order.token}/complaint/{complaint.ref}"


# -- the qualification (the review's first finding) --------------------------------------------


def test_a_refused_qualification_leaves_no_file(app):
    merchant, client = applicant(app)
    assert submit(client, png()).status_code == 303
    first = reload(merchant).licence_image
    before = private_files()
    again = submit(client, png(colour=(0, 90, 0)))  # under review: may not change it
    assert again.status_code == 400 and LOCKED in text_of(again)
    assert private_files() == before
    assert reload(merchant).licence_image == first


def test_an_approved_merchant_is_refused_before_the_body_is_read(app, merchant, seller):
    before = private_files()
    response = post(
        seller,
        "/merchant/qualification",
        {**QUALIFICATION, "licence_image": (io.BytesIO(b"\0" * (30 * MB)), "licence.png")},
        page="/merchant/",
    )
    assert response.status_code == 400 and LOCKED in text_of(response)  # not "too large": never read
    assert private_files() == before and reload(merchant).status == Merchant.APPROVED


def test_a_licence_over_the_shops_quota_is_refused_and_not_kept(make_app):
    app = make_app(MERCHANT_STORAGE_QUOTA=10_000)
    with app.app_context():
        merchant, client = applicant(app)
        before = private_files()
        response = submit(client, noise_jpeg())
        assert response.status_code == 400
        assert "Your shop's pictures take" in text_of(response)
        assert "Remove some product images first, or ask the platform for more room." in text_of(response)
        assert private_files() == before
        merchant = reload(merchant)
        assert merchant.submitted_at is None and merchant.licence_image is None


def test_a_licence_over_25_megapixels_is_refused_with_the_limit(app, never_decoded):
    merchant, client = applicant(app)
    before = private_files()
    response = submit(client, huge_png(6000, 5000))
    assert response.status_code == 400
    assert "Too large to take: a picture may have at most 25 megapixels." in text_of(response)
    assert private_files() == before and reload(merchant).submitted_at is None


def test_a_resubmitted_licence_replaces_the_old_file(app):
    merchant, client = applicant(app)
    assert submit(client, png()).status_code == 303
    old = reload(merchant).licence_image
    merchant.status, merchant.rejection_reason = Merchant.REJECTED, "blurred"
    db.session.commit()
    assert submit(client, png(colour=(0, 0, 200))).status_code == 303
    new = reload(merchant).licence_image
    assert new != old and new in private_files() and old not in private_files()


# -- evidence pictures measured before decoding (the second finding) -----------------------------


def test_a_set_of_5000_pixel_square_evidence_is_refused_before_decoding(app, delivered, never_decoded):
    buyer = english(app.test_client())
    url = f"/order/{delivered.token}/complaint"
    before = private_files()
    response = post(
        buyer,
        url,
        {"reason": "key_invalid", "description": "Screenshots attached.", **files(*[huge_png()] * 3)},
        page=url,
    )
    assert response.status_code == 400
    assert EVIDENCE_REFUSED in text_of(response)
    assert private_files() == before
    assert count(Complaint) == 0 and count(ComplaintImage) == 0


@pytest.mark.parametrize("who", ["buyer", "merchant", "operator"])
def test_every_party_is_held_to_the_pixel_budget(app, who, merchant, operator, delivered, complaint, never_decoded):
    client, url = {
        "buyer": (english(app.test_client()), thread_url(delivered, complaint)),
        "merchant": (client_of(app, merchant.user), f"/merchant/complaints/{complaint.ref}"),
        "operator": (client_of(app, operator), f"/operator/complaints/{complaint.ref}"),
    }[who]
    before, messages = private_files(), count(ComplaintMessage)
    response = post(
        client, f"{url}/message", {"body": "See these.", **files(huge_png(), huge_png(), huge_png())}, page=url
    )
    assert response.status_code == 400 and EVIDENCE_REFUSED in text_of(response)
    assert private_files() == before and count(ComplaintMessage) == messages


def test_pictures_within_the_budget_are_taken(app, delivered):
    buyer = english(app.test_client())
    url = f"/order/{delivered.token}/complaint"
    response = post(
        buyer,
        url,
        {
            "reason": "key_invalid",
            "description": "Screenshots attached.",
            **files(huge_png(5000, 5000), huge_png(5000, 1000)),
        },
        page=url,
    )
    assert response.status_code == 303
    assert count(ComplaintImage) == 2


def test_a_product_gallery_over_100_megapixels_is_refused_before_decoding(app, seller, product, never_decoded):
    page = seller.get(f"/merchant/products/{product.slug}/images")
    response = seller.post(
        f"/merchant/products/{product.slug}/images",
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_from(page.text),
            "role": "gallery",
            **files(*[huge_png(6000, 6000)] * 3, field="image"),
        },
    )
    assert response.status_code == 400
    assert (
        "each picture may have at most 40 megapixels, and all the pictures of one upload together at most 100 "
        "megapixels"
    ) in text_of(response)
    assert count(ProductImage) == 0


# -- rate limits (the third finding) ---------------------------------------------------------------


def test_merchant_complaint_posts_are_rate_limited(make_app, merchant, delivered):
    app = make_app(RATELIMIT_COMPLAINT_REPLY="2 per minute")
    with app.app_context():
        complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "The key is already redeemed.")
        seller = client_of(app, merchant.user)
        url = f"/merchant/complaints/{complaint.ref}"
        statuses = [post(seller, f"{url}/message", {"body": f"answer {i}"}, page=url).status_code for i in range(2)]
        assert statuses == [303, 303]
        limited = post(seller, f"{url}/message", {"body": "answer 3", **files(png())}, page=url)
        assert limited.status_code == 429
        assert "You are going too fast" in limited.text and limited.headers["Retry-After"]
        offer = post(seller, f"{url}/offer/refund", {"amount": "1.00"}, page=url)
        assert offer.status_code == 429  # one budget for all of a merchant's complaint posts
        assert count(ComplaintMessage, ComplaintMessage.body == "answer 3") == 0
        assert reload(complaint).offer_kind is None


def test_operator_complaint_posts_are_rate_limited(make_app, operator, delivered):
    app = make_app(RATELIMIT_COMPLAINT_REPLY="1 per minute")
    with app.app_context():
        complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "The key is already redeemed.")
        desk = client_of(app, operator)
        url = f"/operator/complaints/{complaint.ref}"
        assert post(desk, f"{url}/message", {"body": "Looking into it."}, page=url).status_code == 303
        assert post(desk, f"{url}/message", {"body": "Again."}, page=url).status_code == 429


def test_back_office_uploads_share_one_rate_limit(make_app, merchant, make_product):
    app = make_app(RATELIMIT_UPLOAD="2 per minute")
    with app.app_context():
        product = make_product(keys=0)
        seller = client_of(app, merchant.user)
        images = f"/merchant/products/{product.slug}/images"
        keys = f"/merchant/products/{product.slug}/keys"
        assert (
            post(seller, images, {"role": "cover", **files(png((300, 300)), field="image")}, page=images).status_code
            == 303
        )
        assert post(seller, keys, {"keys": "KEY-1", "separator": "newline"}, page=keys).status_code == 200
        before = product_files()
        limited = post(seller, images, {"role": "gallery", **files(png((300, 300)), field="image")}, page=images)
        assert limited.status_code == 429 and "You are going too fast" in limited.text
        assert product_files() == before and count(ProductImage) == 1
        assert post(seller, "/merchant/qualification", QUALIFICATION, page="/merchant/").status_code == 429


def test_the_site_logo_is_rate_limited(make_app, operator):
    app = make_app(RATELIMIT_UPLOAD="1 per minute")
    with app.app_context():
        desk = client_of(app, operator)
        assert (
            post(
                desk, "/operator/settings/logo", {"logo": (io.BytesIO(png()), "logo.png")}, page="/operator/settings"
            ).status_code
            == 303
        )
        assert (
            post(
                desk, "/operator/settings/logo", {"logo": (io.BytesIO(png()), "logo.png")}, page="/operator/settings"
            ).status_code
            == 429
        )


# -- who may upload is decided before the body is read --------------------------------------------


def test_an_unknown_order_is_a_404_before_the_body_is_read(app, delivered):
    buyer = english(app.test_client())
    response = post(
        buyer,
        "/order/no-such-token/complaint",
        {"reason": "key_invalid", "description": "x", **files(b"\0" * (30 * MB))},
    )
    assert response.status_code == 404


def test_a_closed_complaint_takes_no_more_images(app, delivered, complaint):
    workflow.withdraw(complaint.id)
    buyer = english(app.test_client())
    url = thread_url(delivered, complaint)
    before, messages = private_files(), count(ComplaintMessage)
    for images in ([png()], [b"\0" * (30 * MB)]):  # refused the same way, whatever was sent: nothing is read
        response = post(buyer, f"{url}/message", {"body": "One more thing.", **files(*images)})
        assert response.status_code == 400
        assert "This complaint cannot take that step in its current state." in text_of(response)
    assert private_files() == before and count(ComplaintMessage) == messages


def test_a_complaint_that_cannot_be_opened_reads_no_evidence(app, product, place):
    order = place(product)  # not paid: nothing to complain about yet
    buyer = english(app.test_client())
    url = f"/order/{order.token}/complaint"
    before = private_files()
    response = post(buyer, url, {"reason": "key_invalid", "description": "x", **files(b"\0" * (30 * MB))})
    assert response.status_code == 400 and "This order cannot get a complaint." in text_of(response)
    assert private_files() == before and count(Complaint) == 0


def test_another_merchants_product_is_a_404_before_the_body_is_read(app, product):
    other = users.create_merchant("other@shop.test", "merchant-pass-1", "Other Shop", approved=True)
    client = client_of(app, other.user)
    for path in ("images", "keys"):
        response = post(
            client,
            f"/merchant/products/{product.slug}/{path}",
            {"role": "cover", "image": (io.BytesIO(b"\0" * (30 * MB)), "x.png")},
            page="/merchant/",
        )
        assert response.status_code == 404, path


def test_an_upload_without_its_csrf_token_is_refused_and_stores_nothing(app, delivered):
    url = f"/order/{delivered.token}/complaint"
    before = private_files()
    response = english(app.test_client()).post(
        url, data={"reason": "key_invalid", "description": "x", **files(png())}, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and "The form expired" in response.text
    merchant, client = applicant(app)
    licence = client.post(
        "/merchant/qualification",
        data={**QUALIFICATION, "licence_image": (io.BytesIO(png()), "l.png")},
        content_type="multipart/form-data",
    )
    assert licence.status_code == 400 and "The form expired" in licence.text
    assert private_files() == before and count(Complaint) == 0 and reload(merchant).submitted_at is None


# -- request size -----------------------------------------------------------------------------------


def test_an_oversized_licence_upload_gets_a_page_naming_the_limit(app):
    merchant, client = applicant(app)
    response = submit(client, b"\0" * (6 * MB))
    assert response.status_code == 413
    assert "The upload is too large. This form takes at most 1 file, 5 MB in all." in text_of(response)
    assert reload(merchant).submitted_at is None


def test_too_many_evidence_files_get_a_page_naming_the_limit(app, delivered):
    buyer = english(app.test_client())
    url = f"/order/{delivered.token}/complaint"
    before = private_files()
    response = post(buyer, url, {"reason": "key_invalid", "description": "x", **files(*[png()] * 40)}, page=url)
    assert response.status_code == 413
    assert "This form takes at most 5 files, 24 MB in all." in text_of(response)
    assert private_files() == before and count(Complaint) == 0


# -- storage quotas -----------------------------------------------------------------------------------


def test_a_shop_out_of_room_is_told_so_and_nothing_is_stored(make_app, merchant, make_product):
    app = make_app(MERCHANT_STORAGE_QUOTA=60_000)
    with app.app_context():
        product = make_product(keys=0)
        seller = client_of(app, merchant.user)
        url = f"/merchant/products/{product.slug}/images"
        before = product_files()
        response = post(
            seller, url, {"role": "gallery", **files(noise_jpeg(600, 1), noise_jpeg(600, 2), field="image")}, page=url
        )
        assert response.status_code == 400
        assert "Your shop's pictures take 0 MB of the 0.1 MB it may store." in text_of(response)
        assert product_files() == before and count(ProductImage) == 0
        assert (
            post(seller, url, {"role": "cover", **files(png((300, 300)), field="image")}, page=url).status_code == 303
        )


def test_a_full_shop_is_refused_before_the_body_is_read(make_app, merchant, make_product):
    app = make_app(MERCHANT_STORAGE_QUOTA=1_000)
    with app.app_context():
        product = make_product(keys=0)
        seller = client_of(app, merchant.user)
        url = f"/merchant/products/{product.slug}/images"
        db.session.get(Merchant, merchant.id).licence_image = uploads.store_image(noise_jpeg())  # it alone fills it
        db.session.commit()
        response = post(seller, url, {"role": "cover", "image": (io.BytesIO(b"\0" * (30 * MB)), "x.png")}, page=url)
        assert response.status_code == 400 and "Remove some product images first" in text_of(response)


def test_an_orders_evidence_is_bounded_but_text_still_goes_through(make_app, delivered):
    app = make_app(ORDER_EVIDENCE_QUOTA=40_000)  # room for two of these, stored: not for three
    with app.app_context():
        complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "Bad key.", [noise_jpeg(150, 1)])
        buyer = english(app.test_client())
        url = thread_url(delivered, complaint)
        before, images = private_files(), count(ComplaintImage)
        response = post(
            buyer, f"{url}/message", {"body": "More.", **files(noise_jpeg(150, 2), noise_jpeg(150, 3))}, page=url
        )
        assert response.status_code == 400
        assert "The complaint images of this order take" in text_of(response)
        assert "Send it without images, or with fewer or smaller ones." in text_of(response)
        assert private_files() == before and count(ComplaintImage) == images
        assert post(buyer, f"{url}/message", {"body": "Text only."}, page=url).status_code == 303


# -- the site logo --------------------------------------------------------------------------------------


def test_a_replaced_or_removed_logo_leaves_no_file(app, desk):
    logos = []
    for colour in ((10, 10, 10), (200, 200, 200)):
        assert (
            post(
                desk,
                "/operator/settings/logo",
                {"logo": (io.BytesIO(png(colour=colour)), "logo.png")},
                page="/operator/settings",
            ).status_code
            == 303
        )
        logos.append(site_settings()["logo"])
    assert logos[1] in private_files() and logos[0] not in private_files()
    assert post(desk, "/operator/settings/logo", {"remove": "1"}, page="/operator/settings").status_code == 303
    assert site_settings()["logo"] == "" and logos[1] not in private_files()
