"""Fork safety with a real etcd: an EtcdRegistry and a Discovery used in a forked child start over there."""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, List, Set

import pytest

from fyerreg import Discovery, Instance
from fyerreg.registry.etcd import EtcdRegistry
from tests.discovery.test_fork import wait_child
from tests.helpers import wait_until

from .procs import Proc, ask_concurrently, free_port, get_json, instances

pytestmark = pytest.mark.etcd

HERE = Path(__file__).resolve().parent


def test_child_reconnects_and_never_touches_the_parents_registrations(etcd_endpoints: List[str]) -> None:
    namespace = f"fork{os.getpid()}"
    with EtcdRegistry(endpoints=etcd_endpoints, namespace=namespace, ttl=5) as registry, \
            Discovery(registry) as discovery:
        parent = Instance.new("svc", "1", "127.0.0.1:8001", id="parent")
        registry.register(parent)
        assert [i.id for i in discovery.instances("svc", "1")] == ["parent"]
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the child
            code = 1
            try:
                registry.register(Instance.new("svc", "1", "127.0.0.1:8002", id="child"))
                wait_until(lambda: [i.id for i in discovery.instances("svc", "1")] == ["child", "parent"],
                           timeout=20)
                discovery.close()
                registry.close()  # deregisters the child's instance only
                code = 0
            finally:
                os._exit(code)
        assert wait_child(pid, timeout=60) == 0
        assert [i.id for i in registry.list_services("svc", "1")] == ["parent"]
        assert registry.registration_state(parent).registered
        wait_until(lambda: [i.id for i in discovery.instances("svc", "1")] == ["parent"], timeout=10)


def test_gunicorn_preloaded_discovery_works_in_both_workers(etcd_endpoints: List[str], etcd_client: Any) -> None:
    port = free_port()
    master = Proc([sys.executable, "-m", "gunicorn", "-c", str(HERE / "preload" / "gunicorn_preload.conf.py")],
                  env={"PORT": str(port), "FYERREG_ETCD": ",".join(etcd_endpoints)})
    try:
        [record] = wait_until(lambda: instances(etcd_client, "preloaded"), timeout=30)
        # Registered after the workers were forked: only a discovery that subscribed again in the worker sees it.
        pids: Set[int] = set()

        def ask() -> None:
            answer = get_json(f"http://127.0.0.1:{port}/peers")
            if answer["peers"] == [record["address"]]:
                pids.add(answer["pid"])

        def both_workers_see_it() -> bool:
            ask_concurrently(ask)
            return len(pids) == 2

        wait_until(both_workers_see_it, timeout=30, interval=0.05)
        master.signal(signal.SIGTERM)
        assert master.wait() == 0, master.output()
        assert instances(etcd_client, "preloaded") == []
    finally:
        master.close()
