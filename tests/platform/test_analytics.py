"""Merchant analytics: the dashboard's numbers match the orders in the database, day by
local day, for that merchant only; the sales chart is safe, accessible SVG."""

import secrets
import xml.etree.ElementTree as ET
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
from flask import render_template
from flask_babel import force_locale
from markupsafe import Markup
from sqlalchemy import event

from conftest import reload
from faka.accounts import users
from faka.catalog.models import Product
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.orders.models import Order
from faka.platform.analytics import DailySales, StockAlert, dashboard
from faka.web.charts import bar_chart, bar_chart_svg, daily_sales_chart

SHANGHAI = ZoneInfo("Asia/Shanghai")
TODAY = date(2026, 3, 20)
NOW = datetime.combine(TODAY, time(12, 0), tzinfo=SHANGHAI).astimezone(UTC)
SVG = "{http://www.w3.org/2000/svg}"


def local(days_ago: int, hour: int = 10, minute: int = 0, today: date = TODAY) -> datetime:
    """A moment in Shanghai, `days_ago` local days before `today`, as UTC."""
    day = today - timedelta(days=days_ago)
    return datetime.combine(day, time(hour, minute), tzinfo=SHANGHAI).astimezone(UTC)


@pytest.fixture
def sell(place, pay):
    """A real order, placed and paid through the sandbox gateway, then moved to the
    chosen moments (and refunded if asked)."""

    def sell_order(
        product: Product,
        paid_at: datetime,
        quantity: int = 1,
        created_at: datetime | None = None,
        refunded: bool = False,
    ) -> Order:
        order = place(product, quantity, password=None)
        assert pay(order).status_code == 200
        order = reload(order)
        assert order.status == Order.DELIVERED
        order.paid_at = paid_at
        order.created_at = created_at or paid_at - timedelta(minutes=5)
        if refunded:
            order.mark_refunded(paid_at + timedelta(hours=1))
        db.session.commit()
        return order

    return sell_order


@pytest.fixture
def unpaid(place):
    def unpaid_order(product: Product, created_at: datetime, expired: bool = False) -> Order:
        order = reload(place(product, 1, password=None))
        order.created_at = created_at
        if expired:
            order.mark_expired()
        db.session.commit()
        return order

    return unpaid_order


def other_merchant_product(category, keys: int = 20, price: int = 1000, **fields) -> Product:
    other = users.create_merchant(f"o{secrets.token_hex(4)}@shop.test", "merchant-pass-1", "Other", approved=True)
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=other.id,
        category_id=category.id,
        price=price,
        title=fields.pop("title", "Other product"),
        **fields,
    )
    db.session.add(product)
    db.session.commit()
    if keys:
        import_keys(
            product.variants[0], "\n".join(f"OTHER-{product.id}-{i}-{secrets.token_hex(3)}" for i in range(keys))
        )
    return product


# -- the numbers -------------------------------------------------------------------------


def test_dashboard_figures_match_the_orders(merchant, make_product, sell, unpaid):
    a = make_product(keys=20, price=1000, title="Card A")
    b = make_product(keys=20, price=2500, title="Card B")
    # today
    sell(a, local(0, 10), quantity=2)
    sell(b, local(0, 11))
    unpaid(a, local(0, 9))
    # within 7 days
    sell(a, local(3), refunded=True)
    sell(b, local(3, 15))
    unpaid(b, local(2), expired=True)
    # within 30 days
    sell(b, local(10), quantity=2)
    sell(a, local(29, 0, 0), created_at=local(29, 0, 0))  # the first moment of the 30-day window
    # before the window
    sell(a, local(30, 23, 59))
    sell(b, local(45))

    d = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai")

    assert (d.today.sales, d.today.refunded, d.today.orders_paid, d.today.orders_refunded) == (4500, 0, 2, 0)
    assert (d.today.orders_created, d.today.created_and_paid) == (3, 2)
    assert d.today.conversion == 2 / 3
    assert d.today.refund_rate == 0.0

    week = d.last_7_days
    assert (week.sales, week.refunded, week.net_sales) == (8000, 1000, 7000)
    assert (week.orders_paid, week.orders_refunded, week.orders_created) == (4, 1, 6)
    assert week.conversion == 4 / 6
    assert week.refund_rate == 0.25

    month = d.last_30_days
    assert (month.sales, month.refunded, month.orders_paid, month.orders_created) == (14000, 1000, 6, 8)
    assert month.conversion == 6 / 8
    assert month.refund_rate == 1 / 6
    assert month.start == local(29, 0, 0) and month.end == local(-1, 0, 0)

    for window in d.windows:
        assert window.complaints == 0
    assert month.complaint_rate == 0

    assert [(p.title, p.orders, p.units, p.revenue) for p in d.top_products] == [
        ("Card B", 3, 4, 10000),
        ("Card A", 3, 4, 4000),
    ]
    assert sum(p.revenue for p in d.top_products) == month.sales


def test_daily_sales_has_every_local_day_including_empty_ones(merchant, make_product, sell):
    product = make_product(keys=10, price=1200)
    sell(product, local(0, 8), quantity=2)
    sell(product, local(0, 20))
    sell(product, local(3))
    sell(product, local(29, 0, 0))

    daily = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").daily_sales

    assert [d.day for d in daily] == [TODAY - timedelta(days=29 - i) for i in range(30)]
    expected = {TODAY: (3600, 2), TODAY - timedelta(days=3): (1200, 1), TODAY - timedelta(days=29): (1200, 1)}
    assert daily == [DailySales(d.day, *expected.get(d.day, (0, 0))) for d in daily]
    assert daily[-1] == (TODAY, 3600, 2)  # plain (date, revenue, orders) tuples


def test_days_are_local_days_in_the_site_timezone(app, merchant, make_product, sell):
    product = make_product(keys=10, price=100)
    sell(product, local(2, 23, 30))  # 15:30 UTC, same calendar day
    sell(product, local(1, 0, 30), created_at=local(2, 23, 50))  # 16:30 UTC the day before
    sell(product, local(1, 0, 0))  # local midnight opens the day
    sell(product, local(1, 23, 59))

    by_day = {d.day: d.orders for d in dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").daily_sales}
    assert by_day[TODAY - timedelta(days=2)] == 1
    assert by_day[TODAY - timedelta(days=1)] == 3

    # The same orders bucketed by UTC days: the 00:30 and midnight orders move back a day.
    by_utc_day = {d.day: d.orders for d in dashboard(merchant.id, now=NOW, tz="UTC").daily_sales}
    assert by_utc_day[TODAY - timedelta(days=2)] == 3
    assert by_utc_day[TODAY - timedelta(days=1)] == 1

    # Without `tz` the site's configured time zone applies.
    app.config["BABEL_DEFAULT_TIMEZONE"] = "UTC"
    assert dashboard(merchant.id, now=NOW).daily_sales == dashboard(merchant.id, now=NOW, tz="UTC").daily_sales


def test_today_starts_at_local_midnight(merchant, make_product, sell):
    product = make_product(keys=10, price=700)
    just_after_midnight = local(0, 0, 10)  # 16:10 UTC, still "yesterday" in UTC
    sell(product, local(1, 23, 50))
    sell(product, local(0, 0, 5), created_at=local(1, 23, 58))

    d = dashboard(merchant.id, now=just_after_midnight, tz="Asia/Shanghai")

    assert (d.today.sales, d.today.orders_paid) == (700, 1)
    # The one paid today was created yesterday: no order created today, so no conversion.
    assert d.today.orders_created == 0 and d.today.conversion is None
    assert (d.last_7_days.orders_created, d.last_7_days.conversion) == (2, 1.0)


def test_empty_dashboard_has_zeros_and_no_rates(merchant):
    d = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai")
    for window in d.windows:
        assert (window.sales, window.orders_created, window.orders_paid) == (0, 0, 0)
        assert window.conversion is None and window.refund_rate is None and window.complaint_rate is None
    assert len(d.daily_sales) == 30 and all(day.revenue == 0 and day.orders == 0 for day in d.daily_sales)
    assert d.top_products == [] and d.stock_alerts == []
    assert d.currency == "CNY" and d.timezone == "Asia/Shanghai"


def test_another_merchants_orders_never_count(merchant, category, make_product, sell):
    mine = make_product(keys=10, price=1000, title="Mine")
    theirs = other_merchant_product(category, keys=10, price=9900, title="Theirs", low_stock_threshold=50)
    sell(theirs, local(0), quantity=3)
    sell(theirs, local(5), refunded=True)
    other_merchant_id = theirs.merchant_id

    d = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai")
    for window in d.windows:
        assert (window.sales, window.orders_created, window.orders_paid, window.refunded) == (0, 0, 0, 0)
    assert all(day.revenue == 0 for day in d.daily_sales)
    assert d.top_products == [] and d.stock_alerts == []

    sell(mine, local(0))
    d = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai")
    assert (d.last_30_days.sales, d.last_30_days.orders_created) == (1000, 1)
    assert [p.title for p in d.top_products] == ["Mine"]

    theirs_view = dashboard(other_merchant_id, now=NOW, tz="Asia/Shanghai")
    assert (theirs_view.last_30_days.sales, theirs_view.last_30_days.refunded) == (39600, 9900)
    assert [p.title for p in theirs_view.top_products] == ["Theirs"]
    assert [a.title for a in theirs_view.stock_alerts] == ["Theirs"]


def test_top_products_are_the_five_best_by_revenue(merchant, make_product, sell):
    products = [make_product(keys=12, price=100 * (i + 1), title=f"P{i}") for i in range(7)]
    for product in products:
        sell(product, local(1))
    sell(products[0], local(40), quantity=5)  # old sales do not count
    sell(products[1], local(2), quantity=3)  # P1: 200 + 600 = 800

    top = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").top_products

    assert [(p.title, p.revenue) for p in top] == [("P1", 800), ("P6", 700), ("P5", 600), ("P4", 500), ("P3", 400)]
    assert top[0].orders == 2 and top[0].units == 4


def test_stock_alerts_follow_thresholds_and_ignore_reserved_keys(merchant, make_product, sell, place):
    sold_out = make_product(keys=0, title="sold out, no threshold")
    plenty = make_product(keys=3, title="in stock, no threshold")
    at_threshold = make_product(keys=5, low_stock_threshold=5, title="at threshold")
    above = make_product(keys=6, low_stock_threshold=5, title="one above threshold")
    reserved = make_product(keys=6, low_stock_threshold=5, title="reservations count down")
    place(reserved, 2, password=None)  # 4 available, 2 reserved
    sold = make_product(keys=3, low_stock_threshold=2, title="sales count down")
    sell(sold, local(0))
    make_product(keys=0, title="deleted", deleted_at=NOW)
    make_product(keys=0, delivery_type="fixed", title="fixed delivery")
    make_product(keys=0, delivery_type="manual", title="manual delivery")
    assert plenty and above

    alerts = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").stock_alerts

    assert alerts == [
        StockAlert(sold_out.id, "sold out, no threshold", 0, 0),
        StockAlert(sold.id, "sales count down", 2, 2),
        StockAlert(reserved.id, "reservations count down", 4, 5),
        StockAlert(at_threshold.id, "at threshold", 5, 5),
    ]


def test_dashboard_runs_the_same_few_queries_whatever_the_data(app, merchant, make_product, sell, unpaid):
    statements = []
    merchant_id = merchant.id

    def count(conn, cursor, statement, *args):
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append(statement)

    def queries() -> int:
        db.session.commit()
        statements.clear()
        event.listen(db.engine, "before_cursor_execute", count)
        try:
            dashboard(merchant_id, now=NOW, tz="Asia/Shanghai")
        finally:
            event.remove(db.engine, "before_cursor_execute", count)
        return len(statements)

    product = make_product(keys=30, price=500, low_stock_threshold=100)
    empty = queries()
    for days_ago in range(0, 30, 2):
        sell(product, local(days_ago))
        unpaid(product, local(days_ago, 9), expired=True)
    make_product(keys=1, low_stock_threshold=2, title="second alert")

    assert queries() == empty == 5


# -- the chart ---------------------------------------------------------------------------


def _bars(svg: str) -> list[ET.Element]:
    return ET.fromstring(svg).findall(f"{SVG}rect")


def test_sales_chart_draws_one_bar_per_day_in_proportion(merchant, make_product, sell):
    product = make_product(keys=10, price=1250)
    sell(product, local(0), quantity=4)  # 5000, the largest day
    sell(product, local(1), quantity=2)  # 2500
    sell(product, local(10))  # 1250
    daily = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").daily_sales

    with force_locale("en"):
        chart = daily_sales_chart(daily)
    root = ET.fromstring(str(chart.svg))
    bars = _bars(str(chart.svg))

    assert root.get("role") == "img" and root.get("aria-label") == "Sales per day, last 30 days"
    assert root.get("width") == "100%" and root.get("viewBox") == "0 0 640 200"
    assert len(bars) == 30
    heights = [float(bar.get("height")) for bar in bars]
    revenues = [day.revenue for day in daily]
    tallest = max(heights)
    assert heights.index(tallest) == revenues.index(max(revenues)) == 29
    assert tallest == 200 - 20 - 20  # the largest value fills the plot
    for height, revenue in zip(heights, revenues):
        assert height == pytest.approx(tallest * revenue / 5000, abs=0.01)
    texts = [t.text for t in root.findall(f"{SVG}text")]
    assert texts[0] == "¥50.00"  # the y axis maximum, formatted as money
    assert texts[1:] == [day.day.strftime("%m-%d") for day in daily[4::5]]  # every 5 days, ending today
    assert bars[29].find(f"{SVG}title").text == f"{TODAY:%m-%d}: ¥50.00"
    assert bars[28].find(f"{SVG}title").text == f"{TODAY - timedelta(days=1):%m-%d}: ¥25.00"
    assert "style=" not in chart.svg and "<script" not in chart.svg
    assert chart.rows[-1] == (f"{TODAY:%m-%d}", "¥50.00")


def test_chart_escapes_labels_written_by_merchants(merchant, make_product, sell):
    evil = '<script>alert("x")</script> & "Co"'
    sell(make_product(keys=2, price=123456, title=evil), local(0))
    top = dashboard(merchant.id, now=NOW, tz="Asia/Shanghai").top_products

    svg = bar_chart_svg([(p.title, p.revenue) for p in top], label=evil)

    assert "<script" not in svg and "style=" not in svg
    root = ET.fromstring(svg)
    assert root.get("aria-label") == evil and root.find(f"{SVG}title").text == evil
    bar = _bars(svg)[0]
    assert bar.find(f"{SVG}title").text == f"{evil}: ¥1,234.56"
    assert [t.text for t in root.findall(f"{SVG}text")] == ["¥1,234.56", evil]


def test_chart_of_counts_and_of_nothing():
    counts = bar_chart_svg([("a", 1234567), ("b", 0)], money=False, width=300, height=100)
    assert [t.text for t in ET.fromstring(counts).findall(f"{SVG}text")] == ["1,234,567", "a", "b"]
    assert [float(b.get("height")) for b in _bars(counts)] == [100 - 40, 0]

    zeros = bar_chart_svg([("a", 0), ("b", 0)])
    assert [float(b.get("height")) for b in _bars(zeros)] == [0, 0]
    assert ET.fromstring(bar_chart_svg([])).findall(f"{SVG}rect") == []


def test_chart_partial_shows_the_svg_and_its_numbers_as_a_table(app):
    chart = bar_chart(
        [("03-19", 100), ("<b>03-20</b>", 250)], caption="Sales <now>", label_heading="Day", value_heading="Sales"
    )
    with app.test_request_context():
        html = render_template("merchant/_sales_chart.html", chart=chart)
        bare = render_template("merchant/_sales_chart.html", chart=Markup(bar_chart_svg([("x", 1)])))

    assert html.lstrip().startswith('<figure class="chart">') and html.rstrip().endswith("</figure>")
    assert "<figcaption>Sales &lt;now&gt;</figcaption>" in html
    assert str(chart.svg) in html
    assert '<table class="chart-data">' in html
    assert '<tr><th scope="row">03-19</th><td>¥1.00</td></tr>' in html
    assert "&lt;b&gt;03-20&lt;/b&gt;" in html and "<b>" not in html
    assert "style=" not in html and "<script" not in html

    assert "<svg" in bare and "chart-data" not in bare and "<figcaption>" in bare
