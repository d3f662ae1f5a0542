"""11. Fan-out: one change seen by many subscriber processes, direct to etcd and through etcd's grpc-proxy.

An ``etcd grpc-proxy start`` runs in front of this run's etcd (``EtcdGrpcProxy``).
N fresh processes each hold two EtcdRegistry connections, one straight to etcd and
one through the proxy, each with one subscription to a service of its own path
(``fan-direct``, ``fan-proxy``; the other path's subscription stays idle). For each change this
process arms every subscriber, takes ``t0``, rewrites one record of that path's
service with a raw put (straight to etcd) and waits until every subscriber answered
the monotonic time the snapshot holding the change came out of its subscription.
The figure is the time until the LAST of the N saw it (p50 / p99 over the changes);
"first" and "median" are the first and the middle subscriber's. Changes alternate
between the two paths, so both see the same machine. "etcd CPU per change" is the
run time of etcd's threads (``/proc/<pid>/task/*/schedstat``) from the put to the
last answer, averaged over the changes of a path (the put's own cost included, the
same on both paths); "etcd watchers" is etcd's watcher gauge with every subscriber
connected, over that before they started: N for the direct path plus what the
proxy needs.
"""

from __future__ import annotations

import multiprocessing
import statistics
import time
from multiprocessing.connection import Connection, wait
from typing import Any, Dict, List, Optional, Tuple

from fyerreg.testing import EtcdGrpcProxy

from . import _scale_worker
from ._worker import WAIT
from .context import PENDING_ETCD, Context, fleet, record_key
from .report import Row, Section, markdown_table
from .stats import ms, summary

PATHS = ("direct", "proxy")
WARMUP = 3
READY_WAIT = 120.0
"""Seconds the subscribers get to start, plus ``READY_PER_PROCESS`` each."""
READY_PER_PROCESS = 1.0


class _Fleet:
    """N subscriber processes (see ``_scale_worker.fan_subscriber``), talked to all at once."""

    def __init__(self, processes: int, paths: Dict[str, List[str]], namespace: str, services: Dict[str, str]) -> None:
        spawn = multiprocessing.get_context("spawn")
        self.procs: List[Any] = []
        self.conns: List[Connection] = []
        try:
            for _ in range(processes):
                parent, child = spawn.Pipe()
                proc = spawn.Process(target=_scale_worker.fan_subscriber, args=(child, paths, namespace, services),
                                     daemon=True)
                proc.start()
                child.close()
                self.procs.append(proc)
                self.conns.append(parent)
            self._gather("ready", READY_WAIT + READY_PER_PROCESS * processes)
        except BaseException:
            self.close()
            raise

    def _gather(self, what: str, timeout: float) -> List[Tuple[Any, ...]]:
        """One answer from every process, in process order; raises unless each is ``what``."""
        answers: Dict[int, Tuple[Any, ...]] = {}
        index = {id(conn): n for n, conn in enumerate(self.conns)}
        deadline = time.monotonic() + timeout
        while len(answers) < len(self.conns):
            left = deadline - time.monotonic()
            pending = [c for n, c in enumerate(self.conns) if n not in answers]
            ready = wait(pending, timeout=max(0.0, left)) if left > 0 else []
            if not ready:
                raise RuntimeError(f"{len(pending)} of {len(self.conns)} subscriber processes did not answer "
                                   f"{what!r} within {timeout:g} s")
            for conn in ready:
                assert isinstance(conn, Connection)
                try:
                    message: Tuple[Any, ...] = conn.recv()
                except EOFError:
                    raise RuntimeError(f"a subscriber process exited before answering {what!r}") from None
                if message[0] != what:
                    raise RuntimeError(f"a subscriber process answered {message!r}, expected {what!r}")
                answers[index[id(conn)]] = message
        return [answers[n] for n in range(len(self.conns))]

    def arm(self, path: str, ident: str, seq: str) -> None:
        for conn in self.conns:
            conn.send(("expect", path, ident, seq))
        self._gather("armed", 30.0)

    def seen(self) -> List[float]:
        return sorted(answer[1] for answer in self._gather("seen", WAIT + 5.0))

    def close(self) -> None:
        for conn in self.conns:
            try:
                conn.send(("stop",))
            except OSError:
                pass
        deadline = time.monotonic() + 30.0
        for proc in self.procs:
            proc.join(max(0.1, deadline - time.monotonic()))
        for proc in self.procs:
            if proc.is_alive():
                proc.kill()
                proc.join(5.0)
        for conn in self.conns:
            conn.close()


def run(ctx: Context) -> Section:
    section = Section("fanout", "Fan-out to many subscriber processes", __doc__ or "")
    if not ctx.has_etcd_backend:
        section.pending = PENDING_ETCD
        return section
    processes = ctx.profile.fanout_processes
    namespace = ctx.namespace("fanout")
    services = {path: f"fan-{path}" for path in PATHS}
    targets = {}
    for path in PATHS:
        instances = fleet(services[path], 3)
        ctx.fill(namespace, instances)
        targets[path] = instances[1]
    last: Dict[str, List[float]] = {path: [] for path in PATHS}
    first: Dict[str, List[float]] = {path: [] for path in PATHS}
    middle: Dict[str, List[float]] = {path: [] for path in PATHS}
    etcd_cpu: Dict[str, float] = {path: 0.0 for path in PATHS}
    watchers: Optional[float] = None
    proxy = EtcdGrpcProxy(ctx.endpoints, binary=ctx.server.binary if ctx.server else None)
    subscribers: Optional[_Fleet] = None
    try:
        proxy.start()
        base = _scale_worker.etcd_watchers(ctx.metrics_url)
        t_start = time.monotonic()
        subscribers = _Fleet(processes, {"direct": ctx.endpoints, "proxy": proxy.endpoints}, namespace, services)
        ctx.log(f"fan-out: {processes} subscriber processes ready in {time.monotonic() - t_start:.1f} s")
        now = _scale_worker.etcd_watchers(ctx.metrics_url)
        if base is not None and now is not None:
            watchers = now - base
        for i in range(ctx.profile.fanout_changes + WARMUP):
            for path in PATHS if i % 2 == 0 else tuple(reversed(PATHS)):
                target, seq = targets[path], f"{path}-{i}"
                subscribers.arm(path, target.id, seq)
                value = target.replace(metadata={**target.metadata, "seq": seq}).to_json()
                cpu = _scale_worker.run_time(ctx.etcd_pid)
                t0 = time.monotonic()
                ctx.raw.put(record_key(namespace, target), value)
                seen = subscribers.seen()
                if i >= WARMUP:
                    etcd_cpu[path] += _scale_worker.run_time(ctx.etcd_pid) - cpu
                    last[path].append(seen[-1] - t0)
                    first[path].append(seen[0] - t0)
                    middle[path].append(statistics.median(seen) - t0)
    finally:
        if subscribers is not None:
            subscribers.close()
        proxy.close()
        ctx.wipe(namespace)
    section.data = {"processes": processes, "last": last, "first": first, "median": middle,
                    "etcd_cpu": etcd_cpu, "etcd_watchers": watchers}
    _rows(section, processes, last, first, middle, etcd_cpu, watchers, ctx.etcd_pid is not None)
    return section


def _rows(section: Section, processes: int, last: Dict[str, List[float]], first: Dict[str, List[float]],
          middle: Dict[str, List[float]], etcd_cpu: Dict[str, float], watchers: Optional[float],
          has_pid: bool) -> None:
    direct, proxied = summary(last["direct"]), summary(last["proxy"])
    head = summary(first["direct"])
    section.add(
        Row(f"{processes} processes, direct: last p50", ms(direct["p50"]), ms(head["p50"]), "ms",
            baseline_name="first of them"),
        Row(f"{processes} processes, direct: last p99", ms(direct["p99"]), ms(summary(first["direct"])["p99"]), "ms",
            baseline_name="first of them"),
        Row(f"{processes} processes, via grpc-proxy: last p50", ms(proxied["p50"]), ms(direct["p50"]), "ms",
            baseline_name="direct"),
        Row(f"{processes} processes, via grpc-proxy: last p99", ms(proxied["p99"]), ms(direct["p99"]), "ms",
            baseline_name="direct"),
    )
    if has_pid and last["direct"]:
        per = {path: etcd_cpu[path] / len(last[path]) * 1e6 for path in PATHS}
        section.add(Row("etcd CPU per change, via grpc-proxy", per["proxy"], per["direct"], "µs",
                        baseline_name="direct"))
    rows = []
    for path in PATHS:
        cells = [path, str(len(last[path]))]
        for values in (first[path], middle[path], last[path]):
            s = summary(values)
            cells += [f"{ms(s['p50']):.2f}", f"{ms(s['p99']):.2f}"]
        cells.append(f"{etcd_cpu[path] / len(last[path]) * 1e6:.0f}" if has_pid and last[path] else "-")
        rows.append(cells)
    section.details.append(markdown_table(
        ["path", "changes", "first p50 ms", "first p99 ms", "median p50 ms", "median p99 ms", "last p50 ms",
         "last p99 ms", "etcd CPU µs per change"], rows))
    if watchers is not None:
        section.details.append(
            f"etcd watchers with every subscriber connected: {watchers:.0f} more than before they started, for "
            f"{processes} direct subscriptions and {processes} through the proxy (the proxy coalesces the watches "
            "of its clients on one key range into one of its own).")
