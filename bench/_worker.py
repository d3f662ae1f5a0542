"""Entry points of the benchmark's child processes (started with the ``spawn`` method).

Every child talks to the parent over a ``multiprocessing`` pipe and stamps events with
``time.monotonic()``, which is one clock for every process of a Linux machine
(CLOCK_MONOTONIC), so a time taken in one process can be compared with another's.
"""

from __future__ import annotations

import gc
import os
import queue
import threading
import time
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fyerreg import Instance
from fyerreg.testing import raw_client

from .context import etcd_registry, fleet, record_key, service_prefix

WAIT = 15.0
"""Longest a child waits for an expected change before it reports a timeout."""


def rss_bytes() -> int:
    """Resident set size of this process."""
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def os_threads() -> int:
    """Threads of this process, including those started by C libraries (gRPC)."""
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("Threads:"):
                return int(line.split()[1])
    return 0


# -- propagation: one subscriber process watching with fyerreg and with a raw client ---------------


def _satisfied(snapshot: Sequence[Any], expect: Tuple[Any, ...]) -> bool:
    kind, ident = expect[0], expect[1]
    found = next((inst for inst in snapshot if inst.id == ident), None)
    if kind == "present":
        return found is not None
    if kind == "absent":
        return found is None
    return found is not None and found.metadata.get("seq") == expect[2]


def subscriber(conn: Connection, endpoints: List[str], namespace: str, service: str, raw_prefix: str,
               with_fyerreg: bool, others: int = 0) -> None:
    """Watch ``service`` with a fyerreg subscription and ``raw_prefix`` with a raw watch callback.

    With ``others``, the same registry first subscribes to that many other services
    (``idle0000``, ...), held open and idle.

    For each ``("expect", via, ...)`` message: answer ``"armed"``, wait until the change is
    seen, answer ``("seen", monotonic time)``. ``via`` is ``"fyerreg"`` (the time the
    snapshot comes out of the subscription queue; expecting ``("present"|"absent", id)``
    or ``("meta", id, seq)``) or ``"raw"`` (the time the watch callback runs: the floor;
    expecting ``(key, "put"|"delete")``).
    """
    from pyetcd.events import DeleteEvent

    raw_events: queue.SimpleQueue[Tuple[str, str, float]] = queue.SimpleQueue()

    def on_watch(response: Any) -> None:
        now = time.monotonic()
        for event in getattr(response, "events", ()):
            raw_events.put((event.key.decode(), "delete" if isinstance(event, DeleteEvent) else "put", now))

    client: Any = raw_client(endpoints, timeout=30.0)
    client.add_watch_prefix_callback(raw_prefix, on_watch)
    registry: Any = None
    sub: Any = None
    latest: Sequence[Any] = []
    if with_fyerreg:
        registry = etcd_registry(endpoints=endpoints, namespace=namespace)
        held = [registry.subscribe(f"idle{n:04d}") for n in range(others)]
        for other in held:
            other.get(timeout=WAIT)
        sub = registry.subscribe(service, "1.0.0")
        latest = sub.get(timeout=WAIT)
    conn.send(("ready",))
    try:
        while True:
            message = conn.recv()
            if message[0] == "stop":
                break
            via, expect = message[1], message[2:]
            conn.send(("armed",))
            try:
                if via == "raw":
                    while True:
                        key, kind, seen = raw_events.get(timeout=WAIT)
                        if (key, kind) == expect:
                            break
                else:
                    while True:
                        latest = sub.get(timeout=WAIT)
                        seen = time.monotonic()
                        if _satisfied(latest, expect):
                            break
            except queue.Empty:
                conn.send(("timeout", expect))
                continue
            conn.send(("seen", seen))
    finally:
        if registry is not None:
            registry.close()
        client.close()


# -- footprint: a fresh process per measurement -------------------------------------------------------


def _settle() -> None:
    gc.collect()
    time.sleep(0.3)


def footprint_instances(conn: Connection, endpoints: List[str], namespace: str, counts: Sequence[int],
                        raw: bool) -> None:
    """Register up to each of ``counts`` instances, measuring RSS and threads; then time the cleanup.

    Sends ``{"base": ..., "points": [(count, rss, threads), ...], "close": seconds}``.
    """
    instances = fleet("footprint", max(counts))
    result: Dict[str, Any] = {"points": []}
    if raw:
        client: Any = raw_client(endpoints, timeout=30.0)
        client.get("/warm-up")
        leases: List[Any] = []

        def register(inst: Instance) -> None:
            leases.append(_raw_register(client, namespace, inst))
    else:
        registry = etcd_registry(endpoints=endpoints, namespace=namespace)
        registry.list_services("warm-up")

        def register(inst: Instance) -> None:
            registry.register(inst)
    _settle()
    result["base"] = (rss_bytes(), os_threads())
    done = 0
    for count in sorted(counts):
        for inst in instances[done:count]:
            register(inst)
        done = count
        _settle()
        result["points"].append((count, rss_bytes(), os_threads()))
    start = time.monotonic()
    if raw:
        for inst, lease in zip(instances, leases):
            client.delete(record_key(namespace, inst))
            client.revoke_lease(lease.id)
        result["close"] = time.monotonic() - start
        client.close()
    else:
        registry.close()
        result["close"] = time.monotonic() - start
    conn.send(result)


def _raw_register(client: Any, namespace: str, inst: Any) -> Any:
    lease = client.lease(30)
    client.put(record_key(namespace, inst), inst.to_json(), lease=lease)
    return lease


def footprint_subscriptions(conn: Connection, endpoints: List[str], namespace: str, counts: Sequence[int],
                            raw: bool) -> None:
    """Open up to each of ``counts`` subscriptions (one service each), measuring RSS and threads."""
    result: Dict[str, Any] = {"points": []}
    client: Any = raw_client(endpoints, timeout=30.0)
    client.get("/warm-up")
    if not raw:
        registry = etcd_registry(endpoints=endpoints, namespace=namespace)
        registry.list_services("warm-up")
    subs: List[Any] = []
    _settle()
    result["base"] = (rss_bytes(), os_threads())
    for count in sorted(counts):
        while len(subs) < count:
            service = f"svc{len(subs):04d}"
            if raw:
                subs.append(client.add_watch_prefix_callback(service_prefix(namespace, service), lambda _r: None))
            else:
                subs.append(registry.subscribe(service))
        _settle()
        result["points"].append((count, rss_bytes(), os_threads()))
    start = time.monotonic()
    if raw:
        for watch_id in subs:
            client.cancel_watch(watch_id)
    else:
        registry.close()
    result["close"] = time.monotonic() - start
    client.close()
    conn.send(result)


# -- failure detection: a process that registers and is then killed -------------------------------------


def registrant(conn: Connection, endpoints: List[str], namespace: str, service: str, ttl: int,
               ids: Sequence[str]) -> None:
    """Register ``ids`` with lease ``ttl``, spread over one keepalive period, then wait to be killed."""
    registry = etcd_registry(endpoints=endpoints, namespace=namespace, ttl=ttl)
    gap = ttl / 3.0 / max(len(ids), 1)
    for n, ident in enumerate(ids):
        registry.register(Instance.new(service, "1.0.0", f"127.0.0.1:{9000 + n}", id=ident))
        time.sleep(gap)  # spreads the keepalive phases, as independent processes would be
    conn.send(("ready", os.getpid()))
    threading.Event().wait(120.0)  # killed long before
    registry.close()


def run_child(target: Callable[..., None], *args: Any, timeout: float = 120.0) -> Tuple[Any, Optional[str]]:
    """Run ``target(conn, *args)`` in a spawned process and return its one message (or an error text)."""
    import multiprocessing

    ctx = multiprocessing.get_context("spawn")
    parent, child = ctx.Pipe()
    proc = ctx.Process(target=target, args=(child, *args), daemon=True)
    proc.start()
    child.close()
    try:
        if not parent.poll(timeout):
            return None, f"{target.__name__} sent nothing within {timeout:g} s"
        return parent.recv(), None
    except EOFError:
        return None, f"{target.__name__} exited with code {proc.exitcode} before answering"
    finally:
        proc.join(10.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
        parent.close()


# -- calls: fyer-rpc's example greeter, served by fyerreg.api in a process of its own ------------------------------


class GreeterService:
    """fyer-rpc's example GreeterService: ``SayHello({"name": ...}) -> {"message": ...}``."""

    def SayHello(self, req: Dict[str, Any]) -> Dict[str, str]:
        return {"message": f"Hello {req.get('name', '')}"}


def greeter(conn: Connection, endpoints: List[str], namespace: str) -> None:
    """Serve GreeterService with ``fyerreg.api.Server``, registered as ``greeter-service``; stop on request."""
    import importlib

    api: Any = importlib.import_module("fyerreg.api")
    with etcd_registry(endpoints=endpoints, namespace=namespace) as registry:
        server = api.Server(api.ServerOptions(address="127.0.0.1:0", enable_registry=True, registry=registry,
                                              service_name="greeter-service", service_version="1.0.0",
                                              drain_delay=0.0))
        server.register(GreeterService(), "GreeterService")
        server.start()
        conn.send(("ready", server.address))
        conn.recv()
        server.stop(grace=5.0)
