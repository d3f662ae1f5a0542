"""Layouts: a registry on a layout of its own reads and writes only through it; a layout whose keys
have no versions keeps versions apart by the record's own, silently."""

from __future__ import annotations

import json
from typing import Optional

import pytest

from fyerreg import Instance, InvalidInstanceError
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.layouts import FyerRpcLayout, Layout, layout_named
from tests.helpers import ids, next_snapshot

from .support import make_instance

pytestmark = pytest.mark.etcd


class FlatLayout(Layout):
    """``/flat/<service>/<id>`` holding ``{"addr": ..., "ver": ...}``: no versions in the keys."""

    name = "flat"
    versioned = False

    @property
    def root(self) -> str:
        return "/flat/"

    def instance_key(self, instance: Instance, lease_id: int = 0) -> str:
        return f"/flat/{instance.service}/{instance.id}"

    def prefix(self, service: str, version: Optional[str]) -> str:
        return f"/flat/{service}/"

    def service_of(self, key: str) -> Optional[str]:
        parts = key[len("/flat/"):].split("/")
        return parts[0] if key.startswith("/flat/") and len(parts) == 2 and all(parts) else None

    def encode(self, instance: Instance) -> bytes:
        return json.dumps({"addr": instance.address, "ver": instance.version}).encode()

    def decode(self, key: str, value: bytes) -> Instance:
        service = self.service_of(key)
        if service is None:
            raise InvalidInstanceError(f"{key!r} is not /flat/<service>/<id>")
        try:
            data = json.loads(value)
            inst = Instance(id=key.rsplit("/", 1)[1], service=service, version=data["ver"], address=data["addr"])
        except (ValueError, KeyError, TypeError) as exc:
            raise InvalidInstanceError(f"{key!r}: {exc}") from None
        inst.validate()
        return inst


@pytest.fixture
def flat(etcd_endpoints, etcd_client):
    registry = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=FlatLayout())
    yield registry
    registry.close()
    etcd_client.delete_prefix("/flat/")


def test_a_registry_on_its_own_layout_writes_its_keys_and_values(flat, etcd_client, caplog):
    inst = make_instance("a", version="v1")
    flat.register(inst)
    value, meta = etcd_client.get(f"/flat/{inst.service}/a")
    assert json.loads(value) == {"addr": inst.address, "ver": "v1"} and meta.lease_id
    assert [i.id for i in flat.list_services(inst.service)] == ["a"]
    etcd_client.put(f"/flat/{inst.service}/garbage", b"not json")
    sub = flat.subscribe(inst.service, "v1")
    assert ids(sub.get(timeout=5)) == ["a"]  # the garbage is skipped
    assert sum("skipping invalid record" in r.getMessage() for r in caplog.records) == 1
    flat.deregister(inst)
    assert next_snapshot(sub, lambda s: s == []) == []


def test_versions_share_a_prefix_and_are_told_apart_by_the_record_without_a_warning(flat, caplog):
    flat.register(make_instance("one", version="v1"))
    flat.register(make_instance("two", version="v2"))
    v1 = flat.subscribe("etcd-svc", "v1")
    every = flat.subscribe("etcd-svc")
    assert ids(v1.get(timeout=5)) == ["one"]
    assert ids(every.get(timeout=5)) == ["one", "two"]
    assert [i.id for i in flat.list_services("etcd-svc", "v2")] == ["two"]
    assert not [r for r in caplog.records if "skipping" in r.getMessage()]


def test_the_default_layout_is_fyer_rpcs_of_the_namespace(etcd_endpoints):
    registry = EtcdRegistry(endpoints=etcd_endpoints, namespace="ns1")
    try:
        assert isinstance(registry._layout, FyerRpcLayout) and registry._layout.root == "/ns1/services/"
    finally:
        registry.close()
    assert layout_named("fyer-rpc", "ns2").root == "/ns2/services/"
    with pytest.raises(ValueError, match="unknown layout 'consul'; known: etcd-naming, fyer-rpc, go-zero, kratos"):
        layout_named("consul")
    with pytest.raises(TypeError, match="layout must be a fyerreg Layout"):
        EtcdRegistry(endpoints=etcd_endpoints, layout=3)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="unknown layout 'consul'"):
        EtcdRegistry(endpoints=etcd_endpoints, layout="consul")
    named = EtcdRegistry(endpoints=etcd_endpoints, namespace="ns3", layout="fyer-rpc")
    try:
        assert named._layout.root == "/ns3/services/"
    finally:
        named.close()


def test_the_integrations_take_a_layout_by_name_in_their_registry_options(etcd_endpoints):
    from fyerreg.contrib._integration import build_registry
    from fyerreg.registry.layouts import KratosLayout

    registry = build_registry({"endpoints": etcd_endpoints, "layout": "kratos"})
    try:
        assert isinstance(registry._layout, KratosLayout)  # Flask's and Django's REGISTRY, gunicorn's registry=
    finally:
        registry.close()
