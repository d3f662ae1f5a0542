"""The Registry contract and its backends (``fyerreg.registry.memory``, ``fyerreg.registry.etcd``)."""

from .base import RegistrationState, Registry
from .subscription import Snapshot, Subscription

__all__ = ["RegistrationState", "Registry", "Snapshot", "Subscription"]
