"""The Registry contract and its backends (``fyerreg.registry.memory``, ``fyerreg.registry.etcd``)."""

from .base import RegistrationState, Registry
from .memory import MemoryRegistry, MemoryStore
from .subscription import Snapshot, Subscription

__all__ = ["MemoryRegistry", "MemoryStore", "RegistrationState", "Registry", "Snapshot", "Subscription"]
