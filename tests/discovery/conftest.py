"""Fixtures for the discovery tests: registries of both backends and a fake clock."""

from __future__ import annotations

import functools
import uuid
from typing import Iterator

import pytest

from fyerreg import MemoryRegistry, MemoryStore, Registry
from fyerreg.registry import etcd as etcd_backend
from tests.helpers import Registries, no_fyerreg_thread_left

from .util import FakeClock


def memory_backend() -> Registries:
    return Registries(functools.partial(MemoryRegistry, store=MemoryStore()), "memory")


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request: pytest.FixtureRequest) -> Iterator[Registries]:
    """Each backend in turn (etcd: the session's server, a namespace of its own)."""
    if request.param == "memory":
        made = memory_backend()
    else:
        endpoints = request.getfixturevalue("etcd_endpoints")
        namespace = f"disc-{uuid.uuid4().hex[:12]}"
        factory = functools.partial(etcd_backend.EtcdRegistry, endpoints=endpoints, namespace=namespace, ttl=10)
        made = Registries(factory, "etcd", namespace=namespace)
    yield made
    made.close()


@pytest.fixture
def registry(backend: Registries) -> Registry:
    """A registry of each backend."""
    return backend.new()


@pytest.fixture
def mem_registry() -> Iterator[MemoryRegistry]:
    """A memory registry, for tests of backend-independent logic or of fault injection."""
    reg = MemoryRegistry()
    yield reg
    reg.close()


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture(autouse=True)
def no_leaked_threads() -> Iterator[None]:
    with no_fyerreg_thread_left("the test", prefix="fyerreg-discovery"):
        yield
