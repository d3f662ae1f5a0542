"""Discovery over a live registry: subscriptions, picks, reasons, snapshots mid-traffic, close()."""

from __future__ import annotations

import collections
import threading
from typing import Any, List, Optional, Set

import pytest

from fyerreg import Discovery, Instance, Registry, Status, Subscription
from fyerreg.errors import NoInstanceAvailableError, RegistryClosedError
from tests.helpers import Registries, wait_until

from .util import inst, insts, register, status_of


def test_select_serves_registered_instances_round_robin(registry: Registry) -> None:
    register(registry, *insts(3))
    with Discovery(registry) as d:
        picked = collections.Counter(d.select("svc", "1.0.0").id for _ in range(30))
    assert picked == {"i000": 10, "i001": 10, "i002": 10}


def test_the_subscription_is_opened_once_per_service_and_version(registry: Registry) -> None:
    calls: List[tuple] = []
    subscribe = registry._do_subscribe

    def counting(service: str, version: Optional[str], **kw: Any) -> Subscription:
        calls.append((service, version))
        return subscribe(service, version, **kw)

    registry._do_subscribe = counting  # type: ignore[method-assign]
    register(registry, *insts(2), inst(5, version="2.0.0"))
    with Discovery(registry) as d:
        barrier = threading.Barrier(16)

        def first_use() -> None:
            barrier.wait(timeout=10)
            for _ in range(50):
                d.select("svc", "1.0.0")

        threads = [threading.Thread(target=first_use) for _ in range(16)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(10)
        d.select("svc", "2.0.0")
        d.select("svc")
        d.instances("svc", "1.0.0")
    assert sorted(calls, key=str) == sorted([("svc", "1.0.0"), ("svc", "2.0.0"), ("svc", None)], key=str)


def test_only_enabled_instances_with_weight_are_picked(registry: Registry) -> None:
    register(registry, inst(0), inst(1, enabled=False), inst(2, weight=0), inst(3))
    with Discovery(registry, balancer="random") as d:
        assert {d.select("svc", "1.0.0").id for _ in range(200)} == {"i000", "i003"}
        assert [i.id for i in d.instances("svc", "1.0.0")] == ["i000", "i003"]


@pytest.mark.parametrize("setup, reason", [
    ([], "no instance is registered"),
    ([inst(0, enabled=False), inst(1, weight=0)], "all 2 instances are disabled or have weight 0"),
])
def test_no_instance_error_names_service_version_and_why(registry: Registry, setup: List[Instance],
                                                         reason: str) -> None:
    register(registry, *setup)
    with Discovery(registry) as d, pytest.raises(NoInstanceAvailableError) as err:
        d.select("svc", "1.0.0")
    assert "svc" in str(err.value) and "1.0.0" in str(err.value) and reason in str(err.value)
    assert (err.value.service, err.value.version, err.value.reason) == ("svc", "1.0.0", reason)


def test_describe_says_why_nothing_is_available_and_stats_hold_only_figures(registry: Registry) -> None:
    register(registry, inst(0, enabled=False), inst(1, weight=0))
    with Discovery(registry) as d:
        with pytest.raises(NoInstanceAvailableError):
            d.select("svc", "1.0.0")
        status = status_of(d)
        stats = d.stats()
    assert status["unavailable_reason"] == "all 2 instances are disabled or have weight 0"
    assert status["panic"] is False and status["candidates"] == 0
    assert set(stats) == {"counters", "gauges", "histograms"}
    view = {"service": "svc", "version": "1.0.0"}
    assert stats["gauges"]["service_candidates"] == [{"labels": view, "value": 0}]
    enabled = {e["labels"]["instance_id"]: e["value"] for e in stats["gauges"]["instance_enabled"]}
    assert enabled == {"i000": 0, "i001": 1}
    for section in stats.values():
        for entries in section.values():
            assert all(isinstance(e["value"], (int, float)) for e in entries)


def ids_served(d: Discovery, version: Optional[str] = "1.0.0") -> Set[str]:
    return {i.id for i in d.instances("svc", version)}


def test_changes_reach_the_picks(registry: Registry) -> None:
    register(registry, inst(0))
    with Discovery(registry) as d:
        assert d.select("svc", "1.0.0").id == "i000"
        registry.register(inst(1))
        registry.deregister(inst(0))
        wait_until(lambda: ids_served(d) == {"i001"})
        assert {d.select("svc", "1.0.0").id for _ in range(10)} == {"i001"}
        registry.update_service(inst(1, enabled=False))
        wait_until(lambda: not ids_served(d))
        with pytest.raises(NoInstanceAvailableError, match="disabled"):
            d.select("svc", "1.0.0")


def test_version_none_spans_versions(registry: Registry) -> None:
    register(registry, inst(0), inst(1, version="2.0.0"))
    with Discovery(registry) as d:
        assert {d.select("svc").version for _ in range(10)} == {"1.0.0", "2.0.0"}


def test_consistent_hash_routes_by_key(registry: Registry) -> None:
    register(registry, *insts(5))
    with Discovery(registry, balancer="consistent_hash") as d:
        owners = {k: d.select("svc", "1.0.0", key=k).id for k in map(str, range(100))}
        assert owners == {k: d.select("svc", "1.0.0", key=k).id for k in map(str, range(100))}
        assert len(set(owners.values())) > 1


def test_a_snapshot_arriving_mid_traffic_under_16_threads(registry: Registry) -> None:
    old, new = insts(4), [inst(n) for n in range(10, 14)]
    new_ids = {i.id for i in new}
    register(registry, *old)
    stop, switched, settled = threading.Event(), threading.Event(), threading.Event()
    errors: List[BaseException] = []
    got_new = [False] * 16
    after_settled: List[List[str]] = [[] for _ in range(16)]
    with Discovery(registry, balancer="p2c") as d:
        d.select("svc", "1.0.0")

        def worker(n: int) -> None:
            try:
                while not stop.is_set():
                    was_settled = settled.is_set()
                    with d.pick("svc", "1.0.0") as chosen:
                        if was_settled:
                            after_settled[n].append(chosen.id)
                        elif switched.is_set() and chosen.id in new_ids:
                            got_new[n] = True
            except BaseException as exc:  # reported by the test
                errors.append(exc)

        threads = [threading.Thread(target=worker, args=(n,)) for n in range(16)]
        for t in threads:
            t.start()
        try:
            register(registry, *new)
            for i in old:
                registry.deregister(i)
            switched.set()
            # Picks never wait for a refresh: a thread may use the old set until the one
            # refreshing thread (a picking thread) has swapped it, then only the new one.
            wait_until(lambda: all(got_new), timeout=20)
            wait_until(lambda: {s["id"] for s in status_of(d)["instances"]} == new_ids, timeout=20)
            settled.set()
            wait_until(lambda: all(len(a) >= 20 for a in after_settled), timeout=20)
        finally:
            stop.set()
            for t in threads:
                t.join(10)
        assert not errors
        assert set().union(*after_settled) <= new_ids
        assert {i.id for i in d.instances("svc", "1.0.0")} == new_ids
        stats = status_of(d)
        assert all(s["calls"] == s["picks"] for s in stats["instances"])


def test_pick_reports_latency_errors_and_in_flight(registry: Registry) -> None:
    register(registry, *insts(2))
    with Discovery(registry, balancer="least_requests") as d:
        with d.pick("svc", "1.0.0") as first:
            # While a call to ``first`` is in flight, least_requests picks the other one.
            assert d.select("svc", "1.0.0").id != first.id
        with pytest.raises(KeyError), d.pick("svc", "1.0.0"):
            raise KeyError("boom")
        d.report(first, latency=0.25, error=True)
        d.report(first, latency=0.25)
        counters = d.stats()["counters"]
    assert sum(e["value"] for e in counters["instance_errors"]) == 2
    assert sum(e["value"] for e in counters["instance_calls"]) == 4
    assert sum(e["value"] for e in counters["instance_picks"]) == 3


def test_report_rejects_bad_arguments(registry: Registry) -> None:
    register(registry, inst(0))
    with Discovery(registry) as d:
        i = d.select("svc", "1.0.0")
        with pytest.raises(ValueError, match="latency"):
            d.report(i, latency=-1)
        with pytest.raises(TypeError, match="error"):
            d.report(i, latency=0.1, error="yes")  # type: ignore[arg-type]


def test_bad_options_fail_at_construction(registry: Registry) -> None:
    with pytest.raises(ValueError, match="unknown balancer"):
        Discovery(registry, balancer="fastets")
    with pytest.raises(TypeError, match="filters"):
        Discovery(registry, filters=[{"zone": "a"}])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="protect_empty"):
        Discovery(registry, protect_empty=-1)


def test_bad_service_name_is_rejected_before_subscribing(registry: Registry) -> None:
    with Discovery(registry) as d, pytest.raises(ValueError, match="service"):
        d.select("bad/name")


def test_close_ends_subscriptions_and_threads(registry: Registry) -> None:
    register(registry, inst(0))
    d = Discovery(registry)
    d.select("svc", "1.0.0")
    d.select("svc")
    subs = [v._sub for v in d._views.values()]
    registry.unsubscribe("svc")  # the subscription is lost: the resubscribe thread starts
    with pytest.raises(NoInstanceAvailableError):
        d.select("nothing-here")
    d.select("svc")
    wait_until(lambda: d.describe()["services"][1]["subscribed"])
    assert [t for t in threading.enumerate() if t.name == "fyerreg-discovery-resubscribe"]
    d.close()
    d.close()  # idempotent
    assert all(s is not None and s.closed for s in subs)
    assert all(not v.describe()["subscribed"] for v in d._views.values())
    assert not [t for t in threading.enumerate() if t.name.startswith("fyerreg-discovery")]
    with pytest.raises(RegistryClosedError):
        d.select("svc", "1.0.0")
    assert not registry.closed  # the registry belongs to the caller


def test_a_lost_subscription_keeps_the_set_and_is_reopened(registry: Registry) -> None:
    register(registry, *insts(2))
    with Discovery(registry) as d:
        assert d.select("svc", "1.0.0")
        registry.unsubscribe("svc", "1.0.0")
        assert d.select("svc", "1.0.0").id in {"i000", "i001"}  # served from the last set
        wait_until(lambda: d.describe()["services"][0]["subscribed"])
        registry.register(inst(7))
        wait_until(lambda: "i007" in ids_served(d))


def test_registry_closed_underneath_keeps_serving_the_last_set(backend: Registries, registry: Registry) -> None:
    register(backend.new(), inst(0))  # a provider that stays up
    with Discovery(registry) as d:
        d.select("svc", "1.0.0")
        registry.close()
        assert d.select("svc", "1.0.0").id == "i000"  # this pick notices the end
        wait_until(lambda: d._views[("svc", "1.0.0")].orphaned)
        assert d.select("svc", "1.0.0").id == "i000"


def test_disabled_status_round_trip(registry: Registry) -> None:
    register(registry, inst(0), inst(1))
    with Discovery(registry) as d:
        d.select("svc", "1.0.0")
        registry.update_service(inst(0).replace(status=Status.DISABLED))
        wait_until(lambda: ids_served(d) == {"i001"})
        assert {d.select("svc", "1.0.0").id for _ in range(6)} == {"i001"}
        assert status_of(d)["candidates"] == 1
