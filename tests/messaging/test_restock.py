"""Back in stock: a buyer leaves an email on a sold-out variant, confirms it from an email,
and is told once when keys are imported; the merchant sees how many are waiting."""

import re
import secrets
import time
from html import unescape

import pytest
from flask_babel import force_locale
from flask_babel import gettext as _
from sqlalchemy import select

from conftest import (
    TEST_REDIS_URL,
    count,
    csrf_from,
    login,
    no_horizontal_scroll,
    reload,
    run_worker,
    with_totp,
)
from faka.accounts import users
from faka.accounts.models import User
from faka.catalog.models import DELIVERY_FIXED, Category, Product, ProductVariant
from faka.catalog.variants import new_key, product_with_one_variant, sync_price_range
from faka.core import clock
from faka.extensions import db
from faka.inventory.keys import import_keys
from faka.messaging import restock
from faka.messaging.models import OutboxEmail, RestockRequest
from faka.platform import retention

# -- helpers ------------------------------------------------------------------------------------


@pytest.fixture
def app(make_app, smtp):
    """The shop of every test here sends its emails to the test's SMTP server (its jobs
    inline, as they run after each commit)."""
    app = make_app(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        yield app


def add_variant(product: Product, name: str, name_en: str | None = None, price: int = 5000) -> ProductVariant:
    variant = ProductVariant(key=new_key(), name=name, name_en=name_en, price=price, position=len(product.variants))
    product.variants.append(variant)
    sync_price_range(product)
    db.session.commit()
    return variant


@pytest.fixture
def cards(app, make_product):
    """A sold-out product with two options, ¥50 and ¥100, neither with keys."""
    product = make_product(keys=0, price=5000, title="Google Play 礼品卡")
    first = product.variants[0]
    first.name, first.name_en = "面值 ¥50", "¥50 card"
    db.session.commit()
    add_variant(product, "面值 ¥100", "¥100 card", price=10000)
    return reload(product)


def option(product: Product, name: str) -> ProductVariant:
    return next(v for v in reload(product).variants if v.name == name)


def ask(client, product: Product, email: str, variant: ProductVariant | None = None, **headers):
    page = client.get(f"/p/{product.slug}")
    data = {"csrf_token": csrf_from(page.text), "email": email}
    if variant is not None:
        data["variant"] = variant.key
    return client.post(f"/p/{product.slug}/restock", data=data, headers=headers)


def body(message) -> str:
    return message.get_body(("plain",)).get_content()


def link(message, path: str) -> str:
    """The path of the link in the email that goes to /restock/<token>[path]."""
    found = re.search(r"http://localhost(/restock/[A-Za-z0-9_-]+" + re.escape(path) + r")(\s|$)", body(message))
    assert found, body(message)
    return found.group(1)


def sent_to(smtp, address: str) -> list:
    return [m for m in smtp.messages if m["To"] == address]


def press(client, path: str):
    """Open a page from an email and press its button."""
    page = client.get(path)
    assert page.status_code == 200, page.text
    return client.post(path, data={"csrf_token": csrf_from(page.text)})


def confirmed(client, smtp, product, email, variant=None):
    assert ask(client, product, email, variant).status_code == 200
    confirmation = sent_to(smtp, email)[-1]
    assert press(client, link(confirmation, "")).status_code == 200
    return confirmation


def keys_for(variant: ProductVariant, n: int = 2) -> None:
    import_keys(variant, "\n".join(f"K-{secrets.token_hex(6)}" for _ in range(n)))


ANSWER = "If this address is not on the list yet, we have sent it a link."


def english(client):
    with client.session_transaction() as session:
        session["lang"] = "en"
    return client


# -- from an empty install ------------------------------------------------------------------------


def test_a_new_shop_tells_a_waiting_buyer_once_when_its_keys_arrive(app, smtp):
    """`init-db` + `create-operator --shop`, no demo seed: the owner lists a product without
    keys; a buyer asks on its page to be told, confirms from the email, and gets one email
    when the owner imports keys; importing more sends nothing again."""
    result = app.test_cli_runner().invoke(
        args=[
            "create-operator",
            "--email",
            "boss@example.com",
            "--password",
            "long-enough-pw",
            "--shop",
            "老板的店",
        ]
    )
    assert result.exit_code == 0, result.output
    boss = db.session.execute(select(User).where(User.email == "boss@example.com")).scalar_one()
    with_totp(boss)
    owner = app.test_client()
    login(owner, boss)
    page = owner.get("/operator/categories")
    assert (
        owner.post("/operator/categories", data={"csrf_token": csrf_from(page.text), "name": "游戏点卡"}).status_code
        == 303
    )
    category = db.session.execute(select(Category)).scalar_one()
    page = owner.get("/merchant/products/new")
    form = {
        "csrf_token": csrf_from(page.text),
        "title": "Steam 充值卡",
        "category_id": category.id,
        "price": "48.00",
        "delivery_type": "auto",
        "manual_promise_hours": 24,
        "min_per_order": 1,
        "max_per_order": 5,
        "low_stock_threshold": 0,
        "visible": "y",
    }
    assert owner.post("/merchant/products/new", data=form).status_code == 303
    product = db.session.execute(select(Product)).scalar_one()

    buyer = english(app.test_client())
    page = buyer.get(f"/p/{product.slug}")
    assert "Tell me when it is back" in page.text and f'action="/p/{product.slug}/restock"' in page.text
    answer = ask(buyer, product, "  Buyer@Example.COM ")
    assert answer.status_code == 200 and "Check your inbox" in answer.text and ANSWER in answer.text
    [confirmation] = smtp.messages
    assert confirmation["To"] == "buyer@example.com" and "Steam 充值卡" in confirmation["Subject"]
    assert count(RestockRequest, RestockRequest.confirmed_at.is_not(None)) == 0

    assert "1 waiting" not in english(owner).get("/merchant/products").text  # not before confirming
    assert press(buyer, link(confirmation, "")).status_code == 200
    assert count(RestockRequest, RestockRequest.confirmed_at.is_not(None)) == 1
    assert "1 waiting" in owner.get("/merchant/products").text

    keys_page = owner.get(f"/merchant/products/{product.slug}/keys")
    imported = owner.post(
        f"/merchant/products/{product.slug}/keys",
        data={"csrf_token": csrf_from(keys_page.text), "keys": "STEAM-0001\nSTEAM-0002", "separator": "newline"},
    )
    assert imported.status_code == 200, imported.text
    assert len(smtp.messages) == 2 and "1 waiting" not in owner.get("/merchant/products").text
    notice = smtp.messages[1]
    assert notice["To"] == "buyer@example.com" and "Steam 充值卡" in notice["Subject"]
    assert f"http://localhost/p/{product.slug}" in body(notice)
    assert "/restock/" in link(notice, "/cancel")

    keys_page = owner.get(f"/merchant/products/{product.slug}/keys")
    owner.post(
        f"/merchant/products/{product.slug}/keys",
        data={"csrf_token": csrf_from(keys_page.text), "keys": "STEAM-0003", "separator": "newline"},
    )
    assert len(smtp.messages) == 2


# -- the whole round, with a real RQ worker -------------------------------------------------------


@pytest.fixture
def rq_mail_app(make_app, redis_conn, smtp):
    app = make_app(JOBS_MODE="rq", REDIS_URL=TEST_REDIS_URL, MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    with app.app_context():
        yield app


def test_only_confirmed_requests_for_the_imported_variant_are_told_once(rq_mail_app, smtp):
    """Every job (the emails, the notices after each import) runs on a real RQ worker."""
    seller = users.create_merchant("seller@shop.test", "merchant-pass-1", "Shop", approved=True)
    category = Category(name="礼品卡")
    db.session.add(category)
    db.session.commit()
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=seller.id,
        category_id=category.id,
        price=5000,
        title="Google Play 礼品卡",
    )
    fifty = product.variants[0]
    fifty.name, fifty.name_en = "面值 ¥50", "¥50 card"
    db.session.add(product)
    db.session.commit()
    hundred = add_variant(product, "面值 ¥100", "¥100 card", price=10000)
    client = rq_mail_app.test_client()

    for email in ("alice@example.com", "bob@example.com", "carol@example.com"):
        assert ask(client, product, email, fifty).status_code == 200
    assert ask(client, product, "dave@example.com", hundred).status_code == 200
    assert smtp.messages == []  # queued: the worker sends them
    run_worker(rq_mail_app)
    assert sorted(m["To"] for m in smtp.messages) == [
        "alice@example.com",
        "bob@example.com",
        "carol@example.com",
        "dave@example.com",
    ]
    assert "面值 ¥50" in sent_to(smtp, "alice@example.com")[0]["Subject"]
    assert "面值 ¥100" in sent_to(smtp, "dave@example.com")[0]["Subject"]
    # Alice, Carol and Dave confirm; Carol then unsubscribes; Bob never confirms.
    for email in ("alice@example.com", "carol@example.com", "dave@example.com"):
        assert press(client, link(sent_to(smtp, email)[0], "")).status_code == 200
    assert press(client, link(sent_to(smtp, "carol@example.com")[0], "/cancel")).status_code == 200
    smtp.messages.clear()

    keys_for(reload(fifty))  # the ¥50 keys come
    run_worker(rq_mail_app)
    [notice] = smtp.messages
    assert notice["To"] == "alice@example.com"
    assert "面值 ¥50" in notice["Subject"] and "面值 ¥50" in body(notice) and "100" not in notice["Subject"]
    assert f"/p/{product.slug}?v={fifty.key}" in body(notice)

    keys_for(reload(fifty))  # more of them: nobody is told twice
    run_worker(rq_mail_app)
    assert len(smtp.messages) == 1

    keys_for(reload(hundred))
    run_worker(rq_mail_app)
    assert [m["To"] for m in smtp.messages[1:]] == ["dave@example.com"]
    assert "面值 ¥100" in smtp.messages[1]["Subject"]
    # Running the job again by hand tells nobody again.
    assert restock.notify_restocked(fifty.id) == 0 and restock.notify_restocked(hundred.id) == 0
    db.session.commit()
    assert count(RestockRequest, RestockRequest.notified_at.is_not(None)) == 2
    assert count(RestockRequest, RestockRequest.confirmed_at.is_(None), RestockRequest.notified_at.is_(None)) == 1


# -- asking ---------------------------------------------------------------------------------------


def test_asking_again_sends_no_second_email_and_answers_the_same(app, smtp, cards, frozen_clock):
    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    first = ask(client, cards, "buyer@example.com", fifty)
    again = ask(client, cards, "BUYER@example.com", fifty)
    assert first.status_code == again.status_code == 200
    assert ANSWER in first.text and ANSWER in again.text
    assert len(smtp.messages) == 1 and count(RestockRequest) == 1

    # Later, an unconfirmed request gets a new link, and the old one stops working.
    frozen_clock.advance(hours=2)
    assert ANSWER in ask(client, cards, "buyer@example.com", fifty).text
    assert len(smtp.messages) == 2 and count(RestockRequest) == 1
    assert client.get(link(smtp.messages[0], "")).status_code == 404
    # A confirmation goes out twice at most: the form cannot mail a stranger every hour.
    frozen_clock.advance(hours=2)
    assert ANSWER in ask(client, cards, "buyer@example.com", fifty).text
    assert len(smtp.messages) == 2
    assert press(client, link(smtp.messages[1], "")).status_code == 200

    # Confirmed: asking again says the same and sends nothing.
    frozen_clock.advance(hours=2)
    assert ANSWER in ask(client, cards, "buyer@example.com", fifty).text
    assert len(smtp.messages) == 2


def test_an_address_gets_at_most_a_few_unconfirmed_requests(app, smtp, make_product):
    client = english(app.test_client())
    products = [make_product(keys=0, title=f"Card {i}") for i in range(restock.MAX_UNCONFIRMED_PER_EMAIL + 1)]
    for product in products:
        answer = ask(client, product, "victim@example.com")
        assert answer.status_code == 200 and ANSWER in answer.text
    assert len(smtp.messages) == restock.MAX_UNCONFIRMED_PER_EMAIL
    assert count(RestockRequest) == restock.MAX_UNCONFIRMED_PER_EMAIL


@pytest.mark.parametrize(
    "case, status, message",
    [
        ("bad email", 400, "Enter a valid email address."),
        ("no email", 400, "Enter your email."),
        ("unknown option", 400, "Choose the option you want to be told about."),
        ("no option chosen", 400, "Choose the option you want to be told about."),
        ("deleted option", 400, "Choose the option you want to be told about."),
        ("option in stock", 409, "This is in stock: you can buy it now."),
        ("never sells out", 400, "This product does not sell out, so there is nothing to wait for."),
        ("hidden product", 404, None),
        ("no csrf token", 400, None),
    ],
)
def test_bad_requests_are_refused_with_a_message_and_create_nothing(
    app, smtp, cards, make_product, case, status, message
):
    client = english(app.test_client())
    fifty, hundred = option(cards, "面值 ¥50"), option(cards, "面值 ¥100")
    page = client.get(f"/p/{cards.slug}")
    data = {"csrf_token": csrf_from(page.text), "email": "buyer@example.com", "variant": fifty.key}
    slug = cards.slug
    if case == "bad email":
        data["email"] = "not an email"
    elif case == "no email":
        data["email"] = ""
    elif case == "unknown option":
        data["variant"] = "0123456789abcdef"
    elif case == "no option chosen":
        del data["variant"]
    elif case == "deleted option":
        hundred.deleted_at = clock.now()
        db.session.commit()
        data["variant"] = hundred.key
    elif case == "option in stock":
        keys_for(fifty)
    elif case == "never sells out":
        slug = make_product(keys=0, delivery_type=DELIVERY_FIXED, title="Download").slug
        data["variant"] = ""
    elif case == "hidden product":
        cards.visible = False
        db.session.commit()
    elif case == "no csrf token":
        del data["csrf_token"]
    answer = client.post(f"/p/{slug}/restock", data=data)
    assert answer.status_code == status
    if message:
        assert message in unescape(answer.text)
        assert ANSWER not in answer.text
    assert count(RestockRequest) == 0 and count(OutboxEmail) == 0 and smtp.messages == []


def test_the_form_answers_in_place_for_htmx(app, smtp, cards):
    client = english(app.test_client())
    answer = ask(client, cards, "buyer@example.com", option(cards, "面值 ¥50"), **{"HX-Request": "true"})
    assert answer.status_code == 200 and ANSWER in answer.text
    assert "<html" not in answer.text and 'id="restock"' in answer.text


def test_requests_are_rate_limited_per_address(app, smtp, cards):
    app.config["RATELIMIT_RESTOCK"] = "2 per hour"
    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    assert ask(client, cards, "one@example.com", fifty).status_code == 200
    assert ask(client, cards, "two@example.com", fifty).status_code == 200
    refused = ask(client, cards, "three@example.com", fifty)
    assert refused.status_code == 429
    assert "going too fast" in refused.text and refused.headers["Retry-After"]
    assert count(RestockRequest) == 2 and len(smtp.messages) == 2


# -- the links in the emails ---------------------------------------------------------------------


def test_following_a_link_changes_nothing_until_the_button_is_pressed(app, smtp, cards):
    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    ask(client, cards, "buyer@example.com", fifty)
    [confirmation] = smtp.messages
    assert "¥50 card" in confirmation["Subject"] and "Google Play 礼品卡" in confirmation["Subject"]
    confirm_path, cancel_path = link(confirmation, ""), link(confirmation, "/cancel")

    # A mail scanner opens both links: nothing changes.
    page = client.get(confirm_path)
    assert page.status_code == 200 and "Confirm your email" in page.text and "¥50 card" in page.text
    assert client.get(cancel_path).status_code == 200
    [request] = db.session.execute(select(RestockRequest)).scalars().all()
    assert request.confirmed_at is None and request.cancelled_at is None

    done = press(client, confirm_path)
    assert "You are on the list" in done.text
    assert reload(request).confirmed_at is not None
    assert "You are on the list" in client.get(confirm_path).text

    # Without its CSRF token, a POST changes nothing.
    assert client.post(cancel_path).status_code == 400 and reload(request).cancelled_at is None
    assert "Unsubscribed" in press(client, cancel_path).text
    assert reload(request).cancelled_at is not None


def test_an_unknown_token_is_a_404_with_a_message(client):
    for path in ("/restock/" + "x" * 32, "/restock/" + "x" * 32 + "/cancel"):
        page = client.get(path + "?lang=en")
        assert page.status_code == 404 and "This link is not valid any more" in page.text
    assert client.post("/restock/" + "y" * 32, data={}).status_code in (400, 404)


def test_a_confirmation_link_expires(app, smtp, cards, frozen_clock):
    client = english(app.test_client())
    ask(client, cards, "buyer@example.com", option(cards, "面值 ¥50"))
    frozen_clock.advance(days=retention.RESTOCK_UNCONFIRMED_DAYS, minutes=1)
    assert client.get(link(smtp.messages[0], "")).status_code == 404
    # Its unsubscribe link still works, and then the address is sent nothing more.
    assert "Unsubscribed" in press(client, link(smtp.messages[0], "/cancel")).text
    ask(client, cards, "buyer@example.com", option(cards, "面值 ¥100"))
    assert len(smtp.messages) == 1


def test_unsubscribing_stops_every_request_of_the_address(app, smtp, cards):
    client = english(app.test_client())
    fifty, hundred = option(cards, "面值 ¥50"), option(cards, "面值 ¥100")
    confirmed(client, smtp, cards, "buyer@example.com", fifty)
    confirmed(client, smtp, cards, "buyer@example.com", hundred)
    confirmed(client, smtp, cards, "other@example.com", fifty)
    page = press(client, link(sent_to(smtp, "buyer@example.com")[1], "/cancel"))
    assert "Unsubscribed" in page.text
    smtp.messages.clear()
    keys_for(fifty)
    keys_for(hundred)
    assert [m["To"] for m in smtp.messages] == ["other@example.com"]


def test_confirming_when_keys_came_meanwhile_tells_at_once(app, smtp, cards):
    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    ask(client, cards, "buyer@example.com", fifty)
    keys_for(fifty)
    assert len(smtp.messages) == 1  # nobody confirmed yet
    page = press(client, link(smtp.messages[0], ""))
    assert "back in stock already" in page.text
    assert len(smtp.messages) == 2 and "Back in stock: Google Play 礼品卡 · ¥50 card" == smtp.messages[1]["Subject"]


def test_the_emails_speak_the_buyers_language(app, smtp, cards):
    chinese, english_client = app.test_client(), english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    confirmed(chinese, smtp, cards, "zh@example.com", fifty)
    confirmed(english_client, smtp, cards, "en@example.com", fifty)
    smtp.messages.clear()
    keys_for(fifty)
    zh, en = sent_to(smtp, "zh@example.com")[0], sent_to(smtp, "en@example.com")[0]
    assert en["Subject"] == "Back in stock: Google Play 礼品卡 · ¥50 card"
    assert "Google Play 礼品卡 · ¥50 card is back in stock at faka." in body(en)
    with force_locale("zh_CN"):
        assert zh["Subject"] == _("Back in stock: %(item)s", item="Google Play 礼品卡 · 面值 ¥50")


def test_the_product_page_offers_the_form_for_what_is_sold_out(client, cards, make_product):
    fifty, hundred = option(cards, "面值 ¥50"), option(cards, "面值 ¥100")
    page = client.get(f"/p/{cards.slug}?lang=en").text
    choices = re.search(r'<select id="restock-variant" name="variant">(.*?)</select>', page, re.S).group(1)
    assert re.findall(r'value="([0-9a-f]+)"', choices) == [fifty.key, hundred.key]
    assert "¥50 card" in choices and "¥100 card" in choices

    keys_for(fifty)
    page = client.get(f"/p/{cards.slug}?lang=en").text
    assert 'id="restock-variant"' not in page
    assert f'<input type="hidden" name="variant" value="{hundred.key}">' in page and "¥100 card is sold out." in page

    in_stock = make_product(keys=3)
    assert 'id="restock"' not in client.get(f"/p/{in_stock.slug}").text
    sold_out = make_product(keys=0)
    page = client.get(f"/p/{sold_out.slug}?lang=en").text
    assert f'action="/p/{sold_out.slug}/restock"' in page and "is sold out." not in page


def test_nothing_is_sent_for_a_product_that_is_no_longer_on_sale(app, smtp, cards):
    """A hidden product's keys do not tell its waiting buyers (a deleted variant takes no
    keys at all: faka/inventory/keys.py)."""
    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    confirmed(client, smtp, cards, "buyer@example.com", fifty)
    smtp.messages.clear()
    cards.visible = False
    db.session.commit()
    keys_for(fifty)
    assert smtp.messages == [] and count(RestockRequest, RestockRequest.notified_at.is_(None)) == 1


# -- the merchant ---------------------------------------------------------------------------------


def test_the_merchant_sees_how_many_are_waiting(app, smtp, cards, merchant):
    client = english(app.test_client())
    fifty, hundred = option(cards, "面值 ¥50"), option(cards, "面值 ¥100")
    confirmed(client, smtp, cards, "a@example.com", fifty)
    confirmed(client, smtp, cards, "b@example.com", fifty)
    confirmed(client, smtp, cards, "c@example.com", hundred)
    ask(client, cards, "unconfirmed@example.com", fifty)
    assert restock.waiting_counts(merchant.id) == {fifty.id: 2, hundred.id: 1}

    back_office = english(app.test_client())
    login(back_office, merchant.user)
    page = back_office.get("/merchant/products")
    assert page.status_code == 200
    rows = {
        unescape(name): waiting
        for name, waiting in re.findall(
            r"<td>↳ ([^<]+)</td>.*?</td>\s*<td>.*?(?:(\d+) waiting.*?)?</td>", page.text, re.S
        )
    }
    assert rows == {"面值 ¥50": "2", "面值 ¥100": "1"}, rows

    keys_for(fifty)
    assert restock.waiting_counts(merchant.id) == {hundred.id: 1}
    other = restock.waiting_counts(merchant.id + 1000)
    assert other == {}


# -- privacy -----------------------------------------------------------------------------------------


def test_retention_deletes_requests_that_are_done_and_hashes_old_addresses(app, smtp, cards, frozen_clock):
    client = english(app.test_client())
    fifty, hundred = option(cards, "面值 ¥50"), option(cards, "面值 ¥100")
    confirmed(client, smtp, cards, "told@example.com", fifty)
    confirmed(client, smtp, cards, "waiting@example.com", hundred)
    ask(client, cards, "unconfirmed@example.com", hundred)
    keys_for(fifty)

    frozen_clock.advance(days=retention.RESTOCK_DONE_DAYS + 1)
    report = retention.run(frozen_clock.now)
    assert report.restock_requests_deleted == 2  # told, and never confirmed
    [left] = db.session.execute(select(RestockRequest)).scalars().all()
    assert left.email == "waiting@example.com" and left.ip.startswith(retention.HASH_PREFIX)

    frozen_clock.advance(days=retention.RESTOCK_WAITING_DAYS)
    assert retention.run(frozen_clock.now).restock_requests_deleted == 1
    assert count(RestockRequest) == 0


# -- on a phone -------------------------------------------------------------------------------------


def wait_for_email(smtp, n: int) -> None:
    deadline = time.monotonic() + 10
    while len(smtp.messages) < n and time.monotonic() < deadline:
        time.sleep(0.05)
    assert len(smtp.messages) >= n


@pytest.mark.parametrize("javascript", [True, False], ids=["js", "nojs"])
def test_a_buyer_asks_and_confirms_on_a_phone(chromium, live_server, smtp, javascript):
    """At 360 px: with htmx the answer replaces the form on the product page; without
    JavaScript it is a page of its own. The emailed link opens a page whose button confirms."""
    app, base = live_server
    app.config.update(MAIL_SERVER="127.0.0.1", MAIL_PORT=smtp.port)
    seller = users.create_merchant("seller@shop.test", "merchant-pass-1", "Shop", approved=True)
    category = Category(name="礼品卡", name_en="Gift cards")
    db.session.add(category)
    db.session.commit()
    product = product_with_one_variant(
        slug=secrets.token_hex(8),
        merchant_id=seller.id,
        category_id=category.id,
        price=5000,
        title="Google Play 礼品卡",
    )
    product.variants[0].name, product.variants[0].name_en = "面值 ¥50", "¥50 card"
    db.session.add(product)
    db.session.commit()
    hundred = add_variant(product, "面值 ¥100", "¥100 card", price=10000)

    context = chromium.new_context(viewport={"width": 360, "height": 800}, java_script_enabled=javascript)
    page = context.new_page()
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    try:
        page.goto(f"{base}/p/{product.slug}?lang=en")
        assert page.locator("#restock h2").inner_text() == "Tell me when it is back"
        assert no_horizontal_scroll(page)
        page.select_option("#restock-variant", hundred.key)
        page.fill("#restock-email", "buyer@example.com")
        page.click("#restock button[type=submit]")
        page.wait_for_selector("#restock .notice")
        assert ANSWER in page.locator("#restock .notice").inner_text()
        if javascript:
            assert page.url.endswith(f"/p/{product.slug}?lang=en")  # answered in place
            assert page.locator("h1").inner_text() == "Google Play 礼品卡"
        else:
            assert page.url.endswith(f"/p/{product.slug}/restock")
            assert page.locator("h1").inner_text() == "Check your inbox"
        assert no_horizontal_scroll(page)

        wait_for_email(smtp, 1)
        page.goto(base + link(smtp.messages[0], ""))
        assert "¥100 card" in page.locator("main").inner_text()
        assert no_horizontal_scroll(page)
        page.click("main button[type=submit]")
        page.wait_for_selector("text=You are on the list")
        assert count(RestockRequest, RestockRequest.confirmed_at.is_not(None)) == 1
        assert errors == []
    finally:
        context.close()


def test_the_reconciler_tells_buyers_whose_notice_job_was_lost(app, smtp, cards):
    """Keys arrived but the notice job never ran (Redis was down as the import finished):
    the periodic reconciler finds the variant and queues it again, and only once."""
    from faka.inventory.models import CardKey
    from faka.ops.reconcile import reconcile

    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    confirmed(client, smtp, cards, "buyer@example.com", fifty)
    db.session.add(CardKey(product_id=cards.id, variant_id=fifty.id, ciphertext="x", fingerprint="lost-job-key"))
    db.session.commit()
    assert len(smtp.messages) == 1  # the confirmation: no notice yet

    assert reconcile().restock == 1
    assert [m["Subject"] for m in sent_to(smtp, "buyer@example.com")][
        -1
    ] == "Back in stock: Google Play 礼品卡 · ¥50 card"
    assert reconcile().restock == 0


def test_a_long_title_and_option_name_still_make_an_email(app, smtp, make_product):
    """The subject is clipped to what the outbox holds (PostgreSQL refuses a longer one)."""
    product = make_product(keys=0, title="超" * 120)
    variant = product.variants[0]
    variant.name, variant.name_en = "甲" * 40, "A" * 40
    add_variant(product, "乙" * 40, "B" * 40)
    answer = ask(english(app.test_client()), product, "buyer@example.com", variant)
    assert answer.status_code == 200 and ANSWER in answer.text
    subject = smtp.messages[0]["Subject"]
    assert len(subject) <= OutboxEmail.SUBJECT_MAX and subject.endswith("…")


def test_a_tampered_option_says_choose_an_option(app, smtp, cards):
    client = english(app.test_client())
    page = client.get(f"/p/{cards.slug}")
    answer = client.post(
        f"/p/{cards.slug}/restock",
        data={"csrf_token": csrf_from(page.text), "email": "buyer@example.com", "variant": "x" * 40},
    )
    assert answer.status_code == 400 and "Choose the option you want to be told about." in answer.text
    assert count(RestockRequest) == 0 and not smtp.messages


def test_the_reconciler_leaves_a_hidden_product_alone(app, smtp, cards):
    from faka.inventory.models import CardKey

    client = english(app.test_client())
    fifty = option(cards, "面值 ¥50")
    confirmed(client, smtp, cards, "buyer@example.com", fifty)
    cards.visible = False
    db.session.add(CardKey(product_id=cards.id, variant_id=fifty.id, ciphertext="x", fingerprint="hidden-key"))
    db.session.commit()
    assert restock.due_variant_ids() == []
