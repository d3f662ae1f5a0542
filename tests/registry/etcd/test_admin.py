"""fyerreg.registry.etcd.admin: the operator reads and repairs behind the fyerreg command."""

from __future__ import annotations

from typing import Any

import pytest

from fyerreg.naming import Instance
from fyerreg.registry.etcd.admin import lease_ttls, list_records, remove
from tests.helpers import wait_until

A = Instance.new("orders", "v1", "10.0.0.1:1", id="a")
B = Instance.new("orders", "v2", "10.0.0.2:1", id="b")
P = Instance.new("payments", "v1", "10.0.0.3:1", id="p")


def test_list_records_reads_the_whole_namespace_with_leases(registries: Any, etcd_client: Any) -> None:
    owner = registries.new(ttl=10)
    for inst in (A, B, P):
        owner.register(inst)
    root = f"/{registries.namespace}/services"
    ghost = Instance.new("orders", "v1", "10.0.0.9:1", id="ghost")
    etcd_client.put(f"{root}/orders/v1/ghost", ghost.to_json())  # no lease, as Go's UpdateService leaves it
    etcd_client.put(f"{root}/orders/v1/garbage", b"{not json")
    other = registries.new(namespace=registries.namespace + "-other")
    other.register(A)

    reader = registries.new()
    records = list_records(reader)
    assert [r.instance.id for r in records] == ["a", "ghost", "b", "p"]
    assert records[0].key == f"{root}/orders/v1/a"
    by_id = {r.instance.id: r for r in records}
    assert by_id["ghost"].lease_id == 0
    assert all(by_id[i].lease_id for i in ("a", "b", "p"))
    assert [r.instance.id for r in list_records(reader, "orders", "v1")] == ["a", "ghost"]

    ttls = lease_ttls(reader, records)
    assert ttls[ghost.key] is None
    assert all(0 < ttls[i.key] <= 10 for i in (A, B, P))  # type: ignore[operator]


def test_list_records_rejects_a_version_without_service(registries: Any) -> None:
    with pytest.raises(ValueError, match="service"):
        list_records(registries.new(), None, "v1")


def test_remove_deletes_the_record_and_revokes_its_lease(registries: Any) -> None:
    owner = registries.new(ttl=10)
    owner.register(P)
    reader = registries.new()
    [record] = list_records(reader, "payments")

    removed = remove(reader, "payments", "v1", "p")
    assert removed is not None and removed.instance == record.instance and removed.lease_id == record.lease_id
    assert reader._client.time_to_live(record.lease_id) == -1
    # The owner is still running: it notices the lost lease and registers again, with a new lease.
    again = wait_until(lambda: list_records(reader, "payments"), timeout=10 / 3 + 5)
    assert again[0].lease_id != record.lease_id
    assert remove(reader, "payments", "v1", "nosuch") is None
