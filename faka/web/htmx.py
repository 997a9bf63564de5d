"""How a view tells what an htmx request wants, read once from htmx-flask's `request.htmx`."""

from flask import request


def wants_partial() -> bool:
    """An htmx request that swaps one region of the page, so the view answers with that
    region's partial. A boosted link or form wants the whole page (htmx swaps the body), and
    so does a history restore (Back to a page that left htmx's cache)."""
    return bool(request.htmx) and not request.htmx.boosted and not request.htmx.history_restore_request


def from_htmx() -> bool:
    """Any request htmx made, boosted ones included: it cannot follow a redirect to a
    login page as a page would, so it gets a 403 or an HX-Redirect instead."""
    return bool(request.htmx)
