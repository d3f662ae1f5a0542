"""7. Calls through discovery: ``api.Client.call`` beside a direct ``http.client`` call.

A child process serves fyer-rpc's example GreeterService with ``fyerreg.api.Server``
(registered in etcd). This process calls ``GreeterService.SayHello`` through
``api.Client`` (Discovery on an EtcdRegistry, round robin, keep-alive connection
pool) and, as the floor, with a plain keep-alive ``http.client.HTTPConnection``
POSTing the same JSON to the same server. Latency: one caller, calls alternating
between the two. Throughput: 8 threads calling for a fixed time, in alternating
windows (each thread of the floor has its own connection).
"""

from __future__ import annotations

import contextlib
import http.client
import importlib
import json
import multiprocessing
import threading
import time
from typing import Any, Callable, Dict, Iterator, List, Optional, Tuple

from . import _worker
from .context import PENDING_ETCD, Context
from .report import Row, Section, markdown_table
from .stats import summary, timed_threads

THREADS = 8
WINDOW = 0.5
PATH = "/GreeterService/SayHello"


def api_available() -> bool:
    """True once ``fyerreg.api`` (Server and Client) is part of this checkout."""
    try:
        importlib.import_module("fyerreg.api")
    except ImportError:
        return False
    return True


class _Direct:
    """One keep-alive HTTP connection per thread to the greeter: the floor."""

    def __init__(self, address: str) -> None:
        self.host, port = address.rsplit(":", 1)
        self.port = int(port)
        self.local = threading.local()

    def call(self, name: str) -> Any:
        conn: Optional[http.client.HTTPConnection] = getattr(self.local, "conn", None)
        if conn is None:
            conn = self.local.conn = http.client.HTTPConnection(self.host, self.port, timeout=5.0)
        body = json.dumps({"name": name}).encode()
        conn.request("POST", PATH, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        data = response.read()
        if response.status != 200:
            raise RuntimeError(f"greeter answered {response.status}: {data[:200]!r}")
        return json.loads(data)


def _throughput(threads: int, seconds: float, call: Callable[[str], Any]) -> float:
    calls, elapsed, _ = timed_threads(threads, seconds, lambda t, n: call(f"t{t}"))
    return calls / elapsed


@contextlib.contextmanager
def greeter_process(ctx: Context, name: str, serve: Callable[..., None] = _worker.greeter) -> Iterator[Tuple[str, Any]]:
    """A child process running ``serve(conn, endpoints, namespace)`` (by default the greeter over
    ``api.Server``), registered in etcd under a namespace of its own: yields the address it sent
    back and a registry on that namespace; stops both and wipes the namespace."""
    namespace = ctx.namespace(name)
    spawn = multiprocessing.get_context("spawn")
    conn, child = spawn.Pipe()
    proc = spawn.Process(target=serve, args=(child, ctx.endpoints, namespace), daemon=True)
    proc.start()
    child.close()
    registry: Any = None
    try:
        if not conn.poll(60.0):
            raise RuntimeError("the greeter process did not start")
        address = conn.recv()[1]
        registry = ctx.registry(namespace)
        yield address, registry
    finally:
        if registry is not None:
            registry.close()
        try:
            conn.send(("stop",))
        except OSError:
            pass
        proc.join(15.0)
        if proc.is_alive():
            proc.kill()
            proc.join(5.0)
        conn.close()
        ctx.wipe(namespace)


def compare(ctx: Context, callers: Dict[str, Callable[[str], Any]]) -> Tuple[Dict[str, List[float]], Dict[str, float]]:
    """Latency of each caller (one at a time, calls alternating) and throughput (``THREADS`` threads,
    in alternating windows), all in the same run: ``({name: [seconds]}, {name: calls/s})``."""
    for caller in callers.values():
        for _ in range(20):
            caller("warm-up")
    latency: Dict[str, List[float]] = {name: [] for name in callers}
    for i in range(ctx.profile.call_requests):
        for name, caller in callers.items():
            t0 = time.perf_counter()
            caller(f"call {i}")
            latency[name].append(time.perf_counter() - t0)
    done = {name: 0.0 for name in callers}
    rounds = max(1, round(ctx.profile.churn_seconds / WINDOW))
    for r in range(rounds):
        for name in (list(callers) if r % 2 == 0 else list(reversed(callers))):
            done[name] += _throughput(THREADS, WINDOW, callers[name]) / rounds
    return latency, done


def run(ctx: Context) -> Section:
    section = Section("calls", "Calls through discovery", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    if not api_available():
        section.pending = "fyerreg.api (Server/Client) is not in this checkout yet"
        return section
    api: Any = importlib.import_module("fyerreg.api")
    from fyerreg import Discovery

    with greeter_process(ctx, "calls") as (address, registry), \
            Discovery(registry, balancer="round_robin") as discovery, \
            api.Client(api.ClientOptions(discovery=discovery, service_name="greeter-service",
                                         service_version="1.0.0")) as client:
        def through(name: str) -> Any:
            return client.call("GreeterService", "SayHello", {"name": name})

        latency, done = compare(ctx, {"fyerreg": through, "direct": _Direct(address).call})
    section.data = {"latency": latency, "throughput": done}
    fy, floor = summary(latency["fyerreg"]), summary(latency["direct"])
    section.add(
        Row("latency p50", fy["p50"] * 1e3, floor["p50"] * 1e3, "ms", baseline_name="http.client"),
        Row("latency p99", fy["p99"] * 1e3, floor["p99"] * 1e3, "ms", baseline_name="http.client"),
        Row(f"throughput, {THREADS} threads", done["fyerreg"], done["direct"], "calls/s",
            baseline_name="http.client"),
    )
    section.details.append(markdown_table(
        ["caller", "calls", "p50 ms", "p90 ms", "p99 ms", f"calls/s ({THREADS} threads)"],
        [[name, str(len(latency[name])), *(f"{summary(latency[name])[k] * 1e3:.3f}" for k in ("p50", "p90", "p99")),
          f"{done[name]:.0f}"] for name in latency]))
    ctx.log(f"calls: fyerreg p50 {fy['p50'] * 1e3:.3f} ms, direct p50 {floor['p50'] * 1e3:.3f} ms; "
            f"{done['fyerreg']:.0f} vs {done['direct']:.0f} calls/s")
    return section
