"""The daily settlement check (ledger/settlement.py): balances and reconciliation,
recorded once per day (faka-worker schedules "ledger.tasks.settle_balances" hourly), and
the full check of the books."""

from faka.ledger import settlement


def settle_balances() -> dict:
    event = settlement.settle()
    return {"event": event.id, "detail": event.detail}


def check_all_books() -> dict:
    """The full books check (settlement.refresh_books_check(full=True)): daily after the
    settlement check, and when the operator asks for it."""
    state = settlement.refresh_books_check(full=True)
    return {"checked_at": state.checked_at.isoformat()}


def refresh_books() -> dict:
    """Bring the stored books check up to date (settlement.refresh_books_check): started
    by the reconciliation page when rows were added since the last one."""
    state = settlement.refresh_books_check()
    return {"checked_at": state.checked_at.isoformat()}
