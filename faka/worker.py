"""Run an RQ worker (and the periodic jobs) for the configured app.

    REDIS_URL=redis://127.0.0.1:6379/0 python -m faka.worker [--burst] [--no-cron]

(`faka-worker` is the same, where faka is pip-installed: `make worker` uses it.)

The worker runs jobs in its own process (SimpleWorker: no fork per job, so the app and
its database pool are set up once). Unless --no-cron, a thread enqueues the periodic jobs
via RQ's cron scheduler: the reconciler every FAKA_RECONCILE_INTERVAL seconds and the
settlement check every hour; running them in more than one worker is harmless because
both are idempotent.

RQ's worker and cron loop give up at a Redis error. This process outlives a Redis outage
instead: it waits for Redis to answer and starts them again, and the reconciler then
enqueues whatever was paid or queued while Redis was away (the database recorded it).
"""

import argparse
import logging
import signal
import threading
import time

from redis.exceptions import RedisError
from rq import SimpleWorker
from rq.cron import CronScheduler

from faka import create_app
from faka.core import tasks
from faka.ledger.tasks import settle_balances
from faka.ops.tasks import reconcile

SETTLE_INTERVAL = 3600  # seconds; settling is idempotent per day
REDIS_RETRY_INTERVAL = 1  # seconds between attempts to reach Redis again

log = logging.getLogger("worker")


class _ThreadCronScheduler(CronScheduler):
    def _install_signal_handlers(self):
        pass  # signals belong to the worker in the main thread


class _Worker(SimpleWorker):
    """Remembers a stop asked for by a signal, to tell it from quitting on a Redis error."""

    stop_requested = False

    def request_stop(self, signum, frame):
        self.stop_requested = True
        super().request_stop(signum, frame)


def _keep_scheduling(cron: CronScheduler) -> None:
    while True:
        try:
            cron.start()
            return
        except RedisError as exc:
            log.warning("cron scheduler: Redis unavailable (%s); starting again when it answers", exc)
            time.sleep(REDIS_RETRY_INTERVAL)


def _wait_for_redis(connection) -> None:
    while True:
        try:
            connection.ping()
            return
        except RedisError:
            time.sleep(REDIS_RETRY_INTERVAL)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--burst", action="store_true", help="exit when the queue is empty")
    parser.add_argument("--no-cron", action="store_true", help="do not schedule the reconciler")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")

    app = create_app()
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set: without Redis, jobs run inside the web process")
    with app.app_context():
        runner = tasks.runner()
        if not args.no_cron and not args.burst:
            cron = _ThreadCronScheduler(connection=runner.redis)
            cron.register(reconcile, queue_name=app.config["RQ_QUEUE"], interval=app.config["RECONCILE_INTERVAL"])
            # Hourly, though it records once a day: a worker down at midnight catches up.
            cron.register(settle_balances, queue_name=app.config["RQ_QUEUE"], interval=SETTLE_INTERVAL)
            threading.Thread(target=_keep_scheduling, args=(cron,), name="faka-cron", daemon=True).start()
        while True:
            worker = _Worker([runner.queue()], connection=runner.redis)
            try:
                worker.work(burst=args.burst, with_scheduler=True)
            except RedisError as exc:
                log.warning("worker: Redis unavailable (%s)", exc)
            if args.burst or worker.stop_requested:
                return
            # Between workers no job runs: a signal may end the process at once.
            signal.signal(signal.SIGTERM, signal.SIG_DFL)
            signal.signal(signal.SIGINT, signal.default_int_handler)
            _wait_for_redis(runner.redis)
            log.info("worker: Redis answers again; starting a new worker")


if __name__ == "__main__":
    main()
