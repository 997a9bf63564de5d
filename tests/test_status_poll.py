"""The order page's status poll while the order is being delivered."""
import threading

from sqlalchemy import select

from faka.extensions import db
from faka.models import Order, utcnow
from faka.services import delivery, orders


def test_a_poll_racing_the_delivery_shows_the_keys(app, client, product, place, monkeypatch):
    """The poll reads the order's row fresh. If the request had already read something
    before the delivery committed (SQLite keeps that read's snapshot for the whole
    transaction), the keys must not come from that older snapshot: a delivered widget
    without its keys would stop the polling for good."""
    order = place(product)
    order.status, order.paid_at = Order.PAID, utcnow()  # paid, its keys still reserved
    db.session.commit()
    order_id, token = order.id, order.token

    def deliver_elsewhere():
        with app.app_context():
            assert delivery.deliver_order(order_id)
            db.session.remove()

    real_order_status = orders.order_status

    def racing_order_status(token):
        db.session.execute(select(Order.id).limit(1)).all()  # the request's session reads first
        worker = threading.Thread(target=deliver_elsewhere)
        worker.start()
        worker.join()
        return real_order_status(token)

    monkeypatch.setattr(orders, "order_status", racing_order_status)
    final = client.get(f"/order/{token}/status")
    assert final.status_code == 286
    assert final.text.count('class="card-key"') == 1
