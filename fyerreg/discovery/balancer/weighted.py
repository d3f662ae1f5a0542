"""Weight-proportional balancers: weighted random and smooth weighted round robin."""

from __future__ import annotations

import bisect
import heapq
import itertools
import random
import threading
from typing import Dict, List, Optional, Sequence, Tuple

from ...naming import Instance
from .base import Balancer, RandomSource

__all__ = ["WeightedRandomBalancer", "WeightedRoundRobinBalancer"]


class WeightedRandomBalancer(RandomSource, Balancer):
    """Each pick independent, with probability proportional to the instance's weight."""

    name = "weighted_random"

    def __init__(self, *, rng: Optional[random.Random] = None) -> None:
        self._init_rng(rng)
        self._table: Tuple[List[Instance], List[int], int] = ([], [], 0)

    def clone(self) -> WeightedRandomBalancer:
        return type(self)(rng=self._rng_for_clone())

    def update(self, instances: Sequence[Instance]) -> None:
        items = list(instances)
        cumulative = list(itertools.accumulate(inst.weight for inst in items))
        self._table = (items, cumulative, cumulative[-1] if cumulative else 0)

    def select(self, key: Optional[str] = None) -> Instance:
        items, cumulative, total = self._table
        return items[bisect.bisect_right(cumulative, self._rng.random() * total)]


class _Group:
    """The candidates sharing one weight: scheduled as one, served in turn."""

    __slots__ = ("weight", "members", "cursor", "current", "due")

    def __init__(self, weight: int) -> None:
        self.weight = weight
        self.members: List[Instance] = []
        self.cursor = 0
        self.current = 0
        self.due = 0.0

    def next_member(self) -> Instance:
        members = self.members
        inst = members[self.cursor % len(members)]
        self.cursor += 1
        return inst


class WeightedRoundRobinBalancer(Balancer):
    """Smooth weighted round robin (nginx's algorithm): exact proportions, interleaved, no bursts.

    Over every ``sum(weights)`` picks each instance is picked exactly ``weight`` times,
    spread out: at any point each instance is within about one pick of its ideal
    share. Candidates of equal weight are scheduled as one group (nginx's algorithm
    over groups, each group served in turn), so a pick costs O(number of distinct
    weights), not O(instances). With more than ``exact_limit`` distinct weights the
    groups are scheduled by virtual deadlines on a heap instead (O(log n), same
    exact proportions, slightly less even). Groups keep their schedule and turn
    across candidate changes.
    """

    name = "weighted_round_robin"

    def __init__(self, *, exact_limit: int = 32) -> None:
        if exact_limit < 1:
            raise ValueError("exact_limit must be >= 1")
        self._exact_limit = exact_limit
        self._lock = threading.Lock()
        self._groups: List[_Group] = []
        self._weights: List[int] = []
        self._total = 0
        self._heap: Optional[List[Tuple[float, int, _Group]]] = None
        self._now = 0.0

    def clone(self) -> WeightedRoundRobinBalancer:
        return type(self)(exact_limit=self._exact_limit)

    def update(self, instances: Sequence[Instance]) -> None:
        with self._lock:
            old = {g.weight: g for g in self._groups}
            groups: Dict[int, _Group] = {}
            for inst in instances:
                group = groups.get(inst.weight)
                if group is None:
                    group = groups[inst.weight] = old.get(inst.weight) or _Group(inst.weight)
                    group.members = []
                group.members.append(inst)
            self._groups = list(groups.values())
            self._weights = [g.weight * len(g.members) for g in self._groups]
            self._total = sum(self._weights)
            if len(self._groups) > self._exact_limit:
                heap = []
                for seq, (g, w) in enumerate(zip(self._groups, self._weights)):
                    if g.due <= self._now:
                        g.due = self._now + 0.5 / w
                    heap.append((g.due, seq, g))
                heapq.heapify(heap)
                self._heap = heap
            else:
                self._heap = None

    def select(self, key: Optional[str] = None) -> Instance:
        with self._lock:
            groups = self._groups
            if len(groups) == 1:
                return groups[0].next_member()
            heap = self._heap
            if heap is not None:
                due, seq, group = heap[0]
                self._now = due
                group.due = due + 1.0 / self._weights[seq]
                heapq.heapreplace(heap, (group.due, seq, group))
                return group.next_member()
            best = groups[0]
            for group, weight in zip(groups, self._weights):
                group.current += weight
                if group.current > best.current:
                    best = group
            best.current -= self._total
            return best.next_member()
