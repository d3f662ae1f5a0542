"""contrib._routing: the one rule from a URL's host to (service, version), shared by requests and httpx."""

from __future__ import annotations

from typing import Optional, Tuple

import pytest

from fyerreg.contrib._routing import Router


def route(router: Router, host: str) -> Tuple[str, Optional[str]]:
    found = router.route(f"http://{host}/x", host.lower(), None)
    return found.service, found.version


def test_a_host_equal_to_a_known_name_is_that_service_at_its_configured_version() -> None:
    router = Router({"UserService": "1.0.0", "api.users": "2.0.0"}, version="9")
    assert route(router, "userservice") == ("UserService", "1.0.0")
    assert route(router, "api.users") == ("api.users", "2.0.0")  # dots in a name: the known name wins
    assert route(router, "billing") == ("billing", "9")


def test_a_known_name_followed_by_a_dot_names_the_version_after_it() -> None:
    router = Router({"UserService": "1.0.0", "api": None, "api.users": None})
    assert route(router, "UserService.2.0.0") == ("UserService", "2.0.0")
    assert route(router, "api.users.v3") == ("api.users", "v3")  # the longest known name wins
    assert route(router, "api.v3") == ("api", "v3")


def test_an_unknown_host_splits_at_its_first_dot_before_a_digit_or_a_v_and_a_digit() -> None:
    router = Router(version="1.0.0")
    assert route(router, "user-service.2.1.0") == ("user-service", "2.1.0")
    assert route(router, "greeter.v1") == ("greeter", "v1")
    assert route(router, "greeter.vip") == ("greeter.vip", "1.0.0")
    assert route(router, "billing.eu") == ("billing.eu", "1.0.0")
    assert route(router, "billing.eu.3") == ("billing.eu", "3")


def test_a_port_or_no_host_is_refused() -> None:
    router = Router()
    with pytest.raises(ValueError, match="without a port"):
        router.route("http://svc:81/", "svc", 81)
    with pytest.raises(ValueError, match="service name"):
        router.route("http:///x", "", None)


def test_bad_names_and_versions_are_refused_naming_the_field() -> None:
    with pytest.raises(ValueError, match="differ only in case"):
        Router({"A": "1"}, services=["a"])
    with pytest.raises(TypeError, match="services"):
        Router(services="svc")
    with pytest.raises(ValueError, match="version"):
        Router(version="")
