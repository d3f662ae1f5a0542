"""Fixtures of the dashboard's tests: a namespace of the test's own, a registry writing into it,
and a dashboard on another registry reading it."""

from __future__ import annotations

import uuid
from typing import Any, Iterator, List

import pytest


@pytest.fixture
def namespace() -> str:
    return f"ui-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def registry(etcd_registry: Any) -> Any:
    """The registry the test registers instances with (another process, as far as the dashboard knows)."""
    return etcd_registry


@pytest.fixture
def viewer(etcd_endpoints: List[str], namespace: str) -> Iterator[Any]:
    """The registry the dashboard reads through."""
    from fyerreg.registry.etcd import EtcdRegistry

    reg = EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace)
    try:
        yield reg
    finally:
        reg.close()
