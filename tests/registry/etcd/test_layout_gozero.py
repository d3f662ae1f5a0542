"""The go-zero layout against go-zero's own wire format, on a real etcd.

Read in go-zero's source (github.com/zeromicro/go-zero, commit
11f21098ddd95a58f801920fea4f0543d4d01586):

- ``core/discov/publisher.go`` ``register``: ``client.Grant(ctx, TimeToLive)`` (10 s), then
  ``fullKey = makeEtcdKey(key, int64(lease))`` (``makeEtcdKey(key, id)`` when the server was given
  an ``ID`` with ``WithId``, an int64 used only when > 0) and ``client.Put(ctx, fullKey, value,
  clientv3.WithLease(lease))``: the value is the bare listen address (``zrpc/internal/rpcpubserver.go``
  passes ``figureOutListenOn(listenOn)``, ``host:port``). A lost keepalive revokes the lease and
  registers again: a new lease, so a new key.
- ``core/discov/clients.go`` ``makeEtcdKey``: ``fmt.Sprintf("%s%c%d", key, internal.Delimiter, id)``,
  ``Delimiter = '/'`` (``core/discov/internal/vars.go``): the id in decimal.
- ``core/discov/internal/registry.go`` ``load`` / ``setupWatch``: the subscriber reads and watches
  every key under ``makeKeyPrefix(key)`` = ``key + "/"`` and keeps only the values;
  ``core/discov/subscriber.go``'s container hands out each distinct value once (``Exclusive()``
  only changes which keys it forgets when one value shows up under a new key).
"""

from __future__ import annotations

import logging
import uuid
from typing import Iterator, List

import pytest

from fyerreg import Instance, InvalidInstanceError
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.layouts import NO_VERSION, GoZeroLayout, layout_named
from tests.cli.support import cli_env, run_cli
from tests.helpers import free_port, ids, next_snapshot, no_fyerreg_thread_left, wait_until

pytestmark = pytest.mark.etcd


@pytest.fixture
def key(etcd_client) -> Iterator[str]:
    """A go-zero ``Key`` (the service) no other test uses; everything under it is deleted afterwards."""
    name = f"gz-{uuid.uuid4().hex[:10]}.rpc"
    yield name
    etcd_client.delete_prefix(f"{name}/")


@pytest.fixture
def registry(etcd_endpoints) -> Iterator[EtcdRegistry]:
    with no_fyerreg_thread_left():
        made = EtcdRegistry(endpoints=etcd_endpoints, ttl=3, retry_interval=0.2, layout="go-zero")
        try:
            yield made
        finally:
            made.close(timeout=5.0)


def publish(etcd_client, key: str, address: str) -> int:
    """What go-zero's Publisher.register does: grant a lease, put the address at key/<lease id> bound to it."""
    lease = etcd_client.lease(10)
    etcd_client.put(f"{key}/{lease.id:d}", address.encode(), lease=lease)
    return int(lease.id)


def garbage_warnings(caplog) -> List[logging.LogRecord]:
    return [r for r in caplog.records if "skipping invalid record" in r.getMessage()]


def test_instances_go_zeros_publisher_wrote_are_listed_watched_and_picked(registry, etcd_client, key):
    one_port, two_port = free_port(), free_port()
    one = publish(etcd_client, key, f"127.0.0.1:{one_port}")
    [listed] = registry.list_services(key)
    assert listed == Instance(id=str(one), service=key, version=NO_VERSION, address=f"127.0.0.1:{one_port}")
    assert registry.list_services(key, NO_VERSION) == [listed]

    sub = registry.subscribe(key)
    assert sub.get(timeout=5) == [listed]
    two = publish(etcd_client, key, f"127.0.0.1:{two_port}")
    assert ids(next_snapshot(sub, lambda s: len(s) == 2)) == sorted([str(one), str(two)])

    with Discovery(registry) as discovery:
        picked = set()
        for _ in range(20):
            with discovery.pick(key) as inst:
                picked.add(inst.address)
        assert picked == {f"127.0.0.1:{one_port}", f"127.0.0.1:{two_port}"}

    etcd_client.revoke_lease(one)  # what go-zero's Publisher.Stop does
    assert ids(next_snapshot(sub, lambda s: len(s) == 1)) == [str(two)]


def test_fyerregs_records_are_what_go_zeros_subscriber_reads(registry, etcd_client, key):
    inst = Instance(id="py-1", service=key, version="1.0.0", address="127.0.0.1:8080", metadata={"zone": "a"})
    registry.register(inst)
    lease_id = registry.registration_state(inst).lease_id
    assert lease_id
    # The subscriber's read: every key under key + "/", keeping the values.
    [(value, meta)] = list(etcd_client.get_prefix(f"{key}/"))
    assert meta.key.decode() == f"{key}/{lease_id:d}"
    assert meta.lease_id == lease_id
    assert value == b"127.0.0.1:8080"
    # Read back as the layout keeps it: the lease id as the id, the address only.
    assert registry.list_services(key) == [Instance(id=str(lease_id), service=key, version=NO_VERSION,
                                                   address="127.0.0.1:8080")]

    registry.update_service(inst.replace(address="127.0.0.1:8081"))
    assert [v for v, _ in etcd_client.get_prefix(f"{key}/")] == [b"127.0.0.1:8081"]
    registry.deregister(inst)
    assert list(etcd_client.get_prefix(f"{key}/")) == []


def test_a_lost_lease_re_registers_under_the_new_leases_key_and_the_old_key_is_gone(registry, etcd_client, key):
    inst = Instance(id="py-1", service=key, version="1.0.0", address="127.0.0.1:8080")
    registry.register(inst)
    sub = registry.subscribe(key)
    old = registry.registration_state(inst).lease_id
    assert old and ids(sub.get(timeout=5)) == [str(old)]

    etcd_client.revoke_lease(old)
    state = wait_until(lambda: (lambda s: s if s.reregistrations else None)(registry.registration_state(inst)),
                       message="re-registered after the lease was revoked")
    new = state.lease_id
    assert state.registered and new and new != old
    [(value, meta)] = list(etcd_client.get_prefix(f"{key}/"))
    assert (meta.key.decode(), meta.lease_id, value) == (f"{key}/{new:d}", new, b"127.0.0.1:8080")
    assert ids(next_snapshot(sub, lambda s: ids(s) == [str(new)])) == [str(new)]

    # Its heartbeat checks the new key: deleted from outside, the record is written there again.
    etcd_client.delete(f"{key}/{new:d}")
    wait_until(lambda: [(m.key.decode(), m.lease_id) for _, m in etcd_client.get_prefix(f"{key}/")]
               == [(f"{key}/{new:d}", new)], message="the heartbeat repaired the record at the new lease's key")
    assert registry.registration_state(inst).lease_id == new
    registry.update_service(inst.replace(address="127.0.0.1:8081"))
    assert [(m.key.decode(), v) for v, m in etcd_client.get_prefix(f"{key}/")] == [(f"{key}/{new:d}",
                                                                                     b"127.0.0.1:8081")]
    registry.deregister(inst)
    assert list(etcd_client.get_prefix(f"{key}/")) == []


def test_the_same_id_from_two_registries_is_two_records_each_removed_by_its_owner(registry, etcd_endpoints,
                                                                                    etcd_client, key):
    inst = Instance(id="py-1", service=key, version="1.0.0", address="127.0.0.1:8080")
    with EtcdRegistry(endpoints=etcd_endpoints, ttl=3, layout="go-zero") as other:
        registry.register(inst)
        other.register(inst.replace(address="127.0.0.1:8081"), exclusive=True)  # its own key: no conflict
        leases = sorted([registry.registration_state(inst).lease_id, other.registration_state(inst).lease_id])
        assert ids(registry.list_services(key)) == [str(lease) for lease in leases]
        assert sorted(m.lease_id for _, m in etcd_client.get_prefix(f"{key}/")) == leases
        other.deregister(inst)
        assert [i.address for i in registry.list_services(key)] == ["127.0.0.1:8080"]
        assert registry.registration_state(inst).registered and registry.stats()["counters"]["takeovers"] == 0


def test_garbage_under_the_prefix_is_skipped_with_one_warning_each(registry, etcd_client, key, caplog):
    good = publish(etcd_client, key, "127.0.0.1:9001")
    garbage = {
        f"{key}/{good + 1}": b"not-an-address",
        f"{key}/{good + 2}": b"\xff\xfe",
        f"{key}/{good + 3}": b"127.0.0.1:0",
        f"{key}/{good + 4}": b'{"Addr":"127.0.0.1:9002"}',
        f"{key}/nested/{good + 5}": b"127.0.0.1:9003",
        f"{key}/": b"127.0.0.1:9004",
    }
    for k, v in garbage.items():
        etcd_client.put(k, v)
    with caplog.at_level(logging.WARNING, logger="fyerreg"):
        assert ids(registry.list_services(key)) == [str(good)]
        sub = registry.subscribe(key)
        assert ids(sub.get(timeout=5)) == [str(good)]
        assert ids(registry.list_services(key)) == [str(good)]
    warned = sorted(r.key for r in garbage_warnings(caplog))
    assert warned == sorted(garbage), "one warning per invalid record, however often it is read"
    assert registry.stats()["counters"]["invalid_records_skipped"] == len(garbage)


def test_a_key_ending_in_a_configured_id_or_a_name_reads_with_that_id(registry, etcd_client, key):
    # go-zero's WithId(id) (Etcd.ID) puts key/<id> instead of key/<lease id>; go-zero's subscriber
    # reads any key under key/ as a server, so a name there is one too.
    lease = etcd_client.lease(10)
    etcd_client.put(f"{key}/42", b"127.0.0.1:9001", lease=lease)
    etcd_client.put(f"{key}/host-b", b"127.0.0.1:9002", lease=lease)
    assert [(i.id, i.address) for i in registry.list_services(key)] == [("42", "127.0.0.1:9001"),
                                                                        ("host-b", "127.0.0.1:9002")]


def test_the_cli_lists_go_zeros_instances_and_services(etcd_endpoints, etcd_client, key):
    lease_id = publish(etcd_client, key, "127.0.0.1:9001")
    env = cli_env(etcd_endpoints, "unused", FYERREG_LAYOUT="go-zero")
    listed = run_cli("list", key, env=env)
    assert listed.returncode == 0, listed.stderr
    [row] = [line.split() for line in listed.stdout.splitlines() if line.startswith(str(lease_id))]
    assert row[:3] == [str(lease_id), NO_VERSION, "127.0.0.1:9001"]
    # go-zero's keys share no root: every key is read, the others' records skipped.
    services = run_cli("--layout", "go-zero", "services", env=cli_env(etcd_endpoints, "unused"))
    assert services.returncode == 0, services.stderr
    assert [key, NO_VERSION, "1", "1"] in [line.split() for line in services.stdout.splitlines()]


def test_the_layout_maps_keys_and_values_as_go_zero_does():
    layout = layout_named("go-zero", "ignored-namespace")
    assert isinstance(layout, GoZeroLayout)
    assert (layout.name, layout.versioned, layout.leased, layout.lease_in_key) == ("go-zero", False, True, True)
    inst = Instance(id="x", service="user.rpc", version="v1", address="10.0.0.1:8080")
    assert layout.instance_key(inst, 7587869391862349316) == "user.rpc/7587869391862349316"
    assert layout.prefix("user.rpc", "v1") == layout.prefix("user.rpc", None) == "user.rpc/"
    assert layout.encode(inst) == b"10.0.0.1:8080"
    assert layout.service_of("user.rpc/12") == "user.rpc" and layout.service_of("a/b/12") is None
    rooted = GoZeroLayout(root="estate/")
    assert rooted.instance_key(inst, 12) == "estate/user.rpc/12" and rooted.service_of("user.rpc/12") is None
    assert rooted.decode("estate/user.rpc/12", b"[::1]:80").address == "[::1]:80"
    with pytest.raises(InvalidInstanceError):
        layout.decode("user.rpc/12", b"10.0.0.1")
    with pytest.raises(ValueError, match="must be empty or end with '/'"):
        GoZeroLayout(root="estate")
