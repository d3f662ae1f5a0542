"""Fixtures of the etcd backend tests: registries on the shared etcd or on a private one."""

from __future__ import annotations

import uuid
from typing import Any, Iterator, List

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import no_fyerreg_thread_left


class Registries:
    """Makes registries for one test (namespace unique to the test); closes them all at teardown."""

    def __init__(self, endpoints: List[str], namespace: str) -> None:
        self.endpoints = endpoints
        self.namespace = namespace
        self._made: List[EtcdRegistry] = []

    def new(self, **options: Any) -> EtcdRegistry:
        options.setdefault("endpoints", self.endpoints)
        options.setdefault("namespace", self.namespace)
        options.setdefault("ttl", 3)
        options.setdefault("dial_timeout", 3.0)
        options.setdefault("retry_interval", 0.2)
        registry = EtcdRegistry(**options)
        self._made.append(registry)
        return registry

    def close(self) -> None:
        for registry in reversed(self._made):
            registry.close(timeout=5.0)


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


def closing_registries(endpoints: List[str], namespace: str) -> Iterator[Registries]:
    """Yield a Registries on ``endpoints``; then close them all: no fyerreg thread may outlive them."""
    with no_fyerreg_thread_left():
        made = Registries(endpoints, namespace)
        try:
            yield made
        finally:
            made.close()


@pytest.fixture
def registries(etcd_endpoints: List[str], namespace: str) -> Iterator[Registries]:
    """Registries on the shared etcd; no fyerreg thread may outlive them."""
    yield from closing_registries(etcd_endpoints, namespace)
