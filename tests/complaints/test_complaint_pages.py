"""The complaint center's pages: a buyer opens a complaint from the order page with
evidence images, the merchant answers and offers, the buyer accepts or escalates, the
operator decides from the desk; who may see which page and image; emails; bad input;
HTMX; and a phone-sized screen."""

import io
import re
from datetime import timedelta

import pyotp
import pytest
from PIL import Image
from sqlalchemy import func, select, update

from faka.accounts import users
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintImage, ComplaintMessage
from faka.core.crypto import vault
from faka.core.storage import PRIVATE, storage
from faka.core.types import utcnow
from faka.extensions import db
from faka.ledger import balances
from faka.ledger.models import LedgerEntry
from faka.orders.models import Order
from faka.payments.models import Refund
from faka.platform.models import AuditEvent
from tests.conftest import (
    csrf_from,
    key_texts,
    logged_in_session,
    login,
    no_horizontal_scroll,
    reload,
    signed_notify,
    with_totp,
)

DESCRIPTION = "The key says 'already redeemed' on the first try.\nScreenshot attached."


# -- helpers ----------------------------------------------------------------------------


def png_bytes(color=(200, 30, 30)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), color).save(out, "PNG")
    return out.getvalue()


def jpeg_with_exif() -> bytes:
    exif = Image.Exif()
    exif[0x010F] = "SecretCam"  # Make
    exif[0x0131] = "LeakySoftware 1.0"  # Software
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (20, 120, 200)).save(out, "JPEG", exif=exif.tobytes())
    data = out.getvalue()
    assert Image.open(io.BytesIO(data)).getexif().get(0x010F) == "SecretCam"
    return data


def files(*blobs, names=None):
    names = names or [f"shot{i}.png" for i in range(len(blobs))]
    return [(io.BytesIO(blob), name) for blob, name in zip(blobs, names)]


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def token_of(client) -> str:
    """A CSRF token for this client's session (from a page every visitor can open)."""
    return csrf_from(client.get("/lookup").text)


def count(model, *where) -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).select_from(model).where(*where))


def private_files() -> set[str]:
    return set(storage().names(PRIVATE))


def evidence_urls(html: str) -> list[str]:
    return sorted(set(re.findall(r'<img src="([^"]+/evidence/[^"]+)"', html)))


def thread_url(order: Order, complaint: Complaint) -> str:
    return f"/order/{order.token}/complaint/{complaint.ref}"


def open_by_page(client, order: Order, images=(), reason="key_invalid", description=DESCRIPTION):
    page = f"/order/{order.token}/complaint"
    data = {"csrf_token": csrf_from(client.get(page).text), "reason": reason, "description": description}
    if images:
        data["images"] = list(images)
    return client.post(page, data=data, content_type="multipart/form-data")


def post_complaint(client, order: Order):
    """Post the complaint form without opening it first (it may not be offered)."""
    return client.post(
        f"/order/{order.token}/complaint",
        data={"csrf_token": token_of(client), "reason": "other", "description": "again"},
        content_type="multipart/form-data",
    )


def post(client, url: str, data: dict | None = None, page: str | None = None, **kwargs):
    """POST `data` to `url` with the CSRF token of `page` (default: the lookup page)."""
    token = csrf_from(client.get(page).text) if page else token_of(client)
    return client.post(url, data={"csrf_token": token, **(data or {})}, **kwargs)


# -- fixtures ---------------------------------------------------------------------------


@pytest.fixture
def buyer(app):
    return english(app.test_client())


@pytest.fixture
def seller(app, merchant):
    client = english(app.test_client())
    login(client, merchant.user)
    return client


@pytest.fixture
def desk(app, operator):
    client = english(app.test_client())
    login(client, operator)
    return client


@pytest.fixture
def delivered(product, place, pay) -> Order:
    order = place(product)
    assert pay(order).text == "success"
    order = reload(order)
    assert order.status == Order.DELIVERED
    return order


@pytest.fixture
def complaint(delivered) -> Complaint:
    """An open complaint with one evidence image, opened through the service."""
    return workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, DESCRIPTION, [png_bytes()])


def escalate_by_deadline(complaint: Complaint) -> None:
    """The merchant stays silent past the deadline and the periodic job escalates."""
    db.session.execute(
        update(Complaint).where(Complaint.id == complaint.id).values(deadline_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    assert workflow.run_deadlines().escalated == 1


# -- the buyer opens, the merchant offers, the buyer accepts ------------------------------


def test_buyer_opens_with_evidence_merchant_offers_partial_refund_buyer_accepts(buyer, seller, merchant, delivered):
    order_page = buyer.get(f"/order/{delivered.token}").text
    assert f'href="/order/{delivered.token}/complaint"' in order_page

    response = open_by_page(buyer, delivered, files(png_bytes(), jpeg_with_exif(), names=["a.png", "b.jpg"]))
    assert response.status_code == 303
    complaint = db.session.execute(select(Complaint).where(Complaint.order_id == delivered.id)).scalar_one()
    assert response.headers["Location"].endswith(thread_url(delivered, complaint))

    page = buyer.get(thread_url(delivered, complaint))
    assert page.status_code == 200
    assert "already redeemed" in page.text and "Waiting for the seller" in page.text
    assert "The seller has until" in page.text
    assert "Ask the platform to decide" not in page.text  # not before the seller's deadline
    images = evidence_urls(page.text)
    assert len(images) == 2
    for url in images:
        image = buyer.get(url)
        assert image.status_code == 200 and image.mimetype in ("image/png", "image/jpeg")
        assert image.headers["Cache-Control"] == "private, no-store"
        assert image.headers["X-Content-Type-Options"] == "nosniff"
        assert b"SecretCam" not in image.data and b"LeakySoftware" not in image.data
        assert dict(Image.open(io.BytesIO(image.data)).getexif()) == {}

    # The merchant finds it, sees the evidence, answers and offers 4.00 of the 10.00.
    listing = seller.get("/merchant/complaints")
    assert listing.status_code == 200 and delivered.number in listing.text
    case = seller.get(f"/merchant/complaints/{complaint.ref}")
    assert case.status_code == 200 and "already redeemed" in case.text and "Answer by" in case.text
    merchant_images = evidence_urls(case.text)
    assert len(merchant_images) == 2 and seller.get(merchant_images[0]).status_code == 200
    detail = f"/merchant/complaints/{complaint.ref}"
    assert post(seller, f"{detail}/message", {"body": "Sorry! Let me check."}, page=detail).status_code == 303
    response = post(
        seller, f"{detail}/offer/refund", {"amount": "4.00", "note": "Half-used, so a partial refund."}, page=detail
    )
    assert response.status_code == 303

    page = buyer.get(thread_url(delivered, complaint)).text
    assert "Sorry! Let me check." in page and "Half-used, so a partial refund." in page
    assert "The seller offers a refund of ¥4.00." in page
    assert "Accept the refund" in page and "Ask the platform to decide" in page
    before = balances.balance(merchant.id).total

    response = post(buyer, f"{thread_url(delivered, complaint)}/accept", page=thread_url(delivered, complaint))
    assert response.status_code == 303

    assert reload(complaint).status == Complaint.RESOLVED_REFUND
    order = reload(delivered)
    assert order.status == Order.PARTIALLY_REFUNDED and order.refunded_amount == 400
    order_page = buyer.get(f"/order/{delivered.token}").text
    assert "Resolved: refunded" in order_page and "¥4.00" in order_page
    assert "Open a complaint" not in order_page  # decided: not again
    refund_entry = db.session.execute(
        select(LedgerEntry).where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.REFUND)
    ).scalar_one()
    assert refund_entry.amount == -400 and refund_entry.merchant_id == merchant.id
    fee_back = db.session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount), 0)).where(
            LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.FEE_RETURN
        )
    )
    assert balances.balance(merchant.id).total == before - 400 + fee_back
    assert "Write to the seller" not in buyer.get(thread_url(delivered, complaint)).text  # closed: no more messages


def test_merchant_offers_replacement_keys_which_reach_the_order_page(buyer, seller, complaint, delivered):
    detail = f"/merchant/complaints/{complaint.ref}"
    response = post(seller, f"{detail}/offer/replacement", {"quantity": "1"}, page=detail)
    assert response.status_code == 303
    assert "1 replacement key" in buyer.get(thread_url(delivered, complaint)).text
    response = post(buyer, f"{thread_url(delivered, complaint)}/accept", page=thread_url(delivered, complaint))
    assert response.status_code == 303
    assert reload(complaint).status == Complaint.RESOLVED_REPLACED
    keys = key_texts(delivered)
    assert len(keys) == 2
    order_page = buyer.get(f"/order/{delivered.token}").text
    assert all(key in order_page for key in keys)


# -- escalation and the operator's decision -----------------------------------------------


def test_silent_merchant_is_escalated_and_operator_rejects_with_a_reason_the_buyer_reads(
    buyer, desk, complaint, delivered
):
    escalate_by_deadline(complaint)
    queue = desk.get("/operator/complaints")
    assert queue.status_code == 200 and delivered.number in queue.text
    case_url = f"/operator/complaints/{complaint.ref}"
    case = desk.get(case_url)
    assert case.status_code == 200 and "Record the decision" in case.text
    assert "already redeemed" in case.text and len(evidence_urls(case.text)) == 1
    assert delivered.number in case.text and "Payment notices" in case.text

    reason = "The key was redeemed from the buyer's own account before the complaint."
    response = post(desk, f"{case_url}/decide", {"outcome": "reject", "reason": reason}, page=case_url)
    assert response.status_code == 303

    assert reload(complaint).status == Complaint.RESOLVED_REJECTED
    assert reload(delivered).status == Order.DELIVERED and count(Refund) == 0
    page = buyer.get(thread_url(delivered, complaint)).text
    assert "Resolved: rejected" in page and "The platform’s decision" in page
    assert "redeemed from the buyer&#39;s own account" in page


def test_buyer_escalates_after_the_deadline_and_operator_refunds_in_full(buyer, desk, complaint, delivered):
    db.session.execute(
        update(Complaint).where(Complaint.id == complaint.id).values(deadline_at=utcnow() - timedelta(minutes=1))
    )
    db.session.commit()
    url = thread_url(delivered, complaint)
    page = buyer.get(url).text
    assert "The seller did not answer by" in page and "Ask the platform to decide" in page
    assert post(buyer, f"{url}/escalate", page=url).status_code == 303
    assert reload(complaint).status == Complaint.ESCALATED

    case_url = f"/operator/complaints/{complaint.ref}"
    response = post(
        desk,
        f"{case_url}/decide",
        {"outcome": "refund", "amount": "10.00", "reason": "The seller did not answer."},
        page=case_url,
    )
    assert response.status_code == 303
    assert reload(complaint).status == Complaint.RESOLVED_REFUND
    assert reload(delivered).status == Order.REFUNDED
    page = buyer.get(url).text
    assert "Resolved: refunded" in page and "Refunded: ¥10.00" in page and "The seller did not answer." in page
    case = desk.get(case_url).text
    assert "Refunded through the gateway" in case  # the sandbox refunds at once


def test_operator_pays_a_manual_refund_with_a_reference(desk, complaint, delivered, operator):
    escalate_by_deadline(complaint)
    workflow.decide(complaint.id, operator.id, 500, "Half, the key worked once.")
    refund = db.session.execute(select(Refund).where(Refund.order_id == delivered.id)).scalar_one()
    refund.status = Refund.MANUAL  # as when the gateway cannot refund
    db.session.commit()

    listing = desk.get("/operator/refunds")
    assert listing.status_code == 200 and delivered.number in listing.text and "Mark paid" in listing.text
    response = post(desk, f"/operator/refunds/{refund.id}/paid", {"reference": ""}, page="/operator/refunds")
    assert response.status_code == 400 and "Enter the payment" in response.text
    assert reload(refund).status == Refund.MANUAL
    response = post(
        desk, f"/operator/refunds/{refund.id}/paid", {"reference": "ALI-20260101-42"}, page="/operator/refunds"
    )
    assert response.status_code == 303
    refund = reload(refund)
    assert refund.status == Refund.PAID and refund.reference == "ALI-20260101-42"
    assert "ALI-20260101-42" in desk.get("/operator/refunds?status=paid").text


def test_operator_reveal_of_delivered_keys_is_audited(desk, operator, complaint, delivered):
    case_url = f"/operator/complaints/{complaint.ref}"
    [key] = key_texts(delivered)
    case = desk.get(case_url).text
    assert key not in case and "••••" + key[-4:] in case
    assert count(AuditEvent, AuditEvent.action == workflow.KEYS_REVEALED) == 0
    asked = post(desk, f"{case_url}/reveal", page=case_url)
    assert asked.status_code == 303 and "/reauth" in asked.headers["Location"] and key not in asked.text
    secret = vault().decrypt(reload(operator).totp_secret)
    assert (
        post(
            desk, "/reauth", {"password": "operator-pass-1", "code": pyotp.TOTP(secret).now()}, page="/reauth"
        ).status_code
        == 303
    )
    response = post(desk, f"{case_url}/reveal", page=case_url)
    assert response.status_code == 200 and key in response.text
    assert response.headers["Cache-Control"] == "private, no-store"
    event = db.session.execute(select(AuditEvent).where(AuditEvent.action == workflow.KEYS_REVEALED)).scalar_one()
    assert event.target == f"complaint:{complaint.ref}"
    assert key not in desk.get(case_url).text  # masked again on the next look


def test_merchant_list_filters_by_status(seller, complaint, delivered):
    assert delivered.number in seller.get("/merchant/complaints").text
    assert delivered.number in seller.get("/merchant/complaints?status=open").text
    assert delivered.number not in seller.get("/merchant/complaints?status=withdrawn").text


def test_operator_queue_filters(desk, complaint, delivered, merchant):
    assert delivered.number not in desk.get("/operator/complaints").text  # default: waiting for a decision
    assert delivered.number in desk.get("/operator/complaints?status=active").text
    assert delivered.number in desk.get(f"/operator/complaints?status=all&merchant={merchant.id}").text
    assert delivered.number not in desk.get(f"/operator/complaints?status=all&merchant={merchant.id + 1}").text
    assert delivered.number in desk.get(f"/operator/complaints?status=all&order={delivered.number}").text
    assert delivered.number not in desk.get("/operator/complaints?status=all&reason=other").text


# -- who may see what ---------------------------------------------------------------------

BUYER_ROUTES = [
    ("GET", "/order/{token}/complaint"),
    ("POST", "/order/{token}/complaint"),
    ("GET", "/order/{token}/complaint/{ref}"),
    ("GET", "/order/{token}/complaint/{ref}/thread"),
    ("POST", "/order/{token}/complaint/{ref}/message"),
    ("POST", "/order/{token}/complaint/{ref}/accept"),
    ("POST", "/order/{token}/complaint/{ref}/escalate"),
    ("POST", "/order/{token}/complaint/{ref}/withdraw"),
    ("GET", "/order/{token}/complaint/{ref}/evidence/{name}"),
]
MERCHANT_ROUTES = [
    ("GET", "/merchant/complaints/{ref}"),
    ("GET", "/merchant/complaints/{ref}/thread"),
    ("POST", "/merchant/complaints/{ref}/message"),
    ("POST", "/merchant/complaints/{ref}/offer/refund"),
    ("POST", "/merchant/complaints/{ref}/offer/replacement"),
    ("GET", "/merchant/complaints/{ref}/evidence/{name}"),
]
OPERATOR_ROUTES = [
    ("GET", "/operator/complaints"),
    ("GET", "/operator/complaints/{ref}"),
    ("GET", "/operator/complaints/{ref}/thread"),
    ("POST", "/operator/complaints/{ref}/message"),
    ("POST", "/operator/complaints/{ref}/reveal"),
    ("POST", "/operator/complaints/{ref}/decide"),
    ("GET", "/operator/complaints/{ref}/evidence/{name}"),
    ("GET", "/operator/refunds"),
    ("POST", "/operator/refunds/{refund_id}/paid"),
]
# (who asks, the routes, the token used for buyer routes, what they must get)
ACCESS_TABLE = (
    [("stranger", method, path, "random", 404) for method, path in BUYER_ROUTES[2:]]
    + [("stranger", method, path, "random", 404) for method, path in BUYER_ROUTES[:2]]
    + [("other buyer", method, path, "other", 404) for method, path in BUYER_ROUTES[2:]]
    + [("other merchant", method, path, None, 404) for method, path in MERCHANT_ROUTES]
    + [("anonymous", method, path, None, "login") for method, path in MERCHANT_ROUTES + OPERATOR_ROUTES]
    + [("anonymous htmx", method, path, None, 403) for method, path in MERCHANT_ROUTES + OPERATOR_ROUTES]
    + [("merchant", method, path, None, 403) for method, path in OPERATOR_ROUTES]
)

FORM_FIELDS = {
    "body": "let me in",
    "reason": "key_invalid",
    "description": "x",
    "amount": "1.00",
    "quantity": "1",
    "outcome": "refund",
    "reference": "X-1",
}


def snapshot(complaint: Complaint, order: Order) -> tuple:
    db.session.commit()
    c = db.session.get(Complaint, complaint.id)
    o = db.session.get(Order, order.id)
    return (
        c.status,
        c.offer_kind,
        c.offer_amount,
        o.status,
        o.refunded_amount,
        count(Complaint),
        count(ComplaintMessage),
        count(ComplaintImage),
        count(Refund),
        count(AuditEvent),
        db.session.scalar(select(func.count()).select_from(Refund).where(Refund.status == Refund.PAID)),
        frozenset(private_files()),
    )


@pytest.mark.parametrize(
    "who, method, path, token, expected", ACCESS_TABLE, ids=[f"{w}-{m}-{p}" for w, m, p, _t, _e in ACCESS_TABLE]
)
def test_complaint_urls_refuse_who_must_not_see_them(
    app, who, method, path, token, expected, complaint, delivered, place, product, operator
):
    other_order = place(product)
    escalate_by_deadline(complaint)  # decide and reveal would otherwise refuse for their own reasons
    refund_order = place(product)
    refund = Refund(
        order_id=refund_order.id,
        merchant_id=refund_order.merchant_id,
        amount=100,
        gateway="sandbox",
        status=Refund.MANUAL,
    )
    db.session.add(refund)
    db.session.commit()
    name = db.session.execute(
        select(ComplaintImage.name).where(ComplaintImage.complaint_id == complaint.id)
    ).scalar_one()
    tokens = {"random": "0" * 32, "other": other_order.token, None: delivered.token}
    url = path.format(token=tokens[token], ref=complaint.ref, name=name, refund_id=refund.id)

    client = app.test_client()
    headers = {}
    if who == "other merchant":
        login(client, users.create_merchant("other@shop.test", "merchant-pass-2", "Other Shop", approved=True).user)
    elif who == "merchant":
        login(client, complaint.merchant.user)
    elif who == "anonymous htmx":
        headers = {"HX-Request": "true"}
    data = {"csrf_token": token_of(client), **FORM_FIELDS} if method == "POST" else None
    before = snapshot(complaint, delivered)

    response = client.open(url, method=method, data=data, headers=headers)

    if expected == "login":
        assert response.status_code == 303 and "/login" in response.headers["Location"]
    else:
        assert response.status_code == expected
    assert b"already redeemed" not in response.data
    assert snapshot(complaint, delivered) == before


def test_the_parties_and_the_operator_each_see_the_evidence(buyer, seller, desk, complaint, delivered):
    name = db.session.execute(
        select(ComplaintImage.name).where(ComplaintImage.complaint_id == complaint.id)
    ).scalar_one()
    for client, url in (
        (buyer, f"{thread_url(delivered, complaint)}/evidence/{name}"),
        (seller, f"/merchant/complaints/{complaint.ref}/evidence/{name}"),
        (desk, f"/operator/complaints/{complaint.ref}/evidence/{name}"),
    ):
        response = client.get(url)
        assert response.status_code == 200 and response.mimetype == "image/jpeg"  # RGB is re-encoded as JPEG
        assert response.headers["Cache-Control"] == "private, no-store"
        assert client.get(url.replace(name, "0" * 32 + ".png")).status_code == 404


def test_an_image_of_another_complaint_is_not_served_under_this_one(buyer, complaint, delivered, product, place, pay):
    other = place(product)
    pay(other)
    other_complaint = workflow.open_complaint(other.token, Complaint.OTHER, "Mine", [png_bytes((1, 2, 3))])
    other_name = db.session.execute(
        select(ComplaintImage.name).where(ComplaintImage.complaint_id == other_complaint.id)
    ).scalar_one()
    assert buyer.get(f"{thread_url(delivered, complaint)}/evidence/{other_name}").status_code == 404


# -- emails ---------------------------------------------------------------------------------


def link_in(message, prefix: str) -> str:
    body = message.get_body(preferencelist=("plain",)).get_content()
    match = re.search(rf"http://localhost({re.escape(prefix)}\S*)", body)
    assert match, body
    return match.group(1)


def test_each_message_emails_the_other_party_with_their_link(app, smtp, buyer, seller, merchant, complaint, delivered):
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    detail = f"/merchant/complaints/{complaint.ref}"
    assert post(seller, f"{detail}/message", {"body": "Which error do you see?"}, page=detail).status_code == 303
    [to_buyer] = [m for m in smtp.messages if m["To"] == "buyer@example.com"]
    assert link_in(to_buyer, "/order/") == thread_url(delivered, complaint)
    assert "Which error do you see?" in to_buyer.get_body(preferencelist=("plain",)).get_content()
    assert buyer.get(link_in(to_buyer, "/order/")).status_code == 200

    smtp.messages.clear()
    url = thread_url(delivered, complaint)
    assert post(buyer, f"{url}/message", {"body": "Error 42, see above."}, page=url).status_code == 303
    [to_merchant] = smtp.messages
    assert to_merchant["To"] == merchant.user.email
    assert link_in(to_merchant, "/merchant/") == detail
    assert seller.get(detail).status_code == 200


# -- bad input -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "images, message",
    [
        ([png_bytes((i * 40, 0, 0)) for i in range(6)], "Attach at most 5 images."),
        ([png_bytes(), b"GIF89a not really an image"], "Upload a PNG, JPEG or WebP image of at most 5 MB."),
        ([b"%PDF-1.4 a document"], "Upload a PNG, JPEG or WebP image of at most 5 MB."),
    ],
    ids=["six images", "one good one bad", "a pdf"],
)
def test_refused_uploads_open_nothing_and_leave_no_files(buyer, delivered, images, message):
    before = private_files()
    response = open_by_page(buyer, delivered, files(*images))
    assert response.status_code == 400 and message in response.text
    assert "already redeemed" in response.text  # what was typed is kept
    assert count(Complaint) == 0 and count(ComplaintImage) == 0
    assert private_files() == before


def test_a_complaint_needs_a_reason_and_a_description(buyer, delivered):
    response = open_by_page(buyer, delivered, reason="", description="   ")
    assert response.status_code == 400 and "Choose a reason and describe the problem" in response.text
    assert count(Complaint) == 0


def test_a_second_complaint_is_refused_while_one_is_open(buyer, complaint, delivered):
    assert buyer.get(f"/order/{delivered.token}/complaint").status_code == 303  # to the open one
    response = post_complaint(buyer, delivered)
    assert response.status_code == 400 and "already has a complaint in progress" in response.text
    assert count(Complaint) == 1


def test_an_order_not_yet_delivered_cannot_get_a_complaint(buyer, product, place):
    order = place(product)
    page = buyer.get(f"/order/{order.token}/complaint")
    assert page.status_code == 200 and "Send the complaint" not in page.text
    response = post_complaint(buyer, order)
    assert response.status_code == 400 and "This order cannot get a complaint." in response.text
    assert count(Complaint) == 0


def test_empty_message_is_refused_and_nothing_is_added(buyer, complaint, delivered):
    url = thread_url(delivered, complaint)
    messages = count(ComplaintMessage)
    response = post(buyer, f"{url}/message", {"body": "   "}, page=url)
    assert response.status_code == 400 and "Write a message" in response.text
    assert count(ComplaintMessage) == messages


def test_refund_offer_above_the_total_is_refused(seller, complaint):
    detail = f"/merchant/complaints/{complaint.ref}"
    for amount in ("10.01", "0", "abc"):
        response = post(seller, f"{detail}/offer/refund", {"amount": amount}, page=detail)
        assert response.status_code == 400
        assert "The refund must be more than zero and at most the order total." in response.text
    complaint = reload(complaint)
    assert complaint.status == Complaint.OPEN and complaint.offer_kind is None


def test_decision_needs_a_reason_and_a_valid_amount(desk, complaint, delivered):
    escalate_by_deadline(complaint)
    case_url = f"/operator/complaints/{complaint.ref}"
    response = post(desk, f"{case_url}/decide", {"outcome": "reject", "reason": "  "}, page=case_url)
    assert response.status_code == 400 and "Write the reason for the decision" in response.text
    response = post(desk, f"{case_url}/decide", {"outcome": "refund", "amount": "99.00", "reason": "x"}, page=case_url)
    assert response.status_code == 400 and "at most the order total" in response.text
    response = post(desk, f"{case_url}/decide", {"reason": "no outcome"}, page=case_url)
    assert response.status_code == 400 and "Choose to refund the buyer or to reject" in response.text
    assert reload(complaint).status == Complaint.ESCALATED
    assert reload(delivered).status == Order.DELIVERED and count(Refund) == 0


def test_buyer_cannot_escalate_before_the_sellers_deadline(buyer, complaint, delivered):
    url = thread_url(delivered, complaint)
    response = post(buyer, f"{url}/escalate", page=url)
    assert response.status_code == 400 and "you can ask the platform after that" in response.text
    assert reload(complaint).status == Complaint.OPEN


def test_buyer_posts_are_rate_limited(app, buyer, complaint, delivered, place, product):
    app.config["RATELIMIT_COMPLAINT"] = "2 per minute"
    url = thread_url(delivered, complaint)
    statuses = [post(buyer, f"{url}/message", {"body": f"message {i}"}, page=url).status_code for i in range(3)]
    assert statuses == [303, 303, 429]
    assert post_complaint(buyer, delivered).status_code == 429  # one budget for all of the order's posts
    other = place(product)
    assert post_complaint(buyer, other).status_code == 400  # another order has its own: not delivered


# -- HTMX -------------------------------------------------------------------------------------


def test_htmx_message_gets_the_thread_back_and_polling_stops_once_resolved(buyer, complaint, delivered):
    url = thread_url(delivered, complaint)
    token = csrf_from(buyer.get(url).text)
    response = buyer.post(
        f"{url}/message",
        data={"body": "Any news?", "images": files(png_bytes())},
        headers={"HX-Request": "true", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200
    assert "<html" not in response.text and 'id="thread"' in response.text and "Any news?" in response.text
    assert 'id="message-form"' in response.text and 'hx-swap-oob="true"' in response.text
    assert len(evidence_urls(response.text)) == 2

    failed = buyer.post(
        f"{url}/message",
        data={"body": ""},
        headers={"HX-Request": "true", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert failed.status_code == 400 and "<html" not in failed.text and "Write a message" in failed.text

    poll = buyer.get(f"{url}/thread", headers={"HX-Request": "true"})
    assert poll.status_code == 200 and 'hx-trigger="every 15s"' in poll.text
    assert post(buyer, f"{url}/withdraw", page=url).status_code == 303
    poll = buyer.get(f"{url}/thread", headers={"HX-Request": "true"})
    assert poll.status_code == 286 and "Closed" in poll.text and "hx-trigger" not in poll.text


def test_merchant_htmx_answer_moves_the_complaint_on(seller, complaint):
    detail = f"/merchant/complaints/{complaint.ref}"
    token = csrf_from(seller.get(detail).text)
    response = seller.post(
        f"{detail}/message",
        data={"body": "On it."},
        headers={"HX-Request": "true", "X-CSRFToken": token},
        content_type="multipart/form-data",
    )
    assert response.status_code == 200 and "The seller answered" in response.text and "<html" not in response.text
    assert reload(complaint).status == Complaint.MERCHANT_REPLIED


# -- a phone screen ------------------------------------------------------------------------------


def browser_login(phone, app, base: str, user) -> None:
    """Give the browser the session cookie the login form would have set."""
    cookie = app.session_interface.get_signing_serializer(app).dumps({**logged_in_session(user), "lang": "en"})
    phone.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])


def test_buyer_complaint_page_and_operator_case_fit_a_phone(live_server, make_product, place, phone):
    app, base = live_server
    product = make_product(keys=2, title="Steam 钱包充值卡 100 元 · 全球通用 · 自动发货")
    order = place(product)
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    app.extensions["faka_jobs"].wait_idle()  # delivery runs in a background thread here
    order = reload(order)
    assert order.status == Order.DELIVERED
    long_text = "密钥无法激活，提示已被使用。" * 20 + "\n" + "x" * 200
    complaint = workflow.open_complaint(order.token, Complaint.KEY_INVALID, long_text, [png_bytes(), jpeg_with_exif()])
    escalate_by_deadline(complaint)

    phone.goto(f"{base}/order/{order.token}/complaint/{complaint.ref}?lang=en")
    assert phone.locator(".message").count() >= 2
    assert phone.locator(".evidence img").count() == 2
    assert no_horizontal_scroll(phone)
    phone.goto(f"{base}/order/{order.token}?lang=en")
    assert phone.locator("#complaint").count() == 1
    assert no_horizontal_scroll(phone)

    operator = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(operator)
    browser_login(phone, app, base, operator)
    phone.goto(f"{base}/operator/complaints/{complaint.ref}")
    assert phone.locator("text=Record the decision").count() == 1
    assert no_horizontal_scroll(phone)
    phone.goto(f"{base}/operator/complaints")
    assert no_horizontal_scroll(phone)
    assert phone.console_errors == []
