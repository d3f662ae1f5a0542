"""Entry points of the scale benchmarks' child processes (spawned, like those of ``_worker``).

Each measures itself: its CPU time (``getrusage``, every thread of the process,
gRPC's C threads included), its context switches (every wake-up of a thread that
blocked), its resident set and its OS threads; and etcd's CPU from
``/proc/<etcd pid>/stat`` over the same window.
"""

from __future__ import annotations

import gc
import os
import queue
import resource
import threading
import time
import urllib.request
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from fyerreg.testing import raw_client

from ._worker import WAIT, os_threads, rss_bytes
from .churn import process_cpu
from .context import default_ttl, etcd_registry, fleet, record_key, service_prefix

_NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))
SERVICE = "svc{:04d}"
"""The name of the n-th of many services (the parent writes one instance into each)."""


def cpu_seconds() -> float:
    """CPU time (user + system) of every thread of this process so far."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def wakeups() -> int:
    """Context switches of every thread of this process so far (voluntary and not)."""
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_nvcsw + usage.ru_nivcsw


def run_time(pid: Optional[int]) -> float:
    """CPU seconds the threads of process ``pid`` have run, to the nanosecond (``/proc/<pid>/task/*/schedstat``).

    Finer than :func:`churn.process_cpu` (clock ticks, 10 ms), for windows of a few
    milliseconds; a thread that ended meanwhile no longer counts. 0 when unknown.
    """
    if pid is None:
        return 0.0
    total = 0
    try:
        tasks = os.listdir(f"/proc/{pid}/task")
    except OSError:
        return 0.0
    for task in tasks:
        try:
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue
    return total / 1e9


def etcd_watchers(metrics_url: Optional[str]) -> Optional[float]:
    """etcd's gauge of open watches (``etcd_debugging_mvcc_watcher_total``); None when unknown."""
    if not metrics_url:
        return None
    try:
        with _NO_PROXY.open(metrics_url, timeout=5) as page:
            for line in page.read().decode().splitlines():
                if line.startswith("etcd_debugging_mvcc_watcher_total "):
                    return float(line.split()[1])
    except OSError:
        return None
    return None


def wait_watchers(metrics_url: Optional[str], done: Callable[[float], bool], timeout: float = 60.0) -> bool:
    """Wait until etcd's watch gauge satisfies ``done`` (polled every 20 ms); False when unknown or late."""
    deadline = time.monotonic() + timeout
    while True:
        count = etcd_watchers(metrics_url)
        if count is None:
            return False
        if done(count):
            return True
        if time.monotonic() >= deadline:
            return False
        time.sleep(0.02)


def at_least(want: float) -> Callable[[float], bool]:
    """A test for :func:`wait_watchers`: the gauge has reached ``want``."""
    return lambda count: count >= want


def idle_window(seconds: float, etcd_pid: Optional[int]) -> Dict[str, float]:
    """This process's and etcd's CPU, and this process's wake-ups, while it only waits ``seconds``."""
    wall, cpu, woke, etcd = time.monotonic(), cpu_seconds(), wakeups(), process_cpu(etcd_pid)
    time.sleep(seconds)
    wall = time.monotonic() - wall
    return {"seconds": wall, "cpu": (cpu_seconds() - cpu) / wall, "wakeups": (wakeups() - woke) / wall,
            "etcd_cpu": (process_cpu(etcd_pid) - etcd) / wall if etcd_pid else float("nan"),
            "rss": float(rss_bytes()), "threads": float(os_threads())}


def _settle(seconds: float) -> None:
    gc.collect()
    time.sleep(seconds)


class _RawKeepalive:
    """The raw baseline's heartbeat: one thread refreshing every lease with ``refresh_lease`` each ``interval``."""

    def __init__(self, interval: float) -> None:
        self.leases: List[Any] = []
        self.failures = 0
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="bench-raw-keepalive", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            for lease in list(self.leases):
                try:
                    lease.refresh()
                except Exception:
                    self.failures += 1

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(30.0)


def idle_cost(conn: Connection, endpoints: List[str], namespace: str, kind: str, raw: bool, counts: Sequence[int],
              window: float, etcd_pid: Optional[int], metrics_url: Optional[str]) -> None:
    """Hold up to each of ``counts`` subscriptions or registrations, then measure an idle ``window``.

    ``kind`` is ``"subscriptions"`` (one service each) or ``"registrations"`` (default ttl).
    Sends ``{"base": window-dict with nothing held, "points": [(count, window-dict), ...]}``
    once everything is closed again.
    """
    settle = min(1.0, window)
    if kind == "registrations":
        # Past one keepalive interval (for windows as long), so every lease has had its first
        # heartbeat (the one that reads the record and starts watching its key) and the window
        # sees the steady state.
        settle = max(settle, min(window, default_ttl() / 3.0 + 2.0))
    client: Any = raw_client(endpoints, timeout=30.0)
    client.get("/warm-up")
    registry: Any = None
    keepalive: Optional[_RawKeepalive] = None
    held: List[Any] = []
    if not raw:
        registry = etcd_registry(endpoints=endpoints, namespace=namespace)
        registry.list_services("warm-up")
    if kind == "subscriptions":
        def add(n: int) -> None:
            service = SERVICE.format(n)
            if raw:
                held.append(client.add_watch_prefix_callback(service_prefix(namespace, service), lambda _r: None))
            else:
                sub = registry.subscribe(service)
                sub.get(timeout=WAIT)
                held.append(sub)
    else:
        instances = fleet("idle", max(counts), prefix="r" if raw else "f")
        ttl = default_ttl()
        if raw:
            keepalive = _RawKeepalive(ttl / 3.0)

        def add(n: int) -> None:
            if raw:
                assert keepalive is not None
                lease = client.lease(ttl)
                client.put(record_key(namespace, instances[n]), instances[n].to_json(), lease=lease)
                keepalive.leases.append(lease)
            else:
                registry.register(instances[n])
    result: Dict[str, Any] = {"points": []}
    try:
        watchers = etcd_watchers(metrics_url)
        _settle(settle)
        result["base"] = idle_window(min(window, 2.0), etcd_pid)
        added = 0
        for count in sorted(counts):
            while added < count:
                add(added)
                added += 1
            if kind == "subscriptions" and watchers is not None:
                wait_watchers(metrics_url, at_least(watchers + count))
            _settle(settle)
            result["points"].append((count, idle_window(window, etcd_pid)))
        if keepalive is not None:
            result["refresh_failures"] = keepalive.failures
    finally:
        if keepalive is not None:
            keepalive.stop()
            for lease in keepalive.leases:
                try:
                    lease.revoke()
                except Exception:
                    pass
        if registry is not None:
            registry.close()
        client.close()
    conn.send(result)


# -- time to subscribe to many services --------------------------------------------------------------------


def subscribe_many(conn: Connection, endpoints: List[str], namespace: str, services: int, rounds: int,
                   metrics_url: Optional[str]) -> None:
    """Subscribe to ``services`` services with fyerreg and read + watch their prefixes raw, ``rounds`` times each.

    Sends ``{"fyerreg": [seconds, ...], "raw": [...], "fyerreg_watching": [...], "raw_watching": [...]}``:
    until every first snapshot (every watch created, for raw), and until etcd counts every
    watch (when its metrics are known).
    """
    names = [SERVICE.format(n) for n in range(services)]
    result: Dict[str, Any] = {"fyerreg": [], "raw": [], "fyerreg_watching": [], "raw_watching": []}
    for r in range(rounds):
        for which in ("raw", "fyerreg") if r % 2 == 0 else ("fyerreg", "raw"):
            first, watching = (_subscribe_raw if which == "raw" else _subscribe_fyerreg)(
                endpoints, namespace, names, metrics_url)
            result[which].append(first)
            if watching is not None:
                result[f"{which}_watching"].append(watching)
    result["profile"] = _profiled_round(endpoints, namespace, names)
    conn.send(result)


def _profiled_round(endpoints: List[str], namespace: str, names: List[str]) -> List[Tuple[str, float]]:
    """One more fyerreg round under cProfile: what each ``subscribe`` calls, by cumulative seconds per service."""
    import cProfile
    import pstats

    profile = cProfile.Profile()
    registry: Any = etcd_registry(endpoints=endpoints, namespace=namespace)
    try:
        registry.list_services("warm-up")
        profile.enable()
        for name in names:
            registry.subscribe(name).get(timeout=WAIT)
        profile.disable()
    finally:
        registry.close()
    stats: Dict[Any, Any] = pstats.Stats(profile).stats  # type: ignore[attr-defined]
    root = next((func for func in stats if func[2] == "_do_subscribe"), None)
    if root is None:
        return []
    callees = [(f"{os.path.basename(func[0])}:{func[2]}", stats[func][4][root][3] / len(names))
               for func in stats if root in stats[func][4]]
    return [("subscribe (all of it)", stats[root][3] / len(names)),
            *sorted(callees, key=lambda item: -item[1])[:6]]


def _subscribe_fyerreg(endpoints: List[str], namespace: str, names: List[str],
                       metrics_url: Optional[str]) -> Tuple[float, Optional[float]]:
    registry: Any = etcd_registry(endpoints=endpoints, namespace=namespace)
    try:
        registry.list_services("warm-up")
        base = etcd_watchers(metrics_url)
        _settle(0.2)
        start = time.monotonic()
        for name in names:
            snapshot = registry.subscribe(name).get(timeout=WAIT)
            if not snapshot:
                raise RuntimeError(f"the first snapshot of {name} is {snapshot!r}, expected its instance")
        first = time.monotonic() - start
        watching = None
        if base is not None and wait_watchers(metrics_url, lambda n: n >= base + len(names)):
            watching = time.monotonic() - start
    finally:
        registry.close()
    wait_watchers(metrics_url, lambda n: n <= (base or 0))
    return first, watching


def _subscribe_raw(endpoints: List[str], namespace: str, names: List[str],
                   metrics_url: Optional[str]) -> Tuple[float, Optional[float]]:
    client: Any = raw_client(endpoints, timeout=30.0)
    try:
        client.get("/warm-up")
        base = etcd_watchers(metrics_url)
        _settle(0.2)
        start = time.monotonic()
        for name in names:
            prefix = service_prefix(namespace, name)
            if not list(client.get_prefix(prefix)):
                raise RuntimeError(f"{prefix} holds nothing, expected its instance")
            client.add_watch_prefix_callback(prefix, lambda _r: None)
        first = time.monotonic() - start
        watching = None
        if base is not None and wait_watchers(metrics_url, lambda n: n >= base + len(names)):
            watching = time.monotonic() - start
    finally:
        client.close()
    wait_watchers(metrics_url, lambda n: n <= (base or 0))
    return first, watching


# -- fan-out: many processes see one change ----------------------------------------------------------------------


def fan_subscriber(conn: Connection, paths: Dict[str, List[str]], namespace: str, services: Dict[str, str]) -> None:
    """One EtcdRegistry per path (``{"direct": endpoints, "proxy": endpoints}``), subscribed to that path's service.

    Answers ``("ready", pid)``; then, for each ``("expect", path, id, seq)``: ``("armed",)``,
    and ``("seen", monotonic time)`` once the snapshot holding record ``id`` with
    metadata ``seq`` came out of that path's subscription (``("timeout",)`` after ``WAIT``).
    """
    registries: Dict[str, Any] = {}
    try:
        subs = {}
        for path, endpoints in paths.items():
            registries[path] = etcd_registry(endpoints=endpoints, namespace=namespace)
            subs[path] = registries[path].subscribe(services[path], "1.0.0")
            subs[path].get(timeout=WAIT)
        conn.send(("ready", os.getpid()))
        while True:
            try:
                message = conn.recv()
            except EOFError:  # the parent is gone
                break
            if message[0] != "expect":
                break
            _, path, ident, seq = message
            conn.send(("armed",))
            try:
                while True:
                    snapshot = subs[path].get(timeout=WAIT)
                    seen = time.monotonic()
                    if snapshot is None:
                        raise queue.Empty
                    if any(inst.id == ident and inst.metadata.get("seq") == seq for inst in snapshot):
                        break
            except queue.Empty:
                conn.send(("timeout",))
                continue
            conn.send(("seen", seen))
    finally:
        for registry in registries.values():
            registry.close()
