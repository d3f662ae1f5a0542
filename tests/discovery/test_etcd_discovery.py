"""Discovery on a real etcd that dies: the last set keeps serving, then changes flow again."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from fyerreg import Discovery
from fyerreg.registry import etcd as etcd_backend
from tests.helpers import wait_until

from .util import inst, insts

pytestmark = pytest.mark.etcd

TTL = 3


def test_stale_set_kept_while_etcd_is_down(etcd_server, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    path = tmp_path / "instances.json"
    provider = etcd_backend.EtcdRegistry(endpoints=etcd_server.endpoints, ttl=TTL)
    consumer = etcd_backend.EtcdRegistry(endpoints=etcd_server.endpoints)
    cold = etcd_backend.EtcdRegistry(endpoints=etcd_server.endpoints)
    try:
        for i in insts(3):
            provider.register(i)
        ids = {i.id for i in insts(3)}
        with Discovery(consumer, snapshot_file=path, subscribe_timeout=2.0) as d:
            wait_until(lambda: {i.id for i in d.instances("svc", "1.0.0")} == ids, timeout=10)
            etcd_server.kill()
            # Longer than the lease TTL: every pick still gets one of the last known instances.
            end = time.monotonic() + TTL + 2
            picked = set()
            while time.monotonic() < end:
                picked.add(d.select("svc", "1.0.0").id)
                time.sleep(0.02)  # pacing the picks, not waiting for anything
            assert picked == ids

            # A cold start while etcd is down serves the saved set.
            with Discovery(cold, snapshot_file=path, subscribe_timeout=1.0) as fresh:
                assert fresh.select("svc", "1.0.0").id in ids

            etcd_server.start()
            provider.register(inst(7))
            wait_until(lambda: "i007" in {i.id for i in d.instances("svc", "1.0.0")}, timeout=30)
            stale = next(e for e in d.stats()["gauges"]["service_stale"] if e["labels"]["version"] == "1.0.0")
            assert stale["value"] == 0
    finally:
        for reg in (cold, consumer, provider):
            reg.close()
