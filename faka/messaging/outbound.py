"""Requests faka sends to addresses a merchant or the operator chose: webhooks, push
channels, a merchant's delivery server.

The address guard: such an address may not point at a private, loopback, link-local or
other non-public address (config WEBHOOK_ALLOW_PRIVATE=True lifts this, for tests and
private networks). `validate_url` checks it when the address is saved; `post` checks it
again on every connection, against the address actually connected to, so a name
re-pointed at an internal address is refused. Requests go out directly (no environment
proxy) and redirects are not followed.
"""

import http.client
import ipaddress
import socket
import time
import urllib.error
import urllib.request
from datetime import datetime, timedelta
from typing import NamedTuple
from urllib.parse import urlsplit

from flask import current_app
from flask_babel import lazy_gettext as _l
from sqlalchemy import and_, or_, select

from faka.core.errors import DomainError
from faka.extensions import db

MAX_URL_LENGTH = 500
READ_LIMIT = 64 * 1024
# Attempt n+1 at a webhook delivery or a push message is due this long after it was
# created (n = attempts made so far). RQ retries a failed job on its own, shorter
# schedule; the reconciler uses this one, so without Redis, or when RQ lost the job, a
# message still backs off instead of being retried on every reconciler run.
RETRY_AFTER = (
    timedelta(0),
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(RETRY_AFTER)


def due_ids(model, now: datetime) -> list[int]:
    """The ids of the pending rows of `model` (a webhook delivery or a push message: a
    `status`, `attempts` and `created_at`) whose next attempt is due by RETRY_AFTER."""
    due = or_(*(and_(model.attempts == n, model.created_at <= now - wait) for n, wait in enumerate(RETRY_AFTER)))
    return list(
        db.session.execute(select(model.id).where(model.status == model.PENDING, due).order_by(model.id)).scalars()
    )


class InvalidAddress(DomainError):
    message = _l("Enter an http:// or https:// address on the public internet.")


class Answer(NamedTuple):
    """What came back: the HTTP status (None when there was no answer), the first
    READ_LIMIT bytes of the body, and for anything but a 2xx, what went wrong — naming
    the failure, never the URL, the request body or a secret."""

    status: int | None
    body: bytes
    error: str | None

    @property
    def ok(self) -> bool:
        return self.status is not None and 200 <= self.status < 300


def validate_url(url: str) -> str:
    """The URL, stripped, if it is one we may send to; else InvalidAddress."""
    url = (url or "").strip()
    if len(url) > MAX_URL_LENGTH:
        raise InvalidAddress()
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number
    except ValueError:
        raise InvalidAddress() from None
    if parts.scheme not in ("http", "https") or not parts.hostname or parts.username or parts.password:
        raise InvalidAddress()
    if not private_allowed():
        host = parts.hostname.rstrip(".").lower()
        if host == "localhost" or host.endswith(".localhost"):
            raise InvalidAddress()
        try:
            addresses = _resolve(host, parts.port or (443 if parts.scheme == "https" else 80))
        except OSError:
            raise InvalidAddress() from None
        if not all(is_public_address(sockaddr[0]) for *_, sockaddr in addresses):
            raise InvalidAddress()
    return url


def private_allowed() -> bool:
    return bool(current_app.config["WEBHOOK_ALLOW_PRIVATE"])


def post(url: str, body: bytes, headers: dict[str, str], timeout: float = 10) -> Answer:
    """POST `body` to `url` through the address guard, without following redirects.

    `timeout` bounds each wait on the socket; the answer's body must also be complete
    within it, counted from the start, so a server that sends a byte now and then cannot
    hold a worker for longer."""
    request = urllib.request.Request(url, data=body, method="POST", headers=headers)
    deadline = time.monotonic() + timeout
    try:
        with _opener().open(request, timeout=timeout) as response:
            content = b""
            while len(content) < READ_LIMIT:
                chunk = response.read1(READ_LIMIT - len(content))
                if not chunk:
                    break
                content += chunk
                if time.monotonic() > deadline:
                    return Answer(None, b"", f"TimeoutError: no complete answer within {timeout:g} s")
            status = response.status
            return Answer(status, content, None if 200 <= status < 300 else f"HTTP {status}")
    except urllib.error.HTTPError as exc:
        try:
            content = exc.read(READ_LIMIT)
        except OSError:
            content = b""
        exc.close()
        return Answer(exc.code, content, f"HTTP {exc.code}")
    except urllib.error.URLError as exc:
        reason = exc.reason
        return Answer(None, b"", f"{type(reason).__name__}: {reason}"[:300])
    except (OSError, http.client.HTTPException, ValueError) as exc:
        return Answer(None, b"", f"{type(exc).__name__}: {exc}"[:300])


# IPv6 forms that carry an IPv4 address in their last 32 bits and reach it: NAT64
# (RFC 6052), the deprecated IPv4-compatible ::a.b.c.d and SIIT's ::ffff:0:a.b.c.d. A
# NAT64 gateway or a dual-stack host turns 64:ff9b::7f00:1 into 127.0.0.1.
_LAST_32_BITS_IPV4 = tuple(ipaddress.ip_network(n) for n in ("64:ff9b::/96", "::/96", "::ffff:0:0:0/96"))
# RFC 8215's local-use NAT64 prefix translates into the operator's own network by design.
_LOCAL_NAT64 = ipaddress.ip_network("64:ff9b:1::/48")


def is_public_address(address: str) -> bool:
    """Whether faka may connect to `address` (an IP literal, as getaddrinfo gives it) on a
    merchant's behalf: a global unicast address, and for IPv6, every IPv4 address it
    embeds (mapped, 6to4, Teredo, NAT64, IPv4-compatible) is global too."""
    ip = ipaddress.ip_address(address.split("%", 1)[0])
    if ip.version == 6 and ip.ipv4_mapped is not None:
        ip = ip.ipv4_mapped
    candidates = [ip]
    if ip.version == 6:
        if ip in _LOCAL_NAT64:
            return False
        candidates += [ip.sixtofour, *(ip.teredo or ())]
        if any(ip in network for network in _LAST_32_BITS_IPV4):
            candidates.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return all(a.is_global and not a.is_multicast for a in candidates if a is not None)


def _resolve(host: str, port: int):
    return socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)


# Connections check the address they actually connect to, so DNS cannot point a
# merchant's host name at our own network between validation and sending.


class BlockedAddress(OSError):
    pass


def _connect_public(address, timeout=socket._GLOBAL_DEFAULT_TIMEOUT, source_address=None):
    host, port = address
    infos = _resolve(host, port)
    if not infos or not all(is_public_address(sockaddr[0]) for *_, sockaddr in infos):
        raise BlockedAddress("address is not public")
    error = None
    for family, type_, proto, _name, sockaddr in infos:
        sock = socket.socket(family, type_, proto)
        try:
            if timeout is not socket._GLOBAL_DEFAULT_TIMEOUT:
                sock.settimeout(timeout)
            if source_address:
                sock.bind(source_address)
            sock.connect(sockaddr)
            return sock
        except OSError as exc:
            sock.close()
            error = exc
    raise error


class _PublicHTTPConnection(http.client.HTTPConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_public


class _PublicHTTPSConnection(http.client.HTTPSConnection):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self._create_connection = _connect_public


class _PublicHTTPHandler(urllib.request.HTTPHandler):
    def http_open(self, req):
        return self.do_open(_PublicHTTPConnection, req)


class _PublicHTTPSHandler(urllib.request.HTTPSHandler):
    def https_open(self, req):
        return self.do_open(_PublicHTTPSConnection, req, context=self._context)


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None  # a 3xx answer is then an HTTPError: a failed attempt


def _opener() -> urllib.request.OpenerDirector:
    handlers: list[urllib.request.BaseHandler] = [urllib.request.ProxyHandler({}), _NoRedirects()]
    if not private_allowed():
        handlers += [_PublicHTTPHandler(), _PublicHTTPSHandler()]
    return urllib.request.build_opener(*handlers)
