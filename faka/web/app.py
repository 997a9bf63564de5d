"""The Flask class faka runs on."""

from weakref import WeakSet

from flask import Flask


class Faka(Flask):
    """Flask, remembering which of its views and hooks are plain functions.

    Flask asks `inspect.iscoroutinefunction` of every hook and of the view on every
    request (`ensure_sync`), about ten times a request here, though the answer never
    changes for a function; on the polled status endpoint that was about 5% of the time.
    The set holds the functions weakly, so one made for a single request is not kept.
    """

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._plain_functions = WeakSet()

    def ensure_sync(self, func):
        if func in self._plain_functions:
            return func
        found = super().ensure_sync(func)
        if found is func:
            try:
                self._plain_functions.add(func)
            except TypeError:  # cannot be referred to weakly: asked every time
                pass
        return found
