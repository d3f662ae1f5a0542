"""Fewest calls in flight, ties broken at random."""

from __future__ import annotations

import random
import threading
from typing import Dict, List, Optional, Sequence

from ...naming import Instance
from .base import Balancer, RandomSource, StateTable

__all__ = ["LeastRequestsBalancer"]


class _Slot:
    __slots__ = ("inst", "in_flight", "pos")

    def __init__(self, inst: Instance) -> None:
        self.inst = inst
        self.in_flight = 0
        self.pos = -1


class LeastRequestsBalancer(RandomSource, Balancer):
    """Picks uniformly among the candidates with the fewest calls in flight.

    In-flight counts come from ``Discovery.pick()``; without it every candidate has
    none and this is uniform random. Candidates are bucketed by in-flight count, so a
    pick costs O(1) whatever the number of instances. Counts survive candidate changes.
    """

    name = "least_requests"

    def __init__(self, *, rng: Optional[random.Random] = None) -> None:
        self._init_rng(rng)
        self._lock = threading.Lock()
        self._states: StateTable[_Slot] = StateTable(_Slot)
        self._buckets: Dict[int, List[_Slot]] = {}
        self._min = 0

    def clone(self) -> LeastRequestsBalancer:
        return type(self)(rng=self._rng_for_clone())

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            slots = self._states.carry(instances)
            buckets: Dict[int, List[_Slot]] = {}
            for inst, slot in zip(instances, slots):
                slot.inst = inst
                bucket = buckets.setdefault(slot.in_flight, [])
                slot.pos = len(bucket)
                bucket.append(slot)
            self._buckets = buckets
            self._min = min(buckets) if buckets else 0

    def select(self, key: Optional[str] = None) -> Instance:
        with self._lock:
            bucket = self._buckets[self._min]
            return bucket[int(self._rng.random() * len(bucket))].inst

    def begin(self, instance: Instance) -> None:
        self._shift(instance, +1)

    def finish(self, instance: Instance) -> None:
        self._shift(instance, -1)

    def in_flight(self, instance: Instance) -> int:
        """Calls to ``instance`` in flight (0 when it is not a candidate)."""
        slot = self._states.get(instance)
        return slot.in_flight if slot is not None else 0

    def _shift(self, instance: Instance, delta: int) -> None:
        with self._lock:
            slot = self._states.get(instance)
            if slot is None or slot.in_flight + delta < 0:
                return
            buckets = self._buckets
            before = slot.in_flight
            self._remove(buckets[before], slot)
            if not buckets[before]:
                del buckets[before]
            slot.in_flight = before + delta
            bucket = buckets.setdefault(slot.in_flight, [])
            slot.pos = len(bucket)
            bucket.append(slot)
            if slot.in_flight < self._min:
                self._min = slot.in_flight
            elif before == self._min and before not in buckets:
                self._min = slot.in_flight  # it was the last one at the minimum

    @staticmethod
    def _remove(bucket: List[_Slot], slot: _Slot) -> None:
        last = bucket.pop()
        if last is not slot:
            bucket[slot.pos] = last
            last.pos = slot.pos
