"""Every subscription of a registry on one etcd watch stream: counted by etcd itself, and faults on it.

etcd's gauges ``etcd_debugging_mvcc_watch_stream_total`` (open watch streams) and
``etcd_debugging_mvcc_watcher_total`` (watches) are read from its ``/metrics`` page, on a
private server so that no other test's streams count.
"""

from __future__ import annotations

import threading
import urllib.request
from typing import Dict, List

import pytest

from fyerreg import Subscription
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import EtcdServer
from tests.helpers import ids, make_instance, no_fyerreg_thread_left, wait_until

pytestmark = pytest.mark.etcd


def etcd_gauge(server: EtcdServer, name: str) -> float:
    with urllib.request.urlopen(server.client_url + "/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith(name + " "):
                return float(line.split()[1])
    raise AssertionError(f"etcd publishes no {name}")


def streams_and_watchers(server: EtcdServer) -> List[float]:
    return [etcd_gauge(server, "etcd_debugging_mvcc_watch_stream_total"),
            etcd_gauge(server, "etcd_debugging_mvcc_watcher_total")]


def registry_on(server: EtcdServer, **options: object) -> EtcdRegistry:
    settings: Dict[str, object] = {"ttl": 5, "dial_timeout": 3.0, "retry_interval": 0.2, **options}
    return EtcdRegistry(endpoints=server.endpoints, namespace="streams", **settings)  # type: ignore[arg-type]


def test_a_thousand_subscriptions_share_one_watch_stream_and_one_thread_each(etcd_server: EtcdServer):
    with no_fyerreg_thread_left("registry.close"):
        registry = registry_on(etcd_server)
        try:
            before = threading.active_count()
            subs = [registry.subscribe(f"svc-{n}", "v1") for n in range(1000)]
            assert all(sub.get(timeout=10) == [] for sub in subs)
            assert wait_until(lambda: streams_and_watchers(etcd_server) == [1, 1000], timeout=10)
            # One thread per subscription (blocked on its own inbox) plus the stream's reader
            # and gRPC's request sender: no second thread per subscription.
            assert threading.active_count() - before <= 1000 + 5
            registry.register(make_instance("a", service="svc-999"))
            assert ids(subs[999].get(timeout=10)) == ["a"]
        finally:
            registry.close()
    assert wait_until(lambda: streams_and_watchers(etcd_server) == [0, 0], timeout=10)


def test_cancelling_one_subscription_leaves_the_others_on_the_stream_delivering(etcd_server: EtcdServer):
    registry = registry_on(etcd_server)
    try:
        subs: Dict[str, Subscription] = {name: registry.subscribe(name, "v1") for name in ("a", "b", "c")}
        for sub in subs.values():
            assert sub.get(timeout=10) == []
        subs["b"].close()
        assert wait_until(lambda: streams_and_watchers(etcd_server) == [1, 2], timeout=10)
        for name in ("a", "b", "c"):
            registry.register(make_instance("x", service=name))
        assert ids(subs["a"].get(timeout=10)) == ["x"]
        assert ids(subs["c"].get(timeout=10)) == ["x"]
        assert subs["b"].get(timeout=5) is None  # the end, and nothing after it
        resubscribed = registry.subscribe("b", "v1")
        assert ids(resubscribed.get(timeout=10)) == ["x"]
        assert wait_until(lambda: streams_and_watchers(etcd_server) == [1, 3], timeout=10)
    finally:
        registry.close()


def test_after_etcd_is_killed_and_restarted_every_subscription_matches_etcd(etcd_server: EtcdServer):
    services = [f"svc-{n}" for n in range(200)]
    writer, reader = registry_on(etcd_server, ttl=30), registry_on(etcd_server)
    try:
        for name in services[:100]:
            writer.register(make_instance("old", service=name))
        subs = {name: reader.subscribe(name, "v1") for name in services}
        latest = {name: ids(sub.get(timeout=10)) for name, sub in subs.items()}
        assert latest == {name: (["old"] if n < 100 else []) for n, name in enumerate(services)}
        etcd_server.kill()
        etcd_server.start()
        # Changes after the restart, to half the services that had a record and half that had none.
        for name in services[50:150]:
            writer.register(make_instance("new", service=name))
        for name in services[:25]:
            writer.deregister(make_instance("old", service=name))
        expected = {name: sorted((["old"] if 25 <= n < 100 else []) + (["new"] if 50 <= n < 150 else []))
                    for n, name in enumerate(services)}

        def caught_up() -> bool:
            for name, sub in subs.items():
                snap = sub.drain()
                if snap is not None:
                    latest[name] = ids(snap)
            return latest == expected

        wait_until(caught_up, timeout=30, message="every subscription's last snapshot equals etcd's state")
        assert wait_until(lambda: streams_and_watchers(etcd_server) == [1, 200], timeout=10)
    finally:
        reader.close()
        writer.close()
