"""Checkout fields: a merchant asks what a 代充 (top-up) order needs — the game UID, the
server, the account — the buyer answers on the product page, and the answers reach the
merchant (order page, list, CSV, webhooks) encrypted at rest. And a product that requires
the buyer's email."""

import csv
import html
import io
import re
from pathlib import Path

import pytest
from sqlalchemy import select, text
from test_webhooks import receiver  # noqa: F401  (the fixture: a real HTTP server)

from conftest import count, csrf_from, logged_in_session, login, no_horizontal_scroll, reload
from faka.accounts import users
from faka.catalog import checkout_fields
from faka.catalog.checkout_fields import FieldDraft
from faka.catalog.models import DELIVERY_MANUAL, CheckoutField, OrderAnswer
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.models import CardKey
from faka.messaging import webhooks
from faka.orders.models import Order

SHOTS = Path("/tmp/faka-fields-shots")

UID = FieldDraft(
    label="游戏 UID",
    label_en="Game UID",
    kind="number",
    pattern=r"[1-9]\d{5,11}",
    pattern_message="UID 是 6 到 12 位数字",
    pattern_message_en="A UID has 6 to 12 digits",
    help_text="在游戏的设置页查看",
    help_text_en="Find it on the game's settings page",
)
SERVER = FieldDraft(label="区服", label_en="Server", kind="choice", choices="官服\nB服\n")
ACCOUNT = FieldDraft(label="充值账号", kind="text", required=False, pattern=r"[A-Za-z0-9_]{4,16}")
CONTACT = FieldDraft(label="联系邮箱", label_en="Contact email", kind="email", required=False)
PHONE = FieldDraft(label="手机号", label_en="Phone", kind="phone", required=False)


@pytest.fixture
def app(make_app):
    """The webhook test's receiver listens on 127.0.0.1, which production refuses."""
    app = make_app(WEBHOOK_ALLOW_PRIVATE=True)
    with app.app_context():
        yield app


@pytest.fixture
def merchant_client(client, merchant):
    login(client, merchant.user)
    return client


@pytest.fixture
def topup(make_product):
    """An automatically delivered top-up card asking for a UID, a server and an account."""
    product = make_product(keys=20, title="原神 创世结晶 60")
    fields = [checkout_fields.add_field(product.merchant_id, product.slug, d) for d in (UID, SERVER, ACCOUNT)]
    return product, {f.label: f.key for f in fields}


def post(client, url, data, page=None):
    token = csrf_from(client.get(page or url).text)
    return client.post(url, data={"csrf_token": token, **data})


def field_form(**changes) -> dict:
    form = {
        "label": "游戏 UID",
        "label_en": "Game UID",
        "kind": "number",
        "required": "y",
        "pattern": r"[1-9]\d{5,11}",
        "pattern_message": "UID 是 6 到 12 位数字",
        "pattern_message_en": "A UID has 6 to 12 digits",
        "help_text": "在游戏的设置页查看",
        "choices": "",
    }
    form.update(changes)
    return {k: v for k, v in form.items() if v is not None}


def buy(client, product, answers: dict, lang="en", email="buyer@example.com", **extra):
    page = client.get(f"/p/{product.slug}?lang={lang}")
    assert page.status_code == 200
    data = {
        "csrf_token": csrf_from(page.text),
        "quantity": 1,
        "email": email,
        "query_password": "secret-1",
        **{f"answer-{key}": value for key, value in answers.items()},
        **extra,
    }
    return client.post(f"/p/{product.slug}/buy", data=data)


def fields_of(product) -> list[CheckoutField]:
    db.session.commit()
    return list(
        db.session.execute(
            select(CheckoutField).where(CheckoutField.product_id == product.id).order_by(CheckoutField.position)
        ).scalars()
    )


def the_order() -> Order:
    db.session.commit()
    return db.session.execute(select(Order)).scalar_one()


# -- the merchant defines them ----------------------------------------------------------


def test_merchant_adds_edits_reorders_and_removes_fields_on_the_products_page(merchant_client, make_product):
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="王者荣耀 点券代充")
    page = merchant_client.get(f"/merchant/products/{product.slug}/edit?lang=en")
    assert f"/merchant/products/{product.slug}/fields" in page.text  # linked from the product's form
    assert f"/merchant/products/{product.slug}/fields" in merchant_client.get("/merchant/products").text
    url = f"/merchant/products/{product.slug}/fields"
    assert "No fields yet" in merchant_client.get(url + "?lang=en").text

    assert post(merchant_client, url, field_form()).status_code == 303
    assert (
        post(
            merchant_client,
            url,
            field_form(
                label="区服",
                label_en="",
                kind="choice",
                choices="官服\n B服 \n\n官服",
                pattern="",
                pattern_message="",
                pattern_message_en="",
            ),
        ).status_code
        == 303
    )
    uid, server = fields_of(product)
    assert (uid.label, uid.label_en, uid.kind, uid.required, uid.pattern) == (
        "游戏 UID",
        "Game UID",
        "number",
        True,
        r"[1-9]\d{5,11}",
    )
    assert (server.label, server.label_en, server.kind, server.choice_list) == ("区服", None, "choice", ["官服", "B服"])
    listing = merchant_client.get(url + "?lang=en").text
    assert "游戏 UID" in listing and "官服 / B服" in listing and uid.key in listing  # the key webhooks carry

    # Edit: the server becomes optional and gets an English name.
    edit_url = f"{url}/{server.key}"
    assert 'value="区服"' in merchant_client.get(edit_url).text
    response = post(
        merchant_client,
        edit_url,
        field_form(
            label="区服", label_en="Server", kind="choice", choices="官服\nB服\n渠道服", required=None, pattern=""
        ),
    )
    assert response.status_code == 303
    server = reload(server)
    assert (server.label_en, server.required, server.choice_list) == ("Server", False, ["官服", "B服", "渠道服"])

    # Reorder: the server first.
    assert post(merchant_client, f"{url}/{server.key}/move", {"direction": "up"}, page=url).status_code == 303
    assert [f.label for f in fields_of(product)] == ["区服", "游戏 UID"]
    assert post(merchant_client, f"{url}/{server.key}/move", {"direction": "sideways"}, page=url).status_code == 400

    # Remove the server: the UID is first again.
    assert post(merchant_client, f"{url}/{server.key}/delete", {}, page=url).status_code == 303
    assert [(f.label, f.position) for f in fields_of(product)] == [("游戏 UID", 0)]


@pytest.mark.parametrize(
    "changes,message",
    [
        ({"pattern": "[0-9"}, "This is not a valid regular expression."),
        ({"pattern": "(a+)+$"}, "This pattern could take too long to check"),
        ({"pattern": "(\\d)\\1"}, "This pattern could take too long to check"),
        ({"pattern": "\\d*\\d*\\d*"}, "This pattern could take too long to check"),
        ({"pattern": "\\d" * 51}, "A pattern may have at most 100 characters."),
        ({"label": ""}, "Write a label of 1 to 40 characters."),
        ({"label": "长" * 41}, "Write a label of 1 to 40 characters."),
        ({"kind": "choice", "choices": "  \n"}, "List the choices, one per line (at most 20)."),
        (
            {"kind": "choice", "choices": "\n".join(f"服{i}" for i in range(21))},
            "List the choices, one per line (at most 20).",
        ),
        ({"kind": "date"}, "Not a valid choice."),
    ],
)
def test_bad_field_definitions_are_explained_and_save_nothing(merchant_client, make_product, changes, message):
    product = make_product(keys=1)
    response = post(merchant_client, f"/merchant/products/{product.slug}/fields?lang=en", field_form(**changes))
    assert response.status_code == 400
    assert message in html.unescape(response.text)
    assert 'value="Game UID"' in response.text  # what the merchant typed is still there
    assert fields_of(product) == []


def test_a_product_asks_at_most_five_questions(merchant_client, make_product):
    product = make_product(keys=1)
    for i in range(checkout_fields.MAX_FIELDS):
        checkout_fields.add_field(product.merchant_id, product.slug, FieldDraft(label=f"问题 {i}"))
    url = f"/merchant/products/{product.slug}/fields?lang=en"
    page = merchant_client.get(url).text
    assert "Add a field" not in page and "remove one to add another" in page
    response = post(merchant_client, url, field_form(label="第六个"))
    assert response.status_code == 400 and "A product can ask at most 5 questions at checkout." in response.text
    assert len(fields_of(product)) == 5


@pytest.fixture
def others_field(make_product):
    product = make_product(keys=1)
    field = checkout_fields.add_field(product.merchant_id, product.slug, UID)
    return product, field


@pytest.mark.parametrize(
    "method,url",
    [
        ("GET", "/merchant/products/{slug}/fields"),
        ("POST", "/merchant/products/{slug}/fields"),
        ("GET", "/merchant/products/{slug}/fields/{key}"),
        ("POST", "/merchant/products/{slug}/fields/{key}"),
        ("POST", "/merchant/products/{slug}/fields/{key}/move"),
        ("POST", "/merchant/products/{slug}/fields/{key}/delete"),
    ],
)
def test_another_merchants_product_fields_are_404(client, others_field, method, url):
    product, field = others_field
    intruder = users.create_merchant("intruder@shop.test", "merchant-pass-1", "Intruder", approved=True)
    own = product_with_one_variant(
        slug="intruders0000001",
        merchant_id=intruder.id,
        category_id=product.category_id,
        price=100,
        title="Intruder's own",
    )
    db.session.add(own)
    db.session.commit()
    login(client, intruder.user)
    token = csrf_from(client.get(f"/merchant/products/{own.slug}/fields").text)
    response = client.open(
        url.format(slug=product.slug, key=field.key),
        method=method,
        data={"csrf_token": token, **field_form(label="hijack"), "direction": "down"},
    )
    assert response.status_code == 404
    if "{key}" in url:  # nor through the intruder's own product with the other's field key
        response = client.open(
            url.format(slug=own.slug, key=field.key),
            method=method,
            data={"csrf_token": token, **field_form(label="hijack"), "direction": "down"},
        )
        assert response.status_code == 404
    assert [(f.label, f.position) for f in fields_of(product)] == [("游戏 UID", 0)]


def test_field_changes_need_the_csrf_token(merchant_client, make_product):
    product = make_product(keys=1)
    field = checkout_fields.add_field(product.merchant_id, product.slug, UID)
    url = f"/merchant/products/{product.slug}/fields"
    assert merchant_client.post(url, data=field_form(label="无令牌")).status_code == 400
    assert merchant_client.post(f"{url}/{field.key}", data=field_form(label="无令牌")).status_code == 400
    assert merchant_client.post(f"{url}/{field.key}/delete").status_code == 400
    assert [f.label for f in fields_of(product)] == ["游戏 UID"]


# -- the buyer answers ------------------------------------------------------------------


def test_the_product_page_asks_each_question_with_the_right_keyboard(client, make_product):
    product = make_product(keys=1)
    keys = {
        d.label: checkout_fields.add_field(product.merchant_id, product.slug, d).key
        for d in (UID, SERVER, ACCOUNT, CONTACT, PHONE)
    }
    page = client.get(f"/p/{product.slug}").text
    form = page[page.index('<form class="buy"') : page.index("</form>", page.index('<form class="buy"'))]
    assert form.index('name="coupon"') < form.index(f'name="answer-{keys["游戏 UID"]}"')  # after the usual fields

    def tag(key):
        return re.search(rf'<(?:input|select)[^>]*name="answer-{key}"[^>]*>', form).group(0)

    assert 'inputmode="numeric"' in tag(keys["游戏 UID"]) and " required" in tag(keys["游戏 UID"])
    assert tag(keys["区服"]).startswith("<select") and "<option>官服</option><option>B服</option>" in form
    assert 'type="email"' in tag(keys["联系邮箱"]) and 'inputmode="email"' in tag(keys["联系邮箱"])
    assert 'type="tel"' in tag(keys["手机号"]) and 'inputmode="tel"' in tag(keys["手机号"])
    assert " required" not in tag(keys["充值账号"])
    assert "游戏 UID" in form and "在游戏的设置页查看" in form and 'class="required-mark"' in form
    english = client.get(f"/p/{product.slug}?lang=en").text
    assert "Game UID" in english and "Find it on the game's settings page" in html.unescape(english)
    assert "充值账号" in english  # no English name: the Chinese one
    assert "(optional)" in english


def test_answers_are_stored_encrypted_and_shown_on_both_order_pages(client, merchant, topup):
    product, keys = topup
    response = buy(
        client, product, {keys["游戏 UID"]: "１２３４５６７８", keys["区服"]: "B服", keys["充值账号"]: "  player_one "}
    )
    assert response.status_code == 303 and "/pay/" in response.headers["Location"]
    order = the_order()
    rows = list(db.session.execute(select(OrderAnswer).order_by(OrderAnswer.position)).scalars())
    assert [(r.order_id, r.label, r.label_en, r.kind) for r in rows] == [
        (order.id, "游戏 UID", "Game UID", "number"),
        (order.id, "区服", "Server", "choice"),
        (order.id, "充值账号", None, "text"),
    ]
    stored = " ".join(str(row) for row in db.session.execute(text("SELECT * FROM order_answers")))
    for answer in ("12345678", "１２３４５６７８", "B服", "player_one"):
        assert answer not in stored  # encrypted at rest
    assert [a.value for a in checkout_fields.order_answers(order.id)] == ["12345678", "B服", "player_one"]

    buyer_zh = client.get(f"/order/{order.token}?lang=zh_CN").text
    buyer_en = client.get(f"/order/{order.token}?lang=en").text
    assert "What you told the seller" in buyer_en
    assert re.search(r"<dt>游戏 UID</dt><dd[^>]*>12345678</dd>", buyer_zh)
    assert re.search(r"<dt>Game UID</dt><dd[^>]*>12345678</dd>", buyer_en)
    assert re.search(r"<dt>Server</dt><dd[^>]*>B服</dd>", buyer_en) and "<dt>充值账号</dt>" in buyer_en

    login(client, merchant.user)
    seller = client.get(f"/merchant/orders/{order.number}?lang=en").text
    assert "What the buyer told you" in seller
    assert re.search(r"<dt>Game UID</dt><dd[^>]*>12345678</dd>", seller)
    assert re.search(r"<dt>充值账号</dt><dd[^>]*>player_one</dd>", seller)


def test_a_manual_order_shows_the_answers_where_the_merchant_delivers(client, merchant, make_product, pay):
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="点券代充")
    uid = checkout_fields.add_field(product.merchant_id, product.slug, UID)
    assert buy(client, product, {uid.key: "20240601"}).status_code == 303
    pay(the_order())
    login(client, merchant.user)
    seller = client.get(f"/merchant/orders/{the_order().number}?lang=en").text
    assert "Deliver by hand" in seller and re.search(r"<dt>Game UID</dt><dd[^>]*>20240601</dd>", seller)


ALL_VALID = {
    "游戏 UID": "12345678",
    "区服": "官服",
    "充值账号": "player_one",
    "联系邮箱": "me@example.com",
    "手机号": "+86 138-0013-8000",
}


@pytest.mark.parametrize(
    "label,value,message",
    [
        ("游戏 UID", "12a45678", "Enter digits only."),
        ("游戏 UID", "0123", "A UID has 6 to 12 digits"),  # the merchant's own message for its pattern
        ("游戏 UID", "", "Please fill this in."),
        ("游戏 UID", "1" * 201, "Use at most 200 characters."),
        ("区服", "国际服", "Choose one of the options."),
        ("区服", "", "Please fill this in."),
        ("充值账号", "a b", "This answer is not in the form the seller asks for."),
        # The edge removes a one-line field's line breaks (faka/web/request_guard.py): "xy" is too short.
        ("充值账号", "x\ny", "This answer is not in the form the seller asks for."),
        ("联系邮箱", "me-at-example.com", "Enter a valid email address."),
        ("手机号", "call me", "Enter a phone number: digits, optionally starting with +."),
    ],
)
def test_an_answer_that_does_not_fit_comes_back_with_its_message_and_nothing_is_created(
    client, make_product, label, value, message
):
    product = make_product(keys=3)
    keys = {
        d.label: checkout_fields.add_field(product.merchant_id, product.slug, d).key
        for d in (UID, SERVER, ACCOUNT, CONTACT, PHONE)
    }
    answers = {keys[name]: value if name == label else good for name, good in ALL_VALID.items()}
    response = buy(client, product, answers)
    assert response.status_code == 400
    page = html.unescape(response.text)
    field_html = page[page.index(f'name="answer-{keys[label]}"') :]
    assert message in field_html[: field_html.index("</div>")]  # under its own field
    assert "Check the answers marked below." in page
    assert 'value="player_one"' in response.text or label == "充值账号"  # what the buyer typed survives
    assert 'value="secret-1"' in response.text  # and so does the query password
    assert count(Order) == 0 and count(OrderAnswer) == 0
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 3  # no key reserved


def test_the_merchants_message_is_in_the_pages_language(client, topup):
    product, keys = topup
    chinese = buy(client, product, {keys["游戏 UID"]: "42", keys["区服"]: "官服"}, lang="zh_CN")
    assert chinese.status_code == 400 and "UID 是 6 到 12 位数字" in chinese.text
    assert 'value="42"' in chinese.text and "<option selected>官服</option>" in chinese.text
    english = buy(client, product, {keys["游戏 UID"]: "42", keys["区服"]: "官服"}, lang="en")
    assert "A UID has 6 to 12 digits" in english.text
    assert count(Order) == 0


def test_another_form_error_shows_the_answers_messages_too(client, topup):
    product, keys = topup
    response = buy(client, product, {keys["游戏 UID"]: "", keys["区服"]: "官服"}, quantity=0)
    assert response.status_code == 400
    assert "Quantity must be between 1 and 100." in response.text and "Please fill this in." in response.text
    assert count(Order) == 0


def test_a_repeated_tap_is_one_order_but_a_corrected_answer_is_a_new_one(client, topup):
    product, keys = topup
    answers = {keys["游戏 UID"]: "12345678", keys["区服"]: "官服"}
    first = buy(client, product, answers)
    again = buy(client, product, answers)
    assert first.headers["Location"] == again.headers["Location"] and count(Order) == 1
    corrected = buy(client, product, {**answers, keys["游戏 UID"]: "12345679"})
    assert corrected.status_code == 303 and corrected.headers["Location"] != first.headers["Location"]
    assert count(Order) == 2


# -- the merchant's lists, export and webhooks ------------------------------------------


def test_the_order_list_masks_answers_and_the_csv_has_them_in_full(app, client, merchant, make_product):
    product = make_product(keys=20)
    uid = checkout_fields.add_field(product.merchant_id, product.slug, UID)
    server = checkout_fields.add_field(product.merchant_id, product.slug, SERVER)
    assert buy(client, product, {uid.key: "1234567890", server.key: "B服"}).status_code == 303
    seller = app.test_client()
    login(seller, merchant.user)
    listing = seller.get("/merchant/orders?lang=en").text
    assert "Game UID: 1***0" in listing and "1234567890" not in listing
    assert "Server: B服" in listing  # a choice is one of the merchant's own options: shown as it is
    header, row = list(csv.reader(io.StringIO(seller.get("/merchant/orders.csv").text)))
    assert header[-1] == "answers" and row[-1] == "游戏 UID: 1234567890\n区服: B服"  # in full


def test_a_csv_cell_that_would_start_a_formula_is_defused(app, client, merchant, make_product):
    product = make_product(keys=5)
    field = checkout_fields.add_field(product.merchant_id, product.slug, FieldDraft(label="=CMD()", kind="text"))
    assert buy(client, product, {field.key: "calc"}).status_code == 303
    seller = app.test_client()
    login(seller, merchant.user)
    rows = list(csv.reader(io.StringIO(seller.get("/merchant/orders.csv").text)))
    assert rows[1][-1] == "'=CMD(): calc"


def test_order_webhooks_carry_the_answers_with_their_labels(client, merchant, topup, pay, receiver):  # noqa: F811
    product, keys = topup
    webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid", "order.delivered"])
    assert buy(client, product, {keys["游戏 UID"]: "12345678", keys["区服"]: "官服"}).status_code == 303
    pay(the_order())
    assert reload(the_order()).status == Order.DELIVERED
    assert sorted(e["type"] for e in receiver.events()) == ["order.delivered", "order.paid"]
    for event in receiver.events():
        assert event["data"]["answers"] == [
            {"key": keys["游戏 UID"], "label": "游戏 UID", "label_en": "Game UID", "value": "12345678"},
            {"key": keys["区服"], "label": "区服", "label_en": "Server", "value": "官服"},
        ]
    # The delivery log keeps the payload for retries: encrypted, like the answers themselves.
    stored = " ".join(str(row) for row in db.session.execute(text("SELECT * FROM webhook_deliveries")))
    assert "12345678" not in stored and "buyer@example.com" not in stored


def test_a_webhook_payload_stored_before_payloads_were_encrypted_still_goes_out(merchant, receiver):  # noqa: F811
    from faka.messaging.models import WebhookDelivery

    endpoint, _secret = webhooks.create_endpoint(merchant.id, receiver.url, ["order.paid"])
    old = WebhookDelivery(
        endpoint_id=endpoint.id,
        event="order.paid",
        status=WebhookDelivery.PENDING,
        attempts=0,
        payload='{"id":"whd_old","type":"order.paid","created":1,"data":{}}',
    )
    db.session.add(old)
    db.session.commit()
    assert webhooks.deliver(old.id) is True
    assert receiver.requests[0].body == b'{"id":"whd_old","type":"order.paid","created":1,"data":{}}'
    assert webhooks.public_id(reload(old)) == "whd_old"


def test_the_operator_deciding_a_complaint_sees_what_the_buyer_told_the_seller(app, client, operator, topup, pay):
    from faka.complaints import workflow
    from faka.complaints.models import Complaint

    product, keys = topup
    assert buy(client, product, {keys["游戏 UID"]: "12345678", keys["区服"]: "B服"}).status_code == 303
    pay(the_order())
    complaint = workflow.open_complaint(the_order().token, Complaint.NOT_AS_DESCRIBED, "点券没有到账")
    desk = app.test_client()
    login(desk, operator)
    page = desk.get(f"/operator/complaints/{complaint.ref}?lang=en").text
    assert "What the buyer told the seller" in page
    assert re.search(r"<dt>Game UID</dt><dd[^>]*>12345678</dd>", page) and re.search(
        r"<dt>Server</dt><dd[^>]*>B服</dd>", page
    )


# -- a product that requires the buyer's email -------------------------------------------


def test_a_manual_product_can_require_the_buyers_email(client, merchant, make_product):
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="代充 100 点券")
    login(client, merchant.user)
    form = {
        "title": "代充 100 点券",
        "category_id": product.category_id,
        "price": "10.00",
        "delivery_type": "manual",
        "manual_promise_hours": 2,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
        "require_email": "y",
    }
    page = client.get(f"/merchant/products/{product.slug}/edit?lang=en").text
    assert "Buyers must give an email" in page
    saved = client.post(f"/merchant/products/{product.slug}/edit", data={"csrf_token": csrf_from(page), **form})
    assert saved.status_code == 303 and reload(product).require_email is True
    client.post("/logout", data={"csrf_token": csrf_from(client.get("/merchant/").text)})

    shown = client.get(f"/p/{product.slug}?lang=en").text
    assert "This seller requires an email for this product." in shown and "Email (optional)" not in shown
    refused = buy(client, product, {}, email="")
    assert refused.status_code == 400
    assert "This seller needs your email for this order: enter one." in html.unescape(refused.text)
    assert count(Order) == 0
    assert buy(client, product, {}, email="buyer@example.com").status_code == 303
    assert the_order().email == "buyer@example.com"


# -- on a phone -----------------------------------------------------------------------------


def browser_login(page, app, base, user):
    cookie = app.session_interface.get_signing_serializer(app).dumps(logged_in_session(user))
    page.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])


def shot(page, name):
    # caret="initial": hiding the caret would inject a <style>, which the CSP refuses (a console error).
    page.screenshot(path=str(SHOTS / name), full_page=True, caret="initial")


def test_on_a_phone_a_wrong_uid_shows_the_fields_message_and_a_right_one_reaches_the_pay_page(
    live_server, make_product, merchant, phone
):
    app, base = live_server
    product = make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="原神 创世结晶代充")
    for draft in (UID, SERVER, ACCOUNT):
        checkout_fields.add_field(product.merchant_id, product.slug, draft)
    SHOTS.mkdir(exist_ok=True)

    phone.goto(f"{base}/p/{product.slug}")
    phone.fill("#email", "buyer@example.com")
    uid = phone.get_by_label("游戏 UID")
    assert uid.get_attribute("inputmode") == "numeric"
    uid.fill("12")
    phone.get_by_label("区服").select_option("官服")
    assert no_horizontal_scroll(phone)
    shot(phone, "product-fields.png")
    phone.click("button.primary")
    phone.wait_for_selector(".checkout-field.invalid")
    assert "UID 是 6 到 12 位数字" in phone.locator(".checkout-field.invalid").inner_text()
    assert phone.get_by_label("游戏 UID").input_value() == "12"  # kept as typed
    assert no_horizontal_scroll(phone)
    shot(phone, "product-fields-error.png")
    assert count(Order) == 0

    phone.get_by_label("游戏 UID").fill("12345678")
    phone.click("button.primary")
    phone.wait_for_url("**/pay/*")
    assert re.search(r"/pay/[0-9a-f]{32}", phone.url)
    assert [a.value for a in checkout_fields.order_answers(the_order().id)] == ["12345678", "官服"]
    # Only the refused form's own answer (400) is logged: no script or CSP error.
    assert [e for e in phone.console_errors if "status of 400" not in e] == []

    # The merchant's page for the fields, on the same phone.
    browser_login(phone, app, base, merchant.user)
    phone.goto(f"{base}/merchant/products/{product.slug}/fields")
    assert phone.locator(".checkout-fields li").count() == 3
    assert no_horizontal_scroll(phone)
    shot(phone, "merchant-fields.png")
    phone.goto(f"{base}/merchant/orders/{the_order().number}")
    assert no_horizontal_scroll(phone)
    shot(phone, "merchant-order.png")
    phone.goto(f"{base}/merchant/orders")
    shot(phone, "merchant-orders.png")
