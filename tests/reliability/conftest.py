"""Fixtures of the reliability tests: registries on the shared three-member cluster."""

from __future__ import annotations

from typing import Iterator

import pytest

from fyerreg.testing import EtcdCluster
from tests.helpers import Registries
from tests.registry.etcd.conftest import closing_registries, namespace, registries  # noqa: F401 - shared fixtures


@pytest.fixture
def cluster_registries(etcd_cluster: EtcdCluster, namespace: str) -> Iterator[Registries]:  # noqa: F811
    """Registries on every member of the cluster, closed before the cluster is healed.

    No fyerreg thread may outlive them.
    """
    yield from closing_registries(etcd_cluster.endpoints, namespace)
