"""The etcd backend: ``EtcdRegistry(**options)`` or ``new(**options)``.

Keys are ``/{namespace}/services/{service}/{version}/{id}`` holding the JSON record
shared with Go fyer-rpc; each record is bound to a lease kept alive by this process.
"""

from __future__ import annotations

from typing import Any

from .options import CacheOptions, EtcdOptions, TLSOptions
from .registry import EtcdRegistry

__all__ = ["EtcdRegistry", "EtcdOptions", "TLSOptions", "CacheOptions", "new"]


def new(**options: Any) -> EtcdRegistry:
    """Connect an :class:`EtcdRegistry` with the given options (see :class:`EtcdOptions`)."""
    return EtcdRegistry(**options)
