"""The flask CLI an operator scripts a deployment with, /healthz, key rotation and migrations."""

import re
from datetime import UTC

import pytest
from cryptography.fernet import Fernet
from sqlalchemy import func, select, text

from conftest import ENCRYPTION_KEY, key_texts, reload, signed_notify
from faka.accounts.models import User
from faka.catalog.models import Product
from faka.catalog.search import is_search_table
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.orders.models import Order


def test_seed_demo_creates_shop_once(runner):
    from faka.payments.gateways import configure_gateway, enabled_gateways

    configure_gateway("sandbox", {}, enabled=False)  # as a fresh init-db leaves it
    result = runner.invoke(args=["seed-demo"])
    assert "sandbox" in dict(enabled_gateways())  # the demo pays with it
    assert result.exit_code == 0, result.output
    assert "operator@faka.local" in result.output and "merchant@faka.local" in result.output
    products = db.session.execute(select(Product)).scalars().all()
    assert len(products) >= 3 and len({p.category_id for p in products}) >= 2
    assert {p.delivery_type for p in products} == {"auto", "fixed", "manual"}
    counts = dict(db.session.execute(select(CardKey.product_id, func.count()).group_by(CardKey.product_id)).all())
    assert 5 in counts.values()
    # One product with variants (规格), one of them sold out.
    (gift,) = [p for p in products if p.has_choice]
    by_variant = dict(db.session.execute(select(CardKey.variant_id, func.count()).group_by(CardKey.variant_id)).all())
    assert [(v.name, by_variant.get(v.id, 0) > 0) for v in gift.live_variants] == [
        ("¥50", True),
        ("¥100", True),
        ("¥200", False),
    ]
    assert (gift.price, gift.price_max) == (gift.live_variants[0].price, gift.live_variants[-1].price)
    assert "already present" in runner.invoke(args=["seed-demo"]).output
    assert db.session.scalar(select(func.count()).select_from(Product)) == len(products)


def test_create_operator_and_login(runner, client):
    result = runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    user = db.session.execute(select(User).where(User.email == "ops@example.com")).scalar_one()
    assert user.role == "operator" and user.password_hash.startswith("$argon2")
    from conftest import csrf_from

    page = client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "long-enough-pw"}
    )
    assert response.status_code == 303
    # Operators need a second factor before any operator page.
    assert client.get("/operator/").headers["Location"].endswith("/account/2fa/setup")
    import pyotp

    from faka.core.crypto import vault

    user.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    assert "Email outbox" in client.get("/operator/outbox?lang=en").text


def test_create_operator_refuses_short_password(runner):
    result = runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "short"])
    assert result.exit_code != 0 and "10 characters" in result.output


def test_login_slows_down_after_repeated_failures(runner, client):
    from conftest import csrf_from

    runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "long-enough-pw"])
    for _ in range(5):
        page = client.get("/login")
        client.post(
            "/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "wrong"}
        )
    page = client.get("/login")
    response = client.post(
        "/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "long-enough-pw"}
    )
    assert response.status_code == 429  # this address waits before its next try (the owner elsewhere does not)


def test_rotate_keys_reencrypts_every_secret_and_the_old_key_can_be_retired(
    make_app, app, merchant, make_product, place, pay
):
    from test_backup import assert_shop_works, populate

    from faka.platform import key_rotation

    shop = populate(app, merchant, make_product, place, pay)
    stored = sum(t.total for t in key_rotation.check().values())
    old_ciphertexts = set(db.session.execute(select(CardKey.ciphertext)).scalars())
    new_key = Fernet.generate_key().decode()
    # Dropping the old key before rotating would lose everything: the check counts it.
    with make_app(ENCRYPTION_KEYS=new_key).app_context() as ctx:
        result = ctx.app.test_cli_runner().invoke(args=["rotate-keys", "--check"])
        assert result.exit_code == 1
        assert f"{stored} stored secrets open with no configured key" in result.output
    rotated = make_app(ENCRYPTION_KEYS=f"{new_key},{ENCRYPTION_KEY}")
    with rotated.app_context():
        runner = rotated.test_cli_runner()
        result = runner.invoke(args=["rotate-keys", "--check"])
        assert result.exit_code == 1 and f"{stored} of {stored} stored secrets still need an older key" in result.output
        result = runner.invoke(args=["rotate-keys"])
        assert result.exit_code == 0, result.output
        assert f"re-encrypted {stored} secrets with the newest key (0 already were)" in result.output
        for label in [s.label for s in key_rotation.stored_secrets()] + [key_rotation.IMPORT_FILES]:
            assert re.search(rf"{re.escape(label)} +[1-9]\d* re-encrypted", result.output), label
        result = runner.invoke(args=["rotate-keys", "--check"])
        assert result.exit_code == 0 and "the 1 older key(s) can be removed" in result.output
        assert "re-encrypted 0 secrets" in runner.invoke(args=["rotate-keys"]).output  # a rerun has nothing to do
    # The old key is retired: the new key alone reads everything and the shop still sells.
    only_new = make_app(ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        assert set(db.session.execute(select(CardKey.ciphertext)).scalars()).isdisjoint(old_ciphertexts)
        assert only_new.test_cli_runner().invoke(args=["rotate-keys", "--check"]).exit_code == 0
        assert_shop_works(only_new, shop)
        from faka.inventory.keys import import_keys

        product = db.session.execute(select(Product).where(Product.slug == shop.product_slug)).scalar_one()
        report = import_keys(product.variants[0], shop.delivered_keys[0])  # duplicates still found after rotation
        assert report.added == 0 and report.already_in_stock == 1


def test_every_encrypted_column_is_rotated(app):
    from faka.platform.key_rotation import stored_secrets

    encrypted = {
        f"{t.name}.{c.name}"
        for t in db.metadata.sorted_tables
        for c in t.columns
        if "ciphertext" in c.name or c.name == "totp_secret"
    }
    assert encrypted <= {s.label for s in stored_secrets()}


def test_add_key_and_retire_the_old_one_in_the_instance_key_file(
    make_app, app, product, place, pay, monkeypatch, tmp_path
):
    order = place(product)
    pay(order)
    before = key_texts(order)
    monkeypatch.setenv("FAKA_INSTANCE_PATH", str(tmp_path))
    key_file = tmp_path / "encryption.keys"
    key_file.write_text(ENCRYPTION_KEY + "\n")
    with make_app(ENCRYPTION_KEYS=None).app_context() as ctx:
        result = ctx.app.test_cli_runner().invoke(args=["rotate-keys", "--add-key"])
        assert result.exit_code == 0 and f"added a new key in front of {key_file}" in result.output
    keys = key_file.read_text().split()
    assert len(keys) == 2 and keys[1] == ENCRYPTION_KEY and key_file.stat().st_mode & 0o777 == 0o600
    with make_app(ENCRYPTION_KEYS=None).app_context() as ctx:  # restarted: both keys known
        runner = ctx.app.test_cli_runner()
        result = runner.invoke(args=["rotate-keys", "--retire"])
        assert result.exit_code == 1 and "still need an older key" in result.output
        assert key_file.read_text().split() == keys
        assert runner.invoke(args=["rotate-keys"]).exit_code == 0
        result = runner.invoke(args=["rotate-keys", "--retire"])
        assert result.exit_code == 0 and "dropped 1 older key(s)" in result.output
    assert key_file.read_text().split() == keys[:1]
    with make_app(ENCRYPTION_KEYS=None).app_context() as ctx:
        assert key_texts(order) == before
        assert "nothing to retire" in ctx.app.test_cli_runner().invoke(args=["rotate-keys", "--retire"]).output
    # Keys from the environment are the operator's to change: the commands say how.
    with make_app().app_context() as ctx:
        runner = ctx.app.test_cli_runner()
        result = runner.invoke(args=["rotate-keys", "--add-key"])
        assert result.exit_code != 0 and "put a new key in front of it yourself" in result.output
        result = runner.invoke(args=["rotate-keys", "--retire"])
        assert result.exit_code != 0 and "keep only its first key" in result.output


def test_gateway_config_sets_encrypted_settings(runner):
    result = runner.invoke(args=["gateway-config", "sandbox", "secret=abc123", "--enable"])
    assert result.exit_code == 0, result.output
    from faka.payments.gateways import get_gateway
    from faka.payments.models import GatewayConfig

    assert get_gateway("sandbox").settings["secret"] == "abc123"
    assert "abc123" not in db.session.get(GatewayConfig, "sandbox").settings_ciphertext
    assert runner.invoke(args=["gateway-config", "nope", "a=b"]).exit_code != 0
    assert runner.invoke(args=["gateway-config", "sandbox", "novalue"]).exit_code != 0
    assert runner.invoke(args=["gateway-config", "sandbox", "unknown=1"]).exit_code != 0


def test_reconcile_command_delivers_paid_orders(rq_app, make_product, place, redis_conn):
    product = make_product(keys=2)
    order = place(product)
    rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    redis_conn.flushdb()
    result = rq_app.test_cli_runner().invoke(args=["reconcile"])
    assert "re-enqueued 1 deliveries" in result.output
    from conftest import run_worker

    run_worker(rq_app)
    assert reload(order).status == Order.DELIVERED


def test_import_reports_added_duplicates_and_invalid(app, product):
    from faka.inventory.keys import import_keys

    existing = key_texts_of_product(product)[0]
    report = import_keys(product.variants[0], f"NEW-1\nNEW-2\nNEW-1\n\n{existing}\n{'x' * 3000}\nbad\x07key")
    assert (report.added, report.duplicate_in_batch, report.already_in_stock, report.invalid) == (2, 1, 1, 2)
    assert report.samples["duplicate_in_batch"] == ["NEW-1"] and report.samples["already_in_stock"] == [existing]


def key_texts_of_product(product):
    from faka.core.crypto import vault

    return [
        vault().decrypt(c)
        for c in db.session.execute(select(CardKey.ciphertext).where(CardKey.product_id == product.id)).scalars()
    ]


def test_healthz_reports_database_and_jobs(client):
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json["database"]["ok"] is True and response.json["status"] == "ok"
    assert response.json["oldest_paid_undelivered_seconds"] is None


def test_healthz_with_rq_needs_a_worker(rq_app, make_product, place, redis_conn):
    client = rq_app.test_client()
    product = make_product(keys=2)
    order = place(product)
    client.post("/pay/sandbox/notify", data=signed_notify(order))
    response = client.get("/healthz")
    assert response.status_code == 503
    assert response.json["redis"]["ok"] is True and response.json["worker"]["alive"] is False
    assert response.json["worker"]["queued"] == 1
    assert response.json["oldest_paid_undelivered_seconds"] >= 0


def test_healthz_unhealthy_when_redis_down(make_app):
    app = make_app(JOBS_MODE="rq", REDIS_URL="redis://127.0.0.1:1/0")
    response = app.test_client().get("/healthz")
    assert response.status_code == 503 and response.json["redis"]["ok"] is False


@pytest.mark.one_db  # the migrations run on a SQLite database of their own, whichever the run is given
def test_migrations_build_the_same_schema_as_the_models(app):
    """Upgrade an empty database with Alembic and compare it with the models."""
    import os
    import subprocess
    import sys
    import tempfile

    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext
    from sqlalchemy import create_engine

    with tempfile.TemporaryDirectory() as tmp:
        env = {
            **os.environ,
            "FAKA_INSTANCE_PATH": tmp,
            "DATABASE_URL": f"sqlite:///{tmp}/m.db",
            "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY,
        }
        result = subprocess.run(
            [sys.executable, "-m", "flask", "--app", "faka", "init-db"], env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        engine = create_engine(f"sqlite:///{tmp}/m.db")
        with engine.connect() as conn:
            # The search index's FTS tables are built by their migration, not from the models.
            search_index = lambda name, type_, _parents: not (type_ == "table" and is_search_table(name))  # noqa: E731
            diff = compare_metadata(MigrationContext.configure(conn, opts={"include_name": search_index}), db.metadata)
            # A real shop starts with the sandbox off: anyone could "pay" with it.
            sandbox_on = conn.execute(text("SELECT enabled FROM gateway_configs WHERE name = 'sandbox'")).scalar_one()
        engine.dispose()
    assert diff == []
    assert not sandbox_on


def test_migrations_upgrade_a_populated_first_version_database(base_config, monkeypatch, tmp_path):
    """A shop created by the first schema and used under later ones keeps its orders, keys,
    reviews and payout accounts through every upgrade (on the suite's database), and then
    sells, blacklists and refuses as today's shop does (the risk tables of the latest)."""
    from contextlib import nullcontext
    from datetime import datetime

    from sqlalchemy import create_engine, text
    from test_backup import flask, opened, scratch_database

    from conftest import TEST_DATABASE
    from faka.core.crypto import make_vault
    from faka.core.instance import database_uri
    from faka.ledger import payouts
    from faka.ledger.models import PayoutAccount
    from faka.orders import checkout
    from faka.risk import blacklist
    from faka.risk import engine as risk
    from faka.risk.models import RiskEvent

    sqlite = TEST_DATABASE == "sqlite"
    with nullcontext(f"sqlite:///{tmp_path}/old.db") if sqlite else scratch_database("migrate") as url:
        env = {"FAKA_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": url, "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY}

        def run(*args):
            result = flask(env, *args)
            assert result.returncode == 0, result.stderr

        v = make_vault(ENCRYPTION_KEY)
        moment = datetime(2026, 1, 1, tzinfo=UTC)
        values = {
            "now": moment.replace(tzinfo=None) if sqlite else moment,
            "sold": v.encrypt("OLD-KEY-SOLD"),
            "sold_fp": v.fingerprint("OLD-KEY-SOLD"),
            "spare": v.encrypt("OLD-KEY-SPARE"),
            "spare_fp": v.fingerprint("OLD-KEY-SPARE"),
            "token": "a" * 32,
            "yes": True,
            "account": v.encrypt("13800138000"),
        }
        engine = create_engine(database_uri(url))

        def execute(script: str) -> None:
            with engine.begin() as conn:
                for statement in filter(str.strip, script.split(";")):
                    conn.execute(text(statement), {k: values[k] for k in values if f":{k}" in statement})

        run("db", "upgrade", "c7bbc392c43b")
        execute("""
            INSERT INTO users (email, password_hash, role, failed_logins, created_at) VALUES ('m@x.cn', 'h', 'merchant', 0, :now);
            INSERT INTO merchants (user_id, name, status, fee_rate_bp, created_at)
                VALUES ((SELECT id FROM users WHERE email = 'm@x.cn'), 'Shop', 'approved', 300, :now);
            INSERT INTO categories (name, position) VALUES ('Cards', 0);
            INSERT INTO products (slug, merchant_id, category_id, title, description_md, price, min_per_order, max_per_order,
                delivery_type, manual_promise_hours, refund_policy, visible, moderation, position, created_at)
                VALUES ('abc', (SELECT id FROM merchants), (SELECT id FROM categories), 'Card', '', 1000, 1, 5, 'auto', 24,
                '', :yes, 'approved', 0, :now);
            INSERT INTO orders (number, token, product_id, merchant_id, quantity, unit_price, total, currency, email, status,
                gateway, locale, created_at, expires_at, paid_at, delivered_at) VALUES ('2026010100000001', :token,
                (SELECT id FROM products), (SELECT id FROM merchants), 1, 1000, 1000, 'CNY', 'buyer@x.cn', 'delivered',
                'sandbox', 'zh_CN', :now, :now, :now, :now);
            INSERT INTO card_keys (product_id, ciphertext, fingerprint, status, order_id, created_at)
                VALUES ((SELECT id FROM products), :sold, :sold_fp, 'sold', (SELECT id FROM orders), :now);
            INSERT INTO card_keys (product_id, ciphertext, fingerprint, status, created_at)
                VALUES ((SELECT id FROM products), :spare, :spare_fp, 'available', :now)
        """)
        run("db", "upgrade", "abf27c4bd607")  # the one before the risk engine
        execute("""
            INSERT INTO reviews (order_id, merchant_id, product_id, rating, body, created_at)
                VALUES ((SELECT id FROM orders), (SELECT id FROM merchants), (SELECT id FROM products), 4, 'Fine old key', :now);
            INSERT INTO payout_accounts (merchant_id, kind, holder, account_ciphertext, account_hint, created_at)
                VALUES ((SELECT id FROM merchants), 'alipay', 'Zhang San', :account, '8000', :now);
            INSERT INTO notify_log (gateway, via, order_number, verified, outcome, received_at)
                VALUES ('sandbox', 'notify', '2026010100000001', :yes, 'paid', :now)
        """)
        run("init-db")  # what an upgrade runs: the latest schema (and the sandbox, off)
        run("gateway-config", "sandbox", "--enable")
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT total, discount, status, held_at, risk_flags, email_domain FROM orders")
            ).all() == [(1000, 0, "delivered", None, None, "x.cn")]
            assert conn.execute(
                text(
                    "SELECT p.reusable_key, v.low_stock_threshold, p.risk_hold_at, v.name FROM products p "
                    "JOIN product_variants v ON v.product_id = p.id"
                )
            ).all() == [(False, 0, None, "")]
            # Each key and order belongs to the product's one variant.
            assert (
                conn.execute(
                    text(
                        "SELECT count(*) FROM card_keys k JOIN product_variants v ON v.id = k.variant_id "
                        "WHERE v.product_id = k.product_id"
                    )
                ).scalar()
                == conn.execute(text("SELECT count(*) FROM card_keys")).scalar()
            )
            assert (
                conn.execute(
                    text("SELECT count(*) FROM orders o JOIN product_variants v ON v.id = o.variant_id")
                ).scalar()
                == 1
            )
            assert conn.execute(text("SELECT name, hidden, deleted_at FROM categories")).all() == [
                ("Cards", False, None)
            ]
            assert conn.execute(text("SELECT count(*) FROM card_keys WHERE order_id IS NOT NULL")).scalar() == 1
            assert conn.execute(text("SELECT rating, body FROM reviews")).all() == [(4, "Fine old key")]
            if sqlite:
                assert conn.execute(text("PRAGMA foreign_key_check")).all() == []
        engine.dispose()

        with opened(
            base_config, monkeypatch, tmp_path, url, ENCRYPTION_KEYS=ENCRYPTION_KEY, SECRET_KEY="test-secret"
        ) as upgraded:
            client = upgraded.test_client()
            assert "OLD-KEY-SOLD" in client.get(f"/order/{'a' * 32}?lang=en").text
            assert "Fine old key" in client.get("/p/abc?lang=en").text
            payout = db.session.execute(select(PayoutAccount)).scalar_one()
            assert payouts.payout_account_number(payout) == "13800138000"
            blacklist.add("email", "fraud@x.cn", "chargebacks", actor_id=None)
            with upgraded.test_request_context():
                with pytest.raises(risk.Blocked):
                    checkout.place_order("abc", 1, "fraud@x.cn", None)
                order = checkout.place_order("abc", 1, "new@x.cn", "secret-1")
            assert (
                db.session.scalar(select(func.count()).select_from(RiskEvent).where(RiskEvent.action == "block")) == 1
            )
            assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
            assert "OLD-KEY-SPARE" in client.get(f"/order/{order.token}?lang=en").text
