"""Fixtures of the reliability tests: registries on the shared three-member cluster."""

from __future__ import annotations

import threading
from typing import Iterator

import pytest

from fyerreg.testing import EtcdCluster
from tests.etcd.conftest import Registries, namespace, registries  # noqa: F401 - fixtures shared with them

pytestmark = pytest.mark.etcd


@pytest.fixture
def cluster_registries(etcd_cluster: EtcdCluster, namespace: str) -> Iterator[Registries]:  # noqa: F811
    """Registries on every member of the cluster; closed (before the cluster is healed) after the test.

    No fyerreg thread may outlive them.
    """
    before = set(threading.enumerate())
    made = Registries(etcd_cluster.endpoints, namespace)
    try:
        yield made
    finally:
        made.close()
    leaked = [t.name for t in threading.enumerate()
              if t not in before and t.name.startswith("fyerreg-") and t.is_alive()]
    assert not leaked, f"threads left running after close: {leaked}"
