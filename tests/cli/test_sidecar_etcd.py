"""``fyerreg register`` whose record another process takes over: the sidecar exits 1 with one line."""

from __future__ import annotations

import subprocess
from typing import Dict, List

import pytest

from fyerreg import EtcdRegistry, Instance
from tests.helpers import Proc

from .support import cli_process

pytestmark = pytest.mark.etcd

TTL = 3  # the sidecar's keepalive looks at its record every second


def test_a_sidecar_whose_record_was_taken_over_exits_1_with_one_line(
        etcd_endpoints: List[str], namespace: str, env: Dict[str, str], procs: List[Proc]) -> None:
    sidecar = cli_process("register", "--service", "legacy", "--version", "v1",
                          "--address", "127.0.0.1:7000", "--id", "side-1", "--ttl", str(TTL), env=env)
    procs.append(sidecar)
    assert sidecar.next_line().startswith("registered legacy/v1/side-1")

    with EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=30) as other:
        newcomer = Instance.new("legacy", "v1", "127.0.0.1:7100", id="side-1")
        other.register(newcomer)  # takes the record over
        try:
            code = sidecar.wait(timeout=TTL * 3)
        except subprocess.TimeoutExpired:
            pytest.fail("the sidecar kept running after its record was taken over")
        err = sidecar.errors
        assert code == 1, err
        ours = [line for line in err if line.startswith("fyerreg: ")]
        assert len(ours) == 1 and "legacy/v1/side-1" in ours[0] and "taken over" in ours[0], err
        assert sidecar.rest() == []
        # Exiting left the newcomer's record alone.
        assert [i.address for i in other.list_services("legacy", "v1")] == ["127.0.0.1:7100"]
        other.deregister(newcomer)
        assert other.list_services("legacy", "v1") == []
