"""examples/grpc_greeter_server.py and examples/grpc_greeter_client.py as real processes on a real etcd."""

from __future__ import annotations

import re
import signal
from typing import Any, List

import pytest

from tests.helpers import Proc

from ..procs import EXAMPLES, instances, python

pytestmark = [pytest.mark.etcd, pytest.mark.slow]


def test_the_greeter_client_calls_both_servers_sync_and_aio_and_they_deregister_on_a_signal(
        etcd_endpoints: List[str], etcd_client: Any, procs: List[Proc]) -> None:
    etcd = ",".join(etcd_endpoints)
    servers = {}
    for name, extra in (("a", []), ("b", ["--aio"])):
        proc = python(str(EXAMPLES / "grpc_greeter_server.py"), "--name", name, "--etcd", etcd, *extra)
        procs.append(proc)
        proc.wait_for(f"greeter {name} serving and registered at 127.0.0.1:")
        servers[name] = proc
    records = instances(etcd_client, "grpc-greeter")
    assert sorted(r["metadata"]["name"] for r in records) == ["a", "b"]
    assert all(r["status"] == 1 and r["version"] == "1.0.0" for r in records)

    for extra in ([], ["--aio"]):
        client = python(str(EXAMPLES / "grpc_greeter_client.py"), "--etcd", etcd, "--count", "4", *extra)
        procs.append(client)
        assert client.wait() == 0, client.output()
        hellos = [line for line in client.lines if line.startswith("Hello request-")]
        assert len(hellos) == 4, client.output()
        assert {re.sub(r".*from greeter ", "", line) for line in hellos} == {"a", "b"}
        streamed = [line for line in client.lines if line.startswith("Hello stream #")]
        assert [line.split(",")[0] for line in streamed] == ["Hello stream #0", "Hello stream #1"]

    servers["a"].signal(signal.SIGINT)
    assert servers["a"].wait() == 0  # deregistered and stopped first, then Python's KeyboardInterrupt
    assert "greeter a stopped" in servers["a"].output()
    assert [r["metadata"]["name"] for r in instances(etcd_client, "grpc-greeter")] == ["b"]
    servers["b"].signal(signal.SIGTERM)
    assert servers["b"].wait() == 0
    assert "greeter b stopped" in servers["b"].output()
    assert instances(etcd_client, "grpc-greeter") == []
