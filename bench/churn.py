"""2. Churn throughput: registrations + deregistrations per second from 1, 4 and 16 threads.

fyerreg: the threads share one EtcdRegistry and each loops ``register(inst)`` then
``deregister(inst)`` on instances of its own. Baseline: the same threads share one
raw python-etcd3 client and each loops lease grant + put (bound to the lease), then
delete + revoke: the etcd work a registration and a deregistration need at the least.
Both count two operations per loop. Each figure sums several short windows, taken
in alternation with the other's (raw, fyerreg, fyerreg, raw, ...), so that both see
the same share of whatever else the machine is doing.
"""

from __future__ import annotations

import threading
import time
from typing import Any, Callable, Dict, List, Tuple

from fyerreg import Instance

from .context import PENDING_ETCD, Context, record_key
from .report import Row, Section, markdown_table

GOAL = 0.8
WINDOW = 0.5


def _window(threads: int, seconds: float, loop: Callable[[int, int], None], first: int) -> Tuple[int, float]:
    """Loops done by ``threads`` threads each calling ``loop(thread, n)`` for ``seconds``, and the time taken."""
    counts = [0] * threads
    errors: List[BaseException] = []
    stop = threading.Event()
    barrier = threading.Barrier(threads + 1)

    def work(t: int) -> None:
        barrier.wait()
        n = first
        try:
            while not stop.is_set():
                loop(t, n)
                n += 1
        except BaseException as exc:
            errors.append(exc)
        counts[t] = n - first

    workers = [threading.Thread(target=work, args=(t,), name=f"bench-churn-{t}", daemon=True)
               for t in range(threads)]
    for worker in workers:
        worker.start()
    barrier.wait()
    start = time.monotonic()
    stop.wait(seconds)
    stop.set()
    for worker in workers:
        worker.join(60.0)
    elapsed = time.monotonic() - start
    if errors:
        raise errors[0]
    return sum(counts), elapsed


def _alternating(threads: int, seconds: float, loops: Dict[str, Callable[[int, int], None]]) -> Dict[str, float]:
    """Operations per second of each loop, measured in alternating windows of about ``WINDOW`` seconds."""
    rounds = max(1, round(seconds / WINDOW))
    done = {name: 0 for name in loops}
    spent = {name: 0.0 for name in loops}
    names = list(loops)
    for r in range(rounds):
        for name in names if r % 2 == 0 else reversed(names):
            count, elapsed = _window(threads, seconds / rounds, loops[name], first=done[name] + r * 100_000)
            done[name] += count
            spent[name] += elapsed
    return {name: 2 * done[name] / spent[name] for name in names}


def run(ctx: Context) -> Section:
    section = Section("churn", "Churn throughput", __doc__ or "")
    namespace = ctx.namespace("churn")
    raw = ctx.raw

    def inst(t: int, n: int) -> Instance:
        return Instance.new("churn", "1.0.0", f"10.0.{t}.{n % 250 + 1}:8000", id=f"t{t:02d}-{n:07d}")

    def raw_loop(t: int, n: int) -> None:
        instance = inst(t, n)
        key = record_key(namespace, instance)
        lease = raw.lease(30)
        raw.put(key, instance.to_json(), lease=lease)
        raw.delete(key)
        raw.revoke_lease(lease.id)

    registry: Any = ctx.registry(namespace) if ctx.has_etcd_backend else None

    def fyerreg_loop(t: int, n: int) -> None:
        instance = inst(t, n)
        registry.register(instance)
        registry.deregister(instance)

    results: Dict[str, Dict[int, float]] = {"raw": {}, "fyerreg": {}}
    try:
        raw_loop(0, 0)  # warm the connection
        loops: Dict[str, Callable[[int, int], None]] = {"raw": raw_loop}
        if registry is not None:
            loops["fyerreg"] = fyerreg_loop
        for threads in ctx.profile.churn_threads:
            for name, rate in _alternating(threads, ctx.profile.churn_seconds, loops).items():
                results[name][threads] = rate
            ctx.log(f"churn {threads} threads: raw {results['raw'][threads]:.0f}/s, "
                    f"fyerreg {results['fyerreg'].get(threads, float('nan')):.0f}/s")
    finally:
        if registry is not None:
            registry.close()
        ctx.wipe(namespace)
    section.data = {"ops_per_second": results}
    rows = []
    for threads, base in results["raw"].items():
        value = results["fyerreg"].get(threads)
        met = None if value is None else value >= GOAL * base
        section.add(Row(f"{threads} thread{'s' if threads > 1 else ''}", value, base, "ops/s", f">= {GOAL}x raw", met,
                        "raw lease+put+delete+revoke"))
        rows.append([str(threads), f"{value:.0f}" if value is not None else "-", f"{base:.0f}",
                     f"{value / base:.2f}" if value is not None else "-"])
    section.details.append(markdown_table(["threads", "fyerreg ops/s", "raw ops/s", "ratio"], rows))
    if registry is None:
        section.pending = PENDING_ETCD
    return section
