"""``fyerreg --layout kratos``: the commands read the records Kratos' etcd registry writes (see
tests/registry/etcd/test_layout_kratos.py for the format, from Kratos' source)."""

from __future__ import annotations

import json
from typing import Any, Dict, Iterator

import pytest

from .support import run_cli

pytestmark = pytest.mark.etcd


def kratos_record(id: str, name: str, version: str, *endpoints: str) -> bytes:
    """A ServiceInstance as Kratos' registry marshals it (Go's json.Marshal: fields in order, compact)."""
    return json.dumps({"id": id, "name": name, "version": version, "metadata": None, "endpoints": list(endpoints)},
                      separators=(",", ":")).encode()


@pytest.fixture
def kratos(etcd_client: Any, namespace: str) -> Iterator[None]:
    """Three Kratos instances of two services under ``/{namespace}/`` (as Kratos' Namespace option), each
    on a lease of its own, and one record that is none."""
    root = f"/{namespace}"
    leases = [etcd_client.lease(15) for _ in range(3)]
    etcd_client.put(f"{root}/helloworld/k1", kratos_record("k1", "helloworld", "v1", "grpc://10.0.0.1:9000",
                                                           "http://10.0.0.1:8000"), lease=leases[0])
    etcd_client.put(f"{root}/helloworld/k2", kratos_record("k2", "helloworld", "v2", "grpcs://10.0.0.2:9000"),
                    lease=leases[1])
    etcd_client.put(f"{root}/payments/p1", kratos_record("p1", "payments", "", "http://10.0.0.3:8000"),
                    lease=leases[2])
    etcd_client.put(f"{root}/payments/junk", b"not a service instance")
    yield
    for lease in leases:
        lease.revoke()
    etcd_client.delete_prefix(f"{root}/")


def test_services_lists_the_kratos_services(kratos: None, env: Dict[str, str]) -> None:
    result = run_cli("--layout", "kratos", "services", env=env)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == [
        "SERVICE     VERSION  INSTANCES  ENABLED",
        "helloworld  v1       1          1",
        "helloworld  v2       1          1",
        "payments    -        1          1",
    ]


def test_list_shows_a_kratos_services_endpoints(kratos: None, env: Dict[str, str]) -> None:
    result = run_cli("--layout", "kratos", "list", "helloworld", "--json", env=env)
    assert result.returncode == 0, result.stderr
    listed = json.loads(result.stdout)
    assert [(i["id"], i["version"], i["address"]) for i in listed] == [("k1", "v1", "10.0.0.1:9000"),
                                                                      ("k2", "v2", "10.0.0.2:9000")]
    assert listed[1]["endpoints"] == {"grpc": {"address": "10.0.0.2:9000", "tls": True}}
    assert all(0 < i["lease_ttl"] <= 15 for i in listed)
