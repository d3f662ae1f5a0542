"""Discovery and load balancing: pick an instance of a service, fast, from a live local view.

The flow: ``Registry.subscribe`` -> :class:`~fyerreg.Subscription` (latest-wins
snapshots) -> :class:`Discovery` (drains to the latest on pick; filters, outlier
ejection) -> :class:`Balancer` -> :class:`~fyerreg.Instance` -> your call ->
feedback (``pick()`` / ``report()``) -> balancer and ejection.
"""

from __future__ import annotations

from .balancer import (
    Balancer,
    BalancerSpec,
    ConsistentHashBalancer,
    FastestBalancer,
    LeastRequestsBalancer,
    P2CBalancer,
    RandomBalancer,
    RoundRobinBalancer,
    WeightedRandomBalancer,
    WeightedRoundRobinBalancer,
    balancer_names,
    make_balancer,
    register_balancer,
)
from .discovery import Discovery
from .filters import InstanceFilter, chain, match_metadata, prefer_metadata, prefer_zone, where
from .health import Ejection

__all__ = [
    "Balancer",
    "BalancerSpec",
    "ConsistentHashBalancer",
    "Discovery",
    "Ejection",
    "FastestBalancer",
    "InstanceFilter",
    "LeastRequestsBalancer",
    "P2CBalancer",
    "RandomBalancer",
    "RoundRobinBalancer",
    "WeightedRandomBalancer",
    "WeightedRoundRobinBalancer",
    "balancer_names",
    "chain",
    "make_balancer",
    "match_metadata",
    "prefer_metadata",
    "prefer_zone",
    "register_balancer",
    "where",
]
