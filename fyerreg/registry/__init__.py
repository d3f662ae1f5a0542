"""The Registry contract and its backends (``fyerreg.registry.memory``, ``fyerreg.registry.etcd``).

The memory backend runs the etcd backend's registration and watch code (no gRPC), so it
is imported when first named, like ``fyerreg.EtcdRegistry``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, List

from .base import RegistrationState, Registry
from .subscription import Snapshot, Subscription

if TYPE_CHECKING:
    from .memory import MemoryRegistry, MemoryStore

__all__ = ["MemoryRegistry", "MemoryStore", "RegistrationState", "Registry", "Snapshot", "Subscription"]


def __getattr__(name: str) -> Any:
    if name in ("MemoryRegistry", "MemoryStore"):
        from . import memory

        return getattr(memory, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def __dir__() -> List[str]:
    return sorted(set(globals()) | set(__all__))
