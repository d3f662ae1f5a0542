"""Load-balancing strategies behind one small :class:`Balancer` interface, selectable by name."""

from __future__ import annotations

from .base import Balancer, BalancerSpec, balancer_names, make_balancer, register_balancer
from .consistent_hash import ConsistentHashBalancer
from .fastest import FastestBalancer
from .least_requests import LeastRequestsBalancer
from .p2c import P2CBalancer
from .random import RandomBalancer
from .round_robin import RoundRobinBalancer
from .weighted import WeightedRandomBalancer, WeightedRoundRobinBalancer

__all__ = [
    "Balancer",
    "BalancerSpec",
    "ConsistentHashBalancer",
    "FastestBalancer",
    "LeastRequestsBalancer",
    "P2CBalancer",
    "RandomBalancer",
    "RoundRobinBalancer",
    "WeightedRandomBalancer",
    "WeightedRoundRobinBalancer",
    "balancer_names",
    "make_balancer",
    "register_balancer",
]

for _cls in (
    RandomBalancer,
    RoundRobinBalancer,
    WeightedRandomBalancer,
    WeightedRoundRobinBalancer,
    LeastRequestsBalancer,
    P2CBalancer,
    ConsistentHashBalancer,
    FastestBalancer,
):
    register_balancer(_cls.name, _cls)
