"""What every fake provider shares: its key pairs, the record of what it received and
what it sent, the plain HTML pages the buyer sees, and the call to the merchant."""

import base64
import functools
import secrets
import string
import threading
import time
from dataclasses import dataclass, field
from typing import Any

import requests
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from flask import render_template_string, request

NOTIFY_TIMEOUT = 15  # seconds the fake waits for the merchant's answer


# -- keys -----------------------------------------------------------------------------------


@functools.cache
def key_pair(name: str) -> rsa.RSAPrivateKey:
    """An RSA-2048 key pair per name, made once per test session (each takes a moment)."""
    return rsa.generate_private_key(public_exponent=65537, key_size=2048)


def private_pem(key: rsa.RSAPrivateKey) -> str:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()


def public_pem(key: rsa.RSAPrivateKey) -> str:
    return (
        key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )


def rsa_sha256_sign(key: rsa.RSAPrivateKey, message: bytes) -> str:
    """SHA256withRSA (PKCS#1 v1.5), base64: what every provider here calls RSA2 / RSA."""
    return base64.b64encode(key.sign(message, padding.PKCS1v15(), hashes.SHA256())).decode()


def rsa_sha256_verifies(key: rsa.RSAPrivateKey, message: bytes, signature: Any) -> bool:
    if not isinstance(signature, str) or not signature:
        return False
    try:
        key.public_key().verify(
            base64.b64decode(signature, validate=True), message, padding.PKCS1v15(), hashes.SHA256()
        )
    except (ValueError, InvalidSignature):
        return False
    return True


def random_text(length: int, alphabet: str = string.ascii_letters + string.digits) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(length))


def random_digits(length: int) -> str:
    return "".join(secrets.choice(string.digits) for _ in range(length))


# -- what the fake saw --------------------------------------------------------------------------


@dataclass
class Received:
    """A request the fake received (from the merchant's server or the buyer's browser) and
    how it answered. `verified` is False when the request failed the provider's checks;
    `error` is then the provider's error code for it."""

    provider: str
    action: str  # e.g. "submit.php", "alipay.trade.precreate", "POST /v3/pay/transactions/native"
    method: str
    url: str  # path and query string as received
    headers: dict[str, str]
    params: dict[str, Any]  # query string and form, or the JSON body
    body: bytes
    verified: bool = True
    error: str | None = None
    status: int = 200
    answer: str = ""
    at: float = field(default_factory=time.time)


@dataclass
class Sent:
    """A notification the fake sent to the merchant, and the merchant's answer.
    `accepted` says the answer is the one the provider documents as "received"."""

    provider: str
    order_number: str  # the merchant's order number the notification is about
    method: str
    url: str
    headers: dict[str, str]
    body: bytes
    params: dict[str, Any]  # what the notification says (decrypted for WeChat Pay)
    status: int | None = None  # None: the merchant could not be reached
    answer: str = ""
    accepted: bool = False
    at: float = field(default_factory=time.time)


class Provider:
    """The base of every fake provider: a name, a path prefix on the fake server, records."""

    name = ""  # the faka gateway it plays the provider for
    prefix = ""

    def __init__(self):
        self.base_url = ""  # the fake server's address, set when it starts
        self.lock = threading.RLock()
        self.received: list[Received] = []
        self.sent: list[Sent] = []
        # While True, notifications are kept back (as if the merchant's server could not be
        # reached) until release(): for tests of the "I have paid" query and the reconciler.
        self.hold_notifications = False
        self.held: list[Sent] = []

    @property
    def url(self) -> str:
        return self.base_url + self.prefix

    def clear(self) -> None:
        """Forget what was received, sent and held back (the provider's trades stay), and send
        notifications again."""
        with self.lock:
            self.received.clear()
            self.sent.clear()
            self.held.clear()
            self.hold_notifications = False

    def release(self) -> list[Sent]:
        """Send the notifications held back, in order; what the merchant answered to each."""
        with self.lock:
            held, self.held = self.held, []
        return [self._deliver(sent) for sent in held]

    def requests_for(self, action: str | None = None, verified: bool | None = None) -> list[Received]:
        with self.lock:
            return [
                r
                for r in self.received
                if (action is None or r.action == action) and (verified is None or r.verified == verified)
            ]

    def refused(self) -> list[Received]:
        return self.requests_for(verified=False)

    def notifications(self, order_number: str | None = None) -> list[Sent]:
        with self.lock:
            return [s for s in self.sent if order_number is None or s.order_number == order_number]

    def replay(self, sent: Sent) -> Sent:
        """Send a notification again, byte for byte (a provider repeats one it thinks lost)."""
        return self._deliver(
            Sent(sent.provider, sent.order_number, sent.method, sent.url, dict(sent.headers), sent.body, sent.params)
        )

    # -- for the subclasses -----------------------------------------------------------

    def record(
        self,
        action: str,
        params: dict,
        verified: bool = True,
        error: str | None = None,
        status: int = 200,
        answer: str | bytes = "",
    ) -> Received:
        received = Received(
            provider=self.name,
            action=action,
            method=request.method,
            url=request.environ.get("REQUEST_URI") or request.full_path.rstrip("?"),
            headers=dict(request.headers),
            params=params,
            body=request.get_data(cache=True),
            verified=verified,
            error=error,
            status=status,
            answer=answer.decode("utf-8", "replace") if isinstance(answer, bytes) else answer,
        )
        with self.lock:
            self.received.append(received)
        return received

    def notify(
        self, order_number: str, method: str, url: str, headers: dict[str, str], body: bytes, params: dict
    ) -> Sent:
        sent = Sent(self.name, order_number, method, url, headers, body, params)
        if self.hold_notifications:
            with self.lock:
                self.held.append(sent)
            return sent
        return self._deliver(sent)

    def _deliver(self, sent: Sent) -> Sent:
        try:
            with requests.Session() as http:  # one each: notifications go out from several threads
                http.trust_env = False  # never through a proxy from the environment
                response = http.request(
                    sent.method,
                    sent.url,
                    data=sent.body or None,
                    headers=sent.headers,
                    timeout=NOTIFY_TIMEOUT,
                    allow_redirects=False,
                )
        except requests.RequestException as exc:
            sent.answer = f"unreachable: {type(exc).__name__}"
        else:
            sent.status, sent.answer = response.status_code, response.text
            sent.accepted = self.accepts(response.status_code, response.text)
        with self.lock:
            self.sent.append(sent)
        return sent

    def accepts(self, status: int, body: str) -> bool:
        """Whether the merchant's answer means "received" in this provider's protocol."""
        raise NotImplementedError


# -- the buyer's pages ----------------------------------------------------------------------------

PAGE = """<!doctype html>
<html lang="{{ lang }}">
<head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>{{ title }}</title>
<style>
body { font: 16px/1.5 system-ui, sans-serif; margin: 0; padding: 16px; max-width: 480px; box-sizing: border-box; }
h1 { font-size: 20px; } .amount { font-size: 28px; font-weight: bold; } .error { color: #b00020; }
button { font-size: 18px; width: 100%; padding: 12px; margin: 8px 0; }
input, select { font-size: 16px; width: 100%; box-sizing: border-box; padding: 8px; }
dl { display: grid; grid-template-columns: auto 1fr; gap: 4px 12px; } dd { margin: 0; overflow-wrap: anywhere; }
</style></head>
<body data-provider="{{ provider }}">
<h1>{{ title }}</h1>
{% if error %}<p class="error" role="alert">{{ error }}</p>{% endif %}
{% if facts %}<dl>{% for label, value in facts %}<dt>{{ label }}</dt><dd>{{ value }}</dd>{% endfor %}</dl>{% endif %}
{% if amount %}<p class="amount">{{ amount }}</p>{% endif %}
{% if form_action %}
<form method="post" action="{{ form_action }}">
  {% for name, value in hidden.items() %}<input type="hidden" name="{{ name }}" value="{{ value }}">{% endfor %}
  {% for input in inputs %}
  <label>{{ input.label }}
    {% if input.choices %}
    <select name="{{ input.name }}">
      {% for value, text in input.choices %}
      <option value="{{ value }}"{% if value == input.value %} selected{% endif %}>{{ text }}</option>
      {% endfor %}
    </select>
    {% else %}
    <input name="{{ input.name }}" value="{{ input.value }}" autocomplete="off">
    {% endif %}
  </label>
  {% endfor %}
  <button type="submit" name="action" value="pay" class="pay">{{ button }}</button>
</form>
{% endif %}
{% for href, text in links %}<p><a href="{{ href }}">{{ text }}</a></p>{% endfor %}
</body></html>"""


def page(
    provider: str,
    title: str,
    *,
    status: int = 200,
    error: str | None = None,
    facts=(),
    amount: str = "",
    form_action: str | None = None,
    hidden: dict | None = None,
    inputs=(),
    button: str = "",
    links=(),
    lang: str = "zh-CN",
):
    """A provider's page as plain HTML: it works without JavaScript; its one form posts
    back to the fake itself."""
    html = render_template_string(
        PAGE,
        provider=provider,
        title=title,
        error=error,
        facts=list(facts),
        amount=amount,
        form_action=form_action,
        hidden=hidden or {},
        inputs=list(inputs),
        button=button,
        links=list(links),
        lang=lang,
    )
    return html, status, {"Content-Type": "text/html; charset=utf-8"}


def request_params() -> dict[str, str]:
    """The query string and form fields of the current request, one value each."""
    params = request.args.to_dict()
    params.update(request.form.to_dict())
    return params


def with_query(url: str, query: str) -> str:
    """`url` with `query` (already encoded) added to its query string."""
    if not query:
        return url
    base, _, fragment = url.partition("#")
    return base + ("&" if "?" in base else "?") + query + (f"#{fragment}" if fragment else "")


def fen(yuan: str) -> int:
    """A yuan amount text ("12.5", "12.50") as fen."""
    whole, _, cents = yuan.partition(".")
    return int(whole or "0") * 100 + int(cents.ljust(2, "0")[:2])


def yuan(amount: int) -> str:
    return f"{amount // 100}.{amount % 100:02d}"
