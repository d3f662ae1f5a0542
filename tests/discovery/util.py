"""Builders shared by the discovery tests."""

from __future__ import annotations

import collections
from typing import Counter, List, Optional

from fyerreg import Discovery, Ejection, Instance, Registry, Status
from tests.helpers import make_instance

POLICY = Ejection(consecutive_failures=3, base_time=10.0, max_time=25.0, max_percent=50.0)
"""The ejection policy of the health and filter tests."""


def inst(n: int, *, service: str = "svc", version: str = "1.0.0", weight: int = 100,
         zone: Optional[str] = None, enabled: bool = True) -> Instance:
    """Instance number ``n`` (id ``i00n``, address ``10.0.0.n:8000``)."""
    return make_instance(
        f"i{n:03d}", service=service, version=version, host=f"10.0.{n // 250}.{n % 250}", port=8000,
        weight=weight, status=Status.ENABLED if enabled else Status.DISABLED,
        metadata={"zone": zone} if zone else {},
    )


def insts(count: int, **kw: object) -> List[Instance]:
    return [inst(n, **kw) for n in range(count)]  # type: ignore[arg-type]


def register(registry: Registry, *instances: Instance) -> None:
    for i in instances:
        registry.register(i)


def status_of(d: Discovery, service: str = "svc", version: Optional[str] = "1.0.0") -> dict:
    return next(s for s in d.describe()["services"] if s["service"] == service and s["version"] == version)


def fail(d: Discovery, instance_id: str, times: int) -> None:
    """Report ``times`` failed calls to instance ``instance_id`` of svc 1.0.0."""
    target = next(i for i in d.instances("svc", "1.0.0") if i.id == instance_id)
    for _ in range(times):
        d.report(target, latency=0.01, error=RuntimeError("refused"))


def picks(d: Discovery, n: int = 60) -> Counter[str]:
    """How often each instance id of svc 1.0.0 is picked in ``n`` picks."""
    return collections.Counter(d.select("svc", "1.0.0").id for _ in range(n))


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
