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
"""

import secrets
import threading
import time
from collections.abc import Callable, Hashable
from typing import Any, TypeVar

from flask import Flask, current_app, g
from flask_wtf.csrf import generate_csrf

MAX_ENTRIES = 2048
SEARCH_ENTRIES = 256
PAGES, SEARCHES = "faka_pagecache", "faka_searchcache"

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
    cache: TTLCache = current_app.extensions["faka_pagecache"]
    value = cache.get(key)
    if value is None:
        value = compute()
        cache.set(key, value, ttl if seconds is None else seconds)
    return value


def forget(key: Hashable) -> None:
    """Drop what reused() keeps for `key` in this process, after a change to it."""
    current_app.extensions["faka_pagecache"].discard(key)


def init_app(app: Flask) -> None:
    app.extensions[PAGES] = TTLCache()
    app.extensions[SEARCHES] = TTLCache(SEARCH_ENTRIES)
    # Flask-WTF offers csrf_token() both as a global and from a context processor; this
    # processor runs after it and so takes precedence.
    app.context_processor(lambda: {"csrf_token": csrf_token})
