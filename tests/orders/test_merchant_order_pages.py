"""The merchant's order list and CSV read a long list in pieces (ids first for a page, a
batch at a time for the CSV): what the merchant sees is the list read whole."""

from datetime import timedelta

from sqlalchemy import select, update

from faka.extensions import db
from faka.orders import merchant_orders
from faka.orders.models import Order


def _orders_an_hour_apart(place, product, n: int) -> list[int]:
    """`n` orders, each an hour older than the one before it, and two placed at the same
    moment (the id breaks the tie); their ids newest first."""
    ids = [place(product).id for _ in range(n)]
    first = db.session.get(Order, ids[0]).created_at
    for i, order_id in enumerate(ids):
        when = first - timedelta(hours=i if i != 1 else 0)  # orders 0 and 1: the same moment
        db.session.execute(update(Order).where(Order.id == order_id).values(created_at=when))
    db.session.commit()
    return list(
        db.session.scalars(select(Order.id).where(Order.id.in_(ids)).order_by(Order.created_at.desc(), Order.id.desc()))
    )


def test_every_page_of_the_order_list_holds_the_next_orders_newest_first(app, product, place, monkeypatch):
    monkeypatch.setattr(merchant_orders, "PER_PAGE", 2)
    newest_first = _orders_an_hour_apart(place, product, 5)
    pages = [merchant_orders.search(product.merchant_id, merchant_orders.OrderFilter(), page=n) for n in (1, 2, 3, 4)]
    assert [[o.id for o in p.items] for p in pages] == [newest_first[0:2], newest_first[2:4], newest_first[4:5], []]
    assert [p.total for p in pages] == [5, 5, 5, 5]
    assert pages[2].items[0].product.title == product.title  # loaded with the page


def test_orders_csv_comes_header_first_then_every_order_oldest_first(app, product, place, monkeypatch):
    monkeypatch.setattr(merchant_orders, "EXPORT_BATCH", 2)
    newest_first = _orders_an_hour_apart(place, product, 5)
    numbers = dict(db.session.execute(select(Order.id, Order.number)).tuples().all())
    pieces = list(merchant_orders.export_csv(product.merchant_id, merchant_orders.OrderFilter()))
    assert pieces[0].startswith("number,created_at,status")
    assert len(pieces) == 1 + 3  # the header, then 2 + 2 + 1 orders
    rows = "".join(pieces[1:]).splitlines()
    assert [row.split(",")[0] for row in rows] == [numbers[i] for i in reversed(newest_first)]
