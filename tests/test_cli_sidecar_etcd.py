"""``fyerreg register`` whose record another process takes over: the sidecar exits 1 with one line."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid
from typing import Iterator, List

import pytest

from fyerreg import EtcdRegistry, Instance

pytestmark = pytest.mark.etcd

TTL = 3  # the sidecar's keepalive looks at its record every second


@pytest.fixture
def namespace() -> str:
    return f"sidecar-{uuid.uuid4().hex[:8]}"


@pytest.fixture
def sidecars() -> Iterator[List[subprocess.Popen]]:
    started: List[subprocess.Popen] = []
    yield started
    for proc in started:
        if proc.poll() is None:
            proc.kill()
        proc.communicate(timeout=30)


def test_a_sidecar_whose_record_was_taken_over_exits_1_with_one_line(
        etcd_endpoints: List[str], namespace: str, sidecars: List[subprocess.Popen]) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FYERREG_")}
    env.update(FYERREG_ENDPOINTS=",".join(etcd_endpoints), FYERREG_NAMESPACE=namespace, PYTHONUNBUFFERED="1")
    sidecar = subprocess.Popen(
        [sys.executable, "-m", "fyerreg", "register", "--service", "legacy", "--version", "v1",
         "--address", "127.0.0.1:7000", "--id", "side-1", "--ttl", str(TTL)],
        env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    sidecars.append(sidecar)
    assert sidecar.stdout is not None
    assert sidecar.stdout.readline().startswith("registered legacy/v1/side-1")

    with EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=30) as other:
        newcomer = Instance.new("legacy", "v1", "127.0.0.1:7100", id="side-1")
        other.register(newcomer)  # takes the record over
        try:
            out, err = sidecar.communicate(timeout=TTL * 3)
        except subprocess.TimeoutExpired:
            pytest.fail("the sidecar kept running after its record was taken over")
        assert sidecar.returncode == 1, err
        ours = [line for line in err.splitlines() if line.startswith("fyerreg: ")]
        assert len(ours) == 1 and "legacy/v1/side-1" in ours[0] and "taken over" in ours[0], err
        assert out == ""
        # Exiting left the newcomer's record alone.
        assert [i.address for i in other.list_services("legacy", "v1")] == ["127.0.0.1:7100"]
        other.deregister(newcomer)
        assert other.list_services("legacy", "v1") == []
