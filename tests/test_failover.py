"""The Failover policy: which failed calls go to another instance, shared by api.Client and the requests adapter."""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Iterator

import pytest

from fyerreg import ClientOptions, Discovery, Failover, MemoryRegistry


def test_an_undelivered_request_goes_elsewhere_up_to_retries_whatever_the_method() -> None:
    policy = Failover(retries=2)
    assert [policy.allows(n, delivered=False, idempotent=False) for n in (1, 2, 3)] == [True, True, False]


def test_a_request_that_may_have_been_processed_goes_elsewhere_only_when_idempotent() -> None:
    policy = Failover(retries=2, idempotent_methods={"Orders.Get"})
    assert not policy.allows(1, delivered=True, idempotent=policy.is_idempotent("Orders.Create"))
    assert policy.allows(1, delivered=True, idempotent=policy.is_idempotent("Orders.Get"))
    assert not policy.allows(3, delivered=True, idempotent=True)


def test_no_retries_means_one_attempt() -> None:
    policy = Failover(retries=0, idempotent_methods=["GET"])
    assert not policy.allows(1, delivered=False, idempotent=True)


def test_method_names_compare_as_given() -> None:
    policy = Failover(idempotent_methods=("GET", "Orders.Get"))
    assert policy.is_idempotent("GET") and policy.is_idempotent("Orders.Get")
    assert not policy.is_idempotent("get") and not policy.is_idempotent("orders.get")
    assert not Failover().is_idempotent("GET")


def test_failover_is_an_immutable_hashable_value() -> None:
    policy = Failover(3, ["GET", "HEAD"])
    assert policy == Failover(3, frozenset({"HEAD", "GET"}))
    assert hash(policy) == hash(Failover(3, {"GET", "HEAD"}))
    assert policy.idempotent_methods == frozenset({"GET", "HEAD"})
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.retries = 5  # type: ignore[misc]
    assert dataclasses.replace(policy, retries=1) == Failover(1, {"GET", "HEAD"})
    assert "retries=3" in repr(policy)


@pytest.mark.parametrize(("kwargs", "error", "field"), [
    ({"retries": -1}, ValueError, "retries"),
    ({"retries": True}, ValueError, "retries"),
    ({"retries": 1.5}, ValueError, "retries"),
    ({"idempotent_methods": "GET"}, TypeError, "idempotent_methods"),
    ({"idempotent_methods": ["GET", ""]}, ValueError, "idempotent_methods"),
    ({"idempotent_methods": [1]}, ValueError, "idempotent_methods"),
])
def test_invalid_policies_are_rejected_naming_the_field(kwargs: Dict[str, Any], error: type, field: str) -> None:
    with pytest.raises(error, match=field):
        Failover(**kwargs)


@pytest.fixture
def discovery() -> Iterator[Discovery]:
    with MemoryRegistry() as registry, Discovery(registry) as discovery:
        yield discovery


def test_the_client_and_the_requests_adapter_hand_their_options_to_one_policy(discovery: Discovery) -> None:
    options = ClientOptions(discovery=discovery, service_name="orders", retries=4,
                            idempotent_methods=["Orders.Get"])
    assert options.failover == Failover(4, {"Orders.Get"})
    pytest.importorskip("requests")
    from fyerreg.contrib.requests import DiscoveryAdapter

    adapter = DiscoveryAdapter(discovery, retries=1, idempotent_methods=["get", "Put"])
    assert adapter.failover == Failover(1, {"GET", "PUT"})
    assert (adapter.retries, adapter.idempotent_methods) == (1, frozenset({"GET", "PUT"}))


@pytest.mark.parametrize("kwargs", [{"retries": -1}, {"idempotent_methods": "Orders.Get"}])
def test_both_reject_what_the_policy_rejects(discovery: Discovery, kwargs: Dict[str, Any]) -> None:
    with pytest.raises((ValueError, TypeError)):
        ClientOptions(discovery=discovery, service_name="orders", **kwargs)
    pytest.importorskip("requests")
    from fyerreg.contrib.requests import DiscoveryAdapter

    with pytest.raises((ValueError, TypeError)):
        DiscoveryAdapter(discovery, **kwargs)
