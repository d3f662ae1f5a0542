"""Builders shared by the discovery tests."""

from __future__ import annotations

from typing import List, Optional

from fyerreg import Instance, Status


def inst(n: int, *, service: str = "svc", version: str = "1.0.0", weight: int = 100,
         zone: Optional[str] = None, enabled: bool = True) -> Instance:
    """Instance number ``n`` (id ``i00n``, address ``10.0.0.n:8000``)."""
    return Instance(
        id=f"i{n:03d}", service=service, version=version, address=f"10.0.{n // 250}.{n % 250}:8000",
        weight=weight, status=Status.ENABLED if enabled else Status.DISABLED,
        metadata={"zone": zone} if zone else {},
    )


def insts(count: int, **kw: object) -> List[Instance]:
    return [inst(n, **kw) for n in range(count)]  # type: ignore[arg-type]


class FakeClock:
    """A monotonic clock that only moves when told to."""

    def __init__(self, start: float = 1000.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds
