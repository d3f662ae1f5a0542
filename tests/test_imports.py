"""Importing fyerreg, its pytest plugin and the gunicorn hooks loads no gRPC; every public name still resolves."""

from __future__ import annotations

import sys
import types

import pytest

import fyerreg
import fyerreg.testing
from tests.helpers import HEAVY_MODULES, imports_in_fresh_interpreter

HEAVY = HEAVY_MODULES


@pytest.mark.parametrize("modules", [
    "fyerreg",
    "fyerreg, fyerreg.testing.plugin",
    "fyerreg.contrib.gunicorn",
    "fyerreg.contrib.httpx",
])
def test_importing_loads_neither_grpc_nor_the_etcd_backend(modules: str) -> None:
    loaded = imports_in_fresh_interpreter(f"import {modules}")
    assert not loaded.intersection(HEAVY), sorted(loaded.intersection(HEAVY))


def test_the_asgi_integration_loads_no_server_framework_nor_grpc() -> None:
    loaded = imports_in_fresh_interpreter("import fyerreg.contrib.asgi")
    frameworks = {name for name in loaded if name.split(".")[0] in ("uvicorn", "fastapi", "starlette", "anyio")}
    assert not frameworks and not loaded.intersection(HEAVY), sorted(frameworks | loaded.intersection(HEAVY))


def test_the_pytest_plugin_leaves_servers_and_clusters_to_the_fixtures_that_use_them() -> None:
    loaded = imports_in_fresh_interpreter("import fyerreg.testing.plugin")
    assert not loaded.intersection({"fyerreg.testing.server", "fyerreg.testing.cluster", "fyerreg.testing.tls",
                                    "fyerreg.api", "fyerreg.discovery", "fyerreg.registry"})


def test_the_etcd_backend_is_loaded_when_first_named() -> None:
    loaded = imports_in_fresh_interpreter("import fyerreg\nfyerreg.EtcdRegistry")
    assert {"grpc", "fyerreg.registry.etcd"} <= loaded


@pytest.mark.parametrize("package", [fyerreg, fyerreg.testing], ids=lambda p: p.__name__)
def test_every_public_name_resolves_and_is_listed(package: types.ModuleType) -> None:
    for name in package.__all__:
        assert getattr(package, name) is not None, name
    assert set(package.__all__) <= set(dir(package))
    namespace: dict[str, object] = {}
    exec(f"from {package.__name__} import *", namespace)
    assert set(package.__all__) <= set(namespace)


def test_the_package_names_the_same_objects_as_their_modules() -> None:
    from fyerreg.api import Client
    from fyerreg.errors import RegistryError
    from fyerreg.registry.etcd import EtcdRegistry

    assert fyerreg.Client is Client
    assert fyerreg.RegistryError is RegistryError
    assert fyerreg.EtcdRegistry is EtcdRegistry
    assert fyerreg.logging is sys.modules["fyerreg.logging"]


def test_submodules_are_reached_as_attributes_of_a_freshly_imported_package() -> None:
    code = ("import fyerreg\n"
            "assert fyerreg.errors.RegistryError is fyerreg.RegistryError\n"
            "assert fyerreg.registry.MemoryRegistry is fyerreg.MemoryRegistry\n"
            "assert fyerreg.naming.Instance is fyerreg.Instance\n"
            "assert fyerreg.retry.Failover is fyerreg.Failover\n"
            "assert fyerreg.api.client.Client is fyerreg.Client")
    loaded = imports_in_fresh_interpreter(code)
    assert not loaded.intersection(HEAVY)


def test_a_gunicorn_master_configuring_its_registration_loads_no_grpc() -> None:
    code = ("from fyerreg.contrib.gunicorn import GunicornRegistration\n"
            "GunicornRegistration('orders', 'v1', registry={'endpoints': ['127.0.0.1:2379']})")
    loaded = imports_in_fresh_interpreter(code)
    assert not loaded.intersection(HEAVY), sorted(loaded.intersection(HEAVY))


def test_an_unknown_name_is_an_attribute_error_naming_it() -> None:
    with pytest.raises(AttributeError, match="'fyerreg' has no attribute 'NoSuchThing'"):
        fyerreg.NoSuchThing  # noqa: B018
    with pytest.raises(AttributeError, match="_private"):
        fyerreg._private  # noqa: B018
    with pytest.raises(ImportError):
        exec("from fyerreg import NoSuchThing", {})
