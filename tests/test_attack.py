"""The scripted attack of bench/attack.py at a small scale, against a real threaded HTTP
server with the production rate limits: a checkout burst, order-lookup guessing and a
forged-notify flood from one address, then an honest buyer from another address."""
import threading

import pytest
from werkzeug.serving import make_server

from bench.attack import forged_notifies, honest_purchase, lookup_guesses, reservation_burst
from config import Config
from faka.models import CardKey, NotifyLog, Order, RiskEvent, SecurityEvent
from faka.services import risk

from conftest import count

BOT = "127.0.0.1"
BUYER = "127.0.0.2"
CONCURRENCY = 4
# Racing lookups and notifications from one address are assessed before any of them is
# written, so up to CONCURRENCY - 1 of them pass a count that is one short of its limit.
# Checkouts take turns per buyer (SQLite's write lock; a PostgreSQL advisory lock).
RACE = CONCURRENCY - 1


@pytest.fixture
def server(make_app):
    app = make_app(JOBS_MODE="thread", RATELIMIT_CHECKOUT=Config.RATELIMIT_CHECKOUT,
                   RATELIMIT_LOOKUP=Config.RATELIMIT_LOOKUP)
    httpd = make_server("127.0.0.1", 0, app, threaded=True)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    with app.app_context():
        yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()


def test_a_bot_gets_five_reservations_no_orders_found_and_no_payment_while_a_buyer_buys(server, make_product):
    product = make_product(keys=100, title="Attack target")
    checkout_limit = int(Config.RATELIMIT_CHECKOUT.split()[0])  # "30 per minute"
    lookup_limit = int(Config.RATELIMIT_LOOKUP.split()[0])

    burst = reservation_burst(server, product.slug, 60, source=BOT, concurrency=CONCURRENCY)
    reserved = burst["statuses"].get("303", 0)
    assert reserved == risk.PENDING_ORDERS
    assert burst["statuses"] == {"303": reserved, "400": checkout_limit - reserved, "429": 60 - checkout_limit}
    assert burst["captcha"] == checkout_limit - reserved  # every refusal before the rate limit asks for it
    assert count(Order, Order.client_ip == BOT) == reserved
    assert count(CardKey, CardKey.status == CardKey.AVAILABLE) == 100 - reserved

    guesses = lookup_guesses(server, 120, source=BOT, concurrency=CONCURRENCY)
    assert guesses["statuses"] == {"400": lookup_limit, "429": 120 - lookup_limit}
    failed = count(SecurityEvent, SecurityEvent.kind == SecurityEvent.LOOKUP_FAILED)
    assert risk.FAILED_LOOKUPS <= failed <= risk.FAILED_LOOKUPS + RACE
    assert guesses["captcha"] == lookup_limit - failed  # after the failures, only the captcha

    flood = forged_notifies(server, 60, source=BOT, concurrency=CONCURRENCY)
    assert flood["statuses"] == {"400": 60}
    logged = count(NotifyLog)
    assert risk.FORGED_NOTIFIES <= logged <= risk.FORGED_NOTIFIES + RACE  # the rest refused unread, unlogged
    assert count(NotifyLog, NotifyLog.verified.is_(True)) == 0
    # The refusal is recorded once a minute, not once a request.
    assert count(RiskEvent, RiskEvent.checkpoint == risk.NOTIFY, RiskEvent.action == risk.BLOCK) == 1
    assert count(Order, Order.status != Order.PENDING) == 0

    buyer = honest_purchase(server, product.slug, BUYER)
    assert buyer["outcome"] == "delivered" and buyer["keys"] == 1, buyer
    assert [step["status"] for step in buyer["steps"]] == [303, 200, 303, 286, 200]
    assert count(Order, Order.client_ip == BUYER, Order.status == Order.DELIVERED) == 1
    assert count(RiskEvent, RiskEvent.ip == BUYER) == 0
