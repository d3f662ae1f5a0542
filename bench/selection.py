"""4. select(): every balancer at N = 10, 1 000 and 10 000 instances, from 1 and 8 threads.

``Discovery.select(service)`` is what applications call: the local view of a service
(kept by its subscription, here on the in-process MemoryRegistry: picks never touch
the backend) plus the balancer. Each figure is the wall time per call, best of three
runs; with 8 threads, the wall time of all their calls divided by their number (the
cost a process pays per pick when 8 threads pick at once). The floor is
``random.choice`` on a list of the same size, measured the same way. The balancer
alone (``Balancer.select`` on a balancer already updated) is shown for reference.
"""

from __future__ import annotations

import functools
import itertools
import random
from typing import Any, Callable, Dict, List

from fyerreg import Discovery, MemoryRegistry
from fyerreg.discovery import balancer_names, make_balancer

from .context import Context, fleet
from .report import Row, Section, markdown_table
from .stats import per_call, threaded_per_call

FLOOR_RATIO_GOAL = 3.0
ABSOLUTE_GOAL = 20e-6
RATIO_BALANCERS = ("random", "round_robin")
KEYS = [f"user-{k}" for k in range(1024)]


def _keyed(select: Callable[..., Any]) -> Callable[[], Any]:
    counter = itertools.count()
    return lambda: select(key=KEYS[next(counter) & 1023])


def _timings(ctx: Context, func: Callable[[], object]) -> Dict[str, float]:
    calls, threads = ctx.profile.select_calls, ctx.profile.select_threads
    return {"1": per_call(func, calls), "threads": threaded_per_call(func, threads, max(1, calls // threads))}


def run(ctx: Context) -> Section:
    section = Section("select", "select() per balancer", __doc__ or "")
    results: Dict[int, Dict[str, Any]] = {}
    for n in ctx.profile.select_sizes:
        instances = fleet("bench", n)
        floor = functools.partial(random.choice, list(instances))
        entry: Dict[str, Any] = {"floor": _timings(ctx, floor), "discovery": {}, "balancer": {}}
        with MemoryRegistry() as registry:
            for inst in instances:
                registry.register(inst)
            for name in balancer_names():
                keyed = name == "consistent_hash"
                with Discovery(registry, balancer=name) as discovery:
                    select = functools.partial(discovery.select, "bench", "1.0.0")
                    pick = _keyed(select) if keyed else select
                    pick()
                    entry["discovery"][name] = _timings(ctx, pick)
                balancer = make_balancer(name)
                balancer.update(instances)
                entry["balancer"][name] = per_call(_keyed(balancer.select) if keyed else balancer.select,
                                                   ctx.profile.select_calls)
        results[n] = entry
        ctx.log(f"select N={n}: floor {entry['floor']['1'] * 1e9:.0f} ns, " + ", ".join(
            f"{name} {t['1'] * 1e9:.0f}" for name, t in entry["discovery"].items()))
    section.data = {"per_size": {str(n): v for n, v in results.items()}, "threads": ctx.profile.select_threads}
    _rows(ctx, section, results)
    return section


def _rows(ctx: Context, section: Section, results: Dict[int, Dict[str, Any]]) -> None:
    threads = ctx.profile.select_threads
    for n, entry in results.items():
        for name in RATIO_BALANCERS:
            for mode, label in (("1", "1 thread"), ("threads", f"{threads} threads")):
                value, floor = entry["discovery"][name][mode], entry["floor"][mode]
                section.add(Row(f"{name} N={n:,}, {label}", value * 1e6, floor * 1e6, "µs",
                                f"<= {FLOOR_RATIO_GOAL:.0f}x floor", value <= FLOOR_RATIO_GOAL * floor,
                                "random.choice"))
    largest = max(results)
    for mode, label in (("1", "1 thread"), ("threads", f"{threads} threads")):
        slowest = max(results[largest]["discovery"], key=lambda name: results[largest]["discovery"][name][mode])
        value = results[largest]["discovery"][slowest][mode]
        section.add(Row(f"slowest ({slowest}) N={largest:,}, {label}", value * 1e6,
                        results[largest]["floor"][mode] * 1e6, "µs", f"< {ABSOLUTE_GOAL * 1e6:.0f} µs",
                        value < ABSOLUTE_GOAL if largest >= 10_000 else None, "random.choice"))
    rows: List[List[str]] = []
    for n, entry in results.items():
        floor = entry["floor"]
        rows.append([f"{n:,}", "random.choice (floor)", f"{floor['1'] * 1e6:.2f}", f"{floor['threads'] * 1e6:.2f}",
                     "1.0", "-"])
        for name, t in entry["discovery"].items():
            rows.append([f"{n:,}", name, f"{t['1'] * 1e6:.2f}", f"{t['threads'] * 1e6:.2f}",
                         f"{t['1'] / floor['1']:.1f}", f"{entry['balancer'][name] * 1e6:.2f}"])
    section.details.append(markdown_table(
        ["N", "balancer", "Discovery.select µs (1 thread)", f"µs ({threads} threads)", "x floor (1 thread)",
         "Balancer.select µs"], rows))
