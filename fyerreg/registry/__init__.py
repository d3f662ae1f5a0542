"""The Registry contract and its backends (``fyerreg.registry.memory``, ``fyerreg.registry.etcd``).

The memory backend runs the etcd backend's registration and watch code (no gRPC), so it
is imported when first named, like ``fyerreg.EtcdRegistry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports
from .base import RegistrationState, Registry
from .subscription import Snapshot, Subscription

if TYPE_CHECKING:
    from .memory import MemoryRegistry, MemoryStore

__all__ = ["MemoryRegistry", "MemoryStore", "RegistrationState", "Registry", "Snapshot", "Subscription"]


__getattr__, __dir__ = lazy_exports(__name__, {"MemoryRegistry": ".memory", "MemoryStore": ".memory"})
