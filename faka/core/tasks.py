"""Background tasks, and the one seam that enqueues them by name.

A task is a plain function in a context's `tasks.py` that takes ids and is idempotent;
it runs inside an app context (the worker's, the thread's or, in tests, the caller's).
`enqueue("orders.tasks.deliver_order", order_id)` names it, so a context can ask for
another context's work without importing it, and this module imports no context:
- with REDIS_URL the task goes on the RQ queue (run `faka-worker`);
- without it, the task runs in a background thread of this process, and a timer thread
  runs the reconciler, so `make run` needs nothing installed;
- "sync" mode (tests) runs it inline, with failures only logged.
Inside a write_transaction() the task is sent once the transaction commits. If enqueueing
fails (Redis down) the work is still recorded in the database and the reconciler enqueues
it again later.
"""

import logging
import re
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TYPE_CHECKING, Any

from flask import Flask, current_app
from werkzeug.utils import import_string

from faka.core.db import after_commit

if TYPE_CHECKING:  # imported where used: an app without REDIS_URL never loads them
    from redis import Redis
    from rq import Queue

log = logging.getLogger(__name__)

MODE_RQ = "rq"
MODE_THREAD = "thread"
MODE_SYNC = "sync"
JOB_TIMEOUT = 120
RETRY_INTERVALS = [5, 30, 120, 600]
RECONCILE = "ops.tasks.reconcile"

# <context>.tasks.<function>: nothing else can be run by name
TASK_NAME = re.compile(r"^[a-z]+\.tasks\.[a-z_]+$")


def task(name: str) -> Callable[..., Any]:
    """The function a task name stands for."""
    if not TASK_NAME.match(name):
        raise ValueError(f"not a task name: {name!r}")
    return import_string(f"faka.{name}")


class JobRunner:
    def __init__(self, app: Flask) -> None:
        self.app = app
        self.mode = app.config.get("JOBS_MODE") or (MODE_RQ if app.config.get("REDIS_URL") else MODE_THREAD)
        self._executor: ThreadPoolExecutor | None = None
        self._timer: threading.Thread | None = None
        self._stop = threading.Event()
        self._redis: Redis | None = None

    @property
    def redis(self) -> "Redis":
        if self._redis is None:
            from redis import Redis  # see TYPE_CHECKING above: only an app with REDIS_URL

            self._redis = Redis.from_url(self.app.config["REDIS_URL"])
        return self._redis

    def queue(self) -> "Queue":
        from rq import Queue  # only an app with REDIS_URL (see TYPE_CHECKING above)

        return Queue(self.app.config["RQ_QUEUE"], connection=self.redis)

    def enqueue(self, name: str, *args: Any, job_id: str | None = None) -> None:
        task(name)  # a misspelt name fails here, in the caller, not later in a worker
        if self.mode == MODE_SYNC:
            self._run_logged(name, args)
        elif self.mode == MODE_RQ:
            self._enqueue_rq(name, args, job_id)
        else:
            self.executor().submit(self._run_in_thread, name, args)

    def _enqueue_rq(self, name: str, args: tuple[Any, ...], job_id: str | None) -> None:
        # Only an app with REDIS_URL gets here (see TYPE_CHECKING above).
        from redis.exceptions import RedisError
        from rq import Retry

        try:
            self.queue().enqueue(
                f"faka.{name}",
                *args,
                job_id=job_id,
                job_timeout=JOB_TIMEOUT,
                retry=Retry(max=len(RETRY_INTERVALS), interval=RETRY_INTERVALS),
                result_ttl=300,
                failure_ttl=7 * 86400,
            )
        except RedisError as exc:
            # The database already records the work; the reconciler will enqueue it again.
            log.error("could not enqueue %s%r: %s", name, args, exc)

    def executor(self) -> ThreadPoolExecutor:
        if self._executor is None:
            self._executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="faka-job")
        return self._executor

    def _run_in_thread(self, name: str, args: tuple[Any, ...]) -> None:
        with self.app.app_context():
            self._run_logged(name, args)

    @staticmethod
    def _run_logged(name: str, args: tuple[Any, ...]) -> None:
        # Like a queued job, a failure here must not fail the caller: the database still
        # records the work and the reconciler runs it again.
        try:
            task(name)(*args)
        except Exception:
            log.exception("job %s%r failed; the reconciler will retry it", name, args)

    def start_timer(self) -> None:
        """In thread mode, run the reconciler every RECONCILE_INTERVAL seconds."""
        if self.mode != MODE_THREAD or self._timer is not None:
            return
        interval = self.app.config["RECONCILE_INTERVAL"]

        def loop() -> None:
            while not self._stop.wait(interval):
                self._run_in_thread(RECONCILE, ())

        self._timer = threading.Thread(target=loop, name="faka-reconciler", daemon=True)
        self._timer.start()

    def wait_idle(self) -> None:
        """Wait for in-process jobs to finish (tests and the CLI)."""
        if self._executor is not None:
            self._executor.shutdown(wait=True)
            self._executor = None

    def status(self) -> dict[str, Any]:
        """Worker and queue state for /healthz."""
        if self.mode != MODE_RQ:
            return {"mode": self.mode, "alive": True, "queued": None}
        from rq import Worker  # only in RQ mode (see TYPE_CHECKING above)

        queue = self.queue()
        workers = Worker.all(queue=queue)
        return {"mode": self.mode, "alive": bool(workers), "workers": len(workers), "queued": queue.count}


def init_app(app: Flask) -> None:
    runner = app.extensions["faka_jobs"] = JobRunner(app)
    if runner.mode == MODE_THREAD and app.config["RECONCILE_INTERVAL"] > 0:
        # Started by the first request, so CLI commands and imports start no threads.
        app.before_request(runner.start_timer)


def runner() -> JobRunner:
    return current_app.extensions["faka_jobs"]


def enqueue(name: str, *args: Any, job_id: str | None = None) -> None:
    """Run the task `name` ("orders.tasks.deliver_order") with `args`: once the open
    write_transaction() commits, or now."""
    task(name)  # a misspelt name fails here, in the caller, not after the commit
    jobs = runner()
    if not after_commit(lambda: jobs.enqueue(name, *args, job_id=job_id)):
        jobs.enqueue(name, *args, job_id=job_id)
