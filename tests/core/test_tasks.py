"""Delivery and email through real job runners: RQ against real Redis, the in-process
thread, and a real SMTP server."""

import os
import subprocess
import sys
import time
from pathlib import Path

from sqlalchemy import func, select

from conftest import TEST_REDIS_URL, key_texts, reload, run_worker, signed_notify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.messaging.models import OutboxEmail
from faka.ops.reconcile import reconcile
from faka.orders.models import Order

ROOT = Path(__file__).resolve().parents[2]


def sold_keys() -> int:
    db.session.commit()
    return db.session.scalar(select(func.count()).where(CardKey.status == CardKey.SOLD))


def test_rq_worker_delivers_paid_order(rq_app, make_product, place, smtp):
    rq_app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    product = make_product(keys=4)
    order = place(product, 2)
    client = rq_app.test_client()
    assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    assert reload(order).status == Order.PAID  # queued, not yet delivered
    run_worker(rq_app)
    assert reload(order).status == Order.DELIVERED
    run_worker(rq_app)  # the email job the delivery queued
    assert len(smtp.messages) == 1
    body = smtp.messages[0].get_body(("plain",)).get_content()
    for key in key_texts(order):
        assert key in body


def test_stopped_worker_loses_nothing_and_delivers_once(rq_app, make_product, place, redis_conn):
    product = make_product(keys=3)
    order = place(product, 1)
    rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    redis_conn.flushdb()  # the queued job is lost with the worker's Redis state
    assert reload(order).status == Order.PAID
    run_worker(rq_app)
    assert reload(order).status == Order.PAID  # nothing to run: still owed
    with rq_app.app_context():  # the factories' app runs jobs inline; this one queues them in Redis
        report = reconcile()
        assert report.deliveries == 1
        reconcile()  # a second reconcile queues the same job id again: still one delivery
    assert reload(order).status == Order.PAID  # queued, not run inline
    run_worker(rq_app)
    assert reload(order).status == Order.DELIVERED
    assert sold_keys() == 1


def test_redis_down_at_notify_still_records_payment(make_app, make_product, place):
    app = make_app(JOBS_MODE="rq", REDIS_URL="redis://127.0.0.1:1/0")  # nothing listens there
    with app.app_context():
        product = make_product(keys=2)
        order = place(product)
        response = app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
        assert response.text == "success"
        assert reload(order).status == Order.PAID


def test_worker_script_runs_jobs(rq_app, make_product, place, base_config):
    product = make_product(keys=2)
    order = place(product)
    rq_app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
    env = {
        **os.environ,
        "DATABASE_URL": base_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": TEST_REDIS_URL,
        "FAKA_RQ_QUEUE": base_config["RQ_QUEUE"],
        "FAKA_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
        "SECRET_KEY": "test-secret",
    }
    db.session.commit()
    result = subprocess.run(
        [sys.executable, "-m", "faka.worker", "--burst"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert reload(order).status == Order.DELIVERED


def test_in_process_thread_delivers_without_redis(make_app, make_product, place):
    app = make_app(JOBS_MODE="thread")
    with app.app_context():
        product = make_product(keys=2)
        order = place(product)
        app.test_client().post("/pay/sandbox/notify", data=signed_notify(order))
        app.extensions["faka_jobs"].wait_idle()
        assert reload(order).status == Order.DELIVERED


def test_email_waits_in_outbox_without_smtp_then_sends(app, client, product, place, pay, smtp):
    order = place(product)
    pay(order)
    email = db.session.execute(select(OutboxEmail)).scalar_one()
    assert email.status == OutboxEmail.QUEUED and email.attempts == 0
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    assert reconcile().emails == 1
    db.session.commit()
    assert reload(email).status == OutboxEmail.SENT
    assert smtp.messages[0]["To"] == "buyer@example.com"
    assert order.number in smtp.messages[0]["Subject"]


def test_smtp_down_keeps_email_queued_until_it_returns(app, product, place, pay, smtp):
    from conftest import free_port

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=free_port())  # refused
    order = place(product)
    try:
        pay(order)
    except Exception:  # noqa: BLE001 - sync mode surfaces the SMTP failure; the job would retry
        pass
    db.session.commit()
    email = db.session.execute(select(OutboxEmail)).scalar_one()
    assert reload(order).status == Order.DELIVERED
    assert email.status == OutboxEmail.QUEUED and email.attempts == 1 and "ConnectionRefused" in email.last_error
    app.config.update(MAIL_PORT=smtp.port)
    reconcile()
    assert reload(email).status == OutboxEmail.SENT
    assert len(smtp.messages) == 1
    body = smtp.messages[0].get_body(("plain",)).get_content()
    assert all(k in body for k in key_texts(order))


def test_reconcile_expires_stale_orders_and_releases_keys(app, product, place):
    from datetime import timedelta

    from faka.core.types import utcnow

    order = place(product, 2)
    order.expires_at = utcnow() - timedelta(seconds=1)
    db.session.commit()
    assert reconcile().expired == 1
    assert reload(order).status == Order.EXPIRED
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.AVAILABLE)) == 5


def test_worker_script_schedules_the_reconciler(rq_app, make_product, place, base_config):
    """worker.py's cron thread enqueues the reconciler on its own: an order whose payment
    deadline passed is expired and its keys released with nobody calling reconcile."""
    product = make_product(keys=4)
    order = place(product, 2)
    order.expires_at = order.created_at  # already past
    db.session.commit()
    env = {
        **os.environ,
        "DATABASE_URL": base_config["SQLALCHEMY_DATABASE_URI"],
        "REDIS_URL": TEST_REDIS_URL,
        "FAKA_RQ_QUEUE": base_config["RQ_QUEUE"],
        "FAKA_ENCRYPTION_KEYS": base_config["ENCRYPTION_KEYS"],
        "FAKA_RECONCILE_INTERVAL": "1",
        "SECRET_KEY": "test-secret",
    }
    worker = subprocess.Popen(
        [sys.executable, "-m", "faka.worker"], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT
    )
    try:
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and reload(order).status != Order.EXPIRED:
            time.sleep(0.2)
    finally:
        worker.terminate()
        output = worker.communicate(timeout=30)[0].decode()
    assert reload(order).status == Order.EXPIRED, output[-2000:]
    db.session.commit()
    assert db.session.scalar(select(func.count()).where(CardKey.status == CardKey.AVAILABLE)) == 4
