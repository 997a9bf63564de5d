"""The delivery server of a "from my server" product: its signing secret (shown once, made
anew on request), a test request, and the latest requests for orders
(faka/orders/remote_delivery.py, docs/dynamic-delivery.md). The CSRF token is checked for
every POST by faka/web/security.py.

A new secret and a test's result are shown in the answer to the POST itself: they are
stored nowhere the next page could read them from (the secret only encrypted, the test
not at all), as the webhooks' pages do with theirs."""

from flask import g

from faka.catalog import products
from faka.catalog.models import Product
from faka.core.errors import DomainError
from faka.orders import remote_delivery
from faka.web.merchant import bp, render, scoped


def server_page(product: Product, status: int = 200, **context):
    return render(
        "merchant/product_server.html",
        status,
        product=product,
        attempts=remote_delivery.recent_attempts(g.merchant.id, product.slug),
        timeout=remote_delivery.TIMEOUT_SECONDS,
        max_attempts=remote_delivery.MAX_ATTEMPTS,
        **context,
    )


@bp.get("/products/<slug>/server")
@scoped
def product_server(slug: str):
    return server_page(products.get_product(g.merchant.id, slug))


@bp.post("/products/<slug>/server/secret")
@scoped
def product_server_secret(slug: str):
    product = products.get_product(g.merchant.id, slug)
    try:
        secret = remote_delivery.rotate_secret(g.merchant.id, slug)
    except DomainError as exc:
        return server_page(product, 400, error=exc.message)
    return server_page(product, secret=secret)


@bp.post("/products/<slug>/server/test")
@scoped
def product_server_test(slug: str):
    product = products.get_product(g.merchant.id, slug)
    try:
        reply = remote_delivery.send_test(g.merchant.id, slug)
    except DomainError as exc:
        return server_page(product, 400, error=exc.message)
    return server_page(product, test=reply, test_quantity=product.live_variants[0].min_per_order)
