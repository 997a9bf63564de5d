"""A short-lived, per-process cache of rendered pages.

The storefront pages are the same for every anonymous visitor except for the CSRF token,
so they are rendered once with a placeholder token and served from memory for
PAGE_CACHE_SECONDS (default 2 s), with each visitor's own token put in on the way out.
The placeholder is a fresh random nonce for each render: merchant text on the page cannot
contain it, so the token lands only where the templates call csrf_token().
Stock counts and catalogue edits therefore show up within that many seconds, in every
process, with no invalidation to get wrong; checkout always re-checks stock itself.

Pages whose keys a visitor can vary at will (searches, far pages of a list) are kept in a
small cache of their own (`store=SEARCHES`): endless random queries can neither push the
home page out of the main cache nor grow memory past SEARCH_ENTRIES pages.

A change the code knows about (a blacklist entry, the site settings, a sub-store's domain)
need not wait for the time to pass: forget(key) and forget_all() drop the entries in this
process at once and, with REDIS_URL, publish the key on a Redis channel. Every process, on
every host, listens to it in a daemon thread of its own (started by its first cached read,
and again in a process forked after that) and drops the key from its own caches. The
message is JSON, never pickle: whoever can write to Redis can make a process forget, never
run anything. While a process is not listening (Redis down, or reconnecting) its entries
still expire after their time, as without Redis. Each time it starts listening, the first
time included, it empties its caches: it may have missed a message meanwhile (before its
first subscription, what its first cached reads kept may already have been forgotten).
"""

import json
import logging
import os
import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import TYPE_CHECKING, Any, TypeVar

from flask import Flask, current_app, g
from flask_wtf.csrf import generate_csrf
from sqlalchemy import event

from faka.extensions import db

if TYPE_CHECKING:  # imported where used: a shop without REDIS_URL never loads redis
    from redis import Redis

MAX_ENTRIES = 2048
SEARCH_ENTRIES = 256
PAGES, SEARCHES = "faka_pagecache", "faka_searchcache"
SIGNAL = "faka_cachesignal"
CHANNEL = "faka-cache"  # then the Redis database's number and the queue: channels span databases
PUBLISH_TIMEOUT = 0.5  # seconds: a change saved while Redis is down waits no longer for it
RECONNECT_SECONDS = 1.0

logger = logging.getLogger(__name__)

T = TypeVar("T")


class TTLCache:
    def __init__(self, max_entries: int = MAX_ENTRIES) -> None:
        self._items: dict[Hashable, tuple[float, Any]] = {}
        self._max = max_entries
        self._lock = threading.Lock()

    def get(self, key: Hashable) -> Any:
        item = self._items.get(key)
        if item is None or item[0] < time.monotonic():
            return None
        return item[1]

    def set(self, key: Hashable, value: Any, ttl: float) -> None:
        with self._lock:
            if len(self._items) >= self._max:
                now = time.monotonic()
                self._items = {k: v for k, v in self._items.items() if v[0] >= now}
                if len(self._items) >= self._max:
                    self._items.clear()
            self._items[key] = (time.monotonic() + ttl, value)

    def discard(self, key: Hashable) -> None:
        with self._lock:
            self._items.pop(key, None)

    def clear(self) -> None:
        with self._lock:
            self._items.clear()


def csrf_token() -> str:
    """The template global `csrf_token()`: a placeholder while a cacheable page renders."""
    return g.get("csrf_placeholder") or generate_csrf()


def cached_page(key: Hashable, render: Callable[[], str], store: str = PAGES) -> str:
    """The page for `key`, rendered by `render()` at most once per PAGE_CACHE_SECONDS, with
    this visitor's CSRF token in it."""
    ttl = current_app.config["PAGE_CACHE_SECONDS"]
    cache: TTLCache = current_app.extensions[store]
    if ttl > 0:
        _listen()
    page = cache.get(key) if ttl > 0 else None
    if page is None:
        g.csrf_placeholder = f"__faka_csrf_{secrets.token_hex(16)}__"
        try:
            page = (render(), g.csrf_placeholder)
        finally:
            g.csrf_placeholder = None
        if ttl > 0:
            cache.set(key, page, ttl)
    html, placeholder = page
    return html.replace(placeholder, generate_csrf())


def reused(key: Hashable, compute: Callable[[], T], seconds: float | None = None) -> T:
    """compute(), reused within this process for `seconds` (default PAGE_CACHE_SECONDS)
    while the page cache is on; computed every time when it is off (tests)."""
    ttl = current_app.config["PAGE_CACHE_SECONDS"]
    if ttl <= 0:
        return compute()
    _listen()
    cache: TTLCache = current_app.extensions["faka_pagecache"]
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, ttl if seconds is None else seconds)
    return value


def forget(key: Hashable) -> None:
    """Drop what reused() keeps for `key`, after a change to it: in this process at once,
    and in every other one as soon as it hears (see above). `key` is a string, a number or
    a tuple of them."""
    message = {"key": _encode(key)}  # a key that cannot be sent fails here, in every set-up
    current_app.extensions[PAGES].discard(key)
    signal = _signal()
    if signal is not None:
        signal.publish(message)


def forget_all() -> None:
    """Empty the page caches of every process, after a change that shows on many pages
    (the site's settings, its look, its categories, a gateway)."""
    for store in (PAGES, SEARCHES):
        current_app.extensions[store].clear()
    signal = _signal()
    if signal is not None:
        signal.publish({"all": True})


def _encode(key: Hashable) -> Any:
    """`key` as JSON can carry it: tuples become lists (a key is never a list)."""
    if isinstance(key, tuple):
        return [_encode(part) for part in key]
    if key is None or isinstance(key, str | int | float):
        return key
    raise TypeError(f"a cache key is made of strings, numbers and tuples, not {type(key).__name__}")


def _decode(value: Any) -> Hashable:
    if isinstance(value, list):
        return tuple(_decode(part) for part in value)
    if value is None or isinstance(value, str | int | float):
        return value
    raise ValueError("not a cache key")


class Signal:
    """This process's end of the channel: it publishes what this process forgets, and a
    daemon thread drops what other processes forget from this app's caches."""

    def __init__(self, url: str, shop: str, caches: tuple[TTLCache, ...]):
        """`shop`: the RQ queue's name, which tells shops sharing one Redis database apart;
        `caches`: the one forget() drops keys from first, then the others forget_all() empties."""
        from redis import ConnectionPool

        self.pid = os.getpid()  # a forked child has no thread of its parent's: it makes its own
        # The database as Redis itself reads the URL: from its path, from `?db=`, or 0 (a unix
        # socket's path names no database).
        database = ConnectionPool.from_url(url).connection_kwargs.get("db", 0)
        self.channel = f"{CHANNEL}:{database}:{shop}"
        self.listening = threading.Event()
        self._url = url
        self._caches = caches
        self._sender = secrets.token_hex(8)  # its own messages it has already applied
        self._publisher: Redis | None = None
        self._thread: threading.Thread | None = None
        self._start_lock = threading.Lock()
        self._stop = threading.Event()

    def start(self) -> None:
        if self._thread is not None:
            return
        with self._start_lock:
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="faka-cache-signal", daemon=True)
                self._thread.start()

    def stop(self) -> None:
        # Not joined: the thread notices within a second, and an app being let go of
        # should not wait for it.
        self._stop.set()

    def publish(self, message: dict[str, Any]) -> None:
        from redis import Redis
        from redis.exceptions import RedisError

        try:
            if self._publisher is None:
                self._publisher = Redis.from_url(
                    self._url, socket_connect_timeout=PUBLISH_TIMEOUT, socket_timeout=PUBLISH_TIMEOUT
                )
            self._publisher.publish(self.channel, json.dumps({"from": self._sender, **message}))
        except (RedisError, OSError) as exc:
            logger.warning(
                "page cache: could not tell the other processes (%s); they see the change within their cache time",
                type(exc).__name__,
            )

    def _run(self) -> None:
        from redis import Redis

        first = True
        while not self._stop.is_set():
            client = Redis.from_url(
                self._url, socket_connect_timeout=5, socket_keepalive=True, health_check_interval=30
            )
            pubsub = client.pubsub()
            try:
                pubsub.subscribe(self.channel)
                while not self._stop.is_set():
                    message = pubsub.get_message(timeout=1.0)
                    if message is None:
                        continue
                    if message["type"] == "subscribe":
                        # Missed messages: since the last connection, or, the first time, since
                        # this process's first cached read started the thread.
                        self._apply_all()
                        self.listening.set()
                    elif message["type"] == "message":
                        self._apply(message["data"])
            except Exception as exc:  # noqa: BLE001 - whatever it was, entries expire by time until it is back
                if first or self.listening.is_set():  # once per outage, not at every attempt
                    logger.warning(
                        "page cache: not hearing other processes (%s); their changes show within the cache time",
                        type(exc).__name__,
                    )
            finally:
                first = False
                self.listening.clear()
                pubsub.close()
                client.close()
            self._stop.wait(RECONNECT_SECONDS)

    def _apply(self, data: bytes) -> None:
        try:
            message = json.loads(data)
            if message.get("from") == self._sender:
                return
            if message.get("all") is True:
                self._apply_all()
            else:
                self._caches[0].discard(_decode(message["key"]))
        except (ValueError, TypeError, KeyError, AttributeError):
            logger.warning("page cache: ignored a message on %s that is not a cache key", self.channel)

    def _apply_all(self) -> None:
        for cache in self._caches:
            cache.clear()


_starting = threading.Lock()


def _signal() -> Signal | None:
    """This process's Signal for the current app, None without REDIS_URL. A new one in a
    process forked since the last was made (gunicorn forks its workers); it stops when
    the app's engine is disposed, as the order-status watcher does."""
    # current_app is typed as the Flask app it stands for, not as the proxy it is.
    app = current_app._get_current_object()  # type: ignore[attr-defined]
    found = app.extensions.get(SIGNAL)
    if found is not None and found.pid == os.getpid():
        return found
    url = app.config.get("REDIS_URL")
    if not url:
        return None
    with _starting:
        found = app.extensions.get(SIGNAL)
        if found is None or found.pid != os.getpid():
            caches = (app.extensions[PAGES], app.extensions[SEARCHES])
            found = app.extensions[SIGNAL] = Signal(url, app.config["RQ_QUEUE"], caches)
            event.listen(
                db.engine, "engine_disposed", lambda _engine: app.extensions.pop(SIGNAL, found).stop(), once=True
            )
    return found


def _listen() -> None:
    """Make sure this process hears what others forget before it keeps anything."""
    signal = _signal()
    if signal is not None:
        signal.start()


def init_app(app: Flask) -> None:
    app.extensions[PAGES] = TTLCache()
    app.extensions[SEARCHES] = TTLCache(SEARCH_ENTRIES)
    # Flask-WTF offers csrf_token() both as a global and from a context processor; this
    # processor runs after it and so takes precedence.
    app.context_processor(lambda: {"csrf_token": csrf_token})
