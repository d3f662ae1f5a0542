"""Instance filters: metadata match, zone preference with its fallback, composition."""

from __future__ import annotations

import pytest

from fyerreg import Discovery, MemoryRegistry, match_metadata, prefer_zone, where
from fyerreg.discovery import chain
from fyerreg.errors import NoInstanceAvailableError

from .util import POLICY, FakeClock, fail, inst, picks, register


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
