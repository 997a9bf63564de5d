"""Real processes for the chaos tests: a Redis server of our own (never the shared one),
RQ workers and gunicorn started as subprocesses, killed and started again."""

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import requests

from conftest import free_port

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
START_TIMEOUT = 30


def wait_until(condition, timeout: float = 30, interval: float = 0.1, what="condition"):
    """Poll `condition()` until it returns something truthy; returns that value. `what`
    names it in the failure (a callable is asked then, e.g. for a process's log)."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what() if callable(what) else what}")
        time.sleep(interval)


class Process:
    """A subprocess in its own process group, its output kept in a log file."""

    def __init__(self, name: str, argv: list[str], env: dict, logdir: Path):
        self.name = name
        self.log_path = logdir / f"{name}-{time.monotonic_ns()}.log"
        with open(self.log_path, "wb") as log:
            self.popen = subprocess.Popen(
                argv, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
            )

    def alive(self) -> bool:
        return self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL the whole group (gunicorn's master and its workers die together)."""
        if self.alive():
            try:
                os.killpg(self.popen.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.popen.wait(timeout=START_TIMEOUT)

    def output(self) -> str:
        return self.log_path.read_text(errors="replace")[-4000:]


class RedisServer:
    """A redis-server on a free port with no persistence: stopping it loses every queued
    job, as a crash of an unpersisted Redis does."""

    def __init__(self, logdir: Path):
        self.port = free_port()
        self.logdir = logdir
        self.workdir = Path(tempfile.mkdtemp(prefix="faka-redis-"))
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        argv = [
            binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--dir",
            str(self.workdir),
        ]
        self.process = Process("redis", argv, os.environ.copy(), self.logdir)
        wait_until(self.ping, START_TIMEOUT, what=f"redis-server on port {self.port}")

    def stop(self) -> None:
        if self.process is not None:
            self.process.kill()
            self.process = None
        assert not self.ping()

    def ping(self) -> bool:
        from redis import Redis
        from redis.backoff import NoBackoff
        from redis.exceptions import RedisError
        from redis.retry import Retry

        try:
            with Redis(port=self.port, socket_connect_timeout=1, socket_timeout=1, retry=Retry(NoBackoff(), 0)) as conn:
                return bool(conn.ping())
        except RedisError:
            return False

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def app_env(config: dict, **extra) -> dict:
    """The environment that makes a faka process use the test's database and keys."""
    env = {
        **os.environ,
        "DATABASE_URL": config["SQLALCHEMY_DATABASE_URI"],
        "FAKA_ENCRYPTION_KEYS": config["ENCRYPTION_KEYS"],
        "SECRET_KEY": config["SECRET_KEY"],
        "FAKA_RQ_QUEUE": config["RQ_QUEUE"],
        "FAKA_BASE_URL": "http://localhost",
        "FAKA_PAGE_CACHE_SECONDS": "0",
        "FAKA_STATUS_CACHE_SECONDS": "0",
        "PYTHONUNBUFFERED": "1",
    }
    for name in ("REDIS_URL", "MAIL_SERVER"):
        env.pop(name, None)
    env.update({name: str(value) for name, value in extra.items()})
    return env


def start_worker(env: dict, logdir: Path, *args: str) -> Process:
    """worker.py, returned once it has registered with Redis (in burst mode: started)."""
    from redis import Redis
    from rq import Worker

    with Redis.from_url(env["REDIS_URL"]) as conn:
        before = {w.name for w in Worker.all(connection=conn)}
        worker = Process("worker", [sys.executable, "-m", "faka.worker", *args], env, logdir)
        if "--burst" not in args:

            def registered():
                if not worker.alive():
                    raise AssertionError(f"worker.py exited:\n{worker.output()}")
                return {w.name for w in Worker.all(connection=conn)} - before

            wait_until(registered, START_TIMEOUT, what="worker.py to register")
    return worker


class WebServer:
    """gunicorn serving the app; restarted on the same port, as a service manager would."""

    def __init__(self, env: dict, logdir: Path, workers: int = 2):
        self.env = env
        self.logdir = logdir
        self.workers = workers
        self.port = free_port()
        self.process: Process | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        self.process = Process(
            "web",
            [
                str(BIN / "gunicorn"),
                "-w",
                str(self.workers),
                "-b",
                f"127.0.0.1:{self.port}",
                "--no-control-socket",
                "faka:create_app()",
            ],
            self.env,
            self.logdir,
        )

        def answers():
            if not self.process.alive():
                raise AssertionError(f"gunicorn exited:\n{self.process.output()}")
            try:
                return requests.get(f"{self.url}/healthz", timeout=5).status_code > 0
            except (requests.ConnectionError, requests.Timeout):
                return False

        wait_until(answers, START_TIMEOUT, what="gunicorn to answer")

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, requests in flight are cut off."""
        if self.process is not None:
            self.process.kill()
            self.process = None

    def restart(self) -> None:
        self.kill()
        self.start()
