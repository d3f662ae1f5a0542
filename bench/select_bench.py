"""select() cost of every balancer at 10, 1 000 and 10 000 instances, beside random.choice.

Run with ``make bench`` (or ``python bench/select_bench.py [--sizes 10,1000] [--picks N]``).
Each row is the mean cost of one ``select()`` on a balancer already updated with N
instances (weights from a few classes, as in real fleets), next to the floor: one
``random.choice`` on a list of the same size, measured in the same run. A last section
shows ``Discovery.select()`` end to end on the in-process memory registry.
"""

from __future__ import annotations

import argparse
import functools
import gc
import random
import sys
import time
from typing import Callable, List, Optional, Sequence

from fyerreg import Instance
from fyerreg.discovery import balancer_names, make_balancer

SIZES = (10, 1_000, 10_000)


def fleet(n: int) -> List[Instance]:
    rng = random.Random(n)
    return [Instance.new("bench", "1.0.0", f"10.{i // 65536}.{i // 256 % 256}.{i % 256}:8000",
                         id=f"i{i:06d}", weight=rng.choice((50, 100, 100, 200))) for i in range(n)]


def per_call(func: Callable[[], object], picks: int) -> float:
    """Best of three runs of ``picks`` calls, in seconds per call (GC off while timing, as timeit does)."""
    best = float("inf")
    gc.collect()
    gc.disable()
    try:
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(picks):
                func()
            best = min(best, (time.perf_counter() - start) / picks)
    finally:
        gc.enable()
    return best


def balancer_row(name: str, instances: List[Instance], floor: float, picks: int) -> str:
    balancer = make_balancer(name)
    gc.collect()
    start = time.perf_counter()
    balancer.update(instances)
    update = time.perf_counter() - start
    select = balancer.select
    if name == "consistent_hash":
        keys = [f"user-{k}" for k in range(1024)]
        counter = iter(range(1 << 62))
        cost = per_call(lambda: select(keys[next(counter) & 1023]), picks)
    else:
        cost = per_call(select, picks)
    return (f"{name:<22}{len(instances):>8}{cost * 1e9:>12.0f}{floor * 1e9:>11.0f}"
            f"{cost / floor:>8.1f}{update * 1e3:>12.2f}")


def floor_cost(items: List[Instance], picks: int) -> float:
    return per_call(lambda: random.choice(items), picks)


def bench_balancers(sizes: Sequence[int], picks: int) -> List[str]:
    lines = [f"{'balancer':<22}{'N':>8}{'select ns':>12}{'floor ns':>11}{'ratio':>8}{'update ms':>12}"]
    for n in sizes:
        instances = fleet(n)
        floor = floor_cost(list(instances), picks)
        lines.extend(balancer_row(name, instances, floor, picks) for name in balancer_names())
    return lines


def bench_discovery(sizes: Sequence[int], picks: int) -> List[str]:
    try:
        from fyerreg.registry.memory import MemoryRegistry  # type: ignore[import-not-found]
    except ImportError:
        return ["(Discovery.select end to end: needs fyerreg.registry.memory)"]
    from fyerreg import Discovery

    lines = [f"{'Discovery.select':<22}{'N':>8}{'select ns':>12}"]
    for n in sizes:
        with MemoryRegistry() as registry:
            for inst in fleet(n):
                registry.register(inst)
            for name in ("random", "round_robin"):
                with Discovery(registry, balancer=name) as d:
                    d.select("bench", "1.0.0")
                    cost = per_call(functools.partial(d.select, "bench", "1.0.0"), picks)
                lines.append(f"{'  ' + name:<22}{n:>8}{cost * 1e9:>12.0f}")
    return lines


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default=",".join(map(str, SIZES)), help="comma-separated instance counts")
    parser.add_argument("--picks", type=int, default=50_000, help="select() calls per measurement")
    args = parser.parse_args(argv)
    sizes = [int(s) for s in args.sizes.split(",") if s]
    print(f"Python {sys.version.split()[0]}; best of 3 x {args.picks} picks; ns per select()")
    for line in [*bench_balancers(sizes, args.picks), "", *bench_discovery(sizes, args.picks)]:
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
