"""Weight-proportional balancers: weighted random and smooth weighted round robin."""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import threading
from typing import List, Optional, Sequence, Tuple

from ...naming import Instance
from .base import Balancer, RandomSource, StateTable

__all__ = ["WeightedRandomBalancer", "WeightedRoundRobinBalancer"]


class WeightedRandomBalancer(RandomSource, Balancer):
    """Each pick independent, with probability proportional to the instance's weight."""

    name = "weighted_random"

    def __init__(self, *, rng: Optional[random.Random] = None) -> None:
        self._init_rng(rng)
        self._table: Tuple[List[Instance], List[int], int] = ([], [], 0)

    def update(self, instances: Sequence[Instance]) -> None:
        items = list(instances)
        cumulative = list(itertools.accumulate(inst.weight for inst in items))
        self._table = (items, cumulative, cumulative[-1] if cumulative else 0)

    def select(self, key: Optional[str] = None) -> Instance:
        items, cumulative, total = self._table
        return items[bisect.bisect_right(cumulative, self._rng.random() * total)]


class _Slot:
    __slots__ = ("deadline", "step")

    def __init__(self) -> None:
        self.deadline = -1.0
        self.step = 0.0


class WeightedRoundRobinBalancer(Balancer):
    """Smooth weighted round robin: exact proportions over each period, interleaved, no bursts.

    Over any run of ``sum(weights)`` picks from a fresh start every instance is picked
    exactly ``weight`` times, and at every point each instance is within one pick of its
    ideal share (the guarantee of nginx's smooth WRR). It is computed as virtual-deadline
    scheduling on a heap (instance ``i``'s ``k``-th turn falls at ``(k - 1/2) / w_i``), so
    a pick costs O(log n) instead of nginx's O(n). Each instance keeps its place in the
    schedule across candidate changes; a new one joins half a turn from now.
    """

    name = "weighted_round_robin"

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._states: StateTable[_Slot] = StateTable(lambda inst: _Slot())
        self._heap: List[Tuple[float, int, Instance, _Slot]] = []
        self._now = 0.0

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            slots = self._states.carry(instances)
            now = self._now
            heap = []
            for seq, (inst, slot) in enumerate(zip(instances, slots)):
                step = 1.0 / inst.weight
                if slot.deadline < 0:
                    slot.deadline = now + step / 2
                elif step != slot.step:
                    # Weight changed: keep the fraction of the turn already waited.
                    slot.deadline = now + max(slot.deadline - now, 0.0) * step / slot.step
                slot.step = step
                heap.append((slot.deadline, seq, inst, slot))
            heapq.heapify(heap)
            self._heap = heap

    def select(self, key: Optional[str] = None) -> Instance:
        with self._lock:
            heap = self._heap
            deadline, seq, inst, slot = heap[0]
            self._now = deadline
            slot.deadline = deadline + slot.step
            if slot.deadline > 1e9:
                self._rebase()
            else:
                heapq.heapreplace(heap, (slot.deadline, seq, inst, slot))
            return inst

    def _rebase(self) -> None:
        # Keep virtual time small so float deadlines stay exact enough to order.
        shift = self._now
        self._now = 0.0
        heap = []
        for _, seq, inst, slot in self._heap:
            slot.deadline -= shift
            heap.append((slot.deadline, seq, inst, slot))
        heapq.heapify(heap)
        self._heap = heap
