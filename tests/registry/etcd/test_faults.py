"""The etcd backend under faults: dead processes, lost leases, etcd restarts, wipes, compaction."""

from __future__ import annotations

import json
import signal
import textwrap
import time

import pytest

from fyerreg.registry.kv._ops import Deadline
from fyerreg.testing import raw_client
from tests.helpers import Proc, fyerreg_threads, ids, next_snapshot, wait_until

from .support import PYTHON, SERVICE, child_env, make_instance

pytestmark = pytest.mark.etcd

CHILD = textwrap.dedent("""
    import sys, time
    from fyerreg import EtcdRegistry, Instance
    endpoints, namespace, service = sys.argv[1].split(","), sys.argv[2], sys.argv[3]
    registry = EtcdRegistry(endpoints=endpoints, namespace=namespace, ttl=2)
    registry.register(Instance.new(service, "v1", "127.0.0.1:9999", id="child"))
    time.sleep(120)
""")


def test_sigkilled_child_disappears_within_ttl_plus_2s(registries, etcd_endpoints, namespace, procs):
    watcher = registries.new()
    sub = watcher.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    child = Proc([PYTHON, "-c", CHILD, ",".join(etcd_endpoints), namespace, SERVICE], env=child_env())
    procs.append(child)
    next_snapshot(sub, lambda s: ids(s) == ["child"], timeout=30)
    child.signal(signal.SIGKILL)
    code = child.wait(timeout=10)
    # ttl=2: the lease dies at most 2 s after the last heartbeat before the kill.
    next_snapshot(sub, lambda s: s == [], timeout=2 + 2)
    assert code == -signal.SIGKILL


def test_lease_revoked_from_outside_is_registered_again_within_ttl_over_3_plus_2s(
        registries, etcd_client, namespace, caplog):
    registry, watcher = registries.new(ttl=3), registries.new()
    inst = make_instance("revoked", metadata={"k": "v"})
    registry.register(inst)
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["revoked"])
    lost = registry.registration_state(inst).lease_id
    etcd_client.revoke_lease(lost)
    next_snapshot(sub, lambda s: s == [])
    back = next_snapshot(sub, lambda s: ids(s) == ["revoked"], timeout=3 / 3 + 2)
    assert dict(back[0].metadata) == {"k": "v"}
    # The keepalive thread notes the new lease just after etcd holds the record again.
    def counted():
        state = registry.registration_state(inst)
        return state if state.reregistrations else None

    state = wait_until(counted, timeout=5, message="the re-registration is counted")
    assert state.registered and state.reregistrations == 1 and state.lease_id != lost
    _, meta = etcd_client.get(f"/{namespace}/services/{SERVICE}/v1/revoked")
    assert meta.lease_id == state.lease_id
    stats = registry.stats()["counters"]
    assert (stats["lease_losses"], stats["reregistrations"]) == (1, 1)
    warning = next(r for r in caplog.records if "was lost" in r.getMessage())
    assert (warning.service, warning.version, warning.instance_id, warning.lease_id) == (SERVICE, "v1", "revoked",
                                                                                         f"{lost:x}")


def test_etcd_killed_and_restarted_on_its_data_dir(etcd_server, registries):
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=3)
    watcher = registries.new(endpoints=etcd_server.endpoints)
    a, b, c = make_instance("a"), make_instance("b"), make_instance("c")
    registry.register(a)
    registry.register(b)
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["a", "b"])

    etcd_server.kill()
    etcd_server.start()
    restarted = time.time()
    registry.register(c)
    registry.deregister(a)
    final = next_snapshot(sub, lambda s: ids(s) == ["b", "c"], timeout=15)
    assert [inst.replace(updated_at=0) for inst in final] == [b, c]
    assert ids(registry.list_services(SERVICE)) == ["b", "c"]
    # Heartbeats continue on the restarted server.
    wait_until(lambda: (registry.registration_state(b).last_refresh or 0) > restarted + 1, timeout=5)
    assert registry.registration_state(b).registered
    wait_until(lambda: watcher.stats()["counters"]["watch_reconnects"] >= 1, timeout=5)


def test_etcd_wiped_every_instance_reappears_within_ttl_plus_2s(etcd_server, registries):
    ttl = 3
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=ttl)
    watcher = registries.new(endpoints=etcd_server.endpoints)
    names = ["w1", "w2", "w3"]
    for name in names:
        registry.register(make_instance(name))
    ghost_owner = registries.new(endpoints=etcd_server.endpoints)
    ghost_owner.register(make_instance("ghost"))
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["ghost", *names])
    ghost_owner.close()  # gone for good: must not come back in anyone's view
    next_snapshot(sub, lambda s: ids(s) == names)

    etcd_server.wipe()
    etcd_server.start()
    client = raw_client(etcd_server.endpoints)
    try:
        wait_until(lambda: sorted(meta.key.decode().rsplit("/", 1)[1]
                                  for _, meta in client.get_prefix(f"/{registries.namespace}/services/"))
                   == names, timeout=ttl + 2)
    finally:
        client.close()
    wait_until(lambda: all(registry.registration_state(make_instance(n)).registered for n in names), timeout=5)
    assert registry.stats()["counters"]["lease_losses"] == 3
    final = next_snapshot(sub, lambda s: ids(s) == names, timeout=15)
    assert all(inst.address == "127.0.0.1:8000" for inst in final)


def test_watch_from_a_compacted_revision_recovers(registries, etcd_client, namespace):
    registry = registries.new()
    prefix = f"/{namespace}/services/{SERVICE}/v1"
    record = {"service": SERVICE, "version": "v1", "address": "10.0.0.1:1", "status": 1}
    etcd_client.put(f"{prefix}/old", json.dumps({**record, "id": "old"}))
    seen = []
    watch = registry._new_watch(SERVICE, None, "watch",  # the subscription's watch, started by hand
                                sink=lambda snapshot: seen.append(snapshot) or True)
    assert ids(watch.load(deadline=Deadline(5))) == ["old"]
    loaded_at = watch.revision
    # While it is not watching yet: changes, then the history it would resume from is compacted.
    etcd_client.delete(f"{prefix}/old")
    etcd_client.put(f"{prefix}/new", json.dumps({**record, "id": "new"}))
    revision = etcd_client.put(f"{prefix}/newer", json.dumps({**record, "id": "newer"})).header.revision
    etcd_client.compact(revision)
    watch.start()
    try:
        wait_until(lambda: seen, timeout=10)
        assert ids(seen[0]) == ["new", "newer"] and seen[0].revision >= revision > loaded_at
        assert registry.stats()["counters"]["compaction_recoveries"] == 1
        etcd_client.delete(f"{prefix}/new")  # and it watches on from there
        wait_until(lambda: ids(seen[-1]) == ["newer"], timeout=10)
    finally:
        assert watch.stop(5)


def test_no_fyerreg_thread_survives_close(registries):
    before = fyerreg_threads()
    registry = registries.new()
    registry.register(make_instance("t1"))
    registry.register(make_instance("t2", service="other"))
    registry.subscribe(SERVICE)
    registry.subscribe("other", "v1")
    cached = registries.new(cache=(True, 60))
    cached.list_services(SERVICE)
    running = fyerreg_threads()
    assert {"fyerreg-keepalive-etcd-svc-t1", "fyerreg-keepalive-other-t2", f"fyerreg-watch-{SERVICE}-*",
            "fyerreg-watch-other-v1", f"fyerreg-cache-{SERVICE}-*"} <= set(running)
    registry.close()
    cached.close()
    assert fyerreg_threads() == before


def test_instances_survive_an_etcd_outage_shorter_than_ttl(etcd_server, registries):
    registry = registries.new(endpoints=etcd_server.endpoints, ttl=6)
    inst = make_instance("steady")
    registry.register(inst)
    lease = registry.registration_state(inst).lease_id
    etcd_server.stop()
    wait_until(lambda: registry.registration_state(inst).last_error, timeout=10)
    etcd_server.start()
    wait_until(lambda: registry.registration_state(inst).last_error is None, timeout=10)
    state = registry.registration_state(inst)
    assert state.registered and state.lease_id == lease and state.reregistrations == 0




def test_close_while_etcd_is_down_still_ends_everything(etcd_server, registries):
    before = fyerreg_threads()
    registry = registries.new(endpoints=etcd_server.endpoints, dial_timeout=1, cache=(True, 60))
    registry.register(make_instance("orphan"))
    sub = registry.subscribe(SERVICE)
    registry.list_services(SERVICE)
    etcd_server.kill()
    registry.close(timeout=2)
    assert fyerreg_threads() == before
    items = [sub.get(timeout=5) for _ in range(sub.qsize())]
    assert items[-1] is None
    # Its lease was not revoked: the record goes when the lease expires.
    etcd_server.start()
    client = raw_client(etcd_server.endpoints)
    try:
        wait_until(lambda: not list(client.get_prefix(f"/{registries.namespace}/services/")), timeout=3 + 2)
    finally:
        client.close()
