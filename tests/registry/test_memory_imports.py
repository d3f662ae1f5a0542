"""The memory backend and the registration and watch code it is to share with etcd load no gRPC."""

from __future__ import annotations

import pytest

from tests.helpers import HEAVY_MODULES, imports_in_fresh_interpreter

HEAVY = HEAVY_MODULES


def test_using_a_memory_registry_loads_no_grpc() -> None:
    loaded = imports_in_fresh_interpreter(
        "import fyerreg\n"
        "with fyerreg.MemoryRegistry(ttl=5) as r:\n"
        "    inst = fyerreg.Instance(id='a', service='s', version='v1', address='127.0.0.1:1')\n"
        "    r.register(inst)\n"
        "    sub = r.subscribe('s')\n"
        "    r.update_service(inst.replace(weight=3))\n"
        "    r.list_services('s')\n"
        "    r.store.expire(inst)\n"
        "    r.deregister(inst)\n")
    assert not loaded.intersection(HEAVY), sorted(loaded.intersection(HEAVY))


@pytest.mark.parametrize("module", ["_registration", "_records", "_watch", "_cache", "_surface", "_leased"])
def test_the_shared_registration_and_watch_code_imports_without_grpc(module: str) -> None:
    loaded = imports_in_fresh_interpreter(f"import fyerreg.registry.kv.{module}")
    assert not loaded.intersection(HEAVY), sorted(loaded.intersection(HEAVY))


def test_the_etcd_registry_is_still_reached_through_its_package() -> None:
    loaded = imports_in_fresh_interpreter(
        "import fyerreg.registry.etcd as etcd\n"
        "from fyerreg.registry.etcd import EtcdRegistry\n"
        "assert etcd.EtcdRegistry is EtcdRegistry and callable(etcd.new)\n"
        "assert 'EtcdRegistry' in dir(etcd)\n")
    assert "grpc" in loaded
