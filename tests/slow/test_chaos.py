"""Chaos with real processes: a worker killed mid-delivery, Redis stopped while orders
are paid, SMTP refusing, the web process killed during checkout, the upload disk full.
In each case no paid order is lost or delivered twice, no key is sold twice, and
everything completes once the part returns."""

import io
import os
import re
import sqlite3
import subprocess
import time
from contextlib import contextmanager, nullcontext
from datetime import timedelta
from pathlib import Path

import pytest
import requests
from sqlalchemy import func, select, text

from chaos_tools import RedisServer, WebServer, app_env, start_worker, wait_until
from conftest import count, csrf_from, login, reload, run_worker, signed_notify
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.ledger.models import LedgerEntry
from faka.messaging.models import OutboxEmail
from faka.ops.reconcile import reconcile
from faka.orders.models import Order
from faka.payments.models import PaymentNotice


@pytest.fixture(scope="module")
def logdir(tmp_path_factory):
    return tmp_path_factory.mktemp("chaos-logs")


@pytest.fixture
def own_redis(logdir):
    server = RedisServer(logdir)
    server.start()
    yield server
    server.close()


@pytest.fixture
def processes():
    """Processes a test starts; whatever is still running at the end is killed."""
    started = []
    yield started
    for process in started:
        process.kill()


@pytest.fixture
def app(make_app, own_redis):
    """The test's app (the factories' too) queues jobs on our own Redis."""
    app = make_app(JOBS_MODE="rq", REDIS_URL=own_redis.url)
    with app.app_context():
        yield app


def assert_books_intact(*orders: Order) -> None:
    """What must hold whatever failed: one payment per order, each given order delivered
    with its own keys, each sale credited once, the books reconciled."""
    from faka.ledger.settlement import reconcile_books

    db.session.commit()
    per_order = db.session.execute(select(PaymentNotice.order_id, func.count()).group_by(PaymentNotice.order_id)).all()
    assert all(n == 1 for _order, n in per_order), per_order
    for order in orders:
        order = reload(order)
        assert order.status == Order.DELIVERED, (order.number, order.status)
        sold = db.session.scalars(select(CardKey).where(CardKey.order_id == order.id)).all()
        assert len(sold) == order.quantity and all(k.status == CardKey.SOLD for k in sold)
        sales = db.session.scalar(
            select(func.count())
            .select_from(LedgerEntry)
            .where(LedgerEntry.order_id == order.id, LedgerEntry.kind == LedgerEntry.SALE)
        )
        assert sales == 1
        emails = db.session.scalar(
            select(func.count()).select_from(OutboxEmail).where(OutboxEmail.order_id == order.id)
        )
        assert emails == (1 if order.email else 0)
    # Keys reach orders only through reservation and sale: none sold without an order.
    assert (
        db.session.scalar(
            select(func.count()).select_from(CardKey).where(CardKey.status == CardKey.SOLD, CardKey.order_id.is_(None))
        )
        == 0
    )
    assert reconcile_books() == []


# -- Redis stopped while orders are paid ------------------------------------------------------


def test_redis_down_while_orders_are_paid_delivers_each_once_when_it_returns(
    app, base_config, make_product, place, own_redis, logdir, processes
):
    product = make_product(keys=6)
    orders = [place(product, quantity) for quantity in (1, 2, 1)]
    env = app_env(base_config, REDIS_URL=own_redis.url, FAKA_RECONCILE_INTERVAL=1)
    web = WebServer(env, logdir)
    web.start()
    processes.append(web.process)
    worker = start_worker(env, logdir)
    processes.append(worker)
    own_redis.stop()

    notifies = [signed_notify(order) for order in orders]
    for form in notifies + notifies[:1]:  # the gateway repeats the first notification
        answer = requests.post(f"{web.url}/pay/sandbox/notify", data=form, timeout=10)
        assert answer.status_code == 200 and answer.text == "success", (answer.status_code, answer.text[:200])
    assert [reload(o).status for o in orders] == [Order.PAID] * 3  # recorded, waiting for Redis
    page = requests.get(f"{web.url}/order/{orders[0].token}?lang=en", timeout=10)
    assert page.status_code == 200 and orders[0].number in page.text

    own_redis.start()  # empty: the jobs queued before it stopped are gone
    wait_until(
        lambda: all(reload(o).status == Order.DELIVERED for o in orders),
        40,
        what=lambda: f"deliveries once Redis returned; worker log:\n{worker.output()}",
    )
    assert worker.alive()  # the same worker.py rode out the outage
    assert_books_intact(*orders)


def test_rate_limits_in_redis_do_not_take_the_shop_down_with_redis(make_app, make_product, place, own_redis):
    """Rate limits are counted in Redis when REDIS_URL is set; with Redis stopped, the
    limited notify URL and order page used to answer 500, so payments went unrecorded."""
    shop = make_app(JOBS_MODE="rq", REDIS_URL=own_redis.url, RATELIMIT_STORAGE_URI=None)
    with shop.app_context():
        order = place(make_product(keys=1))
        own_redis.stop()
        client = shop.test_client()
        assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
        assert reload(order).status == Order.PAID
        assert client.get(f"/order/{order.token}").status_code == 200
        assert client.get("/order/no-such-token").status_code == 404  # a miss still counts, in memory


# -- the worker killed in the middle of a delivery ------------------------------------------


@contextmanager
def delivery_blocked(order: Order):
    """Hold, from a connection of our own, a lock the delivery of `order` needs. PostgreSQL:
    the order's reserved keys, so the delivery gets as far as selling them, holding the
    order's row lock. SQLite: the write lock, so the delivery waits to begin. Yields a
    function that tells whether the delivery is waiting."""
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect() as conn:
            conn.execute(select(CardKey.id).where(CardKey.order_id == order.id).with_for_update())

            def waiting() -> bool:
                return bool(
                    conn.execute(
                        text(
                            "SELECT count(*) FROM pg_locks WHERE NOT granted AND pg_backend_pid() = ANY(pg_blocking_pids(pid))"
                        )
                    ).scalar()
                )

            yield waiting
            conn.rollback()
    else:
        conn = sqlite3.connect(db.engine.url.database, isolation_level=None)
        conn.execute("BEGIN IMMEDIATE")

        def started() -> bool:
            time.sleep(0.5)  # the job started; give it time to reach BEGIN IMMEDIATE and wait
            return True

        try:
            yield started
        finally:
            conn.execute("ROLLBACK")
            conn.close()


def test_worker_killed_mid_delivery_delivers_once_after_restart(
    app, base_config, make_product, place, own_redis, logdir, processes, smtp
):
    from rq.registry import ScheduledJobRegistry, StartedJobRegistry

    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    env = app_env(base_config, REDIS_URL=own_redis.url, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    product = make_product(keys=4)
    order = place(product, 2)
    assert app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    queue = app.extensions["faka_jobs"].queue()
    job_id = f"deliver-{order.id}"
    assert queue.job_ids == [job_id]

    with delivery_blocked(order) as delivery_waiting:
        worker = start_worker(env, logdir, "--no-cron")
        processes.append(worker)
        wait_until(lambda: job_id in StartedJobRegistry(queue=queue), 30, what="the delivery job to start")
        wait_until(delivery_waiting, 30, what="the delivery to wait for the lock")
        worker.kill()
    assert reload(order).status == Order.PAID
    assert db.session.scalar(select(func.count()).select_from(CardKey).where(CardKey.status == CardKey.SOLD)) == 0
    assert db.session.scalar(select(func.count()).select_from(LedgerEntry)) == 0
    # RQ still counts the dead worker's job as started: it abandons it only after its timeout.
    assert job_id in StartedJobRegistry(queue=queue) and queue.job_ids == []

    assert reconcile().deliveries == 1
    assert job_id in queue.job_ids  # the stale started job does not block the same id
    burst = start_worker(env, logdir, "--burst")
    assert burst.popen.wait(60) == 0, burst.output()
    assert_books_intact(order)
    assert len(smtp.messages) == 1 and order.number in smtp.messages[0]["Subject"]

    # Later a worker's registry cleanup finds the abandoned execution and retries the job
    # (RQ's own retry): it finds the order delivered and changes nothing. RQ's scheduler
    # would queue the retry once a live worker holds the scheduler lock, which the killed
    # worker keeps for a minute; queue it now.
    StartedJobRegistry(queue=queue).cleanup(timestamp=time.time() + 3600)
    scheduled = ScheduledJobRegistry(queue=queue)
    assert job_id not in StartedJobRegistry(queue=queue) and job_id in scheduled
    scheduled.remove(job_id)
    queue.enqueue_job(queue.fetch_job(job_id))
    run_worker(app)
    assert queue.fetch_job(job_id).return_value() is False  # ran, and found nothing to do
    assert_books_intact(order)
    assert reconcile().deliveries == 0
    assert len(smtp.messages) == 1


# -- SMTP refusing ----------------------------------------------------------------------------


class MoodySmtp:
    """A real SMTP server whose answer the test chooses: "accept", "rcpt" (451 to every
    recipient: try again later) or "data" (554 to the message)."""

    def __init__(self):
        self.mode = "accept"
        self.refused = 0
        self.messages = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if self.mode == "rcpt":
            self.refused += 1
            return "451 4.3.0 Mailbox busy, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        from email import message_from_bytes, policy

        if self.mode == "data":
            self.refused += 1
            return "554 5.6.0 Message refused"
        self.messages.append(message_from_bytes(envelope.content, policy=policy.default))
        return "250 OK"


@pytest.fixture
def moody_smtp():
    from aiosmtpd.controller import Controller

    from conftest import free_port

    handler = MoodySmtp()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    handler.port = controller.port
    yield handler
    controller.stop()


def outbox() -> list[OutboxEmail]:
    db.session.commit()
    return db.session.scalars(select(OutboxEmail).order_by(OutboxEmail.id)).all()


def age_outbox(delta) -> None:
    """Let time pass for the queued emails: they were queued `delta` earlier."""
    from faka.core.db import begin_write

    begin_write()  # the workers write too: take SQLite's write lock before reading
    for email in db.session.scalars(select(OutboxEmail)):
        email.created_at -= delta
    db.session.commit()


def test_smtp_refusing_keeps_emails_queued_then_sends_each_once(
    app, base_config, make_product, place, own_redis, logdir, processes, moody_smtp
):
    moody_smtp.mode = "rcpt"
    product = make_product(keys=4)
    buyers = [f"buyer{i}@example.com" for i in range(3)]
    orders = [place(product, 1, email=buyer) for buyer in buyers]
    client = app.test_client()
    for order in orders:
        assert client.post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    env = app_env(
        base_config,
        REDIS_URL=own_redis.url,
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=moody_smtp.port,
        FAKA_RECONCILE_INTERVAL=1,
    )
    # Two workers: the jobs' own retries and the reconciler's may meet on the same email.
    processes.extend([start_worker(env, logdir), start_worker(env, logdir)])

    # The job fails, the reconciler's first retry follows at once; then they back off.
    wait_until(
        lambda: len(outbox()) == 3 and all(e.attempts >= 2 for e in outbox()), 40, what="delivery emails refused twice"
    )
    assert all(reload(o).status == Order.DELIVERED for o in orders)  # the keys do not wait for the email
    assert all(e.status == OutboxEmail.QUEUED and "451" in e.last_error for e in outbox())

    moody_smtp.mode = "data"
    age_outbox(timedelta(minutes=20))  # the next attempt is due
    wait_until(lambda: all("554" in (e.last_error or "") for e in outbox()), 40, what="emails refused at DATA")
    assert all(e.status == OutboxEmail.QUEUED for e in outbox()) and moody_smtp.messages == []

    moody_smtp.mode = "accept"
    age_outbox(timedelta(days=1))
    wait_until(lambda: all(e.status == OutboxEmail.SENT for e in outbox()), 40, what="emails sent")
    time.sleep(2)  # more reconciler runs, and the jobs' retries still scheduled, find them sent
    assert sorted(m["To"] for m in moody_smtp.messages) == buyers
    assert sum(e.attempts for e in outbox()) == moody_smtp.refused + len(buyers)
    assert_books_intact(*orders)


def test_smtp_down_for_hours_spaces_email_attempts_and_sends_once_back(app, make_product, place, moody_smtp):
    """The reconciler runs every minute; it used to try every queued email at each run, so
    an outage of a few minutes used up MAIL_MAX_ATTEMPTS and the email was never sent."""
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=moody_smtp.port)
    moody_smtp.mode = "rcpt"
    order = place(make_product(keys=1))
    assert app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    run_worker(app)  # delivers; the email is refused once
    assert reload(order).status == Order.DELIVERED and outbox()[0].attempts == 1

    def minute_runs(count=5):
        for _ in range(count):
            reconcile()
            run_worker(app)

    minute_runs()
    assert outbox()[0].attempts == 2  # the first retry at once, then it backs off
    for age, attempts in (
        (timedelta(minutes=5), 3),
        (timedelta(minutes=10), 4),
        (timedelta(minutes=45), 5),
        (timedelta(hours=2), 6),
    ):
        age_outbox(age)
        minute_runs()
        (email,) = outbox()
        assert (email.status, email.attempts) == (OutboxEmail.QUEUED, attempts)
    assert moody_smtp.refused == 6 and moody_smtp.messages == []

    moody_smtp.mode = "accept"
    age_outbox(timedelta(hours=3))
    minute_runs()
    (email,) = outbox()
    assert (email.status, email.attempts) == (OutboxEmail.SENT, 7)
    assert len(moody_smtp.messages) == 1 and order.number in moody_smtp.messages[0]["Subject"]


# -- the web process killed during checkout -----------------------------------------------


def sandbox_form(html: str) -> tuple[str, dict]:
    """The action and hidden fields of the sandbox pay page's form."""
    from html import unescape

    action = re.search(r'<form method="post" action="([^"]+)"', html).group(1)
    fields = dict(re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)">', html))
    return unescape(action), {name: unescape(value) for name, value in fields.items()}


def test_web_process_killed_during_checkout_loses_nothing(app, base_config, make_product, logdir, processes):
    product = make_product(keys=4)
    web = WebServer(app_env(base_config, FAKA_RECONCILE_INTERVAL=1), logdir)  # jobs in-process
    web.start()
    processes.append(web.process)
    buyer = requests.Session()
    page = buyer.get(f"{web.url}/p/{product.slug}?lang=en", timeout=10)
    answer = buyer.post(
        f"{web.url}/p/{product.slug}/buy",
        timeout=10,
        allow_redirects=False,
        data={
            "csrf_token": csrf_from(page.text),
            "quantity": "2",
            "email": "buyer@example.com",
            "query_password": "secret-1",
            "gateway": "sandbox",
        },
    )
    assert answer.status_code == 303, answer.text[:500]
    pay_url = answer.headers["Location"]
    token = pay_url.rstrip("/").rsplit("/", 1)[-1]
    db.session.commit()  # end the test's snapshot: the order was written by the server
    order = db.session.scalars(select(Order).where(Order.token == token)).one()

    web.restart()  # SIGKILL between checkout and payment
    processes.append(web.process)
    assert reload(order).status == Order.PENDING
    assert (
        db.session.scalar(
            select(func.count())
            .select_from(CardKey)
            .where(CardKey.order_id == order.id, CardKey.status == CardKey.RESERVED)
        )
        == 2
    )
    page = buyer.get(f"{web.url}/pay/{token}?lang=en", timeout=10)
    assert page.status_code == 200 and order.number in page.text
    order_page = buyer.get(f"{web.url}/order/{token}?lang=en", timeout=10)
    assert order_page.status_code == 200 and order.number in order_page.text

    # SIGKILL as soon as the payment is answered, before the buyer's next poll. On
    # PostgreSQL the delivery thread is caught selling the keys; on SQLite it has usually
    # finished before the answer leaves. Either way the order ends delivered, once.
    postgres = db.engine.dialect.name == "postgresql"
    with delivery_blocked(order) if postgres else nullcontext() as delivery_waiting:
        action, fields = sandbox_form(page.text)
        paid = buyer.post(requests.compat.urljoin(web.url, action), data=fields, timeout=10, allow_redirects=False)
        assert paid.status_code == 303 and paid.headers["Location"].endswith(f"/order/{token}")
        if postgres:
            wait_until(delivery_waiting, 30, what="the delivery thread to wait for the keys")
        web.kill()
    if postgres:
        assert reload(order).status == Order.PAID
    web.start()
    processes.append(web.process)

    def keys_shown():
        status = buyer.get(f"{web.url}/order/{token}/status?lang=en", timeout=10)
        return status.text.count('class="card-key"') == 2

    wait_until(keys_shown, 40, interval=0.5, what="the keys on the order page after the restart")
    assert_books_intact(order)


# -- the upload disk full ---------------------------------------------------------------------


class SmallDisk:
    """The upload folder on a real 256 KB file system (tmpfs), filled at will."""

    def __init__(self, folder):
        self.folder = folder
        self.filler = folder / "filler"

    def fill(self, leave: int) -> None:
        """Fill it up so only about `leave` bytes stay free."""
        stats = os.statvfs(self.folder)
        self.filler.write_bytes(b"\0" * max(stats.f_bavail * stats.f_frsize - leave, 0))

    def make_room(self) -> None:
        self.filler.unlink()

    def files(self) -> set[str]:
        return {p.name for p in self.folder.iterdir()} - {self.filler.name}


@pytest.fixture
def small_disk(app):
    from faka.core.storage import PRIVATE, LocalStorage, storage

    if storage().kind != "local":
        pytest.skip("a full disk is the instance folder's (FAKA_UPLOAD_STORAGE=local)")
    folder = LocalStorage(Path(app.instance_path) / "uploads").folder(PRIVATE)
    mounted = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", "size=256k,mode=0700", "tmpfs", str(folder)], capture_output=True, text=True
    )
    if mounted.returncode != 0:
        pytest.skip(f"a small file system cannot be mounted here: {mounted.stderr.strip()}")
    try:
        yield SmallDisk(folder)
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=True)


def noise_jpeg(seed: int) -> tuple[bytes, int]:
    """A photo-like JPEG (noise compresses badly), and about what it takes stored."""
    import io
    import random

    from PIL import Image

    image = Image.frombytes("RGB", (160, 160), random.Random(seed).randbytes(160 * 160 * 3))
    out = io.BytesIO()
    image.save(out, "JPEG", quality=88)
    return out.getvalue(), len(out.getvalue())


def english_client(app):
    client = app.test_client()
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


def test_full_upload_disk_refuses_a_complaint_cleanly_and_takes_it_once_there_is_room(
    app, make_product, place, small_disk
):
    from faka.complaints.models import Complaint, ComplaintImage

    order = place(make_product(keys=2))
    assert app.test_client().post("/pay/sandbox/notify", data=signed_notify(order)).text == "success"
    run_worker(app)
    assert_books_intact(order)
    (first, size), (second, _) = noise_jpeg(1), noise_jpeg(2)
    small_disk.fill(leave=size * 3 // 2)  # room for the first image, not for both

    buyer = english_client(app)
    url = f"/order/{order.token}/complaint"

    def complain():
        return buyer.post(
            url,
            content_type="multipart/form-data",
            data={
                "csrf_token": csrf_from(buyer.get(url).text),
                "reason": "key_invalid",
                "description": "The key is already redeemed; screenshots attached.",
                "images": [(io.BytesIO(first), "one.jpg"), (io.BytesIO(second), "two.jpg")],
            },
        )

    refused = complain()
    assert refused.status_code == 400
    assert "The image could not be stored. Please try again later." in refused.text
    assert count(Complaint) == 0 and count(ComplaintImage) == 0
    assert small_disk.files() == set()  # the first image, stored, was removed again
    assert reload(order).status == Order.DELIVERED and reload(order).refunded_amount == 0
    assert_books_intact(order)

    small_disk.make_room()
    opened = complain()
    assert opened.status_code == 303
    assert count(Complaint) == 1 and count(ComplaintImage) == 2 and len(small_disk.files()) == 2


def test_full_upload_disk_refuses_logo_and_qualification_cleanly(app, small_disk):
    import pyotp

    from faka.accounts import users
    from faka.accounts.models import Merchant
    from faka.core.crypto import vault
    from faka.platform.settings import site_settings

    image, _size = noise_jpeg(3)
    small_disk.fill(leave=0)

    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    ops = english_client(app)
    login(ops, operator)
    page = ops.get("/operator/settings")
    logo = ops.post(
        "/operator/settings/logo",
        content_type="multipart/form-data",
        data={"csrf_token": csrf_from(page.text), "logo": (io.BytesIO(image), "logo.jpg")},
    )
    assert logo.status_code == 400 and "The image could not be stored. Please try again later." in logo.text
    assert site_settings()["logo"] == ""

    pending = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    seller = english_client(app)
    login(seller, pending.user)
    page = seller.get("/merchant/qualification")
    submitted = seller.post(
        "/merchant/qualification",
        content_type="multipart/form-data",
        data={
            "csrf_token": csrf_from(page.text),
            "legal_name": "张三",
            "entity_type": "individual",
            "id_number": "11010519491231002X",
            "contact": "13800000000",
            "licence_image": (io.BytesIO(image), "licence.jpg"),
        },
    )
    assert submitted.status_code == 400 and "The image could not be stored. Please try again later." in submitted.text
    merchant = reload(pending)
    assert merchant.submitted_at is None and merchant.licence_image is None and merchant.status == Merchant.PENDING
    assert small_disk.files() == set()
