"""What every benchmark gets: the run's sizes, the etcd it measures against, and helpers on it."""

from __future__ import annotations

import contextlib
import dataclasses
import importlib
import itertools
import json
import sys
import time
from typing import Any, Iterable, List, Optional, Sequence

from fyerreg import Instance, Registry
from fyerreg.testing import EtcdServer, raw_client

TXN_OPS = 100
"""Puts per transaction when filling etcd (etcd allows 128 by default)."""


@dataclasses.dataclass(frozen=True)
class Profile:
    """How much each benchmark measures: ``full`` (the committed numbers), ``quick`` (minutes), ``smoke`` (tests)."""

    name: str
    propagation_changes: int          # per kind of change (register, update, deregister) and for the floor
    churn_seconds: float
    churn_threads: Sequence[int]
    subscriber_sizes: Sequence[int]
    subscriber_budget: float          # seconds per (N, implementation)
    subscriber_max_samples: int
    select_sizes: Sequence[int]
    select_calls: int
    select_threads: int
    footprint_instances: Sequence[int]
    footprint_subscriptions: Sequence[int]
    kill_ttls: Sequence[int]
    kill_instances: int               # registered instances per killed process
    call_requests: int
    idle_subscriptions: Sequence[int]  # idle cost: subscriptions held by one process, measured in turn
    idle_registrations: Sequence[int]
    idle_window: float                # seconds of each idle window with subscriptions
    idle_registration_window: float   # ... with registrations (whole keepalive intervals at the default ttl)
    many_services: int                # services subscribed to at once (time to subscribe; others open)
    many_rounds: int                  # rounds of subscribing to them, alternating fyerreg and raw
    crowded_changes: int              # registrations seen by each subscriber (none / many others open)
    fanout_processes: int             # subscriber processes that each see one change
    fanout_changes: int               # changes per path (direct to etcd, through the grpc-proxy)


PROFILES = {
    "full": Profile("full", propagation_changes=1000, churn_seconds=4.0, churn_threads=(1, 4, 16),
                    subscriber_sizes=(10, 100, 1000, 10_000), subscriber_budget=4.0, subscriber_max_samples=300,
                    select_sizes=(10, 1000, 10_000), select_calls=20_000, select_threads=8,
                    footprint_instances=(1, 100, 1000), footprint_subscriptions=(1, 10, 100),
                    kill_ttls=(2, 5, 10), kill_instances=4, call_requests=2000,
                    idle_subscriptions=(10, 100, 1000), idle_registrations=(10, 100, 1000), idle_window=10.0,
                    idle_registration_window=20.0, many_services=1000, many_rounds=3, crowded_changes=500,
                    fanout_processes=100, fanout_changes=100),
    "quick": Profile("quick", propagation_changes=200, churn_seconds=1.5, churn_threads=(1, 4, 16),
                     subscriber_sizes=(10, 100, 1000, 10_000), subscriber_budget=1.0, subscriber_max_samples=60,
                     select_sizes=(10, 1000, 10_000), select_calls=3000, select_threads=8,
                     footprint_instances=(1, 100), footprint_subscriptions=(1, 10),
                     kill_ttls=(2,), kill_instances=3, call_requests=300,
                     idle_subscriptions=(10, 100, 1000), idle_registrations=(10, 1000), idle_window=3.0,
                     idle_registration_window=10.0, many_services=1000, many_rounds=1, crowded_changes=150,
                     fanout_processes=20, fanout_changes=30),
    "smoke": Profile("smoke", propagation_changes=8, churn_seconds=0.3, churn_threads=(1, 2),
                     subscriber_sizes=(10, 50), subscriber_budget=0.2, subscriber_max_samples=5,
                     select_sizes=(10, 50), select_calls=50, select_threads=2,
                     footprint_instances=(1, 3), footprint_subscriptions=(1, 2),
                     kill_ttls=(2,), kill_instances=1, call_requests=20,
                     idle_subscriptions=(2, 5), idle_registrations=(2,), idle_window=0.5,
                     idle_registration_window=0.5, many_services=20, many_rounds=1, crowded_changes=6,
                     fanout_processes=2, fanout_changes=4),
}


def etcd_registry(**options: Any) -> Registry:
    """``fyerreg.registry.etcd.EtcdRegistry(**options)``."""
    module: Any = importlib.import_module("fyerreg.registry.etcd")
    registry: Registry = module.EtcdRegistry(**options)
    return registry


def default_ttl() -> int:
    """The lease ttl (seconds) an EtcdRegistry uses unless told otherwise."""
    module: Any = importlib.import_module("fyerreg.registry.etcd.options")
    ttl: int = module.EtcdOptions.ttl
    return ttl


def etcd_backend_available() -> bool:
    """True once ``fyerreg.registry.etcd`` (the etcd backend) is part of this checkout."""
    try:
        importlib.import_module("fyerreg.registry.etcd")
    except ImportError:
        return False
    return True


PENDING_ETCD = "the etcd backend (fyerreg.registry.etcd) is not in this checkout yet; baselines only"


def service_prefix(namespace: str, service: str, version: Optional[str] = None) -> str:
    """The etcd prefix of a service's records (the layout shared with Go fyer-rpc)."""
    return f"/{namespace}/services/{service}/" + (f"{version}/" if version else "")


def record_key(namespace: str, inst: Instance) -> str:
    """The etcd key of one instance's record."""
    return f"{service_prefix(namespace, inst.service, inst.version)}{inst.id}"


def fleet(service: str, n: int, *, version: str = "1.0.0", prefix: str = "i") -> List[Instance]:
    """``n`` distinct instances of ``service``, with realistic metadata and a few weight classes."""
    return [
        Instance.new(service, version, f"10.{i // 65536 % 256}.{i // 256 % 256}.{i % 256}:8000",
                     id=f"{prefix}{i:06d}", weight=(50, 100, 100, 200)[i % 4],
                     metadata={"zone": f"zone-{i % 3}", "pod": f"{service}-{i:06d}"})
        for i in range(n)
    ]


class Context:
    """The run: its profile, one etcd (started here unless endpoints are given) and a log."""

    def __init__(self, profile: Profile, *, endpoints: Optional[List[str]] = None, verbose: bool = True) -> None:
        self.profile = profile
        self.verbose = verbose
        self._stack = contextlib.ExitStack()
        self._names = itertools.count(1)
        self.server: Optional[EtcdServer] = None
        if endpoints:
            self.endpoints = list(endpoints)
        else:
            self.server = EtcdServer(name="fyerreg-bench")
            self._stack.callback(self.server.close)
            self.server.start()
            self.endpoints = self.server.endpoints
        self.raw: Any = raw_client(self.endpoints, timeout=30.0)
        self._stack.callback(self.raw.close)
        self.has_etcd_backend = etcd_backend_available()

    @property
    def etcd_pid(self) -> Optional[int]:
        """The pid of the etcd this run started (None for an etcd given by endpoints)."""
        return self.server.pid if self.server is not None else None

    @property
    def metrics_url(self) -> Optional[str]:
        """etcd's Prometheus page, for the etcd this run started (None otherwise)."""
        return self.server.client_url + "/metrics" if self.server is not None else None

    def close(self) -> None:
        self._stack.close()

    def __enter__(self) -> Context:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def log(self, message: str) -> None:
        if self.verbose:
            print(f"  {time.strftime('%H:%M:%S')} {message}", file=sys.stderr, flush=True)

    def namespace(self, tag: str) -> str:
        """A namespace no other benchmark of this run uses."""
        return f"bench-{tag}-{next(self._names)}"

    def registry(self, namespace: str, **options: Any) -> Registry:
        """An EtcdRegistry on this run's etcd."""
        return etcd_registry(endpoints=self.endpoints, namespace=namespace, **options)

    def fill(self, namespace: str, instances: Iterable[Instance], lease: Any = None) -> None:
        """Write records for ``instances`` straight into etcd, ``TXN_OPS`` per transaction."""
        ops: List[Any] = []
        for inst in instances:
            ops.append(self.raw.transactions.put(record_key(namespace, inst), inst.to_json(), lease=lease))
            if len(ops) == TXN_OPS:
                self.raw.transaction(compare=[], success=ops, failure=[])
                ops = []
        if ops:
            self.raw.transaction(compare=[], success=ops, failure=[])

    def wipe(self, namespace: str) -> None:
        """Delete everything under ``namespace``."""
        self.raw.delete_prefix(f"/{namespace}/")


def decode_all(values: Iterable[bytes]) -> List[Instance]:
    """Decode every record value as the Go design does on each event (invalid ones skipped)."""
    out = []
    for value in values:
        try:
            out.append(Instance.from_json(value))
        except (ValueError, json.JSONDecodeError):
            continue
    return out
