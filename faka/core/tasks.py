"""Background jobs and the one seam that enqueues them.

Job functions take ids, open their own app context when they need one, and are
idempotent. `enqueue()` is called after the transaction that recorded the work commits:
- with REDIS_URL it puts the job on the RQ queue (run `python worker.py`);
- without it, the job runs in a background thread of this process, and a timer thread
  runs the reconciler, so `make run` needs nothing installed;
- "sync" mode (tests) runs it inline, after the commit, with failures only logged.
If enqueueing fails (Redis down) the work is still recorded in the database and the
reconciler enqueues it again later.
"""

import logging
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

from flask import current_app, has_app_context

from faka.core.db import after_commit

log = logging.getLogger(__name__)

MODE_RQ = "rq"
MODE_THREAD = "thread"
MODE_SYNC = "sync"
JOB_TIMEOUT = 120
RETRY_INTERVALS = [5, 30, 120, 600]

_worker_app = None


# -- jobs -------------------------------------------------------------------------------


def deliver_order(order_id: int) -> bool:
    from faka.orders import delivery

    with _app_context():
        return delivery.deliver_order(order_id)


def send_email(email_id: int) -> bool:
    from faka.messaging import mail

    with _app_context():
        return mail.send_outbox_email(email_id)


def send_webhook(delivery_id: int) -> bool:
    from faka.messaging import webhooks

    with _app_context():
        return webhooks.deliver(delivery_id)


def refund_payment(refund_id: int) -> bool:
    from faka.payments import refunds

    with _app_context():
        return refunds.execute(refund_id)


def check_payment(order_id: int) -> bool:
    """Ask the order's gateway whether it was paid (a payment in flight whose
    notification may have been lost). True when the provider confirmed a payment."""
    from faka.payments import notify
    from faka.payments.gateways.base import CannotQuery

    with _app_context():
        try:
            return notify.check_payment(order_id) is not None
        except CannotQuery:
            return False


def import_keys_job(import_id: int) -> None:
    from faka.inventory import keys

    with _app_context():
        keys.run_import(import_id)


def reconcile() -> dict:
    from faka.ops import reconcile as reconciler

    with _app_context():
        report = reconciler.reconcile()
        return {
            "expired": report.expired,
            "deliveries": report.deliveries,
            "emails": report.emails,
            "refunds": report.refunds,
            "escalated": report.escalated,
            "closed": report.closed,
            "payment_checks": report.payment_checks,
            "retention": report.retention,
        }


def run_retention() -> dict:
    """The daily data-retention run (faka/platform/retention.py), started by the reconciler."""
    from dataclasses import asdict

    from faka.platform import retention

    with _app_context():
        return asdict(retention.run())


@contextmanager
def _app_context():
    """Jobs run inside the caller's app context if there is one (threads, tests, the
    worker started by worker.py), else in one created for this worker process."""
    global _worker_app
    if has_app_context():
        yield
        return
    if _worker_app is None:
        from faka import create_app

        _worker_app = create_app()
    with _worker_app.app_context():
        yield


# -- the seam ---------------------------------------------------------------------------


class JobRunner:
    def __init__(self, app):
        self.app = app
        self.mode = app.config.get("JOBS_MODE") or (MODE_RQ if app.config.get("REDIS_URL") else MODE_THREAD)
        self._executor: ThreadPoolExecutor | None = None
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self._redis = None

    @property
    def redis(self):
        if self._redis is None:
            from redis import Redis

            self._redis = Redis.from_url(self.app.config["REDIS_URL"])
        return self._redis

    def queue(self):
        from rq import Queue

        return Queue(self.app.config["RQ_QUEUE"], connection=self.redis)

    def enqueue(self, func, *args, job_id: str | None = None) -> None:
        if self.mode == MODE_SYNC:
            self._run_logged(func, args)
        elif self.mode == MODE_RQ:
            self._enqueue_rq(func, args, job_id)
        else:
            self.executor().submit(self._run_in_thread, func, args)

    def _enqueue_rq(self, func, args, job_id):
        from redis.exceptions import RedisError
        from rq import Retry

        try:
            self.queue().enqueue(
                func,
                *args,
                job_id=job_id,
                job_timeout=JOB_TIMEOUT,
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                result_ttl=300,
                failure_ttl=7 * 86400,
            )
        except RedisError as exc:
            # The database already records the work; the reconciler will enqueue it again.
            log.error("could not enqueue %s%r: %s", func.__name__, args, exc)

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="faka-job")
        return self._executor

    def _run_in_thread(self, func, args):
        with self.app.app_context():
            self._run_logged(func, args)

    @staticmethod
    def _run_logged(func, args):
        # Like a queued job, a failure here must not fail the caller: the database still
        # records the work and the reconciler runs it again.
        try:
            func(*args)
        except Exception:
            log.exception("job %s%r failed; the reconciler will retry it", func.__name__, args)

    def start_timer(self) -> None:
        """In thread mode, run the reconciler every RECONCILE_INTERVAL seconds."""
        if self.mode != MODE_THREAD or self._timer is not None:
            return
        interval = self.app.config["RECONCILE_INTERVAL"]

        def loop():
            while not self._stop.wait(interval):
                self._run_in_thread(reconcile, ())

        self._timer = threading.Thread(target=loop, name="faka-reconciler", daemon=True)
        self._timer.start()

    def wait_idle(self) -> None:
        """Wait for in-process jobs to finish (tests and the CLI)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def status(self) -> dict:
        """Worker and queue state for /healthz."""
        if self.mode != MODE_RQ:
            return {"mode": self.mode, "alive": True, "queued": None}
        from rq import Worker

        queue = self.queue()
        workers = Worker.all(queue=queue)
        return {"mode": self.mode, "alive": bool(workers), "workers": len(workers), "queued": queue.count}


def init_app(app) -> None:
    runner = app.extensions["faka_jobs"] = JobRunner(app)
    if runner.mode == MODE_THREAD and app.config["RECONCILE_INTERVAL"] > 0:
        # Started by the first request, so CLI commands and imports start no threads.
        app.before_request(runner.start_timer)


def runner() -> JobRunner:
    return current_app.extensions["faka_jobs"]


def enqueue(func, *args, job_id: str | None = None) -> None:
    """Run `func(*args)` as a job: once the open write_transaction() commits, or now."""
    jobs = runner()
    if not after_commit(lambda: jobs.enqueue(func, *args, job_id=job_id)):
        jobs.enqueue(func, *args, job_id=job_id)


def settle_balances() -> dict:
    """The daily settlement check (faka/ledger/settlement.py): balances and reconciliation,
    recorded once per day; worker.py schedules it."""
    from faka.ledger import settlement

    with _app_context():
        event = settlement.settle()
        return {"event": event.id, "detail": event.detail}
