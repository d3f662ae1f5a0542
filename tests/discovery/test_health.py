"""Outlier ejection, its growth, cap and return, max_percent, panic."""

from __future__ import annotations

import pytest

from fyerreg import Discovery, MemoryRegistry
from fyerreg.errors import NoInstanceAvailableError

from .util import POLICY, FakeClock, fail, inst, insts, picks, register, status_of


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
