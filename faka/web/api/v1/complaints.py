"""Complaints: list them by status, read one with its thread, answer in the thread. The
same service as the back office's complaint pages (faka/complaints/workflow.py): your first
answer stops your deadline and starts the buyer's, the same rules, the same messages.
Evidence images are counted here and seen in the back office; offers (a refund,
replacement keys) are made there too."""

from flask import g, url_for

from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintMessage
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.idempotency import idempotent
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "complaints",
    __name__,
    description="Buyers' complaints about your orders, as on the back office's complaint pages. A complaint's id is "
    "its ref. While one is in progress the order's money is frozen; answer before `deadline_at`, or the platform "
    "decides.",
)

LOCATION = {"Location": {"description": "The complaint's address in this API.", "schema": {"type": "string"}}}


def complaint_answer(complaint: Complaint) -> dict:
    offer = None
    if complaint.has_offer:
        offer = {"kind": complaint.offer_kind, "amount": complaint.offer_amount, "quantity": complaint.offer_quantity}
    return {
        "ref": complaint.ref,
        "order": complaint.order.number,
        "status": complaint.status,
        "reason": complaint.reason,
        "description": complaint.description,
        "deadline_at": complaint.deadline_at,
        "offer": offer,
        "refund_amount": complaint.refund_amount,
        "resolution_note": complaint.resolution_note,
        "created_at": complaint.created_at,
        "updated_at": complaint.updated_at,
        "escalated_at": complaint.escalated_at,
        "resolved_at": complaint.resolved_at,
    }


def message_answer(message: ComplaintMessage) -> dict:
    return {
        "id": message.id,
        "author": message.author,
        "event": message.event,
        "body": message.body,
        "images": len(message.images),
        "created_at": message.created_at,
    }


def _with_thread(complaint: Complaint) -> dict:
    return {**complaint_answer(complaint), "messages": [message_answer(m) for m in complaint.messages]}


@bp.get("/complaints")
@requires("complaints:read")
@bp.arguments(s.ComplaintArgsSchema, location="query")
@bp.response(200, s.ComplaintPageSchema)
def list_complaints(args):
    """List your complaints

    Oldest first; `status=active` for those in progress.
    """
    query = workflow.merchant_complaints_query(g.merchant.id, args["status"])
    page = page_of_query(query, Complaint.id, args["cursor"], args["limit"])
    page["items"] = [complaint_answer(c) for c in page["items"]]
    return page


@bp.get("/complaints/<ref>")
@requires("complaints:read")
@bp.response(200, s.ComplaintDetailSchema)
def get_complaint(ref):
    """Read a complaint with its thread"""
    return _with_thread(workflow.complaint_for_merchant(g.merchant.id, ref))


@bp.post("/complaints/<ref>/messages")
@requires("complaints:write")
@idempotent
@bp.arguments(s.ComplaintReplySchema)
@bp.response(201, s.ComplaintDetailSchema, headers=LOCATION)
def reply(data, ref):
    """Answer in a complaint's thread

    Your first answer stops your deadline and gives the buyer theirs; the buyer (and, once the platform decides,
    the operator) is emailed. Only a complaint in progress takes messages. Answers the complaint with its thread.
    """
    complaint = workflow.complaint_for_merchant(g.merchant.id, ref)
    author_id = g.api_key.created_by or g.merchant.user_id
    workflow.post_message(complaint.id, ComplaintMessage.MERCHANT, author_id, data["body"])
    complaint = workflow.complaint_for_merchant(g.merchant.id, ref)
    return _with_thread(complaint), 201, {"Location": url_for(".get_complaint", ref=ref)}
