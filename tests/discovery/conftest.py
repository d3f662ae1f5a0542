"""Fixtures for the discovery tests: registries of both backends and a fake clock."""

from __future__ import annotations

import threading
import uuid
from typing import Iterator, Type

import pytest

from fyerreg import Registry

from .fake import FakeRegistry
from .util import FakeClock

BACKEND: Type[Registry] = FakeRegistry


def memory_backend() -> Registry:
    return BACKEND()


@pytest.fixture(params=["memory", pytest.param("etcd", marks=pytest.mark.etcd)])
def registry(request: pytest.FixtureRequest) -> Iterator[Registry]:
    """A registry of each backend (etcd: the session's server, a namespace of its own)."""
    if request.param == "memory":
        reg = memory_backend()
    else:
        etcd_backend = pytest.importorskip("fyerreg.registry.etcd", reason="the etcd backend is not merged yet")
        endpoints = request.getfixturevalue("etcd_endpoints")
        reg = etcd_backend.EtcdRegistry(endpoints=endpoints, namespace=f"disc-{uuid.uuid4().hex[:12]}", ttl=10)
    yield reg
    reg.close()


@pytest.fixture
def mem_registry() -> Iterator[Registry]:
    """A memory registry, for tests of backend-independent logic or of fault injection."""
    reg = memory_backend()
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
