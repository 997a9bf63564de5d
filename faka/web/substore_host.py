"""A sub-store on a domain of its own (docs/substores.md): a request whose Host is a
store's domain gets the store's page at `/` and its product pages at `/p/<slug>`. What a
buyer of the store needs besides (the buy form's POST and its price quote, /pay, /order,
/lookup, static files and product pictures, the site's theme, the store's own logo, the
captcha, the policy pages) is served as on the platform's own address, so checkout,
payment and delivery are the same. Anything else (the back office, sign-in, another
store, the platform's shop pages) is redirected (302) to the same path on FAKA_BASE_URL:
a store's domain serves that store only.

Behind a reverse proxy the Host is the proxy's: it must pass the visitor's on (Caddy does;
nginx with `proxy_set_header Host $host`), or send X-Forwarded-Host with FAKA_PROXY_COUNT
set (ProxyFix, faka/core/instance.py). Which domains are stores' is read once for all of
them and reused briefly (DOMAINS_SECONDS), so a request on an unknown host costs no query
of its own and made-up hosts cannot fill a cache.
"""

import re
from urllib.parse import urlsplit

from flask import current_app, g, redirect, request

from faka.core.cache import reused
from faka.growth import storefront
from faka.web.shop import substore

DOMAINS_SECONDS = 30
PRODUCT_PATH = re.compile(r"/p/([^/]+)\Z")
# What a store's domain serves besides its own pages: whole blueprints, then single views.
BUYER_BLUEPRINTS = frozenset({"pay", "orders", "complaints", "brand", "captcha"})
BUYER_ENDPOINTS = frozenset(
    {
        "static",
        "catalog.home",
        "catalog.product",
        "catalog.product_image",
        "catalog.logo",
        "catalog.terms",
        "catalog.refund_policy",
        "catalog.privacy",
        "checkout.buy",
        "checkout.preview",
    }
)


def host_name(host: str) -> str:
    """The Host header as a domain: lower-case, without its port or a final dot."""
    host = host.strip().lower()
    if host.startswith("["):  # an IPv6 address: never a store's domain
        return host
    return host.rsplit(":", 1)[0].rstrip(".")


def store_code(host: str) -> str | None:
    """The code of the store whose domain this Host names, if any. Never for the
    platform's own host (FAKA_BASE_URL), whatever a store's settings say."""
    name = host_name(host)
    if not name or name == host_name(urlsplit(current_app.config["BASE_URL"]).netloc):
        return None
    return reused(("substore-domains",), storefront.store_domains, DOMAINS_SECONDS).get(name)


def _for_buyers(code: str) -> bool:
    """Whether this request's view is one a buyer of the store `code` needs."""
    endpoint = request.endpoint or ""
    if endpoint == "substore.logo":
        return (request.view_args or {}).get("code", "").lower() == code
    return endpoint in BUYER_ENDPOINTS or request.blueprint in BUYER_BLUEPRINTS


def _to_platform():
    base = current_app.config["BASE_URL"].rstrip("/")
    query = request.query_string.decode("latin-1")
    target = f"{base}{request.path}{'?' + query if query else ''}"
    if request.headers.get("HX-Request") == "true":
        # htmx would follow a 302 to another origin with an XHR the browser refuses:
        # tell it to leave the page instead (a full navigation).
        response = current_app.response_class(status=204)
        response.headers["HX-Redirect"] = target
        return response
    return redirect(target, 302)


def serve_store_domain():
    """Before every request: on a store's domain, answer `/` and `/p/<slug>` with the
    store's pages, let what its buyers need go on to its own view, and send anything
    else to the platform's own address."""
    code = store_code(request.host)
    if code is None:
        return None
    if not _for_buyers(code):
        return _to_platform()
    g.substore_host = code  # the store's links are then / and /p/<slug> (substore.store_url)
    path = request.path
    product = PRODUCT_PATH.match(path)
    if request.method not in ("GET", "HEAD") or (path != "/" and product is None):
        return None
    if product is None:
        return substore.store(code)
    return substore.product(code, product.group(1))


def init_app(app) -> None:
    app.before_request(serve_store_domain)
