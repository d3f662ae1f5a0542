"""The list cache on etcd: its own writes, other registries' writes, staleness while etcd is down, idle entries."""

from __future__ import annotations

import logging

import pytest

from fyerreg import RegistryUnavailableError
from tests.helpers import fyerreg_threads, ids, wait_until

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd


def test_cached_list_reads_its_own_writes(registries):
    registry = registries.new(cache=(True, 60))
    assert registry.list_services(SERVICE) == []
    # The cache's watch is up (a loaded machine may take a while): from here on lists are hits.
    wait_until(lambda: registry.list_services(SERVICE) == [] and registry.stats()["counters"]["cache_hits"] > 0)
    for n in range(3):
        registry.register(make_instance(f"c{n}"))
        assert ids(registry.list_services(SERVICE)) == [f"c{i}" for i in range(n + 1)]
    registry.deregister(make_instance("c0"))
    assert ids(registry.list_services(SERVICE)) == ["c1", "c2"]
    assert registry.stats()["counters"]["cache_hits"] >= 3
    assert "fyerreg-cache-etcd-svc-*" in fyerreg_threads()


def listed_from_cache(registry, version=None):
    """List once; True when the cache answered (a hit), not a direct read."""
    hits = registry.stats()["counters"]["cache_hits"]
    registry.list_services(SERVICE, version)
    return registry.stats()["counters"]["cache_hits"] == hits + 1


def test_cached_list_of_a_version_stays_a_hit_while_this_registry_writes_another(registries):
    registry = registries.new(cache=(True, 60))
    registry.register(make_instance("a", version="v1"))
    wait_until(lambda: listed_from_cache(registry, "v1"), message="the v1 watch is up")
    registry.register(make_instance("b", version="v2"))
    registry.update_service(make_instance("b", version="v2", weight=3))
    # The v2 writes are outside the v1 watch: nothing there for a v1 list to wait for.
    assert all(listed_from_cache(registry, "v1") for _ in range(5))
    assert ids(registry.list_services(SERVICE, "v1")) == ["a"]
    # A list of every version does show them, at once.
    assert [(i.id, i.weight) for i in registry.list_services(SERVICE)] == [("a", 100), ("b", 3)]


def test_cached_list_is_a_hit_again_after_etcd_comes_back_wiped(etcd_server, registries):
    registry = registries.new(endpoints=etcd_server.endpoints, cache=(True, 60), ttl=3)
    inst = make_instance("w")
    registry.register(inst)
    for weight in range(1, 30):  # our last write far ahead of the revisions a fresh etcd starts from
        registry.update_service(inst.replace(weight=weight))
    wait_until(lambda: listed_from_cache(registry), message="the watch is up")
    etcd_server.wipe()
    etcd_server.start()
    # The keepalive registers it again on the empty etcd (ttl/3 + a round); the cache follows.
    wait_until(lambda: [(i.id, i.weight) for i in registry.list_services(SERVICE)] == [("w", 29)], timeout=3 + 5)
    wait_until(lambda: listed_from_cache(registry), timeout=5, message="lists are hits again")
    assert all(listed_from_cache(registry) for _ in range(5))


def test_cached_list_sees_other_registries_and_serves_stale_while_etcd_is_down(etcd_server, registries, caplog):
    other = registries.new(endpoints=etcd_server.endpoints)
    cached = registries.new(endpoints=etcd_server.endpoints, cache=(True, 60), max_retry=1, dial_timeout=1)
    uncached = registries.new(endpoints=etcd_server.endpoints, max_retry=1, dial_timeout=1)
    other.register(make_instance("o1"))
    assert ids(cached.list_services(SERVICE)) == ["o1"]
    other.register(make_instance("o2"))
    wait_until(lambda: ids(cached.list_services(SERVICE)) == ["o1", "o2"], timeout=5)

    etcd_server.stop()
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        # Until its watch notices, the cache answers as before; then from the stale copy.
        wait_until(lambda: ids(cached.list_services(SERVICE)) == ["o1", "o2"]
                   and cached.stats()["counters"]["cache_stale_reads"] >= 1, timeout=10)
        assert ids(cached.list_services(SERVICE)) == ["o1", "o2"]
    assert len([r for r in caplog.records if "serving the cached state" in r.getMessage()]) == 1
    with pytest.raises(RegistryUnavailableError):
        uncached.list_services(SERVICE)
    with pytest.raises(RegistryUnavailableError):
        cached.list_services("never-listed")

    etcd_server.start()
    other.deregister(make_instance("o1"))
    wait_until(lambda: ids(cached.list_services(SERVICE)) == ["o2"], timeout=15)


def test_idle_cache_entries_are_dropped(registries):
    registry = registries.new(cache=(True, 0.2))
    registry.list_services(SERVICE)
    assert "fyerreg-cache-etcd-svc-*" in fyerreg_threads()
    wait_until(lambda: (registry.list_services("other"), "fyerreg-cache-etcd-svc-*" not in fyerreg_threads())[1],
               timeout=5)
