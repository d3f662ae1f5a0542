"""Real-etcd test support, shipped so applications' own test suites can use it.

- :class:`EtcdServer`: a local etcd process on free loopback ports that a test can
  start, stop, kill, restart, pause, resume and wipe.
- :func:`raw_client`: a plain ``pyetcd`` client on given endpoints, to poke etcd from outside.
- The pytest plugin :mod:`fyerreg.testing.plugin` (loaded automatically once fyerreg is
  installed) provides the ``etcd_endpoints``, ``etcd_server`` and ``etcd_client`` fixtures.
"""

from __future__ import annotations

from .client import parse_endpoint, raw_client
from .server import EtcdBinaryNotFoundError, EtcdServer, EtcdServerError, etcd_healthy, find_etcd_binary

__all__ = [
    "EtcdBinaryNotFoundError",
    "EtcdServer",
    "EtcdServerError",
    "etcd_healthy",
    "find_etcd_binary",
    "parse_endpoint",
    "raw_client",
]
