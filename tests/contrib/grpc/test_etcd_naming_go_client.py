"""A gRPC-Go client dialing ``etcd:///<target>`` through etcd's own resolver finds a Python gRPC server
that fyerreg registered in the etcd-naming layout, and calls it (the standard health service).

The Go program is ``go/etcdnamingclient/main.go``, built here in GOPATH mode against Debian's
packaged Go sources: ``apt-get install golang-go golang-etcd-server-dev`` (``.ci/run`` installs
them where it can). That is etcd 3.4.23 with etcd's new naming API backported
(``go.etcd.io/etcd/clientv3/naming/resolver/resolver.go`` and ``naming/endpoints/internal/update.go``
in ``golang-etcd-server-dev_3.4.23-4``, read for this test: the resolver watches
``<target>/`` and dials each value's ``Addr``). Without them the test is skipped, saying so.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import uuid
from concurrent import futures
from pathlib import Path
from typing import Any, Dict, Iterator, List

import grpc
import pytest

from fyerreg.contrib.grpc import ServerRegistration
from fyerreg.registry.etcd import EtcdRegistry
from fyerreg.registry.layouts import EtcdNamingLayout
from fyerreg.serving import InstanceSpec
from tests.helpers import no_fyerreg_thread_left

pytestmark = pytest.mark.etcd

GOCODE = Path("/usr/share/gocode")
RESOLVER = GOCODE / "src/go.etcd.io/etcd/clientv3/naming/resolver/resolver.go"
SOURCE = Path(__file__).parent / "go" / "etcdnamingclient"


def _go_env(tmp: Path) -> Dict[str, str]:
    return {**os.environ, "GOPATH": str(GOCODE), "GO111MODULE": "off", "GOCACHE": str(tmp / "gocache"),
            "GOFLAGS": ""}


@pytest.fixture(scope="module")
def go_client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The Go client, built once; the test is skipped where Go or etcd's Go sources are missing."""
    go = shutil.which("go")
    if go is None or not RESOLVER.is_file():
        pytest.skip("no Go toolchain with etcd's Go client sources: apt-get install golang-go golang-etcd-server-dev")
    tmp = tmp_path_factory.mktemp("go")
    binary = tmp / "etcdnamingclient"
    built = subprocess.run([go, "build", "-o", str(binary), "."], cwd=SOURCE, env=_go_env(tmp),
                           capture_output=True, text=True, timeout=300, check=False)
    assert built.returncode == 0, built.stderr
    return binary


@pytest.fixture
def root(etcd_client: Any) -> Iterator[str]:
    prefix = f"go-naming-{uuid.uuid4().hex[:10]}/"
    yield prefix
    etcd_client.delete_prefix(prefix)


def test_a_grpc_go_client_dialing_etcd_target_calls_a_server_fyerreg_registered(
        go_client: Path, etcd_endpoints: List[str], root: str) -> None:
    layout = EtcdNamingLayout(root=root)
    with no_fyerreg_thread_left("stop and close"):
        registry = EtcdRegistry(endpoints=etcd_endpoints, ttl=5, layout=layout)
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=4))
        registration = ServerRegistration(server, registry, InstanceSpec("greeter", address="127.0.0.1:0"),
                                          grace=1.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        try:
            registration.start(port)
            assert registration.wait_registered(10)
            target = layout.target("greeter")
            called = subprocess.run([str(go_client), ",".join(etcd_endpoints), target], capture_output=True,
                                    text=True, timeout=60, check=False)
            assert called.returncode == 0, called.stderr
            assert called.stdout.strip() == "SERVING"  # the health service of our server, reached through etcd

            # Another target has no endpoints: the Go client finds nothing there.
            missing = subprocess.run([str(go_client), ",".join(etcd_endpoints), layout.target("nobody"), "2"],
                                     capture_output=True, text=True, timeout=60, check=False)
            assert missing.returncode == 1 and "dial" in missing.stderr
        finally:
            registration.stop()
            registry.close()
