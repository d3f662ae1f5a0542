"""Fixtures of the CLI tests: a namespace of the test's own, the commands' environment, a registry beside them."""

from __future__ import annotations

import uuid
from typing import Any, Dict, List

import pytest

from .support import cli_env


@pytest.fixture
def namespace() -> str:
    return f"cli-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def env(etcd_endpoints: List[str], namespace: str) -> Dict[str, str]:
    return cli_env(etcd_endpoints, namespace)


@pytest.fixture
def registry(etcd_registry: Any) -> Any:
    """A registry writing into the commands' namespace."""
    return etcd_registry
