"""Who may open which back-office page: every GET route of the operator console and the
merchant back office, read from the app's URL map (so routes added later are covered),
against every role that must be refused."""

from urllib.parse import urlparse

import pyotp
from werkzeug.routing import IntegerConverter

from faka.accounts import users
from faka.core.crypto import vault
from faka.extensions import db
from tests.conftest import login


def back_office_urls(app, prefix: str) -> list[str]:
    """A URL for every GET route whose endpoint starts with `prefix`, its parameters
    filled with dummy values (1 for numbers, "x" otherwise)."""
    urls = []
    for rule in app.url_map.iter_rules():
        if not rule.endpoint.startswith(prefix) or "GET" not in rule.methods:
            continue
        values = {
            name: 1 if isinstance(converter, IntegerConverter) else "x" for name, converter in rule._converters.items()
        }  # noqa: SLF001
        urls.append(rule.build(values)[1])
    return sorted(urls)


def test_back_office_pages_refuse_every_role_that_must_not_see_them(app, merchant):
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    operator.totp_secret = vault().encrypt(pyotp.random_base32())
    db.session.commit()
    anonymous = app.test_client()
    as_merchant = app.test_client()
    login(as_merchant, merchant.user)
    as_operator = app.test_client()
    login(as_operator, operator)

    operator_urls = back_office_urls(app, "operator.")
    merchant_urls = back_office_urls(app, "merchant.")
    assert "/operator/merchants" in operator_urls and "/merchant/" in merchant_urls

    # (client, extra headers, urls, expected status, expected redirect path or None)
    table = [
        (anonymous, {}, operator_urls + merchant_urls, 303, "/login"),
        (anonymous, {"HX-Request": "true"}, operator_urls + merchant_urls, 403, None),
        (as_merchant, {}, operator_urls, 403, None),
        (as_operator, {}, merchant_urls, 403, None),  # an operator without a shop of their own
    ]
    wrong = []
    for client, headers, urls, status, location in table:
        for url in urls:
            response = client.get(url, headers=headers)
            where = urlparse(response.headers.get("Location", "")).path if location else None
            if response.status_code != status or where != location:
                wrong.append((url, headers, response.status_code, response.headers.get("Location")))
    assert wrong == []
