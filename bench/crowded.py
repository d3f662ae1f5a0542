"""10. Propagation with 1 000 other subscriptions open in the subscriber's process.

Two subscriber processes, as in benchmark 1: one subscribes to its service only; the
other first opens 1 000 subscriptions to other services (idle, on the same
EtcdRegistry, so on the same watch stream), then subscribes to its own. This process
registers an instance in one service, then in the other (which goes first alternates),
and each time takes ``t0`` before ``register()`` and the subscriber answers when the
snapshot holding it came out of ``Subscription.get()``; each instance is then
deregistered (seen too, not counted) before the next change. Each subscriber also
watches a raw prefix with a python-etcd3 callback in the same process, measured the
same way (raw put -> callback), which shows what the process's own load does to the
floor. The goal is on the p50 (p99 is shown beside it).
"""

from __future__ import annotations

import functools
from typing import Any, Dict, List

from fyerreg import Instance

from .context import PENDING_ETCD, Context
from .propagation import _Child
from .report import Row, Section, markdown_table
from .stats import ms, spread, summary

GOAL = 1.2
WARMUP = 10
CASES = ("none", "many")


def run(ctx: Context) -> Section:
    section = Section("crowded", "Propagation with many other subscriptions open", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    others = ctx.profile.many_services
    namespace = ctx.namespace("crowded")
    latency: Dict[str, List[float]] = {case: [] for case in CASES}
    floor: Dict[str, List[float]] = {case: [] for case in CASES}
    children: Dict[str, _Child] = {}
    registry: Any = None
    try:
        for case in CASES:
            children[case] = _Child(ctx, namespace, f"/{namespace}/raw-{case}/", True, service=f"crowded-{case}",
                                    others=others if case == "many" else 0)
        registry = ctx.registry(namespace, ttl=10)
        for i in range(ctx.profile.crowded_changes + WARMUP):
            for case in CASES if i % 2 == 0 else tuple(reversed(CASES)):
                child = children[case]
                inst = Instance.new(f"crowded-{case}", "1.0.0", "127.0.0.1:8080", id=f"c{i:05d}")
                seen, _, _ = child.measure(functools.partial(registry.register, inst), "fyerreg", "present", inst.id)
                child.measure(functools.partial(registry.deregister, inst), "fyerreg", "absent", inst.id)
                key = f"/{namespace}/raw-{case}/k{i:05d}"
                raw_seen, _, _ = child.measure(functools.partial(ctx.raw.put, key, "x"), "raw", key, "put")
                if i >= WARMUP:
                    latency[case].append(seen)
                    floor[case].append(raw_seen)
    finally:
        for child in children.values():
            child.close()
        if registry is not None:
            registry.close()
        ctx.wipe(namespace)
    for case in CASES:
        ctx.log(f"crowded {case}: register {spread(latency[case])}; raw {spread(floor[case])}")
    section.data = {"others": others, "latency": latency, "floor": floor}
    none, many = summary(latency["none"]), summary(latency["many"])
    label = f"register -> subscriber with {others:,} others open"
    section.add(Row(f"{label} p50", ms(many["p50"]), ms(none["p50"]), "ms", f"<= {GOAL:g}x none open",
                    many["p50"] <= GOAL * none["p50"], "none open"),
                Row(f"{label} p99", ms(many["p99"]), ms(none["p99"]), "ms", baseline_name="none open"))
    rows = []
    for case in CASES:
        for what, values in (("register", latency[case]), ("raw put (floor)", floor[case])):
            s = summary(values)
            rows.append([f"{others:,}" if case == "many" else "0", what, str(len(values)),
                         *(f"{ms(s[k]):.2f}" for k in ("p50", "p90", "p99", "max"))])
    section.details.append(markdown_table(
        ["other subscriptions", "change", "n", "p50 ms", "p90 ms", "p99 ms", "max ms"], rows))
    return section
