"""Security headers on every kind of response a visitor can get: pages, HTMX partials,
JSON, static files, uploaded images, error pages and gateway answers; HSTS and Secure
cookies only over HTTPS (directly or behind the reverse proxy)."""

import io
from dataclasses import dataclass

import pyotp
import pytest
from PIL import Image
from sqlalchemy import select

from conftest import FreshContextClient, login, signed_notify
from faka.accounts import users
from faka.accounts.models import Merchant
from faka.catalog.models import Product
from faka.complaints import workflow
from faka.complaints.models import Complaint, ComplaintImage
from faka.core.crypto import vault
from faka.core.uploads import store_image
from faka.extensions import db
from faka.orders.models import Order
from faka.platform.settings import set_setting


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (200, 30, 30)).save(out, "PNG")
    return out.getvalue()


class SchemeClient(FreshContextClient):
    """A test client whose requests all arrive over one scheme (http or https)."""

    scheme = "http"

    def open(self, *args, **kwargs):
        kwargs.setdefault("base_url", f"{self.scheme}://localhost")
        return super().open(*args, **kwargs)


@dataclass
class World:
    """One of everything a response can be about, and a client for each kind of visitor."""

    app: object
    scheme: str
    product: Product
    pending: Order
    delivered: Order
    complaint: Complaint
    evidence: str
    logo: str
    merchant: Merchant

    def client(self, user=None):
        client = SchemeClient(self.app, self.app.response_class, use_cookies=True)
        client.scheme = self.scheme
        if user is not None:
            login(client, user)
        return client


@pytest.fixture(params=["http", "https"])
def world(request, make_app, make_product, merchant, pay, place):
    # A token miss budget of one: the second miss is the 429 in the table.
    app = make_app(RATELIMIT_TOKEN_MISSES="1 per minute")
    with app.app_context():
        product = make_product(keys=5)
        delivered = place(product)
        pay(delivered)
        complaint = workflow.open_complaint(delivered.token, Complaint.KEY_INVALID, "Already used.", [png_bytes()])
        evidence = db.session.scalar(select(ComplaintImage.name).where(ComplaintImage.complaint_id == complaint.id))
        merchant = db.session.get(Merchant, merchant.id)
        merchant.licence_image = store_image(png_bytes())
        logo = store_image(png_bytes())
        set_setting("logo", logo)
        yield World(
            app,
            request.param,
            product,
            place(product),
            db.session.get(Order, delivered.id),
            complaint,
            evidence,
            logo,
            merchant,
        )


def operator_user():
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    return operator


def twice(client, path):
    client.get(path)
    return client.get(path)


# Every kind of response: how to get it, and the status that shows it is that response.
RESPONSES = {
    "home": (lambda w: w.client().get("/"), 200),
    "product page": (lambda w: w.client().get(f"/p/{w.product.slug}"), 200),
    "order page": (lambda w: w.client().get(f"/order/{w.delivered.token}"), 200),
    "order status partial": (
        lambda w: w.client().get(f"/order/{w.pending.token}/status", headers={"HX-Request": "true"}),
        200,
    ),
    "pay page": (lambda w: w.client().get(f"/pay/{w.pending.token}"), 200),
    "lookup": (lambda w: w.client().get("/lookup"), 200),
    "login": (lambda w: w.client().get("/login"), 200),
    "merchant dashboard": (lambda w: w.client(w.merchant.user).get("/merchant/"), 200),
    "operator dashboard": (lambda w: w.client(operator_user()).get("/operator/"), 200),
    "healthz JSON": (lambda w: w.client().get("/healthz"), 200),
    "static CSS": (lambda w: w.client().get("/static/css/faka.css"), 200),
    "static JS": (lambda w: w.client().get("/static/js/faka.js"), 200),
    "site logo": (lambda w: w.client().get(f"/site/logo/{w.logo}"), 200),
    "complaint evidence to the buyer": (
        lambda w: w.client().get(f"/order/{w.delivered.token}/complaint/{w.complaint.ref}/evidence/{w.evidence}"),
        200,
    ),
    "licence image to its merchant": (lambda w: w.client(w.merchant.user).get("/merchant/qualification/licence"), 200),
    "licence image to the operator": (
        lambda w: w.client(operator_user()).get(f"/operator/merchants/{w.merchant.id}/licence"),
        200,
    ),
    "404 page": (lambda w: w.client().get("/no-such-page"), 404),
    "404 partial": (lambda w: w.client().get(f"/order/{'0' * 32}", headers={"HX-Request": "true"}), 404),
    "429 page": (lambda w: twice(w.client(), f"/order/{'0' * 32}"), 429),
    "CSRF failure": (lambda w: w.client().post("/lookup", data={"query": "x", "query_password": "y"}), 400),
    "notify answer": (lambda w: w.client().post("/pay/sandbox/notify", data=signed_notify(w.pending)), 200),
}


def script_sources(csp: str) -> str:
    directives = dict((part.strip() + " ").split(" ", 1) for part in csp.split(";") if part.strip())
    return directives.get("script-src", directives.get("default-src", ""))


@pytest.mark.parametrize("kind", RESPONSES)
def test_every_response_carries_the_security_headers(world, kind):
    get, status = RESPONSES[kind]
    response = get(world)
    assert response.status_code == status, response.text[:300]
    headers = response.headers
    csp = headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in csp
    assert "'unsafe-inline'" not in script_sources(csp) and "'unsafe-eval'" not in script_sources(csp)
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["X-Frame-Options"] == "DENY"
    assert headers["Referrer-Policy"] in ("same-origin", "strict-origin-when-cross-origin")
    assert all(f"{feature}=()" in headers["Permissions-Policy"] for feature in ("camera", "microphone", "geolocation"))
    assert headers["Cross-Origin-Opener-Policy"] == "same-origin"
    if world.scheme == "https":
        assert headers["Strict-Transport-Security"].startswith("max-age=31536000")
    else:
        assert "Strict-Transport-Security" not in headers


UPLOADS = (
    "site logo",
    "complaint evidence to the buyer",
    "licence image to its merchant",
    "licence image to the operator",
)


@pytest.mark.parametrize("kind", UPLOADS)
def test_uploaded_images_are_typed_inline_and_sandboxed(world, kind):
    response = RESPONSES[kind][0](world)
    assert response.status_code == 200
    # The stored image is JPEG unless it needs transparency: the type is the one it was re-encoded to.
    assert response.mimetype == "image/jpeg" and response.data.startswith(b"\xff\xd8\xff")
    disposition = response.headers["Content-Disposition"]
    assert disposition.startswith("inline") and ".jpg" in disposition and "/" not in disposition
    assert "sandbox" in response.headers["Content-Security-Policy"]
    assert "default-src 'none'" in response.headers["Content-Security-Policy"]
    if kind != "site logo":
        assert response.headers["Cache-Control"] == "private, no-store"
        assert response.headers["Cross-Origin-Resource-Policy"] == "same-origin"


def test_htmx_error_is_a_line_not_a_page(world):
    response = RESPONSES["404 partial"][0](world)
    assert "<html" not in response.text and 'role="alert"' in response.text


def test_cookies_are_secure_over_https_only(world):
    client = world.client()
    response = client.get("/login")
    cookies = {value.split("=", 1)[0]: value for value in response.headers.getlist("Set-Cookie")}
    assert set(cookies) >= {"session", "faka_device"}
    for value in cookies.values():
        assert ("; Secure" in value) == (world.scheme == "https"), value
        assert "HttpOnly" in value and "SameSite=Lax" in value


@pytest.fixture
def proxied_app(make_app, monkeypatch):
    monkeypatch.setenv("FAKA_PROXY_COUNT", "1")
    app = make_app()
    with app.app_context():
        yield app


def test_behind_the_proxy_https_gets_hsts_and_secure_cookies(proxied_app):
    response = proxied_app.test_client().get("/login", headers={"X-Forwarded-Proto": "https"})
    assert response.headers["Strict-Transport-Security"].startswith("max-age=")
    assert all("; Secure" in value for value in response.headers.getlist("Set-Cookie"))
    plain = proxied_app.test_client().get("/login", headers={"X-Forwarded-Proto": "http"})
    assert "Strict-Transport-Security" not in plain.headers
    assert not any("; Secure" in value for value in plain.headers.getlist("Set-Cookie"))


def test_a_forwarded_scheme_is_ignored_without_a_proxy(client):
    response = client.get("/login", headers={"X-Forwarded-Proto": "https"})
    assert "Strict-Transport-Security" not in response.headers
    assert not any("; Secure" in value for value in response.headers.getlist("Set-Cookie"))


def test_hsts_setting_forces_the_header_over_plain_http(make_app):
    app = make_app(HSTS=True)
    with app.app_context():
        assert app.test_client().get("/healthz").headers["Strict-Transport-Security"].startswith("max-age=")
