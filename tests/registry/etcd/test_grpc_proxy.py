"""Through etcd's own grpc-proxy (``etcd grpc-proxy start``): leases stay alive, and restarts of the
proxy or of etcd behind it are recovered from. (The contract suite runs on a proxy too.)"""

from __future__ import annotations

import time
from typing import Iterator

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.testing import EtcdGrpcProxy, EtcdServer
from tests.helpers import ids, make_instance, next_snapshot, no_fyerreg_thread_left

pytestmark = pytest.mark.etcd

TTL = 2


@pytest.fixture
def proxy(etcd_server: EtcdServer) -> Iterator[EtcdGrpcProxy]:
    with EtcdGrpcProxy(etcd_server.endpoints) as started:
        yield started


def on(endpoints: object, **options: object) -> EtcdRegistry:
    return EtcdRegistry(endpoints=endpoints, namespace="px", ttl=TTL, dial_timeout=2.0, retry_interval=0.2,
                        **options)  # type: ignore[arg-type]


def present(direct: EtcdRegistry, service: str) -> list:
    sub = direct.subscribe(service)
    try:
        return ids(sub.get(timeout=5))
    finally:
        sub.close()


def test_a_registration_through_the_proxy_outlives_many_ttls_and_updates_and_deregisters(
        etcd_server: EtcdServer, proxy: EtcdGrpcProxy):
    with no_fyerreg_thread_left("registry.close"):
        registry, direct = on(proxy.endpoints), on(etcd_server.endpoints)
        try:
            inst = make_instance("a")
            registry.register(inst)
            time.sleep(TTL * 3)  # the lease must be kept alive through the proxy meanwhile
            state = registry.registration_state(inst)
            assert state.registered and state.reregistrations == 0 and state.last_error is None
            assert present(direct, "svc") == ["a"]
            registry.update_service(inst.replace(weight=7))
            sub = direct.subscribe("svc")
            assert [i.weight for i in next_snapshot(sub, lambda s: bool(s))] == [7]
            registry.deregister(inst)
            assert next_snapshot(sub, lambda s: s == [], timeout=5) == []
        finally:
            registry.close()
            direct.close()


@pytest.mark.parametrize("restart", ["proxy", "etcd"])
def test_subscriptions_and_leases_through_the_proxy_recover_from_a_restart(
        etcd_server: EtcdServer, proxy: EtcdGrpcProxy, restart: str):
    registry, direct = on(proxy.endpoints), on(etcd_server.endpoints)
    try:
        mine = make_instance("mine")
        registry.register(mine)
        sub = registry.subscribe("svc")
        assert ids(next_snapshot(sub, lambda s: bool(s))) == ["mine"]
        if restart == "proxy":
            proxy.stop()
            proxy.start()
        else:
            etcd_server.kill()
            etcd_server.start()
        direct.close()
        direct = on(etcd_server.endpoints)
        direct.register(make_instance("theirs"))
        assert ids(next_snapshot(sub, lambda s: ids(s) == ["mine", "theirs"], timeout=20)) == ["mine", "theirs"]
        time.sleep(TTL * 2)  # heartbeats through the restarted path keep "mine" registered
        assert registry.registration_state(mine).registered
        assert present(direct, "svc") == ["mine", "theirs"]
    finally:
        registry.close()
        direct.close()
