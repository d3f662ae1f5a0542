"""Registration on etcd: leases, keys, guarded writes, takeover, namespaces, foreign records."""

from __future__ import annotations

import json
import logging
import threading

import pytest

from fyerreg import AlreadyRegisteredError, Instance, NotRegisteredError, Status
from tests.helpers import fyerreg_threads, ids, next_snapshot, wait_until

from .support import SERVICE, make_instance

pytestmark = pytest.mark.etcd


def key_of(namespace: str, inst: Instance) -> str:
    return f"/{namespace}/services/{inst.service}/{inst.version}/{inst.id}"


def stored(etcd_client, key):
    value, meta = etcd_client.get(key)
    return (None, None) if value is None else (json.loads(value), meta)


def test_record_is_the_go_wire_format_bound_to_a_live_lease(registries, etcd_client, namespace):
    registry = registries.new(ttl=5)
    inst = make_instance("a", metadata={"zone": "z1"})
    registry.register(inst)
    record, meta = stored(etcd_client, key_of(namespace, inst))
    assert record == {**inst.to_dict(), "updated_at": record["updated_at"]}
    assert record["updated_at"] > 0
    state = registry.registration_state(inst)
    assert state.registered and state.lease_id == meta.lease_id
    assert 0 < etcd_client.get_lease_info(meta.lease_id).TTL <= 5


def test_update_service_keeps_the_record_bound_to_its_lease(registries, etcd_client, namespace):
    registry = registries.new()
    inst = make_instance("u")
    registry.register(inst)
    lease = registry.registration_state(inst).lease_id
    registry.update_service(inst.replace(status=Status.DISABLED, weight=7))
    record, meta = stored(etcd_client, key_of(namespace, inst))
    assert (record["status"], record["weight"]) == (0, 7)
    assert meta.lease_id == lease
    # Bound to the lease: when it ends (the process dying), the updated record goes with it.
    assert etcd_client.get_lease_info(lease).keys == [key_of(namespace, inst).encode()]


def test_reregistering_own_instance_updates_in_place_without_a_new_lease_or_thread(registries, etcd_client, namespace):
    registry = registries.new()
    inst = make_instance("r")
    registry.register(inst)
    lease = registry.registration_state(inst).lease_id
    def per_instance() -> list:
        return [name for name in fyerreg_threads() if name.startswith("fyerreg-keepalive-")]

    threads = per_instance()
    assert len(threads) == 1
    registry.register(inst.replace(weight=3))
    assert registry.registration_state(inst).lease_id == lease
    assert per_instance() == threads
    record, meta = stored(etcd_client, key_of(namespace, inst))
    assert record["weight"] == 3 and meta.lease_id == lease
    assert registry.stats()["counters"]["registrations"] == 1


def test_deregister_deletes_the_key_and_revokes_the_lease_at_once(registries, etcd_client, namespace):
    registry, watcher = registries.new(ttl=30), registries.new()
    inst = make_instance("d")
    registry.register(inst)
    sub = watcher.subscribe(SERVICE)
    next_snapshot(sub, lambda s: ids(s) == ["d"])
    lease = registry.registration_state(inst).lease_id
    registry.deregister(inst)
    # Seen gone long before the 30 s lease would have expired.
    next_snapshot(sub, lambda s: s == [], timeout=5)
    assert stored(etcd_client, key_of(namespace, inst)) == (None, None)
    assert etcd_client.get_lease_info(lease).TTL == -1  # revoked
    assert not registry.registration_state(inst).registered
    assert registry.stats()["counters"]["deregistrations"] == 1


def test_exclusive_register_writes_nothing_when_the_key_is_held(registries, etcd_client, namespace):
    first, second = registries.new(), registries.new()
    inst = make_instance("x", port=1)
    first.register(inst)
    _, before = stored(etcd_client, key_of(namespace, inst))
    with pytest.raises(AlreadyRegisteredError, match=f"{before.lease_id:x}"):
        second.register(inst.replace(address="127.0.0.1:2"), exclusive=True)
    record, after = stored(etcd_client, key_of(namespace, inst))
    assert record["address"] == "127.0.0.1:1" and after.mod_revision == before.mod_revision
    assert fyerreg_threads().count("fyerreg-keepalive-etcd-svc-x") == 1


def test_takeover_warns_naming_both_leases_and_the_old_owner_never_clobbers(registries, etcd_client, namespace,
                                                                            caplog):
    old_owner, new_owner = registries.new(), registries.new()
    inst = make_instance("t", port=1)
    old_owner.register(inst)
    old_lease = old_owner.registration_state(inst).lease_id
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        new_owner.register(inst.replace(address="127.0.0.1:2"))
    new_lease = new_owner.registration_state(inst).lease_id
    warning = next(r for r in caplog.records if "took over" in r.getMessage())
    assert f"{old_lease:x}" in warning.getMessage() and f"{new_lease:x}" in warning.getMessage()
    assert (warning.service, warning.instance_id, warning.lease_id) == (SERVICE, "t", f"{new_lease:x}")
    assert warning.previous_lease_id == f"{old_lease:x}"  # the extras spell leases as the message does

    # The old owner notices at its next heartbeat and stops keeping the instance alive ...
    wait_until(lambda: not old_owner.registration_state(inst).registered, timeout=5)
    assert "fyerreg-keepalive-etcd-svc-t" in fyerreg_threads()  # the new owner's only
    with pytest.raises(NotRegisteredError):
        old_owner.update_service(inst.replace(weight=1))
    old_owner.deregister(inst)
    old_owner.close()
    # ... and neither its update, its deregister nor its close touched the new owner's record.
    record, meta = stored(etcd_client, key_of(namespace, inst))
    assert record["address"] == "127.0.0.1:2" and record["weight"] == 100 and meta.lease_id == new_lease


def test_namespaces_isolate_two_registries_on_one_etcd(registries, etcd_client):
    blue = registries.new(namespace=registries.namespace + "-blue")
    green = registries.new(namespace=registries.namespace + "-green")
    blue_sub = blue.subscribe(SERVICE)
    assert blue_sub.get(timeout=5) == []
    green.register(make_instance("g"))
    blue.register(make_instance("b"))
    assert ids(green.list_services(SERVICE)) == ["g"]
    assert ids(blue.list_services(SERVICE)) == ["b"]
    assert ids(next_snapshot(blue_sub)) == ["b"]
    assert blue_sub.qsize() == 0
    assert etcd_client.get(f"/{registries.namespace}-green/services/{SERVICE}/v1/g")[0] is not None


GO_RECORD = {"id": "go1", "service": SERVICE, "version": "v1", "address": "10.0.0.1:9000",
             "metadata": None, "status": 1, "updated_at": 0}


def test_go_written_and_garbage_records_under_the_prefix(registries, etcd_client, namespace, caplog):
    prefix = f"/{namespace}/services/{SERVICE}"
    registry = registries.new()
    sub = registry.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        etcd_client.put(f"{prefix}/v1/go1", json.dumps(GO_RECORD))
        etcd_client.put(f"{prefix}/v1/go2", json.dumps({**GO_RECORD, "id": "go2", "status": 0,
                                                         "metadata": {"k": "v"}}))
        etcd_client.put(f"{prefix}/v1/junk", b"\xff not json")
        etcd_client.put(f"{prefix}/v1/liar", json.dumps({**GO_RECORD, "id": "someone-else"}))
        etcd_client.put(f"{prefix}/v1/badaddr", json.dumps({**GO_RECORD, "id": "badaddr", "address": "nope"}))
        etcd_client.put(f"{prefix}/v1/deep/er", json.dumps(GO_RECORD))
        etcd_client.put(f"{prefix}/v1/last", json.dumps({**GO_RECORD, "id": "last"}))
        snap = next_snapshot(sub, lambda s: "last" in ids(s))
    assert ids(snap) == ["go1", "go2", "last"]
    go1, go2 = snap[0], snap[1]
    assert (go1.weight, go1.status, go1.updated_at, dict(go1.metadata)) == (100, Status.ENABLED, 0, {})
    assert go2.status == Status.DISABLED and not go2.enabled and dict(go2.metadata) == {"k": "v"}
    assert ids(registry.list_services(SERVICE)) == ["go1", "go2", "last"]
    assert ids(registry.list_services(SERVICE, "v1")) == ["go1", "go2", "last"]
    skipped = [r for r in caplog.records if "invalid record" in r.getMessage()]
    assert sorted(r.key.rsplit("/", 2)[-1] if "deep" not in r.key else "deep/er" for r in skipped) == [
        "badaddr", "deep/er", "junk", "liar"]
    assert {(r.service, r.version) for r in skipped} == {(SERVICE, "*")}  # which watch met them
    assert registry.stats()["counters"]["invalid_records_skipped"] == 4  # once each, however often they are read
    # The watch thread survived them all and keeps working.
    etcd_client.delete(f"{prefix}/v1/go1")
    assert ids(next_snapshot(sub)) == ["go2", "last"]
    assert any(t.name == f"fyerreg-watch-{SERVICE}-*" for t in threading.enumerate())


def test_registering_again_after_a_takeover_takes_the_key_back(registries, etcd_client, namespace):
    first, second = registries.new(), registries.new()
    inst = make_instance("back")
    first.register(inst)
    second.register(inst)
    wait_until(lambda: not first.registration_state(inst).registered, timeout=5)
    first.register(inst)
    assert first.registration_state(inst).registered
    wait_until(lambda: not second.registration_state(inst).registered, timeout=5)
    _, meta = etcd_client.get(key_of(namespace, inst))
    assert meta.lease_id == first.registration_state(inst).lease_id
    assert fyerreg_threads().count("fyerreg-keepalive-etcd-svc-back") == 1
    first.deregister(inst)
    assert etcd_client.get(key_of(namespace, inst)) == (None, None)
