"""Baseline security on every page: headers, CSRF, cookies, error pages, keys at rest."""

import logging

import pytest
from sqlalchemy import select

from conftest import csrf_from, key_texts
from faka.extensions import db
from faka.inventory.models import CardKey


def test_security_headers_on_pages(client, product):
    for path in ["/", f"/p/{product.slug}", "/lookup", "/no-such-page"]:
        headers = client.get(path).headers
        csp = headers["Content-Security-Policy"]
        assert "script-src 'self'" in csp and "unsafe-inline" not in csp
        assert "frame-ancestors 'none'" in csp
        assert headers["X-Content-Type-Options"] == "nosniff"


def test_pages_have_no_inline_script_or_handlers(client, product, place, pay):
    import re

    order = place(product)
    pay(order)
    for path in ["/", f"/p/{product.slug}", f"/order/{order.token}", "/lookup", "/login"]:
        html = client.get(path).text
        assert not re.search(r"<script(?![^>]*\bsrc=)[^>]*>", html), path
        assert not re.search(r"\son[a-z]+=", html), path


def test_hsts_when_enabled(make_app):
    app = make_app(HSTS=True)
    assert "max-age" in app.test_client().get("/").headers["Strict-Transport-Security"]


def test_session_cookie_is_httponly_and_samesite(client, product):
    client.get(f"/p/{product.slug}")
    cookie = client.get_cookie("session")
    assert cookie is not None and cookie.http_only and cookie.same_site == "Lax"


def test_htmx_requests_send_csrf_in_header(client, product):
    page = client.get(f"/p/{product.slug}")
    assert 'hx-headers=\'{"X-CSRFToken": "' in page.text
    token = csrf_from(page.text)
    response = client.post(
        f"/p/{product.slug}/buy", data={"quantity": 1}, headers={"X-CSRFToken": token, "HX-Request": "true"}
    )
    assert response.status_code == 200 and response.headers["HX-Redirect"].startswith("/pay/")


@pytest.mark.parametrize("lang,text", [("zh_CN", "页面不存在"), ("en", "does not exist")])
def test_friendly_404_in_both_languages(client, lang, text):
    response = client.get(f"/nowhere?lang={lang}")
    assert response.status_code == 404 and text in response.text


def test_500_page_hides_the_error(make_app):
    app = make_app(fresh=True)  # a route of its own

    @app.get("/boom")
    def boom():
        raise RuntimeError("secret internals")

    response = app.test_client().get("/boom")
    assert response.status_code == 500
    assert "secret internals" not in response.text and "Traceback" not in response.text


def test_keys_are_encrypted_at_rest_and_fingerprinted(app, product):
    rows = db.session.execute(select(CardKey)).scalars().all()
    assert len(rows) == 5
    assert all(not r.ciphertext.startswith("KEY-") and "KEY-" not in r.ciphertext for r in rows)
    assert len({r.fingerprint for r in rows}) == 5
    raw = db.session.execute(db.text("SELECT ciphertext FROM card_keys")).scalars().all()
    assert not any("KEY-" in c for c in raw)


def test_keys_never_appear_in_logs(client, product, place, pay, caplog):
    caplog.set_level(logging.DEBUG)
    order = place(product, 2)
    pay(order)
    client.get(f"/order/{order.token}")
    for key in key_texts(order):
        assert key not in caplog.text


def test_encryption_key_is_generated_outside_database(make_app, instance_dir):
    app = make_app(ENCRYPTION_KEYS=None)
    key_file = instance_dir / "encryption.keys"
    assert key_file.exists() and oct(key_file.stat().st_mode)[-3:] == "600"
    with app.app_context():
        from faka.core.crypto import vault

        assert vault().decrypt(vault().encrypt("x")) == "x"


def test_operator_console_requires_operator(client, merchant):
    assert client.get("/operator/").status_code == 303
    assert client.get("/operator/", headers={"HX-Request": "true"}).status_code == 403


def test_site_wide_default_limit_still_applies_when_configured(make_app):
    """faka skips Flask-Limiter's per-request pass only while no default limit exists."""
    from faka.extensions import limiter

    app = make_app(RATELIMIT_DEFAULT="2 per minute")
    try:
        client = app.test_client()
        assert [client.get("/lookup").status_code for _ in range(3)] == [200, 200, 429]
    finally:
        limiter.limit_manager.set_default_limits([])  # the limiter object outlives this app


def test_back_office_session_ends_after_inactivity(make_app, merchant):
    import time

    from conftest import csrf_from

    app = make_app(PERMANENT_SESSION_LIFETIME=2)
    with app.app_context():
        client = app.test_client()
        page = client.get("/login")
        response = client.post(
            "/login",
            data={"csrf_token": csrf_from(page.text), "email": merchant.user.email, "password": "merchant-pass-1"},
        )
        assert response.status_code == 303
        assert client.get("/merchant/").status_code == 200
        time.sleep(3)
        assert client.get("/merchant/").status_code == 303  # back to the login
