"""Fork safety with a real etcd: an EtcdRegistry and a Discovery used in a forked child start over there."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any, List, Set

import pytest

from tests.helpers import Proc, free_port, wait_until

from .procs import ask_concurrently, get_json, instances

pytestmark = [
    pytest.mark.etcd,
    # A forked child that uses gRPC needs gRPC's fork support; a run that turned it off (the
    # Python 3.9 pass, see docs/getting-started.md) cannot test that.
    pytest.mark.skipif(os.environ.get("GRPC_ENABLE_FORK_SUPPORT", "").strip().lower() in ("0", "false"),
                       reason="GRPC_ENABLE_FORK_SUPPORT is off: gRPC cannot be used in a forked child"),
]

HERE = Path(__file__).resolve().parent


def test_child_reconnects_and_never_touches_the_parents_registrations(etcd_endpoints: List[str]) -> None:
    # In a fresh interpreter: the app forked is one holding a registry, not this test process.
    namespace = f"fork{os.getpid()}"
    result = subprocess.run(
        [sys.executable, "-m", "tests.contrib.fork.fork_registry", ",".join(etcd_endpoints), namespace],
        capture_output=True, text=True, timeout=120, cwd=HERE.parent.parent,
    )
    assert result.returncode == 0, result.stdout + result.stderr


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
