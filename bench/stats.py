"""Small statistics and timing helpers shared by the benchmarks."""

from __future__ import annotations

import gc
import math
import threading
import time
from typing import Callable, Dict, List, Sequence, Tuple


def percentile(values: Sequence[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, linearly interpolated; NaN when empty."""
    if not values:
        return math.nan
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    rank = (len(ordered) - 1) * q / 100.0
    low = math.floor(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float]) -> Dict[str, float]:
    """Count, mean, p50, p90, p99 and max of ``values``."""
    n = len(values)
    return {
        "n": float(n),
        "mean": sum(values) / n if n else math.nan,
        "p50": percentile(values, 50),
        "p90": percentile(values, 90),
        "p99": percentile(values, 99),
        "max": max(values) if n else math.nan,
    }


def per_call(func: Callable[[], object], calls: int, repeat: int = 3) -> float:
    """Best of ``repeat`` runs of ``calls`` calls, in seconds per call (GC off while timing, as timeit does)."""
    best = math.inf
    gc.collect()
    gc.disable()
    try:
        for _ in range(repeat):
            start = time.perf_counter()
            for _ in range(calls):
                func()
            best = min(best, (time.perf_counter() - start) / calls)
    finally:
        gc.enable()
    return best


def threaded_per_call(func: Callable[[], object], threads: int, calls: int, repeat: int = 3) -> float:
    """Wall time per call with ``threads`` threads each making ``calls`` calls at once (best of ``repeat``).

    This is the cost a process sees per call when that many threads share the work
    (with the GIL, about the single-thread cost plus contention).
    """
    best = math.inf
    for _ in range(repeat):
        barrier = threading.Barrier(threads + 1)

        def loop(barrier: threading.Barrier = barrier) -> None:
            barrier.wait()
            for _ in range(calls):
                func()

        workers = [threading.Thread(target=loop, name=f"bench-select-{i}", daemon=True) for i in range(threads)]
        for worker in workers:
            worker.start()
        gc.collect()
        gc.disable()
        try:
            barrier.wait()
            start = time.perf_counter()
            for worker in workers:
                worker.join()
            best = min(best, (time.perf_counter() - start) / (threads * calls))
        finally:
            gc.enable()
    return best


def timed_threads(threads: int, seconds: float, step: Callable[[int, int], object], *, first: int = 0,
                  meter: Callable[[], Sequence[float]] = lambda: ()) -> Tuple[int, float, List[float]]:
    """``threads`` threads call ``step(thread, n)`` (n counting from ``first``) for ``seconds``.

    Returns the calls made, the wall time, and how much each reading of ``meter`` (taken
    when the threads start and once they have stopped) grew meanwhile. The first
    exception a step raises is re-raised.
    """
    counts = [0] * threads
    errors: List[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        barrier.wait()
        n = first
        try:
            while not stop.is_set():
                step(t, n)
                n += 1
        except BaseException as exc:
            errors.append(exc)
        counts[t] = n - first

    workers = [threading.Thread(target=work, args=(t,), name=f"bench-worker-{t}", daemon=True)
               for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start, before = time.monotonic(), meter()
    stop.wait(seconds)
    stop.set()
    for worker in workers:
        worker.join(60.0)
    elapsed, after = time.monotonic() - start, meter()
    if errors:
        raise errors[0]
    return sum(counts), elapsed, [b - a for a, b in zip(before, after)]


def ms(seconds: float) -> float:
    """Seconds to milliseconds."""
    return seconds * 1e3


def spread(values: List[float]) -> str:
    """``p50 / p99 / max`` of ``values`` (seconds) in milliseconds, for log lines."""
    s = summary(values)
    return f"p50 {ms(s['p50']):.2f} ms, p99 {ms(s['p99']):.2f} ms, max {ms(s['max']):.2f} ms (n={len(values)})"
