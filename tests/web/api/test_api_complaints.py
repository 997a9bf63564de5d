"""The complaints resource: the merchant's complaint pages behind JSON (the list by
status, one case with its thread, an answer in the thread)."""

import io

from PIL import Image
from sqlalchemy import select

from api.conftest import ApiClient, error_code
from conftest import reload
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintMessage
from faka.extensions import db


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


def complain(place, pay, product, text="The key does not work", images=()) -> Complaint:
    order = place(product)
    pay(order)
    return workflow.open_complaint(reload(order).token, Complaint.KEY_INVALID, text, images=list(images))


def test_list_by_status_oldest_first(api, make_product, place, pay, other_product):
    product = make_product(keys=5)
    first = complain(place, pay, product)
    second = complain(place, pay, product)
    workflow.withdraw(second.id)
    third = complain(place, pay, product)
    theirs = complain(place, pay, other_product, text="FOREIGN-COMPLAINT-7c1e")

    everything = api.get("/api/v1/complaints?limit=2")
    assert everything.status_code == 200
    page = everything.get_json()
    assert [c["ref"] for c in page["items"]] == [first.ref, second.ref]
    rest = api.get(f"/api/v1/complaints?limit=2&cursor={page['next_cursor']}").get_json()
    assert [c["ref"] for c in rest["items"]] == [third.ref]
    active = api.get("/api/v1/complaints?status=active").get_json()["items"]
    assert [c["ref"] for c in active] == [first.ref, third.ref]
    withdrawn = api.get("/api/v1/complaints?status=withdrawn").get_json()["items"]
    assert [(c["ref"], c["status"]) for c in withdrawn] == [(second.ref, "withdrawn")]
    listed = active[0]
    assert listed["order"] == reload(first).order.number
    assert (listed["status"], listed["reason"], listed["description"]) == (
        "open",
        "key_invalid",
        "The key does not work",
    )
    assert listed["deadline_at"] and listed["offer"] is None
    assert theirs.ref not in everything.get_data(as_text=True) + str(rest)
    assert "FOREIGN-COMPLAINT" not in everything.get_data(as_text=True) + str(rest)
    assert error_code(api.get("/api/v1/complaints?status=lost")) == "invalid"


def test_one_complaint_with_its_thread(api, make_product, place, pay, other_product):
    complaint = complain(place, pay, make_product(keys=2), images=[png_bytes()])
    answer = api.get(f"/api/v1/complaints/{complaint.ref}")
    assert answer.status_code == 200
    (opened,) = answer.get_json()["messages"]
    assert (opened["author"], opened["event"], opened["body"], opened["images"]) == (
        "buyer",
        "opened",
        "The key does not work",
        1,
    )
    theirs = complain(place, pay, other_product)
    foreign, missing = api.get(f"/api/v1/complaints/{theirs.ref}"), api.get("/api/v1/complaints/0123456789")
    assert foreign.status_code == missing.status_code == 404 and foreign.get_json() == missing.get_json()


def test_an_answer_stops_the_merchants_clock_and_reaches_the_buyer(api, app, smtp, make_product, place, pay):
    complaint = complain(place, pay, make_product(keys=2))
    deadline = complaint.deadline_at
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)

    answer = api.post(f"/api/v1/complaints/{complaint.ref}/messages", json={"body": "Here is a new key:\nABC"})
    assert answer.status_code == 201
    assert answer.headers["Location"] == f"/api/v1/complaints/{complaint.ref}"
    body = answer.get_json()
    assert body["status"] == "merchant_replied"
    assert [(m["author"], m["body"]) for m in body["messages"]][-1] == ("merchant", "Here is a new key:\nABC")
    complaint = reload(complaint)
    assert complaint.status == Complaint.MERCHANT_REPLIED and complaint.deadline_at > deadline
    assert [m["To"] for m in smtp.messages] == ["buyer@example.com"]
    assert "Here is a new key" in smtp.messages[0].get_body(("plain",)).get_content()


def test_an_answer_is_refused_with_the_back_offices_messages(api, make_product, place, pay, other_product):
    complaint = complain(place, pay, make_product(keys=2))
    empty = api.post(f"/api/v1/complaints/{complaint.ref}/messages", json={"body": "   "})
    assert empty.status_code == 422
    assert empty.get_json()["error"] == {
        "code": "empty_message",
        "message": "Write a message (at most 4,000 characters) or attach an image.",
    }
    too_long = api.post(f"/api/v1/complaints/{complaint.ref}/messages", json={"body": "x" * 4001})
    assert error_code(too_long) == "empty_message"
    missing = api.post(f"/api/v1/complaints/{complaint.ref}/messages", json={})
    assert missing.get_json()["error"]["fields"] == {"body": ["Missing data for required field."]}

    workflow.withdraw(complaint.id)
    closed = api.post(f"/api/v1/complaints/{complaint.ref}/messages", json={"body": "Too late?"})
    assert closed.status_code == 422 and error_code(closed) == "illegal_step"

    theirs = complain(place, pay, other_product)
    assert api.post(f"/api/v1/complaints/{theirs.ref}/messages", json={"body": "Hi"}).status_code == 404
    merchant_posts = select(ComplaintMessage).where(ComplaintMessage.author == ComplaintMessage.MERCHANT)
    assert db.session.execute(merchant_posts).first() is None


def test_answering_needs_the_write_scope(client, make_key, make_product, place, pay):
    complaint = complain(place, pay, make_product(keys=2))
    reader = ApiClient(client, make_key(scopes=["complaints:read"]))
    assert reader.get(f"/api/v1/complaints/{complaint.ref}").status_code == 200
    refused = reader.post(f"/api/v1/complaints/{complaint.ref}/messages", json={"body": "Hi"})
    assert refused.status_code == 403 and error_code(refused) == "insufficient_scope"
    assert reload(complaint).status == Complaint.OPEN
