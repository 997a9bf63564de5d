"""SQL statements per storefront page with 10 and with 1,000 products on sale: home, a
product, searches, a category tab, the orders and a shop page. They must be equal: a page
runs the same statements whatever the size of the catalogue (faka/catalog/search.py).

    .venv/bin/python bench/query_counts.py [--database-url URL] [--orders N]

On a throw-away instance (a temp dir as FAKA_INSTANCE_PATH, SQLite in it by default), built
by the migrations as `flask init-db` builds a real one, with the page cache off so that each
request renders. Statements are counted at the driver (bench/run.py's count_queries).
With --orders N (e.g. 100000), N delivered orders of the last 30 days are added first, and
the "popular" order's sales sum is timed. With --database-url the database must be empty;
its tables are dropped at the end.
"""

import argparse
import os
import secrets
import statistics
import sys
import tempfile
import time
from datetime import timedelta
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import quote

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

SIZES = (10, 1000)
TRANSACTION = ("BEGIN", "BEGIN IMMEDIATE", "COMMIT", "ROLLBACK")
KEYED = 8  # products with a key in stock: the rest show "sold out", the stock query runs alike


def pages(product_slug: str, shop: str, category_id: int) -> dict[str, str]:
    return {
        "home": "/",
        "product": f"/p/{product_slug}",
        "search 3 CJK chars": "/?q=" + quote("充值卡"),
        "search 1 CJK char": "/?q=" + quote("卡"),
        "search a word": "/?q=steam",
        "category tab": f"/?category={category_id}",
        "popular": "/?sort=popular",
        "price, search, tab": f"/?q=steam&category={category_id}&sort=price",
        "shop": f"/shop/{shop}",
        "shop search": f"/shop/{shop}?q=" + quote("充值"),
    }


def sent(statements: list[str]) -> int:
    """The statements faka sent. SQLite's trace also reports, prefixed with "--", the ones
    its FTS5 module runs on its shadow tables to answer a MATCH: their number follows the
    index's segments and the query's trigrams, not the page."""
    return sum(1 for s in statements if not s.startswith("--") and s.strip().upper() not in TRANSACTION)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default=None, help="an empty database; default: SQLite in a temp dir")
    parser.add_argument("--orders", type=int, default=0, help="delivered orders to add before measuring")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as instance:
        os.environ["FAKA_INSTANCE_PATH"] = instance
        from flask_migrate import upgrade
        from run import count_queries
        from sqlalchemy import func, insert, select, text

        from faka import create_app
        from faka.accounts import users
        from faka.accounts.models import Merchant
        from faka.catalog import search
        from faka.catalog.models import Category, Product
        from faka.catalog.variants import product_with_one_variant
        from faka.core.types import utcnow
        from faka.extensions import db
        from faka.inventory.keys import import_keys
        from faka.orders.models import Order
        from faka.platform.dbcopy import drop_everything

        # The test client asks for "localhost": the platform's own host, as a real shop's
        # visitors do (another host looks the stores' domains up, kept 30 s: docs/substores.md).
        config = {"JOBS_MODE": "sync", "PAGE_CACHE_SECONDS": 0, "BASE_URL": "http://localhost"}
        if args.database_url:
            config["SQLALCHEMY_DATABASE_URI"] = args.database_url
        app = create_app(config)
        with app.app_context():
            upgrade()
            user = users.create_operator("bench@example.com", "bench-password-1", "Bench shop")
            shop = db.session.scalar(select(Merchant).where(Merchant.user_id == user.id))
            games, software = Category(name="游戏点卡", position=1), Category(name="软件", position=2)
            db.session.add_all([games, software])
            db.session.commit()
            ids = {"shop": shop.public_id, "merchant": shop.id, "games": games.id, "software": software.id}

        def fill(count: int) -> None:
            with app.app_context():
                have = db.session.scalar(select(func.count()).select_from(Product))
                for i in range(have, count):
                    db.session.add(
                        product_with_one_variant(
                            slug=secrets.token_hex(8),
                            merchant_id=ids["merchant"],
                            category_id=ids["games"] if i % 2 else ids["software"],
                            title=f"Steam 钱包充值卡 {i}" if i % 3 else f"Windows 激活码 {i}",
                            description_md="自动发货，付款后立即显示卡密。Instant delivery.",
                            price=100 + i * 7 % 5000,
                            position=i,
                        )
                    )
                db.session.commit()
                if have < KEYED:
                    for product in db.session.scalars(select(Product).order_by(Product.id).limit(KEYED)):
                        import_keys(product.variants[0], f"BENCH-{product.id}-{secrets.token_hex(4)}")
                if db.engine.dialect.name == "postgresql":
                    # As autovacuum does within a minute of a big import: without statistics the
                    # planner guesses one product and computes each one's n-grams (docs/search.md).
                    db.session.execute(text("ANALYZE"))
                    db.session.commit()

        def add_orders(count: int) -> float:
            """`count` delivered orders spread over the last 30 days; the sales sum's time."""
            with app.app_context():
                variant_of = {p.id: p.variants[0].id for p in db.session.scalars(select(Product))}
                rows = sorted(variant_of)
                now = utcnow()
                batch = []
                for n in range(count):
                    product_id = rows[n % len(rows)]
                    batch.append(
                        {
                            "number": f"B{n:015d}",
                            "token": secrets.token_hex(16),
                            "product_id": product_id,
                            "variant_id": variant_of[product_id],
                            "merchant_id": ids["merchant"],
                            "quantity": 1 + n % 3,
                            "unit_price": 100,
                            "total": 100,
                            "currency": "CNY",
                            "status": Order.DELIVERED,
                            "gateway": "sandbox",
                            "created_at": now - timedelta(days=n % 30, hours=n % 24),
                            "expires_at": now,
                        }
                    )
                    if len(batch) == 5000:
                        db.session.execute(insert(Order), batch)
                        batch.clear()
                if batch:
                    db.session.execute(insert(Order), batch)
                db.session.commit()
                times = []
                for _ in range(5):
                    started = time.perf_counter()
                    search._units_sold()
                    times.append(time.perf_counter() - started)
                    db.session.rollback()
                if db.engine.dialect.name == "postgresql":
                    db.session.execute(text("ANALYZE"))
                    db.session.commit()
                return statistics.median(times)

        counts: dict[int, dict] = {}
        slug = None
        for size in SIZES:
            fill(size)
            with app.app_context():
                slug = slug or db.session.scalar(select(Product.slug).order_by(Product.id))
            if size == SIZES[-1] and args.orders:
                seconds = add_orders(args.orders)
                print(f"{args.orders:,} delivered orders: the sales sum for 'popular' takes {seconds * 1000:.1f} ms")
            counts[size] = count_queries(SimpleNamespace(app=app), pages(slug, ids["shop"], ids["games"]))
        client = app.test_client()
        render_ms = {}
        for name, path in pages(slug, ids["shop"], ids["games"]).items():
            times = []
            for _ in range(15):
                started = time.perf_counter()
                client.get(path)
                times.append(time.perf_counter() - started)
            render_ms[name] = statistics.median(times) * 1000

        database = "PostgreSQL" if args.database_url else "SQLite"
        print(f"SQL statements per page ({database}, page cache off), with {SIZES[0]} and {SIZES[-1]:,} products")
        print(f"{'page':<22} {SIZES[0]:>6} {SIZES[-1]:>6}  equal  ms at {SIZES[-1]:,} (median of 15, in-process)")
        unequal = []
        for name in counts[SIZES[0]]:
            few, many = (sent(counts[size][name]["sql"]) for size in SIZES)
            statuses = {counts[s][name]["http_status"] for s in SIZES}
            print(
                f"{name:<22} {few:>6} {many:>6}  {'yes' if few == many else 'NO ':<5} {render_ms[name]:6.1f}"
                f"  (HTTP {', '.join(map(str, statuses))})"
            )
            if few != many:
                unequal.append(name)
        print("(BEGIN, COMMIT and ROLLBACK not counted, nor what SQLite's FTS5 runs inside a MATCH)")
        if args.database_url:
            with app.app_context():
                db.session.remove()
                with db.engine.begin() as conn:
                    drop_everything(conn)
        sys.exit(1 if unequal else 0)


if __name__ == "__main__":
    main()
