"""Outlier ejection, its growth, cap and return, max_percent, panic; filters with fallback."""

from __future__ import annotations

import collections
from typing import Counter

import pytest

from fyerreg import Discovery, Ejection, MemoryRegistry, match_metadata, prefer_zone, where
from fyerreg.discovery import chain
from fyerreg.errors import NoInstanceAvailableError

from .test_discovery import register, status_of
from .util import FakeClock, inst, insts

POLICY = Ejection(consecutive_failures=3, base_time=10.0, max_time=25.0, max_percent=50.0)


def fail(d: Discovery, instance_id: str, times: int) -> None:
    target = next(i for i in d.instances("svc", "1.0.0") if i.id == instance_id)
    for _ in range(times):
        d.report(target, latency=0.01, error=RuntimeError("refused"))


def picks(d: Discovery, n: int = 60) -> Counter[str]:
    return collections.Counter(d.select("svc", "1.0.0").id for _ in range(n))


def ejected(d: Discovery) -> set:
    return {s["id"] for s in status_of(d)["instances"] if s["ejected"]}


def test_consecutive_failures_eject_and_the_instance_returns(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(4))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        fail(d, "i001", 2)
        d.report(inst(1), latency=0.01)  # a success resets the streak
        fail(d, "i001", 2)
        assert "i001" in picks(d)
        fail(d, "i001", 1)
        assert ejected(d) == {"i001"} and "i001" not in picks(d)
        clock.advance(9.9)
        assert "i001" not in picks(d)
        clock.advance(0.2)
        assert "i001" in picks(d) and ejected(d) == set()
        counters = d.stats()["counters"]
        assert counters["discovery_ejections"][0]["value"] == 1
        assert counters["discovery_returns"][0]["value"] == 1


def test_ejection_time_grows_with_repeats_and_is_capped(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(4))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        durations = []
        for _ in range(4):
            fail(d, "i002", 3)
            start = clock.now
            while "i002" in ejected(d):
                clock.advance(1.0)
                picks(d, 1)
            durations.append(round(clock.now - start))
        assert durations == [10, 20, 25, 25]  # base x repeats, capped at max_time
        # Time back in rotation forgives past ejections: one per base_time.
        clock.advance(30.0)
        fail(d, "i002", 3)
        start = clock.now
        while "i002" in ejected(d):
            clock.advance(1.0)
            picks(d, 1)
        assert round(clock.now - start) == 10


def test_at_most_max_percent_are_ejected(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(4))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        for n in range(4):
            fail(d, f"i00{n}", 3)
        assert ejected(d) == {"i000", "i001"}
        assert set(picks(d)) == {"i002", "i003"}


def test_panic_picks_among_ejected_when_all_are(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, inst(0))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        fail(d, "i000", 3)
        assert ejected(d) == {"i000"}  # one may always be ejected
        assert d.select("svc", "1.0.0").id == "i000"
        assert status_of(d)["panic"] is True
    with Discovery(mem_registry, ejection=POLICY, clock=clock, panic=False) as d:
        fail(d, "i000", 3)
        with pytest.raises(NoInstanceAvailableError, match="ejected"):
            d.select("svc", "1.0.0")


def test_ejection_can_be_disabled(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, *insts(2))
    with Discovery(mem_registry, ejection=None) as d:
        fail(d, "i000", 50)
        assert set(picks(d)) == {"i000", "i001"}


def test_pick_context_manager_failures_eject(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(2))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        for _ in range(6):
            with pytest.raises(ConnectionError), d.pick("svc", "1.0.0"):
                raise ConnectionError("refused")
        assert len(ejected(d)) == 1


def test_failure_predicate_decides_what_counts(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, inst(0), inst(1))
    with Discovery(mem_registry, ejection=POLICY, clock=clock,
                   failure=lambda exc: not isinstance(exc, KeyError)) as d:
        for _ in range(6):
            with pytest.raises(KeyError), d.pick("svc", "1.0.0"):
                raise KeyError("not found is an answer, not a failure")
        assert ejected(d) == set()


def test_metadata_match_filter(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, inst(0, zone="a"), inst(1, zone="b"), inst(2, zone="a"))
    with Discovery(mem_registry, filters=[match_metadata(zone="a")]) as d:
        assert set(picks(d)) == {"i000", "i002"}
    with Discovery(mem_registry, filters=[match_metadata({"zone": "c"})]) as d, \
            pytest.raises(NoInstanceAvailableError, match=r"filters .* matched none of the 3"):
        d.select("svc", "1.0.0")


def test_zone_preference_falls_back_when_the_zone_is_unhealthy(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, inst(0, zone="a"), inst(1, zone="b"), inst(2, zone="b"), inst(3, zone="c"))
    with Discovery(mem_registry, filters=[prefer_zone("a")], ejection=POLICY, clock=clock) as d:
        assert set(picks(d)) == {"i000"}
        fail(d, "i000", 3)
        assert set(picks(d)) == {"i001", "i002", "i003"}
        clock.advance(POLICY.base_time)
        assert set(picks(d)) == {"i000"}
        mem_registry.update_service(inst(0, zone="a", enabled=False))
        assert set(picks(d)) == {"i001", "i002", "i003"}


def test_filters_compose(mem_registry: MemoryRegistry) -> None:
    register(mem_registry, inst(0, zone="a"), inst(1, zone="a", weight=50), inst(2, zone="b", weight=50))
    light = where(lambda i: i.weight < 100, name="light")
    with Discovery(mem_registry, filters=[prefer_zone("a"), light]) as d:
        assert set(picks(d)) == {"i001"}
    with Discovery(mem_registry, filters=[chain(light, prefer_zone("b"))]) as d:
        assert set(picks(d)) == {"i002"}


def test_ejection_state_survives_unrelated_snapshot_changes(mem_registry: MemoryRegistry, clock: FakeClock) -> None:
    register(mem_registry, *insts(3))
    with Discovery(mem_registry, ejection=POLICY, clock=clock) as d:
        fail(d, "i000", 3)
        mem_registry.register(inst(5))
        assert set(picks(d)) == {"i001", "i002", "i005"}
        mem_registry.deregister(inst(0))
        picks(d, 1)  # the view sees it gone and forgets its health
        mem_registry.register(inst(0))  # re-registered: a new life, not ejected
        assert "i000" in picks(d)
