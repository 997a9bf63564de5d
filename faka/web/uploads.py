"""Upload routes: who may send files, and how much, is settled before the files are read.

Flask reads a multipart body, files and all, the first time anything looks at the form,
and the global checks of the form (faka/web/request_guard.py, the CSRF check of
faka/web/security.py) look before any access rule or view has run: every upload would be
received in full, from anyone. An upload route is therefore left out of those early checks
and wrapped by `accepts_upload`, which runs after the blueprint's access rule and the
route's rate limit and, for a POST:

1. asks the route whether this request may upload here at all (`refused`), from the URL,
   the session and the database only: an unknown order, a closed complaint or a
   qualification under review is answered without the body having been read;
2. bounds the body for this route (bytes and parts): more is a 413 page naming the limit;
3. reads the form, checks its text and its CSRF token, as the global checks would have;
4. runs the view.
"""

from collections.abc import Callable
from dataclasses import dataclass
from functools import wraps

from flask import current_app, request
from flask_babel import gettext as _
from flask_babel import ngettext
from flask_login import current_user
from werkzeug.exceptions import RequestEntityTooLarge

from faka.core.uploads import MB
from faka.extensions import csrf, limiter
from faka.web import request_guard

# Room for a form's own fields beside its files: a complaint's 4,000 characters fit many times.
FORM_BYTES = 64 * 1024
FORM_PARTS = 20


@dataclass(frozen=True)
class UploadLimit:
    """What one request to an upload route may carry."""

    files: int
    file_bytes: int

    @property
    def max_bytes(self) -> int:
        return self.files * self.file_bytes + FORM_BYTES


class UploadTooLarge(RequestEntityTooLarge):
    """A body over its route's limit; the error page shows `message`."""

    def __init__(self, files: int, max_bytes: int):
        super().__init__()
        limit = ngettext(
            "This form takes at most %(num)s file, %(size)s MB in all.",
            "This form takes at most %(num)s files, %(size)s MB in all.",
            files,
            size=max_bytes // MB,
        )
        self.message = f"{_('The upload is too large.')} {limit}"


def accepts_upload(limit: UploadLimit, refused: Callable[..., object] | None = None):
    """Make a view an upload route (see the module's docstring). `refused(**view_args)`
    answers a request that may not upload (a page with the reason, or an abort), or None."""

    def decorator(view):
        # Both checked in _receive, once the route has said the request may upload.
        csrf.exempt(view)
        view.reads_form_late = True  # see request_guard.guard_request; wraps() carries it outwards

        @wraps(view)
        def wrapped(*args, **kwargs):
            if request.method == "POST":
                if refused is not None:
                    answer = refused(**kwargs)
                    if answer is not None:
                        return answer
                _receive(limit)
            return view(*args, **kwargs)

        return wrapped

    return decorator


def _receive(limit: UploadLimit) -> None:
    max_bytes = min(limit.max_bytes, current_app.config["MAX_CONTENT_LENGTH"] or limit.max_bytes)
    request.max_content_length = max_bytes
    request.max_form_parts = limit.files + FORM_PARTS
    try:
        _ = request.form  # parsed here, files and all, so that a body over the limit gets this route's message
    except RequestEntityTooLarge as exc:
        raise UploadTooLarge(limit.files, max_bytes) from exc
    request_guard.guard_form()
    if current_app.config["WTF_CSRF_ENABLED"]:
        csrf.protect()


def user_key() -> str:
    """A rate limit's key for the logged-in back-office user."""
    return f"user-{current_user.get_id()}"


def _upload_limit() -> str:
    return current_app.config["RATELIMIT_UPLOAD"]


# One budget per back-office user for all their uploads (licence, product images, key
# files, the site logo): each can carry megabytes and megapixels to decode.
back_office_uploads = limiter.shared_limit(_upload_limit, scope="upload", key_func=user_key, methods=["POST"])
