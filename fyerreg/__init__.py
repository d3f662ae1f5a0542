"""fyerreg: service registry and discovery on etcd, for synchronous, threaded Python."""

from .discovery import (
    Balancer,
    Discovery,
    Ejection,
    InstanceFilter,
    balancer_names,
    chain,
    match_metadata,
    prefer_metadata,
    prefer_zone,
    register_balancer,
    where,
)
from .errors import (
    AlreadyRegisteredError,
    AuthenticationError,
    InvalidInstanceError,
    NoInstanceAvailableError,
    NotRegisteredError,
    PermissionDeniedError,
    RegistryClosedError,
    RegistryError,
    RegistryUnavailableError,
)
from .naming import Instance, Status
from .registry import MemoryRegistry, MemoryStore, RegistrationState, Registry, Snapshot, Subscription
from .registry.etcd import EtcdOptions, EtcdRegistry
from .retry import Retry

__version__ = "0.1.0"

__all__ = [
    "AlreadyRegisteredError",
    "AuthenticationError",
    "Balancer",
    "Discovery",
    "Ejection",
    "EtcdOptions",
    "EtcdRegistry",
    "Instance",
    "InstanceFilter",
    "InvalidInstanceError",
    "MemoryRegistry",
    "MemoryStore",
    "NoInstanceAvailableError",
    "NotRegisteredError",
    "PermissionDeniedError",
    "RegistrationState",
    "Registry",
    "RegistryClosedError",
    "RegistryError",
    "RegistryUnavailableError",
    "Retry",
    "Snapshot",
    "Status",
    "Subscription",
    "__version__",
    "balancer_names",
    "chain",
    "match_metadata",
    "prefer_metadata",
    "prefer_zone",
    "register_balancer",
    "where",
]
