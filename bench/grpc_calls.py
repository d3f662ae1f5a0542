"""8. gRPC calls through discovery: a unary call on ``fyerreg.contrib.grpc.DiscoveryChannel`` beside a
direct ``grpc.insecure_channel`` call.

A child process serves a unary ``/bench.Greeter/SayHello`` (raw bytes in and out, so
serialisation adds nothing to either side) on a ``grpc.server`` registered in etcd with
``ServerRegistration``. This process calls it through a ``DiscoveryChannel`` (Discovery on
an EtcdRegistry, round robin: each call picks the instance, holds its channel and reports
latency and outcome) and, as the floor, on a plain ``grpc.insecure_channel`` to the same
address. Latency: one caller, calls alternating between the two. Throughput: 8 threads
calling for a fixed time, in alternating windows. Goal: the fyerreg call within 1.15x
of the direct one.
"""

from __future__ import annotations

import importlib
from multiprocessing.connection import Connection
from typing import Any, Callable, List

from .calls import THREADS, compare, greeter_process
from .context import PENDING_ETCD, Context, etcd_registry
from .report import Row, Section, markdown_table
from .stats import summary

METHOD = "/bench.Greeter/SayHello"
GOAL = 1.15
SERVICE = "bench-grpc-greeter"


def grpc_available() -> bool:
    """True once ``fyerreg.contrib.grpc`` and grpcio-health-checking are installed."""
    try:
        importlib.import_module("fyerreg.contrib.grpc")
    except ImportError:
        return False
    return True


def serve(conn: Connection, endpoints: List[str], namespace: str) -> None:
    """Serve ``SayHello`` (its reply: ``b"Hello " + request``) registered as ``bench-grpc-greeter``; stop on request."""
    from concurrent import futures

    import grpc

    from fyerreg.contrib.grpc import ServerRegistration
    from fyerreg.serving import InstanceSpec

    def say_hello(request: bytes, context: Any) -> bytes:
        return b"Hello " + request

    handler = grpc.method_handlers_generic_handler(
        "bench.Greeter", {"SayHello": grpc.unary_unary_rpc_method_handler(say_hello)})
    with etcd_registry(endpoints=endpoints, namespace=namespace) as registry:
        server = grpc.server(futures.ThreadPoolExecutor(max_workers=THREADS * 2), handlers=[handler])
        registration = ServerRegistration(server, registry, InstanceSpec(SERVICE, address="127.0.0.1:0",
                                                                         drain_delay=0.0),
                                          grace=1.0, deregister_at_exit=False)
        port = server.add_insecure_port("127.0.0.1:0")
        server.start()
        registration.start(port)
        registration.wait_registered(30)
        conn.send(("ready", f"127.0.0.1:{port}"))
        conn.recv()
        registration.stop()


def _with_timeout(multicallable: Any) -> Callable[[str], Any]:
    def call(text: str) -> Any:
        return multicallable(text.encode(), timeout=5.0)
    return call


def run(ctx: Context) -> Section:
    section = Section("grpc", "gRPC calls through discovery", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    if not grpc_available():
        section.pending = "fyerreg.contrib.grpc needs grpcio-health-checking (the grpc extra)"
        return section
    import grpc

    from fyerreg import Discovery
    from fyerreg.contrib.grpc import DiscoveryChannel

    with greeter_process(ctx, "grpc", serve) as (address, registry), \
            Discovery(registry, balancer="round_robin") as discovery, \
            DiscoveryChannel(discovery, SERVICE, "1.0.0") as through, \
            grpc.insecure_channel(address) as direct:
        callers = {name: _with_timeout(channel.unary_unary(METHOD, _registered_method=True))
                   for name, channel in (("fyerreg", through), ("direct", direct))}
        latency, done = compare(ctx, callers)
    section.data = {"latency": latency, "throughput": done}
    fy, floor = summary(latency["fyerreg"]), summary(latency["direct"])
    p50_ratio = fy["p50"] / floor["p50"] if floor["p50"] else float("inf")
    rate_ratio = done["fyerreg"] / done["direct"] if done["direct"] else 0.0
    section.add(
        Row("unary latency p50", fy["p50"] * 1e3, floor["p50"] * 1e3, "ms", f"<= {GOAL}x", p50_ratio <= GOAL,
            baseline_name="grpc.insecure_channel"),
        Row("unary latency p99", fy["p99"] * 1e3, floor["p99"] * 1e3, "ms", baseline_name="grpc.insecure_channel"),
        Row(f"unary throughput, {THREADS} threads", done["fyerreg"], done["direct"], "calls/s",
            f">= {1 / GOAL:.2f}x", rate_ratio >= 1 / GOAL, baseline_name="grpc.insecure_channel"),
    )
    section.details.append(markdown_table(
        ["caller", "calls", "p50 ms", "p90 ms", "p99 ms", f"calls/s ({THREADS} threads)"],
        [[name, str(len(latency[name])), *(f"{summary(latency[name])[k] * 1e3:.3f}" for k in ("p50", "p90", "p99")),
          f"{done[name]:.0f}"] for name in latency]))
    ctx.log(f"grpc: fyerreg p50 {fy['p50'] * 1e3:.3f} ms, direct p50 {floor['p50'] * 1e3:.3f} ms; "
            f"{done['fyerreg']:.0f} vs {done['direct']:.0f} calls/s")
    return section
