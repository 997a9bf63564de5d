"""The public license endpoints (/api/v1/licenses/) as a merchant's program sees them, their
rate limits, the product form's setting and the order page's seats; and the Python
example of docs/licenses.md, run as written against a live shop."""

import json
import re
from pathlib import Path

import pytest
from sqlalchemy import select
from test_merchant import post, product_form

from conftest import count, key_texts, login, reload
from faka.catalog.models import Product
from faka.extensions import db
from faka.inventory.models import KeyActivation
from faka.orders.models import Order

DOCS = Path(__file__).resolve().parents[2] / "docs" / "licenses.md"


@pytest.fixture
def licensed(make_product):
    return make_product(keys=6, title="Photo Editor Pro", license_checks=True, activation_limit=2)


@pytest.fixture
def sold(licensed, place, pay):
    order = place(licensed)
    pay(order)
    assert reload(order).status == Order.DELIVERED
    return reload(order), key_texts(order)[0]


def call(client, action, environ_base=None, **fields):
    """The program's POST, messages in English, from 127.0.0.1 or the address given."""
    return client.post(
        f"/api/v1/licenses/{action}",
        json=fields,
        headers={"Accept-Language": "en"},
        environ_base=environ_base or {},
    )


def test_a_program_validates_a_sold_key_without_token_or_cookie(client, licensed, sold):
    order, key = sold
    answer = call(client, "validate", product_id=licensed.slug, key=key, instance_id="laptop-1")
    assert answer.status_code == 200 and answer.is_json
    body = answer.get_json()
    assert body == {
        "valid": True,
        "status": "sold",
        "product": {"id": licensed.slug, "name": "Photo Editor Pro"},
        "sold_at": order.keys[0].sold_at.isoformat(),
        "activations": {"count": 0, "limit": 2},
        "instance": {"id": "laptop-1", "active": False},
    }
    assert answer.headers["Cache-Control"] == "no-store"


def test_activate_deactivate_and_the_limit_over_http(client, licensed, sold):
    _order, key = sold
    first = call(client, "activate", product_id=licensed.slug, key=key, instance_id="laptop-1", instance_name="Anna")
    assert first.status_code == 200
    assert (first.json["result"], first.json["activations"], first.json["instance"]) == (
        "activated",
        {"count": 1, "limit": 2},
        {"id": "laptop-1", "active": True},
    )
    assert call(client, "activate", product_id=licensed.slug, key=key, instance_id="laptop-1").json["result"] == (
        "already_active"
    )
    assert call(client, "activate", product_id=licensed.slug, key=key, instance_id="pc-2").status_code == 200
    full = call(client, "activate", product_id=licensed.slug, key=key, instance_id="pc-3")
    assert full.status_code == 409
    assert full.json["error"]["code"] == "activation_limit_reached"
    assert "2 of 2" in full.json["error"]["message"]

    freed = call(client, "deactivate", product_id=licensed.slug, key=key, instance_id="laptop-1")
    assert (freed.status_code, freed.json["result"], freed.json["activations"]["count"]) == (200, "deactivated", 1)
    again = call(client, "deactivate", product_id=licensed.slug, key=key, instance_id="laptop-1")
    assert again.json["result"] == "not_active"
    assert call(client, "activate", product_id=licensed.slug, key=key, instance_id="pc-3").status_code == 200
    assert count(KeyActivation, KeyActivation.deactivated_at.is_(None)) == 2


def test_a_refunded_key_answers_refunded_and_takes_no_seat(client, licensed, sold):
    order, key = sold
    order.status = Order.REFUNDED  # as a complaint's full refund leaves it (tests/inventory covers the path)
    db.session.commit()
    answer = call(client, "validate", product_id=licensed.slug, key=key)
    assert (answer.status_code, answer.json["valid"], answer.json["status"]) == (200, False, "refunded")
    refused = call(client, "activate", product_id=licensed.slug, key=key, instance_id="laptop-1")
    assert (refused.status_code, refused.json["error"]["code"]) == (409, "license_refunded")
    assert count(KeyActivation) == 0


def _comparable(response):
    headers = {k: v for k, v in response.headers.items() if k not in ("Date", "Set-Cookie")}
    return response.status_code, headers, response.get_data()


def test_unsold_keys_and_products_without_checks_answer_exactly_as_a_missing_key(
    make_app, licensed, sold, make_product, place
):
    client = make_app(RATELIMIT_LICENSE_MISSES="100 per minute").test_client()
    _order, key = sold
    reserved = key_texts(place(licensed))[0]
    in_stock = make_product(keys=0, license_checks=True)
    from faka.inventory.keys import import_keys

    import_keys(in_stock.variants[0], "UNSOLD-KEY-0001")
    off = make_product(keys=0, license_checks=False)
    import_keys(off.variants[0], key)  # the same text, sold by a product whose checks are off
    for action, extra in (("validate", {}), ("activate", {"instance_id": "pc"}), ("deactivate", {"instance_id": "pc"})):
        missing = _comparable(call(client, action, product_id=licensed.slug, key="NO-SUCH-KEY", **extra))
        assert missing[0] == 404
        assert json.loads(missing[2]) == {
            "error": {"code": "not_found", "message": "No sold license matches this key for this product."}
        }
        for product, text in ((licensed, reserved), (in_stock, "UNSOLD-KEY-0001"), (off, key)):
            assert _comparable(call(client, action, product_id=product.slug, key=text, **extra)) == missing


@pytest.mark.parametrize(
    ("body", "fields"),
    [
        ("not json", {"product_id", "key", "instance_id"}),
        ([1, 2], {"_schema"}),
        ({"key": "K", "instance_id": "pc"}, {"product_id"}),
        ({"product_id": "abc", "key": "K" * 2001, "instance_id": "pc"}, {"key"}),
        ({"product_id": "abc", "key": "K\u0007", "instance_id": "pc"}, {"key"}),
        ({"product_id": "abc", "key": "   ", "instance_id": "pc"}, {"key"}),  # blank once trimmed
        ({"product_id": "abc", "key": "K"}, {"instance_id"}),  # activate needs one
        ({"product_id": "abc", "key": "K", "instance_id": "pc", "licence": "x"}, {"licence"}),
    ],
)
def test_malformed_requests_are_refused_with_the_field_at_fault(client, body, fields):
    if isinstance(body, str):
        answer = client.post("/api/v1/licenses/activate", data=body, content_type="text/plain")
    else:
        answer = client.post("/api/v1/licenses/activate", json=body)
    assert (answer.status_code, answer.json["error"]["code"]) == (422, "invalid")
    assert set(answer.json["error"]["fields"]) == fields
    assert count(KeyActivation) == 0


def test_the_checks_are_in_the_api_document_as_public_operations(client):
    document = client.get("/api/v1/openapi.json").get_json()
    for action in ("validate", "activate", "deactivate"):
        operation = document["paths"][f"/api/v1/licenses/{action}"]["post"]
        assert operation["security"] == [] and operation["tags"] == ["licenses"]
        assert {"404", "422", "429"} <= set(operation["responses"])
    assert "409" in document["paths"]["/api/v1/licenses/activate"]["post"]["responses"]


# -- rate limits ------------------------------------------------------------------------------


def test_guessing_keys_is_stopped_and_then_even_a_real_key_waits(make_app, make_product, place, pay):
    app = make_app(RATELIMIT_LICENSE_MISSES="3 per minute")
    with app.app_context():
        product = make_product(keys=2, license_checks=True)
        order = place(product)
        pay(order)
        key = key_texts(order)[0]
        client = app.test_client()
        for i in range(3):
            assert call(client, "validate", product_id=product.slug, key=f"GUESS-{i}").status_code == 404
        limited = call(client, "validate", product_id=product.slug, key="GUESS-3")
        assert limited.status_code == 429
        assert limited.json["error"]["code"] == "rate_limited"
        assert 0 < int(limited.headers["Retry-After"]) <= 60
        # A real key is not let through either: 429 or 200 would tell a guesser which is real.
        assert call(client, "validate", product_id=product.slug, key=key).status_code == 429
        # Another address is not affected.
        other = call(client, "validate", product_id=product.slug, key=key, environ_base={"REMOTE_ADDR": "10.9.8.7"})
        assert other.status_code == 200


def test_checking_real_keys_does_not_spend_the_guessing_budget(make_app, make_product, place, pay):
    app = make_app(RATELIMIT_LICENSE_MISSES="2 per minute", RATELIMIT_LICENSE="8 per minute")
    with app.app_context():
        product = make_product(keys=2, license_checks=True)
        order = place(product)
        pay(order)
        key = key_texts(order)[0]
        client = app.test_client()
        for _ in range(8):
            assert call(client, "validate", product_id=product.slug, key=key).status_code == 200
        assert call(client, "validate", product_id=product.slug, key=key).status_code == 429


# -- the merchant's side ------------------------------------------------------------------------


@pytest.fixture
def merchant_client(client, merchant):
    login(client, merchant.user)
    return client


def test_the_merchant_turns_license_checks_on_in_the_product_form(merchant_client, category):
    page = merchant_client.get("/merchant/products/new?lang=en").text
    assert "License checks (for your own software)" in page and 'name="activation_limit"' in page
    response = post(
        merchant_client, "/merchant/products/new", product_form(category, license_checks="y", activation_limit="3")
    )
    assert response.status_code == 303
    product = db.session.execute(select(Product)).scalar_one()
    assert (product.license_checks, product.activation_limit) == (True, 3)
    edit = merchant_client.get(f"/merchant/products/{product.slug}/edit?lang=en").text
    assert f"The product id your program sends: {product.slug}" in edit
    assert "/api/v1/licenses/validate" in edit


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"license_checks": "y", "activation_limit": "0"}, "A whole number from 1 to 10,000"),
        ({"license_checks": "y", "delivery_type": "manual"}, "License checks need keys sold one to each buyer"),
        ({"license_checks": "y", "reusable_key": "y"}, "License checks need keys sold one to each buyer"),
    ],
)
def test_the_product_form_refuses_license_checks_that_cannot_work(merchant_client, category, changes, message):
    response = post(merchant_client, "/merchant/products/new?lang=en", product_form(category, **changes))
    assert response.status_code == 400 and message in response.text
    assert count(Product) == 0


def test_the_order_page_shows_the_seats_and_the_merchant_frees_one(merchant_client, licensed, sold):
    order, key = sold
    call(merchant_client, "activate", product_id=licensed.slug, key=key, instance_id="laptop-1", instance_name="Anna")
    page = merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text
    assert "License activations" in page and f"…{key[-4:]}" in page
    assert "laptop-1" in page and "Anna" in page and key not in page
    seat_id = db.session.scalar(select(KeyActivation.id))
    url = f"/merchant/orders/{order.number}/activations/{seat_id}/deactivate"
    assert merchant_client.post(url).status_code == 400  # no CSRF token
    response = post(merchant_client, url, {}, page=f"/merchant/orders/{order.number}")
    assert response.status_code == 303 and response.headers["Location"].endswith("#activations")
    assert reload(db.session.get(KeyActivation, seat_id)).deactivated_by == KeyActivation.BY_MERCHANT
    assert "Deactivated by you" in merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text
    assert call(merchant_client, "validate", product_id=licensed.slug, key=key).json["activations"]["count"] == 0


def test_another_merchant_cannot_free_a_seat(client, licensed, sold):
    from faka.accounts import users

    order, key = sold
    call(client, "activate", product_id=licensed.slug, key=key, instance_id="laptop-1")
    seat_id = db.session.scalar(select(KeyActivation.id))
    stranger = users.create_merchant("other@shop.test", "merchant-pass-1", "Other Shop", approved=True)
    login(client, stranger.user)
    from conftest import csrf_from

    token = csrf_from(client.get("/merchant/products/new").text)
    url = f"/merchant/orders/{order.number}/activations/{seat_id}/deactivate"
    assert client.post(url, data={"csrf_token": token}).status_code == 404
    assert reload(db.session.get(KeyActivation, seat_id)).deactivated_at is None


def test_an_order_without_license_checks_has_no_activations_section(merchant_client, make_product, place, pay):
    order = place(make_product(keys=2))
    pay(order)
    assert "License activations" not in merchant_client.get(f"/merchant/orders/{order.number}?lang=en").text


# -- the documented example, for real -----------------------------------------------------------


def documented_python() -> str:
    blocks = re.findall(r"```python\n(.*?)```", DOCS.read_text(), re.S)
    assert len(blocks) == 1
    return blocks[0]


def test_the_documented_python_example_works_against_a_live_shop(live_server, make_product, place, pay, tmp_path):
    app, url = live_server
    product = make_product(keys=3, title="Photo Editor Pro", license_checks=True, activation_limit=1)
    order = place(product)
    pay(order)
    key = key_texts(order)[0]

    source = documented_python()
    source = re.sub(r'^SHOP = ".*"', f'SHOP = "{url}"', source, count=1, flags=re.M)
    source = re.sub(r'^PRODUCT_ID = ".*"', f'PRODUCT_ID = "{product.slug}"', source, count=1, flags=re.M)
    example = {"__name__": "license_example"}
    exec(compile(source, str(DOCS), "exec"), example)  # noqa: S102 - our own documentation

    laptop, desktop = tmp_path / "laptop", tmp_path / "desktop"
    assert example["unlock"](key, laptop) == (True, "sold")
    assert example["unlock"](key, laptop) == (True, "sold")  # the same installation again
    assert example["unlock"](key, desktop) == (False, "activation_limit_reached")
    assert example["unlock"]("NOT-A-KEY", laptop) == (False, "not_found")
    answer = example["license_call"]("validate", key, example["this_installation"](laptop))
    assert answer["instance"]["active"] and answer["product"] == {"id": product.slug, "name": "Photo Editor Pro"}
    assert example["uninstall"](key, laptop) == "deactivated"
    assert example["unlock"](key, desktop) == (True, "sold")
    db.session.commit()  # see what the live server committed
    seat = db.session.execute(select(KeyActivation).where(KeyActivation.deactivated_at.is_(None))).scalar_one()
    assert seat.instance_id == (desktop / "instance-id").read_text()
    with pytest.raises(example["LicenseError"]) as refused:
        example["license_call"]("activate", key)  # no instance
    assert (refused.value.status, refused.value.code) == (422, "invalid")


# -- on a phone -----------------------------------------------------------------------------------


def test_on_a_phone_the_merchant_sees_the_seats_and_frees_one(live_server, chromium, licensed, sold, tmp_path):
    from playwright.sync_api import expect

    from conftest import logged_in_session, no_horizontal_scroll

    app, base = live_server
    order, key = sold
    client = app.test_client()
    for instance, name in (("3c0e9f1a-6d2b-4b8e-a7f5-0d9c4e2b1a77", "DESKTOP-ANNA (Windows 11)"), ("mac-mini", None)):
        call(client, "activate", product_id=licensed.slug, key=key, instance_id=instance, instance_name=name)
    call(client, "deactivate", product_id=licensed.slug, key=key, instance_id="mac-mini")

    context = chromium.new_context(viewport={"width": 360, "height": 800})
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("dialog", lambda dialog: dialog.accept())  # the hx-confirm
    user = licensed.merchant.user
    cookie = app.session_interface.get_signing_serializer(app).dumps({**logged_in_session(user), "lang": "en"})
    page.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])
    page.goto(f"{base}/merchant/orders/{order.number}")
    section = page.locator("#activations")
    expect(section).to_contain_text("DESKTOP-ANNA (Windows 11)")
    expect(section).to_contain_text("Deactivated by your software")
    assert no_horizontal_scroll(page)
    # caret="initial": hiding the caret styles the focused input inline, which htmx would
    # copy onto the swapped-in page (a CSP error that is the screenshot's own).
    section.screenshot(path=str(tmp_path / "activations-360.png"), caret="initial")
    section.locator("button", has_text="Deactivate").click()
    expect(section.locator("h3")).to_contain_text("active on 0")
    expect(section.locator("td", has_text=re.compile(r"^Deactivated by you\b(?! r)"))).to_have_count(1)
    expect(section.locator("table")).to_have_class(re.compile("cards"))  # faka.js, once htmx has settled
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(tmp_path / "activations-after-360.png"), full_page=True, caret="initial")

    # The product's setting, with the id the program sends.
    page.goto(f"{base}/merchant/products/{licensed.slug}/edit")
    settings = page.locator("details.license-settings")
    expect(settings).to_have_attribute("open", "")
    expect(settings).to_contain_text(licensed.slug)
    assert no_horizontal_scroll(page)
    settings.screenshot(path=str(tmp_path / "license-settings-360.png"), caret="initial")
    context.close()
    assert errors == []
    db.session.commit()
    assert count(KeyActivation, KeyActivation.deactivated_at.is_(None)) == 0


def test_one_ipv6_subscriber_changing_address_inside_its_64_shares_one_budget(make_app):
    client = make_app(RATELIMIT_LICENSE_MISSES="3 per minute").test_client()

    def guess(n: int, address: str):
        return call(
            client, "validate", product_id="no-such-product", key=f"GUESS-{n}", environ_base={"REMOTE_ADDR": address}
        )

    answers = [guess(n, f"2001:db8:1:2::{n + 1:x}") for n in range(4)]
    assert [a.status_code for a in answers] == [404, 404, 404, 429]
    assert guess(5, "2001:db8:1:3::1").status_code == 404  # the next /64 is someone else
