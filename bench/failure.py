"""6. Failure detection: graceful deregister, and SIGKILL of a registered process.

Graceful: the deregister samples of benchmark 1 (another process's subscriber sees
the instance gone). SIGKILL: one process per ttl registers instances (spread over a
keepalive period, as independent processes would be), then all of them are killed
with SIGKILL at once; a subscriber in this process notes when each instance leaves
its snapshots. A killed process's lease expires at most ``ttl`` seconds after its
last refresh (about every ttl/3), and etcd checks for expired leases every 500 ms,
so removal takes between about 2/3 ttl and ttl (+ that tick).
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from typing import Any, Dict, List, Optional, Set

from . import _worker
from .context import PENDING_ETCD, Context
from .propagation import deregister_rows
from .report import Row, Section, markdown_table
from .stats import summary

EXPIRY_TICK = 0.5
GOAL_SLACK = 1.0


def run(ctx: Context, propagation: Optional[Section]) -> Section:
    section = Section("failure", "Failure detection", __doc__ or "")
    if propagation is not None:
        section.add(*deregister_rows(ctx, propagation))
    else:
        section.notes.append("The graceful figures come from benchmark 1, which was not part of this run.")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    removal = _kill_round(ctx, list(ctx.profile.kill_ttls), ctx.profile.kill_instances)
    section.data = {"sigkill_removal": {str(ttl): v for ttl, v in removal.items()}}
    table = []
    for ttl, samples in removal.items():
        s = summary(samples)
        section.add(Row(f"SIGKILL -> removal, ttl={ttl} s (max of {len(samples)})", s["max"], float(ttl), "s",
                        f"<= ttl + {GOAL_SLACK:g} s", s["max"] <= ttl + GOAL_SLACK, "ttl"))
        table.append([str(ttl), str(len(samples)), f"{min(samples):.2f}", f"{s['p50']:.2f}", f"{s['max']:.2f}",
                      f"{min(samples) / ttl:.2f} .. {s['max'] / ttl:.2f}"])
    section.details.append(markdown_table(["ttl s", "instances", "min s", "p50 s", "max s", "x ttl"], table))
    return section


def _kill_round(ctx: Context, ttls: List[int], per_process: int) -> Dict[int, List[float]]:
    namespace = ctx.namespace("kill")
    spawn = multiprocessing.get_context("spawn")
    registry: Any = ctx.registry(namespace)
    procs: Dict[int, Any] = {}
    conns: Dict[int, Any] = {}
    try:
        sub = registry.subscribe("victim")
        owner: Dict[str, int] = {}
        for ttl in ttls:
            ids = [f"ttl{ttl}-{j}" for j in range(per_process)]
            owner.update((ident, ttl) for ident in ids)
            conns[ttl], child = spawn.Pipe()
            procs[ttl] = spawn.Process(target=_worker.registrant, daemon=True,
                                       args=(child, ctx.endpoints, namespace, "victim", ttl, ids))
            procs[ttl].start()
            child.close()
        for ttl, conn in conns.items():
            if not conn.poll(60.0):
                raise RuntimeError(f"the registering process for ttl={ttl} did not get ready")
            conn.recv()
        present: Set[str] = set()
        deadline = time.monotonic() + 30.0
        while present != set(owner):
            present = {inst.id for inst in sub.get(timeout=max(0.1, deadline - time.monotonic()))}
        killed: Dict[int, float] = {}
        for ttl, proc in procs.items():
            os.kill(proc.pid, signal.SIGKILL)
            killed[ttl] = time.monotonic()
        ctx.log(f"killed {len(procs)} registering processes (ttl {', '.join(map(str, ttls))})")
        removal: Dict[int, List[float]] = {ttl: [] for ttl in ttls}
        deadline = time.monotonic() + max(ttls) + 15.0
        while present:
            snapshot = sub.get(timeout=max(0.1, deadline - time.monotonic()))
            now = time.monotonic()
            alive = {inst.id for inst in snapshot}
            for ident in present - alive:
                removal[owner[ident]].append(now - killed[owner[ident]])
            present &= alive
        for ttl, samples in removal.items():
            ctx.log(f"ttl={ttl}: removed after {', '.join(f'{t:.2f}' for t in sorted(samples))} s")
        return removal
    finally:
        for proc in procs.values():
            if proc.is_alive():
                proc.kill()
            proc.join(10.0)
        for conn in conns.values():
            conn.close()
        registry.close()
        ctx.wipe(namespace)
