"""3. Subscriber cost per change vs. service size, beside the Go original's design.

One service holds N instances (written straight into etcd). For each change the
parent takes ``t0``, rewrites one record with a raw put, and waits for the snapshot
that contains it to come out of the subscriber's queue; the time includes the put
itself (the same for both). fyerreg: ``EtcdRegistry.subscribe`` (events applied to
a local copy). Baseline, the Go original's design in a few lines of python-etcd3: a
watch callback that re-reads the whole prefix on every event, decodes every record
and queues the list. "fetch only" is that baseline's ``get_prefix`` alone, without
decoding: the least the design costs whatever its language.
"""

from __future__ import annotations

import queue
import time
from typing import Any, Callable, Dict, List

from fyerreg import Instance

from .context import PENDING_ETCD, Context, decode_all, fleet, record_key, service_prefix
from .report import Row, Section, markdown_table
from .stats import ms, summary

GOAL_SPEEDUP = 20.0
GOAL_GROWTH = 1.5
""""Nearly flat", made a number: fyerreg's p50 at the largest N over its p50 at the smallest."""
WAIT = 60.0


def _changes(ctx: Context, target: Instance, namespace: str, wait: Callable[[str], float]) -> List[float]:
    """Latencies of changes to ``target``'s record until the budget or the sample cap is reached.

    ``wait(seq)`` returns the monotonic time the snapshot holding ``seq`` left the queue.
    """
    samples: List[float] = []
    budget_end = time.monotonic() + ctx.profile.subscriber_budget
    key = record_key(namespace, target)
    n = 0
    while len(samples) < ctx.profile.subscriber_max_samples and (time.monotonic() < budget_end or len(samples) < 3):
        n += 1
        seq = f"{time.monotonic_ns()}-{n}"
        value = target.replace(metadata={**target.metadata, "seq": seq}).to_json()
        t0 = time.monotonic()
        ctx.raw.put(key, value)
        samples.append(wait(seq) - t0)
    return samples[1:] if len(samples) > 3 else samples  # the first one warms the path


def _wait_on(get: Callable[[], List[Instance]], ident: str) -> Callable[[str], float]:
    def wait(seq: str) -> float:
        while True:
            snapshot = get()
            seen = time.monotonic()  # before the (benchmark's own) search of the snapshot
            if any(inst.id == ident and inst.metadata.get("seq") == seq for inst in snapshot):
                return seen

    return wait


def _measure_fyerreg(ctx: Context, namespace: str, service: str, target: Instance) -> Dict[str, Any]:
    registry: Any = ctx.registry(namespace)
    try:
        t0 = time.monotonic()
        sub = registry.subscribe(service, "1.0.0")
        first = sub.get(timeout=WAIT)
        initial = time.monotonic() - t0

        samples = _changes(ctx, target, namespace, _wait_on(lambda: sub.get(timeout=WAIT), target.id))
        return {"samples": samples, "initial": initial, "size": len(first)}
    finally:
        registry.close()


def _measure_go_design(ctx: Context, namespace: str, service: str, target: Instance) -> Dict[str, Any]:
    prefix = service_prefix(namespace, service, "1.0.0")
    snapshots: queue.Queue[List[Instance]] = queue.Queue()
    raw = ctx.raw

    def on_event(response: Any) -> None:
        if isinstance(response, Exception):
            return
        snapshots.put(decode_all(value for value, _meta in raw.get_prefix(prefix)))

    watch_id = raw.add_watch_prefix_callback(prefix, on_event)
    try:
        samples = _changes(ctx, target, namespace, _wait_on(lambda: snapshots.get(timeout=WAIT), target.id))
    finally:
        raw.cancel_watch(watch_id)
    fetch = []
    for _ in range(min(len(samples), 20)):
        t0 = time.monotonic()
        raw.get_prefix(prefix)
        fetch.append(time.monotonic() - t0)
    return {"samples": samples, "fetch": fetch}


def run(ctx: Context) -> Section:
    section = Section("subscriber", "Subscriber cost per change vs. service size", __doc__ or "")
    namespace = ctx.namespace("subcost")
    results: Dict[int, Dict[str, Any]] = {}
    try:
        for n in ctx.profile.subscriber_sizes:
            service = f"size{n}"
            instances = fleet(service, n)
            ctx.fill(namespace, instances)
            target = instances[n // 2]
            entry: Dict[str, Any] = {"go": _measure_go_design(ctx, namespace, service, target)}
            if ctx.has_etcd_backend:
                entry["fyerreg"] = _measure_fyerreg(ctx, namespace, service, target)
            results[n] = entry
            go = summary(entry["go"]["samples"])
            fy = summary(entry["fyerreg"]["samples"]) if "fyerreg" in entry else {"p50": float("nan")}
            ctx.log(f"subscriber N={n}: fyerreg p50 {ms(fy['p50']):.2f} ms, Go design p50 {ms(go['p50']):.2f} ms "
                    f"({len(entry['go']['samples'])} samples)")
    finally:
        ctx.wipe(namespace)
    section.data = {"per_size": {str(n): v for n, v in results.items()}}
    _rows(section, results)
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
    return section


def _rows(section: Section, results: Dict[int, Dict[str, Any]]) -> None:
    largest = max(results)
    table = []
    for n, entry in results.items():
        go = summary(entry["go"]["samples"])
        fetch = summary(entry["go"]["fetch"])
        fy = summary(entry["fyerreg"]["samples"]) if "fyerreg" in entry else None
        value = ms(fy["p50"]) if fy else None
        goal, met = "", None
        if n == largest and n >= 10_000:
            goal = f"<= {1 / GOAL_SPEEDUP:.2f}x ({GOAL_SPEEDUP:.0f}x faster)"
            met = None if fy is None else go["p50"] >= GOAL_SPEEDUP * fy["p50"]
        section.add(Row(f"N={n:,} p50", value, ms(go["p50"]), "ms", goal, met, "Go design"))
        table.append([f"{n:,}", str(len(entry["fyerreg"]["samples"])) if fy else "-",
                      f"{ms(fy['p50']):.2f}" if fy else "-", f"{ms(fy['p99']):.2f}" if fy else "-",
                      str(len(entry["go"]["samples"])), f"{ms(go['p50']):.2f}", f"{ms(go['p99']):.2f}",
                      f"{ms(fetch['p50']):.2f}", f"{go['p50'] / fy['p50']:.1f}x" if fy else "-",
                      f"{ms(entry['fyerreg']['initial']):.1f}" if fy else "-"])
    smallest = min(results)
    if "fyerreg" in results[smallest] and "fyerreg" in results[largest] and largest != smallest:
        low = summary(results[smallest]["fyerreg"]["samples"])["p50"]
        high = summary(results[largest]["fyerreg"]["samples"])["p50"]
        go_low = summary(results[smallest]["go"]["samples"])["p50"]
        go_high = summary(results[largest]["go"]["samples"])["p50"]
        section.add(Row(f"growth N={smallest:,} -> {largest:,}", high / low, go_high / go_low, "x",
                        f"<= {GOAL_GROWTH}x (nearly flat)", high / low <= GOAL_GROWTH if largest >= 10_000 else None,
                        "Go design"))
    section.details.append(markdown_table(
        ["N", "fyerreg n", "fyerreg p50 ms", "fyerreg p99 ms", "Go design n", "Go design p50 ms", "Go design p99 ms",
         "fetch only p50 ms", "speed-up", "fyerreg first snapshot ms"], table))
