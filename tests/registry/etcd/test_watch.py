"""Subscriptions on etcd: versions, batching, independence, conflation."""

from __future__ import annotations

import json

import pytest

from tests.helpers import fyerreg_threads, ids, next_snapshot, wait_until

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd


def test_version_none_watches_every_version_and_a_version_only_its_own(registries):
    registry = registries.new()
    every, only_v2 = registry.subscribe(SERVICE), registry.subscribe(SERVICE, "v2")
    assert every.get(timeout=5) == [] and only_v2.get(timeout=5) == []
    registry.register(make_instance("a", version="v1"))
    registry.register(make_instance("a", version="v2"))
    registry.register(make_instance("b", version="v2"))
    both = next_snapshot(every, lambda s: len(s) == 3)
    assert [(i.id, i.version) for i in both] == [("a", "v1"), ("a", "v2"), ("b", "v2")]
    assert [(i.id, i.version) for i in next_snapshot(only_v2, lambda s: len(s) == 2)] == [("a", "v2"), ("b", "v2")]
    assert {"fyerreg-watch-etcd-svc-*", "fyerreg-watch-etcd-svc-v2"} <= set(fyerreg_threads())


def test_one_snapshot_per_watch_response(registries, etcd_client, namespace):
    registry = registries.new()
    sub = registry.subscribe(SERVICE)
    first = sub.get(timeout=5)
    prefix = f"/{namespace}/services/{SERVICE}/v1"
    record = {"service": SERVICE, "version": "v1", "address": "10.0.0.1:1"}
    # One transaction writing three records is one watch response: one snapshot, not three.
    etcd_client.transaction(compare=[], success=[
        etcd_client.transactions.put(f"{prefix}/{n}", json.dumps({**record, "id": n})) for n in ("x", "y", "z")
    ], failure=[])
    snap = next_snapshot(sub)
    assert ids(snap) == ["x", "y", "z"] and snap.revision > first.revision
    registry.register(make_instance("marker"))
    assert ids(next_snapshot(sub)) == ["marker", "x", "y", "z"]
    assert registry.stats()["counters"]["snapshots_delivered"] == 3


def test_unsubscribe_and_close_end_the_watch_thread_with_the_sentinel(registries):
    registry = registries.new()
    kept, ended = registry.subscribe(SERVICE, "v1"), registry.subscribe(SERVICE)
    registry.unsubscribe(SERVICE)
    assert ended.get(timeout=5) == [] and ended.get(timeout=5) is None
    wait_until(lambda: "fyerreg-watch-etcd-svc-*" not in fyerreg_threads(), timeout=5)
    kept.close()
    wait_until(lambda: "fyerreg-watch-etcd-svc-v1" not in fyerreg_threads(), timeout=5)
    assert registry.stats()["gauges"]["subscriptions"] == 0


def test_a_slow_consumer_gets_the_latest_state_and_conflation_is_counted(registries):
    registry = registries.new()
    sub = registry.subscribe(SERVICE, maxsize=1)
    for n in range(5):
        registry.register(make_instance(f"i{n}"))
    snap = next_snapshot(sub, lambda s: len(s) == 5)
    assert ids(snap) == [f"i{n}" for n in range(5)]
    assert registry.stats()["counters"]["snapshots_conflated"] >= 1
