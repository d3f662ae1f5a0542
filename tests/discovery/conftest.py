"""Fixtures for the discovery tests: registries of both backends and a fake clock."""

from __future__ import annotations

import threading
import uuid
from typing import Callable, Iterator, List

import pytest

from fyerreg import MemoryRegistry, MemoryStore, Registry
from fyerreg.registry import etcd as etcd_backend

from .util import FakeClock


class Backend:
    """Makes registries that share one backend (a store, or an etcd namespace); closes them all."""

    def __init__(self, make: Callable[[], Registry]) -> None:
        self._make = make
        self.made: List[Registry] = []

    def new(self) -> Registry:
        reg = self._make()
        self.made.append(reg)
        return reg

    def close(self) -> None:
        for reg in reversed(self.made):
            reg.close()


def memory_backend() -> Backend:
    store = MemoryStore()
    return Backend(lambda: MemoryRegistry(store=store))


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
def backend(request: pytest.FixtureRequest) -> Iterator[Backend]:
    """Each backend in turn (etcd: the session's server, a namespace of its own)."""
    if request.param == "memory":
        made = memory_backend()
    else:
        endpoints = request.getfixturevalue("etcd_endpoints")
        namespace = f"disc-{uuid.uuid4().hex[:12]}"
        made = Backend(lambda: etcd_backend.EtcdRegistry(endpoints=endpoints, namespace=namespace, ttl=10))
    yield made
    made.close()


@pytest.fixture
def registry(backend: Backend) -> Registry:
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
    before = set(threading.enumerate())
    yield
    leaked = [t for t in threading.enumerate() if t not in before and t.name.startswith("fyerreg-discovery")]
    assert not leaked, f"threads left running: {leaked}"
