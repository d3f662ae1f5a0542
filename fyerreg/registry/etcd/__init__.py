"""The etcd backend: ``EtcdRegistry(**options)`` or ``new(**options)``.

Keys are ``/{namespace}/services/{service}/{version}/{id}`` holding the JSON record
shared with Go fyer-rpc; each record is bound to a lease kept alive by this process.
``EtcdRegistry`` (and with it gRPC) is imported when first named: the memory backend
runs this package's registration and watch code without it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from ..._grpc_quiet import quiet_grpc
from ..._lazy import lazy_exports
from .options import CacheOptions, EtcdOptions, TLSOptions

quiet_grpc()  # before this package's modules import grpc: its core reads the variable once, at load

if TYPE_CHECKING:
    from .registry import EtcdRegistry

__all__ = ["EtcdRegistry", "EtcdOptions", "TLSOptions", "CacheOptions", "new"]


__getattr__, __dir__ = lazy_exports(__name__, {"EtcdRegistry": ".registry"})


def new(**options: Any) -> EtcdRegistry:
    """Connect an :class:`EtcdRegistry` with the given options (see :class:`EtcdOptions`)."""
    from .registry import EtcdRegistry

    return EtcdRegistry(**options)
