"""faka.extensions.RouteLimiter skips Flask-Limiter's pass before every request by
overriding a private method and reading a private attribute of the pinned release
(Flask-Limiter 4.1.1 has no public switch for "route limits only"). An upgrade that renames
or reshapes them must fail here, not silently put the pass back or stop limiting."""

import inspect

from flask_limiter import Limiter

from conftest import csrf_from
from faka.extensions import RouteLimiter, limiter


def test_the_private_method_overridden_still_exists_with_the_same_signature():
    original = inspect.signature(Limiter._check_request_limit)
    assert list(original.parameters) == ["self", "callable_name", "in_middleware"]
    assert original.parameters["in_middleware"].default is True
    assert RouteLimiter._check_request_limit is not Limiter._check_request_limit


def test_the_manager_attributes_read_still_exist(app):
    manager = limiter.limit_manager
    assert isinstance(manager._blueprint_limits, dict)
    assert not (manager.default_limits or manager.application_limits or manager._blueprint_limits)


def test_route_limits_still_apply_and_the_pass_before_each_request_is_skipped(make_app):
    app = make_app(RATELIMIT_LOOKUP="1 per minute")
    client = app.test_client()
    token = csrf_from(client.get("/lookup").text)
    answers = [
        client.post("/lookup", data={"csrf_token": token, "query": "x", "query_password": "y"}).status_code
        for _ in range(2)
    ]
    assert answers == [400, 429]  # a wrong lookup, then the route's own limit

    passes = []
    original = Limiter._check_request_limit

    def spy(self, callable_name=None, in_middleware=True):
        passes.append(in_middleware)
        return original(self, callable_name=callable_name, in_middleware=in_middleware)

    Limiter._check_request_limit = spy
    try:
        assert app.test_client().get("/").status_code == 200
    finally:
        Limiter._check_request_limit = original
    assert True not in passes  # no default, application or blueprint limits: no pass before the request
