"""A three-member cluster: member-list sync, failover from a killed member and from a frozen one."""

from __future__ import annotations

import logging
from typing import List

import pytest

from fyerreg.testing import EtcdCluster, EtcdServer
from tests.helpers import ids, next_snapshot, wait_until

from .support import SERVICE, make_instance

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


@pytest.fixture
def cluster(etcd_cluster: EtcdCluster) -> List[EtcdServer]:
    """The members of the session's three-member cluster (healed after the test)."""
    return etcd_cluster.members


def test_members_learned_by_auto_sync_take_over_when_the_only_configured_one_dies(cluster, registries, caplog):
    first = cluster[0]
    registry = registries.new(endpoints=first.endpoints, auto_sync_interval=0.3, ttl=3, dial_timeout=2)
    watcher = registries.new(endpoints=first.endpoints, auto_sync_interval=0.3, dial_timeout=2)
    registry.register(make_instance("before"))
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["before"])
    # Both learn the other members (from the member list) before the only one they were given dies.
    everyone = {m.endpoint for m in cluster}
    for reg in (registry, watcher):
        wait_until(lambda reg=reg: set(reg._client._pool.netlocs()) == everyone, timeout=10)

    first.kill()
    with caplog.at_level(logging.WARNING, logger="fyerreg.registry.etcd"):
        registry.register(make_instance("after"))
    next_snapshot(sub, lambda s: ids(s) == ["after", "before"], timeout=20)
    assert registry.registration_state(make_instance("before")).registered
    failovers = [r for r in caplog.records if r.getMessage().startswith("etcd failover")]
    assert any(r.previous_endpoint == first.endpoint for r in failovers)  # type: ignore[attr-defined]


def test_a_frozen_member_is_left_for_a_live_one(cluster, registries):
    first = cluster[0]
    everyone = [m.endpoint for m in cluster]
    # Every member configured, the first one in use until it freezes.
    watcher = registries.new(endpoints=[first.endpoint, *everyone[1:]], dial_timeout=2, dial_keepalive=5)
    watcher._client._pool.use(first.endpoint)
    sub = watcher.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    writer = registries.new(endpoints=everyone[1:], dial_timeout=2)
    first.pause()
    try:
        writer.register(make_instance("during-freeze"))
        # keepalive 5 s + ping timeout 2 s, then a watch on a live member.
        next_snapshot(sub, lambda s: ids(s) == ["during-freeze"], timeout=25)
    finally:
        first.resume()
