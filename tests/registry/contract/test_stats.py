"""Contract: every backend's stats() has one layout and the same counter and gauge names."""

from __future__ import annotations

from typing import Any, Dict

import pytest

from tests.helpers import next_snapshot, wait_until
from tests.registry.contract.support import SERVICE, make_instance

COUNTERS = {
    "registrations", "deregistrations", "takeovers", "lease_losses", "reregistrations", "watch_reconnects",
    "compaction_recoveries", "snapshots_delivered", "snapshots_conflated", "invalid_records_skipped",
    "cache_hits", "cache_stale_reads",
}
GAUGES = {"instances_registered", "subscriptions", "cached_services"}


def _numbers(section: Dict[str, Any]) -> Dict[str, float]:
    assert all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in section.values()), section
    return dict(section)


def test_stats_name_the_same_counters_and_gauges_on_every_backend(backend):
    registry = backend.new()
    fresh = registry.stats()
    assert set(fresh) == {"counters", "gauges", "histograms"}
    assert set(_numbers(fresh["counters"])) == COUNTERS
    assert set(_numbers(fresh["gauges"])) == GAUGES
    assert all(v == 0 for v in fresh["counters"].values())

    registry.register(make_instance("a"))
    sub = registry.subscribe(SERVICE)
    next_snapshot(sub, lambda s: len(s) == 1)
    busy = registry.stats()
    assert set(busy["counters"]) == COUNTERS and set(busy["gauges"]) == GAUGES
    assert busy["counters"]["registrations"] == 1
    assert busy["counters"]["snapshots_delivered"] >= 1
    assert (busy["gauges"]["instances_registered"], busy["gauges"]["subscriptions"]) == (1, 1)

    sub.close()
    registry.deregister(make_instance("a"))
    done = registry.stats()
    assert done["counters"]["deregistrations"] == 1
    assert (done["gauges"]["instances_registered"], done["gauges"]["subscriptions"]) == (0, 0)


@pytest.mark.chosen_ids
def test_taking_over_an_instance_of_another_registry_is_counted(backend):
    first, second = backend.new(), backend.new()
    first.register(make_instance("shared"))
    second.register(make_instance("shared", port=9000))
    assert second.stats()["counters"]["takeovers"] == 1
    assert first.stats()["counters"]["takeovers"] == 0
    wait_until(lambda: [i.address for i in first.list_services(SERVICE)] == ["127.0.0.1:9000"])
