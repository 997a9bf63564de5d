"""Several workers, each scheduling the periodic jobs (faka/worker.py): started together,
they run the same job side by side, and the result is as if it had run once."""

from datetime import timedelta

from sqlalchemy import update

from conftest import count, reload, run_together
from faka.core import clock
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger import settlement
from faka.ledger.models import LedgerEntry
from faka.ledger.tasks import settle_balances
from faka.messaging.models import OutboxEmail
from faka.ops.reconcile import reconcile
from faka.orders.models import Order
from faka.platform.models import AuditEvent

WORKERS = 4


def test_daily_settlement_run_by_workers_at_once_is_recorded_once(app, merchant):
    _results, errors = run_together(app, WORKERS, lambda _i: settle_balances())
    assert errors == []
    assert count(AuditEvent, AuditEvent.action == settlement.DAILY_ACTION) == 1


def test_reconcilers_at_once_expire_and_deliver_each_order_once(app, make_product, place):
    product = make_product(keys=3)
    stale, paid = place(product), place(product)
    db.session.execute(update(Order).where(Order.id == stale.id).values(expires_at=clock.now() - timedelta(minutes=1)))
    db.session.execute(update(Order).where(Order.id == paid.id).values(status=Order.PAID, paid_at=clock.now()))
    db.session.commit()

    _results, errors = run_together(app, WORKERS, lambda _i: reconcile())

    assert errors == []
    assert reload(stale).status == Order.EXPIRED
    assert reload(paid).status == Order.DELIVERED
    assert count(CardKey, CardKey.status == CardKey.SOLD) == 1
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 2
    assert count(LedgerEntry, LedgerEntry.order_id == paid.id, LedgerEntry.kind == LedgerEntry.SALE) == 1
    assert count(OutboxEmail, OutboxEmail.order_id == paid.id) == 1
