"""First-run checklists, from an empty database: a new merchant's dashboard lists what is
left before the shop sells (instead of empty ¥0.00 figures) until its first sale; a new
operator's console lists what a real shop still needs, from `flask doctor`'s cheap checks
and the database, and drops the list once everything is done."""

import io
import re
import secrets
import threading
from html import unescape
from pathlib import Path

import pytest
from PIL import Image
from sqlalchemy import select
from werkzeug.serving import make_server

from conftest import csrf_from, logged_in_session, login, no_horizontal_scroll, reload, signed_notify, with_totp
from faka.accounts import review, users
from faka.accounts.models import Merchant, User
from faka.catalog.models import DELIVERY_FIXED, Category, Product
from faka.catalog.variants import product_with_one_variant
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.ledger import payouts
from faka.payments.gateways import configure_gateway

SHOTS = Path("/tmp/shots_firstrun")

STEP = re.compile(r'<li class="step [^"]*" id="step-(?P<key>[\w-]+)">(?P<body>.*?)</li>', re.S)
STATE = re.compile(r'<span class="step-state">(.*?)</span>', re.S)


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def checklist(html: str) -> dict[str, tuple[str, str, list[str]]]:
    """The checklist's steps as a reader sees them: key -> (its label: Done, To do, Waiting or
    Optional; its whole text; the links it offers)."""
    return {
        m["key"]: (STATE.search(m["body"])[1].strip(), text_of(m["body"]), re.findall(r'href="([^"]+)"', m["body"]))
        for m in STEP.finditer(html)
    }


def labels(html: str) -> dict[str, str]:
    return {key: label for key, (label, _text, _links) in checklist(html).items()}


def png_bytes() -> bytes:
    out = io.BytesIO()
    Image.new("RGB", (40, 30), (30, 120, 200)).save(out, "PNG")
    return out.getvalue()


def add_category() -> Category:
    category = Category(name="软件激活码", name_en="Software keys")
    db.session.add(category)
    db.session.commit()
    return category


def add_product(merchant: Merchant, category: Category, **fields) -> Product:
    fields = {"title": "Office 2024 key", "price": 1234, **fields}
    product = product_with_one_variant(
        slug=secrets.token_hex(8), merchant_id=merchant.id, category_id=category.id, **fields
    )
    db.session.add(product)
    db.session.commit()
    return product


def dashboard(client) -> str:
    page = client.get("/merchant/?lang=en")
    assert page.status_code == 200
    return page.text


# -- the merchant ------------------------------------------------------------------------


def test_new_merchants_checklist_moves_step_by_step_until_the_first_sale(app, client, place, pay):
    ops = users.create_operator("ops@example.com", "operator-pass-1")
    shop = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    login(client, shop.user)

    page = dashboard(client)
    assert labels(page) == {
        "qualification": "To do",
        "approval": "To do",
        "product": "To do",
        "stock": "To do",
        "payout": "To do",
        "two-factor": "Optional",
    }
    assert "0 of 5 steps done" in text_of(page)
    assert "figure-card" not in page and "¥0.00" not in page and "Orders paid" not in page
    steps = checklist(page)
    assert "/merchant/qualification" in steps["qualification"][2]
    # No category yet: the merchant cannot make a product and is told why.
    assert "the operator has not created any yet" in steps["product"][1] and steps["product"][2] == []

    token = csrf_from(client.get("/merchant/qualification").text)
    submitted = client.post(
        "/merchant/qualification",
        content_type="multipart/form-data",
        data={
            "csrf_token": token,
            "legal_name": "张三",
            "entity_type": "individual",
            "id_number": "11010519491231002X",
            "contact": "13800000000",
            "licence_image": (io.BytesIO(png_bytes()), "licence.png"),
        },
    )
    assert submitted.status_code == 303
    category = add_category()
    page = dashboard(client)
    assert labels(page)["qualification"] == "Done" and labels(page)["approval"] == "Waiting"
    assert "The operator is reviewing your qualification" in checklist(page)["approval"][1]
    assert "/merchant/products/new" in checklist(page)["product"][2]
    assert "1 of 5 steps done" in text_of(page)

    review.approve(ops.id, shop.id)
    product = add_product(reload(shop), category)
    page = dashboard(client)
    assert [labels(page)[k] for k in ("approval", "product", "stock")] == ["Done", "Done", "To do"]
    title, text, links = checklist(page)["stock"]
    assert "“Office 2024 key” has no keys in stock" in text and f"/merchant/products/{product.slug}/keys" in links

    import_keys(product.variants[0], "KEY-0001\nKEY-0002")
    assert labels(dashboard(client))["stock"] == "Done"

    payouts.add_payout_account(shop.id, "alipay", "张三", "13800001234")
    page = dashboard(client)
    assert labels(page) == {
        "qualification": "Done",
        "approval": "Done",
        "product": "Done",
        "stock": "Done",
        "payout": "Done",
        "two-factor": "Optional",
    }
    assert "5 of 5 steps done" in text_of(page)
    assert "Your shop is ready" in text_of(page) and f"/shop/{reload(shop).public_id}" in page
    assert "figure-card" not in page  # still no sale

    with_totp(reload(shop).user)
    assert labels(dashboard(client))["two-factor"] == "Done"

    pay(place(product))
    page = dashboard(client)
    assert "figure-card" in page and "¥12.34" in page and "Orders paid" in page
    assert 'class="checklist' not in page and checklist(page) == {}  # complete: gone


def test_after_the_first_sale_an_unfinished_checklist_is_folded_under_the_figures(
    merchant, make_product, place, pay, client
):
    pay(place(make_product(keys=2, price=500)))
    login(client, merchant.user)
    page = dashboard(client)
    assert "figure-card" in page and "¥5.00" in page
    folded = re.search(r'<details class="checklist">\s*<summary>(.*?)</summary>', page, re.S)
    assert folded and "Finish setting up your shop (4 of 5 steps done)" in text_of(folded[1])
    assert labels(page)["payout"] == "To do"  # the one left: no payout account


def test_fixed_or_manual_delivery_needs_no_keys(merchant, category, client):
    login(client, merchant.user)
    product = add_product(merchant, category, delivery_type="manual")
    assert labels(dashboard(client))["stock"] == "Done"
    product.delivery_type = "auto"
    db.session.commit()
    assert labels(dashboard(client))["stock"] == "To do"
    add_product(merchant, category, title="Download", delivery_type=DELIVERY_FIXED)
    assert labels(dashboard(client))["stock"] == "Done"


def banner(html: str) -> tuple[str, str]:
    """The qualification banner under the navigation: its class and its text."""
    match = re.search(
        r'</nav>\s*(?:<p class="(?:notice|alert)" role="status">.*?</p>\s*)*'
        r'<p class="([^"]+)">(.*?)</p>',
        html,
        re.S,
    )
    assert match, "no qualification banner"
    return match[1], text_of(match[2])


@pytest.mark.parametrize(
    "state, expected_class, says",
    [
        ("not submitted", "notice neutral", "Submit your qualification to start selling"),
        ("under review", "notice neutral", "Your qualification is under review"),
        ("more information", "alert", "The operator asked for more information: a sharper photo"),
        ("rejected", "alert", "Your qualification was rejected: not a business"),
        ("frozen", "alert", "Your shop is frozen"),
    ],
)
def test_under_review_is_a_neutral_note_and_refusals_are_alerts(app, client, state, expected_class, says):
    ops = users.create_operator("ops@example.com", "operator-pass-1")
    shop = users.create_merchant("new@shop.test", "merchant-pass-1", "New Shop")
    if state != "not submitted":
        shop.submitted_at = shop.created_at
        db.session.commit()
    if state == "more information":
        review.request_info(ops.id, shop.id, "a sharper photo")
    elif state == "rejected":
        review.reject(ops.id, shop.id, "not a business")
    elif state == "frozen":
        review.approve(ops.id, shop.id)
        review.freeze(ops.id, shop.id, "complaints")
    login(client, shop.user)
    for url in ("/merchant/?lang=en", "/merchant/products?lang=en"):
        css_class, text = banner(client.get(url).text)
        assert css_class == expected_class and says in text


# -- the operator ------------------------------------------------------------------------


class Console:
    """The operator's console under one configuration (an app per configuration, as a
    restart with another environment would be), on the same database."""

    def __init__(self, make_app, operator, **config):
        self.make_app, self.operator, self.config = make_app, operator, config

    def page(self, **config) -> str:
        self.config.update(config)
        response = self.client().get("/operator/?lang=en")
        assert response.status_code == 200
        return response.text

    def client(self):
        app = self.make_app(**self.config)
        client = app.test_client()
        login(client, self.operator)
        # The test's own session ends its snapshot, as before any request (FreshContextClient).
        db.session.commit()
        return client

    def labels(self, **config) -> dict[str, str]:
        return labels(self.page(**config))


@pytest.fixture
def console(make_app, operator, tmp_path):
    backups = tmp_path / "backups"
    backups.mkdir()
    return Console(make_app, operator, BASE_URL="http://shop.example.com", MAIL_SERVER=None, BACKUP_DIR=str(backups))


def test_operators_checklist_flips_item_by_item_and_goes_once_all_is_done(console, smtp):
    page = console.page()
    assert labels(page) == {
        key: "To do" for key in ("https", "smtp", "gateway", "sandbox", "backups", "category", "merchant")
    }
    assert "0 of 7 done" in text_of(page)
    steps = checklist(page)
    assert "set FAKA_BASE_URL=https://your-domain in the environment file" in steps["https"][1]
    assert "FAKA_BASE_URL=http://shop.example.com is not HTTPS" in steps["https"][1]  # what the doctor found
    assert "/operator/settings" in steps["smtp"][2] and "/operator/gateways" in steps["gateway"][2]
    assert "/operator/merchants" in steps["merchant"][2]
    assert "no archive in" in steps["backups"][1]

    assert console.labels(BASE_URL="https://shop.example.com")["https"] == "Done"
    assert console.labels(BASE_URL="https://127.0.0.1")["https"] == "To do"  # not public
    console.config["BASE_URL"] = "https://shop.example.com"

    # SMTP from the environment: judged by its settings, never contacted (this port is closed).
    assert console.labels(MAIL_SERVER="127.0.0.1", MAIL_PORT=1)["smtp"] == "To do"  # sender on localhost
    assert console.labels(MAIL_DEFAULT_SENDER="Shop <no-reply@shop.example.com>")["smtp"] == "Done"
    # ... or saved in the console.
    console.config.update(MAIL_SERVER=None)
    assert console.labels()["smtp"] == "To do"
    client = console.client()
    token = csrf_from(client.get("/operator/settings").text)
    saved = client.post(
        "/operator/settings/smtp",
        data={
            "csrf_token": token,
            "smtp_server": "127.0.0.1",
            "smtp_port": str(smtp.port),
            "smtp_security": "",
            "smtp_username": "",
            "smtp_sender": "Shop <no-reply@shop.example.com>",
        },
    )
    assert saved.status_code == 303
    assert console.labels()["smtp"] == "Done"
    assert smtp.messages == []

    configure_gateway("epay", {"api_url": "https://pay.example.com/", "pid": "1001", "key": "k" * 32}, enabled=True)
    assert [console.labels()[k] for k in ("gateway", "sandbox")] == ["Done", "To do"]  # the sandbox is still on
    configure_gateway("sandbox", {}, enabled=False)
    assert console.labels()["sandbox"] == "Done"

    archive = Path(console.config["BACKUP_DIR"]) / "faka-20260101-030000.tar.gz"
    archive.write_bytes(b"archive")
    archive.chmod(0o644)
    assert console.labels()["backups"] == "To do"  # others can read it
    archive.chmod(0o600)
    assert console.labels()["backups"] == "Done"

    category = add_category()
    assert console.labels()["category"] == "Done"

    shop = users.create_merchant("seller@shop.test", "merchant-pass-1", "Seller")
    add_product(shop, category)
    assert console.labels()["merchant"] == "To do"  # not approved yet
    shop.submitted_at = shop.created_at
    db.session.commit()
    review.approve(console.operator.id, shop.id)
    page = console.page()
    assert 'id="setup-heading"' not in page and checklist(page) == {}
    assert "figure-card" in page  # the usual console


def test_one_person_shop_from_the_cli_is_pointed_at_its_own_products(app, runner, client):
    result = runner.invoke(
        args=["create-operator", "--email", "me@shop.test", "--password", "operator-pass-1", "--shop", "My Shop"]
    )
    assert result.exit_code == 0, result.output
    user = db.session.execute(select(User).where(User.email == "me@shop.test")).scalar_one()
    with_totp(user)
    login(client, user)
    merchant_step = checklist(client.get("/operator/?lang=en").text)["merchant"]
    assert merchant_step[0] == "To do" and "/merchant/products/new" in merchant_step[2]
    # The shop is approved from the start, and the operator has two-factor authentication.
    mine = labels(dashboard(client))
    assert [mine[k] for k in ("qualification", "approval", "two-factor")] == ["Done", "Done", "Done"]


# -- on a phone --------------------------------------------------------------------------


def browser_login(page, app, base, user):
    cookie = app.session_interface.get_signing_serializer(app).dumps({**logged_in_session(user), "lang": "en"})
    page.context.add_cookies([{"name": app.config["SESSION_COOKIE_NAME"], "value": cookie, "url": base}])


def shoot(page, url: str, name: str) -> None:
    page.goto(url)
    assert no_horizontal_scroll(page), name
    SHOTS.mkdir(exist_ok=True)
    page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


def serve(make_app, **config):
    """The shop on a real port with this configuration: its base address."""
    app = make_app(JOBS_MODE="thread", **config)
    server = make_server("127.0.0.1", 0, app, threaded=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return app, f"http://127.0.0.1:{server.server_port}", server


def test_both_checklists_fit_a_phone(live_server, make_app, chromium, place, tmp_path, smtp):
    app, base = live_server
    operator = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(operator)
    shop = users.create_merchant("new@shop.test", "merchant-pass-1", "一家新开的数字商品小店")
    ops_page = chromium.new_context(viewport={"width": 360, "height": 800}).new_page()
    page = chromium.new_context(viewport={"width": 360, "height": 800}).new_page()
    browser_login(ops_page, app, base, operator)
    browser_login(page, app, base, shop.user)
    for lang in ("en", "zh_CN"):
        shoot(ops_page, f"{base}/operator/?lang={lang}", f"operator-empty-{lang}")
        shoot(page, f"{base}/merchant/?lang={lang}", f"merchant-empty-{lang}")

    shop.submitted_at = shop.created_at
    db.session.commit()
    category = add_category()
    product = add_product(shop, category, title="Steam 钱包充值卡 100 元 · 全球通用 · 自动发货")
    shoot(page, base + "/merchant/?lang=en", "merchant-half")
    review.approve(operator.id, shop.id)
    import_keys(product.variants[0], "KEY-1\nKEY-2")
    shoot(ops_page, base + "/operator/?lang=en", "operator-half")
    app.test_client().post("/pay/sandbox/notify", data=signed_notify(place(product)))
    shoot(page, base + "/merchant/?lang=en", "merchant-folded")
    page.click("details.checklist summary")
    assert no_horizontal_scroll(page)
    page.screenshot(path=str(SHOTS / "merchant-unfolded.png"), full_page=True)
    payouts.add_payout_account(shop.id, "alipay", "张三", "13800001234")
    shoot(page, base + "/merchant/?lang=en", "merchant-done")

    backups = tmp_path / "backups"
    backups.mkdir()
    (backups / "faka-20260101-030000.tar.gz").write_bytes(b"archive")
    (backups / "faka-20260101-030000.tar.gz").chmod(0o600)
    configure_gateway("epay", {"api_url": "https://pay.example.com/", "pid": "1001", "key": "k" * 32}, enabled=True)
    configure_gateway("sandbox", {}, enabled=False)
    production, address, server = serve(
        make_app,
        BASE_URL="https://shop.example.com",
        MAIL_SERVER="127.0.0.1",
        MAIL_PORT=smtp.port,
        MAIL_DEFAULT_SENDER="Shop <no-reply@shop.example.com>",
        BACKUP_DIR=str(backups),
    )
    try:
        done = chromium.new_context(viewport={"width": 360, "height": 800}).new_page()
        browser_login(done, production, address, operator)
        shoot(done, address + "/operator/?lang=en", "operator-done")
        assert done.locator("#setup-heading").count() == 0 and done.locator(".figure-card").count() == 3
    finally:
        server.shutdown()
