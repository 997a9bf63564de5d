"""The daily settlement check (ledger/settlement.py): balances and reconciliation,
recorded once per day; faka-worker schedules "ledger.tasks.settle_balances" hourly."""

from faka.ledger import settlement


def settle_balances() -> dict:
    event = settlement.settle()
    return {"event": event.id, "detail": event.detail}
