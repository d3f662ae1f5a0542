"""Each candidate in turn, in id order."""

from __future__ import annotations

import itertools
import random
import threading
from typing import Iterator, List, Optional, Sequence

from ...naming import Instance
from .base import Balancer, instance_key

__all__ = ["RoundRobinBalancer"]


class RoundRobinBalancer(Balancer):
    """Cycles through the candidates in id order, weights ignored.

    The cycle starts at a random position (so many clients do not all hit the same
    instance first) and survives a change of candidates: the instance that was next
    stays next, or the one after it when it left.
    """

    name = "round_robin"

    def __init__(self) -> None:
        self._items: List[Instance] = []
        self._counter: Iterator[int] = itertools.count()
        self._update_lock = threading.Lock()

    def clone(self) -> RoundRobinBalancer:
        return type(self)()

    def update(self, instances: Sequence[Instance]) -> None:
        items = list(instances)
        with self._update_lock:
            old = self._items
            start = random.randrange(len(items)) if items else 0
            if old:
                # The first remaining instance at or after the old position, in the old order.
                pos = next(self._counter) % len(old)
                index = {instance_key(inst): i for i, inst in enumerate(items)}
                for step in range(len(old)):
                    found = index.get(instance_key(old[(pos + step) % len(old)]))
                    if found is not None:
                        start = found
                        break
            self._items = items
            self._counter = itertools.count(start)

    def select(self, key: Optional[str] = None) -> Instance:
        items = self._items
        # next() on itertools.count is atomic under the GIL: no lock on the hot path.
        return items[next(self._counter) % len(items)]
