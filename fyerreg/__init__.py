"""fyerreg: service registry and discovery on etcd, for synchronous, threaded Python."""

from . import logging
from .api import Client, ClientOptions, Server, ServerOptions
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
    CallConnectionError,
    CallError,
    CallTimeoutError,
    InvalidInstanceError,
    NoInstanceAvailableError,
    NotRegisteredError,
    PermissionDeniedError,
    RegistryClosedError,
    RegistryError,
    RegistryUnavailableError,
    RemoteError,
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
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "Client",
    "ClientOptions",
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
    "RemoteError",
    "Retry",
    "Server",
    "ServerOptions",
    "Snapshot",
    "Status",
    "Subscription",
    "__version__",
    "logging",
    "balancer_names",
    "chain",
    "match_metadata",
    "prefer_metadata",
    "prefer_zone",
    "register_balancer",
    "where",
]
