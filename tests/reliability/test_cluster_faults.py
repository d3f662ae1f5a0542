"""A three-member etcd cluster under faults: killed members, a killed leader under churn, a hung
member, lost quorum, a member added while running. Each test checks that no registration is
lost, every subscriber ends with the final state and no thread is left behind."""

from __future__ import annotations

import random
import threading
import time

import pytest

from fyerreg import RegistryUnavailableError
from fyerreg.discovery import Discovery
from fyerreg.testing import EtcdCluster
from tests.helpers import ids, next_snapshot, wait_until
from tests.registry.etcd.support import SERVICE, make_instance
from tools.soak import Churn

from .support import Background, connected_member, keys_under, knows_endpoint

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

VERSION = "v1"


def prefix_of(namespace: str, version: str = VERSION) -> str:
    return f"/{namespace}/services/{SERVICE}/{version}/"


def test_killing_the_member_in_use_fails_over_to_the_others(etcd_cluster: EtcdCluster, cluster_registries):
    registry = cluster_registries.new(ttl=3)
    sub = registry.subscribe(SERVICE, VERSION)
    assert sub.get(timeout=5) == []
    a, b = make_instance("a"), make_instance("b", port=8001)
    registry.register(a)
    next_snapshot(sub, lambda s: ids(s) == ["a"])

    victim = connected_member(etcd_cluster, registry)
    etcd_cluster.kill(victim)

    registry.register(b, timeout=10)
    assert ids(registry.list_services(SERVICE, VERSION, timeout=10)) == ["a", "b"]
    assert ids(next_snapshot(sub, lambda s: ids(s) == ["a", "b"], timeout=15)) == ["a", "b"]
    again = registry.subscribe(SERVICE, VERSION, timeout=10)
    assert ids(again.get(timeout=1)) == ["a", "b"]
    assert connected_member(etcd_cluster, registry) is not victim
    state = registry.registration_state(a)
    assert state.registered and state.reregistrations == 0
    survivors = [m.endpoint for m in etcd_cluster.running]
    assert keys_under(survivors, prefix_of(cluster_registries.namespace)) == ["a", "b"]


def _churn_until(churn: Churn, stop: threading.Event) -> None:
    while not stop.is_set():
        churn.step()
        stop.wait(0.01)  # pacing: eight threads must not saturate a two-core machine


def test_killing_the_leader_under_churn_leaves_every_subscriber_with_the_final_set(
    etcd_cluster: EtcdCluster, cluster_registries
):
    writers = [cluster_registries.new(ttl=3) for _ in range(4)]
    watchers = [cluster_registries.new() for _ in range(2)]
    subs = [watchers[0].subscribe(SERVICE, VERSION), watchers[1].subscribe(SERVICE, VERSION),
            watchers[1].subscribe(SERVICE)]
    churns = [Churn(writers[n % 4], f"t{n}", random.Random(n), service=SERVICE, version=VERSION, low=1, high=4,
                    port_base=9000 + n * 100)
              for n in range(8)]
    stop = threading.Event()
    threads = [threading.Thread(target=_churn_until, args=(c, stop), name=f"test-churn-{n}")
               for n, c in enumerate(churns)]
    for thread in threads:
        thread.start()
    try:
        wait_until(lambda: all(c.succeeded >= 5 for c in churns), timeout=30)
        old = etcd_cluster.leader()
        etcd_cluster.kill(old)
        assert etcd_cluster.leader(timeout=20) is not old
        progress = [c.succeeded for c in churns]
        wait_until(lambda: all(c.succeeded >= p + 5 for c, p in zip(churns, progress)), timeout=30,
                   message="churn goes on after the leader died")
    finally:
        stop.set()
        for thread in threads:
            thread.join(30)
    assert all(c.settle(timeout=30) for c in churns), [c.dirty for c in churns]

    final = sorted(i for c in churns for i in c.final)
    for sub in subs:
        next_snapshot(sub, lambda s: ids(s) == final, timeout=15)
        later = sub.drain()
        assert later is None or ids(later) == final  # nothing stale arrives after the final state
    running = [m.endpoint for m in etcd_cluster.running]
    assert keys_under(running, prefix_of(cluster_registries.namespace)) == final
    assert ids(watchers[0].list_services(SERVICE, VERSION)) == final
    for churn in churns:
        for inst in churn.live.values():
            assert churn.registry.registration_state(inst).registered


def test_a_member_hung_longer_than_the_ttl_loses_no_registration(etcd_cluster: EtcdCluster, cluster_registries):
    ttl = 6
    # A heartbeat is due every ttl/3; on a frozen member gRPC's ping times out after ~2 s and
    # the heartbeat is retried on another member at once: 6/3 + 2 + retry < 6, with a margin
    # for a loaded machine.
    registry = cluster_registries.new(ttl=ttl, dial_timeout=2.0)
    instances = [make_instance(f"i{n}", port=8000 + n) for n in range(3)]
    for inst in instances:
        registry.register(inst)
    watcher = cluster_registries.new()
    sub = watcher.subscribe(SERVICE, VERSION)
    next_snapshot(sub, lambda s: len(s) == 3)

    hung = connected_member(etcd_cluster, registry)
    others = [m.endpoint for m in etcd_cluster.members if m is not hung]
    prefix = prefix_of(cluster_registries.namespace)
    etcd_cluster.stop(hung)
    try:
        end = time.monotonic() + ttl + 1  # the fault lasts this long; we watch etcd meanwhile
        while time.monotonic() < end:
            assert keys_under(others, prefix) == ["i0", "i1", "i2"]
            time.sleep(0.2)
    finally:
        etcd_cluster.cont(hung)

    assert registry.stats()["counters"]["lease_losses"] == 0
    for inst in instances:
        state = registry.registration_state(inst)
        assert state.registered and state.reregistrations == 0
    assert ids(registry.list_services(SERVICE, VERSION)) == ["i0", "i1", "i2"]
    latest = sub.drain()
    assert latest is None or ids(latest) == ["i0", "i1", "i2"]


def test_without_quorum_calls_fail_in_time_discovery_serves_the_last_set_and_all_recovers(
    etcd_cluster: EtcdCluster, cluster_registries
):
    registry = cluster_registries.new(ttl=3, dial_timeout=2.0)
    watcher = cluster_registries.new(dial_timeout=2.0)
    a, b, c = (make_instance(n, port=8000 + i) for i, n in enumerate("abc"))
    registry.register(a)
    registry.register(b)
    with Discovery(watcher) as discovery:
        wait_until(lambda: ids(discovery.instances(SERVICE, VERSION)) == ["a", "b"])

        down = etcd_cluster.members[1:]
        for member in down:
            etcd_cluster.kill(member)
        timeout = 2.0
        started = time.monotonic()
        calls = [Background(call) for call in (
            lambda: registry.register(c, timeout=timeout),
            lambda: registry.list_services(SERVICE, VERSION, timeout=timeout),
            lambda: watcher.subscribe(SERVICE, VERSION, timeout=timeout),
            lambda: registry.update_service(a.replace(weight=5), timeout=timeout),
        )]
        # Longer than the ttl without quorum: discovery keeps answering from its last set.
        picked = set()
        while time.monotonic() - started < 4:
            picked.add(discovery.select(SERVICE, VERSION).id)
            assert ids(discovery.instances(SERVICE, VERSION)) == ["a", "b"]
            time.sleep(0.05)
        assert picked == {"a", "b"}
        for call in calls:
            # Each call's own timeout, plus slack for a loaded machine: failing, not hanging.
            with pytest.raises(RegistryUnavailableError):
                call.result(within=max(0.0, started + timeout + 3 - time.monotonic()))

        for member in down:
            etcd_cluster.restart(member, wait=False)
        etcd_cluster.wait_healthy(timeout=30)

        registry.register(c, timeout=10)
        wait_until(lambda: ids(discovery.instances(SERVICE, VERSION)) == ["a", "b", "c"], timeout=15)
    assert all(registry.registration_state(i).registered for i in (a, b, c))
    assert keys_under(etcd_cluster.endpoints, prefix_of(cluster_registries.namespace)) == ["a", "b", "c"]


def test_a_member_added_while_running_is_found_by_auto_sync(cluster_registries):
    # A cluster of its own: at the end only the added member is left in it.
    cluster = EtcdCluster(3, name="autosync")
    cluster.start()
    try:
        first = cluster.members[0]
        registry = cluster_registries.new(endpoints=[first.endpoint], auto_sync_interval=0.5, dial_timeout=2.0)
        watcher = cluster_registries.new(endpoints=[first.endpoint], auto_sync_interval=0.5, dial_timeout=2.0)
        sub = watcher.subscribe(SERVICE, VERSION)
        assert sub.get(timeout=5) == []
        registry.register(make_instance("before"))
        next_snapshot(sub, lambda s: ids(s) == ["before"])

        added = cluster.add_member()
        wait_until(lambda: knows_endpoint(registry, added.endpoint) and knows_endpoint(watcher, added.endpoint),
                   timeout=15, message="both registries learn the new member")
        for member in list(cluster.members[:3]):  # every member the registries were told about or found first
            cluster.remove_member(member)
        assert cluster.members == [added]

        registry.register(make_instance("after", port=8001), timeout=15)
        next_snapshot(sub, lambda s: ids(s) == ["after", "before"], timeout=20)
        assert ids(registry.list_services(SERVICE, VERSION, timeout=10)) == ["after", "before"]
        assert keys_under([added.endpoint], prefix_of(cluster_registries.namespace)) == ["after", "before"]
    finally:
        cluster_registries.close()
        cluster.close()

