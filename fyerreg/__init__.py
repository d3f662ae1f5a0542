"""fyerreg: service registry and discovery on etcd, for synchronous, threaded Python.

Every public name below is importable from here; its module is imported when the name is
first used, so ``import fyerreg`` stays light (no gRPC until the etcd backend is used).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Dict

from ._lazy import lazy_exports

if TYPE_CHECKING:
    from . import logging
    from .api import Client, ClientOptions, Server, ServerOptions
    from .config import connect
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
        ConfigurationError,
        FyerregError,
        InvalidInstanceError,
        NoInstanceAvailableError,
        NotRegisteredError,
        PermissionDeniedError,
        RegistryClosedError,
        RegistryError,
        RegistryUnavailableError,
        RemoteError,
    )
    from .naming import Endpoint, Instance, Status
    from .registry import MemoryRegistry, MemoryStore, RegistrationState, Registry, Snapshot, Subscription
    from .registry.etcd import EtcdOptions, EtcdRegistry
    from .retry import Failover, Retry

__version__ = "0.2.0"

_EXPORTS: Dict[str, str] = {
    "logging": ".logging",
    "connect": ".config",
    **dict.fromkeys(("Client", "ClientOptions", "Server", "ServerOptions"), ".api"),
    **dict.fromkeys(("Balancer", "Discovery", "Ejection", "InstanceFilter", "balancer_names", "chain",
                     "match_metadata", "prefer_metadata", "prefer_zone", "register_balancer", "where"),
                    ".discovery"),
    **dict.fromkeys(("AlreadyRegisteredError", "AuthenticationError", "CallConnectionError", "CallError",
                     "CallTimeoutError", "ConfigurationError", "FyerregError", "InvalidInstanceError",
                     "NoInstanceAvailableError", "NotRegisteredError", "PermissionDeniedError", "RegistryClosedError",
                     "RegistryError", "RegistryUnavailableError", "RemoteError"), ".errors"),
    **dict.fromkeys(("Endpoint", "Instance", "Status"), ".naming"),
    **dict.fromkeys(("MemoryRegistry", "MemoryStore", "RegistrationState", "Registry", "Snapshot",
                     "Subscription"), ".registry"),
    **dict.fromkeys(("EtcdOptions", "EtcdRegistry"), ".registry.etcd"),
    **dict.fromkeys(("Failover", "Retry"), ".retry"),
}

__getattr__, __dir__ = lazy_exports(__name__, _EXPORTS)

__all__ = [
    "AlreadyRegisteredError",
    "AuthenticationError",
    "Balancer",
    "CallConnectionError",
    "CallError",
    "CallTimeoutError",
    "Client",
    "ClientOptions",
    "ConfigurationError",
    "Discovery",
    "Ejection",
    "Endpoint",
    "EtcdOptions",
    "EtcdRegistry",
    "Failover",
    "FyerregError",
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
    "connect",
    "match_metadata",
    "prefer_metadata",
    "prefer_zone",
    "register_balancer",
    "where",
]
