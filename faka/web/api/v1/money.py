"""Money: the balance as the back office's Money page shows it, and the ledger it is summed
from (faka/ledger/balances.py). Reads only: withdrawals and payout accounts ask for a
second factor, which a program cannot give, so they stay in the back office."""

from flask import current_app, g

from faka.ledger import balances
from faka.ledger.models import LedgerEntry
from faka.web.api.v1 import schemas_more as s
from faka.web.api.v1.auth import requires
from faka.web.api.v1.pagination import page_of_query
from faka.web.api.v1.resource import Resource

bp = Resource(
    "money",
    __name__,
    description="Your balance and the ledger it is summed from, as on the back office's Money page. Amounts are "
    "minor units; ledger amounts are signed (a fee or a refund is negative).",
)


@bp.get("/balance")
@requires("money:read")
@bp.response(200, s.BalanceSchema)
def get_balance():
    """Read your balance

    `available` is settled and yours to withdraw; `pending` still in the settlement hold; `frozen` belongs to
    orders with a complaint in progress. Withdrawals in flight and paid are already deducted from `available`.
    """
    balance = balances.balance(g.merchant.id)
    return {
        "available": balance.available,
        "pending": balance.pending,
        "frozen": balance.frozen,
        "withdrawing": balance.withdrawing,
        "withdrawn": balance.withdrawn,
        "total": balance.total,
        "currency": current_app.config["CURRENCY"],
    }


@bp.get("/ledger")
@requires("money:read")
@bp.arguments(s.LedgerArgsSchema, location="query")
@bp.response(200, s.LedgerPageSchema)
def list_ledger(args):
    """List your ledger entries

    Oldest first; by kind and by the time they were written (`created_from` inclusive, `created_to` exclusive).
    A sale is credited with its fee debited beside it; a refund takes the sale back and returns the fee's share.
    """
    query = balances.ledger_query(g.merchant.id, args["kind"], args["created_from"], args["created_to"])
    page = page_of_query(query, LedgerEntry.id, args["cursor"], args["limit"])
    numbers = balances.order_numbers(e.order_id for e in page["items"])
    page["items"] = [
        {
            "id": e.id,
            "kind": e.kind,
            "amount": e.amount,
            "order": numbers.get(e.order_id),
            "withdrawal_id": e.withdrawal_id,
            "available_at": e.available_at,
            "created_at": e.created_at,
        }
        for e in page["items"]
    ]
    return page
