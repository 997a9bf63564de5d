"""The flask CLI an operator scripts a deployment with, /healthz, and migrations."""
from cryptography.fernet import Fernet
from sqlalchemy import func, select

from faka.extensions import db
from faka.models import CardKey, Order, Product, User

from conftest import ENCRYPTION_KEY, key_texts, reload, signed_notify


def test_seed_demo_creates_shop_once(runner):
    result = runner.invoke(args=["seed-demo"])
    assert result.exit_code == 0, result.output
    assert "operator@faka.local" in result.output and "merchant@faka.local" in result.output
    products = db.session.execute(select(Product)).scalars().all()
    assert len(products) >= 3 and len({p.category_id for p in products}) >= 2
    assert {p.delivery_type for p in products} == {"auto", "fixed", "manual"}
    counts = dict(db.session.execute(select(CardKey.product_id, func.count()).group_by(CardKey.product_id)).all())
    assert 5 in counts.values()
    assert "already present" in runner.invoke(args=["seed-demo"]).output
    assert db.session.scalar(select(func.count()).select_from(Product)) == len(products)


def test_create_operator_and_login(runner, client):
    result = runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "long-enough-pw"])
    assert result.exit_code == 0, result.output
    user = db.session.execute(select(User).where(User.email == "ops@example.com")).scalar_one()
    assert user.role == "operator" and user.password_hash.startswith("$argon2")
    from conftest import csrf_from

    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "long-enough-pw"})
    assert response.status_code == 303
    # Operators need a second factor before any operator page.
    assert client.get("/operator/").headers["Location"].endswith("/account/2fa/setup")
    import pyotp

    from faka.services.crypto import vault

    user.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    assert "Email outbox" in client.get("/operator/outbox?lang=en").text


def test_create_operator_refuses_short_password(runner):
    result = runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "short"])
    assert result.exit_code != 0 and "10 characters" in result.output


def test_login_locks_after_repeated_failures(runner, client):
    from conftest import csrf_from

    runner.invoke(args=["create-operator", "--email", "ops@example.com", "--password", "long-enough-pw"])
    for _ in range(5):
        page = client.get("/login")
        client.post("/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "wrong"})
    page = client.get("/login")
    response = client.post("/login", data={"csrf_token": csrf_from(page.text), "email": "ops@example.com", "password": "long-enough-pw"})
    assert response.status_code == 400


def test_rotate_keys_reencrypts_with_newest_key(make_app, product, place, pay):
    order = place(product)
    pay(order)
    before = key_texts(order)
    old_ciphertexts = set(db.session.execute(select(CardKey.ciphertext)).scalars())
    new_key = Fernet.generate_key().decode()
    rotated = make_app(ENCRYPTION_KEYS=f"{new_key},{ENCRYPTION_KEY}")
    with rotated.app_context():
        result = rotated.test_cli_runner().invoke(args=["rotate-keys"])
        assert result.exit_code == 0 and "re-encrypted" in result.output
    # The old key can now be retired: the new key alone reads everything.
    only_new = make_app(ENCRYPTION_KEYS=new_key)
    with only_new.app_context():
        assert set(db.session.execute(select(CardKey.ciphertext)).scalars()).isdisjoint(old_ciphertexts)
        assert key_texts(db.session.get(Order, order.id)) == before
        from faka.services.keys import import_keys

        report = import_keys(product.id, before[0])  # duplicate still detected after rotation
        assert report.added == 0 and report.already_in_stock == 1


def test_gateway_config_sets_encrypted_settings(runner):
    result = runner.invoke(args=["gateway-config", "sandbox", "secret=abc123", "--enable"])
    assert result.exit_code == 0, result.output
    from faka.models import GatewayConfig
    from faka.payments import get_gateway

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
    from faka.services.keys import import_keys

    existing = key_texts_of_product(product)[0]
    report = import_keys(product.id, f"NEW-1\nNEW-2\nNEW-1\n\n{existing}\n{'x' * 3000}\nbad\x07key")
    assert (report.added, report.duplicate_in_batch, report.already_in_stock, report.invalid) == (2, 1, 1, 2)
    assert report.samples["duplicate_in_batch"] == ["NEW-1"] and report.samples["already_in_stock"] == [existing]


def key_texts_of_product(product):
    from faka.services.crypto import vault

    return [vault().decrypt(c) for c in db.session.execute(select(CardKey.ciphertext).where(CardKey.product_id == product.id)).scalars()]


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
        env = {**os.environ, "FAKA_INSTANCE_PATH": tmp, "DATABASE_URL": f"sqlite:///{tmp}/m.db", "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY}
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "faka", "init-db"], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        engine = create_engine(f"sqlite:///{tmp}/m.db")
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), db.metadata)
        engine.dispose()
    assert diff == []


def test_migrations_upgrade_a_populated_first_version_database(tmp_path):
    """A shop created by the first schema keeps its orders and products through upgrades."""
    import os
    import sqlite3
    import subprocess
    import sys

    env = {**os.environ, "FAKA_INSTANCE_PATH": str(tmp_path), "DATABASE_URL": f"sqlite:///{tmp_path}/old.db",
           "FAKA_ENCRYPTION_KEYS": ENCRYPTION_KEY}

    def flask(*args):
        result = subprocess.run([sys.executable, "-m", "flask", "--app", "faka", *args], env=env, capture_output=True, text=True)
        assert result.returncode == 0, result.stderr
        return result.stdout

    flask("db", "upgrade", "c7bbc392c43b")
    conn = sqlite3.connect(tmp_path / "old.db")
    now = "2026-01-01 00:00:00"
    conn.executescript(f"""
        INSERT INTO users (id, email, password_hash, role, failed_logins, created_at) VALUES (1, 'm@x.cn', 'h', 'merchant', 0, '{now}');
        INSERT INTO merchants (id, user_id, name, status, fee_rate_bp, created_at) VALUES (1, 1, 'Shop', 'approved', 300, '{now}');
        INSERT INTO categories (id, name, position) VALUES (1, 'Cards', 0);
        INSERT INTO products (id, slug, merchant_id, category_id, title, description_md, price, min_per_order, max_per_order,
            delivery_type, manual_promise_hours, refund_policy, visible, moderation, position, created_at)
            VALUES (1, 'abc', 1, 1, 'Card', '', 1000, 1, 5, 'auto', 24, '', 1, 'approved', 0, '{now}');
        INSERT INTO orders (id, number, token, product_id, merchant_id, quantity, unit_price, total, currency, status, gateway,
            locale, created_at, expires_at) VALUES (1, '2026010100000001', '{"a" * 32}', 1, 1, 2, 1000, 2000, 'CNY', 'delivered',
            'sandbox', 'zh_CN', '{now}', '{now}');
        INSERT INTO card_keys (id, product_id, ciphertext, fingerprint, status, order_id, created_at) VALUES (1, 1, 'c', 'f', 'sold', 1, '{now}');
    """)
    conn.commit()
    conn.close()
    flask("db", "upgrade")
    conn = sqlite3.connect(tmp_path / "old.db")
    assert conn.execute("SELECT total, discount, status FROM orders").fetchall() == [(2000, 0, "delivered")]
    assert conn.execute("SELECT reusable_key, low_stock_threshold FROM products").fetchall() == [(0, 0)]
    assert conn.execute("SELECT order_id FROM card_keys").fetchall() == [(1,)]
    assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
    conn.close()
