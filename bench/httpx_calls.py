"""8. httpx calls through ``fyerreg.contrib.httpx.DiscoveryTransport`` beside a plain httpx call.

The greeter of the calls benchmark (a child process serving fyer-rpc's example
GreeterService with ``fyerreg.api.Server``, registered in etcd) is called with the same
JSON POST two ways: an ``httpx.Client`` on a ``DiscoveryTransport`` (Discovery on an
EtcdRegistry, round robin) at ``http://greeter-service/...``, and, as the floor, a plain
``httpx.Client`` at the server's ``host:port``; both keep connections alive in httpx's own
pool. Latency: one caller, calls alternating between the two. Throughput: 8 threads
sharing each client, calling for a fixed time, in alternating windows.
"""

from __future__ import annotations

import importlib
from typing import Any

from .calls import PATH, THREADS, api_available, compare, greeter_process
from .context import PENDING_ETCD, Context
from .report import Row, Section, markdown_table
from .stats import summary

GOAL = 1.15
"""Through the transport costs at most this many times a plain httpx call (latency; throughput the inverse)."""


def httpx_available() -> bool:
    """True when httpx and ``fyerreg.contrib.httpx`` can be imported."""
    try:
        importlib.import_module("fyerreg.contrib.httpx")
    except ImportError:
        return False
    return True


def run(ctx: Context) -> Section:
    section = Section("httpx", "httpx calls through discovery", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    if not api_available() or not httpx_available():
        section.pending = "httpx (the `httpx` extra) or fyerreg.api is not installed"
        return section
    import httpx

    from fyerreg import Discovery
    from fyerreg.contrib.httpx import DiscoveryTransport

    with greeter_process(ctx, "httpx") as (address, registry), \
            Discovery(registry, balancer="round_robin") as discovery, \
            httpx.Client(transport=DiscoveryTransport(discovery, version="1.0.0"), timeout=5) as through, \
            httpx.Client(timeout=5) as plain:
        def call(client: httpx.Client, url: str) -> Any:
            def one(name: str) -> Any:
                response = client.post(url, json={"name": name})
                response.raise_for_status()
                return response.json()
            return one

        latency, done = compare(ctx, {"transport": call(through, f"http://greeter-service{PATH}"),
                                      "plain": call(plain, f"http://{address}{PATH}")})
    section.data = {"latency": latency, "throughput": done}
    fy, floor = summary(latency["transport"]), summary(latency["plain"])
    p50 = fy["p50"] / floor["p50"]
    speed = done["transport"] / done["plain"]
    section.add(
        Row("latency p50", fy["p50"] * 1e3, floor["p50"] * 1e3, "ms", f"<= {GOAL:g}x", p50 <= GOAL,
            baseline_name="plain httpx"),
        Row("latency p99", fy["p99"] * 1e3, floor["p99"] * 1e3, "ms", baseline_name="plain httpx"),
        Row(f"throughput, {THREADS} threads", done["transport"], done["plain"], "calls/s",
            f">= {1 / GOAL:.2f}x (1/{GOAL:g})", speed >= 1 / GOAL, baseline_name="plain httpx"),
    )
    section.details.append(markdown_table(
        ["client", "calls", "p50 ms", "p90 ms", "p99 ms", f"calls/s ({THREADS} threads)"],
        [[name, str(len(latency[name])), *(f"{summary(latency[name])[k] * 1e3:.3f}" for k in ("p50", "p90", "p99")),
          f"{done[name]:.0f}"] for name in latency]))
    ctx.log(f"httpx: transport p50 {fy['p50'] * 1e3:.3f} ms, plain p50 {floor['p50'] * 1e3:.3f} ms; "
            f"{done['transport']:.0f} vs {done['plain']:.0f} calls/s")
    return section
