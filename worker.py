"""Run an RQ worker (and the periodic jobs) for the configured app.

    REDIS_URL=redis://127.0.0.1:6379/0 python worker.py [--burst] [--no-cron]

The worker runs jobs in its own process (SimpleWorker: no fork per job, so the app and
its database pool are set up once). Unless --no-cron, a thread enqueues the periodic jobs
via RQ's cron scheduler: the reconciler every FAKA_RECONCILE_INTERVAL seconds and the
settlement check every hour; running them in more than one worker is harmless because
both are idempotent.
"""
import argparse
import logging
import threading

from rq import SimpleWorker
from rq.cron import CronScheduler

from faka import create_app, jobs

SETTLE_INTERVAL = 3600  # seconds; settling is idempotent per day


class _ThreadCronScheduler(CronScheduler):
    def _install_signal_handlers(self):
        pass  # signals belong to the worker in the main thread


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
        runner = jobs.runner()
        if not args.no_cron and not args.burst:
            cron = _ThreadCronScheduler(connection=runner.redis)
            cron.register(jobs.reconcile, queue_name=app.config["RQ_QUEUE"], interval=app.config["RECONCILE_INTERVAL"])
            # Hourly, though it records once a day: a worker down at midnight catches up.
            cron.register(jobs.settle_balances, queue_name=app.config["RQ_QUEUE"], interval=SETTLE_INTERVAL)
            threading.Thread(target=cron.start, name="faka-cron", daemon=True).start()
        worker = SimpleWorker([runner.queue()], connection=runner.redis)
        worker.work(burst=args.burst, with_scheduler=True)


if __name__ == "__main__":
    main()
