"""Fixtures of the etcd backend tests: registries on the shared etcd or on a private one."""

from __future__ import annotations

import uuid
from typing import Any, Iterator, List

import pytest

from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import Registries, no_fyerreg_thread_left


def etcd_registries(endpoints: List[str], namespace: str) -> Registries:
    """Registries on ``endpoints`` in ``namespace``, with the short ttl and retries these tests wait on."""

    def make(**options: Any) -> EtcdRegistry:
        options.setdefault("endpoints", endpoints)
        options.setdefault("namespace", namespace)
        options.setdefault("ttl", 3)
        options.setdefault("dial_timeout", 3.0)
        options.setdefault("retry_interval", 0.2)
        return EtcdRegistry(**options)

    return Registries(make, "etcd", namespace=namespace)


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"t-{uuid.uuid4().hex[:12]}"


def closing_registries(endpoints: List[str], namespace: str) -> Iterator[Registries]:
    """Yield a Registries on ``endpoints``; then close them all: no fyerreg thread may outlive them."""
    with no_fyerreg_thread_left():
        made = etcd_registries(endpoints, namespace)
        try:
            yield made
        finally:
            made.close(timeout=5.0)


@pytest.fixture
def registries(etcd_endpoints: List[str], namespace: str) -> Iterator[Registries]:
    """Registries on the shared etcd; no fyerreg thread may outlive them."""
    yield from closing_registries(etcd_endpoints, namespace)
