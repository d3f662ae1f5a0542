"""Uniform random choice among the candidates."""

from __future__ import annotations

import random
from typing import List, Optional, Sequence

from ...naming import Instance
from .base import Balancer, RandomSource

__all__ = ["RandomBalancer"]


class RandomBalancer(RandomSource, Balancer):
    """Every candidate equally likely, weights ignored. Stateless, so nothing to carry."""

    name = "random"

    def __init__(self, *, rng: Optional[random.Random] = None) -> None:
        self._init_rng(rng)
        self._items: List[Instance] = []

    def clone(self) -> RandomBalancer:
        return type(self)(rng=self._rng_for_clone())

    def update(self, instances: Sequence[Instance]) -> None:
        self._items = list(instances)

    def select(self, key: Optional[str] = None) -> Instance:
        return self._rng.choice(self._items)
