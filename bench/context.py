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
    """How much each benchmark measures: ``full`` (the committed numbers), ``quick`` (~1 minute), ``smoke`` (tests)."""

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


PROFILES = {
    "full": Profile("full", propagation_changes=1000, churn_seconds=4.0, churn_threads=(1, 4, 16),
                    subscriber_sizes=(10, 100, 1000, 10_000), subscriber_budget=4.0, subscriber_max_samples=300,
                    select_sizes=(10, 1000, 10_000), select_calls=20_000, select_threads=8,
                    footprint_instances=(1, 100, 1000), footprint_subscriptions=(1, 10, 100),
                    kill_ttls=(2, 5, 10), kill_instances=4, call_requests=2000),
    "quick": Profile("quick", propagation_changes=200, churn_seconds=1.5, churn_threads=(1, 4, 16),
                     subscriber_sizes=(10, 100, 1000, 10_000), subscriber_budget=1.0, subscriber_max_samples=60,
                     select_sizes=(10, 1000, 10_000), select_calls=3000, select_threads=8,
                     footprint_instances=(1, 100), footprint_subscriptions=(1, 10),
                     kill_ttls=(2,), kill_instances=3, call_requests=300),
    "smoke": Profile("smoke", propagation_changes=8, churn_seconds=0.3, churn_threads=(1, 2),
                     subscriber_sizes=(10, 50), subscriber_budget=0.2, subscriber_max_samples=5,
                     select_sizes=(10, 50), select_calls=50, select_threads=2,
                     footprint_instances=(1, 3), footprint_subscriptions=(1, 2),
                     kill_ttls=(2,), kill_instances=1, call_requests=20),
}


def etcd_registry(**options: Any) -> Registry:
    """``fyerreg.registry.etcd.EtcdRegistry(**options)``."""
    module: Any = importlib.import_module("fyerreg.registry.etcd")
    registry: Registry = module.EtcdRegistry(**options)
    return registry


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
