"""`@idempotent` on a POST that creates something: an `Idempotency-Key` header makes sending
the same request again safe (a retry after a timeout creates nothing twice).

- First request with a key: it runs; a success (2xx) is kept, encrypted, 24 hours, per API key.
- The same key and the same request (method, path, JSON body by value): the kept answer
  again, with `Idempotent-Replayed: true`.
- The same key and a different request: 422 `idempotency_key_reused`.
- The same key while the first request still runs: 409 `idempotency_key_in_use`.
- An error answer is not kept: nothing was created, so the key is free again.

Without the header a POST runs as usual. Put it under @requires (which finds the key).
"""

import re
from functools import wraps

from flask import Response, g, make_response, request
from flask_babel import gettext as _

from faka.accounts import api_keys
from faka.web.api.v1.errors import ApiError
from faka.web.api.v1.resource import document

HEADER = "Idempotency-Key"
REPLAYED = "Idempotent-Replayed"
_VALID = re.compile(r"[!-~]{1,255}")  # printable ASCII, no spaces

PARAMETER = {
    "in": "header",
    "name": HEADER,
    "required": False,
    "description": (
        "Makes a retry safe: the same key with the same request within 24 hours answers what the first "
        "answered, creating nothing again. Any unique string, such as a UUID."
    ),
    "schema": {"type": "string", "minLength": 1, "maxLength": 255, "pattern": "^[!-~]+$"},
}


def idempotent(view):
    @wraps(view)
    def wrapped(*args, **kwargs):
        value = request.headers.get(HEADER)
        if value is None:
            return view(*args, **kwargs)
        if not _VALID.fullmatch(value):
            raise ApiError(
                400,
                "invalid_idempotency_key",
                _("The Idempotency-Key header must be 1 to 255 printable ASCII characters without spaces."),
            )
        digest = api_keys.request_digest(request.method, request.path, request.get_data(cache=True))
        claim = api_keys.claim(g.api_key.id, value, digest)
        if claim.outcome == api_keys.MISMATCH:
            raise ApiError(
                422,
                "idempotency_key_reused",
                _("This Idempotency-Key was used for a different request. Use a new key for a new request."),
            )
        if claim.outcome == api_keys.IN_PROGRESS:
            raise ApiError(
                409,
                "idempotency_key_in_use",
                _("A request with this Idempotency-Key is still running. Try again in a moment."),
            )
        if claim.outcome == api_keys.REPLAY:
            return _replayed(claim)
        try:
            response = make_response(view(*args, **kwargs))
        except BaseException:
            api_keys.release(claim.record_id)
            raise
        if 200 <= response.status_code < 300:
            api_keys.finish(
                claim.record_id,
                response.status_code,
                {
                    "body": response.get_data(as_text=True),
                    "content_type": response.content_type,
                    "location": response.headers.get("Location"),
                },
            )
        else:
            api_keys.release(claim.record_id)
        return response

    document(wrapped, responses=(409, 422), parameters=[PARAMETER])
    return wrapped


def _replayed(claim) -> Response:
    answer = claim.answer
    response = Response(answer["body"], status=claim.status, content_type=answer["content_type"])
    if answer.get("location"):
        response.headers["Location"] = answer["location"]
    response.headers[REPLAYED] = "true"
    return response
