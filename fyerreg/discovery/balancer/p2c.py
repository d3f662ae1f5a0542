"""Power of two choices on EWMA latency x calls in flight (the Finagle / Kratos algorithm)."""

from __future__ import annotations

import random
import threading
import time
from typing import Callable, List, Optional, Sequence

from ...naming import Instance
from .base import Balancer, RandomSource, StateTable

__all__ = ["P2CBalancer"]


class _Slot:
    __slots__ = ("inst", "latency", "measured", "success", "in_flight", "last_pick")

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.latency = 0.0
        self.measured = False
        self.success = 1.0
        self.in_flight = 0
        self.last_pick = 0.0


class P2CBalancer(RandomSource, Balancer):
    """Draws two distinct candidates at random and picks the one with the lower load.

    Load is ``ewma_latency * (in_flight + 1) / success_rate``, the EWMAs fed by
    ``Discovery.pick()`` / ``report()`` (``alpha`` is the weight of a new sample). An
    instance without a measurement is scored at the mean of the measured ones (or
    ``initial_latency`` when none is), so it is tried rather than starved. A candidate
    that lost every draw for ``probe_after`` seconds wins its next one, so a recovered
    instance gets measured again. O(1) per pick; state survives candidate changes.
    """

    name = "p2c"

    def __init__(
        self,
        *,
        alpha: float = 0.3,
        initial_latency: float = 0.001,
        probe_after: float = 3.0,
        rng: Optional[random.Random] = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if not 0 < alpha <= 1:
            raise ValueError("alpha must be in (0, 1]")
        if initial_latency <= 0:
            raise ValueError("initial_latency must be > 0")
        if probe_after <= 0:
            raise ValueError("probe_after must be > 0")
        self._init_rng(rng)
        self._alpha = alpha
        self._initial = initial_latency
        self._probe_after = probe_after
        self._clock = clock
        self._lock = threading.Lock()
        self._states: StateTable[_Slot] = StateTable(_Slot)
        self._slots: List[_Slot] = []

    def clone(self) -> P2CBalancer:
        return type(self)(alpha=self._alpha, initial_latency=self._initial, probe_after=self._probe_after,
                          rng=self._rng_for_clone(), clock=self._clock)

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            slots = self._states.carry(instances)
            known = [s.latency for s in slots if s.measured]
            default = sum(known) / len(known) if known else self._initial
            now = self._clock()
            for inst, slot in zip(instances, slots):
                if not slot.measured:
                    slot.latency = default
                if slot.last_pick == 0.0:
                    slot.last_pick = now
                slot.inst = inst
            self._slots = slots

    def select(self, key: Optional[str] = None) -> Instance:
        slots = self._slots
        n = len(slots)
        if n == 1:
            return slots[0].inst
        rnd = self._rng.random
        i = int(rnd() * n)
        j = int(rnd() * (n - 1))
        if j >= i:
            j += 1
        a, b = slots[i], slots[j]
        if _load(b) < _load(a):
            a, b = b, a
        now = self._clock()
        if now - b.last_pick > self._probe_after:
            a = b
        a.last_pick = now
        return a.inst

    def begin(self, instance: Instance) -> None:
        with self._lock:
            slot = self._states.get(instance)
            if slot is not None:
                slot.in_flight += 1

    def finish(self, instance: Instance) -> None:
        with self._lock:
            slot = self._states.get(instance)
            if slot is not None and slot.in_flight > 0:
                slot.in_flight -= 1

    def observe(self, instance: Instance, latency: float, failed: bool) -> None:
        alpha = self._alpha
        with self._lock:
            slot = self._states.get(instance)
            if slot is None:
                return
            if slot.measured:
                slot.latency += alpha * (latency - slot.latency)
            else:
                slot.latency = latency
                slot.measured = True
            slot.success += alpha * ((0.0 if failed else 1.0) - slot.success)

    def load(self, instance: Instance) -> Optional[float]:
        """The current load score of ``instance`` (None when it is not a candidate)."""
        slot = self._states.get(instance)
        return _load(slot) if slot is not None else None


def _load(slot: _Slot) -> float:
    return slot.latency * (slot.in_flight + 1) / max(slot.success, 0.01)
