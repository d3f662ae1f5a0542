"""Shared pytest configuration. The etcd fixtures come from fyerreg's own plugin (entry point)."""

import os
import signal
import socket
import uuid
from typing import Any, Iterator, List

import pytest

from fyerreg import MemoryRegistry
from fyerreg.testing import Certificates, TLSEtcdServer
from tests.helpers import new_certificates

pytest_plugins = ["pytester"]

# Tests send SIGINT to child processes (Ctrl-C). A session started as a background job of a
# shell without job control inherits SIGINT ignored, and so would every child: Python then
# installs no KeyboardInterrupt handler. A handled signal is reset to its default in children.
if signal.getsignal(signal.SIGINT) is signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture
def procs() -> Iterator[List[Any]]:
    """A list to put started helper processes in (anything with ``close()``); each is closed after the test."""
    started: List[Any] = []
    yield started
    for proc in reversed(started):
        proc.close()


@pytest.fixture(autouse=True)
def _no_configuration_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    """The machine's own FYERREG_*, POD_IP and HOST_IP never configure a test (the FYERREG_TEST_* stay)."""
    for name in list(os.environ):
        if (name.startswith("FYERREG_") and not name.startswith("FYERREG_TEST_")) or name in ("POD_IP", "HOST_IP"):
            monkeypatch.delenv(name)


# -- Fixtures several folders share; a folder or module with another meaning for a name overrides it. --


@pytest.fixture
def registry() -> Iterator[MemoryRegistry]:
    """A registry in memory of the test's own, closed after it."""
    with MemoryRegistry() as reg:
        yield reg


@pytest.fixture
def port() -> Iterator[int]:
    """A port of 127.0.0.1 a listening socket holds for the test: connections to it are accepted (never served)."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        yield server.getsockname()[1]


@pytest.fixture
def namespace() -> str:
    """A namespace no other test uses."""
    return f"test-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def environment(monkeypatch: pytest.MonkeyPatch, etcd_endpoints: List[str], namespace: str) -> pytest.MonkeyPatch:
    """FYERREG_ENDPOINTS and FYERREG_NAMESPACE naming the test etcd and the test's ``namespace``."""
    monkeypatch.setenv("FYERREG_ENDPOINTS", ",".join(etcd_endpoints))
    monkeypatch.setenv("FYERREG_NAMESPACE", namespace)
    return monkeypatch


@pytest.fixture
def etcd_registry(etcd_endpoints: List[str], namespace: str) -> Iterator[Any]:
    """An EtcdRegistry (lease TTL 10 s) writing into the test's ``namespace``, closed after the test."""
    from fyerreg.registry.etcd import EtcdRegistry

    reg = EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=10)
    try:
        yield reg
    finally:
        reg.close()


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Certificates:
    """A CA with a server and a client certificate signed by it (skipped without ``cryptography``)."""
    return new_certificates(tmp_path_factory, "pki")


@pytest.fixture(scope="module")
def tls_server(certs: Certificates) -> Iterator[TLSEtcdServer]:
    """etcd serving TLS that demands a client certificate signed by ``certs``' CA."""
    with TLSEtcdServer(certs) as server:
        yield server
