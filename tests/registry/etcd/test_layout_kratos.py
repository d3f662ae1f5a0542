"""The Kratos layout against a real etcd: what Kratos' etcd registry writes is listed, watched and picked;
what fyerreg writes is a service instance Kratos reads.

Read in go-kratos/kratos at commit 668db92c2c001e9552594ba5a8aede8456af6d7e (the registry files last
changed in 30da04b769dc9db3ef2af32da5b33912c873f618):

- contrib/registry/etcd/registry.go: ``New`` defaults namespace ``"/microservices"``, TTL 15 s;
  ``registerKey`` is ``fmt.Sprintf("%s/%s/%s", namespace, service.Name, service.ID)``; ``Register``
  grants a lease and puts the value with it, ``heartBeat`` keeps it alive (and registers again on a
  new lease when the keepalive channel closes); ``Deregister`` deletes the key; ``GetService`` reads
  the prefix ``namespace/name`` and keeps the instances whose ``Name`` is that name, failing the
  whole call on a value it cannot unmarshal.
- contrib/registry/etcd/service.go: ``marshal`` is ``json.Marshal(si)``, ``unmarshal``
  ``json.Unmarshal`` (unknown fields ignored).
- contrib/registry/etcd/watcher.go: watches the prefix keys-only and reads it again on each event.
- registry/registry.go: ``ServiceInstance`` is ``ID string `json:"id"```, ``Name`` ``name``,
  ``Version`` ``version``, ``Metadata map[string]string`` ``metadata``, ``Endpoints []string``
  ``endpoints``, in that order (so json.Marshal writes them so, nil map and slice as ``null``).
- internal/endpoint/endpoint.go, transport/grpc/server.go, transport/http/server.go: a server's
  endpoint is ``scheme://host:port`` with scheme ``grpc``/``http``, ``grpcs``/``https`` with TLS
  (``endpoint.Scheme``); ``?isSecure=true`` is the older form (removed in 39796ea0).
- selector/default_node.go: a node's weight is ``strconv.ParseInt(Metadata["weight"])`` (100 when
  absent, selector/node/direct/direct.go).
"""

from __future__ import annotations

import json
import uuid
from typing import Any, Dict, Iterator, List

import pytest

from fyerreg import Instance, Status
from fyerreg.discovery import Discovery
from fyerreg.naming import Endpoint
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.layouts import NO_VERSION, KratosLayout, layout_named
from tests.helpers import ids, next_snapshot

pytestmark = pytest.mark.etcd

SERVICE = "helloworld"


def kratos_json(id: str, name: str = SERVICE, version: str = "v1.0.0", metadata: Any = None,
                endpoints: Any = ("grpc://127.0.0.1:9000", "http://127.0.0.1:8000")) -> bytes:
    """The bytes Go's json.Marshal writes for a Kratos ServiceInstance: its fields in order, compact,
    map keys sorted, a nil map or slice as null."""
    fields = [("id", id), ("name", name), ("version", version),
              ("metadata", None if metadata is None else dict(sorted(metadata.items()))),
              ("endpoints", None if endpoints is None else list(endpoints))]
    return ("{" + ",".join(f"{json.dumps(k)}:{json.dumps(v, separators=(',', ':'))}" for k, v in fields)
            + "}").encode()


@pytest.fixture
def namespace(etcd_client: Any) -> Iterator[str]:
    ns = f"/kratos-{uuid.uuid4().hex[:10]}"
    yield ns
    etcd_client.delete_prefix(ns + "/")


@pytest.fixture
def registry(etcd_endpoints: List[str], namespace: str) -> Iterator[EtcdRegistry]:
    reg = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=KratosLayout(namespace))
    yield reg
    reg.close()


class Kratos:
    """Writes as Kratos' registry does: the value put with a lease of its own (TTL 15 s)."""

    def __init__(self, client: Any, namespace: str) -> None:
        self.client = client
        self.namespace = namespace
        self.leases: Dict[str, Any] = {}

    def register(self, id: str, name: str = SERVICE, **fields: Any) -> str:
        key = f"{self.namespace}/{name}/{id}"
        self.leases[key] = lease = self.client.lease(15)
        self.client.put(key, kratos_json(id, name, **fields), lease=lease)
        return key

    def deregister(self, id: str, name: str = SERVICE) -> None:
        self.client.delete(f"{self.namespace}/{name}/{id}")


@pytest.fixture
def kratos(etcd_client: Any, namespace: str) -> Iterator[Kratos]:
    k = Kratos(etcd_client, namespace)
    yield k
    for lease in k.leases.values():
        lease.revoke()


def test_the_records_are_byte_for_byte_what_kratos_marshals():
    assert kratos_json("k1", metadata={"zone": "a", "region": "eu"}) == (
        b'{"id":"k1","name":"helloworld","version":"v1.0.0","metadata":{"region":"eu","zone":"a"},'
        b'"endpoints":["grpc://127.0.0.1:9000","http://127.0.0.1:8000"]}')
    assert kratos_json("k2", version="", endpoints=None) == (
        b'{"id":"k2","name":"helloworld","version":"","metadata":null,"endpoints":null}')


def test_kratos_records_are_listed_with_their_endpoints_named_by_scheme(registry, kratos):
    kratos.register("k1", metadata={"region": "eu", "weight": "30"})
    kratos.register("k2", endpoints=["http://127.0.0.2:8000"], version="")
    kratos.register("k3", endpoints=["grpcs://127.0.0.3:9443", "https://127.0.0.3:8443",
                                     "ws://127.0.0.3:81?isSecure=true", "tcp://127.0.0.3:82?isSecure=false"])
    k1, k2, k3 = sorted(registry.list_services(SERVICE), key=lambda i: i.id)
    assert k1 == Instance(id="k1", service=SERVICE, version="v1.0.0", address="127.0.0.1:9000", weight=30,
                          metadata={"region": "eu"},
                          endpoints={"grpc": Endpoint("127.0.0.1:9000"), "http": Endpoint("127.0.0.1:8000")})
    assert (k2.address, dict(k2.endpoints), k2.version, k2.weight) == (
        "127.0.0.2:8000", {"http": Endpoint("127.0.0.2:8000")}, NO_VERSION, 100)
    assert k2.endpoint("grpc") is None  # it does not speak gRPC
    assert k3.address == "127.0.0.3:9443"
    assert dict(k3.endpoints) == {"grpc": Endpoint("127.0.0.3:9443", tls=True),
                                  "http": Endpoint("127.0.0.3:8443", tls=True),
                                  "ws": Endpoint("127.0.0.3:81", tls=True), "tcp": Endpoint("127.0.0.3:82")}
    assert registry.list_services(SERVICE, "v1.0.0") == [k1, k3]


def test_kratos_records_are_watched_and_picked_by_endpoint(registry, kratos):
    sub = registry.subscribe(SERVICE)
    assert sub.get(timeout=5) == []
    kratos.register("k1")
    assert ids(next_snapshot(sub, lambda s: len(s) == 1)) == ["k1"]
    kratos.register("k2", endpoints=["http://127.0.0.2:8000"])
    assert ids(next_snapshot(sub, lambda s: len(s) == 2)) == ["k1", "k2"]
    with Discovery(registry) as discovery:
        grpc_picks = set()
        http_picks = set()
        for _ in range(10):
            with discovery.pick(SERVICE, endpoint="grpc") as inst:
                grpc_picks.add(inst.endpoint("grpc").address)
        for _ in range(10):
            with discovery.pick(SERVICE, endpoint="http") as inst:
                http_picks.add(inst.endpoint("http").address)
        assert grpc_picks == {"127.0.0.1:9000"}  # k2 serves no gRPC: never picked for it
        assert http_picks == {"127.0.0.1:8000", "127.0.0.2:8000"}
    kratos.deregister("k1")
    assert ids(next_snapshot(sub, lambda s: len(s) == 1)) == ["k2"]
    kratos.leases.popitem()[1].revoke()  # a Kratos process that died: its lease ends
    assert next_snapshot(sub, lambda s: s == []) == []


def kratos_reads(raw: bytes) -> Dict[str, Any]:
    """What Go's json.Unmarshal fills in a ServiceInstance from ``raw``, failing where it would."""
    data = json.loads(raw)
    assert isinstance(data, dict)
    filled: Dict[str, Any] = {}
    for field, kind in (("id", str), ("name", str), ("version", str)):
        assert isinstance(data.get(field, ""), kind), field
        filled[field] = data.get(field, "")
    metadata = data.get("metadata")
    assert metadata is None or (isinstance(metadata, dict) and all(isinstance(v, str) for v in metadata.values()))
    filled["metadata"] = metadata or {}
    endpoints = data.get("endpoints")
    assert endpoints is None or (isinstance(endpoints, list) and all(isinstance(e, str) for e in endpoints))
    filled["endpoints"] = endpoints or []
    return filled


def test_what_fyerreg_writes_is_a_kratos_service_instance_under_kratos_key(registry, etcd_client, namespace):
    named = Instance.new(SERVICE, "v2", "127.0.0.1:7000", id="py1", weight=40, metadata={"zone": "a"},
                         endpoints={"grpc": Endpoint("127.0.0.1:7000", tls=True), "http": "127.0.0.1:7001",
                                    "metrics": Endpoint("127.0.0.1:7002", tls=True)})
    plain = Instance.new(SERVICE, NO_VERSION, "127.0.0.1:7100", id="py2", status=Status.DISABLED)
    registry.register(named)
    registry.register(plain)
    raw, meta = etcd_client.get(f"{namespace}/{SERVICE}/py1")
    assert meta.lease_id  # bound to a lease, kept alive by fyerreg
    assert kratos_reads(raw) == {
        "id": "py1", "name": SERVICE, "version": "v2", "metadata": {"zone": "a", "weight": "40"},
        "endpoints": ["grpcs://127.0.0.1:7000", "http://127.0.0.1:7001", "metrics://127.0.0.1:7002?isSecure=true"]}
    assert set(json.loads(raw)) == {"id", "name", "version", "metadata", "endpoints", "updated_at"}
    raw, meta = etcd_client.get(f"{namespace}/{SERVICE}/py2")
    assert meta.lease_id
    assert kratos_reads(raw) == {"id": "py2", "name": SERVICE, "version": "", "endpoints": ["grpc://127.0.0.1:7100"],
                                 "metadata": {"weight": "100", "fyerreg.status": "0"}}
    assert json.loads(raw)["address"] == "127.0.0.1:7100"  # beside Kratos' fields: Go ignores it
    assert [i.replace(updated_at=0) for i in registry.list_services(SERVICE)] == [named, plain]
    registry.deregister(named)
    assert etcd_client.get(f"{namespace}/{SERVICE}/py1")[0] is None


@pytest.mark.parametrize("instance", [
    Instance.new("s", "v1", "10.0.0.1:80", id="a"),
    Instance.new("s", "v1", "10.0.0.1:80", id="a", endpoints={"grpc": "10.0.0.1:80"}),
    Instance.new("s", "v1", "10.0.0.9:80", id="a", endpoints={"grpc": "10.0.0.1:80"}),
    Instance.new("s", "v1", "10.0.0.1:80", id="a", endpoints={"http": Endpoint("10.0.0.1:80", True),
                                                              "grpc": Endpoint("10.0.0.2:90", True)}),
    Instance.new("s", "-", "[::1]:80", id="a", status=Status(7), weight=0, metadata={"k": "v", "weight": "x"}),
], ids=["plain", "grpc-only", "primary-elsewhere", "tls-both", "odd"])
def test_every_instance_reads_back_as_written(instance):
    layout = KratosLayout("/ms")
    stamped = instance.replace(updated_at=1234)
    if "weight" in instance.metadata:
        stamped = stamped.replace(metadata={"k": "v"})  # the weight field is the one written
    assert layout.decode("/ms/s/a", layout.encode(stamped)) == stamped


def test_records_that_are_no_kratos_instance_are_skipped_with_one_warning_each(registry, kratos, etcd_client,
                                                                                namespace, caplog):
    kratos.register("good")
    prefix = f"{namespace}/{SERVICE}"
    bad = {
        f"{prefix}/not-json": b"{oops",
        f"{prefix}/array": b"[1,2]",
        f"{prefix}/int-metadata": kratos_json("int-metadata", metadata={"n": 1}),
        f"{prefix}/no-endpoints": kratos_json("no-endpoints", endpoints=None),
        f"{prefix}/no-port": kratos_json("no-port", endpoints=["grpc://127.0.0.1"]),
        f"{prefix}/not-a-uri": kratos_json("not-a-uri", endpoints=["127.0.0.1:9000"]),
        f"{prefix}/other-id": kratos_json("someone-else"),
        f"{prefix}/bad-status": kratos_json("bad-status", metadata={"fyerreg.status": "off"}),
    }
    for key, value in bad.items():
        etcd_client.put(key, value)
    etcd_client.put(f"{prefix}/too/deep", kratos_json("deep"))
    sub = registry.subscribe(SERVICE)
    assert ids(sub.get(timeout=5)) == ["good"]
    assert ids(registry.list_services(SERVICE)) == ["good"]
    warned = [r.getMessage() for r in caplog.records if "skipping invalid record" in r.getMessage()]
    assert sorted(w.split("'")[1] for w in warned) == sorted([*bad, f"{prefix}/too/deep"])


def test_versions_live_in_the_values_and_subscriptions_keep_to_theirs(registry, kratos, caplog):
    kratos.register("one", version="v1")
    kratos.register("two", version="v2")
    kratos.register("none", version="")
    v1 = registry.subscribe(SERVICE, "v1")
    every = registry.subscribe(SERVICE)
    assert ids(v1.get(timeout=5)) == ["one"]
    assert sorted(ids(every.get(timeout=5))) == ["none", "one", "two"]
    kratos.register("three", version="v1")
    assert ids(next_snapshot(v1, lambda s: len(s) == 2)) == ["one", "three"]
    assert ids(registry.list_services(SERVICE, NO_VERSION)) == ["none"]
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]


def test_the_layout_is_kratos_by_name_under_its_namespace(etcd_endpoints):
    assert layout_named("kratos").root == "/microservices/"  # fyerreg's default namespace: Kratos' default
    assert layout_named("kratos", "shop").root == "/shop/"
    layout = KratosLayout()
    assert (layout.versioned, layout.leased, layout.lease_in_key) == (False, True, False)
    assert layout.service_of("/microservices/helloworld/abc") == "helloworld"
    assert layout.service_of("/microservices/helloworld/abc/d") is None
    with pytest.raises(ValueError, match="namespace"):
        KratosLayout("/microservices/")
    with EtcdRegistry(endpoints=etcd_endpoints, layout="kratos") as reg:
        assert reg._layout.root == "/microservices/"


def test_one_id_names_one_instance_of_a_service_whatever_its_version(registry, etcd_client, namespace):
    registry.register(Instance.new(SERVICE, "v1", "127.0.0.1:7000", id="same"))
    registry.register(Instance.new(SERVICE, "v2", "127.0.0.1:7001", id="same"))
    assert [(i.id, i.version) for i in registry.list_services(SERVICE)] == [("same", "v2")]
    assert json.loads(etcd_client.get(f"{namespace}/{SERVICE}/same")[0])["version"] == "v2"


def test_what_kratos_metadata_and_uris_mean_to_fyerreg():
    layout = KratosLayout()
    read = layout.decode("/microservices/s/a", kratos_json(
        "a", "s", metadata={"weight": "heavy", "fyerreg.status": "0"},
        endpoints=["GRPC://10.0.0.1:9000", "grpcs://10.0.0.2:9000", "http://user@10.0.0.1:8000/api"]))
    assert read.weight == 100 and dict(read.metadata) == {"weight": "heavy"}  # no integer: Kratos ignores it too
    assert read.status == Status.DISABLED
    assert dict(read.endpoints) == {"grpc": Endpoint("10.0.0.1:9000"), "http": Endpoint("10.0.0.1:8000")}
    assert layout.decode("/microservices/s/a", kratos_json("a", "s", metadata={"weight": "+20000"})).weight == 10_000
