"""Latency-aware weighted random: faster instances get more traffic, none gets all, none starves."""

from __future__ import annotations

import bisect
import itertools
import random
import threading
from typing import List, Optional, Sequence, Tuple

from ...naming import Instance
from .base import Balancer, RandomSource, StateTable

__all__ = ["FastestBalancer"]


class _Slot:
    __slots__ = ("latency", "measured")

    def __init__(self, inst: Instance) -> None:
        self.latency = 0.0
        self.measured = False


class FastestBalancer(RandomSource, Balancer):
    """Picks at random with probability proportional to 1 / (EWMA latency).

    What the Go original's "fastest" got wrong, fixed: an instance not measured yet
    counts as fast as the fastest one (so it is tried, not starved), and latencies are
    clamped to at most ``max_ratio`` times the fastest, so the fastest instance gets at
    most ``max_ratio`` times the traffic of any other and never all of it. ``alpha``
    is the weight of a new sample in the EWMA. Probabilities are recomputed after
    feedback, at most once per ``n / 64`` samples for ``n`` candidates, so a pick
    stays O(log n).
    """

    name = "fastest"

    def __init__(self, *, alpha: float = 0.3, max_ratio: float = 10.0, rng: Optional[random.Random] = None) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if max_ratio < 1:
            raise ValueError("max_ratio must be >= 1")
        self._init_rng(rng)
        self._alpha = alpha
        self._max_ratio = max_ratio
        self._lock = threading.Lock()
        self._states: StateTable[_Slot] = StateTable(_Slot)
        self._items: List[Instance] = []
        self._slots: List[_Slot] = []
        self._table: Tuple[List[Instance], List[float], float] = ([], [], 0.0)
        self._pending = 0

    def clone(self) -> FastestBalancer:
        return type(self)(alpha=self._alpha, max_ratio=self._max_ratio, rng=self._rng_for_clone())

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            self._slots = self._states.carry(instances)
            self._items = list(instances)
            self._rebuild()

    def _rebuild(self) -> None:
        self._pending = 0
        known = [s.latency for s in self._slots if s.measured]
        fastest = max(min(known), 1e-9) if known else 1.0
        ceiling = fastest * self._max_ratio
        weights = (1.0 / min(max(s.latency, fastest), ceiling) if s.measured else 1.0 / fastest
                   for s in self._slots)
        cumulative = list(itertools.accumulate(weights))
        self._table = (self._items, cumulative, cumulative[-1] if cumulative else 0.0)

    def select(self, key: Optional[str] = None) -> Instance:
        items, cumulative, total = self._table
        index = bisect.bisect_right(cumulative, self._rng.random() * total)
        return items[min(index, len(items) - 1)]

    def observe(self, instance: Instance, latency: float, failed: bool) -> None:
        with self._lock:
            slot = self._states.get(instance)
            if slot is None:
                return
            if failed:
                latency = max(latency, slot.latency) * 2  # a failure is never "fast"
            if slot.measured:
                slot.latency += self._alpha * (latency - slot.latency)
            else:
                slot.latency, slot.measured = latency, True
            self._pending += 1
            if self._pending * 64 >= len(self._slots):
                self._rebuild()

    def share(self, instance: Instance) -> float:
        """The current probability of picking ``instance`` (0.0 when it is not a candidate)."""
        items, cumulative, total = self._table
        for i, inst in enumerate(items):
            if inst is instance or inst == instance:
                return (cumulative[i] - (cumulative[i - 1] if i else 0.0)) / total
        return 0.0
