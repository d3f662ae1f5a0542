"""The failover scenario of the example greeter against a real etcd: three servers (two sync, one
grpc.aio), one SIGKILLed and one stopped gracefully while 4 threads (sync channels) or 50 asyncio
tasks (asyncio channels) keep calling: no call fails; the killed instance is gone from every client
within its ttl, the stopped one before its process exits; health as the standard stub reads it."""

from __future__ import annotations

import asyncio
import re
import signal
import threading
import time
from typing import Any, Callable, Dict, List, Optional

import greeter_pb2
import greeter_pb2_grpc
import pytest

from fyerreg.contrib.grpc import AsyncDiscoveryChannel, DiscoveryChannel
from fyerreg.discovery import Discovery
from fyerreg.registry.etcd import EtcdRegistry
from tests.helpers import Proc, no_fyerreg_thread_left, wait_until

from ..procs import EXAMPLES, python
from .test_server import NOT_SERVING, SERVING, health_of

pytestmark = [pytest.mark.etcd, pytest.mark.slow]

TTL = 3
DRAIN = 1.0
SERVICE = "grpc-greeter"
IDEMPOTENT = {"/greeter.Greeter/SayHello"}


class Server:
    def __init__(self, name: str, etcd: str, procs: List[Proc], aio: bool) -> None:
        self.name = name
        self.proc = python(str(EXAMPLES / "grpc_greeter_server.py"), "--name", name, "--etcd", etcd,
                           "--ttl", str(TTL), "--drain", str(DRAIN), "--delay", "0.005",
                           *(["--aio"] if aio else []))
        procs.append(self.proc)
        line = self.proc.wait_for("serving and registered")
        match = re.search(r"at (\S+:(\d+))$", line)
        assert match is not None, line
        self.address, self.port = match.group(1), int(match.group(2))


class Client:
    """One calling process's worth of state: its own registry, discovery and channel."""

    def __init__(self, etcd: List[str], aio: bool) -> None:
        self.registry = EtcdRegistry(endpoints=etcd)
        self.discovery = Discovery(self.registry)
        self.channel: Any = (AsyncDiscoveryChannel if aio else DiscoveryChannel)(
            self.discovery, SERVICE, "1.0.0", idempotent_methods=IDEMPOTENT)
        self.stub = greeter_pb2_grpc.GreeterStub(self.channel)

    def knows(self, address: str) -> bool:
        """True while the client's view of the service (ejected instances included) or an open channel has
        ``address``: the registry removed it only when neither has."""
        [view] = [v for v in self.discovery.describe()["services"] if v["service"] == SERVICE]
        return address in [row["address"] for row in view["instances"]] or address in self.channel.addresses()

    def close(self) -> None:
        self.discovery.close()
        self.registry.close()


class Load:
    """Calls SayHello on the clients until stopped, counting replies per server and failures."""

    def __init__(self) -> None:
        self.replies: Dict[str, int] = {}
        self.failures: List[BaseException] = []
        self.stop = threading.Event()
        self._lock = threading.Lock()

    def record(self, reply: Optional[Any], error: Optional[BaseException]) -> None:
        with self._lock:
            if error is not None:
                self.failures.append(error)
            else:
                name = reply.message.rsplit(" ", 1)[-1]
                self.replies[name] = self.replies.get(name, 0) + 1

    def calls_since(self, mark: Dict[str, int]) -> Dict[str, int]:
        with self._lock:
            return {k: v - mark.get(k, 0) for k, v in self.replies.items() if v - mark.get(k, 0)}

    def snapshot(self) -> Dict[str, int]:
        with self._lock:
            return dict(self.replies)


def sync_load(clients: List[Client], load: Load) -> Callable[[], None]:
    def work(client: Client, n: int) -> None:
        while not load.stop.is_set():
            try:
                reply = client.stub.SayHello(greeter_pb2.HelloRequest(name=f"t{n}"), timeout=5)
            except Exception as exc:
                load.record(None, exc)
            else:
                load.record(reply, None)
            time.sleep(0.002)

    threads = [threading.Thread(target=work, args=(clients[n % len(clients)], n)) for n in range(4)]
    for t in threads:
        t.start()

    def stop() -> None:
        load.stop.set()
        for t in threads:
            t.join(30)
    return stop


def aio_load(clients: List[Client], load: Load) -> Callable[[], None]:
    async def work(client: Client, n: int) -> None:
        while not load.stop.is_set():
            try:
                reply = await client.stub.SayHello(greeter_pb2.HelloRequest(name=f"t{n}"), timeout=5)
            except Exception as exc:
                load.record(None, exc)
            else:
                load.record(reply, None)
            await asyncio.sleep(0.02)

    async def main() -> None:
        await asyncio.gather(*(work(clients[n % len(clients)], n) for n in range(50)))
        for client in clients:
            await client.channel.close()

    loop_thread = threading.Thread(target=asyncio.run, args=(main(),))
    loop_thread.start()

    def stop() -> None:
        load.stop.set()
        loop_thread.join(30)
    return stop


def gone_times(clients: List[Client], address: str, until: threading.Event) -> List[Optional[float]]:
    """Watch (every 5 ms, in threads) for the moment each client no longer knows ``address``."""
    seen: List[Optional[float]] = [None] * len(clients)

    def watch(n: int) -> None:
        while not until.is_set():
            if not clients[n].knows(address):
                seen[n] = time.monotonic()
                return
            time.sleep(0.005)

    for n in range(len(clients)):
        threading.Thread(target=watch, args=(n,), daemon=True).start()
    return seen


@pytest.mark.parametrize("aio", [False, True], ids=["4 threads, sync channels", "50 tasks, asyncio channels"])
def test_no_call_fails_while_one_server_is_killed_and_one_stopped(
        etcd_endpoints: List[str], procs: List[Proc], aio: bool) -> None:
    etcd = ",".join(etcd_endpoints)
    # Sync channels face a killed sync server and a stopped asyncio one; asyncio channels the reverse.
    servers = [Server(name, etcd, procs, aio=is_aio) for name, is_aio in (("a", False), ("b", True), ("c", False))]
    killed, stopped, kept = (servers[0], servers[1], servers[2]) if not aio else (servers[1], servers[0], servers[2])
    assert all(health_of(s.port) == health_of(s.port, "greeter.Greeter") == SERVING for s in servers)

    with no_fyerreg_thread_left("closing the clients"):
        clients = [Client(etcd_endpoints, aio) for _ in range(2)]
        load = Load()
        stop_load = (aio_load if aio else sync_load)(clients, load)
        try:
            wait_until(lambda: set(load.snapshot()) == {"a", "b", "c"}, timeout=20,
                       message="every server answered")

            killed.proc.popen.send_signal(signal.SIGKILL)
            killed_at = time.monotonic()
            for client in clients:
                wait_until(lambda c=client: not c.knows(killed.address), timeout=TTL + 5)
            gone_after = time.monotonic() - killed_at
            assert gone_after <= TTL, f"the killed server stayed known {gone_after:.2f} s, past its ttl"

            done = threading.Event()
            seen_gone = gone_times(clients, stopped.address, done)
            stopped.proc.signal(signal.SIGTERM)
            wait_until(lambda: health_of(stopped.port) == NOT_SERVING, timeout=DRAIN,
                       message="NOT_SERVING as soon as the shutdown began")
            stopped.proc.wait(30)
            exited_at = time.monotonic()
            done.set()
            assert all(t is not None and t < exited_at for t in seen_gone), \
                f"the stopped server was still known to a client when its process exited: {seen_gone}"

            mark = load.snapshot()
            wait_until(lambda: load.calls_since(mark).get("c", 0) >= 20, timeout=10)
        finally:
            stop_load()
            for client in clients:
                if not aio:
                    client.channel.close()
                client.close()
    assert load.failures == [], f"{len(load.failures)} calls failed, the first: {load.failures[:1]!r}"
    assert set(load.calls_since(mark)) == {"c"}
    assert sum(load.snapshot().values()) > 100
    assert health_of(kept.port) == SERVING
