"""Call a service by name while its servers die: zero failed calls.

    python examples/greeter_demo.py

Starts its own etcd and three greeter servers (examples/greeter_server.py), then calls
GreeterService.SayHello in a loop through discovery, printing who answered. Mid-run one
server is SIGKILLed (it stays registered until its lease expires: the client fails over
to the others and ejects it) and one is stopped gracefully (it deregisters, finishes its
calls in flight, then exits). Everything it started is stopped at the end.
"""

from __future__ import annotations

import collections
import logging
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Dict, List

from fyerreg import Client, ClientOptions, Discovery, EtcdRegistry
from fyerreg.testing import EtcdServer

HERE = Path(__file__).resolve().parent
CALLS = 45
KILL_AT, STOP_AT = 12, 26
TTL = 2


def start_server(endpoint: str, name: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "greeter_server.py"), "--etcd", endpoint, "--name", name,
         "--port", "0", "--ttl", str(TTL)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert proc.stdout is not None
    print("  " + proc.stdout.readline().strip())  # "greeter <name> serving and registered at ..."
    return proc


def main() -> None:
    logging.basicConfig(level=logging.WARNING, format="  [log] %(message)s")  # show ejections as they happen
    servers: Dict[str, subprocess.Popen[str]] = {}
    failed: List[str] = []
    with EtcdServer() as etcd:
        print(f"etcd started at {etcd.endpoint}")
        try:
            for name in "abc":
                servers[name] = start_server(etcd.endpoint, name)
            with EtcdRegistry(endpoints=etcd.endpoints) as registry, \
                    Discovery(registry, balancer="round_robin") as discovery, \
                    Client(ClientOptions(discovery=discovery, service_name="greeter-service",
                                         service_version="1.0.0", timeout=5, retries=2,
                                         idempotent_methods={"GreeterService.SayHello"})) as client:
                answered: Dict[str, int] = collections.Counter()
                for i in range(1, CALLS + 1):
                    if i == KILL_AT:
                        print("  >> SIGKILL greeter a: no goodbye, still registered until its "
                              f"{TTL}s lease expires")
                        servers["a"].kill()
                    if i == STOP_AT:
                        print("  >> SIGTERM greeter b: it deregisters, drains, then exits")
                        servers["b"].send_signal(signal.SIGTERM)
                    try:
                        reply = client.call("GreeterService", "SayHello", {"name": f"call {i}"})
                    except Exception as exc:  # the demo's point is that this never happens
                        failed.append(f"call {i}: {exc!r}")
                        print(f"  call {i:2d} FAILED: {exc!r}")
                        continue
                    who = reply["message"].rsplit(" ", 1)[-1]
                    answered[who] += 1
                    print(f"  call {i:2d} -> answered by greeter {who}")
                    time.sleep(0.1)
                stats = client.stats()["counters"]
                print(f"{CALLS} calls, {len(failed)} failed, {int(stats['retries'])} retried on another "
                      f"instance; answers: " + ", ".join(f"{k}={v}" for k, v in sorted(answered.items())))
                servers["b"].wait(timeout=30)
                print(f"  greeter b exited with {servers['b'].returncode} after its graceful stop")
        finally:
            for proc in servers.values():
                if proc.poll() is None:
                    proc.send_signal(signal.SIGTERM)
                proc.wait(timeout=30)
                if proc.stdout is not None:
                    proc.stdout.close()
            print("servers stopped")
    print("etcd stopped; demo done")
    if failed:
        sys.exit(1)


if __name__ == "__main__":
    main()
