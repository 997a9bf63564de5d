"""Time a 100,000-key import through the background-job path (the one the back office
uses for big imports), on a fresh SQLite instance, and check every key arrived.

    .venv/bin/python bench/import_keys.py [--keys N] [--database-url URL]
"""

import argparse
import os
import secrets
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--keys", type=int, default=100_000)
    parser.add_argument("--database-url", default=None, help="default: SQLite in a temporary instance")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory() as instance:
        os.environ["FAKA_INSTANCE_PATH"] = instance
        from sqlalchemy import func, select

        from faka import create_app
        from faka.accounts import users
        from faka.catalog.models import Category
        from faka.catalog.variants import product_with_one_variant
        from faka.extensions import db
        from faka.inventory import keys
        from faka.inventory.models import CardKey, KeyImport

        config = (
            {"JOBS_MODE": "sync", "SQLALCHEMY_DATABASE_URI": args.database_url}
            if args.database_url
            else {"JOBS_MODE": "sync"}
        )
        app = create_app(config)
        with app.app_context():
            db.drop_all()
            db.create_all()
            merchant = users.create_merchant("bench@example.com", "bench-password-1", "Bench", approved=True)
            category = Category(name="Bench")
            db.session.add(category)
            db.session.flush()
            product = product_with_one_variant(
                slug=secrets.token_hex(8), merchant_id=merchant.id, category_id=category.id, title="Bench", price=100
            )
            db.session.add(product)
            db.session.commit()
            text = "\n".join(f"BENCH-{i:07d}-{secrets.token_hex(6)}" for i in range(args.keys))

            started = time.perf_counter()
            job = keys.start_import(merchant.id, product.variants[0], text)
            keys.run_import(job.id)
            elapsed = time.perf_counter() - started

            job = db.session.get(KeyImport, job.id)
            stored = db.session.scalar(
                select(func.count()).select_from(CardKey).where(CardKey.product_id == product.id)
            )
            added = job.added
            db.session.remove()  # end our transaction before dropping the tables
            if args.database_url:
                db.drop_all()
        print(
            f"imported {added} of {args.keys} keys ({stored} stored) in {elapsed:.1f} s "
            f"= {args.keys / elapsed:,.0f} keys/s; target < 30 s: {'ok' if elapsed < 30 and stored == args.keys else 'MISSED'}"
        )


if __name__ == "__main__":
    main()
