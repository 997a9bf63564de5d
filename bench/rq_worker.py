"""Fallback RQ worker for bench/run.py, used only when `python worker.py` exits at start.

worker.py calls `jobs.runner()` (which reads `current_app`) before it pushes an app
context, so it stops with "Working outside of application context". This is the same
worker (SimpleWorker on the configured queue, scheduler on) with the context pushed
first; the bench reports which worker it used. No reconciler cron: the bench measures
delivery only.
"""
import logging

from rq import SimpleWorker

from faka import create_app, jobs


def main() -> None:
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    app = create_app()
    if not app.config.get("REDIS_URL"):
        raise SystemExit("REDIS_URL is not set")
    with app.app_context():
        runner = jobs.runner()
        worker = SimpleWorker([runner.queue()], connection=runner.redis)
        worker.work(with_scheduler=True)


if __name__ == "__main__":
    main()
