"""The API against its own OpenAPI document, with schemathesis (property-based: requests
generated from the document, a few per operation).

- test_every_operation_keeps_its_document: for every operation, no 5xx, every answer's
  status, content type, headers and body as documented, and nothing of another merchant
  in any answer. Path parameters are drawn from the merchant's real ids, another
  merchant's and made-up ones, so the happy paths and the 404s are both reached.
- test_every_documented_status_is_reached: each status code the document lists for an
  operation is provoked on purpose (schemathesis reaches most, not all), from the valid
  request of VALID_REQUESTS.

A new resource adds: its seeded objects to `Seed` (its own merchant's, and another
merchant's in `Seed.foreign`), and one valid request per operation to VALID_REQUESTS.
The license checks (public: no key) draw their product id and key from a sold key of
the merchant's, another merchant's unsold key and made-up ones.
"""

import json
import re
import secrets
from dataclasses import dataclass, field
from functools import cache

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from api.conftest import bearer
from conftest import key_texts, reload
from faka.accounts import api_keys
from faka.catalog import checkout_fields, products, variants
from faka.catalog.models import DELIVERY_MANUAL
from faka.catalog.variants import product_with_one_variant
from faka.complaints import workflow
from faka.complaints.models import Complaint
from faka.extensions import db, limiter
from faka.inventory import licenses
from faka.inventory.keys import import_keys
from faka.messaging import push, webhooks
from faka.messaging.models import EVENTS
from faka.orders import coupons
from faka.web.api.v1 import spec

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
EXAMPLES = 12  # per operation: the whole file stays well under a minute on SQLite


@dataclass
class Seed:
    """What the tests call the API about: the merchant's own objects, and another
    merchant's, none of whose `foreign` strings may appear in any answer."""

    token: str
    merchant_id: int
    category_id: int
    product_slug: str
    field_key: str
    make_product: object
    foreign_slug: str
    foreign_field_key: str
    variant_key: str = ""  # the one variant of product_slug
    foreign_variant_key: str = ""
    license_slug: str = ""  # a product with license checks (limit 1) ...
    license_key: str = ""  # ... and a key of it sold, whose one seat "seed-pc" holds
    foreign: list[str] = field(default_factory=list)
    other_area_token: str = ""  # a key with a scope of another area only
    products_token: str = ""  # the same for money's operations (other_area_token may read money)
    # Orders, coupons, complaints, money, webhooks and push channels (seed_more):
    place: object = None
    pay: object = None
    order_number: str = ""  # delivered, with an email
    complaint_ref: str = ""  # open
    coupon_id: int = 0
    endpoint_id: int = 0
    channel_id: int = 0
    hook_url: str = ""  # a receiver on 127.0.0.1 answering 200 (and, as every push provider, "ok")
    more_params: dict = field(default_factory=dict)  # path parameter: (own value, another merchant's)

    def own_product(self) -> str:
        """A product of its own for a call that changes or deletes what it is given."""
        return self.make_product(keys=2, title=f"Fresh {secrets.token_hex(3)}").slug

    def own_variant(self) -> tuple[str, str]:
        slug = self.own_product()
        return slug, products.get_product(self.merchant_id, slug).live_variants[0].key

    def own_choice(self) -> tuple[str, str]:
        """A product of its own with two variants; the second one's key."""
        slug = self.own_product()
        draft = variants.VariantDraft(name="¥100", price=10000)
        return slug, variants.add_variant(self.merchant_id, slug, draft, first_name="¥50").key

    def own_field(self) -> tuple[str, str]:
        slug = self.own_product()
        return slug, checkout_fields.add_field(self.merchant_id, slug, checkout_fields.FieldDraft(label="UID")).key

    def manual_order(self) -> str:
        """A paid order waiting to be delivered by hand."""
        order = self.place(self.make_product(keys=0, delivery_type=DELIVERY_MANUAL, title="Manual"))
        self.pay(order)
        return order.number

    def own_coupon(self) -> int:
        return coupons.create_coupon(self.merchant_id, f"FRESH{secrets.token_hex(3)}".upper(), "fixed", 100).id

    def room_for_endpoint(self) -> None:
        """Only the seed's endpoint left (a merchant has five at most)."""
        for endpoint in webhooks.endpoints(self.merchant_id):
            if endpoint.id != self.endpoint_id:
                webhooks.delete_endpoint(endpoint.id, self.merchant_id)

    def own_endpoint(self) -> int:
        self.room_for_endpoint()
        return webhooks.create_endpoint(self.merchant_id, self.hook_url, ["order.paid"])[0].id

    def room_for_channel(self) -> None:
        """Only the seed's push channel left (ten at most)."""
        for channel in push.list_channels(self.merchant_id):
            if channel.id != self.channel_id:
                push.delete_channel(channel.id, self.merchant_id)

    def own_channel(self) -> int:
        self.room_for_channel()
        return push.create_channel(self.merchant_id, "wecom", "Fresh", {"key": "fresh-robot-0001"}, ["order.paid"]).id


@pytest.fixture
def seed(request, app, merchant, make_product, make_key, other_product, place, pay, httpserver) -> Seed:
    app.config["API_RATE_LIMIT"] = "100000 per minute"
    app.config["API_AUTH_FAILURE_LIMIT"] = "100000 per minute"
    app.config["RATELIMIT_LICENSE"] = app.config["RATELIMIT_LICENSE_MISSES"] = "100000 per minute"
    product = make_product(keys=3, title="Own product")
    own_field = checkout_fields.add_field(
        merchant.id, product.slug, checkout_fields.FieldDraft(label="Server", kind="choice", choices="Asia\nEurope")
    )
    other = other_product
    other.title = "FOREIGN-TITLE-7c1e"
    other.description_md = "FOREIGN-DESCRIPTION-7c1e"
    db.session.commit()
    foreign_field = checkout_fields.add_field(
        other.merchant_id, other.slug, checkout_fields.FieldDraft(label="FOREIGN-LABEL-7c1e")
    )
    import_keys(other.variants[0], "FOREIGN-KEY-7c1e-1\nFOREIGN-KEY-7c1e-2")
    found = Seed(
        token=make_key(),
        merchant_id=merchant.id,
        category_id=product.category_id,
        product_slug=product.slug,
        field_key=own_field.key,
        make_product=make_product,
        foreign_slug=other.slug,
        foreign_field_key=foreign_field.key,
        variant_key=product.variants[0].key,
        foreign_variant_key=other.variants[0].key,
        foreign=[
            other.slug,
            foreign_field.key,
            other.variants[0].key,
            "FOREIGN-TITLE-7c1e",
            "FOREIGN-DESCRIPTION-7c1e",
            "FOREIGN-LABEL-7c1e",
            "FOREIGN-KEY-7c1e",
        ],
    )
    licensed = make_product(keys=2, title="Licensed product", license_checks=True, activation_limit=1)
    sold = place(licensed)
    pay(sold)
    found.license_slug, found.license_key = licensed.slug, key_texts(sold)[0]
    licenses.activate(licenses.LicenseRequest(licensed.slug, found.license_key, "seed-pc"))
    found.place, found.pay = place, pay
    # For one operation (test_every_operation_keeps_its_document), only its area's objects.
    operation_path = request.node.callspec.params.get("path") if hasattr(request.node, "callspec") else None
    seed_more(found, app, other, httpserver, operation_path)
    return found


def seed_more(found: Seed, app, other, httpserver, path: str | None) -> None:
    """Orders, a complaint, a coupon, a webhook endpoint and a push channel: the
    merchant's, and another merchant's (whose strings join `foreign`); for one operation,
    only those of its area (`path`; None: all). Webhooks and pushes go to a local server
    answering 200 and every provider's "ok"."""

    def wanted(*areas: str) -> bool:
        return path is None or path.startswith(tuple(f"/api/v1/{area}" for area in areas))

    app.config["WEBHOOK_ALLOW_PRIVATE"] = True
    app.config["PUSH_PROVIDER_URLS"] = {kind: httpserver.url_for("/").rstrip("/") for kind in push.KINDS}
    httpserver.expect_request(re.compile("^/")).respond_with_json({"ok": True, "code": 0, "errcode": 0})
    found.hook_url = httpserver.url_for("/hook")

    def delivered(product, email):
        order = found.place(product, email=email)
        found.pay(order)
        return reload(order)

    if wanted("orders", "complaints", "balance", "ledger"):
        own = delivered(found.make_product(keys=2, title="Sold product"), "buyer@example.com")
        their_product = product_with_one_variant(
            slug=secrets.token_hex(8),
            merchant_id=other.merchant_id,
            category_id=other.category_id,
            price=888,
            title="FOREIGN-SOLD-7c1e",
        )
        db.session.add(their_product)
        db.session.commit()
        import_keys(their_product.variants[0], "FOREIGN-SOLD-KEY-7c1e")
        theirs = delivered(their_product, "foreign-7c1e@example.com")
        found.order_number = own.number
        found.more_params["number"] = (own.number, theirs.number)
        found.foreign += [their_product.slug, "FOREIGN-SOLD", theirs.number, "foreign-7c1e@example.com"]
    if wanted("complaints"):
        complaint = workflow.open_complaint(own.token, Complaint.KEY_INVALID, "It does not work")
        their_complaint = workflow.open_complaint(theirs.token, Complaint.KEY_INVALID, "FOREIGN-COMPLAINT-7c1e")
        found.complaint_ref = complaint.ref
        found.more_params["ref"] = (complaint.ref, their_complaint.ref)
        found.foreign += [their_complaint.ref, "FOREIGN-COMPLAINT-7c1e"]
    if wanted("coupons"):
        coupon = coupons.create_coupon(found.merchant_id, "OWN10", "percent", 1000)
        theirs = coupons.create_coupon(other.merchant_id, "FOREIGN7C1E", "fixed", 100)
        found.coupon_id = coupon.id
        found.more_params["coupon_id"] = (coupon.id, theirs.id)
        found.foreign.append("FOREIGN7C1E")
    if wanted("webhooks"):
        endpoint, _secret = webhooks.create_endpoint(found.merchant_id, found.hook_url, list(EVENTS))
        theirs, _secret = webhooks.create_endpoint(other.merchant_id, httpserver.url_for("/foreign-7c1e"), list(EVENTS))
        their_delivery = webhooks.get_delivery(webhooks.send_test(theirs.id, other.merchant_id), other.merchant_id)
        found.endpoint_id = endpoint.id
        found.more_params["endpoint_id"] = (endpoint.id, theirs.id)
        found.foreign += ["/foreign-7c1e", webhooks.public_id(their_delivery)]
    if wanted("push-channels"):
        channel = push.create_channel(found.merchant_id, "wecom", "Phone", {"key": "own-robot-0001"}, ["order.paid"])
        theirs = push.create_channel(
            other.merchant_id, "wecom", "FOREIGN-CHANNEL-7c1e", {"key": "foreign-robot-7c1e"}, ["order.paid"]
        )
        push.send_test(theirs.id, other.merchant_id)
        found.channel_id = channel.id
        found.more_params["channel_id"] = (channel.id, theirs.id)
        found.foreign.append("FOREIGN-CHANNEL-7c1e")


def _license(s: Seed, **fields) -> dict:
    return _body(product_id=s.license_slug, key=s.license_key, **fields)


# -- every documented status, provoked ----------------------------------------------------


def _body(**fields):
    return {"json": fields}


# One valid request per operation: its path parameters and body, from the seed. Calls that
# change or delete what they are given get objects of their own.
VALID_REQUESTS = {
    ("get", "/api/v1/categories"): lambda s: {},
    ("get", "/api/v1/products"): lambda s: {},
    ("post", "/api/v1/products"): lambda s: _body(title="Made by a test", price=100, category_id=s.category_id),
    ("get", "/api/v1/products/{slug}"): lambda s: {"slug": s.product_slug},
    ("patch", "/api/v1/products/{slug}"): lambda s: {"slug": s.own_product(), **_body(price=200)},
    ("post", "/api/v1/products/{slug}/hide"): lambda s: {"slug": s.own_product()},
    ("post", "/api/v1/products/{slug}/show"): lambda s: {"slug": s.own_product()},
    ("get", "/api/v1/products/{slug}/variants"): lambda s: {"slug": s.product_slug},
    ("post", "/api/v1/products/{slug}/variants"): lambda s: {
        "slug": s.own_product(),
        **_body(name="¥100", price=10000, first_name="¥50"),
    },
    ("get", "/api/v1/products/{slug}/variants/{key}"): lambda s: {"slug": s.product_slug, "key": s.variant_key},
    ("patch", "/api/v1/products/{slug}/variants/{key}"): lambda s: dict(
        zip(("slug", "key"), s.own_variant()), **_body(price=300)
    ),
    ("delete", "/api/v1/products/{slug}/variants/{key}"): lambda s: dict(zip(("slug", "key"), s.own_choice())),
    ("post", "/api/v1/products/{slug}/variants/{key}/move"): lambda s: dict(
        zip(("slug", "key"), s.own_choice()), **_body(direction="up")
    ),
    ("get", "/api/v1/products/{slug}/fields"): lambda s: {"slug": s.product_slug},
    ("post", "/api/v1/products/{slug}/fields"): lambda s: {"slug": s.own_product(), **_body(label="Account")},
    ("get", "/api/v1/products/{slug}/fields/{key}"): lambda s: {"slug": s.product_slug, "key": s.field_key},
    ("patch", "/api/v1/products/{slug}/fields/{key}"): lambda s: dict(
        zip(("slug", "key"), s.own_field()), **_body(label="Renamed")
    ),
    ("delete", "/api/v1/products/{slug}/fields/{key}"): lambda s: dict(zip(("slug", "key"), s.own_field())),
    ("post", "/api/v1/products/{slug}/fields/{key}/move"): lambda s: dict(
        zip(("slug", "key"), s.own_field()), **_body(direction="up")
    ),
    ("get", "/api/v1/products/{slug}/keys"): lambda s: {"slug": s.product_slug},
    ("post", "/api/v1/products/{slug}/keys"): lambda s: {"slug": s.own_product(), **_body(keys=["NEW-1", "NEW-2"])},
    ("post", "/api/v1/products/{slug}/keys/void"): lambda s: {"slug": s.own_product(), **_body(keys=["NOT-THERE"])},
    ("post", "/api/v1/licenses/validate"): lambda s: _license(s),
    ("post", "/api/v1/licenses/activate"): lambda s: _license(s, instance_id="seed-pc"),  # already holds the seat
    ("post", "/api/v1/licenses/deactivate"): lambda s: _license(s, instance_id="never-activated"),
    ("get", "/api/v1/orders"): lambda s: {},
    ("get", "/api/v1/orders/{number}"): lambda s: {"number": s.order_number},
    ("post", "/api/v1/orders/{number}/deliver"): lambda s: {"number": s.manual_order(), **_body(content="CODE-1")},
    ("post", "/api/v1/orders/{number}/resend"): lambda s: {"number": s.order_number},
    ("get", "/api/v1/coupons"): lambda s: {},
    ("post", "/api/v1/coupons"): lambda s: _body(code=f"NEW{secrets.token_hex(3)}".upper(), kind="percent", value=500),
    ("get", "/api/v1/coupons/{coupon_id}"): lambda s: {"coupon_id": s.coupon_id},
    ("patch", "/api/v1/coupons/{coupon_id}"): lambda s: {"coupon_id": s.own_coupon(), **_body(active=False)},
    ("get", "/api/v1/complaints"): lambda s: {},
    ("get", "/api/v1/complaints/{ref}"): lambda s: {"ref": s.complaint_ref},
    ("post", "/api/v1/complaints/{ref}/messages"): lambda s: {"ref": s.complaint_ref, **_body(body="On it.")},
    ("get", "/api/v1/balance"): lambda s: {},
    ("get", "/api/v1/ledger"): lambda s: {},
    ("get", "/api/v1/webhooks"): lambda s: {},
    ("post", "/api/v1/webhooks"): lambda s: s.room_for_endpoint() or _body(url=s.hook_url),
    ("get", "/api/v1/webhooks/{endpoint_id}"): lambda s: {"endpoint_id": s.endpoint_id},
    ("patch", "/api/v1/webhooks/{endpoint_id}"): lambda s: {"endpoint_id": s.own_endpoint(), **_body(enabled=False)},
    ("delete", "/api/v1/webhooks/{endpoint_id}"): lambda s: {"endpoint_id": s.own_endpoint()},
    ("post", "/api/v1/webhooks/{endpoint_id}/secret"): lambda s: {"endpoint_id": s.own_endpoint()},
    ("post", "/api/v1/webhooks/{endpoint_id}/test"): lambda s: {"endpoint_id": s.endpoint_id},
    ("get", "/api/v1/webhooks/{endpoint_id}/deliveries"): lambda s: {"endpoint_id": s.endpoint_id},
    ("get", "/api/v1/push-channels"): lambda s: {},
    ("post", "/api/v1/push-channels"): lambda s: (
        s.room_for_channel() or _body(kind="wecom", name="Group", settings={"key": "group-robot-0001"})
    ),
    ("get", "/api/v1/push-channels/{channel_id}"): lambda s: {"channel_id": s.channel_id},
    ("patch", "/api/v1/push-channels/{channel_id}"): lambda s: {"channel_id": s.own_channel(), **_body(paused=True)},
    ("delete", "/api/v1/push-channels/{channel_id}"): lambda s: {"channel_id": s.own_channel()},
    ("post", "/api/v1/push-channels/{channel_id}/test"): lambda s: {"channel_id": s.channel_id},
    ("get", "/api/v1/push-channels/{channel_id}/messages"): lambda s: {"channel_id": s.channel_id},
}


def assert_nothing_foreign(text: str, seed: Seed) -> None:
    leaked = [value for value in seed.foreign if value in text]
    assert not leaked, f"another merchant's {leaked} in the answer"


@cache
def api_schema(app):
    """The API's document, loaded once per app: schemathesis reads the constants of the
    app's source (walking every module it imports) once per loaded document, the same
    every time."""
    return schemathesis.openapi.from_wsgi("/api/v1/openapi.json", app)


def _cases(operation):
    """Requests that keep the document (positive) and requests that break it (negative:
    they must be refused with a documented 4xx, never a 5xx)."""
    return st.one_of(operation.as_strategy(GenerationMode.POSITIVE), operation.as_strategy(GenerationMode.NEGATIVE))


@pytest.mark.parametrize("method, path", sorted(VALID_REQUESTS), ids=lambda value: value)
def test_every_operation_keeps_its_document(app, seed, method, path):
    operation = api_schema(app)[path][method]

    @given(case=_cases(operation), data=st.data())
    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), derandomize=True)
    def keeps_its_document(case, data):
        parameters = case.path_parameters or {}
        if "slug" in parameters:
            parameters["slug"] = data.draw(st.sampled_from([seed.product_slug, seed.foreign_slug, parameters["slug"]]))
        if "key" in parameters:
            parameters["key"] = data.draw(
                st.sampled_from(
                    [
                        seed.field_key,
                        seed.foreign_field_key,
                        seed.variant_key,
                        seed.foreign_variant_key,
                        parameters["key"],
                    ]
                )
            )
        for name, values in seed.more_params.items():  # orders, coupons, complaints, webhooks, push channels
            if name in parameters:
                parameters[name] = data.draw(st.sampled_from([*values, parameters[name]]))
        if isinstance(case.body, dict) and "category_id" in case.body:
            case.body["category_id"] = data.draw(st.sampled_from([seed.category_id, case.body["category_id"]]))
        # License checks: the sold key, another merchant's unsold one, or made-up ones.
        if isinstance(case.body, dict) and isinstance(case.body.get("product_id"), str):
            case.body["product_id"] = data.draw(
                st.sampled_from([seed.license_slug, seed.foreign_slug, case.body["product_id"]])
            )
        if isinstance(case.body, dict) and isinstance(case.body.get("key"), str):
            case.body["key"] = data.draw(st.sampled_from([seed.license_key, "FOREIGN-KEY-7c1e-1", case.body["key"]]))
        # Negative cases may break the Authorization header too: that is the 401 test's job.
        case.headers = {**(case.headers or {}), **bearer(seed.token)}
        response = case.call_and_validate(checks=CHECKS)
        assert_nothing_foreign(response.text, seed)

    keeps_its_document()


def _send(client, method, path, request, headers=None, query=""):
    url = path.format(**{k: v for k, v in request.items() if k != "json"})
    return client.open(url + query, method=method.upper(), json=request.get("json"), headers=headers or {})


def _provoke(status: int, client, app, seed, method, path, operation):
    """An answer of `status` from the operation, asked for on purpose."""
    request = VALID_REQUESTS[(method, path)](seed)
    auth = bearer(seed.token)
    if 200 <= status < 300:
        return _send(client, method, path, request, auth)
    if status == 400:
        return _send(client, method, path, request, auth, query="?q=%ff")  # not UTF-8
    if status == 401:
        return _send(client, method, path, request)
    if status == 403:
        money = operation.get("x-scope", "").startswith("money:")
        return _send(client, method, path, request, bearer(seed.products_token if money else seed.other_area_token))
    if status == 404 and path.startswith("/api/v1/licenses/"):
        return _send(client, method, path, {"json": {**request["json"], "key": "no-such-thing"}})
    if status == 404:
        missing = {name: 2**31 - 1 if name.endswith("_id") else "no-such-thing" for name in request if name != "json"}
        return _send(client, method, path, {**request, **missing}, auth)
    if status == 409 and path == "/api/v1/licenses/activate":
        return _send(client, method, path, {"json": {**request["json"], "instance_id": "another-pc"}})  # seat taken
    if status == 409:
        key = api_keys.find_key(seed.token)
        body = json.dumps(request.get("json")).encode()
        url = path.format(**{k: v for k, v in request.items() if k != "json"})
        busy = secrets.token_hex(8)
        api_keys.claim(key.id, busy, api_keys.request_digest(method.upper(), url, body))
        return client.open(
            url,
            method=method.upper(),
            data=body,
            content_type="application/json",
            headers={**auth, "Idempotency-Key": busy},
        )
    if status == 422 and (method, path) == ("delete", "/api/v1/products/{slug}/variants/{key}"):
        return _send(client, method, path, {"slug": seed.product_slug, "key": seed.variant_key}, auth)  # its last
    if status == 422 and (method, path) == ("get", "/api/v1/products/{slug}/keys"):
        return _send(client, method, path, request, auth, query="?variant=no-such-variant")
    if status == 422:
        if "requestBody" in operation:
            return _send(client, method, path, {**request, "json": {"no_such_field": 1}}, auth)
        if any(parameter["name"] == "Idempotency-Key" for parameter in operation.get("parameters", [])):
            used = secrets.token_hex(8)
            other = api_keys.request_digest("POST", "/api/v1/another-request", b"")
            api_keys.claim(api_keys.find_key(seed.token).id, used, other)
            return _send(client, method, path, request, {**auth, "Idempotency-Key": used})
        return _send(client, method, path, request, auth, query="?limit=0")
    if status == 429:
        app.config["API_RATE_LIMIT"] = app.config["RATELIMIT_LICENSE"] = "1 per hour"
        limiter.reset()
        _send(client, method, path, request, auth)
        answer = _send(client, method, path, request, auth)
        app.config["API_RATE_LIMIT"] = app.config["RATELIMIT_LICENSE"] = "100000 per minute"
        return answer
    raise AssertionError(f"no way to provoke {status}: add one to _provoke")


def test_every_documented_status_is_reached(app, client, seed, make_key):
    seed.other_area_token = make_key(scopes=["money:read"])
    seed.products_token = make_key(scopes=["products:read"])
    document = spec(app)
    operations = {
        (method, path): operation
        for path, item in document["paths"].items()
        for method, operation in item.items()
        if method != "parameters"
    }
    assert set(operations) == set(VALID_REQUESTS), "every operation needs a valid request in VALID_REQUESTS"
    for (method, path), operation in sorted(operations.items()):
        for status in sorted(operation["responses"]):
            answer = _provoke(int(status), client, app, seed, method, path, operation)
            assert answer.status_code == int(status), (method, path, status, answer.get_data(as_text=True)[:300])
            assert_nothing_foreign(answer.get_data(as_text=True), seed)
