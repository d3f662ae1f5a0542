"""Heartbeats that renew the lease without reading the record, a watch of its key vouching for it.

etcd's own counters tell what reached it: ``grpc_server_started_total`` for the ``Range``
method (every read) and the gauge ``etcd_debugging_mvcc_watcher_total`` (open watches),
from its ``/metrics`` page, on a server of this module's own so that no other test counts.
"""

from __future__ import annotations

import json
import urllib.request
from typing import Iterator, List

import pytest

from fyerreg import Instance
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import EtcdServer
from fyerreg.testing.client import raw_client
from tests.helpers import make_instance, no_fyerreg_thread_left, wait_until

pytestmark = pytest.mark.etcd

TTL = 3  # a 2 s lease, renewed every 2/3 s


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[EtcdServer]:
    with EtcdServer(data_dir=str(tmp_path_factory.mktemp("guard-etcd"))) as etcd:
        yield etcd


def metric(server: EtcdServer, name: str, labels: str = "") -> float:
    with urllib.request.urlopen(server.client_url + "/metrics", timeout=5) as page:
        for line in page.read().decode().splitlines():
            if line.startswith(name + labels + " "):
                return float(line.split()[-1])
    raise AssertionError(f"etcd publishes no {name}{labels}")


def reads(server: EtcdServer) -> float:
    return metric(server, "grpc_server_started_total",
                  '{grpc_method="Range",grpc_service="etcdserverpb.KV",grpc_type="unary"}')


def watchers(server: EtcdServer) -> float:
    return metric(server, "etcd_debugging_mvcc_watcher_total")


def heartbeats(registry: EtcdRegistry, inst: Instance, count: int, timeout: float = 15.0) -> None:
    """Wait until ``count`` more heartbeats of ``inst`` succeeded."""
    seen: List[float] = []

    def beat() -> bool:
        last = registry.registration_state(inst).last_refresh
        if last is not None and (not seen or last != seen[-1]):
            seen.append(last)
        return len(seen) > count

    assert wait_until(beat, timeout=timeout), f"{len(seen) - 1} of {count} heartbeats of {inst.id}"


def key_of(inst: Instance) -> str:
    return f"/guard/services/{inst.service}/{inst.version}/{inst.id}"


def open_registry(server: EtcdServer) -> EtcdRegistry:
    return EtcdRegistry(endpoints=server.endpoints, namespace="guard", ttl=TTL, dial_timeout=3.0,
                        retry_interval=0.2)


def test_heartbeats_after_the_first_renew_the_lease_without_reading_the_record(server: EtcdServer) -> None:
    with no_fyerreg_thread_left("registry.close"):
        registry = open_registry(server)
        try:
            inst = make_instance("quiet", service="guarded")
            registry.register(inst)
            heartbeats(registry, inst, 2)  # the first read the record and armed the watch of its key
            assert watchers(server) == 1
            before = reads(server)
            heartbeats(registry, inst, 4)
            assert reads(server) == before
            assert registry.registration_state(inst).registered
            registry.deregister(inst)
            assert wait_until(lambda: watchers(server) == 0, timeout=5)  # its key's watch went with it
        finally:
            registry.close()


def test_a_record_deleted_under_a_vouching_watch_is_written_again_at_the_next_heartbeat(server: EtcdServer) -> None:
    registry, raw = open_registry(server), raw_client(server.endpoints)
    try:
        inst = make_instance("deleted", service="guarded")
        registry.register(inst)
        heartbeats(registry, inst, 2)
        raw.delete(key_of(inst))
        assert wait_until(lambda: raw.get(key_of(inst))[0] is not None, timeout=TTL + 2)
        state = registry.registration_state(inst)
        assert state.registered and state.reregistrations == 1
        heartbeats(registry, inst, 2)  # read once, then vouched for again
        before = reads(server)
        heartbeats(registry, inst, 3)
        assert reads(server) == before
    finally:
        raw.close()
        registry.close()


def test_a_takeover_under_a_vouching_watch_is_noticed_at_the_next_heartbeat(server: EtcdServer) -> None:
    old_owner, new_owner = open_registry(server), open_registry(server)
    try:
        inst = make_instance("contested", service="guarded")
        old_owner.register(inst)
        heartbeats(old_owner, inst, 2)
        new_owner.register(inst.replace(address="127.0.0.1:2"))
        assert wait_until(lambda: not old_owner.registration_state(inst).registered, timeout=TTL + 2)
        value, meta = raw_value(server, key_of(inst))
        assert value["address"] == "127.0.0.1:2" and meta == new_owner.registration_state(inst).lease_id
    finally:
        old_owner.close()
        new_owner.close()


def test_after_etcd_restarts_the_record_is_read_again_then_vouched_for_again(server: EtcdServer) -> None:
    registry = open_registry(server)
    try:
        inst = make_instance("restarted", service="guarded")
        registry.register(inst)
        heartbeats(registry, inst, 2)
        server.restart()  # the watch stream breaks: the watch no longer vouches
        heartbeats(registry, inst, 3, timeout=30)
        before = reads(server)  # (the counters start again with the process)
        heartbeats(registry, inst, 3)
        assert reads(server) == before
        raw = raw_client(server.endpoints)
        try:
            raw.delete(key_of(inst))  # and the new watch vouches only while nothing happens
            assert wait_until(lambda: raw.get(key_of(inst))[0] is not None, timeout=TTL + 2)
        finally:
            raw.close()
    finally:
        registry.close()


def raw_value(server: EtcdServer, key: str) -> tuple:  # type: ignore[type-arg]
    raw = raw_client(server.endpoints)
    try:
        value, meta = raw.get(key)
        return json.loads(value), meta.lease_id
    finally:
        raw.close()
