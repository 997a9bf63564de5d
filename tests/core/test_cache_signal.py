"""The page cache's invalidation signal through Redis (faka/core/cache.py): what one web
process forgets, every other process forgets at once, not after PAGE_CACHE_SECONDS. Two
apps here stand for two hosts: each has its own caches and its own listening thread, and
they share only the database and a real Redis."""

import itertools
import multiprocessing
import shutil
import time
from urllib.parse import urlsplit

import pytest
from helpers import store_selling

from chaos_tools import RedisServer
from conftest import TEST_REDIS_URL, csrf_from, login, with_totp
from faka.accounts import users
from faka.core import cache
from faka.extensions import db
from faka.growth import resale
from faka.platform.settings import site_settings
from faka.risk import blacklist
from faka.risk.models import BlacklistEntry

HOUR = 3600  # a cache time no test waits out: only the signal can explain a change seen
DEADLINE = 5.0


def host(make_app, redis_url=None):
    """A web host of its own: its own app, caches and listener."""
    return make_app(fresh=True, REDIS_URL=redis_url or TEST_REDIS_URL, PAGE_CACHE_SECONDS=HOUR)


def listening(app) -> None:
    """Start the app's listener as its first cached read does, and wait until it hears the
    channel. Subscribing empties its caches (it may have missed a message before): a test
    warms them after this, not before."""
    with app.app_context():
        cache.reused("first read", lambda: "starts the listener")
    assert app.extensions[cache.SIGNAL].listening.wait(DEADLINE), "the listener did not subscribe"


def eventually(check, deadline=DEADLINE):
    """check() turning true within the deadline: the message travels through Redis and a
    thread of the other process."""
    end = time.monotonic() + deadline
    while not check():
        assert time.monotonic() < end, "not within the deadline"
        time.sleep(0.01)


_addresses = itertools.count(1)


def buy(app, product, email):
    """A checkout from a browser and an address never seen before, so that no rule but the
    blacklist can refuse it."""
    client = app.test_client()
    number = next(_addresses)
    client.environ_base["REMOTE_ADDR"] = f"198.51.{number // 250}.{number % 250 + 1}"
    page = client.get(f"/p/{product.slug}")
    form = {"csrf_token": csrf_from(page.text), "quantity": 1, "email": email, "query_password": "secret-1"}
    return client.post(f"/p/{product.slug}/buy", data=form).status_code


def test_a_blacklisting_saved_on_one_host_is_enforced_by_another_at_once(make_app, make_product, redis_conn):
    product = make_product(keys=5)
    host_a, host_b = host(make_app), host(make_app)
    listening(host_b)
    assert buy(host_b, product, "fraud@example.com") == 303  # B now keeps the (empty) blacklist

    with host_a.app_context():
        blacklist.add(BlacklistEntry.EMAIL, "fraud@example.com", "chargebacks", actor_id=None)

    eventually(lambda: buy(host_b, product, "fraud@example.com") == 403, deadline=1.0)
    assert buy(host_b, product, "honest@example.com") == 303


def test_site_settings_saved_on_one_host_show_on_another_at_once(app, make_app, redis_conn):
    host_a, host_b = host(make_app), host(make_app)
    visitor = host_b.test_client()
    listening(host_b)
    assert "Closed on Sunday" not in visitor.get("/").text  # B now keeps its home page and the settings

    operator = users.create_operator("ops@example.com", "operator-pass-1")
    with_totp(operator)
    desk = host_a.test_client()
    login(desk, operator)
    form = {k: v for k, v in site_settings().items() if k not in ("open_registration", "require_terms_consent")}
    db.session.rollback()
    form.update(announcement="Closed on Sunday", csrf_token=csrf_from(desk.get("/operator/settings").text))
    assert desk.post("/operator/settings", data=form).status_code == 303

    eventually(lambda: "Closed on Sunday" in visitor.get("/").text, deadline=1.0)


def test_keys_travel_as_json_and_anything_else_is_ignored(make_app, redis_conn):
    app = host(make_app)
    with app.app_context():
        kept = app.extensions[cache.PAGES]
        listening(app)
        for key in ("site-settings", ("reputation", 7), ("product", "ab12", None, "zh_CN"), ("a", ("b", 1.5))):
            kept.set(key, "old", HOUR)
        channel = app.extensions[cache.SIGNAL].channel
        for junk in (b"\x80\x04\x95 pickle", b"[1, 2]", b'{"key": {"a": 1}}', b'{"all": "yes"}', b"{}"):
            redis_conn.publish(channel, junk)
        for key in (("reputation", 7), ("product", "ab12", None, "zh_CN"), ("a", ("b", 1.5))):
            redis_conn.publish(channel, cache.json.dumps({"from": "another", "key": cache._encode(key)}))
        eventually(lambda: kept.get(("a", ("b", 1.5))) is None)
        assert kept.get(("reputation", 7)) is None and kept.get(("product", "ab12", None, "zh_CN")) is None
        assert kept.get("site-settings") == "old"
        with pytest.raises(TypeError):
            cache.forget(("reputation", object()))


def test_a_forked_process_listens_on_its_own(make_app, redis_conn):
    """gunicorn forks its workers from a master that may have served already: the child has
    no thread of its parent's, and must start its own."""
    app = host(make_app)
    listening(app)
    with app.app_context():
        cache.reused("stock", lambda: "parent's")
        context = multiprocessing.get_context("fork")
        ready, answer = context.Queue(), context.Queue()

        def child():
            with app.app_context():
                cache.reused("stock", lambda: "child's")  # starts the child's listener
                heard = app.extensions[cache.SIGNAL].listening.wait(DEADLINE)
                cache.reused("stock", lambda: "child's")  # its own subscription emptied its caches
                ready.put(heard)
                end = time.monotonic() + DEADLINE
                while (value := cache.reused("stock", lambda: "fresh")) != "fresh" and time.monotonic() < end:
                    time.sleep(0.01)
                answer.put(value)

        process = context.Process(target=child)
        process.start()
        try:
            assert ready.get(timeout=DEADLINE * 2) is True
            cache.forget("stock")
            assert answer.get(timeout=DEADLINE * 2) == "fresh"
        finally:
            process.join(DEADLINE)
            if process.is_alive():
                process.kill()
        assert process.exitcode == 0


def test_what_was_kept_before_the_first_subscription_is_let_go(make_app, redis_conn):
    """A process's first cached read starts its listener: a change forgotten elsewhere before
    the listener subscribed never reaches it, so what the process kept until then goes."""
    app = host(make_app)
    with app.app_context():
        kept = app.extensions[cache.PAGES]
        kept.set(("substore-domains",), {"old.example.com": "gone"}, HOUR)  # read before a forget it missed
        cache.reused("stock", lambda: "first read")  # starts the listener
        assert app.extensions[cache.SIGNAL].listening.wait(DEADLINE)
        assert kept.get(("substore-domains",)) is None


def test_two_ways_of_naming_one_redis_database_share_the_channel(make_app, redis_conn):
    """`redis://host:port/3` and `redis://host:port?db=3` are the same database to Redis:
    processes configured either way hear each other."""
    parts = urlsplit(TEST_REDIS_URL)
    number = parts.path.strip("/") or "0"
    by_query = parts._replace(path="", query=f"db={number}").geturl()
    host_a, host_b = host(make_app, by_query), host(make_app, TEST_REDIS_URL)
    listening(host_b)
    with host_b.app_context():
        cache.reused("stock", lambda: "B's")
    with host_a.app_context():
        cache.forget("stock")
    with host_b.app_context():
        eventually(lambda: cache.reused("stock", lambda: "fresh") == "fresh", deadline=1.0)
    assert host_a.extensions[cache.SIGNAL].channel == host_b.extensions[cache.SIGNAL].channel


def test_a_domain_its_owner_drops_is_no_longer_served_by_any_host(make_app, make_product, redis_conn):
    """A sub-store's domain is read once per 30 s by each process: dropping it on one host
    stops every host serving the store there at once."""
    store = store_selling(make_product(keys=3), "Moon Store", "shop.moon.test", price=1200, floor_price=800)
    host_a, host_b = host(make_app), host(make_app)
    visitor = host_b.test_client()
    listening(host_b)
    assert "Moon Store" in visitor.get("/?lang=en", headers={"Host": "shop.moon.test"}).text  # B keeps the domains

    with host_a.app_context():
        identity = resale.Identity(code=store.code, name=store.name, contact=store.contact)  # no domain
        resale.save_substore(store.merchant_id, store.merchant.user_id, identity)

    eventually(
        lambda: "Moon Store" not in visitor.get("/?lang=en", headers={"Host": "shop.moon.test"}).text, deadline=1.0
    )


@pytest.fixture
def own_redis(tmp_path):
    """A redis-server of this test's own, which it may stop and start again."""
    if shutil.which("redis-server") is None:
        pytest.skip("needs redis-server (apt install redis-server) to start a Redis of its own")
    server = RedisServer(tmp_path)
    server.start()
    yield server
    server.close()


def test_redis_down_changes_nothing_for_requests_and_listening_resumes_after(make_app, make_product, own_redis):
    product = make_product(keys=5)
    host_a, host_b = host(make_app, own_redis.url), host(make_app, own_redis.url)
    listening(host_b)
    assert buy(host_b, product, "before@example.com") == 303  # B keeps the blacklist

    own_redis.stop()
    with host_a.app_context():
        started = time.monotonic()
        blacklist.add(BlacklistEntry.EMAIL, "outage@example.com", "during the outage", actor_id=None)
        assert time.monotonic() - started < 2  # the save did not wait long for Redis
    assert buy(host_a, product, "outage@example.com") == 403  # A forgot its own copy
    # B missed the message: it keeps its copy until Redis is back (or the cache time passes).
    assert buy(host_b, product, "outage@example.com") == 303

    own_redis.start()
    # Listening again, B empties its caches: it may have missed anything meanwhile.
    eventually(lambda: host_b.extensions[cache.SIGNAL].listening.is_set())
    assert buy(host_b, product, "outage@example.com") == 403

    with host_a.app_context():
        blacklist.add(BlacklistEntry.EMAIL, "later@example.com", "after the outage", actor_id=None)
    eventually(lambda: buy(host_b, product, "later@example.com") == 403, deadline=1.0)
