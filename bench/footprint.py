"""5. Footprint: memory and threads per registered instance and per subscription; close() time.

Each measurement runs in a fresh process: it connects, settles, then registers 1,
100 and 1 000 instances (or opens 1, 10 and 100 subscriptions, one service each),
reading its resident set size and its OS thread count (gRPC's threads included)
after each step; finally it times ``close()``, which deregisters every instance.
Baseline: the same process with a raw python-etcd3 client that grants a lease and
puts the record per instance (keeping nothing alive), or adds a raw watch callback
per subscription (python-etcd3 multiplexes them on one stream and thread); its
"close" deletes each key and revokes each lease in turn.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Tuple

from . import _worker
from .context import PENDING_ETCD, Context
from .report import Row, Section, markdown_table

KIB = 1024.0


def _measure(ctx: Context, target: Any, counts: List[int], raw: bool) -> Dict[str, Any]:
    namespace = ctx.namespace("footprint")
    try:
        result, error = _worker.run_child(target, ctx.endpoints, namespace, counts, raw, timeout=300.0)
    finally:
        ctx.wipe(namespace)
    if error:
        raise RuntimeError(error)
    return dict(result)


def _per_item(result: Dict[str, Any]) -> List[Tuple[int, float, float]]:
    """(count, KiB per item, threads per item) for each point."""
    base_rss, base_threads = result["base"]
    return [(count, (rss - base_rss) / KIB / count, (threads - base_threads) / count)
            for count, rss, threads in result["points"]]


def run(ctx: Context) -> Section:
    section = Section("footprint", "Footprint", __doc__ or "")
    instances = sorted(ctx.profile.footprint_instances)
    subscriptions = sorted(ctx.profile.footprint_subscriptions)
    data: Dict[str, Optional[Dict[str, Any]]] = {
        "raw_instances": _measure(ctx, _worker.footprint_instances, instances, True),
        "raw_subscriptions": _measure(ctx, _worker.footprint_subscriptions, subscriptions, True),
        "instances": None,
        "subscriptions": None,
    }
    if ctx.has_etcd_backend:
        data["instances"] = _measure(ctx, _worker.footprint_instances, instances, False)
        data["subscriptions"] = _measure(ctx, _worker.footprint_subscriptions, subscriptions, False)
    else:
        section.pending = PENDING_ETCD
    section.data = data
    for kind, label in (("instances", "instance"), ("subscriptions", "subscription")):
        raw = _per_item(data[f"raw_{kind}"] or {})
        measured = data[kind]
        ours: List[Tuple[int, Optional[float], Optional[float]]] = [(c, None, None) for c, _, _ in raw]
        if measured is not None:
            ours = list(_per_item(measured))
        table = []
        for (count, kib, threads), (_, raw_kib, raw_threads) in zip(ours, raw):
            section.add(Row(f"memory per {label} ({count:,})", kib, raw_kib, "KiB", baseline_name="raw"),
                        Row(f"threads per {label} ({count:,})", threads, raw_threads, "", baseline_name="raw"))
            table.append([f"{count:,}", _cell(kib), _cell(raw_kib), _cell(threads), _cell(raw_threads)])
        section.details.append(f"Per {label}:\n\n" + markdown_table(
            [label + "s", "fyerreg KiB each", "raw KiB each", "fyerreg threads each", "raw threads each"], table))
    if data["instances"]:
        section.notes.append(
            "**Reading it.** Each registered instance has its own keepalive thread (by design: one "
            "instance's heartbeat never waits on another's), so threads grow one per instance and memory "
            "about as much as a thread's stack pages plus its registration. Each subscription has two "
            "threads: its watch thread and the thread gRPC starts to feed that watch stream's requests; "
            "python-etcd3 multiplexes every watch on one stream and one thread, which is why its figures "
            "per subscription fall towards zero. There is no goal for footprint; close() deregisters "
            "the instances one after the other, as the raw baseline does.")
    close = data["instances"]["close"] if data["instances"] else None
    raw_close = data["raw_instances"]["close"] if data["raw_instances"] else None
    section.add(Row(f"close() with {instances[-1]:,} instances", close, raw_close, "s",
                    baseline_name="raw delete+revoke each"))
    return section


def _cell(value: Optional[float]) -> str:
    return "-" if value is None else f"{value:.2f}"
